//! Datagrams the kernel dropped because a socket's receive buffer was full
//! (`RcvbufErrors` in /proc/net/snmp): where UDP loss happens when a
//! receiver falls behind. Counted for the whole network namespace (the relay,
//! the echo and the clients together, and anything else running), so it
//! explains a run's loss rather than assigns it.

use std::fs;

/// The counter now, or 0 where /proc/net/snmp cannot be read.
pub fn count() -> u64 {
    let Ok(snmp) = fs::read_to_string("/proc/net/snmp") else { return 0 };
    // Two `Udp:` lines: the names, then the values in the same order.
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}
