//! The UDP load generator behind the "UDP" section of docs/benchmarks.md:
//! datagram floods, DNS-like round trips and idle flows, through a relay or
//! directly against an upstream, on loopback.
//!
//! `tests/bench/udp.sh` runs the compiled binary (`cargo bench --bench udp
//! --no-run` builds it) once per candidate and measurement, each time printing
//! one `bench-result` line, then `summarize` turns the lines into the tables.
//! With no arguments at all (how `cargo test --all-targets` runs a bench
//! without a harness) it checks every workload end to end against its own
//! echo server, in about a second. `--help` lists the commands.
//!
//! A flow is what a UDP relay keys on: one client socket (address and port).
//! Every datagram carries its flow's number and a sequence number, so a reply
//! from another flow or out of order is counted, never mistaken for a reply.
//!
//! Standard library only and no `unsafe`, like the crate it measures. The
//! result line, percentiles and /proc readings are the TCP load generator's
//! (tests/bench/loadgen/), shared rather than copied.
#![forbid(unsafe_code)]

#[path = "udp_loadgen/commands.rs"]
mod commands;
#[path = "udp_loadgen/dns.rs"]
mod dns;
#[path = "udp_loadgen/echo.rs"]
mod echo;
#[path = "udp_loadgen/flags.rs"]
mod flags;
#[path = "udp_loadgen/flood.rs"]
mod flood;
#[path = "loadgen/footprint.rs"]
#[allow(dead_code)] // the TCP generator's module: this binary reads memory and threads only
mod footprint;
#[path = "udp_loadgen/idle_flows.rs"]
mod idle_flows;
#[path = "udp_loadgen/payload.rs"]
mod payload;
#[path = "udp_loadgen/receive_drops.rs"]
mod receive_drops;
#[path = "loadgen/result_line.rs"]
#[allow(dead_code)] // shared with the TCP generator, which uses all of it
mod result_line;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "udp_loadgen/summary.rs"]
mod summary;
#[path = "udp_loadgen/switches.rs"]
mod switches;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match commands::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Usage(message)) => {
            eprintln!("udp bench: {message}");
            eprintln!("run with --help to see the commands");
            ExitCode::from(2)
        }
        Err(commands::Failure::Run(error)) => {
            eprintln!("udp bench: {error}");
            ExitCode::FAILURE
        }
    }
}
