//! The resident memory of one thread blocked on a socket: the floor under a relay with a
//! thread per direction.
//!
//! Starts 1,000 threads (64 KiB stacks, as tcprelay) that each block in one way and prints the
//! growth of the process's resident memory per thread:
//! - `read`: blocked in `read` with a 16-byte buffer (the least a copy thread can be);
//! - `copy`: blocked inside `io::copy` (its 8 KiB buffer is in the frame, so the frames
//!   below it land on further pages).
//!
//! Run: `rustc -O --edition 2024 tests/bench/thread_floor.rs -o target/thread_floor`, then
//! `target/thread_floor read` and `target/thread_floor copy`. Used in docs/benchmarks.md.
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

const THREADS: usize = 1000;

fn resident_kib() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"));
    line.and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/self/status"))
}

fn main() -> io::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode != "read" && mode != "copy" {
        eprintln!("usage: thread_floor read|copy");
        std::process::exit(2);
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..THREADS {
        clients.push(TcpStream::connect(addr)?);
        servers.push(listener.accept()?.0);
    }
    let before = resident_kib()?;
    for server in servers {
        let copy = mode == "copy";
        thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            if copy {
                let _ = io::copy(&mut &server, &mut io::sink());
            } else {
                let _ = (&server).read(&mut [0; 16]);
            }
        })?;
    }
    thread::sleep(Duration::from_millis(500)); // let every thread reach its blocking call
    let per_thread = (resident_kib()? - before) as f64 / THREADS as f64;
    println!("{mode}: {per_thread:.1} KiB resident per blocked thread");
    std::process::exit(0) // the threads stay blocked; exiting ends them
}
