//! What a test compares before and after a fault: this process's descriptors and threads
//! (a [`Baseline`]), tests that must run one at a time, and bounded polling.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// The path of a /proc file, which only Linux has. Elsewhere it panics saying so: under
/// wine a Windows test would read the Linux host's /proc and pass for the wrong reason, and
/// on macOS or FreeBSD it would fail with a bare NotFound. A test that needs one is gated
/// with `#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc")]` (docs/targets.md).
pub fn proc_file(path: String) -> String {
    if !cfg!(target_os = "linux") {
        panic!(
            "{path}: /proc exists only on Linux; gate this test \
             #[cfg_attr(not(target_os = \"linux\"), ignore = \"reads /proc\")]"
        );
    }
    path
}

/// This process's open file descriptors (Linux: entries of /proc/self/fd), except one a
/// relay may open for a moment: /proc/sys/vm/max_map_count, which the first relay of the
/// process reads (with its other limits, see src/limits/capacity.rs). A test that takes its
/// count while a relay it just started reads that file would otherwise count one too many.
pub fn open_fds() -> usize {
    let entries = std::fs::read_dir(proc_file("/proc/self/fd".into())).expect("read /proc/self/fd");
    let map_limit = std::path::Path::new("/proc/sys/vm/max_map_count");
    entries
        .filter_map(Result::ok)
        .filter(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target != map_limit))
        .count()
}

/// This process's threads (Linux: `Threads:` in /proc/self/status).
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string(proc_file("/proc/self/status".into()))
        .expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// The names of this process's threads (Linux: /proc/self/task/*/comm), for failure messages.
pub fn thread_names() -> Vec<String> {
    let tasks =
        std::fs::read_dir(proc_file("/proc/self/task".into())).expect("read /proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// How many relay threads this process has: connection threads (`tcprelay-conn`, running a
/// connection or parked for the next) and accept and admin threads (`tcprelay-accept-N`,
/// `tcprelay-admin`). Not the log writer (`tcprelay-log`): there is one per process, started
/// by the first line logged and never ended, so it is not something a relay leaks.
pub fn connection_threads() -> usize {
    let names = thread_names();
    names.iter().filter(|name| name.starts_with("tcprelay-") && *name != "tcprelay-log").count()
}

/// Polls `condition` until it holds or [`TIMEOUT`] passes; returns whether it held.
///
/// Only for effects that no signal announces, such as an exiting thread leaving
/// /proc/self/status or a closed descriptor leaving /proc/self/fd.
pub fn eventually(condition: impl FnMut() -> bool) -> bool {
    eventually_within(TIMEOUT, condition)
}

/// [`eventually`] with a bound of its own, for the few waits whose work grows with the test's
/// size (thousands of routes starting under an emulator) rather than with one event.
pub fn eventually_within(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// Runs the tests of one binary one at a time. Tests that compare this process's descriptor
/// and thread counts with a [`Baseline`], or that share a static thread hook, take it first:
/// a test running beside them would move the counts.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding the lock poisons it; the next test may still run.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process's open descriptors and relay connection threads at one moment, to compare
/// with later. Counted from /proc, so on Linux only: elsewhere (Windows under wine, macOS,
/// FreeBSD) it counts nothing and [`Baseline::assert_restored`] checks nothing, while the
/// scenario around it still runs and asserts its bytes (docs/targets.md, "Other platforms").
///
/// It counts the relay's threads (named `tcprelay-...`), not every thread:
/// the test harness starts the next test's thread while this test runs, even when that
/// test then waits for [`serial`].
#[derive(Debug)]
pub struct Baseline {
    fds: usize,
    connection_threads: usize,
}

impl Baseline {
    /// The counts now. Take it after the relay and the upstream have started.
    pub fn take() -> Baseline {
        if !cfg!(target_os = "linux") {
            return Baseline { fds: 0, connection_threads: 0 };
        }
        Baseline { fds: open_fds(), connection_threads: connection_threads() }
    }

    /// Waits (bounded) until both counts are back where they were; panics if they are not.
    /// Without /proc, nothing to compare (see [`Baseline`]).
    pub fn assert_restored(&self) {
        if !cfg!(target_os = "linux") {
            return;
        }
        assert!(
            eventually(|| open_fds() == self.fds),
            "descriptors: {} at the start, {} now",
            self.fds,
            open_fds()
        );
        assert!(
            eventually(|| connection_threads() == self.connection_threads),
            "connection threads: {} at the start, {} now: {:?}",
            self.connection_threads,
            connection_threads(),
            thread_names()
        );
    }
}
