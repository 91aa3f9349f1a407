//! Idle connections (workload 5): hold N connections open through the relay,
//! check that a sample still carries data both ways, and read what the relay
//! holds: memory and threads, in total and per connection, and what the kernel
//! holds beside it (kernel stacks and slab, from /proc/meminfo).
//!
//! `idle-after-bulk` first moves [`PULL_BYTES`] each way through every fourth
//! connection, then lets them all sit idle: a relay that grows buffers for bulk
//! must give them back, or this shows it.
//!
//! After the bulk, the figures are read [`SETTLE`] after the last byte moved, so a
//! relay that gives large buffers back once a connection has been quiet for a while
//! (tcprelay: after one timer tick, 5 s with the defaults) is measured idle, not busy.
//!
//! Every connection makes one exchange as it opens. A completed `connect`
//! only means the kernel finished the handshake into the relay's backlog; the
//! echo proves the relay accepted it and dialled its own upstream connection,
//! so the footprint read afterwards really covers N relayed connections.
//! Connections open in batches (connect a batch, send on each, then read each)
//! because the quiet echo upstream answers once per sweep, not at once.

use crate::exchange::{self, Exchange};
use crate::footprint::{self, Footprint, KernelMemory, Watched};
use crate::pattern::{self, PatternCheck};
use crate::result_line::Measurement;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Connections opened before their first exchange is read back. Below the
/// default listen backlog (128 on older std, 4096 here), so no SYN is dropped.
const BATCH: usize = 100;

/// About this many evenly spread connections are checked after all are open.
const SAMPLE: usize = 100;

/// How long the relay may take to end its threads after every client closed.
const WIND_DOWN: Duration = Duration::from_secs(10);

/// Small messages: an idle connection's buffers should stay small.
const MESSAGE_SIZE: usize = 16;

/// How long the connections sit idle before the footprint is read: longer than tcprelay's
/// longest timer tick (5 s), after which a quiet copy gives its buffer back.
pub const SETTLE: Duration = Duration::from_millis(6_500);

/// Bytes each way through every fourth connection in `idle-after-bulk`: a quarter of
/// 2,000 connections first pull 4 MiB each (docs/benchmarks.md, the memory goal).
pub const PULL_BYTES: u64 = 4 << 20;

/// Connections that move their bulk bytes at the same time.
const PULLING_AT_ONCE: usize = 8;

/// Opens and holds `connections` connections to `target`; with `after_bulk`, every fourth
/// moves [`PULL_BYTES`] each way first.
pub fn run(
    target: SocketAddr,
    connections: usize,
    after_bulk: bool,
    watched: Option<Watched>,
) -> io::Result<Measurement> {
    let name = if after_bulk { "idle-after-bulk" } else { "idle" };
    let before = watched.map(settled_footprint).transpose()?;
    let kernel_before = footprint::kernel_memory()?;
    let opening = Instant::now();
    let mut held = Vec::with_capacity(connections);
    if let Err(failure) = open_all(target, connections, &mut held) {
        // How far it got is the interesting part of this failure: it is
        // where a relay runs out of descriptors, threads or memory maps.
        let mut measurement = Measurement::new(name);
        measurement.push("connections", connections);
        measurement.push("opened", failure.proven);
        return Ok(measurement.fail(&failure.error));
    }
    let open_seconds = opening.elapsed().as_secs_f64();
    if after_bulk && let Err(error) = pull_through_every_fourth(&held) {
        let mut measurement = Measurement::new(name);
        measurement.push("connections", connections);
        return Ok(measurement.fail(&error));
    }
    if after_bulk {
        thread::sleep(SETTLE);
    }
    let holding = watched.map(footprint::sample).transpose()?;
    let kernel_holding = footprint::kernel_memory()?;
    let (sample_ok, sample_total) = check_sample(&mut held);
    drop(held);
    let after_close = match (watched, before) {
        (Some(watched), Some(before)) => Some(wait_for_threads(watched, before.threads)?),
        _ => None,
    };

    let mut measurement = Measurement::new(name);
    measurement.push("connections", connections);
    measurement.push_number("open_secs", open_seconds, 2);
    let per_connection = |a: u64, b: u64| (b as f64 - a as f64) / connections as f64;
    let kernel_kib = |k: KernelMemory| k.kernel_stack_kib + k.slab_kib;
    measurement.push_number(
        "kernel_stack_kib_per_conn",
        per_connection(kernel_before.kernel_stack_kib, kernel_holding.kernel_stack_kib),
        2,
    );
    measurement.push_number(
        "slab_kib_per_conn",
        per_connection(kernel_before.slab_kib, kernel_holding.slab_kib),
        2,
    );
    // RSS + kernel stacks + slab: what the machine gives each connection. Without a relay
    // process (direct), it is the endpoints' sockets alone: the baseline of this row.
    let rss = |f: Option<Footprint>| f.map_or(0, |f| f.rss_kib);
    measurement.push_number(
        "system_kib_per_conn",
        per_connection(
            rss(before) + kernel_kib(kernel_before),
            rss(holding) + kernel_kib(kernel_holding),
        ),
        2,
    );
    measurement.push("sample_ok", sample_ok);
    measurement.push("sample_total", sample_total);
    if let (Some(before), Some(holding)) = (before, holding) {
        measurement.push("processes", holding.processes);
        measurement.push("threads_before", before.threads);
        measurement.push("threads_held", holding.threads);
        measurement.push_number(
            "threads_per_conn",
            per_connection(before.threads, holding.threads),
            2,
        );
        measurement.push("rss_kib_before", before.rss_kib);
        measurement.push("rss_kib_held", holding.rss_kib);
        measurement.push_number(
            "rss_kib_per_conn",
            per_connection(before.rss_kib, holding.rss_kib),
            2,
        );
        measurement.push_number(
            "pss_kib_per_conn",
            per_connection(before.pss_kib, holding.pss_kib),
            2,
        );
    }
    if let Some(after_close) = after_close {
        measurement.push("threads_after_close", after_close.threads);
    }
    measurement.push("ok", sample_ok == sample_total);
    Ok(measurement)
}

/// Opens connections into `held` until it holds `count`, each proven by one
/// echo. The connections stay in `held` until the caller drops them.
fn open_all(
    target: SocketAddr,
    count: usize,
    held: &mut Vec<TcpStream>,
) -> Result<(), OpeningFailure> {
    let mut exchange = Exchange::new(MESSAGE_SIZE);
    while held.len() < count {
        let first = held.len();
        let batch_end = (first + BATCH).min(count);
        for index in first..batch_end {
            let sent = exchange::connect(target).and_then(|mut stream| {
                exchange.send(&mut stream, index as u64)?;
                Ok(stream)
            });
            match sent {
                Ok(stream) => held.push(stream),
                Err(error) => return Err(OpeningFailure::at(first, index, count, error)),
            }
        }
        for (index, stream) in held.iter_mut().enumerate().skip(first) {
            if let Err(error) = exchange.receive(stream, index as u64) {
                return Err(OpeningFailure::at(index, index, count, error));
            }
        }
    }
    Ok(())
}

/// Moves [`PULL_BYTES`] each way through every fourth held connection, a few at a time:
/// the client writes the bulk pattern on one thread and reads the echo back on another,
/// checking every byte, so both of the relay's directions carry bulk.
fn pull_through_every_fourth(held: &[TcpStream]) -> io::Result<()> {
    let chosen: Vec<(usize, &TcpStream)> = held.iter().enumerate().step_by(4).collect();
    for group in chosen.chunks(PULLING_AT_ONCE) {
        thread::scope(|scope| {
            let pulls: Vec<_> = group
                .iter()
                .map(|&(index, stream)| {
                    scope.spawn(move || {
                        pull(stream).map_err(|error| {
                            io::Error::new(
                                error.kind(),
                                format!("bulk through idle connection {}: {error}", index + 1),
                            )
                        })
                    })
                })
                .collect();
            pulls.into_iter().try_for_each(|pull| {
                pull.join().map_err(|_| io::Error::other("a bulk thread panicked"))?
            })
        })?;
    }
    Ok(())
}

/// Writes [`PULL_BYTES`] of the pattern through `stream` and reads them back.
fn pull(stream: &TcpStream) -> io::Result<()> {
    let mut writer = stream;
    let mut reader = stream;
    thread::scope(|scope| {
        let sending = scope.spawn(move || {
            let block = pattern::block();
            let mut left = PULL_BYTES;
            while left > 0 {
                let chunk = &block[..(left.min(block.len() as u64) as usize)];
                writer.write_all(chunk)?;
                left -= chunk.len() as u64;
            }
            Ok::<_, io::Error>(())
        });
        let mut check = PatternCheck::new();
        let mut buffer = vec![0; 64 * 1024];
        while check.bytes_seen() < PULL_BYTES {
            let want = (PULL_BYTES - check.bytes_seen()).min(buffer.len() as u64) as usize;
            match reader.read(&mut buffer[..want])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => check.feed(&buffer[..read]),
            }
        }
        sending.join().map_err(|_| io::Error::other("a bulk sender panicked"))??;
        match check.first_mismatch() {
            None => Ok(()),
            Some(offset) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("echoed bulk differs at byte {offset}"),
            )),
        }
    })
}

/// Why opening stopped, and how many connections had been proven by then.
struct OpeningFailure {
    proven: usize,
    error: io::Error,
}

impl OpeningFailure {
    /// Connection number `index` (of `count`) failed; the first `proven`
    /// had echoed.
    fn at(proven: usize, index: usize, count: usize, error: io::Error) -> OpeningFailure {
        OpeningFailure { proven, error: opening_error(index, count, error) }
    }
}

fn opening_error(index: usize, count: usize, error: io::Error) -> io::Error {
    let hint = if error.raw_os_error() == Some(24) {
        " (out of file descriptors: raise `ulimit -n`)"
    } else {
        ""
    };
    io::Error::new(
        error.kind(),
        format!("opening idle connection {} of {count}: {error}{hint}", index + 1),
    )
}

/// Exchanges once on about `SAMPLE` evenly spread connections: all sends
/// first, then all replies. Returns (succeeded, checked).
fn check_sample(held: &mut [TcpStream]) -> (usize, usize) {
    let step = (held.len() / SAMPLE).max(1);
    let mut exchange = Exchange::new(MESSAGE_SIZE);
    let marker = 1 << 32;
    let mut sent = Vec::new();
    for index in (0..held.len()).step_by(step) {
        if exchange.send(&mut held[index], marker + index as u64).is_ok() {
            sent.push(index);
        }
    }
    let total = held.len().div_ceil(step);
    let ok = sent
        .into_iter()
        .filter(|&index| exchange.receive(&mut held[index], marker + index as u64).is_ok())
        .count();
    (ok, total)
}

/// The baseline footprint, read once the thread count has stopped changing:
/// threads of an earlier workload (or of the relay's start-up) may still be
/// ending, and counting them as baseline would make the per-connection
/// figures too small. Gives up waiting after a second.
fn settled_footprint(watched: Watched) -> io::Result<Footprint> {
    let give_up = Instant::now() + Duration::from_secs(1);
    let mut previous = footprint::sample(watched)?;
    loop {
        thread::sleep(Duration::from_millis(50));
        let now = footprint::sample(watched)?;
        if now.threads == previous.threads || Instant::now() >= give_up {
            return Ok(now);
        }
        previous = now;
    }
}

/// Polls the relay until its thread count is back to `baseline` or
/// `WIND_DOWN` passes; returns the last footprint read. Polling is right
/// here: the relay is another process with no way to signal us.
fn wait_for_threads(watched: Watched, baseline: u64) -> io::Result<Footprint> {
    let give_up = Instant::now() + WIND_DOWN;
    loop {
        let now = footprint::sample(watched)?;
        if now.threads <= baseline || Instant::now() >= give_up {
            return Ok(now);
        }
        thread::sleep(Duration::from_millis(50));
    }
}
