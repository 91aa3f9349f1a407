//! Keep-alive request rate (workload 3): many connections opened before the
//! window starts, each with one small request in flight at a time, like a
//! pool of HTTP/1.1 or Redis clients. Requests per second over all of them.

use crate::exchange::{self, Exchange};
use crate::result_line::Measurement;
use crate::start_gate::{Start, StartGate};
use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `connections` clients for `duration`.
pub fn run(
    target: SocketAddr,
    connections: usize,
    message_size: usize,
    duration: Duration,
) -> io::Result<Measurement> {
    let gate = StartGate::new();
    let (start, counts) = thread::scope(|scope| {
        let mut clients = Vec::with_capacity(connections);
        for index in 0..connections {
            let spawned = thread::Builder::new()
                .name(format!("keep-alive-{index}"))
                .spawn_scoped(scope, || client(target, message_size, &gate));
            match spawned {
                Ok(handle) => clients.push(handle),
                Err(error) => {
                    gate.open(Start::Abort);
                    return (Start::Abort, vec![Err(error)]);
                }
            }
        }
        let start = gate.open_for(duration);
        let counts: Vec<io::Result<(u64, Instant)>> = clients
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a keep-alive client panicked")))
            })
            .collect();
        (start, counts)
    });
    let counts = counts.into_iter().collect::<io::Result<Vec<_>>>()?;
    let Start::Go { started, .. } = start else {
        return Err(io::Error::other("the keep-alive workload was aborted"));
    };
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
