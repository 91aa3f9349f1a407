//! Finished connection threads are parked and reused by the next connection, and leave once
//! their keep-alive passes. In a binary of their own, one at a time: they read this
//! process's threads.
#![forbid(unsafe_code)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;

/// The kernel ids of this process's pooled connection threads (named `tcprelay-conn`).
fn pooled_thread_ids() -> BTreeSet<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (name.trim_end() == "tcprelay-conn")
                .then(|| task.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn threads_are_reused_by_the_next_connection_then_leave_after_the_keep_alive() {
    let _alone = serial(); // counts this process's threads
    let upstream = Upstream::echo();
    // Long enough that a parked thread outlives a stall of a busy machine between two
    // rounds (300 ms did not, under a load average of 50); short enough to wait out below.
    let keep_alive = Duration::from_secs(2);
    let relay = TestRelay::start(tcprelay::Config {
        upstream: upstream.addr.to_string(),
        thread_keep_alive: keep_alive,
        ..quiet_config()
    });
    assert!(pooled_thread_ids().is_empty());

    assert_eq!(echo_through(relay.addr, b"first"), b"first");
    // Both threads of the first connection park once it is done.
    assert!(eventually(|| pooled_thread_ids().len() == 2), "threads: {:?}", thread_names());
    let parked = pooled_thread_ids();
    for round in 0..5 {
        let message = format!("again {round}");
        assert_eq!(echo_through(relay.addr, message.as_bytes()), message.as_bytes());
        assert!(eventually(|| pooled_thread_ids().len() == 2));
        assert_eq!(pooled_thread_ids(), parked, "round {round} made new threads");
    }

    // Nobody comes for them: after the keep-alive they exit.
    assert!(eventually(|| pooled_thread_ids().is_empty()), "threads: {:?}", thread_names());
}

#[test]
fn without_keep_alive_every_connection_gets_new_threads_that_exit_with_it() {
    let _alone = serial();
    let upstream = Upstream::echo();
    let relay = TestRelay::start(tcprelay::Config {
        upstream: upstream.addr.to_string(),
        thread_keep_alive: Duration::ZERO,
        ..quiet_config()
    });

    assert_eq!(echo_through(relay.addr, b"once"), b"once");
    assert!(eventually(|| pooled_thread_ids().is_empty()), "threads: {:?}", thread_names());
}
