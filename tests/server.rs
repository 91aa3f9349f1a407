//! Several routes in one process, the admin endpoint, and graceful drain, through the
//! library's `Server` on loopback.
#![forbid(unsafe_code)]

mod support;

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use support::*;
use tcprelay::{Config, ServerConfig};

fn route(name: &str, upstream: SocketAddr) -> Config {
    Config { name: name.to_string(), upstream: upstream.to_string(), ..quiet_config() }
}

fn server(routes: Vec<Config>, drain_timeout: Duration) -> TestServer {
    TestServer::start(ServerConfig {
        routes,
        admin: Some(tcprelay::Address::Tcp(
            "127.0.0.1:0".parse().expect("127.0.0.1:0 is a socket address"),
        )),
        admin_access: Default::default(),
        drain_timeout,
        ..Default::default()
    })
}

#[test]
fn each_route_relays_to_its_own_upstream() {
    let (one, two) = (Upstream::banner("one"), Upstream::banner("two"));
    let server = server(vec![route("a", one.addr), route("b", two.addr)], TIMEOUT);
    assert_eq!(served_by(server.addrs[0]), "one");
    assert_eq!(served_by(server.addrs[1]), "two");
    assert_eq!(served_by(server.addrs[0]), "one");
    assert_eq!((one.accepted(), two.accepted()), (2, 1));
}

#[test]
fn metrics_after_known_traffic_are_exact_and_labelled_by_route() {
    let upstream = Upstream::echo();
    let server = server(
        vec![
            route("alpha", upstream.addr),
            Config {
                access: tcprelay::AccessRules {
                    allow: vec![],
                    deny: vec!["127.0.0.0/8".parse().expect("127.0.0.0/8 is a CIDR block")],
                },
                ..route("beta", upstream.addr)
            },
        ],
        TIMEOUT,
    );
    assert_eq!(echo_through(server.addrs[0], &pattern(1, 10)), pattern(1, 10));
    assert_eq!(echo_through(server.addrs[0], &pattern(2, 20_000)), pattern(2, 20_000));
    let denied = connect(server.addrs[1]);
    assert!(matches!((&denied).read(&mut [0; 1]), Ok(0) | Err(_)), "denied: closed at once");
    settled(&server.metrics[0]);
    settled(&server.metrics[1]);

    let (status, body) =
        http_get(server.admin.expect("the server has an admin endpoint"), "/metrics");
    assert_eq!(status, 200);
    for line in [
        "tcprelay_connections_accepted_total{route=\"alpha\"} 2",
        "tcprelay_connections_accepted_total{route=\"beta\"} 1",
        "tcprelay_connections_active{route=\"alpha\"} 0",
        "tcprelay_connections_denied_total{route=\"alpha\"} 0",
        "tcprelay_connections_denied_total{route=\"beta\"} 1",
        "tcprelay_upstream_connect_failures_total{route=\"alpha\"} 0",
        "tcprelay_bytes_total{route=\"alpha\",direction=\"client_to_upstream\"} 20010",
        "tcprelay_bytes_total{route=\"alpha\",direction=\"upstream_to_client\"} 20010",
        "tcprelay_bytes_total{route=\"beta\",direction=\"client_to_upstream\"} 0",
        "tcprelay_connections_closed_total{route=\"alpha\",reason=\"client_eof\"} 2",
        "tcprelay_connections_closed_total{route=\"beta\",reason=\"denied\"} 1",
        "tcprelay_connections_closed_total{route=\"beta\",reason=\"client_eof\"} 0",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in:\n{body}");
    }
    assert_eq!(upstream.accepted(), 2, "the denied client never reached the upstream");
}

#[test]
fn malformed_admin_requests_get_4xx_and_the_relay_keeps_serving() {
    let upstream = Upstream::echo();
    let server = server(vec![route("web", upstream.addr)], TIMEOUT);
    let admin = server.admin.expect("the server has an admin endpoint");
    let oversized = format!("GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(16 * 1024));
    let delete = format!("DELETE /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n");
    let cases: &[(&[u8], u16)] = &[
        (b"\x00\x01\x02 garbage\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (oversized.as_bytes(), 431),
        (delete.as_bytes(), 405),
        (b"GET /drain HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        (b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n", 404),
        (b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ];
    for (request, expected) in cases {
        let (status, _) = http(admin, request);
        assert_eq!(status, *expected, "{:?}", String::from_utf8_lossy(request));
    }
    // A client that connects and says nothing costs the admin endpoint a timeout, nothing more.
    let silent = TcpStream::connect(admin).expect("a silent client connects to the admin endpoint");

    assert_eq!(echo_through(server.addrs[0], b"still here"), b"still here");
    drop(silent);
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
}

#[test]
fn drain_lets_a_live_transfer_finish_and_refuses_new_clients() {
    let reply = pattern(7, 500_000);
    let (request_seen, seen) = mpsc::channel();
    let (release_reply, release) = mpsc::channel::<()>();
    let release = std::sync::Mutex::new(release);
    let upstream_reply = reply.clone();
    let upstream = Upstream::start(move |stream| {
        let mut request = [0; 5];
        (&stream).read_exact(&mut request).expect("the upstream gets the client's 5-byte request");
        request_seen.send(()).expect("the test is still waiting to hear the request arrived");
        release
            .lock()
            .expect("no upstream thread panicked while holding the release channel")
            .recv_timeout(TIMEOUT)
            .expect("the test releases the upstream's reply within the timeout");
        write_all(&stream, &upstream_reply)
            .expect("the upstream sends its whole reply while the relay drains");
    });
    let server = server(vec![route("web", upstream.addr)], TIMEOUT);
    let (addr, admin) = (server.addrs[0], server.admin.expect("the server has an admin endpoint"));

    let client = connect(addr);
    write_all(&client, b"hello").expect("the client sends its request");
    seen.recv_timeout(TIMEOUT).expect("the upstream gets the request"); // the transfer is live

    let (status, body) = http_post(admin, "/drain");
    assert_eq!((status, body.starts_with("draining")), (200, true));
    // The listener is closed during the drain: new clients are refused, not left waiting.
    assert!(eventually(|| TcpStream::connect(addr).is_err()));

    release_reply.send(()).expect("the upstream is still waiting for the release");
    client.shutdown(Shutdown::Write).expect("the client half-closes during the drain");
    assert_eq!(
        checksum(
            &read_all(&client)
                .expect("the client reads the whole reply up to EOF although the relay drains")
        ),
        checksum(&reply)
    );
    let metrics = server.metrics[0].clone();
    server.finish().expect("serve returns Ok after a drain");
    assert_eq!(metrics.snapshot().closed("stopped"), Some(0), "nothing was cut");
}

#[test]
fn drain_closes_what_outlasts_the_drain_timeout() {
    let upstream = Upstream::start(|stream| {
        let _ = read_all(&stream); // never replies; waits for EOF
    });
    let server = server(vec![route("web", upstream.addr)], Duration::from_millis(100));
    let client = connect(server.addrs[0]);
    write_all(&client, b"hello").expect("the client sends its request");
    assert!(eventually(|| upstream.accepted() == 1));

    server.handle.drain();
    let mut byte = [0; 1];
    assert!(matches!((&client).read(&mut byte), Ok(0) | Err(_)), "closed by the drain");
    let metrics = server.metrics[0].clone();
    server.finish().expect("serve returns Ok after a drain");
    assert_eq!(metrics.snapshot().closed("stopped"), Some(1));
}

/// The drain closes a client that sends nothing and never closes, with every timer off, so
/// no idle tick would end it either. On Unix the drain's `shutdown` wakes both of its copy
/// threads; on Windows it does not, and the threads find the close at their next tick
/// (src/relay/timers.rs, `CLOSE_CHECK`). Before that tick existed, this relay never stopped
/// under wine.
#[test]
fn drain_closes_a_silent_client_with_every_timer_off() {
    let upstream = Upstream::start(|stream| {
        let _ = read_all(&stream); // never replies; waits for EOF
    });
    let timers_off = Config {
        idle_timeout: Duration::ZERO,
        half_close_timeout: Duration::ZERO,
        ..route("web", upstream.addr)
    };
    let server = server(vec![timers_off], Duration::from_millis(100));
    let client = connect(server.addrs[0]);
    assert!(eventually(|| upstream.accepted() == 1));

    server.handle.drain();
    let metrics = server.metrics[0].clone();
    server.finish().expect("serve returns (within TIMEOUT) after the drain timeout");
    assert_eq!(metrics.snapshot().closed("stopped"), Some(1));
    let mut byte = [0; 1];
    assert!(matches!((&client).read(&mut byte), Ok(0) | Err(_)), "closed by the drain");
}

#[test]
fn healthz_reports_draining() {
    let upstream = Upstream::echo();
    let server = server(vec![route("web", upstream.addr)], TIMEOUT);
    let admin = server.admin.expect("the server has an admin endpoint");
    // A live connection keeps the drain (and so the admin endpoint) going.
    let client = connect(server.addrs[0]);
    write_all(&client, b"x").expect("the client sends a byte");
    let mut echoed = [0; 1];
    (&client).read_exact(&mut echoed).expect("the echo comes back through the relay");

    server.handle.drain();
    assert_eq!(http_get(admin, "/healthz"), (503, "draining\n".to_string()));
    client.shutdown(Shutdown::Write).expect("the client half-closes during the drain");
    assert_eq!(
        read_all(&client)
            .expect("after the client's half-close the upstream's EOF comes back during the drain"),
        b""
    );
    server.finish().expect("serve returns Ok after the drain");
}

#[test]
fn relay_stop_handle_drain_waits_for_live_connections() {
    let upstream = Upstream::echo();
    let relay =
        tcprelay::Relay::bind(Config { upstream: upstream.addr.to_string(), ..quiet_config() })
            .expect("the relay binds on loopback");
    let addr = relay.local_addr();
    let stop = relay.stop_handle();
    let (done, served) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        done.send(relay.serve()).expect("the test is still waiting for serve to return")
    });

    let client = connect(addr);
    write_all(&client, b"abc").expect("the client sends its first bytes");
    let mut echoed = [0; 3];
    (&client).read_exact(&mut echoed).expect("the echo comes back through the relay");
    stop.drain(TIMEOUT);
    assert!(served.recv_timeout(Duration::from_millis(50)).is_err(), "still draining");
    write_all(&client, b"def").expect("a live connection still takes bytes during the drain");
    client.shutdown(Shutdown::Write).expect("the client half-closes during the drain");
    assert_eq!(
        read_all(&client)
            .expect("the echo of the bytes sent during the drain comes back, then EOF"),
        b"def"
    );
    served
        .recv_timeout(TIMEOUT)
        .expect("serve returns once the last connection closes")
        .expect("serve returns Ok after a drain");
    thread.join().expect("the serve thread ends without panicking");
}

/// The library checks a `Config` with the same bounds as the command line: nothing that
/// would serve every client an instant EOF, or hang them, binds.
#[test]
fn relay_and_server_bind_refuse_configs_the_command_line_would_refuse() {
    let good = Config { upstream: "127.0.0.1:1".to_string(), ..quiet_config() };
    let cases = [
        (Config::default(), "upstream: expected at least one HOST:PORT, found none"),
        (
            Config { max_connections: 0, ..good.clone() },
            "max-connections: expected a whole number from 1 to 65536, found \"0\"",
        ),
        (Config { upstream: "localhost".into(), ..good.clone() }, "\"localhost\""),
        (
            Config { buffer_size: 1 << 31, ..good.clone() },
            "buffer-size: expected 0, or a size from 8k to 1m, found \"2g\"",
        ),
        (Config { stack_size: usize::MAX, ..good.clone() }, "stack-size: "),
        (Config { connect_timeout: Duration::ZERO, ..good.clone() }, "connect-timeout: "),
    ];
    for (config, expected) in cases {
        let error = tcprelay::Relay::bind(config.clone()).expect_err(expected);
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().contains(expected), "{expected}: {error}");
        let server = ServerConfig { routes: vec![config], ..ServerConfig::default() };
        let error = tcprelay::Server::bind(server).expect_err(expected);
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }

    // The whole: a route that forwards to itself, and two routes on one port.
    let listen: SocketAddr = "127.0.0.1:7001".parse().expect("127.0.0.1:7001 is a socket address");
    let looping = Config { listen, upstream: ":7001".into(), ..quiet_config() };
    let error =
        tcprelay::Server::bind(ServerConfig { routes: vec![looping], ..ServerConfig::default() })
            .expect_err("a route to itself");
    assert!(error.to_string().contains("forwards to its own listen address"), "{error}");
    let wildcard = Config {
        listen: "0.0.0.0:7001".parse().expect("0.0.0.0:7001 is a socket address"),
        ..good.clone()
    };
    let specific = Config { listen, ..good.clone() };
    let error = tcprelay::Server::bind(ServerConfig {
        routes: vec![wildcard, specific],
        ..ServerConfig::default()
    })
    .expect_err("two routes on one port");
    assert!(error.to_string().contains("both listen on 127.0.0.1:7001"), "{error}");
    let error = tcprelay::Server::bind(ServerConfig::default()).expect_err("no routes");
    assert!(error.to_string().contains("at least one route"), "{error}");
}
