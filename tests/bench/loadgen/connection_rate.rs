//! Connection rate (workload 4): each worker connects, makes one exchange,
//! closes, and starts over; connections per second over all workers.
//!
//! A failed connection does not end the run: it is counted, and the first
//! error's message is reported, because a relay that drops one connection in
//! a thousand under load is exactly what this workload should show.

use crate::exchange::{self, Exchange};
use crate::result_line::Measurement;
use crate::start_gate::{Start, StartGate, run_workers};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The message of the single exchange.
const MESSAGE_SIZE: usize = 32;

/// What one worker achieved.
#[derive(Default)]
struct Tally {
    completed: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Runs `workers` connectors for `duration`.
pub fn run(target: SocketAddr, workers: usize, duration: Duration) -> io::Result<Measurement> {
    let (started, tallies) =
        run_workers("connect", workers, duration, |gate| worker(target, gate))?;
    let seconds = started.elapsed().as_secs_f64();
    let completed: u64 = tallies.iter().map(|t| t.completed).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();

    let mut measurement = Measurement::new("connection-rate");
    measurement.push("workers", workers);
    measurement.push("completed", completed);
    measurement.push_number("secs", seconds, 3);
    measurement.push_number("conn_s", completed as f64 / seconds, 0);
    measurement.push("errors", failed);
    measurement.push("ok", true);
    if let Some(first) = tallies.into_iter().find_map(|t| t.first_error) {
        measurement.push("first_error", first.replace(' ', "_"));
    }
    Ok(measurement)
}

fn worker(target: SocketAddr, gate: &StartGate) -> Tally {
    let mut tally = Tally::default();
    let Start::Go { deadline, .. } = gate.wait() else {
        return tally;
    };
    let mut exchange = Exchange::new(MESSAGE_SIZE);
    while Instant::now() < deadline {
        let result = exchange::connect(target)
            .and_then(|mut stream| exchange.round_trip(&mut stream, tally.completed));
        // The stream is dropped (closed) here, at the end of each attempt.
        match result {
            Ok(()) => tally.completed += 1,
            Err(error) => {
                tally.failed += 1;
                tally.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    tally
}
