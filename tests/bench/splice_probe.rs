//! Would splicing through a pipe beat a plain `io::copy`? A probe, not a relay.
//!
//! std's `io::copy` uses `splice(2)` when one side is a pipe, so a relay can route each
//! direction socket → `std::io::pipe()` → socket and let the kernel move the bytes without
//! copying them through user space, at the price of two more threads per connection (one
//! per pipe end). This program measures both copy paths on loopback, same client, same sink:
//!
//! 1. bulk: one stream for a fixed time, Gbit/s;
//! 2. small messages: a client writes 5 bytes and waits for the upstream to see them, 20
//!    times; a copy path that does not pass small writes on promptly shows up here.
//!
//! Run: `cargo bench --bench splice_probe` (about 15 s). Results go in docs/benchmarks.md.
#![forbid(unsafe_code)]
// The probe needs `io::pipe` (Rust 1.87); the relay itself builds with the crate's 1.85.
#![allow(clippy::incompatible_msrv)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How the probe relay copies one direction.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `io::copy(&mut socket, &mut socket)`: a read/write loop with an 8 KiB buffer.
    Plain,
    /// `io::copy(&mut socket, &mut pipe_writer)` and `io::copy(&mut pipe_reader, &mut socket)`
    /// on two threads: std splices both.
    Pipe,
}

/// Copies `from` → `to` by `path`, then half-closes `to`.
fn copy_one_way(from: TcpStream, to: TcpStream, path: Path) {
    match path {
        Path::Plain => {
            let _ = io::copy(&mut &from, &mut &to);
        }
        Path::Pipe => {
            let Ok((mut pipe_reader, mut pipe_writer)) = io::pipe() else { return };
            let into_pipe = thread::spawn(move || {
                let _ = io::copy(&mut &from, &mut pipe_writer);
                // Dropping the writer ends the pipe: the other thread sees EOF.
            });
            let _ = io::copy(&mut pipe_reader, &mut &to);
            let _ = into_pipe.join();
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A relay to `upstream` that copies with `path`; serves until the process ends.
fn start_relay(upstream: SocketAddr, path: Path) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(up) = TcpStream::connect(upstream) else { continue };
            let (Ok(client2), Ok(up2)) = (client.try_clone(), up.try_clone()) else { continue };
            thread::spawn(move || copy_one_way(client, up, path));
            thread::spawn(move || copy_one_way(up2, client2, path));
        }
    });
    Ok(addr)
}

/// An upstream that reads everything and reports each read's arrival time on `arrivals`.
fn start_sink(arrivals: mpsc::Sender<(Instant, usize)>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let arrivals = arrivals.clone();
            thread::spawn(move || {
                let mut buffer = vec![0; 256 * 1024];
                while let Ok(n @ 1..) = (&stream).read(&mut buffer) {
                    if arrivals.send((Instant::now(), n)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn bulk_gbit_s(
    relay: SocketAddr,
    arrivals: &mpsc::Receiver<(Instant, usize)>,
    secs: u64,
) -> io::Result<f64> {
    let client = TcpStream::connect(relay)?;
    let chunk = vec![7u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let writer = thread::spawn(move || {
        while Instant::now() < deadline {
            if (&client).write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
    });
    let started = Instant::now();
    let mut bytes = 0u64;
    while let Ok((at, n)) = arrivals.recv_timeout(Duration::from_secs(2)) {
        if at > deadline {
            break;
        }
        bytes += n as u64;
    }
    let _ = writer.join();
    while arrivals.try_recv().is_ok() {} // drain what was still in flight
    Ok(bytes as f64 * 8.0 / started.elapsed().min(Duration::from_secs(secs)).as_secs_f64() / 1e9)
}

/// Sends 5 bytes at a time and waits (up to `limit`) for the upstream to see them;
/// returns each wait, `None` for one that did not arrive in time.
fn small_message_waits(
    relay: SocketAddr,
    arrivals: &mpsc::Receiver<(Instant, usize)>,
    limit: Duration,
) -> io::Result<Vec<Option<Duration>>> {
    let client = TcpStream::connect(relay)?;
    client.set_nodelay(true)?;
    let mut waits = Vec::new();
    for _ in 0..20 {
        let sent = Instant::now();
        (&client).write_all(b"hello")?;
        let mut seen = 0;
        let mut wait = None;
        while seen < 5 {
            match arrivals.recv_timeout(limit.saturating_sub(sent.elapsed())) {
                Ok((at, n)) => {
                    seen += n;
                    wait = Some(at - sent);
                }
                Err(_) => {
                    wait = None;
                    break;
                }
            }
        }
        waits.push(wait);
        if wait.is_none() {
            break; // the connection is stuck; the next write would only queue behind it
        }
    }
    Ok(waits)
}

fn main() -> io::Result<()> {
    if std::env::args().any(|arg| arg == "--bench") || std::env::args().len() == 1 {
        for path in [Path::Plain, Path::Pipe, Path::Plain, Path::Pipe] {
            let (report, arrivals) = mpsc::channel();
            let relay = start_relay(start_sink(report)?, path)?;
            let gbit_s = bulk_gbit_s(relay, &arrivals, 3)?;
            let waits = small_message_waits(relay, &arrivals, Duration::from_secs(3))?;
            let arrived: Vec<Duration> = waits.iter().flatten().copied().collect();
            let stuck = waits.len() - arrived.len();
            let worst = arrived.iter().max().copied().unwrap_or_default();
            println!(
                "{path:?}: bulk {gbit_s:.1} Gbit/s; 5-byte messages: {} of {} arrived within 3 s \
                 (slowest {worst:?}){}",
                arrived.len(),
                waits.len(),
                if stuck > 0 { ", then one never came: the connection is stuck" } else { "" },
            );
        }
    }
    Ok(())
}
