//! Per-route counters rendered in the Prometheus text format for `GET /metrics`.
//!
//! The core keeps the counts (`relay/counts.rs`, and each upstream's in
//! `upstream/counts.rs`). A scrape takes a [`RouteSnapshot`] of every route and hands them to
//! [`render_prometheus`], a pure function that the tests check byte for byte.
//!
//! The test `the_module_example` at the end of this file runs an example.

use crate::outcome::CloseReason;
use crate::relay::counts::{RouteSnapshot, UpstreamSnapshot};

/// The `Content-Type` of [`render_prometheus`]'s output (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
    use crate::relay::counts::RouteMetrics;
    use std::time::Duration;

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
        use crate::ops::metrics::render_prometheus;
        use crate::relay::counts::RouteMetrics;

        let web = RouteMetrics::new("web");
        web.record_accepted();
        web.add_bytes_client_to_upstream(5);
        web.record_close(crate::CloseReason::ClientEof);
        let text = render_prometheus(&[web.snapshot()]);
        assert!(text.contains("tcprelay_connections_accepted_total{route=\"web\"} 1\n"));
    }
}
