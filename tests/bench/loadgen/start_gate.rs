//! A start signal for the client threads of one workload.
//!
//! Every thread connects (or gets ready) first and then waits at the gate, so
//! the measured window starts for all of them at once. Unlike a `Barrier`,
//! the gate can also be opened with `Abort` when the main thread could not
//! start every worker, so the ones already waiting return instead of hanging.

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How the gate was opened.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// Run until this instant.
    Go {
        /// When the measured window began.
        started: Instant,
        /// When each worker stops starting new work.
        deadline: Instant,
    },
    /// Setup failed elsewhere: do no work.
    Abort,
}

/// The gate: closed until `open` is called once.
pub struct StartGate {
    state: Mutex<Option<Start>>,
    opened: Condvar,
}

/// A worker that waits longer than this for the gate assumes the main thread
/// is gone and gives up, so no thread can wait forever.
const LONGEST_WAIT: Duration = Duration::from_secs(120);

impl StartGate {
    /// A closed gate.
    pub fn new() -> StartGate {
        StartGate { state: Mutex::new(None), opened: Condvar::new() }
    }

    /// Opens the gate for every waiting and future worker.
    pub fn open(&self, start: Start) {
        // The state is a plain Option: a panic elsewhere cannot leave it half
        // written, so a poisoned lock is still safe to use.
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = Some(start);
        self.opened.notify_all();
    }

    /// Opens the gate with a window of `duration` starting now.
    pub fn open_for(&self, duration: Duration) -> Start {
        let started = Instant::now();
        let start = Start::Go { started, deadline: started + duration };
        self.open(start);
        start
    }

    /// Waits (bounded) until the gate is opened.
    pub fn wait(&self) -> Start {
        let guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .opened
            .wait_timeout_while(guard, LONGEST_WAIT, |state| state.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.unwrap_or(Start::Abort)
    }
}

/// Starts `workers` threads named `NAME-INDEX`, each running `work` (which waits at the
/// gate), opens the gate for `duration` once all are started, and joins them. Returns when
/// the window started and each thread's result, in order.
///
/// If a thread cannot be started, the gate opens with `Abort` so the ones already waiting
/// return, and the spawn error is returned; a panicked worker is an error too.
pub fn run_workers<T: Send>(
    name: &str,
    workers: usize,
    duration: Duration,
    work: impl Fn(&StartGate) -> T + Sync,
) -> io::Result<(Instant, Vec<T>)> {
    let gate = StartGate::new();
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for index in 0..workers {
            let spawned = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn_scoped(scope, || work(&gate));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    gate.open(Start::Abort);
                    return Err(error);
                }
            }
        }
        let started = Instant::now();
        gate.open(Start::Go { started, deadline: started + duration });
        let mut results = Vec::with_capacity(workers);
        for handle in handles {
            let result = handle.join();
            results
                .push(result.map_err(|_| io::Error::other(format!("a {name} worker panicked")))?);
        }
        Ok((started, results))
    })
}
