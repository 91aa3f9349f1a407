//! Tests that free a port and need it back (an upstream that refuses, then comes back; a
//! real PROXY protocol peer that binds a port we picked), against the relay on loopback.
//!
//! A freed ephemeral port may be handed to the next `bind(port 0)` in this process, so
//! these tests take a lock and run one at a time, and nothing else in this binary binds.
#![forbid(unsafe_code)]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::*;
use tcprelay::Config;
use tcprelay::ProxyVersion;

#[test]
fn a_failed_upstream_is_used_again_once_it_comes_back() {
    let _serial = serial();
    let first = refusing_addr();
    let second = Upstream::banner("second");
    let relay = TestRelay::start(Config {
        upstream_backoff: Duration::from_millis(50),
        ..to_all(&[first.to_string(), second.addr.to_string()])
    });
    assert_eq!(served_by(relay.addr), "second");

    let revived = Upstream::banner_on(TcpListener::bind(first).expect("rebind"), "first");
    // Back in the order once its short back-off is over: no signal says when, so poll.
    assert!(eventually(|| served_by(relay.addr) == "first"));
    assert!(revived.accepted() >= 1);
}

#[test]
fn when_every_upstream_backs_off_they_are_still_tried() {
    let _serial = serial();
    let (one, two) = (refusing_addr(), refusing_addr());
    let relay = TestRelay::start(Config {
        upstream_backoff: Duration::from_secs(60),
        ..to_all(&[one.to_string(), two.to_string()])
    });
    assert_eq!(served_by(relay.addr), "", "no upstream: the client is closed");
    assert_eq!(settled(&relay.metrics).closed("connect_failed"), Some(1));

    // Both are backing off now; one comes back and must be found at once.
    let back = Upstream::banner_on(TcpListener::bind(two).expect("rebind"), "two");
    assert_eq!(served_by(relay.addr), "two");
    assert_eq!(back.accepted(), 1);
}

/// HAProxy, from Debian's `haproxy` package, with `accept-proxy` on a loopback port; it
/// answers every HTTP request with the client address it learnt from the PROXY header.
/// Killed and reaped when dropped.
struct Haproxy {
    addr: std::net::SocketAddr,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Haproxy {
    fn start() -> Haproxy {
        let binary = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect(
                "this test needs a real PROXY protocol peer: install HAProxy with \
                 `apt-get update && apt-get install -y haproxy` (.ci/run does it)",
            );
        // HAProxy binds the port itself: take a free one from the OS and release it.
        let addr = refusing_addr();
        let dir = std::env::temp_dir().join(format!("tcprelay-haproxy-{}", addr.port()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  \
                 timeout server 10s\n\
                 frontend relayed\n  bind {addr} accept-proxy\n  \
                 http-request return status 200 content-type text/plain \
                 lf-string \"%[src] %[src_port] %[dst] %[dst_port]\"\n"
            ),
        )
        .unwrap_or_else(|e| panic!("the test writes {}: {e}", config.display()));
        let child = std::process::Command::new(binary)
            .arg("-db") // foreground, no daemon
            .arg("-f")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy");
        let haproxy = Haproxy { addr, child, dir };
        assert!(
            eventually(|| std::net::TcpStream::connect(addr).is_ok()),
            "haproxy did not start listening on {addr}"
        );
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real peer parses our header: HAProxy reports the client's own address and port, and
/// the relay's address as the destination, for both versions.
#[test]
#[ignore = "needs haproxy: apt-get install haproxy"]
fn haproxy_accept_proxy_sees_the_real_client() {
    let _serial = serial();
    let haproxy = Haproxy::start();
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let relay = TestRelay::start(Config {
            upstream: haproxy.addr.to_string(),
            proxy_protocol: Some(version),
            ..quiet_config()
        });
        let client = connect(relay.addr);
        write_all(&client, b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            .expect("the client sends its HTTP request");
        let response = String::from_utf8(
            read_all(&client).expect("HAProxy's answer comes back through the relay, then EOF"),
        )
        .expect("HAProxy's answer is UTF-8");
        let client_addr = client.local_addr().expect("the client socket has a local address");
        let expected = format!(
            "{} {} {} {}",
            client_addr.ip(),
            client_addr.port(),
            relay.addr.ip(),
            relay.addr.port()
        );
        assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"));
        assert!(response.ends_with(&expected), "{version}: {response:?}, expected {expected:?}");
    }
}

/// The counters of the upstream at `addr` on `relay`'s route.
fn upstream_state(relay: &TestRelay, addr: std::net::SocketAddr) -> tcprelay::UpstreamSnapshot {
    let snapshot = relay.metrics.snapshot();
    snapshot.upstream(&addr.to_string()).expect("a known upstream").clone()
}

#[test]
fn health_checks_take_a_dead_upstream_out_before_any_client_waits_and_bring_it_back() {
    let _serial = serial();
    let first = Upstream::banner("first");
    let first_addr = first.addr;
    let second = Upstream::banner("second");
    let relay = TestRelay::start(Config {
        health_check: Duration::from_millis(20),
        ..to_all(&[first_addr.to_string(), second.addr.to_string()])
    });
    assert!(eventually(|| first.accepted() >= 2), "the checks connect to the upstream");
    assert_eq!(served_by(relay.addr), "first");

    // It goes away (its port now refuses): down after 3 failed checks in a row.
    drop(first);
    assert!(eventually(|| !upstream_state(&relay, first_addr).up), "never marked down");
    assert!(upstream_state(&relay, first_addr).check_failures >= 3);
    // The next client goes straight to the second upstream: no client waited on the dead
    // one (without checks, this client would have tried it first and failed).
    assert_eq!(served_by(relay.addr), "second");
    assert_eq!(settled(&relay.metrics).connect_failed, 0);
    assert_eq!(upstream_state(&relay, first_addr).failures, 0);

    // It comes back on the same port: up after 2 good checks, and first in line again.
    let revived = Upstream::banner_on(TcpListener::bind(first_addr).expect("rebind"), "first");
    assert!(eventually(|| upstream_state(&relay, first_addr).up), "never marked up again");
    assert_eq!(served_by(relay.addr), "first");
    assert!(upstream_state(&relay, second.addr).up, "the second was never down");

    // Stopping the route stops its health-check thread: not joined (a stop never waits on a
    // check in progress), it ends once its check does, bounded by the 20 ms interval.
    relay.stop();
    if cfg!(target_os = "linux") {
        // Thread names are read from /proc (tests/support/counters.rs): Linux only.
        let checking = || thread_names().iter().any(|name| name == "tcprelay-health");
        assert!(eventually(|| !checking()), "{:?}", thread_names());
    }
    drop(revived);
}

/// Whether [`resolver_out_of_descriptors`] fails, as the process would with no descriptor
/// left. The process-wide connection cap keeps clients from using up the descriptors, so
/// the test makes the dial itself meet `EMFILE`.
static OUT_OF_DESCRIPTORS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn resolver_out_of_descriptors(upstream: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
    if OUT_OF_DESCRIPTORS.load(std::sync::atomic::Ordering::SeqCst) {
        // EMFILE, or WSAEMFILE on Windows: each platform's own number for it.
        let emfile = if cfg!(windows) { 10024 } else { 24 };
        return Err(std::io::Error::from_raw_os_error(emfile));
    }
    Ok(std::net::ToSocketAddrs::to_socket_addrs(upstream)?.collect())
}

/// Out of descriptors while *dialling* is the relay's own trouble, not the upstream's: it
/// is counted as a local error, never in
/// `tcprelay_upstream_connect_failures_total`, and the first upstream is not backed off, so
/// the first client once descriptors are back goes to it at once, not to the second.
#[test]
fn out_of_descriptors_while_dialling_is_a_local_error_and_backs_no_upstream_off() {
    let _serial = serial();
    let first = Upstream::banner("first");
    let second = Upstream::banner("second");
    let relay = TestRelay::hooked(
        to_all(&[first.addr.to_string(), second.addr.to_string()]),
        tcprelay::TestHooks { resolver: resolver_out_of_descriptors, ..Default::default() },
    );

    OUT_OF_DESCRIPTORS.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(served_by(relay.addr), "", "no descriptor to dial with: closed at once");
    }
    OUT_OF_DESCRIPTORS.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(served_by(relay.addr), "first", "the first upstream was not backed off");

    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.connect_failed, 0, "no upstream is blamed for a local error");
    assert_eq!(metrics.dial_local_errors, 3);
    assert_eq!(second.accepted(), 0, "nobody was sent to the second upstream");
}
