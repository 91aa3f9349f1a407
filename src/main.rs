//! The `tcprelay` command. Everything it does is [`tcprelay::command::run`]; this file only
//! hands it the command line.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    tcprelay::command::run(std::env::args_os().skip(1))
}
