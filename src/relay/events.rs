//! What the core tells whoever watches it, in the core's own words: the events
//! ([`Events`]), who a connection is ([`Conn`]) and how it ended ([`Ending`]). The
//! watchers (the log, `--explain`, the metrics, in ops/) implement and take these; the
//! core names none of them.

use std::fmt::{self, Display};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::capacity::Capacity;
use crate::net::address::Address;
use crate::outcome::{CloseReason, Direction};
use crate::relay::counts::LiveBytes;

/// Who a connection is, as every line about it names it.
#[derive(Clone, Copy, Debug)]
pub struct Conn<'a> {
    /// The process-wide connection id.
    pub id: u64,
    /// The client's address as `accept` returned it.
    pub client: &'a Address,
}

/// How a connection ended, for the one `connection closed` line.
#[derive(Debug)]
pub struct Ending<'a> {
    /// The reason, as the connection recorded it.
    pub reason: CloseReason,
    /// The error's text, empty for a normal close.
    pub error: &'a str,
    /// The upstream it was relayed to, if one was dialled.
    pub upstream: Option<&'a Address>,
    /// Bytes delivered client → upstream and upstream → client.
    pub bytes: (u64, u64),
    /// When the connection was accepted.
    pub started: Instant,
}

/// What happens to a route and its connections, as the core tells it: one call per
/// event, and the watcher (`ops::observe::Observer`: the log, `--explain`, the metrics)
/// decides what each is worth. The core calls nothing else of them.
pub trait Events: fmt::Debug + Send + Sync {
    /// An info line about the route itself (serving, draining, stopped), with `route=`.
    fn route_info(&self, message: &str, fields: &[(&str, &dyn Display)]);

    /// A warning about the route itself (its limit, its accept loop), with `route=`.
    fn route_warn(&self, message: &str, fields: &[(&str, &dyn Display)]);

    /// `--max-connections` was more than the process can hold under its OS limits.
    fn max_connections_lowered(&self, asked: usize, capacity: &Capacity);

    /// The route holds `max_connections`: the accept loop pauses, new clients wait in the
    /// kernel's backlog. Once per episode.
    fn limit_reached(&self, max_connections: usize);

    /// The accept loop was paused at the limit for `waited`, until a slot freed up (or the
    /// relay stopped).
    fn waited_at_limit(&self, waited: Duration);

    /// The episode at the limit is over: a slot is free and nobody waits. It lasted
    /// `lasted`, and `held` clients were accepted from the backlog meanwhile.
    fn limit_cleared(&self, lasted: Duration, held: u64);

    /// Whether `--explain` wants to hear about first bytes (the copy loop asks once).
    fn narrates(&self) -> bool;

    /// `l.Accept()` returned a client.
    fn accepted(&self, conn: Conn<'_>);

    /// Every upstream failed: the connection ends without one.
    fn dial_failed(&self, conn: Conn<'_>, error: &dyn Display);

    /// This connection's own upstream connection is made.
    fn dialled(&self, conn: Conn<'_>, upstream: Option<&Address>);

    /// The PROXY protocol header could not be sent to the fresh upstream connection.
    fn proxy_header_failed(&self, conn: Conn<'_>, error: &io::Error);

    /// The client's PROXY protocol header was read (`accept-proxy`): from now on the
    /// connection's client is the address it carries, and `via` the load balancer's.
    fn proxy_header_read(&self, conn: Conn<'_>, via: &Address);

    /// The listener picked this route by the server name the client's ClientHello asked
    /// for (`-` when it named none, or was no TLS at all).
    fn routed_by_name(&self, conn: Conn<'_>, name: Option<&str>);

    /// About to start the second thread: both copies are about to run. From now on a
    /// scrape of `/metrics` adds this connection's `bytes` so far.
    fn copies_starting(&self, conn: Conn<'_>, bytes: &Arc<LiveBytes>);

    /// A copy moved its first bytes.
    fn first_bytes(&self, id: u64, direction: Direction, count: usize);

    /// A copy's source said EOF; the relay half-closes the other socket next.
    fn eof(&self, id: u64, direction: Direction);

    /// A copy ended because the relay had closed both sockets itself (`reason`), not at
    /// an EOF from its peer: after the relay's own `shutdown(Both)` a blocked read returns
    /// `Ok(0)`, which must not be told as the peer's EOF.
    fn woken_by_close(&self, id: u64, direction: Direction, reason: CloseReason);

    /// A copy failed; the relay closes both sockets.
    fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error);

    /// The idle or half-close timer expired.
    fn timer_expired(&self, id: u64, reason: CloseReason);

    /// The connection is over, however it ended: its one `connection closed` line, its
    /// counted close and bytes. Called exactly once per [`accepted`](Events::accepted).
    fn closed(&self, conn: Conn<'_>, ending: &Ending<'_>);
}
