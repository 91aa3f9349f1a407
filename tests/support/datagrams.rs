//! UDP peers for the datagram relay's tests: upstreams that echo or answer as a test
//! scripts and remember who sent what, clients with bounded waits that check each reply's
//! source, and the relay's `flow closed` lines and `tcprelay_udp_*` metrics read back.
//!
//! UDP loses datagrams by design, but not on loopback at the small rates these helpers use:
//! a client sends, then waits for the reply before it sends again ([`request`]), so no
//! receive buffer ever holds more than a window of datagrams. Floods are for tests where loss
//! is the point.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::TIMEOUT;
use super::process::RelayProcess;

/// One byte more than the largest UDP payload over IPv4: a buffer that shows a datagram
/// that was cut by filling up.
pub const DATAGRAM_BUFFER: usize = 65_508;

/// A UDP upstream on an ephemeral loopback port that sends every datagram back to its
/// sender, whole, and remembers each sender's address. Stopped and joined when dropped.
pub struct UdpEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    senders: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// An echo on `ip` (`127.0.0.1` or `::1`) and a free port.
    pub fn start(ip: &str) -> UdpEcho {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the UDP echo upstream");
        // Its loop looks at the stop flag this often.
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let addr = socket.local_addr().expect("the echo's address");
        let senders = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&senders), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buffer = vec![0; DATAGRAM_BUFFER];
            while !stopped.load(Ordering::Acquire) {
                if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                    seen.lock().expect("the echo's list is intact").push(from);
                    let _ = socket.send_to(&buffer[..len], from);
                }
            }
        });
        UdpEcho { addr, senders, stop, thread: Some(thread) }
    }

    /// Every sender, one entry per datagram received, in order.
    pub fn senders(&self) -> Vec<SocketAddr> {
        self.senders.lock().expect("the echo's list is intact").clone()
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP client on an ephemeral port of `ip`, whose receives wait at most [`TIMEOUT`].
pub fn udp_client(ip: &str) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a UDP client");
    socket.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    socket
}

/// Sends `datagram` to `to` and returns the next datagram received and who sent it.
pub fn udp_round_trip(
    client: &UdpSocket,
    to: SocketAddr,
    datagram: &[u8],
) -> (Vec<u8>, SocketAddr) {
    client.send_to(datagram, to).expect("send a datagram");
    udp_receive(client).expect("a reply within the timeout")
}

/// The next datagram `client` receives, and who sent it.
pub fn udp_receive(client: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
    let mut buffer = vec![0; DATAGRAM_BUFFER];
    let (len, from) = client.recv_from(&mut buffer)?;
    buffer.truncate(len);
    Ok((buffer, from))
}

/// The value of `name=` in a logfmt line, without its quotes ([`logfmt_field`]), panicking
/// if the line has none.
pub fn log_field(line: &str, name: &str) -> String {
    logfmt_field(line, name).unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// The largest UDP payload over IPv4 (65,535 less the IPv4 and UDP headers): the largest
/// datagram the relay promises to carry whole.
pub const LARGEST_DATAGRAM: usize = 65_507;

/// How often an upstream's receive loop wakes to see whether it should stop: a tick, not a
/// synchronisation (nothing waits for it).
const TICK: Duration = Duration::from_millis(20);

/// A UDP upstream on loopback that hands each datagram it receives, with its source, to a
/// handler on its one thread. It counts what it received and what the handler sent back, and
/// remembers every distinct source (the relay's per-flow sockets). Dropping it stops the
/// thread and joins it.
pub struct UdpUpstream {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    sent: Arc<Sent>,
    sources: Arc<Mutex<Vec<SocketAddr>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What an upstream's handler sent back: datagrams and bytes.
#[derive(Default)]
pub struct Sent {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
}

impl Sent {
    /// Sends `payload` to `to` from `socket` and counts it.
    pub fn send(&self, socket: &UdpSocket, payload: &[u8], to: SocketAddr) {
        // Counted before it leaves: a test that reads the count once the reply has reached its
        // client must find it counted (counting after the send raced the client's read).
        self.datagrams.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(payload.len() as u64, Ordering::SeqCst);
        socket.send_to(payload, to).unwrap_or_else(|e| panic!("upstream send to {to}: {e}"));
    }
}

impl UdpUpstream {
    /// An upstream bound to `bind` (`127.0.0.1:0`, `[::1]:0`) calling `handler(socket,
    /// datagram, source, sent)` for each datagram; the handler replies with `sent.send`.
    pub fn start(
        bind: &str,
        handler: impl Fn(&UdpSocket, &[u8], SocketAddr, &Sent) + Send + 'static,
    ) -> UdpUpstream {
        let socket =
            UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind a UDP upstream on {bind}: {e}"));
        socket.set_read_timeout(Some(TICK)).expect("set the UDP upstream's read timeout");
        let addr = socket.local_addr().expect("the UDP upstream has a local address");
        let received = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(Sent::default());
        let sources = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (count, replies, seen, flag) =
            (Arc::clone(&received), Arc::clone(&sent), Arc::clone(&sources), Arc::clone(&stopping));
        let thread = thread::spawn(move || {
            // One more byte than the largest datagram: a datagram that fills the buffer was cut.
            let mut buffer = vec![0; 65_536];
            while !flag.load(Ordering::SeqCst) {
                let (len, from) = match socket.recv_from(&mut buffer) {
                    Ok(got) => got,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => panic!("UDP upstream {addr} receive: {e}"),
                };
                count.fetch_add(1, Ordering::SeqCst);
                {
                    let mut seen =
                        seen.lock().expect("no upstream thread panicked holding sources");
                    if !seen.contains(&from) {
                        seen.push(from);
                    }
                }
                handler(&socket, &buffer[..len], from, &replies);
            }
        });
        UdpUpstream { addr, received, sent, sources, stopping, thread: Some(thread) }
    }

    /// Sends every datagram back to where it came from.
    pub fn echo() -> UdpUpstream {
        UdpUpstream::echo_on("127.0.0.1:0")
    }

    /// [`UdpUpstream::echo`] bound to `bind`.
    pub fn echo_on(bind: &str) -> UdpUpstream {
        UdpUpstream::start(bind, |socket, datagram, from, sent| sent.send(socket, datagram, from))
    }

    /// Answers each datagram with `replies` datagrams: the request followed by `#0`, `#1`, ...
    /// so a client can tell which reply of which request it got.
    pub fn replying(replies: usize) -> UdpUpstream {
        UdpUpstream::start("127.0.0.1:0", move |socket, datagram, from, sent| {
            for n in 0..replies {
                sent.send(socket, &[datagram, format!("#{n}").as_bytes()].concat(), from);
            }
        })
    }

    /// How many datagrams it received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// How many datagrams and bytes its handler sent back.
    pub fn sent(&self) -> (u64, u64) {
        (self.sent.datagrams.load(Ordering::SeqCst), self.sent.bytes.load(Ordering::SeqCst))
    }

    /// The distinct addresses it received from, in order of their first datagram: one per
    /// flow the relay opened to it.
    pub fn sources(&self) -> Vec<SocketAddr> {
        self.sources.lock().expect("no upstream thread panicked holding sources").clone()
    }
}

impl Drop for UdpUpstream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A handler's panic (a failed send) surfaces in the test, not silently here.
            if thread.join().is_err() && !thread::panicking() {
                panic!("the UDP upstream {} panicked", self.addr);
            }
        }
    }
}

/// The next datagram `client` receives, within [`TIMEOUT`], which must come from `relay`
/// (the address the client sent to): a reply from anywhere else is a relay bug.
pub fn receive_from(client: &UdpSocket, relay: SocketAddr, who: &str) -> Vec<u8> {
    let (datagram, from) = udp_receive(client)
        .unwrap_or_else(|e| panic!("{who}: no datagram within {TIMEOUT:?}: {e}"));
    assert_eq!(from, relay, "{who}: a reply came from {from}, not from the address it sent to");
    datagram
}

/// Sends `datagram` to `relay` and returns the reply, which must come from `relay`.
pub fn request(client: &UdpSocket, relay: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    client.send_to(datagram, relay).unwrap_or_else(|e| panic!("send to {relay}: {e}"));
    receive_from(client, relay, "the client")
}

/// Sends `datagram` to `relay` up to `attempts` times, each waiting at most `wait` for the
/// reply (for clients beside a flood, whose datagrams the kernel may drop), and returns the
/// reply and how many attempts it took, or `None` if none was answered. Replies to earlier
/// attempts are told apart by their content: only one equal to `expected` counts.
pub fn request_with_retries(
    client: &UdpSocket,
    relay: SocketAddr,
    datagram: &[u8],
    expected: &[u8],
    attempts: usize,
    wait: Duration,
) -> Option<usize> {
    client.set_read_timeout(Some(wait)).expect("set the retrying client's read timeout");
    let mut buffer = vec![0; 65_536];
    let answered = (1..=attempts).find(|_| {
        client.send_to(datagram, relay).unwrap_or_else(|e| panic!("send to {relay}: {e}"));
        match client.recv_from(&mut buffer) {
            Ok((len, from)) => from == relay && &buffer[..len] == expected,
            Err(_) => false,
        }
    });
    client.set_read_timeout(Some(TIMEOUT)).expect("restore the client's read timeout");
    answered
}

/// Starts `tcprelay ARGS` with one UDP route (its first `-l udp:...`) and returns it; its
/// `addr` is the UDP listening address, read from `listening on udp:ADDR`.
pub fn udp_relay(args: &[&str]) -> RelayProcess {
    RelayProcess::start(args)
}

/// `tcprelay` with one UDP route from `udp:127.0.0.1:0` to `upstream` and the extra `args`.
pub fn udp_relay_to(upstream: SocketAddr, args: &[&str]) -> RelayProcess {
    let upstream = upstream.to_string();
    let mut all = vec!["-l", "udp:127.0.0.1:0", "-u", &upstream];
    all.extend_from_slice(args);
    udp_relay(&all)
}

/// One `flow closed` log line, its logfmt fields readable by name.
#[derive(Debug, Clone)]
pub struct FlowLine(pub String);

impl FlowLine {
    /// Waits (bounded) for the relay's next `flow closed` line.
    pub fn next(relay: &RelayProcess) -> FlowLine {
        FlowLine(relay.log_line_with("msg=\"flow closed\""))
    }

    /// The value of `name=` (quotes removed), panicking if the line has none.
    pub fn field(&self, name: &str) -> String {
        log_field(&self.0, name)
    }

    /// The value of `name=` as a number.
    pub fn number(&self, name: &str) -> u64 {
        let value = self.field(name);
        value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number in {}", self.0))
    }
}

/// The value of `name=` in a logfmt line, without its quotes.
pub fn logfmt_field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(' ').next()?,
    };
    Some(value.to_string())
}

/// The sum of the samples of `name` in a Prometheus text page whose labels contain every
/// one of `labels` (such as `cause="max_flows"`); 0 if there is none.
pub fn metric_sum(page: &str, name: &str, labels: &[&str]) -> u64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// The relay's /metrics page (it must have been started with `--admin 127.0.0.1:0` and read
/// its admin line).
pub fn metrics_of(relay: &RelayProcess) -> String {
    let admin = relay.admin.expect("the relay was started with --admin and its line read");
    let (status, page) = super::client::http_get(admin, "/metrics");
    assert_eq!(status, 200, "GET /metrics: {page}");
    page
}

/// A loopback port free for both TCP and UDP at this moment, for a peer program that cannot
/// be told to take an ephemeral port and say which (dnsmasq, socat, iperf3). Another
/// process could take it before the peer binds; the peer then fails to start, saying so.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
        let port = udp.local_addr().expect("a bound socket has an address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full
/// (`RcvbufErrors` in /proc/net/snmp; every process's sockets), for failure messages that
/// tell the relay's losses from the kernel's; 0 where there is no such file.
pub fn udp_receive_buffer_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    let column = names.split_whitespace().position(|name| name == "RcvbufErrors");
    column.and_then(|n| values.split_whitespace().nth(n)?.parse().ok()).unwrap_or(0)
}

/// The relay's flow threads now (`tcprelay-flow`, from /proc/PID/task/*/comm).
pub fn flow_threads_of(relay: &RelayProcess) -> Vec<u32> {
    let tasks = format!("/proc/{}/task", relay.pid());
    let tasks =
        std::fs::read_dir(super::counters::proc_file(tasks)).expect("read the relay's tasks");
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let id = task.file_name().to_str()?.parse().ok()?;
            (name.trim_end() == "tcprelay-flow").then_some(id)
        })
        .collect()
}
