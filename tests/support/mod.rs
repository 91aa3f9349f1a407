//! Shared test helpers: a relay on an ephemeral port, scriptable upstreams, deterministic
//! data, and counters of this process's open descriptors and threads.
//!
//! Every helper bounds its waits ([`TIMEOUT`]) and joins its threads when dropped.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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

/// This process's open file descriptors (Linux: entries of /proc/self/fd).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
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

    /// Records everything each connection sends until EOF, in order of arrival.
    pub fn recording() -> (Upstream, std::sync::mpsc::Receiver<Vec<u8>>) {
        let (sender, received) = std::sync::mpsc::channel();
        let sender = std::sync::Mutex::new(sender);
        let upstream = Upstream::start(move |stream| {
            let bytes = read_all(&stream).unwrap_or_default();
            let _ = sender.lock().unwrap().send(bytes);
        });
        (upstream, received)
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

/// An upstream address that always refuses: port 1 on loopback. Ports below 1024 are never
/// handed out for port 0, so unlike a freed ephemeral port ([`refusing_addr`]) no test
/// running in parallel can start listening there.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}
