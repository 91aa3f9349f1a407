//! Every log line about a connection says which route it belongs to, and connection ids are
//! unique in the process: with two routes, an operator can tell their connections apart.
#![forbid(unsafe_code)]

mod support;

use std::collections::HashSet;

use support::*;

/// The value of `key=` in a logfmt line, if any.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn two_routes_log_their_own_route_and_never_share_a_connection_id() {
    let echo = Upstream::echo();
    let upstream = echo.addr.to_string();
    let relay = RelayProcess::start_routes(
        &[
            "--route",
            &format!("127.0.0.1:0={upstream}"),
            "--route",
            &format!("127.0.0.1:0={upstream}"),
            "--admin",
            "127.0.0.1:0",
        ],
        2,
        true,
    );
    for round in 0..3u8 {
        for &route in &relay.routes {
            assert_eq!(echo_through(route, &[round; 10]), [round; 10], "echoed through {route}");
        }
    }
    let lines: Vec<String> =
        (0..6).map(|_| relay.log_line_with("msg=\"connection closed\"")).collect();

    let mut ids = HashSet::new();
    for line in &lines {
        let route = field(line, "route").unwrap_or_else(|| panic!("no route= in {line}"));
        assert!(
            relay.routes.iter().any(|addr| route == addr.to_string()),
            "route={route} is neither route's label: {line}"
        );
        let id = field(line, "conn").unwrap_or_else(|| panic!("no conn= in {line}"));
        assert!(ids.insert(id.to_string()), "conn={id} logged twice across the routes: {lines:#?}");
    }
    for addr in &relay.routes {
        let label = format!("route={addr} ");
        let count = lines.iter().filter(|line| line.contains(&label)).count();
        assert_eq!(count, 3, "three connections closed on {addr}: {lines:#?}");
    }

    // The route's own lines say route= too, as the connection lines do.
    let admin = relay.admin.expect("the admin endpoint");
    assert_eq!(http_post(admin, "/drain").0, 200);
    let mut relay = relay;
    assert_eq!(relay.wait_for_exit(), Some(0), "a drain ends the process cleanly");
    let log = relay.kill_and_collect_log();
    for addr in &relay_routes(&log) {
        let stopped = log.iter().filter(|line| line.contains("msg=stopped"));
        let label = format!("route={addr} ");
        assert_eq!(stopped.filter(|l| l.contains(&label)).count(), 1, "{addr}: {log:#?}");
    }
}

/// The routes' addresses, from their `listening on` lines.
fn relay_routes(log: &[String]) -> Vec<String> {
    let listening = log.iter().filter_map(|line| line.split("listening on ").nth(1));
    listening.map(|rest| rest.split('"').next().unwrap_or_default().to_string()).collect()
}

/// docs/operations.md tells operators what `conn` is as the code does it: one count for the
/// whole process (it said "a number per route", and an operator grepping `conn=7` across two
/// routes would expect two connections).
#[test]
fn the_log_reference_says_conn_is_unique_in_the_process() {
    let operations = include_str!("../docs/operations.md");
    let row = operations
        .lines()
        .find(|line| line.starts_with("| `connection closed` | info |"))
        .expect("docs/operations.md's log table has a `connection closed` row");
    assert!(row.contains("`conn` (a number unique in the process"), "{row}");
    assert!(!operations.contains("a number per route"), "a sentence still says per route");
}
