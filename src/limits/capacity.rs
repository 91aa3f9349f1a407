//! How many connections the whole process can hold before the OS or malloc says no, and the
//! process-wide count that keeps it there.
//!
//! Some failures cost one client: a refused thread (`spawn_failed`), a refused descriptor
//! (the accept loop backs off). Others kill the process, and no `Result` ever sees them:
//!
//! - std aborts when an allocation fails ("memory allocation of 64 bytes failed"), and
//! - std aborts when a new thread's signal stack cannot be mapped ("failed to allocate an
//!   alternative stack"), before any of our code runs in that thread.
//!
//! Both happen when the address space (`RLIMIT_AS`, `ulimit -v`), the commit limit
//! (`vm.overcommit_memory=2`) or the memory maps (`vm.max_map_count`) run out. So the relay
//! never gets there: it knows what one connection costs ([`Cost`]), reads the limits that
//! bind once at start-up ([`Snapshot::read`]), and admits at most [`fit`] connections *in
//! the whole process*, across every route ([`ProcessSlot`]). Descriptors (`RLIMIT_NOFILE`)
//! and threads (`RLIMIT_NPROC`) are folded into the same cap, so that a full relay waits
//! instead of failing `accept` or a dial with `EMFILE`. A cgroup v2 `memory.max` bounds
//! resident memory (the OOM killer, not an abort), and is folded in too.
//!
//! What one connection costs is counted from its parts (two stacks with their guard pages
//! and signal stacks, its heap, its buffers), each rounded up from what was measured, so
//! the cap errs towards fewer connections; the measured figures and how they were taken are
//! in docs/benchmarks.md, "Figures the code relies on", and docs/operations.md, "Sizing under memory limits", has
//! the table and what to set.
//!
//! glibc's malloc arenas are the big item: each reserves 64 MiB of address space, and a
//! thread's first allocation may create one (up to 8 per core). The binary bounds them by
//! re-executing itself with `MALLOC_ARENA_MAX=1` when the address space is limited (see
//! [`crate::limits::arenas`]); where they are not bounded, the budget counts every arena
//! malloc may create.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::limits::arenas;
use crate::limits::proc_limits::soft_limit;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Memory maps per connection, rounded up from the measured figure (docs/benchmarks.md): per
/// thread its stack, the stack's guard page, the signal stack and its guard page.
const MAPS_PER_CONNECTION: u64 = 9;
/// Heap per connection besides its buffers: the `Connection`, its slot in the open set, its
/// log lines while they are formatted. Several times the measured figure (docs/benchmarks.md),
/// to leave room.
const HEAP_PER_CONNECTION: u64 = 8 * KIB;
/// Resident memory per idle connection besides its buffers: the touched parts of two stacks
/// and two signal stacks, the heap, the page tables; above the measured figure
/// (docs/benchmarks.md). Kernel socket
/// buffers of busy connections come on top and are not bounded here (std has no
/// `SO_RCVBUF`).
const RESIDENT_PER_CONNECTION: u64 = 64 * KIB;
/// std's signal stack is `max(SIGSTKSZ, AT_MINSIGSTKSZ)`; SIGSTKSZ is 8 KiB on x86_64 and
/// 16 KiB on aarch64 in the `libc` crate std uses.
const MIN_SIGNAL_STACK: u64 = 16 * KIB;

/// Threads the process always has besides its connection threads, and their stacks: the
/// main thread with std's default 2 MiB, the log writer with 64 KiB (`ops/log.rs`), and one
/// accept loop per route with 256 KiB (`server/routes.rs`), eight routes' worth. Health
/// checks and the admin endpoint come on top, as the settings ask: see [`Reserve`].
const OTHER_THREADS: u64 = 10;
const OTHER_THREAD_STACKS: u64 = 2 * MIB + 64 * KIB + 8 * 256 * KIB;
/// At most this many finished connection threads wait for the next connection, in the
/// whole process (see `threads.rs`), fewer when the process is small (see [`fit`]): each
/// still holds its stack.
const MAX_PARKED_THREADS: u64 = 128;
/// At most this many Happy Eyeballs attempts run on threads of their own at once, in the
/// whole process (see `upstream/dial.rs`), fewer when the process is small (see [`fit`]).
const MAX_DIAL_ATTEMPTS: usize = 128;
/// Slack for what is not counted one by one: the heap growing and fragmenting, threads
/// that have freed their connection's slot but not yet exited or parked. 4 MiB plus a
/// sixteenth of the limit.
fn slack(limit: u64) -> u64 {
    4 * MIB + limit / 16
}
/// Descriptors kept free besides two per connection: listeners, the descriptor a waiting
/// `accept` holds, a refused client closed at once, admin clients, the self-connect that
/// wakes a stopping accept loop.
const SPARE_DESCRIPTORS: u64 = 16;
/// Maps kept free besides the connections': code, libraries, the other threads.
const SPARE_MAPS: u64 = 1_000;

/// The threads the settings add besides connections, in their worst case, kept out of the
/// cap so that every thread the relay makes is counted: the health checks' (up to 8 per
/// route) and the admin endpoint's (its accept loop and its handlers). Each holds a stack,
/// its guard page and signal stack, and at most one socket (a check's, a handler's client).
/// The server sets it before it builds its routes, at start and on every reload
/// ([`set_reserve`]); a route bound alone through the library reserves nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reserve {
    /// `tcprelay-health` threads, every route together.
    pub health_check_threads: u64,
    /// The admin endpoint's threads.
    pub admin_threads: u64,
    /// Their stacks together, in bytes.
    pub stacks: u64,
}

impl Reserve {
    /// The threads reserved.
    pub fn threads(&self) -> u64 {
        self.health_check_threads + self.admin_threads
    }
}

static RESERVE: std::sync::Mutex<Reserve> =
    std::sync::Mutex::new(Reserve { health_check_threads: 0, admin_threads: 0, stacks: 0 });

/// Makes `reserve` what every route's cap computed from now on leaves out (see [`Reserve`]).
pub fn set_reserve(reserve: Reserve) {
    *crate::lock::lock(&RESERVE) = reserve;
}

/// What [`set_reserve`] last set.
pub fn reserve() -> Reserve {
    *crate::lock::lock(&RESERVE)
}

/// What one connection costs the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Address space, in bytes: two thread stacks with their guard pages and signal stacks,
    /// the copy buffers, the heap.
    pub address_space: u64,
    /// Resident memory, in bytes (what a cgroup's `memory.max` counts), when idle.
    pub resident: u64,
    /// File descriptors: the client's and the upstream's.
    pub descriptors: u64,
    /// Threads: one per direction.
    pub threads: u64,
    /// Memory maps.
    pub maps: u64,
}

impl Cost {
    /// The cost of a connection whose threads have `stack_size` bytes of stack and whose
    /// copies hold `buffer_size`-byte heap buffers while their bytes flow (the 8 KiB a copy
    /// starts with; larger buffers come from the process-wide budget of `relay/copy.rs`).
    pub fn of(stack_size: usize, buffer_size: usize, signal_stack: u64) -> Cost {
        let stack = round_up_to_page(stack_size as u64);
        let per_thread = stack + PAGE + round_up_to_page(signal_stack) + PAGE;
        let buffers = 2 * buffer_size as u64;
        Cost {
            address_space: 2 * per_thread + buffers + HEAP_PER_CONNECTION,
            resident: RESIDENT_PER_CONNECTION + buffers,
            descriptors: 2,
            threads: 2,
            maps: MAPS_PER_CONNECTION,
        }
    }

    /// Address space of one thread (for the threads that are not a connection's).
    fn per_thread(&self) -> u64 {
        (self.address_space - HEAP_PER_CONNECTION) / 2
    }
}

const PAGE: u64 = 4 * KIB;

fn round_up_to_page(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE) * PAGE
}

/// The limits that bind, and how much of each the process already uses, read once.
/// `None`: no such limit (unlimited, or not readable here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `RLIMIT_AS` (soft), bytes, and the address space in use (`VmSize`).
    pub address_space: Option<(u64, u64)>,
    /// Under `vm.overcommit_memory=2`: `CommitLimit` and `Committed_AS`, bytes, system-wide.
    pub commit: Option<(u64, u64)>,
    /// The cgroup v2 `memory.max` and `memory.current`, bytes.
    pub memory: Option<(u64, u64)>,
    /// `RLIMIT_NOFILE` (soft) and the descriptors open now.
    pub descriptors: Option<(u64, u64)>,
    /// `RLIMIT_NPROC` (soft; it counts every thread of the user) and this process's threads.
    pub threads: Option<(u64, u64)>,
    /// `vm.max_map_count` and this process's maps now.
    pub maps: Option<(u64, u64)>,
    /// Address space that malloc may still reserve for new arenas, bytes.
    pub arena_reserve: u64,
    /// std's signal stack size here (`max(SIGSTKSZ, AT_MINSIGSTKSZ)`).
    pub signal_stack: u64,
}

/// Which limit sets the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// No limit binds: `--max-connections` alone decides.
    None,
    /// `RLIMIT_AS` (`ulimit -v`).
    AddressSpace,
    /// The commit limit under `vm.overcommit_memory=2`.
    Commit,
    /// The cgroup's `memory.max`.
    Memory,
    /// `RLIMIT_NOFILE` (`ulimit -n`).
    Descriptors,
    /// `RLIMIT_NPROC` (`ulimit -u`).
    Threads,
    /// `vm.max_map_count`.
    Maps,
}

impl Binding {
    /// The name in the log: the limit as an operator would set it.
    pub fn name(self) -> &'static str {
        match self {
            Binding::None => "none",
            Binding::AddressSpace => "RLIMIT_AS",
            Binding::Commit => "vm.overcommit_memory=2",
            Binding::Memory => "memory.max",
            Binding::Descriptors => "RLIMIT_NOFILE",
            Binding::Threads => "RLIMIT_NPROC",
            Binding::Maps => "vm.max_map_count",
        }
    }
}

/// The most connections the process can hold, and the limit that said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// At most this many connections at once, in the whole process. At least 1.
    pub connections: usize,
    /// The limit that set it.
    pub limited_by: Binding,
    /// That limit's value (bytes, descriptors, threads or maps); 0 for [`Binding::None`].
    pub limit: u64,
    /// What one connection was counted to cost.
    pub cost: Cost,
    /// At most this many finished connection threads may wait for the next connection in
    /// the whole process: the parked threads the budget has room for.
    pub max_parked: usize,
    /// At most this many dial attempts may run on threads of their own at once in the whole
    /// process: a quarter of the connections, up to 128. Each also takes half a connection's
    /// share of the cap while it runs (see [`OpenCount::take_dial_attempt`]).
    pub dial_attempts: usize,
    /// The threads kept out of the cap for health checks and the admin endpoint.
    pub reserved: Reserve,
}

/// How many connections of `cost` fit under the limits of `snapshot`, besides what the
/// process already uses and what it keeps for its other threads, parked threads and slack.
/// The smallest of the limits wins; with none, `usize::MAX`.
///
/// Parked threads get room for at most a quarter of the connections' threads (up to 128):
/// a relay squeezed into a few megabytes keeps its room for connections, and simply
/// creates threads more often.
pub fn fit(snapshot: &Snapshot, cost: &Cost, reserved: Reserve) -> Capacity {
    let without_parked = fit_with_parked(snapshot, cost, reserved, 0);
    let parked = (without_parked.connections as u64 / 2).min(MAX_PARKED_THREADS);
    let capacity = fit_with_parked(snapshot, cost, reserved, parked);
    let dial_attempts = (capacity.connections / 4).min(MAX_DIAL_ATTEMPTS);
    Capacity { max_parked: parked as usize, dial_attempts, ..capacity }
}

fn fit_with_parked(snapshot: &Snapshot, cost: &Cost, reserved: Reserve, parked: u64) -> Capacity {
    let signal_stack = round_up_to_page(snapshot.signal_stack) + PAGE;
    let others = OTHER_THREADS + reserved.threads();
    let other_threads = OTHER_THREAD_STACKS + reserved.stacks + others * (PAGE + signal_stack);
    let threads_memory = other_threads + parked * cost.per_thread();
    let thread_reserve = others + parked;
    let descriptor_reserve = SPARE_DESCRIPTORS + reserved.threads();
    let candidates = [
        (
            Binding::AddressSpace,
            snapshot.address_space,
            threads_memory + snapshot.arena_reserve,
            cost.address_space,
        ),
        (Binding::Commit, snapshot.commit, threads_memory, cost.address_space),
        (Binding::Memory, snapshot.memory, 0, cost.resident),
        (Binding::Descriptors, snapshot.descriptors, descriptor_reserve, cost.descriptors),
        (Binding::Threads, snapshot.threads, thread_reserve, cost.threads),
        (Binding::Maps, snapshot.maps, SPARE_MAPS + 4 * thread_reserve, cost.maps),
    ];
    let mut best = Capacity {
        connections: usize::MAX,
        limited_by: Binding::None,
        limit: 0,
        cost: *cost,
        max_parked: 0,
        dial_attempts: 0,
        reserved,
    };
    for (binding, limit, reserve, each) in candidates {
        let Some((limit, used)) = limit else { continue };
        let reserve = match binding {
            Binding::AddressSpace | Binding::Commit | Binding::Memory => reserve + slack(limit),
            _ => reserve,
        };
        let room = limit.saturating_sub(used).saturating_sub(reserve);
        let fits = usize::try_from(room / each.max(1)).unwrap_or(usize::MAX).max(1);
        if fits < best.connections {
            best = Capacity { connections: fits, limited_by: binding, limit, ..best };
        }
    }
    best
}

impl Snapshot {
    /// Reads every limit this platform lets std read: /proc/self/limits, /proc/self/status,
    /// /proc/self/maps, /proc/self/fd, /proc/self/auxv, /proc/sys/vm/*, /proc/meminfo and
    /// the cgroup v2 files. Anything unreadable (/proc not mounted) counts as no limit.
    ///
    /// Where there is no /proc (Windows, macOS, the BSDs) no limit is read at all, on purpose:
    /// std has no `getrlimit` and tcprelay uses no `unsafe`, and under wine the paths would
    /// name the Linux host's files, not the process's. There the cap is `--max-connections`
    /// alone, and the descriptor limit (`ulimit -n`: 256 in a macOS shell) is the operator's
    /// to raise or to match (docs/targets.md, "What each platform lacks").
    pub fn read() -> Snapshot {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return Snapshot {
                arena_reserve: arenas::reserve(),
                signal_stack: MIN_SIGNAL_STACK,
                ..Snapshot::default()
            };
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let used_address_space = status_kib(&status, "VmSize").unwrap_or(0) * KIB;
        let threads_now = status_kib(&status, "Threads").unwrap_or(1);
        let descriptors_now = std::fs::read_dir("/proc/self/fd").map(Iterator::count).unwrap_or(0);
        let maps_now = std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count());
        let max_map_count = read_number("/proc/sys/vm/max_map_count");
        Snapshot {
            address_space: soft_limit(&limits, "Max address space")
                .map(|l| (l, used_address_space)),
            commit: commit_limit(),
            memory: cgroup_memory(),
            descriptors: soft_limit(&limits, "Max open files").map(|l| (l, descriptors_now as u64)),
            threads: soft_limit(&limits, "Max processes").map(|l| (l, threads_now)),
            maps: max_map_count.zip(maps_now.ok().map(|n| n as u64)),
            arena_reserve: arenas::reserve(),
            signal_stack: min_signal_stack().max(MIN_SIGNAL_STACK),
        }
    }
}

/// A `Name:   123 kB` (or plain number) field of /proc/self/status.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let value = status.lines().find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    value.split_whitespace().next()?.parse().ok()
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Under strict overcommit (`vm.overcommit_memory=2`) every writable private map is charged
/// against a system-wide commit limit; a thread stack that cannot be charged is refused.
fn commit_limit() -> Option<(u64, u64)> {
    if read_number("/proc/sys/vm/overcommit_memory")? != 2 {
        return None;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some((status_kib(&meminfo, "CommitLimit")? * KIB, status_kib(&meminfo, "Committed_AS")? * KIB))
}

/// The cgroup v2 memory limit of this process's cgroup and its use now: `/proc/self/cgroup`
/// names the cgroup (`0::/system.slice/tcprelay.service`), under /sys/fs/cgroup. `None`
/// when there is no limit (`max`), no cgroup v2, or the files cannot be read.
fn cgroup_memory() -> Option<(u64, u64)> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|line| line.strip_prefix("0::"))?.trim();
    let dir = format!("/sys/fs/cgroup{}", if path == "/" { "" } else { path });
    let max = read_number(&format!("{dir}/memory.max"))?; // "max" does not parse: no limit
    let current = read_number(&format!("{dir}/memory.current")).unwrap_or(0);
    Some((max, current))
}

/// `AT_MINSIGSTKSZ` from the auxiliary vector (/proc/self/auxv: pairs of native words), the
/// signal stack size the CPU needs, which std takes if larger than SIGSTKSZ. 0 if unknown.
fn min_signal_stack() -> u64 {
    const AT_MINSIGSTKSZ: u64 = 51;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else { return 0 };
    let word = |bytes: &[u8]| {
        let mut buffer = [0; WORD];
        buffer.copy_from_slice(bytes);
        usize::from_ne_bytes(buffer) as u64
    };
    auxv.chunks_exact(2 * WORD)
        .find(|pair| word(&pair[..WORD]) == AT_MINSIGSTKSZ)
        .map_or(0, |pair| word(&pair[WORD..]))
}

/// The process's limits, read once, at the first route's bind, so that later binds and the
/// accept loops open no file of their own.
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(Snapshot::read)
}

/// A count of what is open, with a cap checked as a slot is taken. It counts in halves of a
/// connection: a connection takes two, a Happy Eyeballs dial attempt one. An attempt is one
/// thread with a smaller stack than a connection thread's (never larger: std raises both to
/// the same minimum) and one socket: at most half a connection on every limit the cap
/// counts (address space, threads, maps, descriptors), so it can borrow half a slot.
#[derive(Debug)]
pub struct OpenCount(AtomicUsize);

/// Connections (and dial attempts, as half a connection each) open in the whole process,
/// every route together.
pub static OPEN_IN_PROCESS: OpenCount = OpenCount(AtomicUsize::new(0));

/// Dial attempts running on threads of their own in the whole process, every route and
/// health check together, each a whole slot here ([`OpenCount::take`]): bounded by
/// [`Capacity::dial_attempts`] so that a storm of clients of a dead name cannot take all the
/// halves of [`OPEN_IN_PROCESS`] that other routes need.
pub static DIAL_ATTEMPTS_IN_PROCESS: OpenCount = OpenCount(AtomicUsize::new(0));

/// Halves of a connection in an [`OpenCount`]: what a connection takes.
const CONNECTION: usize = 2;

impl OpenCount {
    /// Takes a whole slot (a connection's; in [`DIAL_ATTEMPTS_IN_PROCESS`], an attempt's) if
    /// it fits under `cap` whole slots.
    pub fn take(&'static self, cap: usize) -> Option<ProcessSlot> {
        self.take_halves(CONNECTION, cap)
    }

    /// Takes a dial attempt's slot, half a connection's, if it fits under `cap` connections.
    pub fn take_dial_attempt(&'static self, cap: usize) -> Option<ProcessSlot> {
        self.take_halves(1, cap)
    }

    fn take_halves(&'static self, halves: usize, cap: usize) -> Option<ProcessSlot> {
        let limit = cap.saturating_mul(CONNECTION);
        let room = |open: usize| (open.saturating_add(halves) <= limit).then_some(open + halves);
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, room).ok()?;
        Some(ProcessSlot { count: self, halves })
    }

    /// How many connections' worth of slots are taken (an attempt is half of one).
    #[cfg(test)]
    pub fn open(&self) -> f64 {
        self.0.load(Ordering::Acquire) as f64 / CONNECTION as f64
    }
}

/// A slot of a count of its own, for unit tests that insert connections without touching
/// the process-wide count other tests read.
#[cfg(test)]
pub fn test_slot() -> ProcessSlot {
    static TESTS: OpenCount = OpenCount(AtomicUsize::new(0));
    TESTS.take(usize::MAX).expect("an unbounded count always has room")
}

/// One connection's (or dial attempt's) share of a process-wide cap; giving it back is
/// dropping it.
#[derive(Debug)]
pub struct ProcessSlot {
    count: &'static OpenCount,
    halves: usize,
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        self.count.0.fetch_sub(self.halves, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max processes             96365                96365                processes
Max open files            1024                 4096                 files
Max address space         409600000            unlimited            bytes
";

    #[test]
    fn reads_soft_limits_and_unlimited_as_none() {
        assert_eq!(soft_limit(LIMITS, "Max open files"), Some(1024));
        assert_eq!(soft_limit(LIMITS, "Max address space"), Some(409_600_000));
        let unlimited = "Max address space         unlimited            unlimited            bytes";
        assert_eq!(soft_limit(unlimited, "Max address space"), None);
        assert_eq!(soft_limit(LIMITS, "Max locked memory"), None);
    }

    #[test]
    fn one_connection_costs_what_was_measured() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        // The measured VmSize per idle connection (docs/benchmarks.md, "Figures the code
        // relies on"): the estimate must stay a little above it.
        assert_eq!(cost.address_space, 2 * (64 + 4 + 16 + 4) * KIB + 8 * KIB);
        assert!(cost.address_space >= 164 * KIB);
        assert_eq!(
            Cost::of(64 * 1024, 64 * 1024, 16 * 1024).address_space,
            cost.address_space + 128 * KIB
        );
    }

    #[test]
    fn the_smallest_limit_wins_and_says_which() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        let none = fit(&Snapshot::default(), &cost, Reserve::default());
        assert_eq!((none.connections, none.limited_by), (usize::MAX, Binding::None));

        let maps = Snapshot { maps: Some((65_530, 0)), ..Snapshot::default() };
        // (65,530 - 1,000 spare - 4 maps * (10 other threads + 128 parked)) / 9
        assert_eq!(fit(&maps, &cost, Reserve::default()).connections, 7_108);
        assert_eq!(fit(&maps, &cost, Reserve::default()).max_parked, 128);
        assert_eq!(fit(&maps, &cost, Reserve::default()).limited_by, Binding::Maps);

        let descriptors = Snapshot { descriptors: Some((1024, 4)), ..maps.clone() };
        assert_eq!(fit(&descriptors, &cost, Reserve::default()).connections, (1024 - 4 - 16) / 2);
        assert_eq!(fit(&descriptors, &cost, Reserve::default()).limited_by, Binding::Descriptors);

        let address_space = Snapshot { address_space: Some((400_000 * KIB, 6 * MIB)), ..maps };
        let capacity = fit(&address_space, &cost, Reserve::default());
        assert_eq!(capacity.limited_by, Binding::AddressSpace);
        assert!((300..2_000).contains(&capacity.connections), "{capacity:?}");
    }

    #[test]
    fn reserved_threads_take_their_stacks_and_a_descriptor_each_from_the_cap() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        let reserve = Reserve { health_check_threads: 16, admin_threads: 33, stacks: 9 * MIB };
        let descriptors = Snapshot { descriptors: Some((1024, 4)), ..Snapshot::default() };
        let capacity = fit(&descriptors, &cost, reserve);
        assert_eq!(capacity.connections, (1024 - 4 - 16 - 49) / 2);
        assert_eq!(capacity.reserved, reserve, "kept for the max-connections lowered line");
        let address_space =
            Snapshot { address_space: Some((100_000 * KIB, 6 * MIB)), ..Snapshot::default() };
        let without = fit(&address_space, &cost, Reserve::default()).connections;
        let with = fit(&address_space, &cost, reserve).connections;
        // 9 MiB of stacks and 49 guard pages and signal stacks: about 60 connections' worth.
        assert!((50..80).contains(&(without - with)), "{without} then {with}");
    }

    #[test]
    fn a_small_limit_still_fits_connections_with_fewer_parked_threads() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        let snapshot =
            Snapshot { address_space: Some((20_000 * KIB, 6 * MIB)), ..Snapshot::default() };
        let capacity = fit(&snapshot, &cost, Reserve::default());
        assert!((5..40).contains(&capacity.connections), "{capacity:?}");
        assert!(capacity.max_parked < capacity.connections, "{capacity:?}");
    }

    #[test]
    fn unbounded_arenas_can_leave_room_for_one_connection_only() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        let snapshot = Snapshot {
            address_space: Some((100_000 * KIB, 6 * MIB)),
            arena_reserve: 16 * 64 * MIB,
            ..Snapshot::default()
        };
        assert_eq!(
            fit(&snapshot, &cost, Reserve::default()).connections,
            1,
            "never 0: one client can still pass"
        );
    }

    #[test]
    fn process_slots_are_given_back_when_dropped() {
        static OPEN: OpenCount = OpenCount(AtomicUsize::new(0));
        let first = OPEN.take(2).expect("room for two");
        let second = OPEN.take(2).expect("room for two");
        assert!(OPEN.take(2).is_none(), "the cap holds");
        drop(first);
        assert_eq!(OPEN.open(), 1.0);
        assert!(OPEN.take(2).is_some());
        drop(second);
    }

    #[test]
    fn a_dial_attempt_takes_half_a_connections_slot() {
        static OPEN: OpenCount = OpenCount(AtomicUsize::new(0));
        let connection = OPEN.take(2).expect("room for two connections");
        let attempts = [OPEN.take_dial_attempt(2), OPEN.take_dial_attempt(2)];
        assert!(attempts.iter().all(Option::is_some), "two halves fill the second slot");
        assert!(OPEN.take(2).is_none() && OPEN.take_dial_attempt(2).is_none(), "the cap holds");
        drop(attempts);
        assert_eq!(OPEN.open(), 1.0);
        assert!(OPEN.take(2).is_some(), "the attempts gave their halves back");
        drop(connection);
    }

    #[test]
    fn dial_attempts_are_a_quarter_of_the_connections_up_to_128() {
        let cost = Cost::of(64 * 1024, 0, 16 * 1024);
        let descriptors = Snapshot { descriptors: Some((1024, 4)), ..Snapshot::default() };
        let capacity = fit(&descriptors, &cost, Reserve::default());
        assert_eq!(capacity.connections, (1024 - 4 - 16) / 2, "no room taken from connections");
        assert_eq!(capacity.dial_attempts, capacity.connections / 4);
        assert_eq!(fit(&Snapshot::default(), &cost, Reserve::default()).dial_attempts, 128);
    }

    #[test]
    fn this_machine_has_limits() {
        let snapshot = Snapshot::read();
        if cfg!(target_os = "linux") {
            assert!(snapshot.maps.is_some() && snapshot.descriptors.is_some(), "{snapshot:?}");
        } else {
            // No /proc: nothing is read (under wine, not the Linux host's files either), and
            // nothing but --max-connections caps the connections.
            let limits = [snapshot.address_space, snapshot.commit, snapshot.memory];
            let limits = [limits.as_slice(), &[snapshot.descriptors, snapshot.threads]].concat();
            assert!(limits.iter().all(Option::is_none) && snapshot.maps.is_none(), "{snapshot:?}");
            let cost = Cost::of(64 * 1024, 8 * 1024, snapshot.signal_stack);
            assert_eq!(fit(&snapshot, &cost, Reserve::default()).limited_by, Binding::None);
        }
        assert!(snapshot.signal_stack >= MIN_SIGNAL_STACK);
    }
}
