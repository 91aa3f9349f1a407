//! Keeping under the kernel's limit on memory maps, where std would abort the process.
//!
//! Each connection thread costs 4 memory maps: its stack and the stack's guard page, and the
//! signal stack (with its own guard page) that std sets up in every new thread to report
//! stack overflows. Measured: 8.1 to 8.3 maps per connection (`/proc/PID/maps` with 100 and
//! 300 idle connections). Linux allows `vm.max_map_count` maps per process, 65,530 by default.
//!
//! Running out of descriptors or threads is survivable (the accept loop backs off; a refused
//! thread costs one client). Running out of maps is not: when the mmap for a new thread's
//! signal stack fails, std panics inside the thread's start-up, before any of our code runs
//! and where a panic cannot unwind, so the whole process aborts (seen at about 8,190
//! connections with the default limit). The relay therefore never accepts more connections
//! than fit under the limit: [`connections_that_fit`] caps `--max-connections`.

/// Maps per connection, rounded up from the measured 8.3.
const MAPS_PER_CONNECTION: usize = 9;
/// Maps the process needs besides its connections: code, libraries, heap, malloc's per-thread
/// arenas, the admin and accept threads. A few hundred were measured; this leaves room.
const MAPS_RESERVED: usize = 2_000;

/// How many connections fit under `vm.max_map_count`, or `None` where it cannot be read
/// (not Linux, or /proc not mounted): then no cap applies.
pub fn connections_that_fit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    Some(fit(text.trim().parse().ok()?))
}

/// The connections that fit under a limit of `max_map_count` maps.
fn fit(max_map_count: usize) -> usize {
    (max_map_count.saturating_sub(MAPS_RESERVED) / MAPS_PER_CONNECTION).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_fits_about_seven_thousand_connections() {
        assert_eq!(fit(65_530), 7_058);
        assert_eq!(fit(262_144), 28_904);
        assert_eq!(fit(100), 1, "a tiny limit still lets one connection through");
    }

    #[test]
    fn this_machine_has_a_limit() {
        if cfg!(target_os = "linux") {
            assert!(connections_that_fit().is_some_and(|fit| fit > 0));
        }
    }
}
