//! The command line: `tcprelay --listen ADDR --upstream ADDR [options]`, `--route`,
//! `--config FILE`, `--check`, `tcprelay demo`, `--help` and `--version`. Parsed by hand,
//! std only. The options are the [settings table](crate::settings), shared with the config
//! file; both the flags and a config file become one [`ServerConfig`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::settings::address::{self, Listen};
use crate::settings::config::Config;
use crate::settings::file;
use crate::settings::logging::LogOutput;
use crate::settings::server_config::{ConfigFile, ServerConfig};
use crate::settings::{self, Error, Scope, Value, spelling};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the relays (one per route) and the admin endpoint.
    Run(ServerConfig),
    /// `--check`: validate, print what would run (see [`ServerConfig::describe`]), exit 0.
    Check(ServerConfig),
    /// Run the self-contained demo (`tcprelay demo`).
    Demo,
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
}

/// What tcprelay is, after its name: the opening of `--help` and the man page.
pub(crate) const ABOUT: &str = "\
a TCP relay (port forwarder) on the Rust standard library alone.
Every client gets its own upstream connection; two threads copy the bytes, and when one
side finishes sending, the other side is told with a half-close (shutdown(Write)).";

/// The flags that make the routes or name the file, listed before the settings in `--help`
/// and the man page: (flag with its value, what it does).
pub(crate) const ROUTE_FLAGS: [(&str, &str); 5] = [
    (
        "-l, --listen ADDR",
        "where to accept clients (required): HOST:PORT, [IPv6]:PORT, or :PORT / PORT for \
         127.0.0.1. Port 0 picks a free port. stdin: the listening socket passed as standard \
         input (systemd StandardInput=socket, Accept=no). udp:HOST:PORT (any form above \
         after udp:): a UDP route, one flow per client address.",
    ),
    (
        "-u, --upstream ADDR[,ADDR...]",
        "where to forward each client (required): HOST:PORT; host names are resolved again \
         for every connection. Several (repeat the flag or separate with commas) are tried \
         as --policy says.",
    ),
    (
        "--route LISTEN=UPSTREAM[,UPSTREAM...]",
        "one more route (repeatable); the options below apply to every route given on the \
         command line",
    ),
    (
        "--config FILE",
        "read routes and settings from FILE (docs/operations.md), a regular file of at most \
         1 MiB; the options below override the file's global settings",
    ),
    ("--check", "validate, print every setting that would apply, and exit"),
];

/// The flags that print something and exit, listed after the settings.
pub(crate) const INFO_FLAGS: [(&str, &str); 2] = [
    ("-h, --help", "print this help"),
    ("-V, --version", "print the version, the commit and the target"),
];

/// What every option shares, after the list of them in `--help` and the man page.
pub(crate) const NOTES: &str = "\
Every option is also a config file key of the same name without the dashes
(--buffer-size 64k is buffer-size 64k); a flag given twice is an error, except the
repeatable ones. DUR is a whole number with a unit: 250ms, 5s, 2m, 1h. BYTES is a
whole number, optionally with k, m or g (powers of 1024).
Unix domain sockets: unix:/path as a listen or upstream address.
Logs go to stderr (or --log-file, --syslog), one key=value line per event (or JSON with
--log-format json); one `listening on ADDR` line per route.
Signals: tcprelay catches none (the Rust standard library cannot). SIGHUP, SIGUSR1,
SIGQUIT, SIGTERM and SIGINT end it at once and cut every transfer: reload with
`tcprelay reload`, stop with `tcprelay drain`, and keep SIGHUP out of logrotate's
postrotate (docs/operations.md, \"Signals\").";

/// The `--help` text: every flag with its limits and default.
pub fn help() -> String {
    let entry = |(flag, body): &(&str, &str)| settings::help_entry(flag, body);
    let mut text = format!(
        "\
tcprelay {version}: {ABOUT}

Usage:
  tcprelay --listen ADDR --upstream ADDR [options]
  tcprelay --route LISTEN=UPSTREAM[,UPSTREAM...] [--route ...] [options]
  tcprelay --config FILE [--check] [options]
  tcprelay reload|drain|status|reopen-logs (--admin ADDR | --config FILE)
                         ask a running relay to reload its config file, drain,
                         report its routes and upstreams, or reopen its --log-file
                         (tcprelay status --help)
  tcprelay demo          run a self-contained demonstration on loopback
  tcprelay --help        print this help
  tcprelay --version     print the version, the commit and the target

Options:
",
        version = env!("CARGO_PKG_VERSION"),
    );
    ROUTE_FLAGS.iter().for_each(|flag| text.push_str(&entry(flag)));
    text.push_str(&settings::help_text());
    INFO_FLAGS.iter().for_each(|flag| text.push_str(&entry(flag)));
    text.push_str(&format!("\n{NOTES}\n"));
    text
}

/// The `--version` text: the version on the first line (what scripts read), then the commit
/// it was built from and the target it runs on, which a bug report needs. The commit is
/// known when the build was given it (`TCPRELAY_COMMIT=$(git rev-parse --short HEAD) cargo
/// build`, as `.ci/run` does): std alone cannot ask git, and a build script could not run
/// in the README's rustc-only build.
pub fn version() -> String {
    version_text(option_env!("TCPRELAY_COMMIT"))
}

fn version_text(commit: Option<&str>) -> String {
    let commit = match commit.map(str::trim).filter(|commit| !commit.is_empty()) {
        Some(commit) => commit.to_string(),
        None => "unknown (build with TCPRELAY_COMMIT=$(git rev-parse --short HEAD) to record it)"
            .to_string(),
    };
    format!("tcprelay {}\ncommit: {commit}\ntarget: {}\n", env!("CARGO_PKG_VERSION"), target())
}

/// The target as `ARCH-OS` and, where there is one, `-ENV` (`x86_64-linux-gnu`,
/// `mips-linux-musl`): the parts of rustc's target triple std names, without the vendor.
fn target() -> String {
    let env = [
        (cfg!(target_env = "gnu"), "-gnu"),
        (cfg!(target_env = "musl"), "-musl"),
        (cfg!(target_env = "uclibc"), "-uclibc"),
        (cfg!(target_env = "msvc"), "-msvc"),
    ];
    let env = env.iter().find_map(|(is, name)| is.then_some(*name)).unwrap_or("");
    format!("{}-{}{env}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The flags that shape the routes rather than set a setting.
const LISTEN: &str = "--listen";
const UPSTREAM: &str = "--upstream";
const ROUTE: &str = "--route";

/// The words that may start a command line instead of a flag.
const SUBCOMMANDS: [&str; 4] = ["reload", "drain", "status", "demo"];

/// Every long flag, for "did you mean" after an unknown one.
fn known_flags() -> Vec<String> {
    let fixed = [LISTEN, UPSTREAM, ROUTE, "--config", "--check", "--help", "--version"];
    let settings = settings::SETTINGS.iter().map(settings::Setting::flag);
    fixed.iter().map(|flag| flag.to_string()).chain(settings).collect()
}

/// The settings that say where the log goes, which [`log_sinks_named`] reads on their own.
const LOG_SINK_SETTINGS: [&str; 3] = ["log-file", "syslog", "log-format"];

/// Where the command line sends the log (`--log-file`, `--syslog`, `--log-format`), read
/// on their own, for when [`parse`] refuses the rest of it or its config file: the refusal
/// then reaches those sinks too, where init keeps no stderr (see `command.rs`). `None` when
/// the command line names no file and no syslog, or names one wrongly.
pub fn log_sinks_named(args: &[OsString]) -> Option<LogOutput> {
    let mut server = ServerConfig::default();
    let mut args = args.iter().filter_map(|arg| arg.to_str());
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        let Some(setting) = settings::find_flag(flag) else { continue };
        if !LOG_SINK_SETTINGS.contains(&setting.name) {
            continue;
        }
        let text = match inline_value {
            Some(value) => value,
            None => args.next()?,
        };
        settings::apply_process(&[Value { setting, text: text.to_string() }], &mut server).ok()?;
    }
    server.log_output.replaces_stderr().then_some(server.log_output)
}

/// One argument as text: the flags, values and paths tcprelay takes are all UTF-8.
///
/// # Errors
/// A usage error naming the argument when it is not valid UTF-8.
pub(crate) fn argument(arg: OsString) -> Result<String, Error> {
    arg.into_string().map_err(|arg| Error::usage(format!("argument {arg:?} is not valid UTF-8")))
}

/// Parses the arguments after the program name. (`tcprelay reload|drain|status|reopen-logs`
/// is the admin client's command line: `command.rs` hands those to it before this runs.)
///
/// # Errors
/// An [`Error`] naming the unknown flag, the flag missing its value, the flag given
/// twice, or the bad value; with `--config`, the file's first mistake as
/// `FILE:LINE:COLUMN: message`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    let mut args = args.into_iter().map(argument).peekable();
    let mut listen: Option<Listen> = None;
    let mut upstreams: Vec<String> = Vec::new();
    let mut routes: Vec<(Listen, Vec<String>)> = Vec::new();
    let (mut config_file, mut check) = (None::<PathBuf>, false);
    // Every setting given, in order, and each single-value flag seen with its value.
    let mut values: Vec<Value> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut first = true;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if first && arg == "demo" {
            return match args.next() {
                None => Ok(Command::Demo),
                Some(extra) => {
                    Err(Error::usage(format!("unexpected argument {:?} after demo", extra?)))
                }
            };
        }
        let at_start = std::mem::replace(&mut first, false);
        // Both `--flag value` and `--flag=value`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let setting = settings::find_flag(&flag);
        let (long, takes_value) = match (flag.as_str(), setting) {
            ("-h" | "--help", _) => return Ok(Command::Help),
            ("-V" | "--version", _) => return Ok(Command::Version),
            ("-l" | "--listen", _) => (LISTEN.to_string(), true),
            ("-u" | "--upstream", _) => (UPSTREAM.to_string(), true),
            ("--route", _) => (ROUTE.to_string(), true),
            ("--config", _) => ("--config".to_string(), true),
            ("--check", _) => ("--check".to_string(), false),
            (_, Some(setting)) => (setting.flag(), !setting.is_switch()),
            _ if flag.starts_with('-') => {
                let flags = known_flags();
                let mut hint = spelling::did_you_mean(&flag, flags.iter().map(String::as_str));
                // socat's and other relays' way to ask for UDP (issue #27: `--udp`).
                if hint.is_empty() && flag.trim_start_matches('-').starts_with("udp") {
                    hint = " (a UDP route has udp: before its listen address: \
                            -l udp:HOST:PORT -u HOST:PORT)"
                        .to_string();
                }
                return Err(Error::usage(format!("unknown flag {flag:?}{hint}")));
            }
            _ => {
                let hint = match at_start {
                    true => spelling::did_you_mean(&arg, SUBCOMMANDS),
                    false => String::new(),
                };
                return Err(Error::usage(format!("unexpected argument {arg:?}{hint}")));
            }
        };
        let value = match (inline_value, takes_value) {
            (Some(value), _) => value,
            (None, true) => {
                args.next().unwrap_or_else(|| Err(Error::usage(format!("{flag} needs a value"))))?
            }
            // A switch: `--explain` is `--explain=on`. As `--help` says "on or off", a
            // following `on` or `off` is its value (`--explain off`): there are no
            // positional arguments it could be meant as instead.
            (None, false) => match args.peek() {
                Some(Ok(word)) if long != "--check" && matches!(word.as_str(), "on" | "off") => {
                    args.next().unwrap_or_else(|| Ok("on".to_string()))?
                }
                _ => "on".to_string(),
            },
        };
        let is_list = matches!(long.as_str(), UPSTREAM | ROUTE) || setting.is_some_and(|s| s.list);
        if !is_list {
            if let Some((_, earlier)) = seen.iter().find(|(name, _)| *name == long) {
                return Err(Error::usage(format!(
                    "{long} given twice ({earlier:?}, then {value:?}): give it once"
                )));
            }
            seen.push((long.clone(), value.clone()));
        }
        let invalid = |error: Error| error.for_setting(&flag);
        match long.as_str() {
            "--config" => config_file = Some(PathBuf::from(value)),
            "--check" if value == "on" => check = true,
            "--check" => {
                return Err(invalid(Error::usage(format!("takes no value, found {value:?}"))));
            }
            LISTEN => listen = Some(address::parse_route_listen(&value).map_err(invalid)?),
            UPSTREAM => upstreams.extend(parse_upstream_list(&value).map_err(invalid)?),
            ROUTE => {
                let (listen_text, upstream_text) = value.split_once('=').ok_or_else(|| {
                    let expected = "expected LISTEN=UPSTREAM[,UPSTREAM...]";
                    invalid(Error::value(format!("{expected}, found {value:?}")))
                })?;
                let route_listen = address::parse_route_listen(listen_text).map_err(invalid)?;
                let route_upstreams = parse_upstream_list(upstream_text).map_err(invalid)?;
                routes.push((route_listen, route_upstreams));
            }
            _ => {
                // Only settings are left: the match above returned for everything else.
                let Some(setting) = setting else { continue };
                settings::check(setting, &value).map_err(invalid)?;
                values.push(Value { setting, text: value });
            }
        }
    }

    let server = match config_file {
        Some(file) => with_config_file(&file, listen.is_some(), &upstreams, &routes, &values)?,
        None => {
            match (listen, upstreams.is_empty()) {
                (Some(listen), false) => routes.insert(0, (listen, upstreams)),
                (Some(_), true) => return Err(Error::usage("missing --upstream ADDR")),
                (None, false) => return Err(Error::usage("missing --listen ADDR")),
                (None, true) if routes.is_empty() => {
                    return Err(Error::usage(
                        "missing --listen ADDR and --upstream ADDR (or --route, or --config FILE)",
                    ));
                }
                (None, true) => {}
            }
            let mut server = ServerConfig::default();
            for (listen, upstreams) in routes {
                let mut config = route_config(listen, upstreams);
                settings::apply_route(&values, &mut config)?;
                server.routes.push(config);
            }
            settings::apply_process(&values, &mut server)?;
            if !server.watch_config.is_zero() {
                return Err(Error::usage(
                    "--watch-config needs --config FILE: it watches that file for changes",
                ));
            }
            server.validate()?;
            server
        }
    };
    Ok(if check { Command::Check(server) } else { Command::Run(server) })
}

/// `--config FILE` with other flags: settings override the file's globals; flags that
/// make routes, or settings that only a route line can hold, are refused, saying where
/// they go instead.
fn with_config_file(
    file: &Path,
    listen: bool,
    upstreams: &[String],
    routes: &[(Listen, Vec<String>)],
    values: &[Value],
) -> Result<ServerConfig, Error> {
    let route_flag =
        [(listen, LISTEN), (!upstreams.is_empty(), UPSTREAM), (!routes.is_empty(), ROUTE)]
            .into_iter()
            .find_map(|(given, flag)| given.then_some(flag));
    if let Some(flag) = route_flag {
        return Err(Error::usage(format!(
            "{flag} cannot be combined with --config: the routes come from {}; add a route \
             line there",
            file.display()
        )));
    }
    if let Some(value) = values.iter().find(|v| v.setting.scope == Scope::RouteOnly) {
        return Err(Error::usage(format!(
            "{} cannot be combined with --config: it belongs to a route; write {}={} on the \
             route lines of {}",
            value.setting.flag(),
            value.setting.name,
            value.text,
            file.display()
        )));
    }
    let parsed = file::load(file)?;
    let mut server = parsed.server_config(values)?;
    // A reload reads the same file with the same flags again.
    let overrides = values.iter().map(|v| (v.setting.name.to_string(), v.text.clone())).collect();
    server.config_file = Some(ConfigFile { path: file.to_path_buf(), overrides });
    Ok(server)
}

/// `a:1,b:2` as upstream addresses, each checked; spaces around a comma are dropped.
fn parse_upstream_list(text: &str) -> Result<Vec<String>, Error> {
    text.split(',').map(|piece| address::parse_upstream(piece.trim())).collect()
}

/// One route with default settings, this listen address and these upstreams (at least one).
fn route_config(listen: Listen, upstreams: Vec<String>) -> Config {
    let mut upstreams = upstreams.into_iter();
    let mut config = Config {
        upstream: upstreams.next().unwrap_or_default(),
        more_upstreams: upstreams.collect(),
        ..Config::default()
    };
    listen.apply(&mut config);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::XorShift;
    use crate::settings::ErrorKind;
    use std::time::Duration;

    fn parse_strs(args: &[&str]) -> Result<Command, Error> {
        parse(args.iter().map(OsString::from))
    }

    /// The error says which flag, as written, and what kind of mistake, not only a message.
    #[test]
    fn a_bad_value_names_its_flag_and_a_usage_mistake_is_usage() {
        let error = parse_strs(&["-l", ":1", "-u", ":1", "--buffer-size", "2g"]).unwrap_err();
        assert_eq!(error.setting_or_flag(), Some("--buffer-size"));
        assert!(matches!(error.kind(), ErrorKind::Value(_)), "{error:?}");
        let error = parse_strs(&["-l", ":1"]).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Usage("missing --upstream ADDR".to_string()));
        let clash = parse_strs(&["--route", ":7001=:1", "--route", "127.0.0.1:7001=:2"]);
        assert!(matches!(clash.unwrap_err().kind(), ErrorKind::Conflict { route: Some(1), .. }));
    }

    #[test]
    fn the_log_sinks_named_on_the_command_line_are_read_on_their_own() {
        let sinks =
            |args: &[&str]| log_sinks_named(&args.iter().map(OsString::from).collect::<Vec<_>>());
        let named =
            sinks(&["--config", "bad.conf", "--syslog", "unix:/dev/log", "--log-file=x.log"]);
        let named = named.expect("a file and syslog");
        assert_eq!(named.file, Some(PathBuf::from("x.log")));
        assert_eq!(named.syslog.map(|syslog| syslog.to_string()), Some("unix:/dev/log".into()));
        assert_eq!(sinks(&["--config", "bad.conf", "--log-format", "json"]), None, "stderr only");
        assert_eq!(sinks(&["--syslog"]), None, "a flag without its value names nothing");
    }

    fn run_config(args: &[&str]) -> Config {
        match parse_strs(args) {
            Ok(Command::Run(mut server)) if server.routes.len() == 1 => server.routes.remove(0),
            other => panic!("expected a run command from {args:?}, got {other:?}"),
        }
    }

    /// `-l udp:...` and `--route udp:...=...` make UDP routes; the UDP settings apply; a
    /// new user's `--udp` is shown the way.
    #[test]
    fn udp_routes_on_the_command_line() {
        let error = parse_strs(&["--udp", "-l", ":53", "-u", ":5353"]).unwrap_err().to_string();
        assert!(error.contains("-l udp:HOST:PORT"), "{error}");
        let config = run_config(&["-l", "udp:127.0.0.1:9", "-u", ":53", "--udp-responses", "1"]);
        assert!(config.udp);
        assert_eq!((config.listen.to_string(), config.udp_responses), ("127.0.0.1:9".into(), 1));
        let config = run_config(&["--route", "udp:[::1]:5353=udp:[::1]:53", "--max-flows", "7"]);
        assert_eq!((config.listen.to_string(), config.max_flows), ("[::1]:5353".into(), 7));
        for (args, expected) in [
            (&["-l", "udp::9", "-u", ":53", "--udp-idle-timeout", "0"][..], "\"0\""),
            (&["-l", "udp::9", "-u", ":53", "--max-flows", "0"], "\"0\""),
            (&["-l", "udp::9", "-u", ":53", "--max-flows-per-client", "x"], "\"x\""),
            (&["-l", "udp::9", "-u", ":53", "--udp-responses", "-1"], "\"-1\""),
        ] {
            let error = parse_strs(args).unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn full_command_line() {
        let config = run_config(&[
            "-l",
            ":0",
            "--upstream=localhost:80",
            "--connect-timeout",
            "250ms",
            "--log-level",
            "debug",
            "--idle-timeout=0",
            "--half-close-timeout",
            "2m",
            "--max-connections",
            "8",
            "--stack-size",
            "128k",
            "--buffer-size",
            "64k",
            "--thread-keep-alive",
            "0",
        ]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.upstream, "localhost:80");
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.log_level, crate::LogLevel::Debug);
        assert_eq!(config.idle_timeout, Duration::ZERO);
        assert_eq!(config.half_close_timeout, Duration::from_secs(120));
        assert_eq!(config.max_connections, 8);
        assert_eq!(config.stack_size, 128 * 1024);
        assert_eq!(config.buffer_size, 64 * 1024);
        assert_eq!(config.thread_keep_alive, Duration::ZERO);
    }

    #[test]
    fn upstream_lists_policy_access_and_proxy_protocol() {
        let config = run_config(&[
            "-l",
            ":0",
            "-u",
            "a:1,b:2",
            "--upstream=[::1]:3",
            "--policy",
            "round-robin",
            "--allow",
            "10.0.0.0/8,::1",
            "--deny=10.0.0.5",
            "--proxy-protocol",
            "v2",
        ]);
        assert_eq!(config.upstreams().collect::<Vec<_>>(), ["a:1", "b:2", "[::1]:3"]);
        assert_eq!(config.policy, crate::Policy::RoundRobin);
        assert_eq!(config.access.allow.len(), 2);
        assert_eq!(config.access.deny[0].to_string(), "10.0.0.5/32");
        assert_eq!(config.proxy_protocol, Some(crate::net::proxy_protocol::ProxyVersion::V2));
    }

    #[test]
    fn subcommands_and_info_flags() {
        assert!(matches!(parse_strs(&["demo"]), Ok(Command::Demo)));
        assert!(matches!(parse_strs(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse_strs(&["-l", ":1", "-h"]), Ok(Command::Help)));
        assert!(matches!(parse_strs(&["-V"]), Ok(Command::Version)));
    }

    #[test]
    fn version_names_the_commit_when_the_build_gave_it_and_the_target() {
        let arch_os = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
        let known = version_text(Some("1a2b3c4\n"));
        let first = format!("tcprelay {}\n", env!("CARGO_PKG_VERSION"));
        assert!(known.starts_with(&first), "{known}");
        assert!(known.contains("\ncommit: 1a2b3c4\n"), "{known}");
        assert!(known.contains(&format!("\ntarget: {arch_os}")), "{known}");
        for unknown in [None, Some(""), Some(" ")] {
            let text = version_text(unknown);
            assert!(text.contains("\ncommit: unknown (build with TCPRELAY_COMMIT="), "{text}");
        }
    }

    #[test]
    fn errors_name_the_flag_or_value() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bogus"], "\"--bogus\""),
            (&["-l"], "-l needs a value"),
            (&["-l", "nope", "-u", ":1"], "\"nope\""),
            (&["-l", ":1", "-u", "host:99999"], "\"host:99999\""),
            (&["-l", ":1", "-u", ":1", "--connect-timeout", "5"], "--connect-timeout"),
            (&["-l", ":1", "-u", ":1", "--connect-timeout", "0"], "--connect-timeout"),
            (&["-l", ":1", "-u", ":1", "--log-level", "loud"], "\"loud\""),
            (&["-l", ":1", "-u", ":1", "--idle-timeout", "forever"], "\"forever\""),
            (&["-l", ":1", "-u", ":1", "--half-close-timeout", "1d"], "\"1d\""),
            (&["-l", ":1", "-u", ":1", "--max-connections", "0"], "\"0\""),
            (&["-l", ":1", "-u", ":1", "--max-connections", "many"], "\"many\""),
            (&["-l", ":1", "-u", ":1", "--stack-size", "1k"], "\"1k\""),
            (&["-l", ":1", "-u", ":1", "--stack-size", "big"], "\"big\""),
            (&["-l", ":1", "-u", ":1", "--buffer-size", "4k"], "\"4k\""),
            (&["-l", ":1", "-u", ":1", "--buffer-size", "lots"], "\"lots\""),
            (&["-l", ":1", "-u", ":1", "--thread-keep-alive", "long"], "\"long\""),
            (&["-l", ":1", "-u", ":1,"], "\"\""),
            (&["-l", ":1", "-u", ":1", "--policy", "random"], "\"random\""),
            (&["-l", ":1", "-u", ":1", "--allow", "10.0.0.1/8"], "\"10.0.0.1/8\""),
            (&["-l", ":1", "-u", ":1", "--deny", "nobody"], "\"nobody\""),
            (&["-l", ":1", "-u", ":1", "--proxy-protocol", "v3"], "\"v3\""),
            (&["-l", ":1"], "missing --upstream"),
            (&["-u", ":1"], "missing --listen"),
            (&["stray"], "\"stray\""),
            (&["demo", "now"], "\"now\""),
        ];
        for (args, expected) in cases {
            let error = parse_strs(args).unwrap_err();
            assert!(error.to_string().contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn help_lists_every_flag_with_defaults() {
        let text = help();
        for flag in [
            "--listen",
            "--upstream",
            "--connect-timeout",
            "--idle-timeout",
            "--half-close-timeout",
            "--max-connections",
            "--stack-size",
            "--buffer-size",
            "--thread-keep-alive",
            "--log-level",
            "--route",
            "--config",
            "--check",
            "--admin",
            "--drain-timeout",
            "--policy",
            "--allow",
            "--deny",
            "--proxy-protocol",
            "--help",
            "--version",
        ] {
            assert!(text.contains(flag), "{flag} missing from help");
        }
        assert!(text.contains("[default: 5s]") && text.contains("[default: info]"));
    }

    /// 5,000 random command lines, built from every flag and from values near the edges
    /// (then mutated a character at a time), never panic the parser; whatever it accepts,
    /// `--check` writes as a config file that reads back to the same text.
    #[test]
    fn fuzzed_command_lines_never_panic_and_accepted_ones_read_back() {
        let mut flags: Vec<String> = crate::settings::SETTINGS.iter().map(|s| s.flag()).collect();
        for extra in [
            "-l",
            "--listen",
            "-u",
            "--upstream",
            "--route",
            "--check",
            "--config",
            "-x",
            "--",
            "-",
            "demo",
        ] {
            flags.push(extra.to_string());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let values = [
            "",
            "0",
            "1",
            "+5",
            "-1",
            "64k",
            "64g",
            "1m",
            "8m",
            "18446744073709551615",
            "5s",
            "0ms",
            "24h",
            "25h",
            "10m",
            "on",
            "off",
            "v1",
            "v2",
            "first",
            "round-robin",
            "debug",
            ":0",
            "127.0.0.1:0",
            "[::1]:0",
            ":1",
            "127.0.0.1:1, :2",
            ":0=:1",
            "unix:/tmp/f",
            "unix:",
            "10.0.0.0/8",
            "::1,10.0.0.0/8",
            "10.0.0.1/8",
            ",",
            "=",
            "[::1",
            "\u{a0}",
            "/dev/zero",
            "/nonexistent/x.conf",
            "0.0.0.0:7001",
            ":7001",
            "127.0.0.1:7001",
        ];
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut tried, mut accepted) = (0, 0);
        for _ in 0..5000 {
            let mut args: Vec<String> = Vec::new();
            if rng.next() % 2 == 0 {
                let listen = rng.pick(&["127.0.0.1:0", ":0", "[::1]:0", ":7001"]);
                args.extend([
                    "-l".to_string(),
                    listen.to_string(),
                    "-u".to_string(),
                    ":1".to_string(),
                ]);
            }
            for step in 0..rng.next() % 9 {
                let word = if step % 2 == 0 { rng.pick(&flags) } else { rng.pick(&values) };
                let mut word = word.to_string();
                if rng.next() % 4 == 0 {
                    let mut chars: Vec<char> = word.chars().collect();
                    let at = (rng.next() % (chars.len() as u64 + 1)) as usize;
                    match rng.next() % 3 {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.insert(
                            at,
                            rng.pick(&["0", "9", ":", ",", "=", "k", " ", "\u{1b}", "é"])
                                .chars()
                                .next()
                                .unwrap_or('0'),
                        ),
                        _ => chars.insert(at, '-'),
                    }
                    word = chars.into_iter().collect();
                }
                if rng.next() % 3 == 0 {
                    if let Some(flag) = args.pop() {
                        word = format!("{flag}={word}");
                    }
                }
                args.push(word);
            }
            // Host names would be resolved, which may wait on DNS: keep to literal addresses.
            let resolves = |arg: &String| {
                let text = arg.trim_start_matches('-');
                !text.starts_with("unix:")
                    && !text.starts_with("/")
                    && text.chars().any(|c| c.is_alphabetic())
                    && text.contains(':')
            };
            if args.iter().any(resolves) {
                continue;
            }
            tried += 1;
            let parsed = parse(args.iter().map(OsString::from));
            if let Ok(Command::Run(server) | Command::Check(server)) = parsed {
                accepted += 1;
                let described = server.describe();
                let again = file::parse(&described, Path::new("check.conf"))
                    .and_then(|file| file.server_config(&[]))
                    .unwrap_or_else(|e| panic!("{args:?}: {e}\n{described}"));
                assert_eq!(again.describe(), described, "{args:?}");
            }
        }
        // The loop must reach the parser, and some of its lines must be accepted.
        assert!(tried > 3000 && accepted > 20, "tried {tried}, accepted {accepted}");
    }
}
