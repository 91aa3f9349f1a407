//! Active health checks (`--health-check DUR`): each upstream is connected to every DUR, on
//! a timer of its own, so that clients skip a dead upstream before any of them has waited
//! on it.
//!
//! An upstream goes *down* after [`FAILURES_TO_GO_DOWN`] failed checks in a row and comes
//! back *up* after [`SUCCESSES_TO_COME_UP`] good ones in a row (HAProxy's defaults are 3 and
//! 2 too): one lost SYN does not take an upstream out, and a flapping one must hold steady
//! before it gets clients again. Every upstream starts up. Each change is logged once. A
//! check is a plain TCP connect, closed at once.
//!
//! **In parallel, each bounded.** As in HAProxy, where each server has its own check timer,
//! one upstream's check never waits for another's: a route checks its upstreams on up to
//! [`MAX_CHECK_THREADS`] threads, one per upstream (beyond that many upstreams, each thread
//! takes its turn over several). A check gives up after [`check_timeout`]: the interval or
//! the connect timeout, whichever is shorter, as HAProxy bounds a check by `inter` when
//! `timeout check` is not set. So a blackholed upstream is marked down after three
//! intervals, not three connect timeouts, and it cannot delay the others.
//!
//! **Never waited on.** Stopping the checks (dropping the [`HealthChecks`]) only tells
//! their threads to leave, and nothing joins them: a reload that replaces them, a drain
//! or a stop goes on at once, and the process exits without waiting for a check in progress.
//! std cannot cut short a blocking `connect`, so joining would mean waiting for it: up to
//! [`check_timeout`], 10 s with `--health-check 10s` and a blackholed upstream. Instead each
//! thread owns all it uses (the route, its share, the stop signal) and ends by itself when its
//! check does, reporting nothing more; when the process exits first, the exit ends it.
//!
//! Checks only reorder: a down upstream is tried after the others, and still tried when all
//! are down (see [`crate::upstream`]). With checks off, the passive back-off after a
//! client's failed connect is all there is; with checks on, it still applies as well.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::Upstreams;
use crate::lock::lock;

/// Failed checks in a row that take an up upstream down.
pub const FAILURES_TO_GO_DOWN: u32 = 3;
/// Good checks in a row that bring a down upstream back up.
pub const SUCCESSES_TO_COME_UP: u32 = 2;

/// The most threads one route checks its upstreams on. Up to this many upstreams, each has
/// a thread (and a timer) of its own; beyond it, upstream `i` shares thread `i % 8` and
/// waits its turn there. Eight keeps a route of hundreds of upstreams to a few small stacks.
pub const MAX_CHECK_THREADS: usize = 8;

/// The stack of a checking thread: it resolves a name and connects, as a connection's
/// first thread does with its default 64 KiB.
pub const CHECK_STACK_SIZE: usize = 64 * 1024;

/// How long one check may take: the interval `every`, or the route's connect timeout if
/// that is shorter (a client would not wait longer either). HAProxy bounds a check by its
/// interval (`inter`) unless `timeout check` says otherwise.
pub fn check_timeout(every: Duration, connect_timeout: Duration) -> Duration {
    every.min(connect_timeout)
}

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

/// Checks the upstreams numbered `share` every `every`, each within `timeout`, one after
/// the other, until `stop` is signalled. Reports each failed check and each change of state
/// to the route's events.
pub fn run(
    upstreams: &Upstreams,
    share: &[usize],
    every: Duration,
    timeout: Duration,
    stop: &StopSignal,
) {
    let observer = &*upstreams.events;
    let mut streaks = vec![Streak::default(); share.len()];
    loop {
        let round = Instant::now();
        for (&index, streak) in share.iter().zip(&mut streaks) {
            let result = upstreams.check(index, timeout);
            if stop.is_signalled() {
                return; // stopped during the check: its verdict is of no use any more
            }
            let metrics = upstreams.metrics(index);
            if let Err(error) = &result {
                observer.check_failed(metrics, error);
            }
            if let Some(up) = streak.record(result.is_ok()) {
                upstreams.set_checked_state(index, up);
                let error = result.err();
                observer.upstream_health_changed(metrics, up, Streak::needed_for(up), error);
            }
        }
        if stop.wait_until(round + every) {
            return;
        }
    }
}

/// Tells a route's checking threads to leave; each looks between checks and while it
/// waits for the next round.
#[derive(Debug, Default)]
pub struct StopSignal {
    signalled: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    fn signal(&self) {
        *lock(&self.signalled) = true;
        self.changed.notify_all();
    }

    fn is_signalled(&self) -> bool {
        *lock(&self.signalled)
    }

    /// Waits until `deadline`, or less if the signal comes first; returns whether it came.
    fn wait_until(&self, deadline: Instant) -> bool {
        let signalled = lock(&self.signalled);
        let left = deadline.saturating_duration_since(Instant::now());
        let (signalled, _) = self
            .changed
            .wait_timeout_while(signalled, left, |signalled| !*signalled)
            .unwrap_or_else(PoisonError::into_inner);
        *signalled
    }
}

/// The running checks of one route: its checking threads (`tcprelay-health`). Dropping it
/// tells them to stop, and never waits for them (see the [module docs](self)).
#[derive(Debug)]
pub struct HealthChecks {
    stop: Arc<StopSignal>,
}

impl HealthChecks {
    /// Starts checking `upstreams` upstreams on up to [`MAX_CHECK_THREADS`] threads: each
    /// runs `checks` with its share of the upstream numbers and the signal to stop. The
    /// threads are not joined: each ends once it sees the signal (see the module docs).
    ///
    /// # Errors
    /// The OS's error if a thread cannot be created; those already started are told to stop.
    pub fn start(
        upstreams: usize,
        checks: impl Fn(&[usize], &StopSignal) + Send + Sync + 'static,
    ) -> io::Result<HealthChecks> {
        let checks = Arc::new(checks);
        let started = HealthChecks { stop: Arc::default() };
        let count = upstreams.min(MAX_CHECK_THREADS);
        for first in 0..count {
            let share: Vec<usize> = (first..upstreams).step_by(count).collect();
            let (checks, stop) = (Arc::clone(&checks), Arc::clone(&started.stop));
            thread::Builder::new()
                .name("tcprelay-health".to_string())
                .stack_size(CHECK_STACK_SIZE)
                .spawn(move || checks(&share, &stop))?; // `started` is dropped: told to stop
        }
        Ok(started)
    }
}

impl Drop for HealthChecks {
    /// Tells the threads to leave, without waiting for them: a check in progress ends
    /// within its timeout, and the thread with it, reporting nothing.
    fn drop(&mut self) {
        self.stop.signal();
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
