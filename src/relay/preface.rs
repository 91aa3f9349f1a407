//! What a connection's first thread does before it relays: learn who the client really is
//! and which route it is for, from the client's first bytes, then let it in or not.
//!
//! 1. `accept-proxy`: read the client's PROXY protocol header ([`proxy_receive`]). It is a
//!    message to the relay, not part of the client's stream: *consumed* here (exactly the
//!    header, never a byte more) and never forwarded. From now on the client is the address
//!    it carries ([`Connection::real_client`]). A client without a valid header is closed,
//!    `reason=bad_proxy_header`.
//! 2. `sni=`: *peek* at the TLS ClientHello ([`sni`]) and pick the route by the server name
//!    it asks for. Nothing is taken: the upstream later reads the ClientHello byte for byte.
//!    No TLS, no name or no match goes to the route without `sni=`, or is closed,
//!    `reason=no_route`, when there is none.
//! 3. The access rules of the route picked, applied to the real client, and the per-client
//!    limit: the connection leaves the waiting room for one of the route's slots.
//!
//! All of it runs on the connection's own thread, never in the accept loop, so a client
//! that is slow to send its first bytes holds up only itself, for at most the route's
//! `first-bytes-timeout`. A route that does none of this costs nothing here: its access rules
//! were checked in the accept loop, as before.
//!
//! Before any of it, in the accept loop and before a byte is read, [`refuses_peer`] looks
//! at the TCP peer: on an `accept-proxy` listener it must be a sender `proxy-from` names
//! (else `untrusted_proxy`), on an `sni=` listener one that some route there permits (else
//! `denied`); and an address already holding its share of the room for connections waiting
//! for their first bytes (an eighth, [`waiting_share`]) is refused (`client_limit`). When the
//! room is full all the same, a newcomer from an address holding fewer evicts the oldest
//! waiting connection of the address holding the most (`OpenConnections::make_room_waiting`).
//! Waiting connections hold no slot of the route's `max-connections`: silent clients cannot
//! lock others out.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::limits::per_client::{ClientKey, waiting_share};
use crate::net::address::Address;
use crate::net::proxy_receive::{self, Proxied};
use crate::net::sni::{self, Peeked};
use crate::net::stream::Stream;
use crate::outcome::CloseReason;
use crate::relay::connection::Connection;
use crate::relay::handle_conn::{self, handle_conn};
use crate::relay::route::Route;
use crate::settings::access::may_send_proxy_header;
use crate::settings::config::Config;

/// Relays one accepted client of `listener`'s socket: picks its route, lets it in or closes
/// it, then hands it to [`handle_conn()`]. Every client is counted as accepted once, by the
/// route it ends up on (see `admit`), and closed exactly once.
pub fn preface_then_relay(conn: &Arc<Connection>, listener: &Arc<Route>) {
    if let Some(route) = admit(conn, listener) {
        // Should `handle_conn` panic (a bug), its ending is reported on the route that
        // counted it; the listener's own guard (in accept.rs) then finds it reported.
        let _report_panic = handle_conn::ReportPanic { conn, route: &route };
        handle_conn(conn, &route);
    }
}

/// Whether the access rules wait for the connection's first thread (here) rather than
/// being checked in the accept loop: when the real client comes from its PROXY header, or
/// the rules to apply depend on the route that its server name picks.
pub fn checks_access_later(listener: &Route) -> bool {
    listener.config.accept_proxy || listener.server_names.is_some()
}

/// Why a client is closed before it is relayed, and the detail its `connection closed` line
/// gives.
pub type Refusal = (CloseReason, String);

/// What the accept loop checks of a new client of `listener` (a listener that
/// [`checks_access_later`]) before any byte is read: its TCP peer address may send a PROXY
/// header (`accept-proxy`), or is permitted by some route on the listener (`sni=`; the
/// route its ClientHello picks checks it again), and the waiting room has a place for it
/// ([`OpenConnections::make_room_waiting`](crate::relay::open_connections::OpenConnections::make_room_waiting)).
/// `None`: let it wait.
pub fn refuses_peer(listener: &Route, peer: &Address) -> Option<Refusal> {
    if listener.config.accept_proxy {
        // A Unix socket's peers are whoever its file mode lets in.
        if let Address::Tcp(addr) = peer {
            if !may_send_proxy_header(&listener.config.proxy_from, addr.ip()) {
                let detail = format!("{} may not send a PROXY header (proxy-from)", addr.ip());
                return Some((CloseReason::UntrustedProxy, detail));
            }
        }
    } else {
        let others = listener.server_names.iter().flat_map(|names| names.others());
        let mut routes = std::iter::once(listener).chain(others.map(|route| &**route));
        if !routes.any(|route| permits(&route.config, peer)) {
            return Some((CloseReason::Denied, String::new()));
        }
    }
    let max = listener.max_connections;
    let share = waiting_share(max);
    let admitted = listener.connections.make_room_waiting(ClientKey::of(peer)?, share, max);
    (!admitted).then(|| {
        let detail = format!(
            "{share} connections from this address (the most any may have) have sent nothing \
             yet, or the {max} places for such connections are full and it holds as many as \
             any other address"
        );
        (CloseReason::ClientLimit, detail)
    })
}

/// Whether the route's access rules let this client in. A Unix socket client has no IP
/// address, so it matches no rule: it is let in unless the route has allow rules (guard a
/// Unix socket with its file permissions instead).
pub fn permits(config: &Config, client: &Address) -> bool {
    match client {
        Address::Tcp(addr) => config.access.permits(addr.ip()),
        Address::Unix(_) => config.access.allow.is_empty(),
    }
}

/// Steps 1 to 3 of the module docs: the route to relay `conn` on, or `None` when it was
/// closed (and reported) instead.
///
/// A client is counted as accepted by the route it is relayed on: at once on a listener of
/// one route; on a listener shared by `sni=` routes, only once its ClientHello has picked
/// the route (until then, at most `first-bytes-timeout`, it holds a slot of the listener's
/// `max-connections` but is in no route's counts). A client closed before any route took
/// it is counted by the listener's own route.
fn admit(conn: &Arc<Connection>, listener: &Arc<Route>) -> Option<Arc<Route>> {
    let deadline = Instant::now() + listener.config.first_bytes_timeout;
    let Some(names) = &listener.server_names else {
        handle_conn::accepted(conn, listener);
        if let Err(error) = receive_proxy_header(conn, listener, deadline) {
            return close_early(conn, listener, CloseReason::BadProxyHeader, &error);
        }
        return let_in(conn, Arc::clone(listener), listener);
    };
    if let Err(error) = receive_proxy_header(conn, listener, deadline) {
        return close_early(conn, listener, CloseReason::BadProxyHeader, &error);
    }
    let name = peek_server_name(&conn.client, deadline);
    let Some(route) = names.pick(listener, name.as_deref()) else {
        let error = format!("no route for server name {}", name.as_deref().unwrap_or("(none)"));
        return close_early(conn, listener, CloseReason::NoRoute, &error);
    };
    handle_conn::accepted(conn, route);
    route.observer.routed_by_name(conn.conn(), name.as_deref());
    let_in(conn, Arc::clone(route), listener)
}

/// Step 1, if the listener expects a PROXY header: reads it and records the client it
/// names.
fn receive_proxy_header(
    conn: &Connection,
    listener: &Route,
    deadline: Instant,
) -> Result<(), proxy_receive::HeaderError> {
    if !listener.config.accept_proxy {
        return Ok(());
    }
    match proxy_receive::read_header(&conn.client, deadline)? {
        Proxied::Tcp { source, destination } => conn.set_proxied(source, destination),
        Proxied::Unknown => {} // the balancer's own health check, say: the socket's addresses
    }
    Ok(())
}

/// Step 3, on the route picked (already told the client was accepted).
fn let_in(conn: &Connection, route: Arc<Route>, listener: &Route) -> Option<Arc<Route>> {
    if listener.config.accept_proxy {
        route.observer.proxy_header_read(conn.conn(), &conn.client_addr);
    }
    if !checks_access_later(listener) {
        return Some(route); // checked in the accept loop
    }
    if !permits(&route.config, conn.real_client()) {
        return close_early(conn, &route, CloseReason::Denied, "");
    }
    // Out of the waiting room, into one of the route's slots (waiting for one, as a client
    // of a plain listener waits in the backlog), counted for the real client (the PROXY
    // header's) by the per-client limit of the route picked.
    let client = ClientKey::of(conn.real_client());
    let limit = route.per_client;
    match listener.connections.start_relaying(conn.id, client, limit, listener.max_connections) {
        Ok(()) => Some(route),
        Err(CloseReason::ClientLimit) => {
            close_early(conn, &route, CloseReason::ClientLimit, limit.refusal())
        }
        Err(reason) => close_early(conn, &route, reason, "relay stopping"),
    }
}

/// Closes a client before any upstream is dialled (see [`handle_conn::close_early`]); `None`,
/// for [`admit`] to return.
fn close_early(
    conn: &Connection,
    route: &Route,
    reason: CloseReason,
    error: impl std::fmt::Display,
) -> Option<Arc<Route>> {
    handle_conn::close_early(conn, route, reason, error);
    None
}

/// The first pause between two peeks at a ClientHello that is not all there yet, and the
/// longest. Measured nowhere: a ClientHello nearly always arrives whole in the first
/// segment (about 500 bytes to 1.8 KiB), so the loop is for the rare client whose hello is
/// split, and a few milliseconds of waiting are nothing beside a TLS handshake.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// The server name in the client's ClientHello, looked at without taking a byte; `None` if
/// the client is not speaking TLS, names no server, closes, or has not sent a whole
/// ClientHello (at most [`sni::MAX_HELLO_LEN`] bytes) by `deadline`.
///
/// How it waits: a `peek` blocks (within the socket's read timeout, set to what is left
/// before `deadline`) until the first bytes arrive. But while any byte is waiting it
/// returns at once, with the same bytes, so it cannot wait for *more*: std has no `poll`.
/// So a ClientHello that is not whole yet is peeked again after a short sleep, 1 ms
/// doubling up to 50 ms, until it is whole or the deadline passes.
fn peek_server_name(client: &Stream, deadline: Instant) -> Option<String> {
    let mut peeked = vec![0; sni::MAX_HELLO_LEN];
    let mut pause = FIRST_PAUSE;
    let name = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || client.set_read_timeout(Some(left)).is_err() {
            break None;
        }
        let count = match client.peek(&mut peeked) {
            Ok(0) | Err(_) => break None, // EOF, the deadline (a timeout), or a reset
            Ok(count) => count,
        };
        match sni::server_name(&peeked[..count]) {
            Peeked::ServerName(name) => break Some(name),
            Peeked::NotTls | Peeked::NoServerName => break None,
            Peeked::NeedMore => {
                thread::sleep(pause.min(left));
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    };
    let _ = client.set_read_timeout(None);
    name
}
