//! The `tcprelay` command, whole: the command line in, an exit code out. `src/main.rs` only
//! calls [`run`]; everything the binary does lives here, in the library, so that the parts
//! it is made of (the command-line parser, the demo, the log's process-wide switches) stay
//! private to the crate.
//!
//! Exit codes, Go's `log.Fatal` made explicit: 0 after a drain or a successful `--check`,
//! 1 when a listener cannot be bound (or the demo fails), 2 for usage and configuration
//! mistakes.

use std::ffi::OsString;
use std::io;
use std::process::ExitCode;

use crate::limits::arenas;
use crate::net::address::{Address, UDP_PREFIX};
use crate::ops::admin_client;
use crate::ops::log::{self, Log};
use crate::server::pid_file::{self, PidFile};
use crate::server::{Server, ServerConfig};
use crate::settings::admin_access::AdminToken;
use crate::settings::cli::{self, Command};
use crate::settings::logging::LogLevel;
use crate::teach::demo;
use crate::upstream;

/// A UDP route on `0.0.0.0` or `[::]` answers each client from the address the kernel picks
/// for that client, which on a host with several addresses need not be the one the client
/// sent to; clients (dig, socat, WireGuard) then drop the reply. Choosing the source needs
/// `IP_PKTINFO`, which std does not offer, so the relay says so rather than fail quietly.
const WILDCARD_UDP: &str = "a UDP route on a wildcard address answers from the address the \
    kernel picks for each client, which on a host with several addresses may not be the one \
    the client sent to: listen on each address instead (udp:ADDR:PORT)";

/// Runs the command with these arguments (without the program name) and says how it ended.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // A panic (a bug) must not write stderr from a connection thread: see src/ops/log.rs.
    log::send_panics_to_the_log();
    let args: Vec<OsString> = args.into_iter().collect();
    // `tcprelay reload|drain|status|reopen-logs ...` asks a running relay, with its own flags.
    let first_word = args.first().and_then(|word| word.to_str());
    if let Some(action) = first_word.and_then(admin_client::Action::from_word) {
        return ask_admin(action, args.into_iter().skip(1));
    }
    match cli::parse(args.iter().cloned()) {
        Ok(Command::Run(server)) => serve(server),
        Ok(Command::Check(server)) => {
            if names_self_loops(&server) {
                return ExitCode::from(2);
            }
            print!("{}", server.describe());
            ExitCode::SUCCESS
        }
        Ok(Command::Demo) => match demo::run(&mut std::io::stdout()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("tcprelay demo: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(Command::Help) => {
            print!("{}", cli::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            print!("{}", cli::version());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let code = usage_error(&error);
            // A config file refused at start, under an init that keeps no stderr: the log
            // sinks the command line names get the refusal too.
            if let Some(sinks) = cli::log_sinks_named(&args) {
                if log::set_output(&sinks).is_ok() {
                    fatal_to_sinks(&error, &Log::new(LogLevel::Error));
                }
            }
            code
        }
    }
}

/// `tcprelay reload|drain|status|reopen-logs [flags]`: asks a running relay's admin endpoint.
fn ask_admin(action: admin_client::Action, args: impl Iterator<Item = OsString>) -> ExitCode {
    let args = args.map(|arg| cli::argument(arg).map_err(|error| error.to_string()));
    match admin_client::parse(action, args) {
        Ok(Some(request)) => admin_client::run(&request),
        Ok(None) => {
            print!("{}", admin_client::USAGE);
            ExitCode::SUCCESS
        }
        Err(message) => usage_error(&message),
    }
}

/// A command line that cannot be run: the mistake, a pointer to `--help`, exit code 2.
fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("tcprelay: {error}\nTry 'tcprelay --help' for more information.");
    ExitCode::from(2)
}

/// Binds every route and the admin endpoint, and serves until drained or killed. Go's
/// `log.Fatal` becomes an exit code: 1 if a listener cannot be bound, 0 after a drain.
fn serve(config: ServerConfig) -> ExitCode {
    // Before the first line: every line goes where the operator said.
    if let Err(error) = log::set_output(&config.log_output) {
        eprintln!("tcprelay: {error}");
        return ExitCode::FAILURE;
    }
    if let Some(warning) = config.log_output.warning() {
        eprintln!("tcprelay: warning: {warning}");
    }
    let log = Log::new(config.log_level());
    let to_sinks = config.log_output.replaces_stderr();
    // Under `ulimit -v`, glibc's malloc arenas would take most of the address space: start
    // again with one arena (docs/operations.md, "Sizing under memory limits"). Returns only
    // when that was not needed or failed; then the connection cap counts every arena.
    if let Err(error) = arenas::bound_by_reexec() {
        log.warn(
            "cannot restart with MALLOC_ARENA_MAX=1; counting every malloc arena instead",
            &[("error", &error)],
        );
    }
    let pid_path = config.pid_file.clone();
    if let Some(path) = &pid_path {
        if let Err(refused) = pid_file::check(path) {
            return fatal(&refused, &log, to_sinks);
        }
    }
    // Said after the start-up lines below, which scripts and tests read first.
    let token_warning = config.admin_access.token.as_ref().and_then(AdminToken::unchecked_warning);
    let result = Server::bind(config).and_then(|server| {
        // Written once every route listens, before the lines that tell the world so;
        // removed when `_pid` drops, after the drain.
        let _pid = match &pid_path {
            Some(path) => Some(PidFile::write(path).map_err(io::Error::other)?),
            None => None,
        };
        // Scripts and tests read these lines to learn the ports, so they are written at
        // any level: one per route, in the order given, then the admin endpoint.
        for (addr, metrics) in server.local_addrs().into_iter().zip(server.metrics()) {
            log.always(&format!("listening on {addr}"), &[("route", &metrics.route())]);
        }
        let datagram_addrs = server.datagram_addrs();
        for (addr, route) in &datagram_addrs {
            log.always(&format!("listening on {UDP_PREFIX}{addr}"), &[("route", route)]);
        }
        match server.admin_address() {
            Some(Address::Tcp(admin)) => {
                log.always(&format!("admin endpoint on http://{admin}"), &[]);
            }
            Some(admin) => log.always(&format!("admin endpoint on {admin}"), &[]),
            None => {}
        }
        warn_if_init(&log);
        for (addr, route) in datagram_addrs.iter().filter(|(addr, _)| addr.ip().is_unspecified()) {
            log.warn(WILDCARD_UDP, &[("route", route), ("listen", &format!("{UDP_PREFIX}{addr}"))]);
        }
        if let Some(warning) = &token_warning {
            log.warn(warning, &[]);
        }
        server.serve()
    });
    match result {
        Ok(()) => {
            flush_before_exit();
            ExitCode::SUCCESS
        }
        Err(error) => fatal(&error, &log, to_sinks),
    }
}

/// Says why the relay cannot go on and exits with 1: `tcprelay: ERROR` on stderr, and, when
/// the log goes to a file or syslog (`to_sinks`), the same message as an `error` line there
/// too. Where the log has its own sink, init often keeps no stderr (BusyBox
/// `start-stop-daemon -b` puts it on /dev/null, procd drops it without `stderr 1`), so a
/// port that cannot be bound would otherwise leave no trace at all.
fn fatal(error: &dyn std::fmt::Display, log: &Log, to_sinks: bool) -> ExitCode {
    eprintln!("tcprelay: {error}");
    if to_sinks {
        fatal_to_sinks(error, log);
    } else {
        flush_before_exit();
    }
    ExitCode::FAILURE
}

/// Logs `error` as an `error` line and waits (bounded) until it is written.
fn fatal_to_sinks(error: &dyn std::fmt::Display, log: &Log) {
    log.error(&error.to_string(), &[]);
    flush_before_exit();
}

/// The log is written by its own thread, which the process does not wait for: give it a
/// moment to write the last lines (`stopped`, a fatal error, the suppressed-line counts). A
/// stuck sink delays the exit by [`EXIT_FLUSH_TIMEOUT`] at most.
fn flush_before_exit() {
    log::flush(EXIT_FLUSH_TIMEOUT);
}

/// As a PID namespace's init (a container's first process, without `docker run --init`),
/// the kernel delivers no signal whose action is the default: SIGTERM and SIGINT, which
/// tcprelay cannot catch (std has no signal handling), do nothing, and `docker stop` or a
/// pod deletion waits out its grace period and then kills. Say so once, at start, with the
/// ways out.
fn warn_if_init(log: &Log) {
    if std::process::id() == 1 {
        log.warn(
            "running as PID 1: SIGTERM and SIGINT are ignored; stop with `tcprelay drain` \
             (needs --admin) or run under an init that forwards signals (docker run --init, tini)",
            &[],
        );
    }
}

/// How long the relay waits for its last log lines to be written before it exits.
const EXIT_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a route's upstream resolves to the route's own listen address, naming each on
/// stderr: `--check` then fails with 2, as for any configuration mistake, since that route
/// would refuse every client (`reason=self_loop`, see `upstream/mod.rs`). Validation
/// compares literal addresses only; this resolves host names, now. A name that does not
/// resolve now is not reported: it may resolve where the relay runs.
fn names_self_loops(server: &ServerConfig) -> bool {
    let mut loops = 0;
    for route in server.routes.iter().filter(|route| route.listen_unix.is_none()) {
        for address in route.upstreams() {
            if let Some(own) = upstream::reaches_itself(address, &route.listen) {
                eprintln!(
                    "tcprelay: route {}: upstream {address} resolves to {own}, the route's own \
                     listen address: every client would be closed with reason=self_loop",
                    route.listen
                );
                loops += 1;
            }
        }
    }
    loops > 0
}
