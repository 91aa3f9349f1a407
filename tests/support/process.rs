//! The `tcprelay` binary as a child process: started, its start-up lines read, its log
//! collected, its descriptors and CPU time read from /proc, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::TIMEOUT;
use super::counters::{eventually, proc_file};

/// A relay running as a child process: the `tcprelay` binary, or any program that prints
/// `listening on ADDR` on stderr once bound (the Go programs of docs/go/ do). Its stderr is
/// collected line by line and its stdout lines (`--explain`) arrive on a channel. Killed
/// and reaped when dropped.
pub struct RelayProcess {
    child: Child,
    /// The address of its first route, read from its first `listening on ADDR` line.
    pub addr: SocketAddr,
    /// Every route's address, in the order of its `listening on` lines.
    pub routes: Vec<SocketAddr>,
    /// The admin endpoint, from its `admin endpoint on http://ADDR` line, if asked for.
    pub admin: Option<SocketAddr>,
    lines: mpsc::Receiver<String>,
    stdout_lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl RelayProcess {
    /// Runs `tcprelay ARGS` and waits for it to listen.
    pub fn start(args: &[&str]) -> RelayProcess {
        RelayProcess::start_routes(args, 1, false)
    }

    /// Runs `tcprelay ARGS` and reads its start-up lines: `routes` `listening on` lines,
    /// then the admin endpoint's line if `with_admin`.
    pub fn start_routes(args: &[&str], routes: usize, with_admin: bool) -> RelayProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcprelay"));
        command.args(args);
        RelayProcess::spawn(command, Stdio::null(), routes, with_admin)
    }

    /// Runs `tcprelay ARGS` whose log goes elsewhere (`--log-file`, `--syslog`), without
    /// waiting for anything: `addr` and `routes` stay unknown, and stderr is still collected
    /// (it should stay empty).
    pub fn start_logging_elsewhere(args: &[&str]) -> RelayProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcprelay"));
        command.args(args);
        RelayProcess::spawn(command, Stdio::null(), 0, false)
    }

    /// Runs `tcprelay ARGS` with `stdin` as its standard input (`--listen stdin` takes a
    /// listening socket there) and waits for it to listen.
    pub fn start_with_stdin(stdin: Stdio, args: &[&str]) -> RelayProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcprelay"));
        command.args(args);
        RelayProcess::spawn(command, stdin, 1, false)
    }

    /// Runs the program at `path` with `args` and waits for its `listening on` line.
    pub fn start_program(path: &std::path::Path, args: &[&str]) -> RelayProcess {
        let mut command = Command::new(path);
        command.args(args);
        RelayProcess::spawn(command, Stdio::null(), 1, false)
    }

    /// Runs `tcprelay ARGS` with at most `limit` file descriptors (`RLIMIT_NOFILE`). Std
    /// cannot set resource limits, so the shell does it and then `exec`s the relay: the
    /// child's pid is the relay's.
    pub fn start_with_fd_limit(limit: usize, args: &[&str]) -> RelayProcess {
        RelayProcess::start_with_ulimit(&format!("-n {limit}"), args, 1, false)
    }

    /// [`RelayProcess::start_with_fd_limit`], also reading the admin endpoint's address
    /// if `with_admin` (the arguments must then ask for one).
    pub fn start_with_fd_limit_and_admin(
        limit: usize,
        args: &[&str],
        with_admin: bool,
    ) -> RelayProcess {
        RelayProcess::start_with_ulimit(&format!("-n {limit}"), args, 1, with_admin)
    }

    /// Runs `tcprelay ARGS` under the shell's `ulimit ULIMIT` (e.g. `-v 100000`: at most
    /// 100,000 KiB of address space) and reads its start-up lines as
    /// [`start_routes`](RelayProcess::start_routes) does.
    pub fn start_with_ulimit(
        ulimit: &str,
        args: &[&str],
        routes: usize,
        with_admin: bool,
    ) -> RelayProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_tcprelay"))
            .args(args);
        RelayProcess::spawn(command, Stdio::null(), routes, with_admin)
    }

    /// Runs `tcprelay ARGS` in a mount namespace of its own (`unshare -m`) where `hosts`
    /// (a [`ConfigFile`](super::ConfigFile) holding lines such as `127.0.0.2 dead.test`) is
    /// bind-mounted over /etc/hosts, so that the system's resolver gives the names it lists,
    /// and only to the relay; under the shell's `ulimit ULIMIT` if `ulimit` is not empty.
    /// Reads its start-up lines as [`start_routes`](RelayProcess::start_routes) does. The
    /// child's pid is the relay's (`unshare` and `sh` each `exec` the next). Needs root:
    /// see [`can_use_private_hosts`].
    pub fn start_with_hosts(
        hosts: &super::ConfigFile,
        ulimit: &str,
        args: &[&str],
        routes: usize,
        with_admin: bool,
    ) -> RelayProcess {
        let command = tcprelay_with_hosts(hosts, ulimit, args);
        RelayProcess::spawn(command, Stdio::null(), routes, with_admin)
    }

    /// The connection cap from the relay's `connection cap` start-up line, and the limit
    /// that set it (`limited_by`).
    pub fn connection_cap(&self) -> (usize, String) {
        let line = self.log_line_with("msg=\"connection cap\"");
        let field = |name: &str| {
            line.split(' ')
                .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {name}= in {line}"))
                .to_string()
        };
        let cap = field("cap").parse().unwrap_or_else(|_| panic!("a number in cap=: {line}"));
        (cap, field("limited_by"))
    }

    /// Starts `command` and reads its start-up lines, which must come first on stderr: one
    /// `listening on ADDR` per route, then `admin endpoint on http://ADDR` if `with_admin`.
    fn spawn(mut command: Command, stdin: Stdio, routes: usize, with_admin: bool) -> RelayProcess {
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        let (send_stdout, stdout_lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader_log = Arc::clone(&log);
        let readers = vec![
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    reader_log
                        .lock()
                        .expect("no thread panicked holding the relay's stderr log")
                        .push(line.clone());
                    let _ = send.send(line);
                }
            }),
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = send_stdout.send(line);
                }
            }),
        ];
        let mut process = RelayProcess {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            routes: Vec::new(),
            admin: None,
            lines,
            stdout_lines,
            log,
            readers,
        };
        for _ in 0..routes {
            let addr = process.startup_addr(&command, "listening on ");
            process.routes.push(addr);
        }
        process.addr = process.routes.first().copied().unwrap_or(process.addr);
        if with_admin {
            process.admin = Some(process.startup_addr(&command, "admin endpoint on http://"));
        }
        process
    }

    /// The address after `marker` in the next stderr line; if that line does not come within
    /// [`TIMEOUT`] or has no such address, kills the process and panics with its stderr.
    fn startup_addr(&mut self, command: &Command, marker: &str) -> SocketAddr {
        let line = self.lines.recv_timeout(TIMEOUT).unwrap_or_default();
        // `listening on 127.0.0.1:PORT`, bare (Go) or in a logfmt msg="..." (tcprelay);
        // `listening on udp:127.0.0.1:PORT` for a UDP route
        let addr = line
            .split(marker)
            .nth(1)
            .map(|rest| rest.strip_prefix("udp:").unwrap_or(rest))
            .and_then(|rest| rest.split(['"', ' ', '/']).next())
            .and_then(|addr| addr.parse().ok());
        addr.unwrap_or_else(|| {
            self.kill_and_reap();
            let stderr = self
                .log
                .lock()
                .expect("the stderr reader did not panic holding the log")
                .join("\n");
            panic!(
                "{command:?} printed no `{marker}ADDR` line within {TIMEOUT:?}; stderr:\n{stderr}"
            )
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the next stderr line that contains `needle`, and returns it.
    pub fn log_line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {TIMEOUT:?}"),
            }
        }
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("the stderr log is intact for reading").clone()
    }

    /// How many stderr lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("the stderr log is intact for counting")
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// The next line on stdout, within [`TIMEOUT`].
    pub fn stdout_line(&self) -> String {
        self.stdout_lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no stdout line within {TIMEOUT:?}"))
    }

    /// Its stdout lines up to and including the first that contains `last`.
    pub fn stdout_until(&self, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stdout_lines.recv_timeout(TIMEOUT) {
                Ok(line) if line.contains(last) => {
                    lines.push(line);
                    return lines;
                }
                Ok(line) => lines.push(line),
                Err(_) => panic!("no stdout line with {last:?} within {TIMEOUT:?}; got {lines:#?}"),
            }
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the process to exit by itself and returns its exit code.
    pub fn wait_for_exit(&mut self) -> Option<i32> {
        assert!(eventually(|| !self.is_running()), "the process did not exit");
        self.child.wait().expect("reap the process").code()
    }

    /// A number from the process's /proc/PID/status, e.g. `Threads`, or `VmRSS` in kB.
    pub fn status(&self, field: &str) -> u64 {
        let path = proc_file(format!("/proc/{}/status", self.pid()));
        let status = std::fs::read_to_string(&path).expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }

    /// The relay's own resident memory in kB: what its heap, its thread stacks and its
    /// other anonymous mappings hold, summed from the `Rss:` lines of /proc/PID/smaps.
    /// Unlike `VmRSS`, it leaves out the pages of the program's code and libraries (file
    /// mappings, which do not grow with the bytes relayed) and, under an emulator, the
    /// emulator's own memory.
    ///
    /// Under `qemu-user` (the process's /proc/PID/exe is `qemu-ARCH`: the cross-target runs
    /// of tests/targets.sh) the process holds two programs. qemu places the guest at guest
    /// base 0, in low memory (below 4 GiB for a 32-bit guest, from `0x55_0000_0000` for a
    /// 64-bit one), while the kernel maps qemu itself high (its image from
    /// `0x55xx_xxxx_xxxx`, then its `[heap]`, its translated-code buffer, its threads' malloc
    /// arenas, its libraries). Only the mappings below qemu's own image are the relay's.
    /// qemu's heap grows by megabytes while it translates a busy relay; counting it is what
    /// made a whole-process RSS bound fail under emulation. Panics if that layout does not
    /// hold (no file of the guest program below qemu's image), rather than measure the
    /// wrong thing.
    pub fn own_memory_kb(&self) -> u64 {
        let pid = self.pid();
        let exe =
            std::fs::read_link(proc_file(format!("/proc/{pid}/exe"))).expect("read /proc/PID/exe");
        let emulated = exe
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("qemu-"));
        let smaps = std::fs::read_to_string(proc_file(format!("/proc/{pid}/smaps")))
            .expect("read /proc/PID/smaps");
        // (start address, path or [name] or "" for anonymous, Rss in kB) per mapping.
        let mut mappings: Vec<(u64, String, u64)> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            if let Some((start, _end)) = first.split_once('-') {
                if let Ok(start) = u64::from_str_radix(start, 16) {
                    // range perms offset dev inode [path]; a path may contain spaces
                    let path: Vec<&str> = fields.skip(4).collect();
                    mappings.push((start, path.join(" "), 0));
                    continue;
                }
            }
            if let (Some("Rss:"), Some(kb), Some(mapping)) =
                (Some(first), fields.next(), mappings.last_mut())
            {
                mapping.2 = kb.parse().unwrap_or_else(|_| panic!("Rss in smaps: {line:?}"));
            }
        }
        let exe_path = exe.to_string_lossy();
        let limit = if emulated {
            let emulator_start = mappings
                .iter()
                .filter(|(_, path, _)| *path == exe_path)
                .map(|(start, _, _)| *start)
                .min()
                .unwrap_or_else(|| panic!("no mapping of {exe_path} in /proc/{pid}/smaps"));
            let guest_files = mappings
                .iter()
                .any(|(start, path, _)| *start < emulator_start && path.starts_with('/'));
            assert!(
                guest_files,
                "under {exe_path}, no file mapped below the emulator at {emulator_start:#x}: \
                 cannot tell the relay's memory from the emulator's"
            );
            emulator_start
        } else {
            u64::MAX
        };
        mappings
            .iter()
            .filter(|(start, path, _)| {
                *start < limit && (path.is_empty() || path == "[heap]" || path == "[stack]")
            })
            .map(|(_, _, kb)| kb)
            .sum()
    }

    /// The CPU time the process has used so far, user plus system, all threads
    /// (`utime` + `stime` from /proc/PID/stat, in clock ticks of 1/100 s on Linux).
    pub fn cpu_time(&self) -> Duration {
        const TICKS_PER_SECOND: u64 = 100; // USER_HZ, `getconf CLK_TCK`
        let stat = std::fs::read_to_string(proc_file(format!("/proc/{}/stat", self.pid())))
            .expect("read /proc/PID/stat");
        // The command name, field 2, is in parentheses and may hold spaces: count the fields
        // after its closing parenthesis. utime and stime are fields 14 and 15.
        let after_name = &stat[stat.rfind(')').expect("a (comm) field") + 2..];
        let fields: Vec<u64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| {
                f.parse().unwrap_or_else(|e| {
                    panic!("utime and stime in /proc/PID/stat are numbers, not {f:?}: {e}")
                })
            })
            .collect();
        Duration::from_millis((fields[0] + fields[1]) * 1000 / TICKS_PER_SECOND)
    }

    /// The numbers of the process's open file descriptors.
    pub fn open_fds(&self) -> Vec<u32> {
        std::fs::read_dir(proc_file(format!("/proc/{}/fd", self.pid())))
            .expect("read /proc/PID/fd")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Kills the process (if it still runs) and returns every line it wrote to stderr.
    pub fn kill_and_collect_log(mut self) -> Vec<String> {
        self.kill_and_reap();
        std::mem::take(&mut *self.log.lock().expect("the stderr log is intact for collecting"))
    }

    fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join(); // ends at EOF on the pipe, now that the process is gone
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Runs `tcprelay ARGS` to completion and returns its exit status and output.
pub fn run_tcprelay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcprelay")).args(args).output().expect("run tcprelay")
}

/// Runs `tcprelay ARGS` (e.g. `--check ...`) to its end with `hosts` as its /etc/hosts,
/// as [`RelayProcess::start_with_hosts`] does.
pub fn run_tcprelay_with_hosts(hosts: &super::ConfigFile, args: &[&str]) -> Output {
    tcprelay_with_hosts(hosts, "", args).output().expect("run tcprelay under unshare -m")
}

/// The command that runs `tcprelay ARGS` in a mount namespace of its own with `hosts`
/// bind-mounted over /etc/hosts, under `ulimit ULIMIT` unless that is empty.
fn tcprelay_with_hosts(hosts: &super::ConfigFile, ulimit: &str, args: &[&str]) -> Command {
    let limit = if ulimit.is_empty() { String::new() } else { format!("ulimit {ulimit} && ") };
    let mut command = Command::new("unshare");
    command
        .args(["-m", "sh", "-c"])
        .arg(format!("mount --bind \"$HOSTS\" /etc/hosts && {limit}exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_tcprelay"))
        .args(args)
        .env("HOSTS", &hosts.path);
    command
}

/// Whether this process may give a child a private /etc/hosts (a mount namespace and a bind
/// mount: root, or a container that allows `unshare -m`). When not, the test prints why
/// and returns, as tests needing root do; CI runs as root.
pub fn can_use_private_hosts() -> bool {
    let allowed = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !allowed {
        eprintln!("skipped: `unshare -m` and `mount --bind` need root (CI runs as root)");
    }
    allowed
}

/// The emulator these tests run under, if any: tests/targets.sh runs a foreign target's
/// binaries through `CARGO_TARGET_<TRIPLE>_RUNNER=qemu-…`, which the test process inherits.
/// Under qemu-user, `ulimit -v` bounds the emulator too (it maps 128 MiB for its translated
/// code before the relay runs a line), so an address-space limit measures qemu, not the
/// relay: tests of `ulimit -v` then say so and check nothing (docs/targets.md). The native 32-bit
/// run (i686) and the host's run keep them honest.
pub fn emulator() -> Option<String> {
    std::env::vars().find_map(|(name, value)| {
        let runner = name.starts_with("CARGO_TARGET_") && name.ends_with("_RUNNER");
        (runner && value.contains("qemu")).then_some(value)
    })
}
