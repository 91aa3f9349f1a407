//! A UDP route's families in the Prometheus text of `GET /metrics`.
//!
//! A UDP route has flows, not connections (a flow is one client address; see
//! src/datagram/), so its counters are families of their own beside a TCP route's: flows
//! open and closed by reason, datagrams and bytes each way, and datagrams dropped by cause
//! (UDP has no backpressure: at every limit the relay drops, and this is where an operator
//! sees it). The names and labels are the contract of issue 27, which the tests and the
//! benchmarks read.
//!
//! The core keeps the counts (datagram/counts.rs); a scrape reads them into a
//! [`UdpSnapshot`] of plain numbers, labelled by the core's own names for each reason and
//! cause, and [`render_udp`] writes them: a table, [`FAMILIES`], and one loop, as for TCP.

use crate::datagram::counts::DatagramCounts;
use crate::datagram::events::{DropCause, FlowEnd};
use crate::ops::metrics::{escape_label_value, write_family_head};

/// The values of one UDP route's counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpSnapshot {
    /// The route label: its name, else its listen address.
    pub route: String,
    /// Flows open now.
    pub open: u64,
    /// Flows ended, by reason (`idle_timeout`, `responses`, ...), every reason listed.
    pub closed: Vec<(&'static str, u64)>,
    /// Datagrams relayed client → upstream and upstream → client.
    pub datagrams: (u64, u64),
    /// Their bytes, the same way round.
    pub bytes: (u64, u64),
    /// Datagrams dropped, by cause (`too_large`, `max_flows`, ...), every cause listed.
    pub drops: Vec<(&'static str, u64)>,
}

impl UdpSnapshot {
    /// The counts of the route labelled `route` now, one counter at a time.
    pub(crate) fn read(route: String, counts: &DatagramCounts) -> UdpSnapshot {
        let (to_upstream, to_client) = (counts.to_upstream(), counts.to_client());
        UdpSnapshot {
            route,
            open: counts.flows_open(),
            closed: FlowEnd::ALL.iter().map(|&r| (r.name(), counts.flows_closed(r))).collect(),
            datagrams: (to_upstream.datagrams, to_client.datagrams),
            bytes: (to_upstream.bytes, to_client.bytes),
            drops: DropCause::ALL.iter().map(|&c| (c.name(), counts.drops(c))).collect(),
        }
    }

    /// How many flows ended for `reason`, or `None` if there is no such reason.
    pub fn closed(&self, reason: &str) -> Option<u64> {
        self.closed.iter().find(|(name, _)| *name == reason).map(|(_, count)| *count)
    }

    /// How many datagrams were dropped for `cause`, or `None` if there is no such cause.
    pub fn drops(&self, cause: &str) -> Option<u64> {
        self.drops.iter().find(|(name, _)| *name == cause).map(|(_, count)| *count)
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
        samples: |r| labelled("reason", &r.closed),
    },
    Family {
        name: "tcprelay_udp_datagrams_total",
        kind: "counter",
        help: "Datagrams relayed, by direction.",
        samples: |r| by_direction(r.datagrams),
    },
    Family {
        name: "tcprelay_udp_bytes_total",
        kind: "counter",
        help: "Bytes of the datagrams relayed, by direction.",
        samples: |r| by_direction(r.bytes),
    },
    Family {
        name: "tcprelay_udp_drops_total",
        kind: "counter",
        help: "Datagrams dropped, by cause (UDP has no backpressure: at a limit the relay drops).",
        samples: |r| labelled("cause", &r.drops),
    },
];

/// One sample per name, labelled `label="name"`.
fn labelled(label: &str, values: &[(&str, u64)]) -> Vec<(String, u64)> {
    values.iter().map(|(name, value)| (format!(",{label}=\"{name}\""), *value)).collect()
}

/// The two samples of a `(to upstream, to client)` pair, labelled `direction`.
fn by_direction((to_upstream, to_client): (u64, u64)) -> Vec<(String, u64)> {
    labelled("direction", &[("to_upstream", to_upstream), ("to_client", to_client)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exact_exposition_text() {
        let reasons = ["idle_timeout", "responses", "drain"];
        let snapshot = UdpSnapshot {
            route: "a\"b".to_string(),
            open: 1,
            closed: reasons.iter().map(|reason| (*reason, u64::from(*reason == "drain"))).collect(),
            datagrams: (5, 10),
            bytes: (100, 200),
            drops: vec![("too_large", 1), ("send_failed", 2)],
        };
        assert_eq!((snapshot.closed("drain"), snapshot.closed("stop")), (Some(1), None));
        assert_eq!((snapshot.drops("send_failed"), snapshot.drops("denied")), (Some(2), None));

        let text = render_udp(&[snapshot]);
        let expected = r#"# HELP tcprelay_udp_flows_open UDP flows (client addresses) open now.
# TYPE tcprelay_udp_flows_open gauge
tcprelay_udp_flows_open{route="a\"b"} 1
# HELP tcprelay_udp_flows_closed_total UDP flows ended, by reason.
# TYPE tcprelay_udp_flows_closed_total counter
tcprelay_udp_flows_closed_total{route="a\"b",reason="idle_timeout"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="responses"} 0
tcprelay_udp_flows_closed_total{route="a\"b",reason="drain"} 1
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
tcprelay_udp_drops_total{route="a\"b",cause="send_failed"} 2
"#;
        assert_eq!(text, expected);
    }
}
