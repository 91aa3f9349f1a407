//! Keep-alive request rate (workload 3): many connections opened before the
//! window starts, each with one small request in flight at a time, like a
//! pool of HTTP/1.1 or Redis clients. Requests per second over all of them.

use crate::exchange::{self, Exchange};
use crate::result_line::Measurement;
use crate::start_gate::{Start, StartGate, run_workers};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Runs `connections` clients for `duration`.
pub fn run(
    target: SocketAddr,
    connections: usize,
    message_size: usize,
    duration: Duration,
) -> io::Result<Measurement> {
    let (started, counts) = run_workers("keep-alive", connections, duration, |gate| {
        client(target, message_size, gate)
    })?;
    let counts = counts.into_iter().collect::<io::Result<Vec<_>>>()?;
    let requests: u64 = counts.iter().map(|(n, _)| n).sum();
    let finished = counts.iter().map(|(_, t)| *t).max().unwrap_or(started);
    let seconds = finished.duration_since(started).as_secs_f64();

    let mut measurement = Measurement::new("keep-alive");
    measurement.push("connections", connections);
    measurement.push("message_size", message_size);
    measurement.push("requests", requests);
    measurement.push_number("secs", seconds, 3);
    measurement.push_number("req_s", requests as f64 / seconds, 0);
    measurement.push("ok", true);
    Ok(measurement)
}

/// One client: connect, wait for the gate, exchange until the deadline.
/// Returns the request count and when the last reply arrived.
fn client(target: SocketAddr, message_size: usize, gate: &StartGate) -> io::Result<(u64, Instant)> {
    // Connect before the gate so the window holds requests only. A failed
    // connect still waits for the gate, so the main thread's count of
    // waiting clients stays simple; the error is returned afterwards.
    let connected = exchange::connect(target);
    let Start::Go { deadline, .. } = gate.wait() else {
        return Err(io::Error::other("the keep-alive workload was aborted"));
    };
    let mut stream = connected?;
    let mut exchange = Exchange::new(message_size);
    let mut sequence = 0;
    while Instant::now() < deadline {
        exchange.round_trip(&mut stream, sequence)?;
        sequence += 1;
    }
    Ok((sequence, Instant::now()))
}
