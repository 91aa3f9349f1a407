//! Clients the relay must neither believe nor wait on: a PROXY header from a sender that
//! `proxy-from` does not name (it could claim any address), clients that connect and send
//! nothing to a listener that waits for first bytes (`accept-proxy`, `sni=`), and one
//! address holding most of a route's slots (the per-client limit as fairness).
//!
//! Two client addresses play against each other: 127.0.0.1, a plain `TcpStream`, and
//! 127.0.0.2, OpenBSD netcat's `nc -s` (std cannot choose a client's source address).
#![forbid(unsafe_code)]

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::*;
use tcprelay::ProxyVersion;
use tcprelay::{AccessRules, Cidr, Config};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("test address {text}: {e}"))
}

fn cidrs(text: &str) -> Vec<Cidr> {
    let block = |piece: &str| piece.parse().unwrap_or_else(|e| panic!("test block {piece}: {e}"));
    text.split(',').map(block).collect()
}

/// A route to `upstream` that expects a PROXY header from the senders `proxy-from` names
/// (none: loopback).
fn accepting_proxy_from(upstream: SocketAddr, proxy_from: &str) -> Config {
    Config {
        upstream: upstream.to_string(),
        accept_proxy: true,
        proxy_from: if proxy_from.is_empty() { Vec::new() } else { cidrs(proxy_from) },
        ..quiet_config()
    }
}

/// A PROXY v1 header saying the client is `source`.
fn claiming(source: &str) -> Vec<u8> {
    proxy_header(ProxyVersion::V1, addr(source), addr("198.51.100.1:443"))
}

// ---------------------------------------------------------------------------------------
// Forged headers (issue 22, item 5)
// ---------------------------------------------------------------------------------------

/// 127.0.0.2 is not in `proxy-from 127.0.0.1/32`: its headers, each naming an address the
/// rules allow and a different one each time, are never read. Every one is closed at once,
/// `reason=untrusted_proxy`, counted, no upstream dialled: the forger passes neither
/// `allow`/`deny` nor the per-client limit. Even a sender that says nothing is closed for
/// that reason (were its bytes read first, it would be `bad_proxy_header`). The trusted
/// sender's header still works. Before: the 40 forged clients were all served.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn a_forged_header_from_an_untrusted_sender_is_closed_before_it_is_read() {
    let upstream = Upstream::echo();
    let relay = TestRelay::start(Config {
        access: AccessRules { allow: cidrs("10.0.0.0/8"), deny: cidrs("127.0.0.0/8") },
        max_connections_per_client: Some(2),
        ..accepting_proxy_from(upstream.addr, "127.0.0.1/32")
    });
    for n in 0..40 {
        let forged = [claiming(&format!("10.6.6.{n}:4000")), b"let me in".to_vec()].concat();
        let got = exchange_from("127.0.0.2", relay.addr, &forged);
        assert_eq!(text(&got), "", "forged client {n} got an answer");
    }
    assert_eq!(exchange_from("127.0.0.2", relay.addr, b""), b"", "a silent untrusted sender");
    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.closed("untrusted_proxy"), Some(41));
    assert_eq!(metrics.closed("bad_proxy_header"), Some(0), "not one byte was read");
    assert_eq!(upstream.accepted(), 0, "no upstream was dialled");

    let trusted = connect(relay.addr);
    write_all(&trusted, &claiming("10.6.6.6:4000")).expect("127.0.0.1 sends its header");
    assert_eq!(exchange(&trusted, b"real client"), b"real client");
}

// ---------------------------------------------------------------------------------------
// Silent clients (item 6)
// ---------------------------------------------------------------------------------------

/// What a silent flood left: the flooding address's connections the relay did not close at
/// once (still waiting), and the relay with its upstream.
/// (Bind every field: the upstream must outlive the test.)
struct Flood {
    still_open: Vec<TcpStream>,
    relay: TestRelay,
    _upstream: Upstream,
}

/// A listener of 8 slots to an echo upstream that waits for first bytes (up to a minute):
/// `sni=app.test` with `access`, or `accept-proxy` from `proxy_from` ("": loopback).
/// 127.0.0.1 opens 40 connections (5× the slots) and sends nothing. Then three clients from
/// 127.0.0.2 send their first bytes, and each must be served while the silent ones are
/// open.
fn flood(listener: Listener) -> Flood {
    let upstream = Upstream::echo();
    let (route, first_bytes, answer) = match listener {
        Listener::Sni(access) => {
            let route = Config {
                upstream: upstream.addr.to_string(),
                server_names: vec!["app.test".parse().expect("a server name")],
                access,
                ..quiet_config()
            };
            (route, client_hello(Some("app.test")), client_hello(Some("app.test")))
        }
        Listener::AcceptProxy(proxy_from) => {
            let sent = [claiming("192.0.2.9:5000"), b"hello".to_vec()].concat();
            (accepting_proxy_from(upstream.addr, proxy_from), sent, b"hello".to_vec())
        }
    };
    let relay = TestRelay::start(Config {
        max_connections: 8,
        first_bytes_timeout: Duration::from_secs(60),
        ..route
    });
    let silent: Vec<TcpStream> = (0..40).map(|_| connect(relay.addr)).collect();
    for n in 0..3 {
        let got = exchange_from("127.0.0.2", relay.addr, &first_bytes);
        assert!(got == answer, "client {n} of 127.0.0.2 was not served: got {:?}", text(&got));
    }
    // Those the relay closed at once read EOF now; the others are still open, waiting.
    let still_open = silent.into_iter().filter(|client| !has_eof_now(client)).collect();
    Flood { still_open, relay, _upstream: upstream }
}

/// The listener [`flood`] floods.
enum Listener {
    /// `sni=app.test`, with these access rules.
    Sni(AccessRules),
    /// `accept-proxy` from these senders ("": the default, loopback).
    AcceptProxy(&'static str),
}

/// Whether the relay has already closed `client` (looked at for 200 ms: a negative check,
/// never what makes a test pass on its own).
fn has_eof_now(client: &TcpStream) -> bool {
    use std::io::Read;
    client.set_read_timeout(Some(Duration::from_millis(200))).expect("a read timeout");
    let mut byte = [0; 1];
    let closed = match (&*client).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("a client that sent nothing was answered"),
        Err(e) => {
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        }
    };
    client.set_read_timeout(Some(TIMEOUT)).expect("restore the read timeout");
    closed
}

/// On an `sni=` listener, one address may hold an eighth of the room where connections wait
/// for a ClientHello (1 of 8 here), and waiting ones hold none of the route's slots:
/// 127.0.0.2 is served while 127.0.0.1's silent connection is still open (and served once it
/// speaks). Before issue 22's first fix: 0 of 3 served, all waiting out the silent clients.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn silent_clients_of_one_address_do_not_lock_out_another_on_an_sni_listener() {
    let Flood { still_open, relay, _upstream } = flood(Listener::Sni(AccessRules::default()));
    assert_eq!(still_open.len(), 1, "one address may take 1 of the 8 waiting places");
    assert_eq!(relay.metrics.snapshot().closed("client_limit"), Some(39));
    let hello = client_hello(Some("app.test"));
    let echoed = exchange(&still_open[0], &hello); // it speaks at last, and says it is done
    assert!(echoed == hello, "the silent client, once it speaks, is served");
}

/// The access rules of an `sni=` listener apply to the TCP peer before a byte is read: a
/// denied address's silent connections are closed at once (`denied`), not after
/// `first-bytes-timeout`, and the other address is served meanwhile.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn a_denied_address_is_closed_before_its_client_hello_on_an_sni_listener() {
    let deny = AccessRules { allow: Vec::new(), deny: cidrs("127.0.0.1/32") };
    let Flood { still_open, relay, _upstream } = flood(Listener::Sni(deny));
    assert_eq!(still_open.len(), 0, "every denied connection was closed without a byte");
    assert_eq!(relay.metrics.snapshot().closed("denied"), Some(40));
}

/// On an `accept-proxy` listener whose senders are both trusted (the default: loopback),
/// 127.0.0.1's silent connections take at most an eighth of the waiting room and none of
/// the route's slots: 127.0.0.2's headers are read and its clients served.
/// Before: 0 of 3.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn silent_clients_of_one_address_do_not_lock_out_another_on_an_accept_proxy_listener() {
    let Flood { still_open, relay, _upstream } = flood(Listener::AcceptProxy(""));
    assert_eq!(still_open.len(), 1, "one address may take 1 of the 8 waiting places");
    assert_eq!(relay.metrics.snapshot().closed("client_limit"), Some(39));
}

/// The same listener with `proxy-from 127.0.0.2/32`: 127.0.0.1 may not send headers, so
/// its silent connections are closed at once (`untrusted_proxy`).
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn an_untrusted_address_is_closed_before_its_header_on_an_accept_proxy_listener() {
    let Flood { still_open, relay, _upstream } = flood(Listener::AcceptProxy("127.0.0.2/32"));
    assert_eq!(still_open.len(), 0, "every untrusted connection was closed without a byte");
    assert_eq!(relay.metrics.snapshot().closed("untrusted_proxy"), Some(40));
}

/// The tester's repro, with a third address: a listener on `[::]` (IPv4 and IPv6, loopback
/// clients only) with 2 places for connections waiting for a PROXY header. 127.0.0.1 and
/// 127.0.0.2 each open 10 silent connections and keep them open: each may have 1 waiting
/// (an eighth of 2, at least 1), the other 9 are closed at once (`client_limit`), and the
/// room is full. A client from ::1, holding none, takes the place of the oldest waiting
/// connection of an address holding the most (127.0.0.1's, closed: `client_limit`,
/// "evicted") and is served; 127.0.0.2's stays open and is served when it speaks. Before:
/// the ::1 client waited in the backlog for the silent ones' `first-bytes-timeout` (with
/// `max-connections 8` and 10 s: 9.6 s, then closed unserved).
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn silent_clients_of_two_addresses_do_not_keep_out_a_third() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let upstream = Upstream::echo();
    let relay = TestRelay::start(Config {
        listen: addr("[::]:0"),
        max_connections: 2,
        first_bytes_timeout: Duration::from_secs(60),
        ..accepting_proxy_from(upstream.addr, "")
    });
    let port = relay.addr.port();
    let v4 = addr(&format!("127.0.0.1:{port}"));
    let accepted = |n| eventually(|| relay.metrics.snapshot().accepted == n);

    let first_of_1 = connect(v4);
    assert!(accepted(1), "127.0.0.1's first connection waits for its header");
    for n in 0..9 {
        assert_eq!(read_to_eof(&connect(v4), "127.0.0.1's extra"), b"", "extra {n} answered");
    }
    // 127.0.0.2's first connection, held open by nc (std cannot choose a source address).
    let mut first_of_2 = Command::new(openbsd_nc())
        .args(["-N", "-w", "60", "-s", "127.0.0.2", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run OpenBSD nc");
    assert!(accepted(11), "127.0.0.2's first connection waits for its header");
    for n in 0..9 {
        assert_eq!(exchange_from("127.0.0.2", v4, b""), b"", "127.0.0.2's extra {n} answered");
    }
    let refused = || relay.metrics.snapshot().closed("client_limit");
    assert!(eventually(|| refused() == Some(18)), "9 of each refused, 2 waiting: {:?}", refused());

    let third = connect(addr(&format!("[::1]:{port}")));
    write_all(&third, &claiming("192.0.2.3:3000")).expect("::1 sends its header");
    assert_eq!(exchange(&third, b"third"), b"third", "the client from ::1 is served");

    assert_eq!(read_to_eof(&first_of_1, "127.0.0.1's first"), b"", "evicted: the oldest");
    assert!(eventually(|| refused() == Some(19)), "and one evicted: {:?}", refused());
    let mut stdin = first_of_2.stdin.take().expect("nc's stdin is piped");
    let sent = [claiming("192.0.2.2:2000"), b"second".to_vec()].concat();
    stdin.write_all(&sent).expect("127.0.0.2's first connection speaks at last");
    drop(stdin); // nc -N half-closes
    let mut echoed = Vec::new();
    let mut stdout = first_of_2.stdout.take().expect("nc's stdout is piped");
    stdout.read_to_end(&mut echoed).expect("nc's output");
    assert_eq!(text(&echoed), "second", "127.0.0.2's waiting connection was kept, and served");
    first_of_2.wait().expect("nc ends");
}

// ---------------------------------------------------------------------------------------
// Fairness (item 7)
// ---------------------------------------------------------------------------------------

/// A route of 8 with the default per-client limit (`auto`: a share of 1), clients named by
/// their PROXY headers from a trusted local balancer. 192.0.2.1 takes 7 slots while more
/// than 1 is free; its 8th is refused (`client_limit`) with one slot left, and 192.0.2.2,
/// holding none, takes that slot. Before: 192.0.2.1's second connection was refused.
#[test]
fn with_the_route_nearly_full_the_hog_is_refused_and_a_new_address_gets_in() {
    let upstream = Upstream::echo();
    let relay =
        TestRelay::start(Config { max_connections: 8, ..accepting_proxy_from(upstream.addr, "") });
    let from = |source: &str| {
        let client = connect(relay.addr);
        write_all(&client, &claiming(source)).expect("the balancer sends the header");
        client
    };
    // One at a time: the balancer (127.0.0.1) may have 1 connection (an eighth of 8) whose
    // header the relay has not read yet.
    let hog = |n| {
        let client = from("192.0.2.1:1000");
        assert_eq!(round_trip(&client, b"h"), b"h", "the hog's connection {n} is served");
        client
    };
    let _hog: Vec<TcpStream> = (0..7).map(hog).collect();
    let refused = from("192.0.2.1:1000");
    assert_eq!(read_to_eof(&refused, "the hog's 8th"), b"");
    // Counted just after the close the client saw.
    let refused_count = || relay.metrics.snapshot().closed("client_limit");
    assert!(eventually(|| refused_count() == Some(1)), "client_limit: {:?}", refused_count());
    let newcomer = from("192.0.2.2:2000");
    assert_eq!(round_trip(&newcomer, b"new"), b"new", "the new address takes the last slot");
}
