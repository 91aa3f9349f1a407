//! The command line: `tcprelay --listen ADDR --upstream ADDR [options]`, `--route`,
//! `--config FILE`, `--check`, `tcprelay demo`, `--help` and `--version`. Parsed by hand,
//! std only. Both the flags and a config file become one [`ServerConfig`].

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::access::CidrError;
use crate::address;
use crate::config::Config;
use crate::config_file::{self, ConfigError, FileConfig};
use crate::log::LogLevel;
use crate::net::proxy_protocol::ProxyVersionError;
use crate::net::stream::Address;
use crate::server::{DEFAULT_DRAIN_TIMEOUT, ServerConfig};
use crate::units;

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

/// A command line that cannot be run. Its message names the flag or value at fault; the
/// binary prints it with a hint to `--help` and exits with code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The `--help` text: every flag with its default.
pub fn help() -> String {
    let defaults = Config::default();
    format!(
        "\
tcprelay {version}: a TCP relay (port forwarder) on the Rust standard library alone.
Every client gets its own upstream connection; two threads copy the bytes, and when one
side finishes sending, the other side is told with a half-close (shutdown(Write)).

Usage:
  tcprelay --listen ADDR --upstream ADDR [options]
  tcprelay --route LISTEN=UPSTREAM[,UPSTREAM...] [--route ...] [options]
  tcprelay --config FILE [--check]
  tcprelay demo          run a self-contained demonstration on loopback
  tcprelay --help        print this help
  tcprelay --version     print the version

Options:
  -l, --listen ADDR          where to accept clients (required): HOST:PORT, [IPv6]:PORT,
                             or :PORT / PORT for 127.0.0.1. Port 0 picks a free port.
  -u, --upstream ADDR[,ADDR...]
                             where to forward each client (required): HOST:PORT; host names
                             are resolved again for every connection. Several (repeat the
                             flag or separate with commas) are tried as --policy says.
      --route LISTEN=UPSTREAM[,UPSTREAM...]
                             one more route (repeatable); the options below apply to
                             every route given on the command line
      --config FILE          read routes and settings from FILE (docs/operations.md); no
                             other flag but --check may be given with it
      --check                validate, print what would run, and exit
      --admin ADDR           serve GET /metrics, GET /healthz and POST /drain over HTTP
                             here (:PORT means 127.0.0.1) [default: none]
      --drain-timeout DUR    on POST /drain, how long live connections may take to
                             finish before they are closed [default: {drain}]
      --policy POLICY        first (in order, the next only when a connect fails) or
                             round-robin (each client starts at the next one); after a
                             failed connect an upstream is tried last for 10s [default: first]
      --allow CIDR[,CIDR...] only clients in these blocks may connect (repeatable)
      --deny CIDR[,CIDR...]  clients in these blocks may not; a deny wins (repeatable)
      --proxy-protocol V     send a PROXY protocol header (v1 or v2) to the upstream first
      --connect-timeout DUR  how long dialling the upstream may take [default: {connect}]
      --idle-timeout DUR     close a connection when no byte has moved either way for DUR;
                             0 turns it off [default: {idle}]
      --half-close-timeout DUR
                             after one side finished sending, close when the other moves
                             no byte for DUR; 0 turns it off [default: {half_close}]
      --max-connections N    at most N connections at once; at the limit new clients wait
                             in the kernel's backlog [default: {max}]
      --max-connections-per-client N
                             at most N connections at once from one client address (IPv6:
                             one /64); more are closed at once; 0: no limit. The default
                             does not count loopback clients [default: max-connections/8]
      --buffer-size BYTES    copy buffer of each direction; 0 = io::copy's own 8 KiB on the
                             stack, else a heap buffer of at least 8k: 64k doubles bulk
                             throughput, but idle connections hold it [default: 0]
      --thread-keep-alive DUR
                             how long a finished connection thread waits to serve the next
                             connection before it exits; 0: every connection gets new
                             threads [default: {keep_alive}]
      --stack-size BYTES     stack of each connection thread: 65536, 64k, 1m [default: {stack}]
      --log-level LEVEL      error, warn, info or debug [default: {level}]
      --explain              tell each connection's life on stdout as it happens, each
                             event beside the Go line it mirrors (for classrooms)
  -h, --help                 print this help
  -V, --version              print the version

DUR is a whole number with a unit: 250ms, 5s, 2m, 1h.
Unix domain sockets: unix:/path as a listen or upstream address.
Logs go to stderr, one key=value line per event; one `listening on ADDR` line per route.
",
        version = env!("CARGO_PKG_VERSION"),
        connect = units::format_duration(defaults.connect_timeout),
        drain = units::format_duration(DEFAULT_DRAIN_TIMEOUT),
        idle = units::format_duration(defaults.idle_timeout),
        half_close = units::format_duration(defaults.half_close_timeout),
        max = defaults.max_connections,
        stack = format_args!("{}k", defaults.stack_size / 1024),
        keep_alive = units::format_duration(defaults.thread_keep_alive),
        level = defaults.log_level,
    )
}

/// The smallest `--stack-size` accepted: 16 KiB, the usual `PTHREAD_STACK_MIN`. Below it the
/// OS refuses every thread.
const MIN_STACK_SIZE: usize = 16 * 1024;

/// Parses the arguments after the program name.
///
/// # Errors
/// A [`UsageError`] naming the unknown flag, the flag missing its value, or the bad value;
/// with `--config`, the file's first mistake as `FILE:LINE:COLUMN: message`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().map(|arg| {
        arg.into_string().map_err(|arg| UsageError(format!("argument {arg:?} is not valid UTF-8")))
    });
    // The options every command-line route shares, and the routes themselves.
    let mut config = Config::default();
    let (mut listen, mut upstreams) = (None, Vec::new());
    let mut routes: Vec<(Address, Vec<String>)> = Vec::new();
    let (mut admin, mut drain_timeout) = (None, DEFAULT_DRAIN_TIMEOUT);
    let (mut config_file, mut check) = (None::<PathBuf>, false);
    // Flags other than --config and --check, to refuse mixing them with a config file.
    let mut first_other_flag = None;
    let mut first = true;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if first && arg == "demo" {
            return match args.next() {
                None => Ok(Command::Demo),
                Some(extra) => {
                    Err(UsageError(format!("unexpected argument \"{}\" after demo", extra?)))
                }
            };
        }
        first = false;
        // Both `--flag value` and `--flag=value`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        if !matches!(flag.as_str(), "--config" | "--check") && first_other_flag.is_none() {
            first_other_flag = Some(flag.clone());
        }
        let mut value = || -> Result<String, UsageError> {
            match inline_value.clone() {
                Some(value) => Ok(value),
                None => {
                    args.next().unwrap_or_else(|| Err(UsageError(format!("{flag} needs a value"))))
                }
            }
        };
        let invalid = |flag: &str, message: String| UsageError(format!("{flag}: {message}"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--config" => config_file = Some(PathBuf::from(value()?)),
            "--check" => check = true,
            "-l" | "--listen" => {
                listen =
                    Some(address::parse_listen_address(&value()?).map_err(|m| invalid(&flag, m))?)
            }
            "-u" | "--upstream" => {
                upstreams.extend(parse_upstream_list(&value()?).map_err(|m| invalid(&flag, m))?);
            }
            "--route" => {
                let text = value()?;
                let (listen_text, upstream_text) = text.split_once('=').ok_or_else(|| {
                    invalid(
                        &flag,
                        format!("expected LISTEN=UPSTREAM[,UPSTREAM...], found {text:?}"),
                    )
                })?;
                let route_listen =
                    address::parse_listen_address(listen_text).map_err(|m| invalid(&flag, m))?;
                let route_upstreams =
                    parse_upstream_list(upstream_text).map_err(|m| invalid(&flag, m))?;
                routes.push((route_listen, route_upstreams));
            }
            "--admin" => {
                admin = Some(address::parse_listen(&value()?).map_err(|m| invalid(&flag, m))?)
            }
            "--drain-timeout" => {
                drain_timeout = units::parse_duration(&value()?).map_err(|m| invalid(&flag, m))?
            }
            "--policy" => config.policy = value()?.parse().map_err(|m| invalid(&flag, m))?,
            "--allow" | "--deny" => {
                for text in value()?.split(',') {
                    let cidr =
                        text.parse().map_err(|e: CidrError| invalid(&flag, e.to_string()))?;
                    match flag.as_str() {
                        "--allow" => config.access.allow.push(cidr),
                        _ => config.access.deny.push(cidr),
                    }
                }
            }
            "--proxy-protocol" => {
                let version = value()?
                    .parse()
                    .map_err(|e: ProxyVersionError| invalid(&flag, e.to_string()))?;
                config.proxy_protocol = Some(version);
            }
            "--connect-timeout" => {
                config.connect_timeout =
                    units::parse_duration(&value()?).map_err(|m| invalid(&flag, m))?;
                if config.connect_timeout.is_zero() {
                    return Err(invalid(&flag, "must be more than 0".to_string()));
                }
            }
            "--idle-timeout" => {
                config.idle_timeout =
                    units::parse_duration(&value()?).map_err(|m| invalid(&flag, m))?
            }
            "--half-close-timeout" => {
                config.half_close_timeout =
                    units::parse_duration(&value()?).map_err(|m| invalid(&flag, m))?
            }
            "--max-connections" => {
                let text = value()?;
                config.max_connections = match text.parse() {
                    Ok(0) | Err(_) => {
                        return Err(invalid(
                            &flag,
                            format!("invalid number \"{text}\": expected a whole number from 1 up"),
                        ));
                    }
                    Ok(max) => max,
                };
            }
            "--max-connections-per-client" => {
                let text = value()?;
                config.max_connections_per_client = match text.parse() {
                    Ok(max) if text.bytes().all(|b| b.is_ascii_digit()) => Some(max),
                    _ => {
                        return Err(invalid(
                            &flag,
                            format!(
                                "invalid number \"{text}\": expected a whole number, 0 for none"
                            ),
                        ));
                    }
                };
            }
            "--buffer-size" => {
                let text = value()?;
                config.buffer_size = units::parse_size(&text).map_err(|m| invalid(&flag, m))?;
                // Below std's own 8 KiB, io::copy would ignore the heap buffer.
                if config.buffer_size != 0 && config.buffer_size < 8 * 1024 {
                    return Err(invalid(
                        &flag,
                        format!("\"{text}\" is too small: 0, or at least 8k"),
                    ));
                }
            }
            "--thread-keep-alive" => {
                config.thread_keep_alive =
                    units::parse_duration(&value()?).map_err(|m| invalid(&flag, m))?
            }
            "--stack-size" => {
                let text = value()?;
                config.stack_size = units::parse_size(&text).map_err(|m| invalid(&flag, m))?;
                if config.stack_size < MIN_STACK_SIZE {
                    return Err(invalid(
                        &flag,
                        format!("\"{text}\" is too small: at least {}k", MIN_STACK_SIZE / 1024),
                    ));
                }
            }
            "--explain" => config.explain = true,
            "--log-level" => config.log_level = value()?.parse().map_err(|m| invalid(&flag, m))?,
            _ if flag.starts_with('-') => {
                return Err(UsageError(format!("unknown flag \"{flag}\"")));
            }
            _ => return Err(UsageError(format!("unexpected argument \"{arg}\""))),
        }
    }

    let server = match config_file {
        Some(file) => {
            if let Some(flag) = first_other_flag {
                return Err(UsageError(format!(
                    "{flag} cannot be combined with --config: put it in {}",
                    file.display()
                )));
            }
            let parsed = config_file::load(&file).map_err(|e| UsageError(e.to_string()))?;
            server_config_from_file(&parsed).map_err(|e| UsageError(e.to_string()))?
        }
        None => {
            match (listen, upstreams.is_empty()) {
                (Some(listen), false) => routes.insert(0, (listen, upstreams)),
                (Some(_), true) => return Err(UsageError("missing --upstream ADDR".to_string())),
                (None, false) => return Err(UsageError("missing --listen ADDR".to_string())),
                (None, true) if routes.is_empty() => {
                    return Err(UsageError(
                        "missing --listen ADDR and --upstream ADDR (or --route, or --config FILE)"
                            .to_string(),
                    ));
                }
                (None, true) => {}
            }
            let routes = routes
                .into_iter()
                .map(|(listen, upstreams)| route_config(&config, listen, upstreams))
                .collect();
            ServerConfig { routes, admin, drain_timeout }
        }
    };
    Ok(if check { Command::Check(server) } else { Command::Run(server) })
}

/// `a:1,b:2` as upstream addresses, each checked.
fn parse_upstream_list(text: &str) -> Result<Vec<String>, String> {
    text.split(',').map(address::parse_upstream).collect()
}

/// One route: the shared options of `base`, with this listen address and these upstreams
/// (at least one).
fn route_config(base: &Config, listen: Address, upstreams: Vec<String>) -> Config {
    let mut upstreams = upstreams.into_iter();
    let (listen, listen_unix) = match listen {
        Address::Tcp(addr) => (addr, None),
        Address::Unix(path) => (base.listen, Some(path)),
    };
    Config {
        listen,
        listen_unix,
        upstream: upstreams.next().unwrap_or_default(),
        more_upstreams: upstreams.collect(),
        ..base.clone()
    }
}

/// Turns a parsed config file into what the server runs, checking the addresses (which the
/// file parser keeps as text) and reporting a bad one at its line and column.
///
/// # Errors
/// A [`ConfigError`] at the first address that does not parse or resolve.
pub fn server_config_from_file(file: &FileConfig) -> Result<ServerConfig, ConfigError> {
    let globals = &file.globals;
    let log_level = match &globals.log_level {
        // The file parser has checked the spelling already.
        Some(level) => level.parse().unwrap_or(LogLevel::Info),
        None => LogLevel::Info,
    };
    let admin = match &globals.admin {
        Some(located) => {
            Some(address::parse_listen(&located.text).map_err(|m| file.error_at(located, m))?)
        }
        None => None,
    };
    let defaults = Config { log_level, ..Config::default() };
    let mut routes = Vec::new();
    for spec in &file.routes {
        let listen = address::parse_listen_address(&spec.listen.text)
            .map_err(|m| file.error_at(&spec.listen, m))?;
        let mut upstreams = Vec::new();
        for located in &spec.upstreams {
            upstreams.push(
                address::parse_upstream(&located.text).map_err(|m| file.error_at(located, m))?,
            );
        }
        let options = &spec.options;
        let config = Config {
            name: spec.name.clone().unwrap_or_default(),
            policy: options.policy.unwrap_or(defaults.policy),
            connect_timeout: options.connect_timeout.unwrap_or(defaults.connect_timeout),
            idle_timeout: options.idle_timeout.unwrap_or(defaults.idle_timeout),
            half_close_timeout: options.half_close_timeout.unwrap_or(defaults.half_close_timeout),
            max_connections: options.max_connections.unwrap_or(defaults.max_connections),
            max_connections_per_client: options
                .max_connections_per_client
                .or(defaults.max_connections_per_client),
            proxy_protocol: spec.proxy_protocol,
            access: spec.access.clone(),
            ..defaults.clone()
        };
        routes.push(route_config(&config, listen, upstreams));
    }
    if routes.is_empty() {
        return Err(ConfigError {
            file: file.file.clone(),
            line: 0,
            column: 0,
            message: "expected at least one route line, found none".to_string(),
        });
    }
    let drain_timeout = globals.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT);
    Ok(ServerConfig { routes, admin, drain_timeout })
}

/// Loads and checks a config file: [`config_file::load`], then [`server_config_from_file`].
///
/// # Errors
/// The first mistake, as `FILE:LINE:COLUMN: message`.
pub fn load_config_file(file: &Path) -> Result<ServerConfig, ConfigError> {
    server_config_from_file(&config_file::load(file)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn run_config(args: &[&str]) -> Config {
        match parse_strs(args) {
            Ok(Command::Run(mut server)) if server.routes.len() == 1 => server.routes.remove(0),
            other => panic!("expected a run command from {args:?}, got {other:?}"),
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
            "--max-connections-per-client",
            "3",
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
        assert_eq!(config.max_connections_per_client, Some(3));
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
            (&["-l", ":1", "-u", ":1", "--max-connections-per-client", "-1"], "\"-1\""),
            (&["-l", ":1", "-u", ":1", "--max-connections-per-client", "+5"], "\"+5\""),
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
            assert!(error.0.contains(expected), "{args:?}: {error}");
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
            "--max-connections-per-client",
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
}
