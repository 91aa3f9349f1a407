//! The tcprelay load generator: one program that measures a TCP relay, and the
//! same workloads with no relay at all, on loopback.
//!
//! Three ways to run it:
//! - `cargo bench --bench relay` runs a short suite of every workload against
//!   tcprelay in-process and against the upstream servers directly, and prints
//!   a table (under a minute).
//! - `tests/bench/peers.sh` runs the compiled binary with a command: `serve`
//!   starts the upstream servers, `run` measures one workload through a relay
//!   given by address, `summarize` turns result lines into the tables of
//!   docs/benchmarks.md. `--help` lists every command.
//! - With no arguments at all (which is how `cargo test --all-targets` runs a
//!   bench without a harness) a tiny version of the suite checks that every
//!   workload still works end to end.
//!
//! The code is split into small modules under `loadgen/`; this file only
//! parses the command line and hands over.
//!
//! Standard library only and no `unsafe`, like the crate it measures.
#![forbid(unsafe_code)]

#[path = "loadgen/bulk.rs"]
mod bulk;
#[path = "loadgen/cli.rs"]
mod cli;
#[path = "loadgen/commands.rs"]
mod commands;
#[path = "loadgen/connection_rate.rs"]
mod connection_rate;
#[path = "loadgen/exchange.rs"]
mod exchange;
#[path = "loadgen/footprint.rs"]
mod footprint;
#[path = "loadgen/idle.rs"]
mod idle;
#[path = "loadgen/inprocess_relay.rs"]
mod inprocess_relay;
#[path = "loadgen/keep_alive.rs"]
mod keep_alive;
#[path = "loadgen/pattern.rs"]
mod pattern;
#[path = "loadgen/ping_pong.rs"]
mod ping_pong;
#[path = "loadgen/quiet_echo.rs"]
mod quiet_echo;
#[path = "loadgen/result_line.rs"]
mod result_line;
#[path = "loadgen/start_gate.rs"]
mod start_gate;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "loadgen/suite.rs"]
mod suite;
#[path = "loadgen/summary.rs"]
mod summary;
#[path = "loadgen/upstreams.rs"]
mod upstreams;
#[path = "loadgen/workload.rs"]
mod workload;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("relay bench: {error}");
            eprintln!("run with --help to see the commands");
            return ExitCode::from(2);
        }
    };
    match commands::execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relay bench: {error}");
            ExitCode::FAILURE
        }
    }
}
