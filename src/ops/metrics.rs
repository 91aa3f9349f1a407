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
//! The test `the_module_example` at the end of this file runs an example.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::counter::Counter;

use crate::lock::lock;
use crate::outcome::CloseReason;
use crate::relay::live_bytes::LiveBytes;
use crate::upstream::counts::UpstreamMetrics;

/// The `Content-Type` of [`render_prometheus`]'s output (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The live counters of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    /// The label; a reload may rename the route (see [`RouteMetrics::reloaded`]).
    route: Mutex<String>,
    accepted: Counter,
    active: Counter,
    rejected_limit: Counter,
    max_connections: Counter,
    limit_reached: Counter,
    limit_wait_micros: Counter,
    denied: Counter,
    connect_failed: Counter,
    dial_local_errors: Counter,
    bytes_client_to_upstream: Counter,
    bytes_upstream_to_client: Counter,
    closed_by_reason: [Counter; CloseReason::ALL.len()],
    /// A reload may change the list; each upstream it keeps keeps its counters.
    upstreams: Mutex<Vec<Arc<UpstreamMetrics>>>,
    /// The byte counters of the connections relaying now, by id, summed at each scrape.
    open_bytes: Mutex<HashMap<u64, Arc<LiveBytes>>>,
}

impl RouteMetrics {
    /// Zeroed counters for the route labelled `route` in the output (its name, or its
    /// listen address when it has none).
    #[cfg(test)]
    pub(crate) fn new(route: impl Into<String>) -> RouteMetrics {
        RouteMetrics::with_upstreams(route, std::iter::empty::<String>())
    }

    /// Zeroed counters for the route labelled `route`, and for each of its upstreams
    /// (labelled as configured, e.g. `app1:80`), every upstream up.
    pub(crate) fn with_upstreams(
        route: impl Into<String>,
        upstreams: impl IntoIterator<Item = impl Into<String>>,
    ) -> RouteMetrics {
        RouteMetrics {
            route: Mutex::new(route.into()),
            accepted: Counter::new(0),
            active: Counter::new(0),
            rejected_limit: Counter::new(0),
            max_connections: Counter::new(0),
            limit_reached: Counter::new(0),
            limit_wait_micros: Counter::new(0),
            denied: Counter::new(0),
            connect_failed: Counter::new(0),
            dial_local_errors: Counter::new(0),
            bytes_client_to_upstream: Counter::new(0),
            bytes_upstream_to_client: Counter::new(0),
            closed_by_reason: std::array::from_fn(|_| Counter::new(0)),
            upstreams: Mutex::new(
                upstreams
                    .into_iter()
                    .map(|upstream| Arc::new(UpstreamMetrics::new(upstream)))
                    .collect(),
            ),
            open_bytes: Mutex::default(),
        }
    }

    /// The counters of each upstream, in the route's order.
    pub(crate) fn upstreams(&self) -> Vec<Arc<UpstreamMetrics>> {
        lock(&self.upstreams).clone()
    }

    /// The route label: its name, else its listen address (as of the last reload).
    pub fn route(&self) -> String {
        lock(&self.route).clone()
    }

    /// After a reload that kept the route's listener: the route's counters go on (they
    /// count the listener's clients, old and new), under the route's label of now, and the
    /// upstream list becomes `upstreams`. An upstream that stays keeps its counters and its
    /// up or down state; a new one starts from zero, up.
    pub(crate) fn reloaded<'a>(&self, route: &str, upstreams: impl IntoIterator<Item = &'a str>) {
        let mut list = lock(&self.upstreams);
        let next = upstreams
            .into_iter()
            .map(|upstream| match list.iter().find(|known| known.upstream() == upstream) {
                Some(known) => Arc::clone(known),
                None => Arc::new(UpstreamMetrics::new(upstream)),
            })
            .collect();
        *list = next;
        *lock(&self.route) = route.to_string();
    }

    /// A client connection was accepted: counts it and adds it to the active connections.
    pub(crate) fn record_accepted(&self) {
        self.accepted.fetch_add(1);
        self.active.fetch_add(1);
    }

    /// An accepted connection is gone: removes it from the active connections and counts
    /// the reason. Call it exactly once per [`record_accepted`](Self::record_accepted).
    pub(crate) fn record_close(&self, reason: CloseReason) {
        let index = reason.index();
        self.closed_by_reason[index].fetch_add(1);
        // Never wrap below zero: a double close would otherwise show 18446744073709551615
        // active connections. `fetch_update` fails (and changes nothing) when it is 0.
        let decremented = self.active.decrement_unless_zero();
        debug_assert!(decremented, "record_close without record_accepted");
    }

    /// A client was closed at once because the whole process held all the connections its
    /// OS limits allow (close reason `process_limit`).
    pub(crate) fn record_rejected_limit(&self) {
        self.rejected_limit.fetch_add(1);
    }

    /// The route's connection limit as it applies: `--max-connections`, or less if the
    /// process cannot hold that many.
    pub(crate) fn set_max_connections(&self, max: usize) {
        self.max_connections.set(max as u64);
    }

    /// The route reached its connection limit and paused accepting (once per episode).
    pub(crate) fn record_limit_reached(&self) {
        self.limit_reached.fetch_add(1);
    }

    /// The accept loop was paused at the connection limit for `waited`.
    pub(crate) fn add_limit_wait(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.limit_wait_micros.fetch_add(micros);
    }

    /// A client was refused by the route's access rules.
    pub(crate) fn record_denied(&self) {
        self.denied.fetch_add(1);
    }

    /// One attempt to connect to an upstream failed. With several upstreams one client can
    /// cause several failures, so this counts attempts, while the `connect_failed` close
    /// reason counts clients for whom every attempt failed.
    pub(crate) fn record_connect_failed(&self) {
        self.connect_failed.fetch_add(1);
    }

    /// Dialling an upstream failed for a reason on this machine (out of descriptors, ports
    /// or memory), not the upstream's: counted here, never as an upstream failure.
    pub(crate) fn record_dial_local_error(&self) {
        self.dial_local_errors.fetch_add(1);
    }

    /// `bytes` more were written from the client to the upstream.
    pub(crate) fn add_bytes_client_to_upstream(&self, bytes: u64) {
        self.bytes_client_to_upstream.fetch_add(bytes);
    }

    /// `bytes` more were written from the upstream to the client.
    pub(crate) fn add_bytes_upstream_to_client(&self, bytes: u64) {
        self.bytes_upstream_to_client.fetch_add(bytes);
    }

    /// Connection `id` has started relaying: from now on a scrape adds its bytes so far.
    pub(crate) fn track_bytes(&self, id: u64, bytes: Arc<LiveBytes>) {
        self.lock_open_bytes().insert(id, bytes);
    }

    /// Connection `id` closed having delivered these bytes: they move from its own
    /// counter (if it was tracked) to the route's totals, in one step under the lock a
    /// scrape takes, so that no scrape counts them twice or misses them.
    pub(crate) fn add_closed_bytes(&self, id: u64, to_upstream: u64, to_client: u64) {
        let mut open = self.lock_open_bytes();
        open.remove(&id);
        self.add_bytes_client_to_upstream(to_upstream);
        self.add_bytes_upstream_to_client(to_client);
        drop(open);
    }

    fn lock_open_bytes(&self) -> MutexGuard<'_, HashMap<u64, Arc<LiveBytes>>> {
        // A map only ever changed by one insert or remove: a poisoned lock is still good.
        lock(&self.open_bytes)
    }

    /// The current values, read one counter at a time (not one consistent instant). The
    /// bytes include those of connections still open, as far as they have got.
    pub fn snapshot(&self) -> RouteSnapshot {
        let (bytes_client_to_upstream, bytes_upstream_to_client) = {
            let open = self.lock_open_bytes();
            let live = open.values().map(|bytes| bytes.get());
            live.fold(
                (self.bytes_client_to_upstream.get(), self.bytes_upstream_to_client.get()),
                |(up, down), (more_up, more_down)| (up + more_up, down + more_down),
            )
        };
        RouteSnapshot {
            route: self.route(),
            accepted: self.accepted.get(),
            active: self.active.get(),
            rejected_limit: self.rejected_limit.get(),
            max_connections: self.max_connections.get(),
            limit_reached: self.limit_reached.get(),
            limit_wait_micros: self.limit_wait_micros.get(),
            denied: self.denied.get(),
            connect_failed: self.connect_failed.get(),
            dial_local_errors: self.dial_local_errors.get(),
            bytes_client_to_upstream,
            bytes_upstream_to_client,
            closed_by_reason: std::array::from_fn(|i| self.closed_by_reason[i].get()),
            upstreams: self
                .upstreams()
                .iter()
                .map(|upstream| upstream_snapshot(upstream))
                .collect(),
        }
    }
}

/// The values of `upstream`'s counters now, one counter at a time: upstream/ keeps them,
/// the metrics read them when scraped.
fn upstream_snapshot(upstream: &UpstreamMetrics) -> UpstreamSnapshot {
    UpstreamSnapshot {
        upstream: upstream.upstream().to_string(),
        up: upstream.is_up(),
        active: upstream.active(),
        connections: upstream.connections(),
        failures: upstream.failures(),
        address_failures: upstream.address_failures(),
        check_failures: upstream.check_failures(),
    }
}

/// The values of one upstream's counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSnapshot {
    /// The upstream label, as configured.
    pub upstream: String,
    /// Up (`true`) or down: by the health checks when they are on (down after 3 failed
    /// checks in a row, up after 2 good ones), else whether the last connect succeeded.
    pub up: bool,
    /// Connections to it open now.
    pub active: u64,
    /// Connections to it made since start.
    pub connections: u64,
    /// Clients' connect attempts to it that failed.
    pub failures: u64,
    /// Address-level failures: one of its addresses failed or was too slow.
    pub address_failures: u64,
    /// Failed health checks.
    pub check_failures: u64,
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
    /// Clients closed at once because the process was at its connection cap.
    pub rejected_limit: u64,
    /// The route's connection limit as it applies.
    pub max_connections: u64,
    /// Times the route reached its connection limit and paused accepting.
    pub limit_reached: u64,
    /// Microseconds the accept loop spent paused at the connection limit.
    pub limit_wait_micros: u64,
    /// Clients refused by the access rules.
    pub denied: u64,
    /// Failed attempts to connect to an upstream.
    pub connect_failed: u64,
    /// Dial attempts that failed for a local reason (out of descriptors, ports, memory).
    pub dial_local_errors: u64,
    /// Bytes written from clients to upstreams.
    pub bytes_client_to_upstream: u64,
    /// Bytes written from upstreams to clients.
    pub bytes_upstream_to_client: u64,
    /// Closed connections, by reason, in the order of [`CloseReason::ALL`].
    pub closed_by_reason: [u64; CloseReason::ALL.len()],
    /// Each upstream's counters, in the route's order.
    pub upstreams: Vec<UpstreamSnapshot>,
}

impl RouteSnapshot {
    /// How many connections closed for the reason named `reason` (as in the log, e.g.
    /// `client_eof`), or `None` if no [`CloseReason`] has that name.
    pub fn closed(&self, reason: &str) -> Option<u64> {
        let reason = CloseReason::ALL.iter().find(|known| known.name() == reason)?;
        Some(self.closed_by_reason[reason.index()])
    }

    /// The counters of the upstream labelled `upstream`, if the route has it.
    pub fn upstream(&self, upstream: &str) -> Option<&UpstreamSnapshot> {
        self.upstreams.iter().find(|known| known.upstream == upstream)
    }
}

/// Renders every route's counters in the Prometheus text exposition format (version 0.0.4).
///
/// Each metric family appears once, with its `# HELP` and `# TYPE` lines, followed by one
/// sample per route (and per upstream, direction or reason where it has that label), in the
/// order the routes are given. Route names are escaped as label values. The text ends with a
/// newline. The families, in their order, are `FAMILIES`, below.
pub fn render_prometheus(routes: &[RouteSnapshot]) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        write_family_head(&mut out, family.name, family.kind, family.help);
        for route in routes {
            family.samples.write(&mut out, family.name, route);
        }
    }
    out
}

/// One metric family of [`render_prometheus`]: its name, type and help, and which samples it
/// has for each route.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Samples,
}

/// The samples a [`Family`] has for one route, and the labels beside `route` that tell them
/// apart.
enum Samples {
    /// One sample, labelled by the route alone.
    Route(fn(&RouteSnapshot) -> u64),
    /// One sample, a count of microseconds written as seconds with six decimals.
    RouteSeconds(fn(&RouteSnapshot) -> u64),
    /// One sample per upstream of the route, labelled `upstream`.
    Upstream(fn(&UpstreamSnapshot) -> u64),
    /// The bytes each way, labelled `direction`.
    Direction,
    /// The closed connections for each [`CloseReason`], labelled `reason`.
    Reason,
}

impl Samples {
    /// Writes this family's samples for `route`, one line each.
    fn write(&self, out: &mut String, name: &str, route: &RouteSnapshot) {
        let label = escape_label_value(&route.route);
        match self {
            Samples::Route(value) => {
                out.push_str(&format!("{name}{{route=\"{label}\"}} {}\n", value(route)));
            }
            Samples::RouteSeconds(micros) => {
                let micros = micros(route);
                let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
                out.push_str(&format!("{name}{{route=\"{label}\"}} {seconds}.{fraction:06}\n"));
            }
            Samples::Upstream(value) => {
                for upstream in &route.upstreams {
                    let upstream_label = escape_label_value(&upstream.upstream);
                    out.push_str(&format!(
                        "{name}{{route=\"{label}\",upstream=\"{upstream_label}\"}} {}\n",
                        value(upstream)
                    ));
                }
            }
            Samples::Direction => {
                for (direction, bytes) in [
                    ("client_to_upstream", route.bytes_client_to_upstream),
                    ("upstream_to_client", route.bytes_upstream_to_client),
                ] {
                    out.push_str(&format!(
                        "{name}{{route=\"{label}\",direction=\"{direction}\"}} {bytes}\n"
                    ));
                }
            }
            Samples::Reason => {
                for (reason, count) in CloseReason::ALL.iter().zip(route.closed_by_reason) {
                    out.push_str(&format!(
                        "{name}{{route=\"{label}\",reason=\"{reason}\"}} {count}\n"
                    ));
                }
            }
        }
    }
}

/// Every family [`render_prometheus`] writes, in the order it writes them. A new counter is
/// one more row here (and a field of [`RouteSnapshot`] or [`UpstreamSnapshot`]).
const FAMILIES: &[Family] = &[
    Family {
        name: "tcprelay_connections_accepted_total",
        kind: "counter",
        help: "Client connections accepted by the route's listener.",
        samples: Samples::Route(|r| r.accepted),
    },
    Family {
        name: "tcprelay_connections_active",
        kind: "gauge",
        help: "Client connections accepted and not yet closed.",
        samples: Samples::Route(|r| r.active),
    },
    Family {
        name: "tcprelay_connections_rejected_limit_total",
        kind: "counter",
        help: "Client connections closed at once because the process held all the connections its OS limits allow (reason process_limit).",
        samples: Samples::Route(|r| r.rejected_limit),
    },
    Family {
        name: "tcprelay_connections_max",
        kind: "gauge",
        help: "The route's connection limit: max-connections, or less if the process cannot hold that many.",
        samples: Samples::Route(|r| r.max_connections),
    },
    Family {
        name: "tcprelay_connection_limit_waits_total",
        kind: "counter",
        help: "Times the route reached its connection limit and paused accepting; new clients then wait in the backlog.",
        samples: Samples::Route(|r| r.limit_reached),
    },
    Family {
        name: "tcprelay_connection_limit_wait_seconds_total",
        kind: "counter",
        help: "Seconds the route's accept loop was paused at its connection limit, added as each slot frees up.",
        samples: Samples::RouteSeconds(|r| r.limit_wait_micros),
    },
    Family {
        name: "tcprelay_connections_denied_total",
        kind: "counter",
        help: "Client connections closed at once by the allow/deny rules.",
        samples: Samples::Route(|r| r.denied),
    },
    Family {
        name: "tcprelay_upstream_connect_failures_total",
        kind: "counter",
        help: "Failed attempts to connect to an upstream (one client may cause several).",
        samples: Samples::Route(|r| r.connect_failed),
    },
    Family {
        name: "tcprelay_dial_local_errors_total",
        kind: "counter",
        help: "Upstream dials that failed on this machine (no descriptors, ports or memory left).",
        samples: Samples::Route(|r| r.dial_local_errors),
    },
    Family {
        name: "tcprelay_upstream_up",
        kind: "gauge",
        help: "1 if the upstream is up (health checks if on, else the last connect), 0 if down.",
        samples: Samples::Upstream(|u| u64::from(u.up)),
    },
    Family {
        name: "tcprelay_upstream_connections_active",
        kind: "gauge",
        help: "Connections to the upstream open now.",
        samples: Samples::Upstream(|u| u.active),
    },
    Family {
        name: "tcprelay_upstream_connections_total",
        kind: "counter",
        help: "Connections to the upstream made for clients.",
        samples: Samples::Upstream(|u| u.connections),
    },
    Family {
        name: "tcprelay_upstream_failures_total",
        kind: "counter",
        help: "Clients' connect attempts to the upstream that failed.",
        samples: Samples::Upstream(|u| u.failures),
    },
    Family {
        name: "tcprelay_upstream_address_failures_total",
        kind: "counter",
        help: "Addresses of the upstream that failed or did not answer in time.",
        samples: Samples::Upstream(|u| u.address_failures),
    },
    Family {
        name: "tcprelay_upstream_check_failures_total",
        kind: "counter",
        help: "Failed active health checks of the upstream.",
        samples: Samples::Upstream(|u| u.check_failures),
    },
    Family {
        name: "tcprelay_bytes_total",
        kind: "counter",
        help: "Bytes relayed, by direction.",
        samples: Samples::Direction,
    },
    Family {
        name: "tcprelay_connections_closed_total",
        kind: "counter",
        help: "Connections closed, by reason.",
        samples: Samples::Reason,
    },
];

/// Renders the logger's process-wide counters (see `src/ops/log.rs`), to follow
/// [`render_prometheus`]'s output: lines dropped because stderr did not keep up, and
/// repeated lines suppressed by the rate limit.
pub fn render_log_counters(dropped: u64, suppressed: u64) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "tcprelay_log_lines_dropped_total",
            "Log lines dropped because stderr did not keep up (or failed).",
            dropped,
        ),
        (
            "tcprelay_log_lines_suppressed_total",
            "Repeated log lines suppressed by the rate limit, each counted in a summary line.",
            suppressed,
        ),
    ] {
        write_family_head(&mut out, name, "counter", help);
        out.push_str(&format!("{name} {value}\n"));
    }
    out
}

/// Renders the count of reloads (`POST /reload`, `tcprelay reload`) by result:
/// `applied` or `refused`.
pub fn render_reload_counters(applied: u64, refused: u64) -> String {
    let mut out = String::new();
    let name = "tcprelay_reloads_total";
    write_family_head(&mut out, name, "counter", "Config reloads, by result.");
    out.push_str(&format!("{name}{{result=\"applied\"}} {applied}\n"));
    out.push_str(&format!("{name}{{result=\"refused\"}} {refused}\n"));
    out
}

pub(crate) fn write_family_head(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// Escapes a label value as the text format requires: backslash, double quote and line
/// feed become `\\`, `\"` and `\n`. Everything else, UTF-8 included, is written as is.
pub(crate) fn escape_label_value(value: &str) -> String {
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
    use crate::outcome::Direction;

    #[test]
    fn accepted_equals_active_plus_closed() {
        let metrics = RouteMetrics::new("web");
        for _ in 0..5 {
            metrics.record_accepted();
        }
        metrics.record_denied();
        metrics.record_close(CloseReason::Denied);
        metrics.record_close(CloseReason::ClientEof);
        metrics.record_close(CloseReason::ClientEof);

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
    fn open_connections_bytes_count_until_they_close() {
        let metrics = RouteMetrics::new("web");
        let live = Arc::new(LiveBytes::default());
        metrics.track_bytes(7, Arc::clone(&live));
        live.add(Direction::ClientToUpstream, 5);
        live.add(Direction::UpstreamToClient, 11);
        let open = metrics.snapshot();
        assert_eq!((open.bytes_client_to_upstream, open.bytes_upstream_to_client), (5, 11));
        metrics.add_closed_bytes(7, 5, 11);
        let closed = metrics.snapshot();
        assert_eq!((closed.bytes_client_to_upstream, closed.bytes_upstream_to_client), (5, 11));
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
                        metrics.record_close(CloseReason::UpstreamEof);
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
    fn renders_the_exact_exposition_text() {
        let web = RouteMetrics::with_upstreams("web", ["app1:80", "app\"2:80"]);
        for _ in 0..3 {
            web.record_accepted();
        }
        let upstreams = web.upstreams();
        let [app1, app2] = upstreams.as_slice() else { panic!("two upstreams") };
        app1.record_connected();
        app1.record_connected();
        app1.record_disconnected();
        app1.record_address_failure();
        app2.record_failure();
        app2.record_check_failure();
        app2.set_up(false);
        web.record_dial_local_error();
        web.record_rejected_limit();
        web.set_max_connections(500);
        web.record_limit_reached();
        web.add_limit_wait(Duration::from_micros(1_500_250));
        web.record_close(CloseReason::IdleTimeout);
        web.record_connect_failed();
        web.record_connect_failed();
        web.record_close(CloseReason::ConnectFailed);
        web.add_bytes_client_to_upstream(100);
        web.add_bytes_upstream_to_client(2048);
        let tricky = RouteMetrics::new("a\"b\\c\nd");
        tricky.record_accepted();
        tricky.record_denied();
        tricky.record_close(CloseReason::Denied);

        let text = render_prometheus(&[web.snapshot(), tricky.snapshot()]);
        let expected = r#"# HELP tcprelay_connections_accepted_total Client connections accepted by the route's listener.
# TYPE tcprelay_connections_accepted_total counter
tcprelay_connections_accepted_total{route="web"} 3
tcprelay_connections_accepted_total{route="a\"b\\c\nd"} 1
# HELP tcprelay_connections_active Client connections accepted and not yet closed.
# TYPE tcprelay_connections_active gauge
tcprelay_connections_active{route="web"} 1
tcprelay_connections_active{route="a\"b\\c\nd"} 0
# HELP tcprelay_connections_rejected_limit_total Client connections closed at once because the process held all the connections its OS limits allow (reason process_limit).
# TYPE tcprelay_connections_rejected_limit_total counter
tcprelay_connections_rejected_limit_total{route="web"} 1
tcprelay_connections_rejected_limit_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_connections_max The route's connection limit: max-connections, or less if the process cannot hold that many.
# TYPE tcprelay_connections_max gauge
tcprelay_connections_max{route="web"} 500
tcprelay_connections_max{route="a\"b\\c\nd"} 0
# HELP tcprelay_connection_limit_waits_total Times the route reached its connection limit and paused accepting; new clients then wait in the backlog.
# TYPE tcprelay_connection_limit_waits_total counter
tcprelay_connection_limit_waits_total{route="web"} 1
tcprelay_connection_limit_waits_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_connection_limit_wait_seconds_total Seconds the route's accept loop was paused at its connection limit, added as each slot frees up.
# TYPE tcprelay_connection_limit_wait_seconds_total counter
tcprelay_connection_limit_wait_seconds_total{route="web"} 1.500250
tcprelay_connection_limit_wait_seconds_total{route="a\"b\\c\nd"} 0.000000
# HELP tcprelay_connections_denied_total Client connections closed at once by the allow/deny rules.
# TYPE tcprelay_connections_denied_total counter
tcprelay_connections_denied_total{route="web"} 0
tcprelay_connections_denied_total{route="a\"b\\c\nd"} 1
# HELP tcprelay_upstream_connect_failures_total Failed attempts to connect to an upstream (one client may cause several).
# TYPE tcprelay_upstream_connect_failures_total counter
tcprelay_upstream_connect_failures_total{route="web"} 2
tcprelay_upstream_connect_failures_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_dial_local_errors_total Upstream dials that failed on this machine (no descriptors, ports or memory left).
# TYPE tcprelay_dial_local_errors_total counter
tcprelay_dial_local_errors_total{route="web"} 1
tcprelay_dial_local_errors_total{route="a\"b\\c\nd"} 0
# HELP tcprelay_upstream_up 1 if the upstream is up (health checks if on, else the last connect), 0 if down.
# TYPE tcprelay_upstream_up gauge
tcprelay_upstream_up{route="web",upstream="app1:80"} 1
tcprelay_upstream_up{route="web",upstream="app\"2:80"} 0
# HELP tcprelay_upstream_connections_active Connections to the upstream open now.
# TYPE tcprelay_upstream_connections_active gauge
tcprelay_upstream_connections_active{route="web",upstream="app1:80"} 1
tcprelay_upstream_connections_active{route="web",upstream="app\"2:80"} 0
# HELP tcprelay_upstream_connections_total Connections to the upstream made for clients.
# TYPE tcprelay_upstream_connections_total counter
tcprelay_upstream_connections_total{route="web",upstream="app1:80"} 2
tcprelay_upstream_connections_total{route="web",upstream="app\"2:80"} 0
# HELP tcprelay_upstream_failures_total Clients' connect attempts to the upstream that failed.
# TYPE tcprelay_upstream_failures_total counter
tcprelay_upstream_failures_total{route="web",upstream="app1:80"} 0
tcprelay_upstream_failures_total{route="web",upstream="app\"2:80"} 1
# HELP tcprelay_upstream_address_failures_total Addresses of the upstream that failed or did not answer in time.
# TYPE tcprelay_upstream_address_failures_total counter
tcprelay_upstream_address_failures_total{route="web",upstream="app1:80"} 1
tcprelay_upstream_address_failures_total{route="web",upstream="app\"2:80"} 0
# HELP tcprelay_upstream_check_failures_total Failed active health checks of the upstream.
# TYPE tcprelay_upstream_check_failures_total counter
tcprelay_upstream_check_failures_total{route="web",upstream="app1:80"} 0
tcprelay_upstream_check_failures_total{route="web",upstream="app\"2:80"} 1
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
tcprelay_connections_closed_total{route="web",reason="idle_timeout"} 1
tcprelay_connections_closed_total{route="web",reason="half_close_timeout"} 0
tcprelay_connections_closed_total{route="web",reason="stopped"} 0
tcprelay_connections_closed_total{route="web",reason="denied"} 0
tcprelay_connections_closed_total{route="web",reason="client_limit"} 0
tcprelay_connections_closed_total{route="web",reason="process_limit"} 0
tcprelay_connections_closed_total{route="web",reason="bad_proxy_header"} 0
tcprelay_connections_closed_total{route="web",reason="no_route"} 0
tcprelay_connections_closed_total{route="web",reason="self_loop"} 0
tcprelay_connections_closed_total{route="web",reason="untrusted_proxy"} 0
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
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="denied"} 1
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="client_limit"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="process_limit"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="bad_proxy_header"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="no_route"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="self_loop"} 0
tcprelay_connections_closed_total{route="a\"b\\c\nd",reason="untrusted_proxy"} 0
"#;
        assert_eq!(text, expected);
    }

    /// The per-upstream families, each from its own field (distinct values, so a row of
    /// `FAMILIES` reading the wrong one fails), labelled by route and escaped upstream.
    #[test]
    fn renders_each_upstream_family_exactly() {
        let web = RouteMetrics::new("web");
        web.reloaded("web", ["a:1", "b\"2"]);
        let a = &web.upstreams()[0];
        a.record_connected();
        a.record_connected();
        a.record_disconnected();
        for _ in 0..3 {
            a.record_failure();
        }
        for _ in 0..4 {
            a.record_address_failure();
        }
        for _ in 0..5 {
            a.record_check_failure();
        }
        web.upstreams()[1].set_up(false);

        let text = render_prometheus(&[web.snapshot()]);
        let start = text.find("# HELP tcprelay_upstream_up").expect("the upstream families");
        let end = text.find("# HELP tcprelay_bytes_total").expect("the bytes family");
        let expected = r#"# HELP tcprelay_upstream_up 1 if the upstream is up (health checks if on, else the last connect), 0 if down.
# TYPE tcprelay_upstream_up gauge
tcprelay_upstream_up{route="web",upstream="a:1"} 1
tcprelay_upstream_up{route="web",upstream="b\"2"} 0
# HELP tcprelay_upstream_connections_active Connections to the upstream open now.
# TYPE tcprelay_upstream_connections_active gauge
tcprelay_upstream_connections_active{route="web",upstream="a:1"} 1
tcprelay_upstream_connections_active{route="web",upstream="b\"2"} 0
# HELP tcprelay_upstream_connections_total Connections to the upstream made for clients.
# TYPE tcprelay_upstream_connections_total counter
tcprelay_upstream_connections_total{route="web",upstream="a:1"} 2
tcprelay_upstream_connections_total{route="web",upstream="b\"2"} 0
# HELP tcprelay_upstream_failures_total Clients' connect attempts to the upstream that failed.
# TYPE tcprelay_upstream_failures_total counter
tcprelay_upstream_failures_total{route="web",upstream="a:1"} 3
tcprelay_upstream_failures_total{route="web",upstream="b\"2"} 0
# HELP tcprelay_upstream_address_failures_total Addresses of the upstream that failed or did not answer in time.
# TYPE tcprelay_upstream_address_failures_total counter
tcprelay_upstream_address_failures_total{route="web",upstream="a:1"} 4
tcprelay_upstream_address_failures_total{route="web",upstream="b\"2"} 0
# HELP tcprelay_upstream_check_failures_total Failed active health checks of the upstream.
# TYPE tcprelay_upstream_check_failures_total counter
tcprelay_upstream_check_failures_total{route="web",upstream="a:1"} 5
tcprelay_upstream_check_failures_total{route="web",upstream="b\"2"} 0
"#;
        assert_eq!(&text[start..end], expected);
    }

    #[test]
    fn no_routes_still_render_the_family_headers() {
        let text = render_prometheus(&[]);
        assert_eq!(text.lines().count(), 17 * 2);
        assert!(text.lines().all(|line| line.starts_with("# ")));
    }

    #[test]
    fn renders_the_log_counters() {
        assert_eq!(
            render_log_counters(7, 12_345),
            "# HELP tcprelay_log_lines_dropped_total Log lines dropped because stderr did not \
             keep up (or failed).\n\
             # TYPE tcprelay_log_lines_dropped_total counter\n\
             tcprelay_log_lines_dropped_total 7\n\
             # HELP tcprelay_log_lines_suppressed_total Repeated log lines suppressed by the \
             rate limit, each counted in a summary line.\n\
             # TYPE tcprelay_log_lines_suppressed_total counter\n\
             tcprelay_log_lines_suppressed_total 12345\n"
        );
    }

    #[test]
    fn escapes_only_what_the_format_requires() {
        assert_eq!(escape_label_value(r"C:\path"), r"C:\\path");
        assert_eq!(escape_label_value("say \"hi\""), r#"say \"hi\""#);
        assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
        assert_eq!(escape_label_value("[::1]:8080 ünïcode\t"), "[::1]:8080 ünïcode\t");
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::ops::metrics::{RouteMetrics, render_prometheus};

        let web = RouteMetrics::new("web");
        web.record_accepted();
        web.add_bytes_client_to_upstream(5);
        web.record_close(crate::CloseReason::ClientEof);
        let text = render_prometheus(&[web.snapshot()]);
        assert!(text.contains("tcprelay_connections_accepted_total{route=\"web\"} 1\n"));
    }
}
