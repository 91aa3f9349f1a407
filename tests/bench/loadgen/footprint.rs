//! Reads a relay's footprint from /proc: processes, threads, resident memory
//! and CPU time.
//!
//! A relay may be one process (tcprelay, the Go program, HAProxy), a master
//! with workers (nginx) or a process per connection (socat with `fork`), so a
//! watched relay is a process *tree*: every figure is the sum over the root
//! and all its descendants. PSS (proportional set size, from
//! `/proc/PID/smaps_rollup`) is reported beside RSS because summing RSS over
//! forked children counts their shared pages once per child; for a single
//! process the two differ only by its share of shared libraries.

use std::collections::HashMap;
use std::fs;
use std::io;

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on x86
/// and ARM (`getconf CLK_TCK`). Asking at run time needs `sysconf`, which std
/// does not offer and `unsafe` would.
const TICKS_PER_SECOND: f64 = 100.0;

/// Which process a workload watches.
#[derive(Clone, Copy, Debug)]
pub enum Watched {
    /// This process: the in-process suite, where the relay runs on threads
    /// next to the load generator and the upstream servers.
    ThisProcess,
    /// A relay started by the runner script: the process and its descendants.
    Tree {
        /// The relay's process id.
        root: u32,
    },
}

/// The resources a watched relay holds at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Footprint {
    /// Processes in the tree.
    pub processes: u64,
    /// Threads, summed over the processes.
    pub threads: u64,
    /// Resident set size in KiB (`VmRSS`), summed over the processes.
    pub rss_kib: u64,
    /// Proportional set size in KiB (`Pss`), summed over the processes.
    pub pss_kib: u64,
    /// User plus system CPU time, including reaped children, in ticks.
    pub cpu_ticks: u64,
}

impl Footprint {
    /// CPU seconds spent between `earlier` and this sample.
    pub fn cpu_seconds_since(&self, earlier: &Footprint) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SECOND
    }
}

/// Samples the watched process (tree) now.
///
/// Errors if the root process is gone or /proc cannot be read; a descendant
/// that exits while it is being read is skipped.
pub fn sample(watched: Watched) -> io::Result<Footprint> {
    match watched {
        Watched::ThisProcess => {
            read_process("self").map_err(|e| with_context(e, "reading /proc/self"))
        }
        Watched::Tree { root } => {
            let mut total = read_process(&root.to_string())
                .map_err(|e| with_context(e, &format!("reading relay process {root}")))?;
            for pid in descendants(root)? {
                // A child may exit between listing and reading: not an error.
                if let Ok(child) = read_process(&pid.to_string()) {
                    total.processes += child.processes;
                    total.threads += child.threads;
                    total.rss_kib += child.rss_kib;
                    total.pss_kib += child.pss_kib;
                    total.cpu_ticks += child.cpu_ticks;
                }
            }
            Ok(total)
        }
    }
}

/// Every live descendant of `root`, found by reading each process's parent
/// from /proc (there is no children list for a whole process).
fn descendants(root: u32) -> io::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(fields) = stat_fields(&stat)
            && let Some(parent) = fields.get(1).and_then(|p| p.parse::<u32>().ok())
        {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(child);
            pending.push(child);
        }
    }
    Ok(found)
}

/// One process's figures; `pid` is a number or `self`.
fn read_process(pid: &str) -> io::Result<Footprint> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // smaps_rollup needs the same permission as ptrace; without it PSS is 0.
    let pss_kib = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|rollup| kib_field(&rollup, "Pss:"))
        .unwrap_or(0);
    let fields = stat_fields(&stat).ok_or_else(|| invalid(&format!("/proc/{pid}/stat")))?;
    // After the command name: state(0) ppid(1) ... utime(11) stime(12)
    // cutime(13) cstime(14). Children's times count once they are reaped,
    // which is how socat's finished per-connection processes are included.
    let cpu_ticks = [11, 12, 13, 14]
        .iter()
        .map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum::<Option<u64>>()
        .ok_or_else(|| invalid(&format!("/proc/{pid}/stat")))?;
    Ok(Footprint {
        processes: 1,
        threads: kib_field(&status, "Threads:").unwrap_or(1),
        // A zombie has no VmRSS line: it holds no memory.
        rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
        pss_kib,
        cpu_ticks,
    })
}

/// The fields of /proc/PID/stat after the command name. The name is in
/// parentheses and may itself contain spaces and parentheses, so the split
/// starts after the *last* closing parenthesis.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().collect())
}

/// The first number after `label` on its line, e.g. `VmRSS:  1234 kB` → 1234.
fn kib_field(text: &str, label: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

fn with_context(error: io::Error, context: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

/// What the kernel holds for all processes at one moment, from /proc/meminfo: the memory a
/// process's RSS does not show. Each thread has a kernel stack (16 KiB on x86-64) and a
/// `task_struct` with its friends (in the slab); each socket has its own slab objects.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelMemory {
    /// `KernelStack`, KiB.
    pub kernel_stack_kib: u64,
    /// `Slab` (reclaimable and not), KiB.
    pub slab_kib: u64,
}

/// Reads /proc/meminfo. Machine-wide: other processes move these figures too, so they are
/// meaningful as deltas over many connections on a quiet machine.
pub fn kernel_memory() -> io::Result<KernelMemory> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .map_err(|e| with_context(e, "reading /proc/meminfo"))?;
    let field = |label| kib_field(&meminfo, label).ok_or_else(|| invalid("/proc/meminfo"));
    Ok(KernelMemory { kernel_stack_kib: field("KernelStack:")?, slab_kib: field("Slab:")? })
}
