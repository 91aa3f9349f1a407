//! Bulk throughput (workload 1) and the relay's CPU cost per GiB (workload 6).
//!
//! Each stream connects once the start gate opens, so every byte counted
//! crossed the relay inside the measured window. An upload writes the pattern
//! until the deadline, half-closes, and waits for the sink's verdict: the
//! window ends when the sink has counted and checked every byte. A download
//! reads and checks the source's pattern until the deadline, then drops the
//! connection.
//!
//! The relay's CPU time is read before the streams connect and again at the
//! deadline, while every stream is still open. Reading it after the streams
//! close would miss relays that fork a process per connection: socat's
//! children exit with their connection, and a parent that ignores SIGCHLD
//! never adds their CPU time to its own.

use crate::exchange;
use crate::footprint::{self, Watched};
use crate::pattern::{self, PatternCheck};
use crate::result_line::Measurement;
use crate::start_gate::{Start, StartGate};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

/// Which way the bytes flow through the relay.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// Client → relay → sink.
    Upload,
    /// Source → relay → client.
    Download,
}

/// What one stream moved, and when it was done.
struct StreamOutcome {
    bytes: u64,
    finished: Instant,
}

const GIB: f64 = (1u64 << 30) as f64;

/// Runs `streams` parallel streams for `duration`.
pub fn run(
    target: SocketAddr,
    direction: Direction,
    streams: usize,
    duration: Duration,
    watched: Option<Watched>,
) -> io::Result<Measurement> {
    let gate = StartGate::new();
    let before = watched.map(footprint::sample).transpose()?;
    let (start, at_deadline, outcomes) = thread::scope(|scope| {
        let mut workers = Vec::with_capacity(streams);
        for index in 0..streams {
            let spawned = thread::Builder::new()
                .name(format!("bulk-{index}"))
                .spawn_scoped(scope, || match direction {
                    Direction::Upload => upload(target, &gate),
                    Direction::Download => download(target, &gate),
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    gate.open(Start::Abort);
                    return (Start::Abort, None, vec![Err(error)]);
                }
            }
        }
        let start = gate.open_for(duration);
        let at_deadline = watched.map(|watched| {
            thread::sleep(duration);
            footprint::sample(watched)
        });
        let outcomes: Vec<io::Result<StreamOutcome>> = workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a bulk stream thread panicked")))
            })
            .collect();
        (start, at_deadline, outcomes)
    });
    let at_deadline = at_deadline.transpose()?;
    let Start::Go { started, .. } = start else {
        return Err(first_error(outcomes));
    };
    let outcomes = outcomes.into_iter().collect::<io::Result<Vec<_>>>()?;
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let finished = outcomes.iter().map(|o| o.finished).max().unwrap_or(started);
    let seconds = finished.duration_since(started).as_secs_f64();

    let name = match direction {
        Direction::Upload => "bulk-up",
        Direction::Download => "bulk-down",
    };
    let mut measurement = Measurement::new(name);
    measurement.push("streams", streams);
    measurement.push_number("secs", seconds, 3);
    measurement.push("bytes", bytes);
    measurement.push_number("gbit_s", bytes as f64 * 8.0 / seconds / 1e9, 3);
    if let (Some(before), Some(at_deadline)) = (before, at_deadline) {
        let cpu = at_deadline.cpu_seconds_since(&before);
        measurement.push_number("cpu_s", cpu, 2);
        measurement.push_number("cpu_s_per_gib", cpu / (bytes as f64 / GIB), 4);
    }
    measurement.push("ok", true);
    Ok(measurement)
}

fn upload(target: SocketAddr, gate: &StartGate) -> io::Result<StreamOutcome> {
    let Start::Go { deadline, .. } = gate.wait() else {
        return Err(aborted());
    };
    let mut stream = exchange::connect(target)?;
    let block = pattern::block();
    let mut sent: u64 = 0;
    while Instant::now() < deadline {
        stream.write_all(block)?;
        sent += block.len() as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    // The verdict is one short line; cap the read in case the relay sends
    // something else entirely.
    let mut verdict = String::new();
    (&mut stream).take(128).read_to_string(&mut verdict)?;
    let finished = Instant::now();
    let words: Vec<&str> = verdict.split_whitespace().collect();
    match words.as_slice() {
        ["ok", count] if count.parse() == Ok(sent) => Ok(StreamOutcome {
            bytes: sent,
            finished,
        }),
        ["mismatch", offset, _] => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the sink found a wrong byte at offset {offset} of the upload"),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sent {sent} bytes but the sink answered {verdict:?}"),
        )),
    }
}

fn download(target: SocketAddr, gate: &StartGate) -> io::Result<StreamOutcome> {
    let Start::Go { deadline, .. } = gate.wait() else {
        return Err(aborted());
    };
    let mut stream = exchange::connect(target)?;
    let mut buffer = vec![0; 256 * 1024];
    let mut check = PatternCheck::new();
    while Instant::now() < deadline {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the download ended after {} bytes", check.bytes_seen()),
            ));
        }
        check.feed(&buffer[..n]);
    }
    let finished = Instant::now();
    if let Some(offset) = check.first_mismatch() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrong byte at offset {offset} of the download"),
        ));
    }
    Ok(StreamOutcome {
        bytes: check.bytes_seen(),
        finished,
    })
}

fn aborted() -> io::Error {
    io::Error::other("the workload was aborted before it started")
}

/// The first error among `outcomes`, or a generic one.
fn first_error<T>(outcomes: Vec<io::Result<T>>) -> io::Error {
    outcomes
        .into_iter()
        .find_map(Result::err)
        .unwrap_or_else(aborted)
}
