//! Dialling an upstream whose name has several addresses (Happy Eyeballs), through an in-process
//! relay on loopback: Happy Eyeballs past a blackholed first address, and the per-address
//! back-off that spares later clients.
//!
//! No name on this machine resolves to both `::1` and `127.0.0.1`, so these tests give the
//! relay a resolver of their own ([`tcprelay::TestHooks::resolver`], the documented seam)
//! that knows the names they make up.
#![forbid(unsafe_code)]

mod support;

use std::time::Duration;

use support::*;
use tcprelay::{Config, TestHooks};

/// A relay to `upstream` (a made-up name), resolved by [`fake_resolver`].
fn relay_to_name(upstream: &str) -> TestRelay {
    faked(Config {
        upstream: upstream.to_string(),
        // Short, so the abandoned attempt to the blackhole ends soon after each test.
        connect_timeout: Duration::from_secs(2),
        ..quiet_config()
    })
}

/// A relay with `config` whose names are resolved by [`fake_resolver`].
fn faked(config: Config) -> TestRelay {
    TestRelay::hooked(config, TestHooks { resolver: fake_resolver, ..TestHooks::default() })
}

#[test]
fn a_blackholed_first_address_is_raced_by_the_next_and_then_tried_last() {
    let dead = Blackhole::on("::1");
    let live = Upstream::banner("live");
    let name = "dual-stack.test:1";
    fake_name(name, &[dead.addr, live.addr]);
    let relay = relay_to_name(name);

    // The first client: ::1 is tried first and says nothing; 127.0.0.1 is started beside it
    // after the attempt delay and wins. The upstream itself did not fail.
    assert_eq!(served_by(relay.addr), "live");
    let metrics = settled(&relay.metrics);
    let upstream = metrics.upstream(name).expect("counters for the upstream");
    assert_eq!(upstream.address_failures, 1, "the silent ::1 is counted");
    assert_eq!((metrics.connect_failed, upstream.failures, upstream.connections), (0, 0, 1));

    // Later clients try 127.0.0.1 first and never wait on ::1 (which would count again).
    for _ in 0..4 {
        assert_eq!(served_by(relay.addr), "live");
    }
    let metrics = settled(&relay.metrics);
    let upstream = metrics.upstream(name).expect("counters for the upstream");
    assert_eq!((upstream.address_failures, upstream.connections), (1, 5));
    assert_eq!(live.accepted(), 5);
}

#[test]
fn a_refused_first_address_hands_over_at_once_and_the_upstream_does_not_back_off() {
    let live = Upstream::banner("live");
    let name = "refused-first.test:1";
    fake_name(name, &[dead_addr(), live.addr]);
    let relay = relay_to_name(name);

    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "live");
    }
    let metrics = settled(&relay.metrics);
    let upstream = metrics.upstream(name).expect("counters for the upstream");
    assert_eq!(upstream.address_failures, 1, "refused once, then tried last");
    assert_eq!((metrics.connect_failed, upstream.failures), (0, 0));
    assert!(upstream.up);
}

#[test]
fn a_name_whose_every_address_fails_fails_the_upstream_and_the_next_one_serves() {
    let next = Upstream::banner("next");
    let name = "all-dead.test:1";
    fake_name(name, &[dead_addr(), "127.0.0.1:2".parse().expect("a socket address")]);
    let relay = faked(to_all(&[name.to_string(), next.addr.to_string()]));

    assert_eq!(served_by(relay.addr), "next");
    let metrics = settled(&relay.metrics);
    let upstream = metrics.upstream(name).expect("counters for the upstream");
    assert_eq!((upstream.failures, upstream.address_failures), (1, 2));
    assert!(!upstream.up, "down until a connect succeeds (no health checks here)");
    assert_eq!(metrics.connect_failed, 1);
}

/// A name with 100 addresses, 99 of them blackholed and the live one last: before, every
/// client failed after the 5 s connect timeout, never reaching it (only the 32 newest
/// failures were remembered, and the forgotten ones went first again). Now addresses that
/// never failed go first, so each client tries new ones and a few clients reach the live
/// address; every client after that is served at once.
#[test]
fn a_live_address_behind_99_dead_ones_is_reached_after_a_few_clients() {
    let blackholes: Vec<Blackhole> = std::thread::scope(|scope| {
        let filling: Vec<_> = (0..99).map(|_| scope.spawn(|| Blackhole::on("127.0.0.1"))).collect();
        filling.into_iter().map(|one| one.join().expect("a blackhole is made")).collect()
    });
    let live = Upstream::banner("live");
    let name = "hundred.test:1";
    let mut addrs: Vec<_> = blackholes.iter().map(|blackhole| blackhole.addr).collect();
    addrs.push(live.addr);
    fake_name(name, &addrs);
    let relay = faked(Config {
        upstream: name.to_string(),
        connect_timeout: Duration::from_secs(5),
        ..quiet_config()
    });

    // Each failing client tries about 20 addresses (one per 250 ms attempt delay) in 5 s:
    // five clients cover the 99; 15 leave room for a loaded machine.
    let failing = (0..15).take_while(|_| served_by(relay.addr).is_empty()).count();
    assert!(failing < 15, "the live address was never reached");
    eprintln!("reached after {failing} failing clients");
    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "live", "after {failing} failing clients");
    }
}

/// A name that resolves to the route's own listen address and to a live one: the own address
/// is never dialled (that would loop through the relay), the live one serves. A name with
/// only the own address closes each client at once with `reason=self_loop`: accepted and
/// closed once per client, no upstream failure counted, nothing left open.
#[test]
fn a_name_resolving_to_the_routes_own_address_is_refused_as_a_self_loop() {
    let live = Upstream::banner("live");
    let (both, only_own) = ("own-and-live.test:1", "only-own.test:1");
    let relay = relay_to_name(both);
    fake_name(both, &[relay.addr, live.addr]);
    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "live");
    }
    let metrics = settled(&relay.metrics);
    assert_eq!((metrics.accepted, metrics.closed("self_loop")), (3, Some(0)));

    let relay = relay_to_name(only_own);
    fake_name(only_own, &[relay.addr]);
    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "", "closed at once");
    }
    let metrics = settled(&relay.metrics);
    assert_eq!((metrics.accepted, metrics.closed("self_loop")), (3, Some(3)));
    let upstream = metrics.upstream(only_own).expect("counters for the upstream");
    assert_eq!((metrics.connect_failed, upstream.failures, upstream.connections), (0, 0, 0));
}
