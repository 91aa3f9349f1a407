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
use crate::net::address::Address;
use crate::ops::admin::AdminToken;
use crate::ops::admin_client;
use crate::ops::log::{self, Log};
use crate::server::pid_file::{self, PidFile};
use crate::server::{Server, ServerConfig};
use crate::settings::cli::{self, Command};
use crate::teach::demo;

/// Runs the command with these arguments (without the program name) and says how it ended.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // A panic (a bug) must not write stderr from a connection thread: see src/ops/log.rs.
    log::send_panics_to_the_log();
    match cli::parse(args) {
        Ok(Command::Run(server)) => serve(server),
        Ok(Command::Check(server)) => {
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
        Ok(Command::Admin(request)) => admin_client::run(&request),
        Ok(Command::AdminHelp) => {
            print!("{}", admin_client::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Help) => {
            print!("{}", cli::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            print!("{}", cli::version());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tcprelay: {error}\nTry 'tcprelay --help' for more information.");
            ExitCode::from(2)
        }
    }
}

/// Binds every route and the admin endpoint, and serves until drained or killed. Go's
/// `log.Fatal` becomes an exit code: 1 if a listener cannot be bound, 0 after a drain.
fn serve(config: ServerConfig) -> ExitCode {
    let log = Log::new(config.log_level());
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
            eprintln!("tcprelay: {refused}");
            return ExitCode::FAILURE;
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
        match server.admin_address() {
            Some(Address::Tcp(admin)) => {
                log.always(&format!("admin endpoint on http://{admin}"), &[]);
            }
            Some(admin) => log.always(&format!("admin endpoint on {admin}"), &[]),
            None => {}
        }
        if let Some(warning) = &token_warning {
            log.warn(warning, &[]);
        }
        server.serve()
    });
    // The log is written by its own thread, which the process does not wait for: give it a
    // moment to write the last lines (`stopped`, the suppressed-line counts). A stuck
    // stderr delays the exit by this much at most.
    log::flush(EXIT_FLUSH_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tcprelay: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How long the relay waits for its last log lines to be written before it exits.
const EXIT_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
