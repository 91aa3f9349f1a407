//! glibc's malloc arenas, which eat the address space of a process with a limit on it.
//!
//! glibc gives threads their own malloc arenas to spare them a shared lock: up to 8 per
//! core, each reserving 64 MiB of address space (`HEAP_MAX_SIZE`) when a thread first
//! allocates or frees. The reservation is `PROT_NONE`, so it costs no memory and no commit
//! charge, but `RLIMIT_AS` (`ulimit -v`) counts it: before this cap, a relay under a
//! modest `ulimit -v` held only a handful of connections, and under a tight one malloc
//! failed and std aborted the process (the figures: docs/benchmarks.md, "Figures the code relies on").
//!
//! The options, measured or weighed:
//!
//! - Connection threads that never allocate: they do (a log line, an error's text, the
//!   channel that joins the two threads, a `BufReader`), and glibc creates the arena on the
//!   first `free` too. Too fragile to promise.
//! - `mallopt(M_ARENA_MAX, 1)`: needs `unsafe` and `libc`, which the crate rules out.
//! - `MALLOC_ARENA_MAX=1` in the environment, glibc's documented switch: read when the
//!   process starts, so setting it from `main` (even with `unsafe { set_var }`) is too late.
//! - Re-executing itself with `MALLOC_ARENA_MAX=1` ([`bound_by_reexec`]): safe std
//!   (`CommandExt::exec`), the pid, arguments, descriptors and environment stay, so systemd,
//!   a supervisor or a test that knows the pid sees no difference. Done only when the
//!   address space is limited and the operator did not choose an arena limit: elsewhere
//!   arenas cost nothing that binds. One arena means one malloc lock for every thread;
//!   connection threads allocate only when a connection starts and ends (tcache takes most
//!   of that without the lock), never while copying, so it is not on the data path. With
//!   it, hundreds of idle connections fit where a handful did (the same section).
//! - Counting every arena malloc may create in the budget ([`reserve`]): what the cap does
//!   whenever the arenas are not bounded (an embedder's process, a failed re-exec), so even
//!   then nothing aborts; it just fits far fewer connections.

use std::io;

/// The environment variable glibc reads for its arena limit.
pub const ARENA_MAX_VARIABLE: &str = "MALLOC_ARENA_MAX";

/// Address space glibc reserves per arena: `HEAP_MAX_SIZE`, 64 MiB on 64-bit targets and
/// 32 MiB on 32-bit ones (2 × `DEFAULT_MMAP_THRESHOLD_MAX`, 4 MiB × the word size).
const ARENA_BYTES: u64 = 8 * 1024 * 1024 * std::mem::size_of::<usize>() as u64;

/// Whether this is a glibc target, where arenas reserve address space (musl's malloc does
/// not).
const GLIBC: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// The arena limit the operator set, from `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES=glibc.malloc.arena_max=N`, if any.
pub fn arena_max_from_environment() -> Option<u64> {
    let tunable = std::env::var("GLIBC_TUNABLES").ok().and_then(|tunables| {
        tunables.split(':').find_map(|t| t.strip_prefix("glibc.malloc.arena_max=")?.parse().ok())
    });
    let variable = std::env::var(ARENA_MAX_VARIABLE).ok().and_then(|v| v.trim().parse().ok());
    tunable.or(variable).filter(|&max| max > 0)
}

/// The address space malloc may still reserve for arenas, which the connection budget sets
/// aside: one arena per allowed arena beyond the first (the main arena grows the heap
/// instead), plus one more for the moment glibc maps twice the size to align a new one.
pub fn reserve() -> u64 {
    if !GLIBC {
        return 0;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    // glibc's default, NARENAS_FROM_NCORES: 8 per core on 64-bit targets, 2 on 32-bit ones.
    let default = cores * if std::mem::size_of::<usize>() == 8 { 8 } else { 2 };
    match arena_max_from_environment().unwrap_or(default) {
        1 => 0,
        max => max * ARENA_BYTES,
    }
}

/// Whether the process's address space is limited (`RLIMIT_AS`, `ulimit -v`).
fn address_space_is_limited() -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    crate::limits::proc_limits::soft_limit(&limits, "Max address space").is_some()
}

/// Replaces the running program with itself, same arguments, plus `MALLOC_ARENA_MAX=1`, when
/// that matters: on glibc, with a limited address space, and no arena limit chosen by the
/// operator. The binary calls this first thing before it serves; see the module docs for why.
///
/// Returns `Ok(false)` when there was nothing to do. It does not return when the re-exec
/// succeeds.
///
/// # Errors
/// The re-exec failed (the binary was deleted or replaced on disk, say). The caller should
/// log it and carry on: the connection budget then counts every arena.
pub fn bound_by_reexec() -> io::Result<bool> {
    if !GLIBC || arena_max_from_environment().is_some() || !address_space_is_limited() {
        return Ok(false);
    }
    reexec_with_one_arena()
}

#[cfg(unix)]
fn reexec_with_one_arena() -> io::Result<bool> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // The child sees the variable set, so it never re-executes again.
    Err(command.args(args).env(ARENA_MAX_VARIABLE, "1").exec())
}

#[cfg(not(unix))]
fn reexec_with_one_arena() -> io::Result<bool> {
    Ok(false)
}
