//! Shared test helpers: a relay on an ephemeral port (in this process, or the binary as a
//! child process), scriptable upstreams, deterministic data, and counters of open
//! descriptors and threads (with a [`Baseline`] to compare them with after a fault).
//!
//! Every helper bounds its waits ([`TIMEOUT`]) and joins its threads when dropped.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_utils::sync::WaitGroup;
use tcprelay::{Config, LogLevel, Relay, StopHandle};

/// The longest any single wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A relay serving on its own thread; stopped and joined when dropped.
pub struct TestRelay {
    pub addr: SocketAddr,
    /// The relay's live counters.
    pub metrics: Arc<tcprelay::metrics::RouteMetrics>,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestRelay {
    /// A relay to `upstream` with default settings (logging only errors).
    pub fn to(upstream: impl ToString) -> TestRelay {
        TestRelay::start(Config { upstream: upstream.to_string(), ..quiet_config() })
    }

    /// A relay with this configuration.
    pub fn start(config: Config) -> TestRelay {
        let relay = Relay::bind(config).expect("bind the relay on 127.0.0.1:0");
        let addr = relay.local_addr();
        let stop = relay.stop_handle();
        let metrics = relay.metrics();
        let thread = Some(thread::spawn(move || relay.serve()));
        TestRelay { addr, metrics, stop, thread }
    }

    /// Stops the relay and waits until `serve` has returned.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let result = thread.join().expect("relay thread panicked");
            result.expect("serve returned an error");
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop_and_join();
        } else {
            self.stop.stop();
        }
    }
}

/// Defaults for tests: loopback, ephemeral port, errors only on stderr.
pub fn quiet_config() -> Config {
    Config { log_level: LogLevel::Error, ..Config::default() }
}

/// A test upstream: accepts on 127.0.0.1:0 and runs `handler` on its own thread for each
/// connection. Dropping it stops accepting and joins every handler thread.
pub struct Upstream {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test upstream");
        Upstream::on(listener, handler)
    }

    /// An upstream accepting on `listener` (see [`Upstream::start`]).
    pub fn on(
        listener: TcpListener,
        handler: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (count, flag) = (Arc::clone(&accepted), Arc::clone(&stopping));
        let thread = thread::spawn(move || {
            thread::scope(|scope| {
                for stream in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                    let handler = &handler;
                    scope.spawn(move || handler(stream));
                }
            });
        });
        Upstream { addr, accepted, stopping, thread: Some(thread) }
    }

    /// Echoes every byte back; at EOF, half-closes after the last byte.
    pub fn echo() -> Upstream {
        Upstream::start(|stream| {
            let _ = io::copy(&mut &stream, &mut &stream);
            let _ = stream.shutdown(std::net::Shutdown::Write);
        })
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if !thread::panicking() {
                joined.expect("an upstream handler panicked");
            }
        }
    }
}

/// A client connection with every wait bounded by [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the relay");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads until EOF (bounded by the stream's read timeout).
pub fn read_all(mut stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes all of `bytes`.
pub fn write_all(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)
}

/// Connects to `addr`, sends `data`, half-closes, and returns what came back up to EOF
/// (see [`exchange`]).
pub fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    exchange(&connect(addr), data)
}

/// Writes all of `sent` on a second thread while this one reads, half-closes after the last
/// byte, and returns everything that came back up to EOF. Writing and reading at once lets
/// an echo of more than the socket buffers hold through without a deadlock.
pub fn exchange(client: &TcpStream, sent: &[u8]) -> Vec<u8> {
    thread::scope(|scope| {
        scope.spawn(|| {
            write_all(client, sent).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
        });
        read_all(client).unwrap()
    })
}

/// `len` deterministic pseudo-random bytes for `seed` (xorshift64*), so each connection's
/// data differs and any loss, duplication or reordering changes the comparison.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// FNV-1a, a checksum for comparing large transfers.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// This process's open file descriptors (Linux: entries of /proc/self/fd), except one a
/// relay may open for a moment: /proc/sys/vm/max_map_count, which the first relay of the
/// process reads (with its other limits, see src/limits/capacity.rs). A test that takes its
/// count while a relay it just started reads that file would otherwise count one too many.
pub fn open_fds() -> usize {
    let entries = std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    let map_limit = std::path::Path::new("/proc/sys/vm/max_map_count");
    entries
        .filter_map(Result::ok)
        .filter(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target != map_limit))
        .count()
}

/// This process's threads (Linux: `Threads:` in /proc/self/status).
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// The names of this process's threads (Linux: /proc/self/task/*/comm), for failure messages.
pub fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// How many relay threads this process has: connection threads (`tcprelay-conn`, running a
/// connection or parked for the next) and accept and admin threads (`tcprelay-accept-N`,
/// `tcprelay-admin`). Not the log writer (`tcprelay-log`): there is one per process, started
/// by the first line logged and never ended, so it is not something a relay leaks.
pub fn connection_threads() -> usize {
    let names = thread_names();
    names.iter().filter(|name| name.starts_with("tcprelay-") && *name != "tcprelay-log").count()
}

/// Polls `condition` until it holds or [`TIMEOUT`] passes; returns whether it held.
///
/// Only for effects that no signal announces, such as an exiting thread leaving
/// /proc/self/status or a closed descriptor leaving /proc/self/fd.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// An address where nothing listens: bind a port, then free it.
pub fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------
// Faults (issue 3): serialised counting, baselines, the binary as a child process, a gated
// echo upstream.
// ---------------------------------------------------------------------------------------

/// Runs the tests of one binary one at a time. Tests that compare this process's descriptor
/// and thread counts with a [`Baseline`], or that share a static thread hook, take it first:
/// a test running beside them would move the counts.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding the lock poisons it; the next test may still run.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process's open descriptors and relay connection threads at one moment, to compare
/// with later.
///
/// It counts the relay's threads (named `tcprelay-...`), not every thread:
/// the test harness starts the next test's thread while this test runs, even when that
/// test then waits for [`serial`].
#[derive(Debug)]
pub struct Baseline {
    fds: usize,
    connection_threads: usize,
}

impl Baseline {
    /// The counts now. Take it after the relay and the upstream have started.
    pub fn take() -> Baseline {
        Baseline { fds: open_fds(), connection_threads: connection_threads() }
    }

    /// Waits (bounded) until both counts are back where they were; panics if they are not.
    pub fn assert_restored(&self) {
        assert!(
            eventually(|| open_fds() == self.fds),
            "descriptors: {} at the start, {} now",
            self.fds,
            open_fds()
        );
        assert!(
            eventually(|| connection_threads() == self.connection_threads),
            "connection threads: {} at the start, {} now: {:?}",
            self.connection_threads,
            connection_threads(),
            thread_names()
        );
    }
}

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
        RelayProcess::spawn(command, routes, with_admin)
    }

    /// Runs the program at `path` with `args` and waits for its `listening on` line.
    pub fn start_program(path: &std::path::Path, args: &[&str]) -> RelayProcess {
        let mut command = Command::new(path);
        command.args(args);
        RelayProcess::spawn(command, 1, false)
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
        RelayProcess::spawn(command, routes, with_admin)
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
    fn spawn(mut command: Command, routes: usize, with_admin: bool) -> RelayProcess {
        let mut child = command
            .stdin(Stdio::null())
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
                    reader_log.lock().unwrap().push(line.clone());
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
        process.addr = process.routes[0];
        if with_admin {
            process.admin = Some(process.startup_addr(&command, "admin endpoint on http://"));
        }
        process
    }

    /// The address after `marker` in the next stderr line; if that line does not come within
    /// [`TIMEOUT`] or has no such address, kills the process and panics with its stderr.
    fn startup_addr(&mut self, command: &Command, marker: &str) -> SocketAddr {
        let line = self.lines.recv_timeout(TIMEOUT).unwrap_or_default();
        // `listening on 127.0.0.1:PORT`, bare (Go) or in a logfmt msg="..." (tcprelay)
        let addr = line
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split(['"', ' ', '/']).next())
            .and_then(|addr| addr.parse().ok());
        addr.unwrap_or_else(|| {
            self.kill_and_reap();
            let stderr = self.log.lock().unwrap().join("\n");
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

    /// How many stderr lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|line| line.contains(needle)).count()
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
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }

    /// The CPU time the process has used so far, user plus system, all threads
    /// (`utime` + `stime` from /proc/PID/stat, in clock ticks of 1/100 s on Linux).
    pub fn cpu_time(&self) -> Duration {
        const TICKS_PER_SECOND: u64 = 100; // USER_HZ, `getconf CLK_TCK`
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // The command name, field 2, is in parentheses and may hold spaces: count the fields
        // after its closing parenthesis. utime and stime are fields 14 and 15.
        let after_name = &stat[stat.rfind(')').expect("a (comm) field") + 2..];
        let fields: Vec<u64> =
            after_name.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        Duration::from_millis((fields[0] + fields[1]) * 1000 / TICKS_PER_SECOND)
    }

    /// The numbers of the process's open file descriptors.
    pub fn open_fds(&self) -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Kills the process (if it still runs) and returns every line it wrote to stderr.
    pub fn kill_and_collect_log(mut self) -> Vec<String> {
        self.kill_and_reap();
        std::mem::take(&mut *self.log.lock().unwrap())
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

/// An echo upstream that holds every connection until [`GatedEcho::open_gate`], and counts
/// its live connections exactly: a handler leaves the count *before* it closes its socket,
/// and a relay can free its slot only after it has seen that close, so the peak is the most
/// upstream connections the relay ever had at once (no sampling).
pub struct GatedEcho {
    upstream: Upstream,
    counts: Arc<(Mutex<GateCounts>, Condvar)>,
}

#[derive(Debug, Default)]
struct GateCounts {
    live: usize,
    peak: usize,
    open: bool,
}

impl GatedEcho {
    pub fn start() -> GatedEcho {
        let counts = Arc::new((Mutex::new(GateCounts::default()), Condvar::new()));
        let handler_counts = Arc::clone(&counts);
        let upstream = Upstream::start(move |stream| {
            let (lock, changed) = &*handler_counts;
            let mut counts = lock.lock().unwrap();
            counts.live += 1;
            counts.peak = counts.peak.max(counts.live);
            changed.notify_all();
            let (counts, _) =
                changed.wait_timeout_while(counts, TIMEOUT, |counts| !counts.open).unwrap();
            drop(counts);
            let _ = io::copy(&mut &stream, &mut &stream);
            lock.lock().unwrap().live -= 1; // before the close, which is the drop below
            drop(stream);
        });
        GatedEcho { upstream, counts }
    }

    pub fn addr(&self) -> SocketAddr {
        self.upstream.addr
    }

    /// Waits (bounded) until `n` connections are held; returns whether they were.
    pub fn wait_until_live(&self, n: usize) -> bool {
        let (lock, changed) = &*self.counts;
        let counts = lock.lock().unwrap();
        let (counts, _) = changed.wait_timeout_while(counts, TIMEOUT, |c| c.live < n).unwrap();
        counts.live >= n
    }

    /// Lets every held connection, and every later one, go on echoing.
    pub fn open_gate(&self) {
        let (lock, changed) = &*self.counts;
        lock.lock().unwrap().open = true;
        changed.notify_all();
    }

    /// The most connections that were open at once.
    pub fn peak(&self) -> usize {
        self.counts.0.lock().unwrap().peak
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.upstream.accepted()
    }
}

/// Opens `clients` clients to `relay` at once; once every one is connected (in the relay's
/// backlog, if it is full), calls `all_connected`. Each client then echoes its own data
/// (a different size and content per client) and checks what comes back.
pub fn echo_clients_at_once(relay: SocketAddr, clients: u64, all_connected: impl FnOnce()) {
    let connected = WaitGroup::new();
    thread::scope(|scope| {
        for client_id in 0..clients {
            let connected = connected.clone();
            scope.spawn(move || {
                let sent = pattern(client_id, 10_000 + client_id as usize * 997);
                let client = connect(relay); // completes in the backlog even at the limit
                drop(connected);
                let received = exchange(&client, &sent);
                assert!(received == sent, "client {client_id}: the echo differs");
            });
        }
        connected.wait();
        all_connected();
    });
}

// ---------------------------------------------------------------------------------------
// Operations (issue 6): upstreams that say who they are, recording upstreams, metrics.
// ---------------------------------------------------------------------------------------

impl Upstream {
    /// Sends `name`, half-closes, and reads until the client's EOF: a client reading to EOF
    /// learns which upstream served it.
    pub fn banner(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test upstream");
        Upstream::banner_on(listener, name)
    }

    /// [`Upstream::banner`] on a given listener (e.g. bound to a port that refused before).
    pub fn banner_on(listener: TcpListener, name: &'static str) -> Upstream {
        Upstream::on(listener, move |stream| {
            let _ = write_all(&stream, name.as_bytes());
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = read_all(&stream);
        })
    }

    /// Records everything each connection sends until EOF, in order of arrival (or the
    /// error that ended the read first).
    pub fn recording() -> (Upstream, mpsc::Receiver<io::Result<Vec<u8>>>) {
        let (sender, received) = mpsc::channel();
        let sender = Mutex::new(sender);
        let upstream = Upstream::start(move |stream| {
            let _ = sender.lock().unwrap().send(read_all(&stream));
        });
        (upstream, received)
    }
}

/// A relay config with these upstreams, in order.
pub fn to_all(upstreams: &[String]) -> Config {
    Config {
        upstream: upstreams[0].clone(),
        more_upstreams: upstreams[1..].to_vec(),
        ..quiet_config()
    }
}

/// Connects to `addr` and reads until EOF: the name a [`Upstream::banner`] sent.
pub fn served_by(addr: SocketAddr) -> String {
    let client = connect(addr);
    let bytes = read_all(&client).expect("read the banner");
    String::from_utf8(bytes).expect("a UTF-8 banner")
}

/// Waits (bounded) until a relay has no active connection, then returns its counters.
pub fn settled(metrics: &tcprelay::metrics::RouteMetrics) -> tcprelay::metrics::RouteSnapshot {
    assert!(eventually(|| metrics.snapshot().active == 0), "connections still active");
    metrics.snapshot()
}

/// A [`tcprelay::Server`] serving on its own thread. Dropping it stops it; [`TestServer::finish`]
/// waits (bounded) for `serve` to return after a drain.
pub struct TestServer {
    pub addrs: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub handle: tcprelay::ServerHandle,
    pub metrics: Vec<Arc<tcprelay::metrics::RouteMetrics>>,
    served: Option<std::sync::mpsc::Receiver<io::Result<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: tcprelay::ServerConfig) -> TestServer {
        let server = tcprelay::Server::bind(config).expect("bind the server on loopback");
        let addrs = server
            .local_addrs()
            .into_iter()
            .map(|addr| match addr {
                tcprelay::Address::Tcp(addr) => addr,
                unix => panic!("TestServer is for TCP routes, not {unix}"),
            })
            .collect();
        let admin = server.admin_addr();
        let (handle, metrics) = (server.handle(), server.metrics());
        let (sender, served) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let _ = sender.send(server.serve());
        });
        TestServer { addrs, admin, handle, metrics, served: Some(served), thread: Some(thread) }
    }

    /// Waits until `serve` has returned (after a drain or stop), at most [`TIMEOUT`].
    pub fn finish(mut self) -> io::Result<()> {
        let served = self.served.take().expect("finish is called once");
        let result = served.recv_timeout(TIMEOUT).expect("serve did not return in time");
        self.thread.take().expect("the thread").join().expect("server thread panicked");
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            if !thread::panicking() {
                thread.join().expect("server thread panicked");
            }
        }
    }
}

/// Sends `request` as is to an HTTP endpoint and returns the status code and the body.
pub fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let stream = connect(addr);
    // The server may answer (and close) before it has read everything; that is fine.
    let _ = write_all(&stream, request);
    let response = read_all(&stream).unwrap_or_default();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string());
    (status, body.unwrap_or_default())
}

/// `GET path` on an HTTP endpoint: the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
}

/// `POST path` as curl sends it (`Host:` the admin address, no `Origin`, empty body): the
/// status and the body. The admin endpoint refuses a state change with any other `Host`.
pub fn http_post(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    http(addr, request.as_bytes())
}

/// An upstream address that always refuses: port 1 on loopback. Ports below 1024 are never
/// handed out for port 0, so unlike a freed ephemeral port ([`refusing_addr`]) no test
/// running in parallel can start listening there.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}

// ---------------------------------------------------------------------------------------
// The seed's scenario (tests/go_programs.rs, tests/seed_bug_in_rust.rs): its messages, an
// upstream that hands each connection to the test, and reads that name who failed.
// ---------------------------------------------------------------------------------------

/// The client's second message: what follows the first one.
pub const SECOND_MESSAGE: &[u8] = b"second message\n";

/// The client's first message: exactly 128 bytes, the size of the seed's `data` buffer,
/// written with one `write` right after connect. On loopback one write is one segment, so
/// the seed's one `conn.Read(data)` takes exactly this message, no less and no more.
pub fn first_message() -> Vec<u8> {
    let mut message = b"first message: 128 bytes, one write, right after connect".to_vec();
    message.resize(127, b'.');
    message.push(b'\n');
    message
}

/// Bytes as text for messages and comparisons (every message in these tests is ASCII).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes all of `bytes`, panicking with the reason if the peer is gone.
pub fn send(mut stream: &TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap_or_else(|e| panic!("write {:?}: {e}", text(bytes)));
}

/// Reads exactly `len` bytes or panics, naming `who` and what had arrived.
pub fn read_exactly(mut stream: &TcpStream, len: usize, who: &str) -> Vec<u8> {
    let mut received = Vec::with_capacity(len);
    let mut buffer = [0u8; 4096];
    while received.len() < len {
        let want = (len - received.len()).min(buffer.len());
        match stream.read(&mut buffer[..want]) {
            Ok(0) => panic!("{who}: EOF after {:?}, expected {len} bytes", text(&received)),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) => panic!("{who}: {e} after {:?}, expected {len} bytes", text(&received)),
        }
    }
    received
}

/// Reads until EOF (each read bounded by the stream's read timeout), or panics naming `who`.
pub fn read_to_eof(mut stream: &TcpStream, who: &str) -> Vec<u8> {
    let mut received = Vec::new();
    if let Err(e) = stream.read_to_end(&mut received) {
        panic!("{who}: no EOF: {e} after {:?}", text(&received));
    }
    received
}

/// Asserts that nothing, not even EOF, arrives on `stream` within `quiet`; then restores
/// the read timeout to [`TIMEOUT`].
pub fn assert_silent(mut stream: &TcpStream, quiet: Duration, who: &str) {
    stream.set_read_timeout(Some(quiet)).expect("set a read timeout");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        Ok(0) => panic!("{who}: EOF arrived"),
        Ok(n) => panic!("{who}: {:?} arrived", text(&buffer[..n])),
        Err(e) => panic!("{who}: {e}"),
    }
    stream.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
}

/// Reads `len` bytes on `a` and on `b` at once and returns what each got. As soon as one
/// has them, the other's read side is shut down, which wakes its blocked read with EOF: no
/// waiting out a timeout.
pub fn who_receives(a: &TcpStream, b: &TcpStream, len: usize) -> (Vec<u8>, Vec<u8>) {
    let (done_tx, done_rx) = mpsc::channel();
    thread::scope(|scope| {
        let readers = [a, b].map(|mut stream| {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut received = Vec::new();
                let mut buffer = [0u8; 64];
                while received.len() < len {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => received.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = done_tx.send(());
                received
            })
        });
        if done_rx.recv_timeout(TIMEOUT + TIMEOUT).is_ok() {
            for stream in [a, b] {
                let _ = stream.shutdown(std::net::Shutdown::Read);
            }
        }
        let [a, b] = readers.map(|reader| reader.join().expect("the reader does not panic"));
        (a, b)
    })
}

/// An upstream that hands each connection it accepts to the test, in order, through
/// [`Accepted`]; [`Upstream::accepted`] counts them.
pub fn handing_upstream() -> (Upstream, Accepted) {
    let (handed_tx, handed_rx) = mpsc::channel();
    let upstream = Upstream::start(move |stream| {
        let _ = handed_tx.send(stream);
    });
    (upstream, Accepted(handed_rx))
}

/// The upstream's side of each connection a relay opened, in order.
pub struct Accepted(mpsc::Receiver<TcpStream>);

impl Accepted {
    /// The next connection the relay opened to the upstream, within [`TIMEOUT`].
    pub fn next(&self, who: &str) -> TcpStream {
        self.0
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("{who}: no upstream connection within {TIMEOUT:?}"))
    }
}

// ---------------------------------------------------------------------------------------
// Tools (issue 11): the lab's commands need OpenBSD's nc, not any netcat.
// ---------------------------------------------------------------------------------------

/// What a test that needs OpenBSD's `nc` says when it finds none. ncat, GNU and traditional
/// netcat and busybox all answer to `nc`, but their flags differ (`-N`, `-d`, what `-v -l`
/// prints), so the lab's commands would fail in ways that do not say why.
pub const NOT_OPENBSD_NC: &str = "nc is not OpenBSD netcat: apt-get install netcat-openbsd";

/// OpenBSD's `nc`, looked up once on `PATH` (see [`find_openbsd_nc`]); panics with
/// [`NOT_OPENBSD_NC`] when there is none.
pub fn openbsd_nc() -> &'static std::path::Path {
    static FOUND: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    let found =
        FOUND.get_or_init(|| find_openbsd_nc(&std::env::var_os("PATH").unwrap_or_default()));
    found.as_deref().unwrap_or_else(|message| panic!("{message}"))
}

/// The first OpenBSD netcat in the directories of `path` (a `PATH` value): `nc.openbsd`
/// first, Debian's own name for it, which is there whatever `nc` the alternatives system
/// points at; then `nc`. A program counts as OpenBSD's when its `-h` output says
/// "OpenBSD netcat" (`OpenBSD netcat (Debian patchlevel 1.219-1)`). Otherwise the error is
/// [`NOT_OPENBSD_NC`].
pub fn find_openbsd_nc(path: &std::ffi::OsStr) -> Result<std::path::PathBuf, String> {
    let says_openbsd = |program: &std::path::Path| {
        Command::new(program)
            .arg("-h")
            .stdin(Stdio::null())
            .output()
            .map(|out| [out.stdout, out.stderr].concat())
            .is_ok_and(|help| String::from_utf8_lossy(&help).contains("OpenBSD netcat"))
    };
    ["nc.openbsd", "nc"]
        .into_iter()
        .filter_map(|name| {
            std::env::split_paths(path).map(|dir| dir.join(name)).find(|p| p.is_file())
        })
        .find(|program| says_openbsd(program))
        .ok_or_else(|| NOT_OPENBSD_NC.to_string())
}

// ---------------------------------------------------------------------------------------
// Upstream dialling (issue 14): a blackholed address, and names that resolve to the
// address lists a test needs.
// ---------------------------------------------------------------------------------------

/// A listener whose backlog is full, so that a connect to it is neither accepted nor
/// refused: the SYN is dropped and the connect waits until its timeout, as for a host that
/// is down or firewalled. Std listens with a backlog of 128; Linux queues one more than
/// that; the connects that fill it are held here, and the listener never accepts.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    /// A blackholed port on `ip` (`::1` or `127.0.0.1`). Panics if the backlog does not
    /// fill, i.e. if this machine would answer instead of dropping the SYN.
    pub fn on(ip: &str) -> Blackhole {
        let listener = TcpListener::bind((ip, 0)).expect("bind the blackhole");
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(stream) => queued.push(stream),
                Err(error) if error.kind() == io::ErrorKind::TimedOut => break,
                Err(error) => panic!("filling the backlog of {addr}: {error}"),
            }
            assert!(queued.len() < 10_000, "the backlog of {addr} never filled");
        }
        Blackhole { addr, _listener: listener, _queued: queued }
    }
}

/// The names [`fake_resolver`] knows, with their addresses in order.
static FAKE_NAMES: Mutex<Vec<(String, Vec<SocketAddr>)>> = Mutex::new(Vec::new());

/// Makes `upstream` (a `host:port` no real resolver knows, say `dual.test:1`) resolve to
/// `addrs`, in this order, through [`fake_resolver`].
pub fn fake_name(upstream: &str, addrs: &[SocketAddr]) {
    let mut names = FAKE_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names.retain(|(name, _)| name != upstream);
    names.push((upstream.to_string(), addrs.to_vec()));
}

/// A [`tcprelay::Resolver`] for the names given to [`fake_name`]; any other is resolved
/// by the system. (No name on this machine resolves to both `::1` and `127.0.0.1`.)
pub fn fake_resolver(upstream: &str) -> io::Result<Vec<SocketAddr>> {
    let names = FAKE_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    match names.iter().find(|(name, _)| name == upstream) {
        Some((_, addrs)) => Ok(addrs.clone()),
        None => tcprelay::system_resolver(upstream),
    }
}
