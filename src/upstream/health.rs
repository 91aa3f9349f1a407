//! Active health checks (`--health-check DUR`): one thread per route connects to each
//! upstream every DUR and decides which are up, so that clients skip a dead upstream before
//! any of them has waited on it.
//!
//! An upstream goes *down* after [`FAILURES_TO_GO_DOWN`] failed checks in a row and comes
//! back *up* after [`SUCCESSES_TO_COME_UP`] good ones in a row (HAProxy's defaults are 3 and
//! 2 too): one lost SYN does not take an upstream out, and a flapping one must hold steady
//! before it gets clients again. Every upstream starts up. Each change is logged once. A
//! check is a plain TCP connect, closed at once, within the route's connect timeout.
//!
//! Checks only reorder: a down upstream is tried after the others, and still tried when all
//! are down (see [`crate::upstream`]). With checks off, the passive back-off after a
//! client's failed connect is all there is; with checks on, it still applies as well.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Upstreams;
use crate::ops::observe::Observer;

/// Failed checks in a row that take an up upstream down.
pub const FAILURES_TO_GO_DOWN: u32 = 3;
/// Good checks in a row that bring a down upstream back up.
pub const SUCCESSES_TO_COME_UP: u32 = 2;

/// The run of check results for one upstream, and whether it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streak {
    up: bool,
    /// Results in a row that disagree with `up` (failures while up, successes while down).
    against: u32,
}

impl Default for Streak {
    fn default() -> Streak {
        Streak { up: true, against: 0 }
    }
}

impl Streak {
    /// Adds one check result; returns the new state if it changed.
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        if passed == self.up {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = if self.up { FAILURES_TO_GO_DOWN } else { SUCCESSES_TO_COME_UP };
        if self.against < needed {
            return None;
        }
        self.up = passed;
        self.against = 0;
        Some(self.up)
    }

    /// How many results in a row it takes to reach state `up`.
    fn needed_for(up: bool) -> u32 {
        if up { SUCCESSES_TO_COME_UP } else { FAILURES_TO_GO_DOWN }
    }
}

/// Checks every upstream every `every`, each within `timeout`, until `stop` is dropped (or
/// sent to). Reports each failed check and each change of state to `observer`.
pub fn run(
    upstreams: &Upstreams,
    observer: &Observer,
    every: Duration,
    timeout: Duration,
    stop: &mpsc::Receiver<()>,
) {
    let mut streaks = vec![Streak::default(); upstreams.len()];
    loop {
        let round = Instant::now();
        for (index, streak) in streaks.iter_mut().enumerate() {
            let result = upstreams.check(index, timeout);
            let metrics = upstreams.metrics(index);
            if let Err(error) = &result {
                observer.check_failed(metrics, error);
            }
            if let Some(up) = streak.record(result.is_ok()) {
                upstreams.set_checked_state(index, up);
                let error = result.err();
                observer.upstream_health_changed(metrics, up, Streak::needed_for(up), error);
            }
            if !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                return;
            }
        }
        let next_round = round + every;
        match stop.recv_timeout(next_round.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// The running health-check thread of one route. Dropping it stops the thread and waits
/// for it: at most one check's connect timeout, since a check in progress is not cut.
#[derive(Debug)]
pub struct HealthCheckThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HealthCheckThread {
    /// Starts `checks` on a thread of its own (`tcprelay-health`), handing it the receiver
    /// that says when to stop: it disconnects when this handle is dropped.
    ///
    /// # Errors
    /// The OS's error if the thread cannot be created.
    pub fn start(
        checks: impl FnOnce(&mpsc::Receiver<()>) + Send + 'static,
    ) -> io::Result<HealthCheckThread> {
        let (stop, stopped) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("tcprelay-health".to_string())
            .spawn(move || checks(&stopped))?;
        Ok(HealthCheckThread { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for HealthCheckThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A check that panicked (a bug) has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_three_failures_in_a_row_up_after_two_successes() {
        let mut streak = Streak::default();
        assert_eq!(streak.record(false), None);
        assert_eq!(streak.record(false), None);
        assert_eq!(streak.record(true), None, "a success breaks the run");
        assert_eq!(streak.record(false), None);
        assert_eq!(streak.record(false), None);
        assert_eq!(streak.record(false), Some(false), "the third failure in a row");
        assert_eq!(streak.record(false), None, "already down");
        assert_eq!(streak.record(true), None);
        assert_eq!(streak.record(false), None, "a failure breaks the run");
        assert_eq!(streak.record(true), None);
        assert_eq!(streak.record(true), Some(true), "the second success in a row");
        assert_eq!(streak.record(true), None);
    }
}
