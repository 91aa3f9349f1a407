//! Finished connection threads are parked and reused by the next connection, and leave once
//! their keep-alive passes. In a binary of their own, one at a time: they read this
//! process's threads.
#![forbid(unsafe_code)]

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::Shutdown;
use std::time::Duration;

use support::*;

/// The kernel ids of this process's pooled connection threads (named `tcprelay-conn`).
fn pooled_thread_ids() -> BTreeSet<String> {
    let tasks =
        std::fs::read_dir(proc_file("/proc/self/task".into())).expect("read /proc/self/task");
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (name.trim_end() == "tcprelay-conn")
                .then(|| task.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Six connections one after another, each sampled while both its threads are at work:
/// the threads that serve them, counted over all six.
fn threads_serving_six_connections_in_turn(relay: &TestRelay) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for round in 0..6 {
        let client = connect(relay.addr);
        let message = format!("round {round}\n");
        write_all(&client, message.as_bytes())
            .unwrap_or_else(|e| panic!("the relay takes round {round}'s message: {e}"));
        let mut echoed = vec![0; message.len()];
        (&client)
            .read_exact(&mut echoed)
            .unwrap_or_else(|e| panic!("round {round}'s message comes back: {e}"));
        assert_eq!(echoed, message.as_bytes());
        // Both of this connection's threads are in their copies now: the echo came back
        // through one, and the other is waiting for more from us.
        seen.extend(pooled_thread_ids());
        client.shutdown(Shutdown::Write).expect("the client half-closes after the echo");
        assert!(
            read_all(&client).expect("EOF follows the client's half-close").is_empty(),
            "EOF after the echo"
        );
    }
    seen
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "tells threads apart by /proc/self/task")]
fn threads_are_reused_by_the_next_connection_then_leave_after_the_keep_alive() {
    let _alone = serial(); // counts this process's threads
    let upstream = Upstream::echo();
    let relay = TestRelay::start(tcprelay::Config {
        upstream: upstream.addr.to_string(),
        thread_keep_alive: Duration::from_secs(2),
        ..quiet_config()
    });
    assert!(pooled_thread_ids().is_empty());

    // Twelve threads without reuse. With it, two serve them all, plus one more now and then
    // when a connection arrives before the last one's threads have parked again.
    let seen = threads_serving_six_connections_in_turn(&relay);
    assert!(seen.len() >= 2 && seen.len() <= 6, "{} threads served 6 connections", seen.len());

    // Nobody comes for them: after the keep-alive they exit.
    assert!(eventually(|| pooled_thread_ids().is_empty()), "threads: {:?}", thread_names());
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "tells threads apart by /proc/self/task")]
fn without_keep_alive_every_connection_gets_new_threads_that_exit_with_it() {
    let _alone = serial();
    let upstream = Upstream::echo();
    let relay = TestRelay::start(tcprelay::Config {
        upstream: upstream.addr.to_string(),
        thread_keep_alive: Duration::ZERO,
        ..quiet_config()
    });

    let seen = threads_serving_six_connections_in_turn(&relay);
    assert_eq!(seen.len(), 12, "two new threads for each of 6 connections");
    assert!(eventually(|| pooled_thread_ids().is_empty()), "threads: {:?}", thread_names());
}
