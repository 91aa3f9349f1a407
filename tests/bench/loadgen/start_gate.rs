//! A start signal for the client threads of one workload.
//!
//! Every thread connects (or gets ready) first and then waits at the gate, so
//! the measured window starts for all of them at once. Unlike a `Barrier`,
//! the gate can also be opened with `Abort` when the main thread could not
//! start every worker, so the ones already waiting return instead of hanging.

use std::sync::{Condvar, Mutex, PoisonError};
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
