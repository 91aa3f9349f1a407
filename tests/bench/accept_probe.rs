//! tests/bench/accept_probe.rs: how a pooled thread should get its next client, measured
//! with the real connection-rate workloads (hand-off or leader/followers, docs/benchmarks.md).
//!
//! Two minimal relays, identical but for that one step (std only, no timers, no limits):
//!
//! - `handoff` (tcprelay's shape): one thread blocks in `accept`, then hands the client to
//!   a parked thread through a channel. Two wake-ups per connection: the acceptor's (by
//!   the kernel) and the parked thread's (by the acceptor).
//! - `followers`: the parked threads themselves block in `accept` on the shared listener;
//!   the kernel wakes exactly one of them per connection (the listen queue's wake-up is
//!   exclusive), which handles it. One wake-up. When the last waiting thread takes a
//!   client it starts another, so a client never waits for a free thread.
//!
//! In both, the other direction runs on a thread from the same kind of pool (a parked
//! thread woken through a channel), and each direction is `io::copy` then
//! `shutdown(Write)`.
//!
//! Build and run (loopback only):
//!   rustc -O --edition 2024 tests/bench/accept_probe.rs -o target/accept_probe
//!   target/accept_probe handoff|followers UPSTREAM     (prints "listening on ADDR")
//! and point `cargo bench --bench relay -- run --workload connection-rate --target ADDR`
//! or `redis-benchmark -k 0` at it; `tests/bench/ab.sh` takes its path as a candidate.
#![forbid(unsafe_code)]

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// Threads parked on one shared channel, as many as needed, none started twice for a job.
struct Pool {
    jobs: Mutex<Sender<Job>>,
    receiver: Arc<Mutex<Receiver<Job>>>,
    idle: Arc<AtomicUsize>,
}

impl Pool {
    fn new() -> Pool {
        let (sender, receiver) = mpsc::channel();
        Pool {
            jobs: Mutex::new(sender),
            receiver: Arc::new(Mutex::new(receiver)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn run(&self, job: Job) {
        // Claim an idle thread if there is one, else start one that will then wait.
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !claimed {
            let (receiver, idle) = (Arc::clone(&self.receiver), Arc::clone(&self.idle));
            thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || loop {
                    let job = receiver.lock().expect("no pool thread panicked holding the queue").recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                    idle.fetch_add(1, Ordering::AcqRel);
                })
                .expect("spawn a pool thread");
        }
        self.jobs.lock().expect("no thread panicked holding the sender").send(job).expect("the pool is alive");
    }
}

fn relay(client: TcpStream, upstream: &str, pool: &Pool) {
    let _ = client.set_nodelay(true);
    let Ok(server) = TcpStream::connect(upstream) else { return };
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    let (done_tx, done_rx) = mpsc::channel();
    pool.run(Box::new(move || {
        copy_then_close_write(&server2, &client2);
        let _ = done_tx.send(());
    }));
    copy_then_close_write(&client, &server);
    let _ = done_rx.recv();
}

fn copy_then_close_write(from: &TcpStream, to: &TcpStream) {
    match io::copy(&mut &*from, &mut &*to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}

/// Threads blocked in `accept` on the shared listener, and the count of those waiting.
fn follower(listener: Arc<TcpListener>, upstream: Arc<str>, pool: Arc<Pool>, waiting: Arc<AtomicUsize>) {
    loop {
        let accepted = listener.accept();
        // The last one waiting starts a successor before handling its client.
        if waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            waiting.fetch_add(1, Ordering::AcqRel);
            let (l, u, p, w) = (Arc::clone(&listener), Arc::clone(&upstream), Arc::clone(&pool), Arc::clone(&waiting));
            thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || follower(l, u, p, w))
                .expect("spawn a follower");
        }
        if let Ok((client, _)) = accepted {
            relay(client, &upstream, &pool);
        }
        waiting.fetch_add(1, Ordering::AcqRel);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: accept_probe handoff|followers UPSTREAM");
        std::process::exit(2);
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    eprintln!("listening on {}", listener.local_addr().expect("local address"));
    let pool = Arc::new(Pool::new());
    let upstream: Arc<str> = Arc::from(upstream.as_str());
    match mode.as_str() {
        "handoff" => loop {
            if let Ok((client, _)) = listener.accept() {
                let (u, p) = (Arc::clone(&upstream), Arc::clone(&pool));
                pool.run(Box::new(move || relay(client, &u, &p)));
            }
        },
        "followers" => {
            let waiting = Arc::new(AtomicUsize::new(1));
            follower(Arc::new(listener), upstream, pool, waiting);
        }
        other => {
            eprintln!("accept_probe: unknown mode {other:?} (handoff or followers)");
            std::process::exit(2);
        }
    }
}
