//! Health checks, reload and the admin endpoint under load (issue 22, items 10 to 13): checks
//! run per upstream and are bounded by their interval, a reload never waits for a check in
//! progress, `/healthz` answers while slow clients and reloads hold the admin endpoint, and
//! routes with `sni=` reload like any other.
#![forbid(unsafe_code)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use tcprelay::Config;

/// Polls `condition` every 5 ms until it holds or `bound` passes; returns whether it held.
/// For what a test must see happen within a bound it states (a check timeout, an interval),
/// far above what it takes on an idle machine.
fn within(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// Whether the health checks of `relay` have marked the upstream at `addr` down.
fn is_down(relay: &TestRelay, addr: std::net::SocketAddr) -> bool {
    let snapshot = relay.metrics.snapshot();
    !snapshot.upstream(&addr.to_string()).expect("a known upstream").up
}

#[test]
fn a_dead_upstream_behind_four_blackholed_ones_is_marked_down_within_a_few_intervals() {
    let blackholes: Vec<Blackhole> = (0..4).map(|_| Blackhole::on("127.0.0.1")).collect();
    let dead = refusing_addr();
    let mut upstreams: Vec<String> = blackholes.iter().map(|b| b.addr.to_string()).collect();
    upstreams.push(dead.to_string());
    let relay = TestRelay::start(Config {
        health_check: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        ..to_all(&upstreams)
    });
    // Three failed checks in a row, 100 ms apart: about 0.3 s when each upstream has its own
    // timer. Checked one after the other behind the blackholes, each waiting out its
    // connect timeout, it took 3 rounds of 4 × 5 s (22.5 s measured before the fix).
    assert!(
        within(Duration::from_secs(5), || is_down(&relay, dead)),
        "the dead upstream was not marked down within 5 s"
    );
    // The blackholes' checks give up at the interval, so they go down too.
    for blackhole in &blackholes {
        assert!(within(Duration::from_secs(5), || is_down(&relay, blackhole.addr)));
    }
}

#[test]
fn a_blackholed_upstream_is_marked_down_before_the_first_client_dials_it() {
    let blackhole = Blackhole::on("127.0.0.1");
    let live = Upstream::banner("live");
    let relay = TestRelay::start(Config {
        health_check: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(1),
        ..to_all(&[blackhole.addr.to_string(), live.addr.to_string()])
    });
    // Each check gives up after the 200 ms interval, not the 1 s connect timeout: down after
    // about 0.6 s (3 s before the fix, when a check waited out the connect timeout).
    assert!(
        within(Duration::from_millis(2500), || is_down(&relay, blackhole.addr)),
        "the blackholed upstream was not marked down within 2.5 s"
    );
    // The first client goes straight to the live upstream: nobody waited on the blackhole.
    assert_eq!(served_by(relay.addr), "live");
    let metrics = settled(&relay.metrics);
    let dialled = metrics.upstream(&blackhole.addr.to_string()).expect("a known upstream");
    assert_eq!((dialled.failures, metrics.connect_failed), (0, 0), "a client dialled it");
}
