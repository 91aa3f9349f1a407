//! The `tcprelay` command: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use tcprelay::cli::{self, Command};
use tcprelay::log::Log;
use tcprelay::{Relay, demo};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(config)) => run(*config),
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

/// Binds and serves until the process is killed. Go's `log.Fatal` becomes an exit code.
fn run(config: tcprelay::Config) -> ExitCode {
    let log = Log::new(config.log_level);
    let result = Relay::bind(config).and_then(|relay| {
        // Scripts and tests read this line to learn the port, so it is written at any level.
        log.always(&format!("listening on {}", relay.local_addr()), &[]);
        relay.serve()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tcprelay: {error}");
            ExitCode::FAILURE
        }
    }
}
