//! Operations through an in-process relay on loopback: upstream lists and
//! failover, access rules, the PROXY protocol, and the metrics they leave behind.
#![forbid(unsafe_code)]

mod support;

use std::io::Read;
use std::net::Shutdown;
use std::time::Duration;

use support::*;
use tcprelay::ProxyVersion;
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
fn round_robin_spreads_a_dead_upstreams_share_evenly_over_the_live_ones() {
    let (a, c) = (Upstream::banner("a"), Upstream::banner("c"));
    let dead = dead_addr();
    let relay = TestRelay::start(Config {
        policy: Policy::RoundRobin,
        upstream_backoff: Duration::from_secs(60),
        ..to_all(&[a.addr.to_string(), dead.to_string(), c.addr.to_string()])
    });

    let served: Vec<String> = (0..30).map(|_| served_by(relay.addr)).collect();

    // Client 1 starts at a; client 2 at the dead one and fails over to c. From then on the
    // rotation runs over the live ones only, so each takes half of the 30 (before, the dead
    // one's turns all went to its neighbour c: 10 and 20).
    assert_eq!(served[..4], ["a", "c", "a", "c"]);
    let count = |name: &str| served.iter().filter(|served| *served == name).count();
    assert_eq!((count("a"), count("c")), (15, 15), "{served:?}");
    assert_eq!(settled(&relay.metrics).connect_failed, 1, "the dead one was tried once");
}

#[test]
fn least_connections_sends_new_clients_to_the_least_busy_upstream() {
    let (a, b) = (Upstream::banner("a"), Upstream::banner("b"));
    let relay = TestRelay::start(Config {
        policy: Policy::LeastConnections,
        ..to_all(&[a.addr.to_string(), b.addr.to_string()])
    });

    // Two clients stay open: all idle, the tie goes round-robin, one each.
    // One at a time, so that the second client's dial sees the first's connection.
    let mut held = Vec::new();
    let mut names = Vec::new();
    for _ in 0..2 {
        let client = connect(relay.addr);
        names.push(read_banner(&client));
        held.push(client);
    }
    assert_eq!(names, ["a", "b"]);
    // One more on a, held: now a has 2 open and b 1, so every short client goes to b.
    let extra = connect(relay.addr);
    assert_eq!(read_banner(&extra), "a");
    let active = |upstream: &Upstream| {
        let snapshot = relay.metrics.snapshot();
        snapshot.upstream(&upstream.addr.to_string()).expect("a known upstream").active
    };
    for _ in 0..4 {
        assert_eq!(served_by(relay.addr), "b");
        // Until the relay has seen the short client go, b would count 2 like a.
        assert!(eventually(|| active(&b) == 1));
    }
    assert_eq!((active(&a), active(&b)), (2, 1));

    // Closing a's clients counts them closed: a is the least busy again.
    drop(extra);
    drop(held);
    assert!(eventually(|| active(&a) == 0 && active(&b) == 0));
    let names: Vec<String> = (0..2).map(|_| served_by(relay.addr)).collect();
    assert_eq!(names.iter().filter(|name| *name == "a").count(), 1, "{names:?}");
}

/// Reads a [`Upstream::banner`]'s name from a client that stays open (the banner is
/// followed by the upstream's half-close, so reading to EOF is bounded).
fn read_banner(client: &std::net::TcpStream) -> String {
    text(&read_all(client).expect("read the banner"))
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
    write_all(&client, b"ping").expect("the allowed client sends its bytes");
    client.shutdown(Shutdown::Write).expect("the allowed client half-closes");
    assert_eq!(read_all(&client).expect("the allowed client reads the echo up to EOF"), b"ping");
    assert_eq!(settled(&relay.metrics).denied, 0);
}

fn rules(allow: &[&str], deny: &[&str]) -> tcprelay::AccessRules {
    tcprelay::AccessRules {
        allow: allow.iter().map(|cidr| cidr.parse().expect("allow takes CIDR blocks")).collect(),
        deny: deny.iter().map(|cidr| cidr.parse().expect("deny takes CIDR blocks")).collect(),
    }
}

fn ipv6_config() -> Config {
    Config { listen: "[::1]:0".parse().expect("[::1]:0 is a socket address"), ..quiet_config() }
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
        listen: listen.parse().unwrap_or_else(|e| panic!("{listen} is a socket address: {e}")),
        upstream: upstream.addr.to_string(),
        proxy_protocol: Some(version),
        ..quiet_config()
    });

    let client = connect(relay.addr);
    write_all(&client, b"hello").expect("the client sends its bytes");
    client.shutdown(Shutdown::Write).expect("the client half-closes");
    assert_eq!(
        read_all(&client)
            .expect("the recording upstream sends nothing back and its EOF reaches the client"),
        b""
    );

    let mut expected = proxy_header(
        version,
        client.local_addr().expect("the client socket has a local address"),
        relay.addr,
    );
    expected.extend_from_slice(b"hello");
    let recorded = received
        .recv_timeout(TIMEOUT)
        .expect("the upstream records what it got within the timeout")
        .expect("the upstream reads up to EOF");
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
    client.shutdown(Shutdown::Write).expect("the client half-closes without sending");
    let port = client.local_addr().expect("the client socket has a local address").port();
    let recorded = received
        .recv_timeout(TIMEOUT)
        .expect("the upstream records what it got within the timeout")
        .expect("the upstream reads up to EOF");
    let line = String::from_utf8(recorded).expect("a PROXY v1 header is ASCII text");
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
