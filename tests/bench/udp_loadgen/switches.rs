//! Context switches of a relay, to explain its datagrams per second: a relay
//! that wakes a thread per datagram pays for it on every one.
//!
//! Summed over every thread of the relay's process and of its direct children
//! (nginx's workers, socat's per-client processes), read from
//! `/proc/PID/task/*/status`. A thread or child that ended during the run
//! takes its switches with it, so for socat's short-lived children the figure
//! is a floor.

use std::fs;

/// Voluntary plus involuntary context switches of `root` and its children now.
pub fn count(root: u32) -> u64 {
    let mut pids = vec![root];
    // Linux lists a thread's children in /proc/PID/task/TID/children.
    if let Ok(children) = fs::read_to_string(format!("/proc/{root}/task/{root}/children")) {
        pids.extend(children.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()));
    }
    pids.iter().map(|&pid| of_process(pid)).sum()
}

fn of_process(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else { continue };
        for line in status.lines() {
            let counter = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
            if let Some(value) = counter {
                total += value.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}
