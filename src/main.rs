//! The `tcprelay` command: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use tcprelay::cli::{self, Command};
use tcprelay::log::{Log, LogLevel};
use tcprelay::{Server, ServerConfig, demo};

fn main() -> ExitCode {
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
    let level = config.routes.first().map(|route| route.log_level).unwrap_or(LogLevel::Info);
    let log = Log::new(level);
    // Under `ulimit -v`, glibc's malloc arenas would take most of the address space: start
    // again with one arena (docs/operations.md, "Sizing under memory limits"). Returns only
    // when that was not needed or failed; then the connection cap counts every arena.
    if let Err(error) = tcprelay::arenas::bound_by_reexec() {
        log.warn(
            "cannot restart with MALLOC_ARENA_MAX=1; counting every malloc arena instead",
            &[("error", &error)],
        );
    }
    let result = Server::bind(config).and_then(|server| {
        // Scripts and tests read these lines to learn the ports, so they are written at
        // any level: one per route, in the order given, then the admin endpoint.
        for (addr, metrics) in server.local_addrs().into_iter().zip(server.metrics()) {
            log.always(&format!("listening on {addr}"), &[("route", &metrics.route())]);
        }
        if let Some(admin) = server.admin_addr() {
            log.always(&format!("admin endpoint on http://{admin}"), &[]);
        }
        server.serve()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tcprelay: {error}");
            ExitCode::FAILURE
        }
    }
}
