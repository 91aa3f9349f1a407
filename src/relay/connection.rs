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
use std::net::Shutdown;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::config::Config;
use crate::explain::Explain;
use crate::stream::{Address, Stream};
use crate::timers::Timers;

/// Why a connection ended. In the log as `reason=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client finished sending first (then the upstream finished too).
    ClientEof,
    /// The upstream finished sending first (then the client finished too).
    UpstreamEof,
    /// Reading from or writing to the client failed (reset, broken pipe, ...).
    ClientReset,
    /// Reading from or writing to the upstream failed.
    UpstreamReset,
    /// No upstream connection could be made.
    ConnectFailed,
    /// The thread for the second direction could not be created.
    SpawnFailed,
    /// A connection thread panicked (a bug); the connection was closed and the relay went on.
    Panicked,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// After one side finished sending, the other moved no byte for the half-close timeout.
    HalfCloseTimeout,
    /// The relay was stopped while this connection was open.
    Stopped,
}

impl CloseReason {
    /// The name used in logs, e.g. `client_eof`.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientEof => "client_eof",
            CloseReason::UpstreamEof => "upstream_eof",
            CloseReason::ClientReset => "client_reset",
            CloseReason::UpstreamReset => "upstream_reset",
            CloseReason::ConnectFailed => "connect_failed",
            CloseReason::SpawnFailed => "spawn_failed",
            CloseReason::Panicked => "panicked",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HalfCloseTimeout => "half_close_timeout",
            CloseReason::Stopped => "stopped",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a connection was closed early, with the error's text if there was one.
#[derive(Clone, Debug)]
struct Fault {
    reason: CloseReason,
    detail: String,
}

/// One client connection and, once dialled, its upstream connection.
#[derive(Debug)]
pub struct Connection {
    /// A number unique within this relay, for the logs.
    pub id: u64,
    /// The client's address as `accept` returned it.
    pub client_addr: Address,
    /// The accepted client socket.
    pub client: Stream,
    /// The upstream socket, set once dialled.
    upstream: OnceLock<Stream>,
    /// The first EOF seen, either way: it names a normal close.
    first_eof: OnceLock<CloseReason>,
    /// The first early close; it wins over any EOF. A mutex rather than a `OnceLock` because
    /// [`Connection::close`] and [`Connection::attach_upstream`] must not miss each other
    /// (see there).
    fault: Mutex<Option<Fault>>,
    /// The idle and half-close timers, shared by both copy threads.
    pub timers: Timers,
    /// The `--explain` narrator.
    pub explain: Explain,
}

impl Connection {
    /// A connection whose upstream is not dialled yet.
    pub fn new(id: u64, client: Stream, client_addr: Address, config: &Config) -> Connection {
        Connection {
            id,
            client_addr,
            client,
            upstream: OnceLock::new(),
            first_eof: OnceLock::new(),
            fault: Mutex::new(None),
            timers: Timers::new(config.idle_timeout, config.half_close_timeout),
            explain: Explain::new(config.explain),
        }
    }

    /// Stores the dialled upstream socket and returns it. If the connection was closed while
    /// we were dialling (the relay is stopping), the new socket is shut down at once.
    ///
    /// The order matters: we store the socket *before* looking at the fault, and `close`
    /// records the fault *before* looking for the socket, both under the fault lock. So
    /// whichever comes second sees the other's work, and no socket escapes a close.
    pub fn attach_upstream(&self, upstream: Stream) -> &Stream {
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

    /// Records that one side finished sending (the first such call names the close reason if
    /// nothing goes wrong later).
    pub fn record_eof(&self, reason: CloseReason) {
        let _ = self.first_eof.set(reason);
        self.timers.record_eof();
    }

    /// Called by a copy thread each time its socket timeout ticks: if a timer has expired,
    /// closes the connection and returns the error that ends this copy.
    pub fn check_timers(&self) -> io::Result<()> {
        match self.timers.expired() {
            None => Ok(()),
            Some(reason) => {
                self.explain.timer_expired(self.id, reason);
                self.close(reason, "");
                Err(io::Error::new(io::ErrorKind::TimedOut, reason.name()))
            }
        }
    }

    /// Ends the connection early: records why (the first reason wins) and shuts down both
    /// sockets both ways, which wakes any thread blocked on either of them.
    pub fn close(&self, reason: CloseReason, detail: impl fmt::Display) {
        {
            let mut fault = self.lock_fault();
            if fault.is_none() {
                *fault = Some(Fault { reason, detail: detail.to_string() });
            }
        }
        // Errors here mean "already shut down" or "peer already gone": both are fine.
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(upstream) = self.upstream.get() {
            let _ = upstream.shutdown(Shutdown::Both);
        }
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
        self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
