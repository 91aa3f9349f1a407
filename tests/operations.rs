//! Operations (issue 6) through an in-process relay on loopback: upstream lists and
//! failover, access rules, the PROXY protocol, and the metrics they leave behind.
#![forbid(unsafe_code)]

mod support;

use std::io::Read;
use std::net::Shutdown;
use std::time::Duration;

use support::*;
use tcprelay::proxy_protocol::{self, ProxyVersion};
use tcprelay::{Config, Policy};

#[test]
fn first_fails_over_and_skips_a_dead_upstream_while_it_backs_off() {
    let dead = dead_addr();
    let live = Upstream::banner("live");
    let relay = TestRelay::start(Config {
        upstream_backoff: Duration::from_secs(60),
        ..to_all(&[dead.to_string(), live.addr.to_string()])
    });

    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "live");
    }

    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.connect_failed, 1, "the dead upstream was tried once, then skipped");
    assert_eq!(metrics.accepted, 3);
    assert_eq!(live.accepted(), 3);
}

#[test]
fn round_robin_spreads_clients_and_fails_over_past_a_dead_one() {
    let (a, c) = (Upstream::banner("a"), Upstream::banner("c"));
    let dead = dead_addr();
    let relay = TestRelay::start(Config {
        policy: Policy::RoundRobin,
        upstream_backoff: Duration::from_secs(60),
        ..to_all(&[a.addr.to_string(), dead.to_string(), c.addr.to_string()])
    });

    let served: Vec<String> = (0..4).map(|_| served_by(relay.addr)).collect();

    // Client 1 starts at a; client 2 at the dead one and fails over to c; client 3 starts
    // at c; client 4 at a again. The dead one cost one attempt, then backed off.
    assert_eq!(served, ["a", "c", "c", "a"]);
    assert_eq!(settled(&relay.metrics).connect_failed, 1);
}

/// A denied client is closed before any upstream is dialled, and counted.
fn assert_denied(config: Config, client_from: &str) {
    let upstream = Upstream::echo();
    let relay = TestRelay::start(Config { upstream: upstream.addr.to_string(), ..config });
    assert_eq!(relay.addr.ip().to_string(), client_from);

    let mut client = connect(relay.addr);
    let mut byte = [0; 1];
    // EOF, or a reset if the relay closed before our connect was fully accepted.
    assert!(matches!(client.read(&mut byte), Ok(0) | Err(_)), "a denied client must be closed");

    let metrics = settled(&relay.metrics);
    assert_eq!((metrics.denied, metrics.closed("denied")), (1, Some(1)));
    assert_eq!(upstream.accepted(), 0, "the upstream must never be dialled for a denied client");
}

/// An allowed client is relayed as usual.
fn assert_allowed(config: Config) {
    let upstream = Upstream::echo();
    let relay = TestRelay::start(Config { upstream: upstream.addr.to_string(), ..config });
    let client = connect(relay.addr);
    write_all(&client, b"ping").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&client).unwrap(), b"ping");
    assert_eq!(settled(&relay.metrics).denied, 0);
}

fn rules(allow: &[&str], deny: &[&str]) -> tcprelay::access::AccessRules {
    tcprelay::access::AccessRules {
        allow: allow.iter().map(|cidr| cidr.parse().unwrap()).collect(),
        deny: deny.iter().map(|cidr| cidr.parse().unwrap()).collect(),
    }
}

fn ipv6_config() -> Config {
    Config { listen: "[::1]:0".parse().unwrap(), ..quiet_config() }
}

#[test]
fn access_rules_for_ipv4_clients() {
    assert_denied(Config { access: rules(&[], &["127.0.0.1"]), ..quiet_config() }, "127.0.0.1");
    assert_denied(Config { access: rules(&["10.0.0.0/8"], &[]), ..quiet_config() }, "127.0.0.1");
    assert_denied(
        Config { access: rules(&["127.0.0.0/8"], &["127.0.0.0/24"]), ..quiet_config() },
        "127.0.0.1",
    );
    assert_allowed(Config { access: rules(&["127.0.0.0/8"], &["127.0.0.2"]), ..quiet_config() });
    assert_allowed(quiet_config());
}

#[test]
fn access_rules_for_ipv6_clients() {
    assert_denied(Config { access: rules(&[], &["::1"]), ..ipv6_config() }, "::1");
    assert_denied(Config { access: rules(&["127.0.0.0/8"], &[]), ..ipv6_config() }, "::1");
    assert_allowed(Config { access: rules(&["::1/128"], &["10.0.0.0/8"]), ..ipv6_config() });
}

/// The upstream receives exactly the header for this client, then the client's bytes.
fn assert_proxy_header(version: ProxyVersion, listen: &str) {
    let (upstream, received) = Upstream::recording();
    let relay = TestRelay::start(Config {
        listen: listen.parse().unwrap(),
        upstream: upstream.addr.to_string(),
        proxy_protocol: Some(version),
        ..quiet_config()
    });

    let client = connect(relay.addr);
    write_all(&client, b"hello").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&client).unwrap(), b"");

    let mut expected = proxy_protocol::header(version, client.local_addr().unwrap(), relay.addr);
    expected.extend_from_slice(b"hello");
    let recorded = received.recv_timeout(TIMEOUT).unwrap().expect("the upstream reads up to EOF");
    assert_eq!(recorded, expected);
    assert_eq!(
        settled(&relay.metrics).bytes_client_to_upstream,
        5,
        "the header is not client data"
    );
}

#[test]
fn proxy_protocol_headers_reach_the_upstream_before_any_client_byte() {
    assert_proxy_header(ProxyVersion::V1, "127.0.0.1:0");
    assert_proxy_header(ProxyVersion::V2, "127.0.0.1:0");
    assert_proxy_header(ProxyVersion::V1, "[::1]:0");
    assert_proxy_header(ProxyVersion::V2, "[::1]:0");
}

#[test]
fn proxy_protocol_v1_header_is_readable_text() {
    let (upstream, received) = Upstream::recording();
    let relay = TestRelay::start(Config {
        upstream: upstream.addr.to_string(),
        proxy_protocol: Some(ProxyVersion::V1),
        ..quiet_config()
    });
    let client = connect(relay.addr);
    client.shutdown(Shutdown::Write).unwrap();
    let port = client.local_addr().unwrap().port();
    let recorded = received.recv_timeout(TIMEOUT).unwrap().expect("the upstream reads up to EOF");
    let line = String::from_utf8(recorded).unwrap();
    assert_eq!(line, format!("PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}\r\n", relay.addr.port()));
}

#[test]
fn metrics_count_connections_and_bytes_exactly() {
    let upstream = Upstream::echo();
    let relay = TestRelay::to(upstream.addr);
    for (seed, len) in [(1, 10), (2, 100_000), (3, 0)] {
        let data = pattern(seed, len);
        assert_eq!(checksum(&echo_through(relay.addr, &data)), checksum(&data));
    }
    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.accepted, 3);
    assert_eq!(metrics.bytes_client_to_upstream, 100_010);
    assert_eq!(metrics.bytes_upstream_to_client, 100_010);
    assert_eq!(metrics.closed("client_eof"), Some(3));
    assert_eq!(metrics.closed_by_reason.iter().sum::<u64>(), 3);
}
