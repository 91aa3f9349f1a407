//! What differs between platforms, checked against the platform itself: `[::]` beside
//! `0.0.0.0` on one port. Runs everywhere; under wine it is the Windows answer
//! (tests/platforms.sh, docs/targets.md "Other platforms").
#![forbid(unsafe_code)]

mod support;

use std::net::TcpListener;

use support::*;

/// `--check` refuses `[::]:P` beside `0.0.0.0:P` exactly where the operating system would:
/// where a listener on `[::]` also takes IPv4 (Linux, macOS) the second `bind` fails; where
/// it is IPv6 only (Windows, the BSDs) both bind, and one relay serves both families on one
/// port with two routes. The test asks the platform first, with real sockets, then tcprelay.
#[test]
fn check_refuses_ipv6_and_ipv4_wildcards_on_one_port_exactly_where_bind_would() {
    let v6 = TcpListener::bind("[::]:0").expect("bind [::]:0 (loopback IPv6 is part of the lab)");
    let port = v6.local_addr().expect("the listener's address").port();
    let platform_allows = TcpListener::bind(("0.0.0.0", port)).is_ok();
    drop(v6);

    let config = ConfigFile::new(
        "dual-stack.conf",
        &format!("route [::]:{port} -> 127.0.0.1:1\nroute 0.0.0.0:{port} -> 127.0.0.1:2\n"),
    );
    let output = run_tcprelay(&["--check", "--config", config.arg()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if platform_allows {
        assert_eq!(output.status.code(), Some(0), "the platform binds both; --check: {stderr}");
    } else {
        assert_eq!(output.status.code(), Some(2), "the platform refuses the second bind");
        assert!(stderr.contains("both listen on"), "{stderr}");
    }
}

/// Where `[::]` is IPv6 only, the two routes of the test above are how one relay serves
/// both families: a client on `::1` and one on `127.0.0.1` both reach the upstream.
#[test]
fn two_wildcard_routes_on_one_port_serve_both_families_where_the_platform_allows() {
    let v6 = TcpListener::bind("[::]:0").expect("bind [::]:0");
    let port = v6.local_addr().expect("the listener's address").port();
    let Ok(v4) = TcpListener::bind(("0.0.0.0", port)) else {
        println!("[::] takes IPv4 here too: one route on [::] serves both; nothing to test");
        return;
    };
    drop((v6, v4));
    let upstream = Upstream::echo();
    let config = ConfigFile::new(
        "both-families.conf",
        &format!("route [::]:{port} -> {0}\nroute 0.0.0.0:{port} -> {0}\n", upstream.addr),
    );
    let relay = RelayProcess::start_routes(&["--config", config.arg()], 2, false);
    for client in [format!("[::1]:{port}"), format!("127.0.0.1:{port}")] {
        let addr = client.parse().expect("a socket address");
        assert_eq!(echo_through(addr, b"both families"), b"both families", "{client}");
    }
    drop(relay);
}

/// Windows has no Unix datagram sockets: `--syslog unix:PATH` stops the relay at start
/// (exit 1, as a log file it cannot open does) with the reason, rather than losing every
/// line (docs/targets.md, "What each platform lacks"). On Unix, tests/log_sinks.rs.
#[test]
#[cfg(windows)]
fn syslog_to_a_unix_socket_is_refused_at_start_on_windows() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut relay = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--syslog", "unix:/dev/log"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcprelay");
    let mut stderr = relay.stderr.take().expect("its stderr");
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = sender.send(text);
    });
    // stderr closes when the relay exits; a relay that went on serving is killed.
    let stderr = receiver.recv_timeout(TIMEOUT);
    if stderr.is_err() {
        let _ = relay.kill();
    }
    let status = relay.wait().expect("wait for tcprelay");
    reader.join().expect("the stderr reader");
    let stderr = stderr.expect("tcprelay exits at start");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unix:/dev/log") && stderr.contains("no Unix domain sockets here"));
}
