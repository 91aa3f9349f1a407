//! The `tcprelay` command: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use tcprelay::cli::{self, Command};
use tcprelay::log::Log;
use tcprelay::{Address, Server, ServerConfig, demo};

fn main() -> ExitCode {
    // A panic (a bug) must not write stderr from a connection thread: see src/log.rs.
    tcprelay::log::send_panics_to_the_log();
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(server)) => run(server),
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
        Ok(Command::Help) => {
            print!("{}", cli::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("tcprelay {}", env!("CARGO_PKG_VERSION"));
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
fn run(config: ServerConfig) -> ExitCode {
    let log = Log::new(config.log_level());
    let result = Server::bind(config).and_then(|server| {
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
        server.serve()
    });
    // The log is written by its own thread, which the process does not wait for: give it a
    // moment to write the last lines (`stopped`, the suppressed-line counts). A stuck
    // stderr delays the exit by this much at most.
    tcprelay::log::flush(EXIT_FLUSH_TIMEOUT);
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
