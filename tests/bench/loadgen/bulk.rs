//! Bulk throughput (workload 1) and the relay's CPU cost per GiB (workload 6).
//!
//! Each stream connects once the start gate opens, so every byte counted
//! crossed the relay inside the measured window. At the deadline every stream
//! stops moving data and waits, connection still open, while the relay's CPU
//! time is read; then the release gate opens and the streams finish: an
//! upload half-closes and waits for the sink's verdict (its window ends when
//! the sink has counted and checked every byte, less the time spent waiting
//! for the release), a download drops its connection.
//!
//! Reading the CPU time while the connections are open matters for relays
//! that fork a process per connection: socat's children exit with their
//! connection, and their CPU time is lost from view until (and unless) the
//! parent reaps them.

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

/// What one stream moved, and how long its window lasted.
struct StreamOutcome {
    bytes: u64,
    /// From the start gate to the last byte, without the wait for release.
    active: Duration,
}

/// The two signals a stream waits for: when to start, and when to finish
/// once the deadline has passed and the relay's CPU time has been read.
struct Gates {
    start: StartGate,
    release: StartGate,
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
    let gates = Gates { start: StartGate::new(), release: StartGate::new() };
    let before = watched.map(footprint::sample).transpose()?;
    let (start, at_deadline, outcomes) = thread::scope(|scope| {
        let mut workers = Vec::with_capacity(streams);
        for index in 0..streams {
            let spawned =
                thread::Builder::new().name(format!("bulk-{index}")).spawn_scoped(scope, || {
                    match direction {
                        Direction::Upload => upload(target, &gates),
                        Direction::Download => download(target, &gates),
                    }
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    gates.start.open(Start::Abort);
                    gates.release.open(Start::Abort);
                    return (Start::Abort, None, vec![Err(error)]);
                }
            }
        }
        let start = gates.start.open_for(duration);
        // Sleeping is the point here: the window is a fixed time.
        thread::sleep(duration);
        let at_deadline = watched.map(footprint::sample);
        gates.release.open_for(Duration::ZERO);
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
    if let Start::Abort = start {
        return Err(first_error(outcomes));
    }
    let outcomes = outcomes.into_iter().collect::<io::Result<Vec<_>>>()?;
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let longest = outcomes.iter().map(|o| o.active).max().unwrap_or(duration);
    let seconds = longest.as_secs_f64();

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

fn upload(target: SocketAddr, gates: &Gates) -> io::Result<StreamOutcome> {
    let Start::Go { started, deadline } = gates.start.wait() else {
        return Err(aborted());
    };
    let mut stream = exchange::connect(target)?;
    let block = pattern::block();
    let mut sent: u64 = 0;
    while Instant::now() < deadline {
        stream.write_all(block)?;
        sent += block.len() as u64;
    }
    let waiting = Instant::now();
    let Start::Go { .. } = gates.release.wait() else {
        return Err(aborted());
    };
    let waited = waiting.elapsed();
    stream.shutdown(Shutdown::Write)?;
    // The verdict is one short line; cap the read in case the relay sends
    // something else entirely.
    let mut verdict = String::new();
    (&mut stream).take(128).read_to_string(&mut verdict)?;
    let active = started.elapsed().saturating_sub(waited);
    let words: Vec<&str> = verdict.split_whitespace().collect();
    match words.as_slice() {
        ["ok", count] if count.parse() == Ok(sent) => Ok(StreamOutcome { bytes: sent, active }),
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

fn download(target: SocketAddr, gates: &Gates) -> io::Result<StreamOutcome> {
    let Start::Go { started, deadline } = gates.start.wait() else {
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
    let active = started.elapsed();
    if let Some(offset) = check.first_mismatch() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrong byte at offset {offset} of the download"),
        ));
    }
    // Keep the connection open until the relay's CPU time has been read.
    let Start::Go { .. } = gates.release.wait() else {
        return Err(aborted());
    };
    Ok(StreamOutcome { bytes: check.bytes_seen(), active })
}

fn aborted() -> io::Error {
    io::Error::other("the workload was aborted before it started")
}

/// The first error among `outcomes`, or a generic one.
fn first_error<T>(outcomes: Vec<io::Result<T>>) -> io::Error {
    outcomes.into_iter().find_map(Result::err).unwrap_or_else(aborted)
}
