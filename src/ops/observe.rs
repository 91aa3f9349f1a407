//! The one seam between a connection's life and the three things that watch it: the log,
//! `--explain` and the route's metrics.
//!
//! The relay core calls an [`Observer`] once per event (accepted, dialled, first bytes, EOF,
//! closed, ...) and never the log, the narrator or a counter directly, so the function that
//! carries a connection's life reads like the Go it mirrors. Each event decides here what it
//! is worth: a debug line, a narrated line, a counter, and for the end of every connection,
//! however it ended, exactly one `connection closed` line and one counted close.
//!
//! Every line about a connection carries `route=` (the route's name, else its listen
//! address) and `conn=`, an id unique in the process, so an operator can tell two routes'
//! connections apart and follow one through the log.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::capacity::Capacity;
use crate::net::address::Address;
use crate::ops::log::Log;
use crate::ops::metrics::{LiveBytes, RouteMetrics, UpstreamMetrics};
use crate::outcome::{CloseReason, Direction};
use crate::teach::explain::Explain;
use crate::upstream::dial::DialError;

/// What one route reports about its connections, and where it goes.
#[derive(Debug)]
pub struct Observer {
    /// The route's label, on every line: its name, or its listen address.
    route: String,
    log: Log,
    explain: Explain,
    metrics: Arc<RouteMetrics>,
}

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

impl Observer {
    /// An observer writing to `log`, narrating if `explain` is on, counting in `metrics`.
    pub fn new(log: Log, explain: Explain, metrics: Arc<RouteMetrics>) -> Observer {
        Observer { route: metrics.route().to_string(), log, explain, metrics }
    }

    /// An info line about the route itself (serving, draining, stopped), with `route=`.
    pub fn route_info(&self, message: &str, fields: &[(&str, &dyn Display)]) {
        self.log.info(message, &[&[self.route_field()], fields].concat());
    }

    /// A warning about the route itself (its limit, its accept loop), with `route=`.
    pub fn route_warn(&self, message: &str, fields: &[(&str, &dyn Display)]) {
        self.log.warn(message, &[&[self.route_field()], fields].concat());
    }

    /// `--max-connections` was more than the process can hold under its OS limits, with the
    /// threads of health checks and of the admin endpoint kept out, named when there are any.
    pub fn max_connections_lowered(&self, asked: usize, capacity: &Capacity) {
        let (reserved, limited_by) = (capacity.reserved, capacity.limited_by.name());
        let mut fields: Vec<(&str, &dyn Display)> = vec![
            ("asked", &asked),
            ("allowed", &capacity.connections),
            ("limited_by", &limited_by),
            ("limit", &capacity.limit),
        ];
        if reserved.health_check_threads > 0 {
            fields.push(("health_check_threads", &reserved.health_check_threads));
        }
        if reserved.admin_threads > 0 {
            fields.push(("admin_threads", &reserved.admin_threads));
        }
        self.route_warn("max-connections lowered to fit the process's limits", &fields);
    }

    /// The route holds `max_connections`: the accept loop pauses, new clients wait in the
    /// kernel's backlog. Once per episode.
    pub fn limit_reached(&self, max_connections: usize) {
        self.metrics.record_limit_reached();
        self.route_warn(
            "connection limit reached, pausing accept",
            &[("max_connections", &max_connections)],
        );
    }

    /// The accept loop was paused at the limit for `waited`, until a slot freed up (or the
    /// relay stopped).
    pub fn waited_at_limit(&self, waited: Duration) {
        self.metrics.add_limit_wait(waited);
    }

    /// The episode at the limit is over: a slot is free and nobody waits. It lasted
    /// `lasted`, and `held` clients were accepted from the backlog meanwhile.
    pub fn limit_cleared(&self, lasted: Duration, held: u64) {
        self.route_warn(
            "connection limit cleared, accepting again",
            &[("waited_ms", &lasted.as_millis()), ("held", &held)],
        );
    }

    /// Whether `--explain` wants to hear about first bytes (the copy loop asks once).
    pub fn narrates(&self) -> bool {
        self.explain.is_on()
    }

    /// `l.Accept()` returned a client.
    pub fn accepted(&self, conn: Conn<'_>) {
        self.metrics.record_accepted();
        self.log
            .debug("accepted", &[self.route_field(), ("conn", &conn.id), ("client", conn.client)]);
        self.explain.accepted(conn.id, conn.client);
    }

    /// One attempt to dial an upstream failed. `first` is whether this upstream was healthy
    /// until now: only then is it a warning (once per back-off, not once per client).
    pub fn upstream_failed(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        backoff_ms: u128,
        error: &dyn Display,
        first: bool,
    ) {
        self.metrics.record_connect_failed();
        upstream.record_failure();
        let fields: &[(&str, &dyn Display)] = &[
            self.route_field(),
            ("conn", &conn),
            ("upstream", &upstream.upstream()),
            ("backoff_ms", &backoff_ms),
            ("error", error),
        ];
        if first {
            self.log.warn("upstream connect failed, backing off", fields);
        } else {
            self.log.debug("upstream connect failed again", fields);
        }
    }

    /// One address of an upstream with several failed, or had not answered when another
    /// did (Happy Eyeballs); it backs off on its own. `first`: it was not backing off until
    /// now, so this is a warning (once per back-off, not once per client).
    pub fn address_failed(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        address: &SocketAddr,
        backoff_ms: u128,
        error: &dyn Display,
        first: bool,
    ) {
        upstream.record_address_failure();
        let fields: &[(&str, &dyn Display)] = &[
            self.route_field(),
            ("conn", &conn),
            ("upstream", &upstream.upstream()),
            ("address", address),
            ("backoff_ms", &backoff_ms),
            ("error", error),
        ];
        if first {
            self.log.warn("upstream address failed, trying it last", fields);
        } else {
            self.log.debug("upstream address failed again", fields);
        }
    }

    /// Dialling failed on this machine (out of descriptors, ports or memory): not the
    /// upstream's fault, so it is counted apart and the upstream is not backed off. `warn`:
    /// the first such error in a while (a storm of them is one warning).
    pub fn dial_local_error(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        error: &dyn Display,
        warn: bool,
    ) {
        self.metrics.record_dial_local_error();
        let message = if warn {
            "cannot dial upstream: local resources exhausted, not its fault"
        } else {
            "cannot dial upstream: local resources exhausted"
        };
        self.dial_storm_line(message, warn, conn, upstream, error);
    }

    /// The upstream resolved only to the route's own listen address and was not dialled
    /// (see `upstream/mod.rs`). `warn`: the first in a while (one per back-off, not one per
    /// client of the storm); the client's close counts it as `reason=self_loop`.
    pub fn self_loop(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        error: &dyn Display,
        warn: bool,
    ) {
        let message = if warn {
            "upstream is this route's own listen address: refusing the loop"
        } else {
            "upstream is this route's own listen address"
        };
        self.dial_storm_line(message, warn, conn, upstream, error);
    }

    /// A line about a dial that fails the same way for every client of a storm: a warning
    /// the first time in a while, then debug lines.
    fn dial_storm_line(
        &self,
        message: &str,
        warn: bool,
        conn: u64,
        upstream: &UpstreamMetrics,
        error: &dyn Display,
    ) {
        let fields: &[(&str, &dyn Display)] = &[
            self.route_field(),
            ("conn", &conn),
            ("upstream", &upstream.upstream()),
            ("error", error),
        ];
        if warn { self.log.warn(message, fields) } else { self.log.debug(message, fields) }
    }

    /// An active health check of `upstream` failed (a debug line; the change of state,
    /// if it comes, is the warning).
    pub fn check_failed(&self, upstream: &UpstreamMetrics, error: &dyn Display) {
        upstream.record_check_failure();
        self.log.debug(
            "health check failed",
            &[self.route_field(), ("upstream", &upstream.upstream()), ("error", error)],
        );
    }

    /// The health checks took `upstream` down or brought it back up, after `checks`
    /// results in a row; `error` is the last check's, when it failed.
    pub fn upstream_health_changed(
        &self,
        upstream: &UpstreamMetrics,
        up: bool,
        checks: u32,
        error: Option<DialError>,
    ) {
        let fields: &[(&str, &dyn Display)] =
            &[self.route_field(), ("upstream", &upstream.upstream()), ("checks", &checks)];
        match error {
            Some(error) if !up => {
                let with_error = [fields, &[("error", &error as &dyn Display)]].concat();
                self.log.warn("upstream down", &with_error);
            }
            _ if !up => self.log.warn("upstream down", fields),
            _ => self.log.info("upstream up", fields),
        }
    }

    /// Every upstream failed: the connection ends without one.
    pub fn dial_failed(&self, conn: Conn<'_>, error: &dyn Display) {
        self.explain.dial_failed(conn.id, error);
    }

    /// This connection's own upstream connection is made.
    pub fn dialled(&self, conn: Conn<'_>, upstream: Option<&Address>) {
        // A socket that reset at once no longer knows its peer: `-` then.
        let upstream: &dyn Display = match upstream {
            Some(upstream) => upstream,
            None => &"-",
        };
        self.log.debug(
            "upstream dialled",
            &[self.route_field(), ("conn", &conn.id), ("upstream", upstream)],
        );
        self.explain.dialled(conn.id, upstream);
    }

    /// The PROXY protocol header could not be sent to the fresh upstream connection.
    pub fn proxy_header_failed(&self, conn: Conn<'_>, error: &io::Error) {
        self.log.warn(
            "cannot send the PROXY header",
            &[self.route_field(), ("conn", &conn.id), ("error", error)],
        );
    }

    /// The client's PROXY protocol header was read (`accept-proxy`): from now on the
    /// connection's client is the address it carries, and `via` the load balancer's.
    pub fn proxy_header_read(&self, conn: Conn<'_>, via: &Address) {
        self.log.debug(
            "PROXY header read",
            &[self.route_field(), ("conn", &conn.id), ("client", conn.client), ("via", via)],
        );
    }

    /// The listener picked this route by the server name the client's ClientHello asked
    /// for (`-` when it named none, or was no TLS at all).
    pub fn routed_by_name(&self, conn: Conn<'_>, name: Option<&str>) {
        let name = name.unwrap_or("-");
        let fields: &[(&str, &dyn Display)] =
            &[self.route_field(), ("conn", &conn.id), ("client", conn.client), ("sni", &name)];
        self.log.debug("routed by server name", fields);
    }

    /// About to start the second thread: both copies are about to run. From now on a
    /// scrape of `/metrics` adds this connection's `bytes` so far.
    pub fn copies_starting(&self, conn: Conn<'_>, bytes: &Arc<LiveBytes>) {
        self.metrics.track_bytes(conn.id, Arc::clone(bytes));
        self.explain.copies_starting(conn.id);
    }

    /// A copy moved its first bytes.
    pub fn first_bytes(&self, id: u64, direction: Direction, count: usize) {
        self.explain.first_bytes(id, direction, count);
    }

    /// A copy's source said EOF; the relay half-closes the other socket next.
    pub fn eof(&self, id: u64, direction: Direction) {
        self.explain.eof(id, direction);
    }

    /// A copy failed; the relay closes both sockets.
    pub fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error) {
        self.explain.copy_failed(id, direction, error);
    }

    /// The idle or half-close timer expired.
    pub fn timer_expired(&self, id: u64, reason: CloseReason) {
        self.explain.timer_expired(id, reason);
    }

    /// The connection is over, however it ended: its one `connection closed` line, its
    /// counted close and bytes. Called exactly once per [`accepted`](Observer::accepted).
    pub fn closed(&self, conn: Conn<'_>, ending: &Ending<'_>) {
        let Ending { reason, error, upstream, bytes: (to_upstream, to_client), started } = *ending;
        // Counted before the line is written: whoever reads the line finds the count.
        // The copy loops count in the connection's own counters, which a scrape sums while
        // it is open (see `copies_starting`); now its bytes join the route's totals.
        self.metrics.add_closed_bytes(conn.id, to_upstream, to_client);
        match reason {
            CloseReason::Denied => self.metrics.record_denied(),
            CloseReason::ProcessLimit => self.metrics.record_rejected_limit(),
            _ => {}
        }
        self.metrics.record_close(reason);
        self.explain.closed(conn.id, reason);
        let upstream: &dyn Display = match upstream {
            Some(upstream) => upstream,
            None => &"-",
        };
        let duration_ms = started.elapsed().as_millis();
        let fields: &[(&str, &dyn Display)] = &[
            self.route_field(),
            ("conn", &conn.id),
            ("client", conn.client),
            ("upstream", upstream),
            ("bytes_to_upstream", &to_upstream),
            ("bytes_to_client", &to_client),
            ("duration_ms", &duration_ms),
            ("reason", &reason),
        ];
        let with_error;
        let fields = if error.is_empty() {
            fields
        } else {
            with_error = [fields, &[("error", &error as &dyn Display)]].concat();
            &with_error[..]
        };
        if reason.is_relay_fault() {
            self.log.warn("connection closed", fields);
        } else {
            self.log.info("connection closed", fields);
        }
    }

    fn route_field(&self) -> (&'static str, &dyn Display) {
        ("route", &self.route)
    }
}
