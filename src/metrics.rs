//! Per-route counters, and their rendering in the Prometheus text format for `GET /metrics`.
//!
//! Each route owns one [`RouteMetrics`], shared (behind an `Arc`) by its listener and its
//! connection threads. Counting is a relaxed atomic add: the counters are independent, and a
//! scrape only needs each value to be current, not all values to be from the same instant.
//! A scrape takes a [`RouteSnapshot`] of every route and hands them to [`render_prometheus`],
//! a pure function that the tests check byte for byte.
//!
//! # The bookkeeping contract
//!
//! Every accepted connection is counted once by [`RouteMetrics::record_accepted`] and, when it
//! is gone, once by [`RouteMetrics::record_close`] with the reason it ended, *including* the
//! connections that were denied or rejected at once. So at any moment
//! `accepted == active + sum of closed over all reasons`, which the tests check and which
//! an operator can use to spot a leak.
//!
//! # Portability
//!
//! The counters are [`Counter`]s: `Counter` where the target has 64-bit atomics, a lock
//! on the 32-bit targets that lack them (32-bit MIPS and PowerPC, ARMv5); never a 32-bit
//! counter that would wrap (see `src/counter.rs`).
//!
//! ```
//! use tcprelay::metrics::{render_prometheus, RouteMetrics};
//!
//! let web = RouteMetrics::new("web");
//! web.record_accepted();
//! web.add_bytes_client_to_upstream(5);
//! web.record_close("client_eof");
//! let text = render_prometheus(&[web.snapshot()]);
//! assert!(text.contains("tcprelay_connections_accepted_total{route=\"web\"} 1\n"));
//! ```

use crate::counter::Counter;

/// Every reason a connection can end for, in the order they are rendered.
///
/// The first ten are the names of the relay's `CloseReason` variants, in the same order:
///
/// - `client_eof`, `upstream_eof`: a side closed cleanly (after both directions finished).
/// - `client_reset`, `upstream_reset`: a side failed with an error mid-stream.
/// - `connect_failed`: no upstream could be reached.
/// - `spawn_failed`: the relay could not start a thread for the connection.
/// - `panicked`: a connection thread panicked (a bug); the relay went on.
/// - `idle_timeout`, `half_close_timeout`: the relay closed an inactive or half-open connection.
/// - `stopped`: closed by a stop or at the end of a drain.
///
/// Then the refusals, and a safety net:
///
/// - `limit`: closed at once because the route was at its connection limit.
/// - `denied`: closed at once because the access rules refused the client.
/// - `unknown`: recorded with a name missing from this list. Always 0 unless there is a bug.
pub const CLOSE_REASONS: [&str; 13] = [
    "client_eof",
    "upstream_eof",
    "client_reset",
    "upstream_reset",
    "connect_failed",
    "spawn_failed",
    "panicked",
    "idle_timeout",
    "half_close_timeout",
    "stopped",
    "limit",
    "denied",
    "unknown",
];

/// The `Content-Type` of [`render_prometheus`]'s output (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The live counters of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    accepted: Counter,
    active: Counter,
    rejected_limit: Counter,
    denied: Counter,
    connect_failed: Counter,
    bytes_client_to_upstream: Counter,
    bytes_upstream_to_client: Counter,
    closed_by_reason: [Counter; CLOSE_REASONS.len()],
}

impl RouteMetrics {
    /// Zeroed counters for the route labelled `route` in the output (its name, or its
    /// listen address when it has none).
    pub fn new(route: impl Into<String>) -> RouteMetrics {
        RouteMetrics {
            route: route.into(),
            accepted: Counter::new(0),
            active: Counter::new(0),
            rejected_limit: Counter::new(0),
            denied: Counter::new(0),
            connect_failed: Counter::new(0),
            bytes_client_to_upstream: Counter::new(0),
            bytes_upstream_to_client: Counter::new(0),
            closed_by_reason: std::array::from_fn(|_| Counter::new(0)),
        }
    }

    /// The route label given to [`RouteMetrics::new`].
    pub fn route(&self) -> &str {
        &self.route
    }

    /// A client connection was accepted: counts it and adds it to the active connections.
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1);
        self.active.fetch_add(1);
    }

    /// An accepted connection is gone: removes it from the active connections and counts
    /// the reason. Call it exactly once per [`record_accepted`](Self::record_accepted).
    ///
    /// # Panics
    /// In debug builds, if `reason` is not one of [`CLOSE_REASONS`]: that is a bug in the
    /// caller, and the tests should catch it. Release builds count it as `unknown`.
    pub fn record_close(&self, reason: &'static str) {
        let index = match CLOSE_REASONS.iter().position(|known| *known == reason) {
            Some(index) => index,
            None => {
                debug_assert!(false, "close reason {reason:?} is not in CLOSE_REASONS");
                CLOSE_REASONS.len() - 1
            }
        };
        self.closed_by_reason[index].fetch_add(1);
        // Never wrap below zero: a double close would otherwise show 18446744073709551615
        // active connections. The decrement does nothing when it is 0.
        let decremented = self.active.decrement_unless_zero();
        debug_assert!(decremented, "record_close without record_accepted");
    }

    /// A client was refused because the route was at its connection limit.
    pub fn record_rejected_limit(&self) {
        self.rejected_limit.fetch_add(1);
    }

    /// A client was refused by the route's access rules.
    pub fn record_denied(&self) {
        self.denied.fetch_add(1);
    }

    /// One attempt to connect to an upstream failed. With several upstreams one client can
    /// cause several failures, so this counts attempts, while the `connect_failed` close
    /// reason counts clients for whom every attempt failed.
    pub fn record_connect_failed(&self) {
        self.connect_failed.fetch_add(1);
    }

    /// `bytes` more were written from the client to the upstream.
    pub fn add_bytes_client_to_upstream(&self, bytes: u64) {
        self.bytes_client_to_upstream.fetch_add(bytes);
    }

    /// `bytes` more were written from the upstream to the client.
    pub fn add_bytes_upstream_to_client(&self, bytes: u64) {
        self.bytes_upstream_to_client.fetch_add(bytes);
    }

    /// The current values, read one counter at a time (not one consistent instant).
    pub fn snapshot(&self) -> RouteSnapshot {
        RouteSnapshot {
            route: self.route.clone(),
            accepted: self.accepted.get(),
            active: self.active.get(),
            rejected_limit: self.rejected_limit.get(),
            denied: self.denied.get(),
            connect_failed: self.connect_failed.get(),
            bytes_client_to_upstream: self.bytes_client_to_upstream.get(),
            bytes_upstream_to_client: self.bytes_upstream_to_client.get(),
            closed_by_reason: std::array::from_fn(|i| self.closed_by_reason[i].get()),
        }
    }
}

/// The values of one route's counters at one scrape: plain numbers, easy to render and to
/// assert on in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// The route label.
    pub route: String,
    /// Client connections accepted since start.
    pub accepted: u64,
    /// Client connections accepted and not yet closed.
    pub active: u64,
    /// Clients refused because the route was at its connection limit.
    pub rejected_limit: u64,
    /// Clients refused by the access rules.
    pub denied: u64,
    /// Failed attempts to connect to an upstream.
    pub connect_failed: u64,
    /// Bytes written from clients to upstreams.
    pub bytes_client_to_upstream: u64,
    /// Bytes written from upstreams to clients.
    pub bytes_upstream_to_client: u64,
    /// Closed connections, by reason, in the order of [`CLOSE_REASONS`].
    pub closed_by_reason: [u64; CLOSE_REASONS.len()],
}

impl RouteSnapshot {
    /// How many connections closed for `reason`, or `None` if it is not in [`CLOSE_REASONS`].
    pub fn closed(&self, reason: &str) -> Option<u64> {
        let index = CLOSE_REASONS.iter().position(|known| *known == reason)?;
        Some(self.closed_by_reason[index])
    }
}

/// Renders every route's counters in the Prometheus text exposition format (version 0.0.4).
///
/// Each metric family appears once, with its `# HELP` and `# TYPE` lines, followed by one
/// sample per route (and per direction or reason where it has that label), in the order the
/// routes are given. Route names are escaped as label values. The text ends with a newline.
pub fn render_prometheus(routes: &[RouteSnapshot]) -> String {
    let mut out = String::new();
    write_one_per_route(
        &mut out,
        routes,
        "tcprelay_connections_accepted_total",
        "counter",
        "Client connections accepted by the route's listener.",
        |r| r.accepted,
    );
    write_one_per_route(
        &mut out,
        routes,
        "tcprelay_connections_active",
        "gauge",
        "Client connections accepted and not yet closed.",
        |r| r.active,
    );
    write_one_per_route(
        &mut out,
        routes,
        "tcprelay_connections_rejected_limit_total",
        "counter",
        "Client connections closed at once because the route was at max-connections.",
        |r| r.rejected_limit,
    );
    write_one_per_route(
        &mut out,
        routes,
        "tcprelay_connections_denied_total",
        "counter",
        "Client connections closed at once by the allow/deny rules.",
        |r| r.denied,
    );
    write_one_per_route(
        &mut out,
        routes,
        "tcprelay_upstream_connect_failures_total",
        "counter",
        "Failed attempts to connect to an upstream (one client may cause several).",
        |r| r.connect_failed,
    );

    let name = "tcprelay_bytes_total";
    write_family_head(&mut out, name, "counter", "Bytes relayed, by direction.");
    for route in routes {
        let label = escape_label_value(&route.route);
        for (direction, bytes) in [
            ("client_to_upstream", route.bytes_client_to_upstream),
            ("upstream_to_client", route.bytes_upstream_to_client),
        ] {
            out.push_str(&format!(
                "{name}{{route=\"{label}\",direction=\"{direction}\"}} {bytes}\n"
            ));
        }
    }

    let name = "tcprelay_connections_closed_total";
    write_family_head(&mut out, name, "counter", "Connections closed, by reason.");
    for route in routes {
        let label = escape_label_value(&route.route);
        for (reason, count) in CLOSE_REASONS.iter().zip(route.closed_by_reason) {
            out.push_str(&format!("{name}{{route=\"{label}\",reason=\"{reason}\"}} {count}\n"));
        }
    }
    out
}

/// Writes a family whose only label is the route: the head, then one sample per route.
fn write_one_per_route(
    out: &mut String,
    routes: &[RouteSnapshot],
    name: &str,
    kind: &str,
    help: &str,
    value: fn(&RouteSnapshot) -> u64,
) {
    write_family_head(out, name, kind, help);
    for route in routes {
        let label = escape_label_value(&route.route);
        out.push_str(&format!("{name}{{route=\"{label}\"}} {}\n", value(route)));
    }
}

fn write_family_head(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// Escapes a label value as the text format requires: backslash, double quote and line
/// feed become `\\`, `\"` and `\n`. Everything else, UTF-8 included, is written as is.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_equals_active_plus_closed() {
        let metrics = RouteMetrics::new("web");
        for _ in 0..5 {
            metrics.record_accepted();
        }
        metrics.record_denied();
        metrics.record_close("denied");
        metrics.record_close("client_eof");
        metrics.record_close("client_eof");

        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.accepted, 5);
        assert_eq!(snapshot.active, 2);
        assert_eq!(snapshot.denied, 1);
        assert_eq!(snapshot.closed("client_eof"), Some(2));
        assert_eq!(snapshot.closed("denied"), Some(1));
        assert_eq!(snapshot.closed("no_such_reason"), None);
        let closed: u64 = snapshot.closed_by_reason.iter().sum();
        assert_eq!(snapshot.accepted, snapshot.active + closed);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let metrics = RouteMetrics::new("web");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        metrics.record_accepted();
                        metrics.add_bytes_client_to_upstream(3);
                        metrics.add_bytes_upstream_to_client(7);
                        metrics.record_close("upstream_eof");
                    }
                });
            }
        });
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.accepted, 4000);
        assert_eq!(snapshot.active, 0);
        assert_eq!(snapshot.bytes_client_to_upstream, 12_000);
        assert_eq!(snapshot.bytes_upstream_to_client, 28_000);
        assert_eq!(snapshot.closed("upstream_eof"), Some(4000));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is not in CLOSE_REASONS")]
    fn an_unknown_close_reason_is_a_bug_caught_in_debug_builds() {
        let metrics = RouteMetrics::new("web");
        metrics.record_accepted();
        metrics.record_close("client_left");
    }

    #[test]
    fn renders_the_exact_exposition_text() {
        let web = RouteMetrics::new("web");
        for _ in 0..3 {
            web.record_accepted();
        }
        web.record_rejected_limit();
        web.record_close("limit");
        web.record_connect_failed();
        web.record_connect_failed();
        web.record_close("connect_failed");
        web.add_bytes_client_to_upstream(100);
        web.add_bytes_upstream_to_client(2048);
        let tricky = RouteMetrics::new("a\"b\\c\nd");
        tricky.record_accepted();
        tricky.record_denied();
        tricky.record_close("denied");

        let text = render_prometheus(&[web.snapshot(), tricky.snapshot()]);
        let expected = r#"# HELP tcprelay_connections_accepted_total Client connections accepted by the route's listener.
# TYPE tcprelay_connections_accepted_total counter
tcprelay_connections_accepted_total{route="web"} 3
tcprelay_connections_accepted_total{route="a\"b\\c\nd"} 1
# HELP tcprelay_connections_active Client connections accepted and not yet closed.
# TYPE tcprelay_connections_active gauge
tcprelay_connections_active{route="web"} 1
tcprelay_connections_active{route="a\"b\\c\nd"} 0
# HELP tcprelay_connections_rejected_limit_total Client connections closed at once because the route was at max-connections.
# TYPE tcprelay_connections_rejected_limit_total counter
tcprelay_connections_rejected_limit_total{route="web"} 1
tcprelay_connections_rejected_limit_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_connections_denied_total Client connections closed at once by the allow/deny rules.
# TYPE tcprelay_connections_denied_total counter
tcprelay_connections_denied_total{route="web"} 0
tcprelay_connections_denied_total{route="a\"b\\c\nd"} 1
# HELP tcprelay_upstream_connect_failures_total Failed attempts to connect to an upstream (one client may cause several).
# TYPE tcprelay_upstream_connect_failures_total counter
tcprelay_upstream_connect_failures_total{route="web"} 2
tcprelay_upstream_connect_failures_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_bytes_total Bytes relayed, by direction.
# TYPE tcprelay_bytes_total counter
tcprelay_bytes_total{route="web",direction="client_to_upstream"} 100
tcprelay_bytes_total{route="web",direction="upstream_to_client"} 2048
tcprelay_bytes_total{route="a\"b\\c\nd",direction="client_to_upstream"} 0
tcprelay_bytes_total{route="a\"b\\c\nd",direction="upstream_to_client"} 0
# HELP tcprelay_connections_closed_total Connections closed, by reason.
# TYPE tcprelay_connections_closed_total counter
tcprelay_connections_closed_total{route="web",reason="client_eof"} 0
tcprelay_connections_closed_total{route="web",reason="upstream_eof"} 0
tcprelay_connections_closed_total{route="web",reason="client_reset"} 0
tcprelay_connections_closed_total{route="web",reason="upstream_reset"} 0
tcprelay_connections_closed_total{route="web",reason="connect_failed"} 1
tcprelay_connections_closed_total{route="web",reason="spawn_failed"} 0
tcprelay_connections_closed_total{route="web",reason="panicked"} 0
tcprelay_connections_closed_total{route="web",reason="idle_timeout"} 0
tcprelay_connections_closed_total{route="web",reason="half_close_timeout"} 0
tcprelay_connections_closed_total{route="web",reason="stopped"} 0
tcprelay_connections_closed_total{route="web",reason="limit"} 1
tcprelay_connections_closed_total{route="web",reason="denied"} 0
tcprelay_connections_closed_total{route="web",reason="unknown"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="client_eof"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="upstream_eof"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="client_reset"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="upstream_reset"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="connect_failed"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="spawn_failed"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="panicked"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="idle_timeout"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="half_close_timeout"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="stopped"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="limit"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="denied"} 1
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="unknown"} 0
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn no_routes_still_render_the_family_headers() {
        let text = render_prometheus(&[]);
        assert_eq!(text.lines().count(), 7 * 2);
        assert!(text.lines().all(|line| line.starts_with("# ")));
    }

    #[test]
    fn escapes_only_what_the_format_requires() {
        assert_eq!(escape_label_value(r"C:\path"), r"C:\\path");
        assert_eq!(escape_label_value("say \"hi\""), r#"say \"hi\""#);
        assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
        assert_eq!(escape_label_value("[::1]:8080 ünïcode\t"), "[::1]:8080 ünïcode\t");
    }
}
