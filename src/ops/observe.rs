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
use std::time::Duration;

use crate::limits::capacity::Capacity;
use crate::net::address::Address;
use crate::ops::log::Log;
use crate::outcome::{CloseReason, Direction};
use crate::relay::counts::LiveBytes;
use crate::relay::counts::RouteMetrics;
use crate::relay::events::{Conn, Ending, Events};
use crate::settings::config::Config;
use crate::teach::explain::Explain;
use crate::upstream::counts::UpstreamMetrics;
use crate::upstream::dial::DialError;
use crate::upstream::events::UpstreamEvents;

/// What one route reports about its connections, and where it goes.
#[derive(Debug)]
pub struct Observer {
    /// The route's label, on every line: its name, or its listen address.
    route: String,
    log: Log,
    explain: Explain,
    metrics: Arc<RouteMetrics>,
}

impl Observer {
    /// A route's observer: writing to the log at the route's level under its label
    /// (`metrics.route()`), narrating if `--explain` is on, counting in `metrics`. The one
    /// place a route's watchers are put together, so the core names none of them.
    pub fn for_route(config: &Config, metrics: Arc<RouteMetrics>) -> Observer {
        let route = metrics.route();
        let log = Log::for_route(config.log_level, &route);
        Observer { route, log, explain: Explain::new(config.explain), metrics }
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

    fn route_field(&self) -> (&'static str, &dyn Display) {
        ("route", &self.route)
    }
}

impl UpstreamEvents for Observer {
    fn upstream_failed(
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

    fn address_failed(
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

    fn dial_local_error(
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

    fn self_loop(&self, conn: u64, upstream: &UpstreamMetrics, error: &dyn Display, warn: bool) {
        let message = if warn {
            "upstream is this route's own listen address: refusing the loop"
        } else {
            "upstream is this route's own listen address"
        };
        self.dial_storm_line(message, warn, conn, upstream, error);
    }

    fn check_failed(&self, upstream: &UpstreamMetrics, error: &dyn Display) {
        upstream.record_check_failure();
        self.log.debug(
            "health check failed",
            &[self.route_field(), ("upstream", &upstream.upstream()), ("error", error)],
        );
    }

    fn upstream_health_changed(
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
}

impl Events for Observer {
    fn route_info(&self, message: &str, fields: &[(&str, &dyn Display)]) {
        self.log.info(message, &[&[self.route_field()], fields].concat());
    }

    fn route_warn(&self, message: &str, fields: &[(&str, &dyn Display)]) {
        self.log.warn(message, &[&[self.route_field()], fields].concat());
    }

    /// With the threads of health checks and of the admin endpoint kept out of the cap,
    /// named when there are any.
    fn max_connections_lowered(&self, asked: usize, capacity: &Capacity) {
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

    fn limit_reached(&self, max_connections: usize) {
        self.metrics.record_limit_reached();
        self.route_warn(
            "connection limit reached, pausing accept",
            &[("max_connections", &max_connections)],
        );
    }

    fn waited_at_limit(&self, waited: Duration) {
        self.metrics.add_limit_wait(waited);
    }

    fn limit_cleared(&self, lasted: Duration, held: u64) {
        self.route_warn(
            "connection limit cleared, accepting again",
            &[("waited_ms", &lasted.as_millis()), ("held", &held)],
        );
    }

    fn narrates(&self) -> bool {
        self.explain.is_on()
    }

    fn accepted(&self, conn: Conn<'_>) {
        self.metrics.record_accepted();
        self.log
            .debug("accepted", &[self.route_field(), ("conn", &conn.id), ("client", conn.client)]);
        self.explain.accepted(conn.id, conn.client);
    }

    fn dial_failed(&self, conn: Conn<'_>, error: &dyn Display) {
        self.explain.dial_failed(conn.id, error);
    }

    fn dialled(&self, conn: Conn<'_>, upstream: Option<&Address>) {
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

    fn proxy_header_failed(&self, conn: Conn<'_>, error: &io::Error) {
        self.log.warn(
            "cannot send the PROXY header",
            &[self.route_field(), ("conn", &conn.id), ("error", error)],
        );
    }

    fn proxy_header_read(&self, conn: Conn<'_>, via: &Address) {
        self.log.debug(
            "PROXY header read",
            &[self.route_field(), ("conn", &conn.id), ("client", conn.client), ("via", via)],
        );
    }

    fn routed_by_name(&self, conn: Conn<'_>, name: Option<&str>) {
        let name = name.unwrap_or("-");
        let fields: &[(&str, &dyn Display)] =
            &[self.route_field(), ("conn", &conn.id), ("client", conn.client), ("sni", &name)];
        self.log.debug("routed by server name", fields);
    }

    fn copies_starting(&self, conn: Conn<'_>, bytes: &Arc<LiveBytes>) {
        self.metrics.track_bytes(conn.id, Arc::clone(bytes));
        self.explain.copies_starting(conn.id);
    }

    fn first_bytes(&self, id: u64, direction: Direction, count: usize) {
        self.explain.first_bytes(id, direction, count);
    }

    fn eof(&self, id: u64, direction: Direction) {
        self.explain.eof(id, direction);
    }

    fn woken_by_close(&self, id: u64, direction: Direction, reason: CloseReason) {
        self.explain.woken_by_close(id, direction, reason);
    }

    fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error) {
        self.explain.copy_failed(id, direction, error);
    }

    fn timer_expired(&self, id: u64, reason: CloseReason) {
        self.explain.timer_expired(id, reason);
    }

    fn closed(&self, conn: Conn<'_>, ending: &Ending<'_>) {
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
}
