//! Routing by what a client sends first: a PROXY protocol header received from a
//! load balancer (`accept-proxy`), routes picked by TLS server name (`sni=`), and bytes in
//! `/metrics` while a connection is still open.
#![forbid(unsafe_code)]

mod support;

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use support::*;
use tcprelay::{AccessRules, Config, NamePattern, ProxyVersion, ServerConfig};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("test address {text}: {e}"))
}

/// A relay that expects a PROXY header, and sends one of version `out` upstream if asked.
fn accepting_proxy(upstream: SocketAddr, out: Option<ProxyVersion>) -> Config {
    Config {
        upstream: upstream.to_string(),
        accept_proxy: true,
        proxy_protocol: out,
        ..quiet_config()
    }
}

/// Sends `bytes` and half-closes: the client has said everything.
fn send_all_and_finish(client: &TcpStream, bytes: &[u8]) {
    write_all(client, bytes).expect("send");
    client.shutdown(Shutdown::Write).expect("half-close");
}

#[test]
fn the_header_address_is_the_client_and_is_passed_upstream_and_never_forwarded() {
    let (upstream, received) = Upstream::recording();
    for (inbound, outbound) in
        [(ProxyVersion::V1, ProxyVersion::V2), (ProxyVersion::V2, ProxyVersion::V1)]
    {
        let relay = TestRelay::start(accepting_proxy(upstream.addr, Some(outbound)));
        let (source, destination) = (addr("192.0.2.7:40001"), addr("198.51.100.9:443"));
        // The header and the client's first bytes in one write, as a balancer sends them.
        let payload = pattern(7, 3000);
        let client = connect(relay.addr);
        send_all_and_finish(
            &client,
            &[proxy_header(inbound, source, destination), payload.clone()].concat(),
        );
        assert_eq!(read_to_eof(&client, "client"), b"", "the recording upstream sends nothing");
        let got = received.recv_timeout(TIMEOUT).expect("the upstream got a connection");
        let got = got.expect("the upstream read to EOF");
        // Exactly: the relay's own header naming the real client, then the client's bytes.
        let expected = [proxy_header(outbound, source, destination), payload].concat();
        assert_eq!(got.len(), expected.len(), "{inbound:?} in, {outbound:?} out");
        assert!(got == expected, "{inbound:?} in, {outbound:?} out: bytes differ");
        let metrics = settled(&relay.metrics);
        assert_eq!(metrics.closed("client_eof"), Some(1));
        assert_eq!(metrics.bytes_client_to_upstream, 3000, "the header is not client data");
    }
}

#[test]
fn a_client_without_a_valid_header_is_closed_and_never_forwarded() {
    let upstream = Upstream::echo();
    let relay = TestRelay::start(accepting_proxy(upstream.addr, None));
    for bad in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"]
    {
        let client = connect(relay.addr);
        let _ = write_all(&client, bad); // the relay may close before it has read it all
        assert_eq!(read_all(&client).unwrap_or_default(), b"", "nothing comes back");
    }
    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.closed("bad_proxy_header"), Some(2));
    assert_eq!(metrics.accepted, 2);
    assert_eq!(upstream.accepted(), 0, "no upstream was dialled");
}

#[test]
fn a_slow_header_holds_up_no_other_client_and_is_cut_at_the_deadline() {
    let upstream = Upstream::echo();
    let hello = proxy_header(ProxyVersion::V1, addr("192.0.2.2:1"), addr("192.0.2.3:2"));
    // A minute to send the header: were it read in the accept loop, the quick client
    // below would wait that long (and fail its TIMEOUT-bounded reads).
    let patient = TestRelay::start(Config {
        first_bytes_timeout: Duration::from_secs(60),
        ..accepting_proxy(upstream.addr, None)
    });
    let slow = connect(patient.addr);
    write_all(&slow, b"PROXY TCP4 192.0.2.1 ").expect("the slow client sends half a PROXY header");
    let quick = connect(patient.addr);
    write_all(&quick, &hello).expect("the quick client sends its whole PROXY header");
    assert_eq!(exchange(&quick, b"ping"), b"ping", "served while the slow one waits");
    drop(slow); // closed inside its header
    // Waited for by its count, not by `settled`: a client is counted as accepted by its own
    // first thread, which on a loaded machine may not have run when the quick one is done,
    // so `active` can read 0 before the slow one is counted at all (seen once in a full run).
    let closes = || {
        let metrics = patient.metrics.snapshot();
        (metrics.closed("client_eof"), metrics.closed("bad_proxy_header"), metrics.active)
    };
    assert!(eventually(|| closes() == (Some(1), Some(1), 0)), "{:?}", closes());

    // Half a header and then nothing, on a relay with a short deadline: closed at the
    // deadline (waited for here within TIMEOUT, not timed).
    let strict = TestRelay::start(Config {
        first_bytes_timeout: Duration::from_millis(300),
        ..accepting_proxy(upstream.addr, None)
    });
    let stalled = connect(strict.addr);
    write_all(&stalled, b"PROXY TCP4 192.0.2.1 ")
        .expect("the stalled client sends half a PROXY header");
    assert_eq!(read_to_eof(&stalled, "stalled client"), b"");
    assert_eq!(settled(&strict.metrics).closed("bad_proxy_header"), Some(1));
    assert_eq!(upstream.accepted(), 1, "only the quick client reached the upstream");
}

#[test]
fn allow_and_deny_apply_to_the_address_in_the_header() {
    let upstream = Upstream::echo();
    let mut access = AccessRules::default();
    access.deny.push("10.0.0.0/8".parse().expect("10.0.0.0/8 is a CIDR block"));
    let relay = TestRelay::start(Config { access, ..accepting_proxy(upstream.addr, None) });
    let to = addr("127.0.0.1:8443");
    // The socket's own address (127.0.0.1) is allowed; the real client 10.0.0.1 is not.
    let denied = connect(relay.addr);
    write_all(&denied, &proxy_header(ProxyVersion::V2, addr("10.0.0.1:5555"), to))
        .expect("the denied client sends its PROXY header");
    assert_eq!(read_to_eof(&denied, "denied client"), b"");
    let allowed = connect(relay.addr);
    write_all(&allowed, &proxy_header(ProxyVersion::V2, addr("192.0.2.1:5555"), to))
        .expect("the allowed client sends its PROXY header");
    assert_eq!(exchange(&allowed, b"let me in"), b"let me in");
    drop(allowed);
    let metrics = settled(&relay.metrics);
    assert_eq!((metrics.denied, metrics.closed("denied")), (1, Some(1)));
    assert_eq!(upstream.accepted(), 1);
}

#[test]
fn logs_name_the_client_from_the_header() {
    let upstream = Upstream::echo();
    let upstream_addr = upstream.addr.to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &upstream_addr, "--accept-proxy"]);
    let client = connect(relay.addr);
    let proxied =
        proxy_header(ProxyVersion::V1, addr("[2001:db8::5]:6000"), addr("[2001:db8::1]:443"));
    write_all(&client, &proxied).expect("the client sends its PROXY header");
    assert_eq!(exchange(&client, b"hi"), b"hi");
    drop(client);
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("client=[2001:db8::5]:6000"), "{line}");
    let bad = connect(relay.addr);
    let _ = write_all(&bad, b"hello\r\n\r\n");
    let _ = read_all(&bad);
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("reason=bad_proxy_header"), "{line}");
    assert!(line.contains("error=\"no PROXY protocol header\""), "{line}");
}

// ---------------------------------------------------------------------------------------
// SNI routing
// ---------------------------------------------------------------------------------------

/// What a [`Upstream::recording`] received, one connection at a time.
type Recording = std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// A route on 127.0.0.1:0 to `upstream` taking `names` (none: the default route).
fn named_route(upstream: SocketAddr, names: &[&str]) -> Config {
    let server_names: Vec<NamePattern> =
        names.iter().map(|name| name.parse().expect("a valid sni= name")).collect();
    Config { upstream: upstream.to_string(), server_names, ..quiet_config() }
}

/// Connects, sends `first` then `rest` (after `pause`), half-closes, and returns what the
/// client read back.
fn client_sends(relay: SocketAddr, first: &[u8], pause: Duration, rest: &[u8]) -> Vec<u8> {
    let client = connect(relay);
    write_all(&client, first).expect("the client sends its first bytes");
    if !rest.is_empty() {
        // The scenario, not a synchronisation: a client whose hello comes in two segments.
        std::thread::sleep(pause);
        write_all(&client, rest).expect("the client sends the rest of its hello");
    }
    match client.shutdown(Shutdown::Write) {
        Ok(()) => read_to_eof(&client, "client"),
        // The relay already closed a connection it has no route for, with the hello unread,
        // so a reset came back: nothing to half-close, and nothing was relayed.
        Err(error) if error.kind() == std::io::ErrorKind::NotConnected => Vec::new(),
        Err(error) => panic!("the client half-closes after its hello: {error}"),
    }
}

#[test]
fn one_listener_picks_the_route_by_server_name_and_forwards_the_hello_byte_for_byte() {
    let (exact, to_exact) = Upstream::recording();
    let (wildcard, to_wildcard) = Upstream::recording();
    let (fallback, to_fallback) = Upstream::recording();
    let server = TestServer::start(ServerConfig {
        routes: vec![
            named_route(exact.addr, &["db.example.com"]),
            named_route(wildcard.addr, &["*.example.com"]),
            named_route(fallback.addr, &[]),
        ],
        ..ServerConfig::default()
    });
    assert!(server.addrs.iter().all(|a| *a == server.addrs[0]), "one listener: {:?}", server.addrs);
    let relay = server.addrs[0];
    let after_hello = b"\x17\x03\x03\x00\x05hello".to_vec(); // what would follow it

    let cases: Vec<(Vec<u8>, &Recording)> = vec![
        (client_hello(Some("db.example.com")), &to_exact),
        (client_hello(Some("DB.Example.COM")), &to_exact),
        (client_hello(Some("a.b.example.com")), &to_wildcard),
        (client_hello(Some("example.com")), &to_fallback),
        (client_hello(None), &to_fallback),
        (b"GET / HTTP/1.0\r\n\r\n".to_vec(), &to_fallback),
    ];
    for (first, upstream) in cases {
        let sent = [first.clone(), after_hello.clone()].concat();
        client_sends(relay, &sent, Duration::ZERO, &[]);
        let got = upstream
            .recv_timeout(TIMEOUT)
            .expect("the right upstream got it")
            .expect("the upstream reads the client's bytes up to its half-close");
        assert!(got == sent, "the upstream must see every byte as sent: {:?}", text(&first));
    }
    // A ClientHello split in two segments is peeked again until it is whole.
    let hello = client_hello(Some("db.example.com"));
    let (head, tail) = hello.split_at(30);
    client_sends(relay, head, Duration::from_millis(100), tail);
    let got = to_exact
        .recv_timeout(TIMEOUT)
        .expect("the exact route got it")
        .expect("the upstream reads the split hello up to the client's half-close");
    assert!(got == hello, "a split hello arrives whole");

    let counts: Vec<u64> = server.metrics.iter().map(|m| settled(m).accepted).collect();
    assert_eq!(counts, [3, 1, 3], "each route counts the clients it took");
    let labels: Vec<String> = server.metrics.iter().map(|m| m.route().to_string()).collect();
    assert_eq!(labels[0], format!("{relay} sni=db.example.com"));
    assert_eq!(labels[2], format!("{relay} default"));
}

#[test]
fn without_a_default_route_an_unknown_name_is_closed_with_no_route() {
    let upstream = Upstream::echo();
    let server = TestServer::start(ServerConfig {
        routes: vec![named_route(upstream.addr, &["only.example"])],
        ..ServerConfig::default()
    });
    let relay = server.addrs[0];
    let other = client_hello(Some("other.example"));
    assert_eq!(client_sends(relay, &other, Duration::ZERO, &[]), b"");
    assert_eq!(client_sends(relay, b"SSH-2.0-x\r\n", Duration::ZERO, &[]), b"");
    let known = client_hello(Some("only.example"));
    assert_eq!(client_sends(relay, &known, Duration::ZERO, &[]), known, "echoed");
    let metrics = settled(&server.metrics[0]);
    assert_eq!(metrics.closed("no_route"), Some(2));
    assert_eq!(upstream.accepted(), 1, "no upstream dialled for a client no route takes");
}

#[test]
fn check_prints_an_sni_listener_that_reads_back() {
    let dir = std::env::temp_dir().join(format!("tcprelay-routing-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
    let file = dir.join("sni.conf");
    std::fs::write(
        &file,
        "route 0.0.0.0:443 -> db1.internal:443 sni=db.example.com name=db\n\
         route 0.0.0.0:443 -> web.internal:443 sni=*.example.com,example.com\n\
         route 0.0.0.0:443 -> fallback.internal:443\n",
    )
    .unwrap_or_else(|e| panic!("the test writes {}: {e}", file.display()));
    let output = run_tcprelay(&["--check", "--config", file.to_str().expect("a UTF-8 temp path")]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let described = String::from_utf8(output.stdout).expect("--check prints UTF-8");
    assert!(described.contains(" sni=*.example.com,example.com"), "{described}");
    std::fs::write(&file, &described)
        .unwrap_or_else(|e| panic!("the test writes --check's output to {}: {e}", file.display()));
    let again = run_tcprelay(&["--check", "--config", file.to_str().expect("a UTF-8 temp path")]);
    assert_eq!(
        String::from_utf8(again.stdout).expect("--check prints UTF-8"),
        described,
        "it reads back"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn routes_that_cannot_share_a_listener_are_refused_naming_both() {
    let cases = [
        (vec![":7443=:1", ":7443=:2"], &[][..], "both listen on"),
        (vec![":7443=:1"], &["--sni", "a.example", "--sni", "*.example"], ""),
    ];
    for (routes, flags, expected) in cases {
        let mut args = vec!["--check"];
        for route in &routes {
            args.extend(["--route", route]);
        }
        args.extend(flags);
        let output = run_tcprelay(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match expected {
            "" => assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}"),
            _ => {
                assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
                assert!(stderr.contains(expected), "{args:?}: {stderr}");
            }
        }
    }
    let config = |lines: &str| {
        let dir = std::env::temp_dir().join(format!("tcprelay-routing-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
        let file = dir.join("refused.conf");
        std::fs::write(&file, lines)
            .unwrap_or_else(|e| panic!("the test writes {}: {e}", file.display()));
        let output =
            run_tcprelay(&["--check", "--config", file.to_str().expect("a UTF-8 temp path")]);
        let _ = std::fs::remove_file(&file);
        output
    };
    for (lines, expected) in [
        (
            "route :7443 -> :1 sni=a.example\nroute :7443 -> :2\nroute :7443 -> :3\n",
            "both listen on 127.0.0.1:7443 without sni=",
        ),
        (
            "route :7443 -> :1 sni=a.example\nroute :7443 -> :2 sni=b.example,a.example\n",
            "both take sni=a.example on 127.0.0.1:7443",
        ),
        (
            "route :7443 -> :1 sni=a.example\nroute :7443 -> :2 max-connections=9\n",
            "has max-connections=9 where it has 500",
        ),
        ("route unix:/tmp/x.sock -> :1 sni=a.example\n", "std cannot peek at a Unix socket"),
        ("route :7443 -> :1 sni=a*b\n", "expected a host name or *.suffix, found \"a*b\""),
    ] {
        let output = config(lines);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{lines}: {stderr}");
        assert!(stderr.contains(expected), "{lines}: {stderr}");
    }
}

#[test]
fn sni_and_accept_proxy_together_route_by_name_after_the_header() {
    let (named, to_named) = Upstream::recording();
    let (fallback, _to_fallback) = Upstream::recording();
    let route =
        |upstream, names: &[&str]| Config { accept_proxy: true, ..named_route(upstream, names) };
    let server = TestServer::start(ServerConfig {
        routes: vec![route(named.addr, &["a.example"]), route(fallback.addr, &[])],
        ..ServerConfig::default()
    });
    let hello = client_hello(Some("a.example"));
    let proxied = proxy_header(ProxyVersion::V2, addr("192.0.2.9:1234"), addr("192.0.2.10:443"));
    client_sends(server.addrs[0], &[proxied, hello.clone()].concat(), Duration::ZERO, &[]);
    let got = to_named
        .recv_timeout(TIMEOUT)
        .expect("routed by name")
        .expect("the named route's upstream reads the hello up to the client's half-close");
    assert!(got == hello, "the header is consumed, the hello forwarded whole");
}

// ---------------------------------------------------------------------------------------
// Live metrics
// ---------------------------------------------------------------------------------------

/// The value of the sample `name{labels}` in a `/metrics` text.
fn sample(metrics: &str, name_and_labels: &str) -> Option<u64> {
    let line = metrics.lines().find(|line| line.starts_with(&format!("{name_and_labels} ")))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn bytes_reach_metrics_while_the_connection_is_open() {
    let upstream = Upstream::echo();
    let server = TestServer::start(ServerConfig {
        routes: vec![Config { name: "live".into(), ..named_route(upstream.addr, &[]) }],
        admin: Some(tcprelay::Address::Tcp(addr("127.0.0.1:0"))),
        ..ServerConfig::default()
    });
    let admin = server.admin.expect("an admin endpoint");
    let client = connect(server.addrs[0]);
    let data = pattern(3, 5000);
    send(&client, &data);
    assert_eq!(read_exactly(&client, data.len(), "client"), data, "echoed whole");
    // Still open: the bytes so far are in /metrics already, and the route's gauge says 1.
    let (status, metrics) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    let up = r#"tcprelay_bytes_total{route="live",direction="client_to_upstream"}"#;
    let down = r#"tcprelay_bytes_total{route="live",direction="upstream_to_client"}"#;
    assert_eq!(sample(&metrics, up), Some(5000), "{metrics}");
    assert_eq!(sample(&metrics, down), Some(5000), "{metrics}");
    assert_eq!(sample(&metrics, r#"tcprelay_connections_active{route="live"}"#), Some(1));
    // Closed: the totals hold, counted once.
    client.shutdown(Shutdown::Write).expect("the client half-closes its open connection");
    assert_eq!(read_to_eof(&client, "client"), b"");
    settled(&server.metrics[0]);
    let (_, metrics) = http_get(admin, "/metrics");
    assert_eq!((sample(&metrics, up), sample(&metrics, down)), (Some(5000), Some(5000)));
    assert_eq!(sample(&metrics, r#"tcprelay_connections_active{route="live"}"#), Some(0));
}
