//! What one connection's threads (and the relay, when it stops) share: the two sockets and
//! the record of how the connection ended.
//!
//! Anyone may end a connection early by calling [`Connection::close`]: a copy thread that
//! hit an error, or the relay when it stops. Closing means `shutdown(Both)` on both
//! sockets. That is what wakes a sibling thread blocked in `read` or `write` on the other
//! socket (rust-lang/rust#41399: dropping our handle would not, while another thread still
//! holds the socket). The file descriptors themselves are closed later, once, when the last
//! owner drops the `Connection`: that is Go's `defer conn.Close()`, done by `Drop`.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::counter::Counter;
use crate::lock::lock;
use crate::net::address::Address;
use crate::net::stream::Stream;
use crate::outcome::CloseReason;
use crate::relay::counts::LiveBytes;
use crate::relay::events::{Conn, Events};
use crate::relay::timers::Timers;
use crate::settings::config::Config;

/// Why a connection was closed early, with the error's text if there was one.
#[derive(Clone, Debug)]
struct Fault {
    reason: CloseReason,
    detail: String,
}

/// One client connection and, once dialled, its upstream connection.
#[derive(Debug)]
pub struct Connection {
    /// A number unique in the process, for the logs (see [`next_id`]).
    pub id: u64,
    /// When the client was accepted.
    pub started: Instant,
    /// The client's address as `accept` returned it. With `accept-proxy` that is the load
    /// balancer in front; [`Connection::real_client`] is the client it speaks for.
    pub client_addr: Address,
    /// The client and the address it connected to, as its PROXY header says (set once,
    /// by the first thread, before anything else looks at the client's address).
    proxied: OnceLock<(Address, SocketAddr)>,
    /// The accepted client socket.
    pub client: Stream,
    /// Bytes delivered each way so far, each counted by its own copy thread: the one count,
    /// which the close report reads and a scrape of `/metrics` sums while it is open.
    pub bytes: Arc<LiveBytes>,
    /// The upstream socket, set once dialled.
    upstream: OnceLock<Stream>,
    /// The upstream's address, kept for the log: a reset socket no longer knows its peer.
    upstream_addr: OnceLock<Address>,
    /// The first EOF seen, either way: it names a normal close.
    first_eof: OnceLock<CloseReason>,
    /// The first early close; it wins over any EOF. A mutex rather than a `OnceLock` because
    /// [`Connection::close`] and [`Connection::attach_upstream`] must not miss each other
    /// (see there).
    fault: Mutex<Option<Fault>>,
    /// The idle and half-close timers, shared by both copy threads.
    pub timers: Timers,
    /// Set when the connection has been counted as accepted, by the route it is on.
    accepted: OnceLock<()>,
    /// Set when the connection's ending has been reported, so it is reported once.
    reported: OnceLock<()>,
}

/// The next connection id: unique across every route of the process, so that two routes'
/// connections never share a `conn=` in the log. A [`Counter`], which keeps 64 bits on the
/// targets that lack an `AtomicU64`.
pub fn next_id() -> u64 {
    static NEXT: Counter = Counter::new(1);
    NEXT.fetch_add(1)
}

impl Connection {
    /// A connection just accepted, whose upstream is not dialled yet.
    pub fn new(id: u64, client: Stream, client_addr: Address, config: &Config) -> Connection {
        Connection {
            id,
            started: Instant::now(),
            client_addr,
            proxied: OnceLock::new(),
            client,
            bytes: Arc::default(),
            upstream: OnceLock::new(),
            upstream_addr: OnceLock::new(),
            first_eof: OnceLock::new(),
            fault: Mutex::new(None),
            timers: Timers::new(config.idle_timeout, config.half_close_timeout),
            accepted: OnceLock::new(),
            reported: OnceLock::new(),
        }
    }

    /// Who this connection is, as every line about it names it: its id and its
    /// [real client](Connection::real_client).
    pub fn conn(&self) -> Conn<'_> {
        Conn { id: self.id, client: self.real_client() }
    }

    /// The client's address for everything that asks who the client is: access rules,
    /// logs, metrics, per-client limits and the PROXY header sent upstream. It is the
    /// address the client's PROXY header carried (`accept-proxy`), else `client_addr`.
    pub fn real_client(&self) -> &Address {
        self.proxied.get().map_or(&self.client_addr, |(client, _)| client)
    }

    /// The address the client connected to: its PROXY header's destination, else our end
    /// of the socket.
    pub fn real_local(&self) -> io::Result<Address> {
        match self.proxied.get() {
            Some((_, local)) => Ok(Address::Tcp(*local)),
            None => self.client.local_addr(),
        }
    }

    /// Records what the client's PROXY header said (once; a second call does nothing).
    pub fn set_proxied(&self, client: SocketAddr, local: SocketAddr) {
        let _ = self.proxied.set((Address::Tcp(client), local));
    }

    /// Stores the dialled upstream socket and returns it. If the connection was closed while
    /// we were dialling (the relay is stopping), the new socket is shut down at once.
    ///
    /// The order matters: we store the socket *before* looking at the fault, and `close`
    /// records the fault *before* looking for the socket, both under the fault lock. So
    /// whichever comes second sees the other's work, and no socket escapes a close.
    pub fn attach_upstream(&self, upstream: Stream) -> &Stream {
        if let Ok(addr) = upstream.peer_addr() {
            let _ = self.upstream_addr.set(addr);
        }
        let upstream = self.upstream.get_or_init(|| upstream);
        if self.lock_fault().is_some() {
            let _ = upstream.shutdown(Shutdown::Both);
        }
        upstream
    }

    /// The upstream socket, once dialled.
    pub fn upstream(&self) -> Option<&Stream> {
        self.upstream.get()
    }

    /// Marks the connection as counted by a route's `accepted`; `false` if it already was.
    pub fn mark_accepted(&self) -> bool {
        self.accepted.set(()).is_ok()
    }

    /// Marks the connection's ending as reported; `false` if it already was.
    pub fn mark_reported(&self) -> bool {
        self.reported.set(()).is_ok()
    }

    /// The upstream's address, once dialled.
    pub fn upstream_addr(&self) -> Option<&Address> {
        self.upstream_addr.get()
    }

    /// Records that one side finished sending (the first such call names the close reason if
    /// nothing goes wrong later).
    pub fn record_eof(&self, reason: CloseReason) {
        let _ = self.first_eof.set(reason);
        self.timers.record_eof();
    }

    /// Called by a copy thread each time its socket timeout ticks: if a timer has expired,
    /// closes the connection and returns the error that ends this copy. If someone else
    /// closed it, returns that error too: on Unix the `shutdown` already woke this thread,
    /// but on Windows this tick is how it learns (see [`crate::relay::timers::CLOSE_CHECK`]).
    pub fn check_timers(&self, observer: &dyn Events) -> io::Result<()> {
        if self.lock_fault().is_some() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the relay"));
        }
        match self.timers.expired() {
            None => Ok(()),
            Some(reason) => {
                // Both copies tick; the one that records the close tells it, once, before
                // the shutdown wakes the other.
                if self.record_fault(reason, "") {
                    observer.timer_expired(self.id, reason);
                }
                self.close(reason, "");
                Err(io::Error::new(io::ErrorKind::TimedOut, reason.name()))
            }
        }
    }

    /// Ends the connection early: records why (the first reason wins) and shuts down both
    /// sockets both ways, which wakes any thread blocked on either of them.
    pub fn close(&self, reason: CloseReason, detail: impl fmt::Display) {
        self.record_fault(reason, detail);
        // Errors here mean "already shut down" or "peer already gone": both are fine.
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(upstream) = self.upstream.get() {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    /// Records why the connection is being closed, unless a reason already was; returns
    /// whether this call recorded it.
    fn record_fault(&self, reason: CloseReason, detail: impl fmt::Display) -> bool {
        let mut fault = self.lock_fault();
        let first = fault.is_none();
        if first {
            *fault = Some(Fault { reason, detail: detail.to_string() });
        }
        first
    }

    /// Why the relay closed the connection itself, if it did. A copy whose read returns
    /// `Ok(0)` after that close was woken by the relay's own `shutdown(Both)`, not by an EOF
    /// from its peer (TESTING.md, the last trap in std): the fault is recorded before the
    /// sockets are shut down, so that copy always finds it here.
    pub fn closed_by_relay(&self) -> Option<CloseReason> {
        self.lock_fault().as_ref().map(|fault| fault.reason)
    }

    /// How the connection ended: the first early close if there was one, else the first EOF.
    /// The second value is the error's text (empty for a normal close).
    pub fn outcome(&self) -> (CloseReason, String) {
        if let Some(fault) = self.lock_fault().clone() {
            return (fault.reason, fault.detail);
        }
        let reason = self.first_eof.get().copied().unwrap_or(CloseReason::ClientEof);
        (reason, String::new())
    }

    fn lock_fault(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        // The data is a plain Option that is never left half-written: a poisoned lock is
        // still good to use.
        lock(&self.fault)
    }
}
