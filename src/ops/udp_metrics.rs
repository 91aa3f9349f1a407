//! A UDP route's counters, and their families in the Prometheus text of `GET /metrics`.
//!
//! A UDP route has flows, not connections (a flow is one client address; see
//! src/datagram/), so it has counters of its own beside a TCP route's [`RouteMetrics`]
//! (crate::ops::metrics::RouteMetrics): flows open and closed by reason, datagrams and
//! bytes each way, and datagrams dropped by cause (UDP has no backpressure: at every
//! limit the relay drops, and this is where an operator sees it). The names and labels are
//! the contract of issue 27, which the tests and the benchmarks read.
//!
//! The bookkeeping follows [`RouteMetrics`](crate::ops::metrics::RouteMetrics)'s: every
//! flow is counted once by [`UdpMetrics::flow_opened`] and once, when it ends, by
//! [`UdpMetrics::flow_closed`] with its reason and its counts; so
//! `open == opened - sum of closed over all reasons` at any moment. The datagrams and bytes
//! of a flow still open are its own counters (the core keeps them), read at each scrape
//! through [`UdpMetrics::track_flow`], and moved to the route's totals when it closes, in
//! one step under the lock a scrape takes: no scrape counts them twice or misses them.
//!
//! The rendering is a table, [`FAMILIES`], and one loop, as for TCP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::counter::Counter;
use crate::lock::lock;
use crate::ops::metrics::{escape_label_value, write_family_head};

/// Why a flow ended, as the log line's `reason=` and the `reason` label say it, in the
/// order of the `tcprelay_udp_flows_closed_total` samples.
pub const FLOW_END_REASONS: [&str; 6] =
    ["idle_timeout", "responses", "drain", "stop", "upstream_error", "removed"];

/// Why a datagram was dropped, as the `cause` label says it, in the order of the
/// `tcprelay_udp_drops_total` samples.
pub const DROP_CAUSES: [&str; 7] = [
    "too_large",
    "max_flows",
    "client_limit",
    "denied",
    "process_limit",
    "no_upstream",
    "send_failed",
];

/// What one flow has relayed: datagrams and bytes each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    /// Datagrams sent from the client to the upstream.
    pub datagrams_to_upstream: u64,
    /// Their bytes.
    pub bytes_to_upstream: u64,
    /// Datagrams sent from the upstream back to the client.
    pub datagrams_to_client: u64,
    /// Their bytes.
    pub bytes_to_client: u64,
}

impl FlowCounts {
    fn plus(self, other: FlowCounts) -> FlowCounts {
        FlowCounts {
            datagrams_to_upstream: self.datagrams_to_upstream + other.datagrams_to_upstream,
            bytes_to_upstream: self.bytes_to_upstream + other.bytes_to_upstream,
            datagrams_to_client: self.datagrams_to_client + other.datagrams_to_client,
            bytes_to_client: self.bytes_to_client + other.bytes_to_client,
        }
    }
}

/// Reads an open flow's counts so far (the core keeps them; see the module docs).
pub type LiveFlow = Arc<dyn Fn() -> FlowCounts + Send + Sync>;

/// The live counters of one UDP route.
pub struct UdpMetrics {
    /// The label; a reload may rename the route.
    route: Mutex<String>,
    open: Counter,
    closed_by_reason: [Counter; FLOW_END_REASONS.len()],
    drops_by_cause: [Counter; DROP_CAUSES.len()],
    /// The counts of the open flows, by flow id, and the totals of those that closed;
    /// one lock, so that a flow's counts move from one to the other in one step.
    relayed: Mutex<Relayed>,
}

#[derive(Default)]
struct Relayed {
    open: HashMap<u64, LiveFlow>,
    closed: FlowCounts,
}

impl std::fmt::Debug for UdpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpMetrics").field("snapshot", &self.snapshot()).finish()
    }
}

impl UdpMetrics {
    /// Zeroed counters for the route labelled `route` (its name, else `udp:` and its
    /// listen address).
    pub fn new(route: impl Into<String>) -> UdpMetrics {
        UdpMetrics {
            route: Mutex::new(route.into()),
            open: Counter::new(0),
            closed_by_reason: std::array::from_fn(|_| Counter::new(0)),
            drops_by_cause: std::array::from_fn(|_| Counter::new(0)),
            relayed: Mutex::default(),
        }
    }

    /// The route label, as of the last reload.
    pub fn route(&self) -> String {
        lock(&self.route).clone()
    }

    /// A reload kept the route's socket under the label `route`: the counters go on.
    pub fn relabel(&self, route: &str) {
        *lock(&self.route) = route.to_string();
    }

    /// A flow began: it is open from now on, and a scrape adds `counts()` so far.
    pub fn flow_opened(&self, id: u64, counts: LiveFlow) {
        self.open.fetch_add(1);
        self.lock_relayed().open.insert(id, counts);
    }

    /// Flow `id` ended for `reason` (one of [`FLOW_END_REASONS`]) having relayed `counts`:
    /// they move to the route's totals. Call it once per [`flow_opened`](Self::flow_opened).
    pub fn flow_closed(&self, id: u64, reason: &str, counts: FlowCounts) {
        let mut relayed = self.lock_relayed();
        relayed.open.remove(&id);
        relayed.closed = relayed.closed.plus(counts);
        drop(relayed);
        count_by_name(&self.closed_by_reason, &FLOW_END_REASONS, reason);
        // Never below zero: a double close would otherwise show 2^64 - 1 open flows.
        let decremented = self.open.decrement_unless_zero();
        debug_assert!(decremented, "flow_closed without flow_opened");
    }

    /// A datagram was dropped for `cause` (one of [`DROP_CAUSES`]).
    pub fn dropped(&self, cause: &str) {
        count_by_name(&self.drops_by_cause, &DROP_CAUSES, cause);
    }

    /// The values now, one counter at a time; the datagrams and bytes include the open
    /// flows' so far.
    pub fn snapshot(&self) -> UdpSnapshot {
        let relayed = {
            let relayed = self.lock_relayed();
            relayed.open.values().fold(relayed.closed, |sum, live| sum.plus(live()))
        };
        UdpSnapshot {
            route: self.route(),
            open: self.open.get(),
            closed_by_reason: std::array::from_fn(|i| self.closed_by_reason[i].get()),
            relayed,
            drops_by_cause: std::array::from_fn(|i| self.drops_by_cause[i].get()),
        }
    }

    fn lock_relayed(&self) -> MutexGuard<'_, Relayed> {
        // Changed only by one insert, remove or sum: a poisoned lock is still good.
        lock(&self.relayed)
    }
}

/// Adds one to the counter of `name` in `names`; a name not in the list is a bug in the
/// caller, counted nowhere rather than under another name.
fn count_by_name(counters: &[Counter], names: &[&str], name: &str) {
    match names.iter().position(|known| *known == name) {
        Some(index) => {
            counters[index].fetch_add(1);
        }
        None => debug_assert!(false, "no such label value: {name}"),
    }
}

/// The values of one UDP route's counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpSnapshot {
    /// The route label.
    pub route: String,
    /// Flows open now.
    pub open: u64,
    /// Flows ended, in the order of [`FLOW_END_REASONS`].
    pub closed_by_reason: [u64; FLOW_END_REASONS.len()],
    /// Datagrams and bytes relayed each way, open flows included.
    pub relayed: FlowCounts,
    /// Datagrams dropped, in the order of [`DROP_CAUSES`].
    pub drops_by_cause: [u64; DROP_CAUSES.len()],
}

impl UdpSnapshot {
    /// How many flows ended for `reason`, or `None` if there is no such reason.
    pub fn closed(&self, reason: &str) -> Option<u64> {
        let index = FLOW_END_REASONS.iter().position(|known| *known == reason)?;
        Some(self.closed_by_reason[index])
    }

    /// How many datagrams were dropped for `cause`, or `None` if there is no such cause.
    pub fn drops(&self, cause: &str) -> Option<u64> {
        let index = DROP_CAUSES.iter().position(|known| *known == cause)?;
        Some(self.drops_by_cause[index])
    }
}

/// Renders every UDP route's families, to follow
/// [`render_prometheus`](crate::ops::metrics::render_prometheus)'s: each family once, with
/// its `# HELP` and `# TYPE` lines, then its samples for each route in order.
pub fn render_udp(routes: &[UdpSnapshot]) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        write_family_head(&mut out, family.name, family.kind, family.help);
        for route in routes {
            let label = escape_label_value(&route.route);
            for (extra, value) in (family.samples)(route) {
                out.push_str(&format!("{}{{route=\"{label}\"{extra}}} {value}\n", family.name));
            }
        }
    }
    out
}

/// One family: its name, type and help, and its samples for one route, each with the
/// labels after `route` (`,direction="to_client"`) and its value.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&UdpSnapshot) -> Vec<(String, u64)>,
}

/// Every UDP family, in the order [`render_udp`] writes them. A new counter is one more row.
const FAMILIES: &[Family] = &[
    Family {
        name: "tcprelay_udp_flows_open",
        kind: "gauge",
        help: "UDP flows (client addresses) open now.",
        samples: |r| vec![(String::new(), r.open)],
    },
    Family {
        name: "tcprelay_udp_flows_closed_total",
        kind: "counter",
        help: "UDP flows ended, by reason.",
        samples: |r| labelled("reason", &FLOW_END_REASONS, &r.closed_by_reason),
    },
    Family {
        name: "tcprelay_udp_datagrams_total",
        kind: "counter",
        help: "Datagrams relayed, by direction.",
        samples: |r| {
            let counts = [r.relayed.datagrams_to_upstream, r.relayed.datagrams_to_client];
            labelled("direction", &["to_upstream", "to_client"], &counts)
        },
    },
    Family {
        name: "tcprelay_udp_bytes_total",
        kind: "counter",
        help: "Bytes of the datagrams relayed, by direction.",
        samples: |r| {
            let counts = [r.relayed.bytes_to_upstream, r.relayed.bytes_to_client];
            labelled("direction", &["to_upstream", "to_client"], &counts)
        },
    },
    Family {
        name: "tcprelay_udp_drops_total",
        kind: "counter",
        help: "Datagrams dropped, by cause (UDP has no backpressure: at a limit the relay drops).",
        samples: |r| labelled("cause", &DROP_CAUSES, &r.drops_by_cause),
    },
];

/// One sample per name, labelled `label="name"`.
fn labelled(label: &str, names: &[&str], values: &[u64]) -> Vec<(String, u64)> {
    let samples = names.iter().zip(values);
    samples.map(|(name, value)| (format!(",{label}=\"{name}\""), *value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(datagrams: u64, bytes: u64) -> FlowCounts {
        FlowCounts {
            datagrams_to_upstream: datagrams,
            bytes_to_upstream: bytes,
            datagrams_to_client: datagrams * 2,
            bytes_to_client: bytes * 2,
        }
    }

    #[test]
    fn open_flows_count_until_they_close_and_never_twice() {
        let metrics = UdpMetrics::new("dns");
        let live = Arc::new(Mutex::new(counts(1, 10)));
        let reader = Arc::clone(&live);
        metrics.flow_opened(1, Arc::new(move || *lock(&reader)));
        metrics.flow_opened(2, Arc::new(FlowCounts::default));
        assert_eq!(metrics.snapshot().relayed, counts(1, 10));
        *lock(&live) = counts(3, 30);
        assert_eq!(metrics.snapshot().relayed, counts(3, 30));
        metrics.flow_closed(1, "responses", counts(3, 30));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.relayed, counts(3, 30));
        assert_eq!((snapshot.open, snapshot.closed("responses")), (1, Some(1)));
        metrics.flow_closed(2, "idle_timeout", FlowCounts::default());
        let snapshot = metrics.snapshot();
        assert_eq!((snapshot.open, snapshot.closed("idle_timeout")), (0, Some(1)));
        assert_eq!(snapshot.closed("no_such_reason"), None);
    }

    #[test]
    fn renders_the_exact_exposition_text() {
        let metrics = UdpMetrics::new("dns");
        metrics.flow_opened(1, Arc::new(FlowCounts::default));
        metrics.flow_opened(2, Arc::new(FlowCounts::default));
        metrics.flow_closed(2, "drain", counts(5, 100));
        for cause in ["too_large", "send_failed", "send_failed"] {
            metrics.dropped(cause);
        }
        metrics.relabel("a\"b");

        let text = render_udp(&[metrics.snapshot()]);
        let expected = r#"# HELP tcprelay_udp_flows_open UDP flows (client addresses) open now.
# TYPE tcprelay_udp_flows_open gauge
tcprelay_udp_flows_open{route="a\"b"} 1
# HELP tcprelay_udp_flows_closed_total UDP flows ended, by reason.
# TYPE tcprelay_udp_flows_closed_total counter
tcprelay_udp_flows_closed_total{route="a\"b",reason="idle_timeout"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="responses"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="drain"} 1
tcprelay_udp_flows_closed_total{route="a\"b",reason="stop"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="upstream_error"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="removed"} 0
# HELP tcprelay_udp_datagrams_total Datagrams relayed, by direction.
# TYPE tcprelay_udp_datagrams_total counter
tcprelay_udp_datagrams_total{route="a\"b",direction="to_upstream"} 5
tcprelay_udp_datagrams_total{route="a\"b",direction="to_client"} 10
# HELP tcprelay_udp_bytes_total Bytes of the datagrams relayed, by direction.
# TYPE tcprelay_udp_bytes_total counter
tcprelay_udp_bytes_total{route="a\"b",direction="to_upstream"} 100
tcprelay_udp_bytes_total{route="a\"b",direction="to_client"} 200
# HELP tcprelay_udp_drops_total Datagrams dropped, by cause (UDP has no backpressure: at a limit the relay drops).
# TYPE tcprelay_udp_drops_total counter
tcprelay_udp_drops_total{route="a\"b",cause="too_large"} 1
tcprelay_udp_drops_total{route="a\"b",cause="max_flows"} 0
tcprelay_udp_drops_total{route="a\"b",cause="client_limit"} 0
tcprelay_udp_drops_total{route="a\"b",cause="denied"} 0
tcprelay_udp_drops_total{route="a\"b",cause="process_limit"} 0
tcprelay_udp_drops_total{route="a\"b",cause="no_upstream"} 0
tcprelay_udp_drops_total{route="a\"b",cause="send_failed"} 2
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn no_routes_still_render_the_family_headers() {
        let text = render_udp(&[]);
        assert_eq!(text.lines().count(), FAMILIES.len() * 2);
        assert!(text.lines().all(|line| line.starts_with("# ")));
    }
}
