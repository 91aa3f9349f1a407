//! spawn_cost starts N threads that each park on a barrier, the way
//! tcprelay's copy threads sit blocked in `read`, and reports what that cost:
//! time per thread, virtual memory reserved for stacks, resident memory.
//! Its Go twin is spawn_cost.go; docs/go-to-rust.md ("The honest
//! differences") quotes both.
//!
//! ```text
//! rustc -O --edition 2024 tests/classroom/spawn_cost.rs -o target/lab/spawn_cost
//! target/lab/spawn_cost 10000        # std's default stack for spawned threads: 2 MiB
//! target/lab/spawn_cost 10000 64     # 64 KiB stacks, tcprelay's default (--stack-size)
//! ```
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.first().map(|arg| (arg, arg.parse::<usize>()));
    let n = match count {
        None => 10_000,
        Some((_, Ok(n))) if n > 0 => n,
        Some((arg, _)) => {
            eprintln!("spawn_cost: {arg:?} is not a positive count");
            return ExitCode::from(2);
        }
    };
    let stack_kib = match args.get(1).map(|arg| (arg, arg.parse::<usize>())) {
        None => None,
        Some((_, Ok(kib))) if kib > 0 => Some(kib),
        Some((arg, _)) => {
            eprintln!("spawn_cost: {arg:?} is not a positive stack size in KiB");
            return ExitCode::from(2);
        }
    };

    let rss_before = status_kib("VmRSS");
    let virtual_before = status_kib("VmSize");

    // Every thread waits here until main has measured; main is the n+1th party.
    let release = Arc::new(Barrier::new(n + 1));
    let (started_tx, started_rx) = mpsc::channel();
    let t0 = Instant::now();
    let mut threads = Vec::with_capacity(n);
    for _ in 0..n {
        let release = Arc::clone(&release);
        let started_tx = started_tx.clone();
        // Builder, not thread::spawn: running out of threads is an error to report, not a panic.
        let mut builder = thread::Builder::new();
        if let Some(kib) = stack_kib {
            builder = builder.stack_size(kib * 1024);
        }
        let spawned = builder.spawn(move || {
            let _ = started_tx.send(());
            release.wait(); // parked, like a thread blocked in TcpStream::read
        });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                eprintln!("spawn_cost: thread {} of {n} could not start: {e}", threads.len() + 1);
                return ExitCode::FAILURE; // the threads already started stay parked; exiting ends them
            }
        }
    }
    drop(started_tx);
    for _ in 0..n {
        started_rx.recv().expect("every started thread sends once before parking");
    }
    let elapsed = t0.elapsed();

    let rss_after = status_kib("VmRSS");
    let virtual_after = status_kib("VmSize");
    release.wait();
    for handle in threads {
        handle.join().expect("the parked threads do not panic");
    }

    let n_f = n as f64;
    let stack = match stack_kib {
        Some(kib) => format!("{kib} KiB stacks"),
        None => "std's default stacks".to_string(),
    };
    let each = |before: Option<i64>, after: Option<i64>, what: &str| match (before, after) {
        (Some(before), Some(after)) => {
            let grew = after - before;
            format!("{what} grew by {grew} KiB: {:.1} KiB each", grew as f64 / n_f)
        }
        // macOS and Windows have no /proc: say so rather than print a 0 that looks measured.
        _ => format!("{what}: not measured (no /proc/self/status on this system)"),
    };
    let report = format!(
        "threads ({stack}): {n} started and parked in {elapsed:.1?}: {:.0} ns each\n\
         {} (reserved: stacks, and glibc's malloc arenas)\n\
         {}\n",
        elapsed.as_nanos() as f64 / n_f,
        each(virtual_before, virtual_after, "virtual memory"),
        each(rss_before, rss_after, "resident memory"),
    );
    // Not println!: it panics when stdout is a closed pipe (`spawn_cost | head -1`).
    if let Err(e) = io::stdout().write_all(report.as_bytes()) {
        eprintln!("spawn_cost: cannot write the report: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Reads one "Name:   123 kB" line of /proc/self/status (Linux only); `None` where there
/// is no such file or line.
fn status_kib(name: &str) -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next()
}
