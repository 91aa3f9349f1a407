//! Request/response latency on one connection (workload 2): one small
//! message in flight at a time, every round trip timed; p50, p99 and p99.9.

use crate::exchange::{self, Exchange};
use crate::result_line::Measurement;
use crate::stats::percentile;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Round trips before timing starts: the first ones pay for cold caches and
/// the relay's thread getting scheduled for the first time.
const WARM_UP: u64 = 200;

/// A cap on recorded samples (8 MB of memory), far above what a few seconds
/// of loopback round trips produce.
const MAX_SAMPLES: usize = 1_000_000;

/// Times round trips for `duration`.
pub fn run(target: SocketAddr, message_size: usize, duration: Duration) -> io::Result<Measurement> {
    let mut stream = exchange::connect(target)?;
    let mut exchange = Exchange::new(message_size);
    for sequence in 0..WARM_UP {
        exchange.round_trip(&mut stream, sequence)?;
    }
    let mut round_trips_ns: Vec<u64> = Vec::with_capacity(100_000);
    let started = Instant::now();
    let deadline = started + duration;
    let mut sequence = WARM_UP;
    while Instant::now() < deadline && round_trips_ns.len() < MAX_SAMPLES {
        let sent = Instant::now();
        exchange.round_trip(&mut stream, sequence)?;
        round_trips_ns.push(sent.elapsed().as_nanos() as u64);
        sequence += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    round_trips_ns.sort_unstable();
    let micros = |q: f64| percentile(&round_trips_ns, q) as f64 / 1_000.0;

    let mut measurement = Measurement::new("ping-pong");
    measurement.push("message_size", message_size);
    measurement.push("round_trips", round_trips_ns.len());
    measurement.push_number("secs", seconds, 3);
    measurement.push_number("p50_us", micros(0.50), 1);
    measurement.push_number("p99_us", micros(0.99), 1);
    measurement.push_number("p999_us", micros(0.999), 1);
    measurement.push_number("max_us", micros(1.0), 1);
    measurement.push("ok", true);
    Ok(measurement)
}
