//! Upstream servers a test scripts: echo, banner, gated, handing each connection to the test,
//! refusing and blackholed addresses, and names that resolve to the addresses a test needs.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_utils::sync::WaitGroup;

use super::TIMEOUT;
use super::client::{connect, exchange, pattern, read_all, write_all};

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
        let addr = listener.local_addr().expect("the upstream's listener has a local address");
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
                    stream
                        .set_read_timeout(Some(TIMEOUT))
                        .expect("set the upstream connection's read timeout");
                    stream
                        .set_write_timeout(Some(TIMEOUT))
                        .expect("set the upstream connection's write timeout");
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

/// An address where nothing listens: bind a port, then free it.
pub fn refusing_addr() -> SocketAddr {
    let listener =
        TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1, to free it again");
    listener.local_addr().expect("the freed port's address")
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
            let mut counts =
                lock.lock().expect("no handler panicked while counting a connection in");
            counts.live += 1;
            counts.peak = counts.peak.max(counts.live);
            changed.notify_all();
            let (counts, _) = changed
                .wait_timeout_while(counts, TIMEOUT, |counts| !counts.open)
                .expect("no handler panicked while the gate was shut");
            drop(counts);
            let _ = io::copy(&mut &stream, &mut &stream);
            // Counted out before the close, which is the drop below.
            lock.lock().expect("no handler panicked while counting one out").live -= 1;
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
        let counts = lock.lock().expect("no handler panicked holding the gate's counts");
        let (counts, _) = changed
            .wait_timeout_while(counts, TIMEOUT, |c| c.live < n)
            .expect("no handler panicked while the test waited");
        counts.live >= n
    }

    /// Lets every held connection, and every later one, go on echoing.
    pub fn open_gate(&self) {
        let (lock, changed) = &*self.counts;
        lock.lock().expect("no handler panicked before the gate opened").open = true;
        changed.notify_all();
    }

    /// The most connections that were open at once.
    pub fn peak(&self) -> usize {
        self.counts.0.lock().expect("no handler panicked holding the peak count").peak
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
            let _ = sender
                .lock()
                .expect("no recording handler panicked holding the sender")
                .send(read_all(&stream));
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

/// An upstream address that always refuses: port 1 on loopback. Ports below 1024 are never
/// handed out for port 0, so unlike a freed ephemeral port ([`refusing_addr`]) no test
/// running in parallel can start listening there.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
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
        Blackhole::on_port(ip, 0).expect("bind the blackhole")
    }

    /// Blackholes on each of `ips` (loopback addresses such as `127.0.0.2`), all on one
    /// port, as a host name with several dead addresses has them: `name:PORT`. Tries new
    /// ports until one is free on every address.
    pub fn on_one_port(ips: &[&str]) -> Vec<Blackhole> {
        for _try in 0..100 {
            let first = Blackhole::on(ips[0]);
            let port = first.addr.port();
            let rest: io::Result<Vec<Blackhole>> =
                ips[1..].iter().map(|ip| Blackhole::on_port(ip, port)).collect();
            if let Ok(rest) = rest {
                return std::iter::once(first).chain(rest).collect();
            }
        }
        panic!("no port free on every one of {ips:?}");
    }

    /// A blackhole on `ip`:`port` (0: any free port); an error if that cannot be bound.
    pub fn on_port(ip: &str, port: u16) -> io::Result<Blackhole> {
        let listener = TcpListener::bind((ip, port))?;
        let addr = listener.local_addr().expect("the blackhole's listener has a local address");
        let mut queued = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(stream) => queued.push(stream),
                Err(error) if error.kind() == io::ErrorKind::TimedOut => break,
                Err(error) => panic!("filling the backlog of {addr}: {error}"),
            }
            assert!(queued.len() < 10_000, "the backlog of {addr} never filled");
        }
        Ok(Blackhole { addr, _listener: listener, _queued: queued })
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
        None => Ok(upstream.to_socket_addrs()?.collect()),
    }
}
