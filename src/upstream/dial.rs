//! Dialling the upstream: the Rust side of Go's `net.DialTimeout("tcp", upstream, timeout)`,
//! with Go's and curl's Happy Eyeballs (RFC 8305) for host names with several addresses.
//!
//! `getaddrinfo` may list an address that answers nothing (say `::1` blackholed) before one
//! that works (`127.0.0.1`). Trying them one after the other, each with a share of the
//! connect timeout, made every client wait out the dead one's share (measured:
//! docs/benchmarks.md, "Figures the code relies on"). So [`race`] starts the first address, and if it has not connected within
//! [`ATTEMPT_DELAY`] starts the next one *beside it* (the first is not abandoned), and so on;
//! the first to connect wins and the others are closed. An attempt that fails starts the
//! next one at once. [`crate::upstream`] then remembers the dead address, so later clients
//! try the live one first and pay nothing.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::limits::capacity::{Capacity, DIAL_ATTEMPTS_IN_PROCESS, OPEN_IN_PROCESS};
use crate::net::stream::Stream;
use crate::outcome::CloseReason;

/// How long an attempt may go unanswered before the next address is started beside it:
/// RFC 8305's recommended "Connection Attempt Delay", which Go and curl use too.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The stack of a thread that makes one connection attempt: it only calls `connect` and
/// sends the result on a channel, so the smallest stack a connection thread may have is
/// plenty.
const ATTEMPT_STACK_SIZE: usize = 16 * 1024;

/// Turns an upstream's `host:port` into the addresses to try, in the resolver's order.
///
/// The default asks the system (`getaddrinfo`, as std's `ToSocketAddrs` does). Tests may
/// replace it ([`TestHooks`](crate::TestHooks)) to make a name resolve to an address list
/// the machine's resolver does not give (such as `::1` then `127.0.0.1`): a documented seam
/// for tests, like [`ThreadHook`](crate::ThreadHook).
pub type Resolver = fn(&str) -> io::Result<Vec<SocketAddr>>;

/// The system's resolver: `host:port` through `getaddrinfo`, blocking, with no timeout of
/// our own (only the system's resolver settings bound it).
///
/// # Errors
/// What the resolver said, e.g. an unknown host.
pub fn system_resolver(upstream: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(upstream.to_socket_addrs()?.collect())
}

/// Why no upstream connection could be made.
#[derive(Debug)]
pub enum DialError {
    /// The host name did not resolve (or resolved to nothing).
    Resolve {
        /// The upstream as configured.
        upstream: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// Connecting to a Unix domain socket (`unix:/path`) failed.
    Unix {
        /// The upstream as configured.
        upstream: String,
        /// What the OS said (e.g. no such file, connection refused).
        error: io::Error,
    },
    /// Every address the upstream resolved to reaches the route's own listener (the same
    /// address, or its port on a wildcard listen reached through loopback): dialling it
    /// would make a loop of the relay through itself.
    SelfLoop {
        /// The upstream as configured.
        upstream: String,
        /// The address it resolved to that is the route's listen address.
        addr: SocketAddr,
    },
    /// Every resolved address failed; each with its own error, in the order tried.
    Connect {
        /// The upstream as configured.
        upstream: String,
        /// Each address tried and why it failed.
        attempts: Vec<(SocketAddr, io::Error)>,
    },
}

impl DialError {
    /// Whether the dial failed for a reason on this machine (out of descriptors, buffers,
    /// memory or local ports: `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `EADDRNOTAVAIL`) rather
    /// than the upstream's: then the upstream was never really tried, so it must not be
    /// counted as failed or backed off. A [`Connect`](DialError::Connect) error is local
    /// only if every attempt failed locally.
    pub fn is_local(&self) -> bool {
        match self {
            DialError::Resolve { error, .. } | DialError::Unix { error, .. } => {
                is_local_error(error)
            }
            DialError::Connect { attempts, .. } => {
                !attempts.is_empty() && attempts.iter().all(|(_, error)| is_local_error(error))
            }
            DialError::SelfLoop { .. } => false,
        }
    }

    /// Why the client is closed when its dial failed this way: `self_loop` for a loop,
    /// `connect_failed` for everything else.
    pub fn close_reason(&self) -> CloseReason {
        match self {
            DialError::SelfLoop { .. } => CloseReason::SelfLoop,
            _ => CloseReason::ConnectFailed,
        }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Resolve { upstream, error } => {
                write!(f, "cannot resolve {upstream}: {error}")
            }
            DialError::Unix { upstream, error } => {
                write!(f, "cannot connect to {upstream}: {error}")
            }
            DialError::SelfLoop { upstream, addr } => write!(
                f,
                "not connecting to {upstream}: it resolves to {addr}, where this route listens"
            ),
            DialError::Connect { upstream, attempts } => {
                write!(f, "cannot connect to {upstream}")?;
                // Each address once: an upstream given as an IP is its only address.
                for (index, (addr, error)) in attempts.iter().enumerate() {
                    let separator = if index == 0 { ": " } else { "; " };
                    if attempts.len() == 1 && addr.to_string() == *upstream {
                        write!(f, "{separator}{error}")?;
                    } else {
                        write!(f, "{separator}{addr}: {error}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DialError {}

/// Whether `error` is about this machine running out of something, not about the peer:
/// descriptors (`EMFILE`, `ENFILE`; Windows: `WSAEMFILE`), buffer space (`ENOBUFS`;
/// `WSAENOBUFS`), memory (`ENOMEM`), or a local address or port to connect from
/// (`EADDRNOTAVAIL`). Such a failure says nothing about the upstream, which was never reached.
pub fn is_local_error(error: &io::Error) -> bool {
    // Stable `ErrorKind`s cover two of them; the descriptor and buffer errors have none, so
    // they are matched by number. EMFILE (24), ENFILE (23) are the same on every Unix;
    // ENOBUFS is 105 on Linux and 55 on the BSDs and macOS. Winsock numbers its own:
    // WSAEMFILE 10024 (no socket handle left) and WSAENOBUFS 10055 (no buffer space, also
    // what Windows says when its ephemeral ports run out on connect).
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 =
        if cfg!(any(target_os = "linux", target_os = "android")) { 105 } else { 55 };
    const WSAEMFILE: i32 = 10024;
    const WSAENOBUFS: i32 = 10055;
    if matches!(error.kind(), io::ErrorKind::OutOfMemory | io::ErrorKind::AddrNotAvailable) {
        return true;
    }
    let code = error.raw_os_error();
    if cfg!(windows) {
        return matches!(code, Some(WSAEMFILE | WSAENOBUFS));
    }
    cfg!(unix) && matches!(code, Some(EMFILE | ENFILE | ENOBUFS))
}

/// Whether connecting to `addr` would reach the listener bound at `listen`, so that a route
/// dialling it would connect to itself: the same address and port; or the same port where
/// `listen` is a wildcard (`0.0.0.0`, `[::]`) and `addr` a loopback or wildcard address,
/// or `listen` a loopback address and `addr` a wildcard one (a connect to `0.0.0.0` or `::`
/// reaches this host). IPv4-mapped IPv6 addresses count as the IPv4 ones. A wildcard
/// listener reached through one of the host's other addresses is not seen: std cannot
/// list the host's addresses.
pub fn reaches_listener(addr: &SocketAddr, listen: &SocketAddr) -> bool {
    if addr.port() != listen.port() {
        return false;
    }
    let (to, at) = (addr.ip().to_canonical(), listen.ip().to_canonical());
    // An IPv4 wildcard listener takes no IPv6 connection; an IPv6 one takes both.
    let same_family = at.is_ipv6() || to.is_ipv4();
    to == at
        || (at.is_unspecified() && same_family && (to.is_loopback() || to.is_unspecified()))
        || (to.is_unspecified() && at.is_loopback())
}

/// Orders resolved addresses as RFC 8305 section 4 asks: the family of the first address
/// first, then alternating between the two families, each family keeping the resolver's
/// order. `[v6a, v6b, v4a]` becomes `[v6a, v4a, v6b]`, so a dead family costs at most one
/// attempt delay before the other is tried.
pub fn interleave_families(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return Vec::new() };
    let (mut preferred, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|addr| addr.is_ipv6() == first.is_ipv6());
    preferred.reverse();
    other.reverse();
    let mut ordered = Vec::with_capacity(addrs.len());
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return ordered,
            (one, two) => ordered.extend(one.into_iter().chain(two)),
        }
    }
}

/// What one [`race`] over an upstream's addresses came to.
#[derive(Debug)]
pub struct Race {
    /// The address that connected first, and its connection; `None` if none did in time.
    pub winner: Option<(SocketAddr, TcpStream)>,
    /// Every address that failed, or had not answered when another won or time ran out,
    /// with why, in the order they were started.
    pub failed: Vec<(SocketAddr, io::Error)>,
}

/// Connects to the first of `addrs` that answers, Happy Eyeballs style (see the module
/// documentation), within `timeout` in all (zero: no limit of our own, each attempt has the
/// OS's connect timeout).
///
/// A single address is dialled on the calling thread. With several, each attempt runs on a
/// thread of its own while `room` allows (see [`DialRoom`]); a loser that connects
/// later closes its connection, and one still waiting ends by itself within `timeout`. An
/// attempt still unanswered when another wins is reported in [`Race::failed`] as too slow,
/// so that the caller may try it later.
///
/// When no slot is free (or the OS refuses the thread), the race waits for its attempts in
/// flight instead of starting another; with none in flight, it tries the next address on
/// the calling thread with an equal share of the time left, the old sequential way, using
/// the descriptor the connection's own slot holds for its upstream. So a storm of clients
/// of a dead name costs at most `room.attempts` extra threads and sockets, all counted.
pub fn race(addrs: &[SocketAddr], timeout: Duration, room: DialRoom) -> Race {
    let deadline = if timeout.is_zero() { None } else { Instant::now().checked_add(timeout) };
    if let [addr] = addrs {
        return match connect(addr, deadline) {
            Ok(stream) => Race { winner: Some((*addr, stream)), failed: Vec::new() },
            Err(error) => Race { winner: None, failed: vec![(*addr, error)] },
        };
    }
    let (results, received) = mpsc::channel::<(usize, io::Result<TcpStream>)>();
    let mut answered = vec![false; addrs.len()];
    let mut failed = Vec::new();
    let mut started = 0;
    let mut next_start = Instant::now();
    let winner = loop {
        let now = Instant::now();
        let pending = started - answered.iter().filter(|&&done| done).count();
        if started < addrs.len() && (pending == 0 || now >= next_start) {
            let (index, addr) = (started, addrs[started]);
            if spawn_attempt(index, addr, deadline, &results, room) {
                started += 1;
                next_start = now + ATTEMPT_DELAY;
                continue;
            }
            if pending == 0 {
                // No room for a thread and nothing in flight: try it here, with its share.
                started += 1;
                let share = deadline.map(|until| share_of(until, now, addrs.len() - index));
                let _ = results.send((index, connect(&addr, share)));
                continue;
            }
            // No room: wait for an attempt in flight, and look for room again later.
            next_start = now + ATTEMPT_DELAY;
        }
        if pending == 0 {
            break None; // every address answered, and each failed
        }
        let mut wait_until = deadline;
        if started < addrs.len() {
            wait_until = Some(wait_until.map_or(next_start, |until| until.min(next_start)));
        }
        let result = match wait_until {
            Some(until) => received.recv_timeout(until.saturating_duration_since(now)),
            None => received.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match result {
            Ok((index, Ok(stream))) => {
                answered[index] = true;
                break Some((addrs[index], stream));
            }
            Ok((index, Err(error))) => {
                answered[index] = true;
                failed.push((index, error));
                next_start = Instant::now(); // a failure starts the next address at once
            }
            Err(RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break None;
                }
            }
            // We hold a sender ourselves, so the channel cannot disconnect.
            Err(RecvTimeoutError::Disconnected) => break None,
        }
    };
    // Attempts that never answered: too slow beside the winner, or out of time.
    let slow = match &winner {
        Some((addr, _)) => format!("no answer before {addr} connected"),
        None => "no answer within the connect timeout".to_string(),
    };
    for (index, done) in answered.iter().enumerate().take(started) {
        if !done {
            failed.push((index, io::Error::new(io::ErrorKind::TimedOut, slow.clone())));
        }
    }
    failed.sort_by_key(|(index, _)| *index);
    let failed = failed.into_iter().map(|(index, error)| (addrs[index], error)).collect();
    Race { winner, failed }
}

/// How much room the process has for dial attempts on threads of their own: each takes one
/// of `attempts` attempt slots ([`DIAL_ATTEMPTS_IN_PROCESS`]) and half a connection's slot
/// of the process-wide cap of `connections` ([`OPEN_IN_PROCESS`]), so that the threads and
/// sockets Happy Eyeballs makes are counted like the connections' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialRoom {
    /// At most this many attempts on threads of their own in the process.
    pub attempts: usize,
    /// The process-wide connection cap they share with connections.
    pub connections: usize,
}

impl DialRoom {
    /// The room a route's [`Capacity`] gives.
    pub fn of(capacity: &Capacity) -> DialRoom {
        DialRoom { attempts: capacity.dial_attempts, connections: capacity.connections }
    }
}

/// Starts the attempt to connect to `addr` on a thread of its own, which sends the result
/// on `results`; `false` if `room` has no slot free or the OS refused the thread. The
/// thread holds its slots until its socket is closed or handed over.
fn spawn_attempt(
    index: usize,
    addr: SocketAddr,
    deadline: Option<Instant>,
    results: &mpsc::Sender<(usize, io::Result<TcpStream>)>,
    room: DialRoom,
) -> bool {
    let Some(attempt) = DIAL_ATTEMPTS_IN_PROCESS.take(room.attempts) else { return false };
    let Some(share) = OPEN_IN_PROCESS.take_dial_attempt(room.connections) else { return false };
    let sender = results.clone();
    thread::Builder::new()
        .name("tcprelay-dial".to_string())
        .stack_size(ATTEMPT_STACK_SIZE)
        .spawn(move || {
            let _slots = (attempt, share); // dropped last, after the stream below
            // A send after the race is over fails, dropping (closing) the stream.
            let _ = sender.send((index, connect(&addr, deadline)));
        })
        .is_ok() // if refused, the closure and its slot were dropped unrun
}

/// The deadline of one of `left` addresses tried one after the other from `now`: an equal
/// share of the time until `deadline`.
fn share_of(deadline: Instant, now: Instant, left: usize) -> Instant {
    let left = u32::try_from(left).unwrap_or(u32::MAX).max(1);
    now + deadline.saturating_duration_since(now) / left
}

/// One connection attempt, bounded by `deadline` if there is one.
fn connect(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let Some(deadline) = deadline else { return TcpStream::connect(addr) };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "no time left to connect"));
    }
    TcpStream::connect_timeout(addr, left)
}

/// Connects to a Unix domain socket (`unix:/path`). That takes no time worth bounding (it
/// succeeds or fails at once), so there is no timeout.
#[cfg(unix)]
pub fn dial_unix(upstream: &str, path: &Path) -> Result<Stream, DialError> {
    Stream::connect_unix(path)
        .map_err(|error| DialError::Unix { upstream: upstream.to_string(), error })
}

/// Unix domain sockets do not exist here.
#[cfg(not(unix))]
pub fn dial_unix(upstream: &str, _path: &Path) -> Result<Stream, DialError> {
    let error = io::Error::new(io::ErrorKind::Unsupported, "no Unix domain sockets here");
    Err(DialError::Unix { upstream: upstream.to_string(), error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_connect_error_names_each_address_once_with_no_stray_separator() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let one = DialError::Connect {
            upstream: "127.0.0.1:1".into(),
            attempts: vec![("127.0.0.1:1".parse().unwrap(), refused())],
        };
        assert_eq!(one.to_string(), format!("cannot connect to 127.0.0.1:1: {}", refused()));
        let two = DialError::Connect {
            upstream: "localhost:1".into(),
            attempts: vec![
                ("[::1]:1".parse().unwrap(), refused()),
                ("127.0.0.1:1".parse().unwrap(), refused()),
            ],
        };
        let text = two.to_string();
        assert_eq!(
            text,
            format!("cannot connect to localhost:1: [::1]:1: {0}; 127.0.0.1:1: {0}", refused())
        );
        assert!(!text.ends_with(';'));
    }

    /// Room for every attempt these tests make.
    const ROOM: DialRoom = DialRoom { attempts: 8, connections: usize::MAX };

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        let list = [addr("[::1]:1"), addr("[::2]:1"), addr("127.0.0.1:1"), addr("[::3]:1")];
        assert_eq!(
            interleave_families(&list),
            [addr("[::1]:1"), addr("127.0.0.1:1"), addr("[::2]:1"), addr("[::3]:1")]
        );
        let list = [addr("127.0.0.1:1"), addr("127.0.0.2:1"), addr("[::1]:1")];
        assert_eq!(
            interleave_families(&list),
            [addr("127.0.0.1:1"), addr("[::1]:1"), addr("127.0.0.2:1")]
        );
        assert_eq!(interleave_families(&[]), []);
    }

    #[test]
    fn the_listen_address_and_a_wildcard_listens_port_on_loopback_reach_the_listener() {
        let listen = addr("127.0.0.1:7000");
        assert!(reaches_listener(&addr("127.0.0.1:7000"), &listen));
        assert!(reaches_listener(&addr("0.0.0.0:7000"), &listen));
        assert!(reaches_listener(&addr("[::ffff:127.0.0.1]:7000"), &listen));
        assert!(!reaches_listener(&addr("127.0.0.1:7001"), &listen), "another port");
        assert!(!reaches_listener(&addr("127.0.0.2:7000"), &listen), "another address");
        let wildcard = addr("0.0.0.0:7000");
        assert!(reaches_listener(&addr("127.0.0.2:7000"), &wildcard));
        assert!(!reaches_listener(&addr("[::1]:7000"), &wildcard), "IPv4 only");
        let wildcard6 = addr("[::]:7000");
        assert!(reaches_listener(&addr("[::1]:7000"), &wildcard6));
        assert!(reaches_listener(&addr("127.0.0.1:7000"), &wildcard6));
        assert!(!reaches_listener(&addr("[::1]:7001"), &wildcard6));
    }

    #[test]
    fn local_errors_are_told_from_the_upstreams() {
        // The descriptor and buffer errors as this platform numbers them: EMFILE and ENFILE
        // on Unix, WSAEMFILE and WSAENOBUFS on Windows.
        let (descriptors, more) = if cfg!(windows) { (10024, 10055) } else { (24, 23) };
        assert!(is_local_error(&io::Error::from_raw_os_error(descriptors)), "EMFILE");
        assert!(is_local_error(&io::Error::from_raw_os_error(more)), "ENFILE or WSAENOBUFS");
        assert!(!is_local_error(&io::Error::from_raw_os_error(10061)), "WSAECONNREFUSED");
        assert!(is_local_error(&io::Error::from(io::ErrorKind::AddrNotAvailable)));
        assert!(is_local_error(&io::Error::from(io::ErrorKind::OutOfMemory)));
        assert!(!is_local_error(&io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert!(!is_local_error(&io::Error::from(io::ErrorKind::TimedOut)));
        let refused = (addr("127.0.0.1:1"), io::Error::from(io::ErrorKind::ConnectionRefused));
        let emfile = (addr("[::1]:1"), io::Error::from_raw_os_error(descriptors));
        let upstream = "x:1".to_string();
        let mixed = DialError::Connect { upstream: upstream.clone(), attempts: vec![refused] };
        assert!(!mixed.is_local());
        let local = DialError::Connect { upstream, attempts: vec![emfile] };
        assert!(local.is_local());
    }

    #[test]
    fn a_refused_address_starts_the_next_at_once_and_the_live_one_wins() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let refusing = TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = refusing.local_addr().unwrap();
        drop(refusing);
        let race = race(&[refused, live.local_addr().unwrap()], Duration::from_secs(5), ROOM);
        let (winner, _stream) = race.winner.expect("the live address connects");
        assert_eq!(winner, live.local_addr().unwrap());
        assert_eq!(race.failed.len(), 1);
        assert_eq!(race.failed[0].0, refused);
        let error = &race.failed[0].1;
        // Under qemu-user, getsockopt(SO_ERROR) hands a MIPS guest the host's errno (111)
        // untranslated, which MIPS's std cannot name (its ECONNREFUSED is 146): the
        // emulator's doing, not the relay's (tests/targets.sh).
        let qemu_mips_refusal = cfg!(any(target_arch = "mips", target_arch = "mips64"))
            && error.raw_os_error() == Some(111);
        assert!(
            error.kind() == io::ErrorKind::ConnectionRefused || qemu_mips_refusal,
            "the refused address fails as refused: {error:?}"
        );
    }

    /// A blackhole on `ip`: a listener whose backlog (128, plus one on Linux) is full drops
    /// SYNs. Its address, and what keeps it full.
    fn blackhole(ip: &str) -> (SocketAddr, (TcpListener, Vec<TcpStream>)) {
        let blackhole = TcpListener::bind((ip, 0)).unwrap();
        let silent = blackhole.local_addr().unwrap();
        let mut queued = Vec::new();
        while let Ok(stream) = TcpStream::connect_timeout(&silent, Duration::from_millis(100)) {
            queued.push(stream);
            assert!(queued.len() < 10_000, "the backlog never filled");
        }
        (silent, (blackhole, queued))
    }

    #[test]
    fn a_silent_first_address_is_not_abandoned_but_raced_and_reported_slow() {
        let (silent, _blackhole) = blackhole("::1");
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();

        let race = race(&[silent, live_addr], Duration::from_secs(2), ROOM);

        let (winner, _stream) = race.winner.expect("the live address connects");
        assert_eq!(winner, live_addr);
        let [(slow, error)] = &race.failed[..] else { panic!("{:?}", race.failed) };
        assert_eq!(*slow, silent);
        // Still waiting when the second won: the first was raced, not timed out and dropped.
        assert_eq!(error.to_string(), format!("no answer before {live_addr} connected"));
    }

    #[test]
    fn with_no_attempt_slot_free_addresses_are_tried_here_one_after_the_other() {
        let (silent, _blackhole) = blackhole("127.0.0.1");
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();

        // No slot at all: no thread may be made, so each address gets half the time here.
        let none = DialRoom { attempts: 0, connections: usize::MAX };
        let race = race(&[silent, live_addr], Duration::from_secs(2), none);

        let (winner, _stream) = race.winner.expect("the live address connects after its turn");
        assert_eq!(winner, live_addr);
        let [(slow, error)] = &race.failed[..] else { panic!("{:?}", race.failed) };
        assert_eq!(*slow, silent);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "its share ran out: {error}");
    }

    #[test]
    fn when_every_address_fails_each_is_reported_in_order() {
        let (one, two) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        let race = race(&[one, two], Duration::from_secs(5), ROOM);
        assert!(race.winner.is_none());
        let failed: Vec<SocketAddr> = race.failed.iter().map(|(addr, _)| *addr).collect();
        assert_eq!(failed, [one, two]);
    }
}
