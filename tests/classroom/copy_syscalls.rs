//! copy_syscalls copies MiB mebibytes from one TCP connection to another with
//! `std::io::copy`, all over loopback inside this one process, and reports
//! the time. Run it under strace to see HOW Rust copies: between two
//! `TcpStream`s, std has no splice path (it specialises files and pipes), so
//! `io::copy` is a loop of 8 KiB `recvfrom` + `sendto` through a buffer in
//! this process. Its Go twin is copy_syscalls.go.
//!
//! ```text
//! rustc -O --edition 2024 tests/classroom/copy_syscalls.rs -o target/lab/copy_syscalls_rs
//! strace -f -c -e trace=splice,read,write,recvfrom,sendto target/lab/copy_syscalls_rs 64
//! ```
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let mib: u64 = match arg.as_deref().map(str::parse::<u64>) {
        None => 64,
        Some(Ok(mib)) if mib > 0 => mib,
        _ => {
            eprintln!(
                "copy_syscalls: {:?} is not a positive number of MiB",
                arg.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    match run(mib) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy_syscalls: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mib: u64) -> io::Result<()> {
    let total = mib << 20;
    let from = TcpListener::bind("127.0.0.1:0")?;
    let to = TcpListener::bind("127.0.0.1:0")?;
    let (from_addr, to_addr) = (from.local_addr()?, to.local_addr()?);

    thread::scope(|s| {
        // A sender writes `total` bytes into the first connection...
        let sender = s.spawn(move || -> io::Result<()> {
            let mut c = TcpStream::connect(from_addr)?;
            let chunk = vec![0u8; 64 << 10];
            for _ in 0..total / chunk.len() as u64 {
                c.write_all(&chunk)?;
            }
            Ok(())
        });
        // ...and a receiver counts what comes out of the second one.
        let receiver = s.spawn(|| -> io::Result<u64> {
            let (mut c, _) = to.accept()?;
            let mut buf = vec![0u8; 64 << 10];
            let mut n = 0;
            loop {
                match c.read(&mut buf)? {
                    0 => return Ok(n),
                    k => n += k as u64,
                }
            }
        });

        let (mut src, _) = from.accept()?;
        let mut dst = TcpStream::connect(to_addr)?;
        let t0 = Instant::now();
        let copied = io::copy(&mut src, &mut dst)?; // the line under study: TcpStream to TcpStream
        dst.shutdown(Shutdown::Write)?;
        sender.join().expect("the sender does not panic")?;
        let received = receiver.join().expect("the receiver does not panic")?;
        let elapsed = t0.elapsed();
        if copied != total || received != total {
            return Err(io::Error::other(format!(
                "copied {copied} and received {received} bytes, expected {total}"
            )));
        }
        println!(
            "rust io::copy: {mib} MiB socket to socket in {elapsed:.0?}: {:.0} MiB/s",
            mib as f64 / elapsed.as_secs_f64()
        );
        Ok(())
    })
}
