//! The process's resource limits as Linux shows them in /proc/self/limits: std has no
//! `getrlimit`, and reading this file needs no `unsafe`. A leaf, read by the connection
//! budget (`capacity.rs`) and the malloc-arena bound (`arenas.rs`).

/// A soft limit from /proc/self/limits, e.g. the line
/// `Max open files            1024                 4096                 files`.
/// `None` when unlimited or absent.
pub fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}
