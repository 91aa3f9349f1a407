//! UDP routes through the binary, as a user runs them: `-l udp:ADDR -u ADDR`, datagrams both
//! ways, replies from the address the client sent to, whole datagrams at both ends of the
//! size range, and the ways a flow ends, each told by its `flow closed` line.
//! (The adversarial and peer-program tests are in tests/udp_*.rs.)
#![forbid(unsafe_code)]

mod support;

use support::*;

/// Two clients at once, each with its own flow: every datagram comes back whole and in
/// order, to the client that sent it, from the relay's listening address; the upstream
/// hears each client from a socket of that flow's own, never from the client itself.
#[test]
fn datagrams_go_both_ways_and_replies_come_from_the_listening_address() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let relay = RelayProcess::start(&["-l", "udp:127.0.0.1:0", "-u", &upstream]);
    let (first, second) = (udp_client("127.0.0.1"), udp_client("127.0.0.2"));
    for round in 0..5 {
        for (index, client) in [&first, &second].into_iter().enumerate() {
            let sent = pattern(round * 2 + index as u64, 100 + 300 * round as usize);
            let (reply, from) = udp_round_trip(client, relay.addr, &sent);
            assert_eq!(from, relay.addr, "the reply comes from the address the client sent to");
            assert_eq!(checksum(&reply), checksum(&sent), "round {round}, client {index}");
            assert_eq!(reply.len(), sent.len());
        }
    }
    let senders = echo.senders();
    assert_eq!(senders.len(), 10);
    let clients = [first.local_addr().unwrap(), second.local_addr().unwrap()];
    assert!(senders.iter().all(|sender| !clients.contains(sender)), "{senders:?}");
    // One upstream socket per flow: two senders, each used for its client's five.
    let mut distinct = senders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{senders:?}");
    assert!(senders.chunks(2).all(|pair| pair[0] == senders[0] && pair[1] == senders[1]));
}

/// The edges of the size range go through whole: an empty datagram and the largest UDP
/// payload over IPv4, 65,507 bytes.
#[test]
fn empty_and_largest_datagrams_are_relayed_whole() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let relay = RelayProcess::start(&["-l", "udp:127.0.0.1:0", "-u", &upstream]);
    let client = udp_client("127.0.0.1");
    for len in [0, 1, 1472, 65_507, 0] {
        let sent = pattern(len as u64, len);
        let (reply, _) = udp_round_trip(&client, relay.addr, &sent);
        assert_eq!((reply.len(), checksum(&reply)), (len, checksum(&sent)), "{len} bytes");
    }
}

/// A datagram longer than 65,507 bytes (possible over IPv6) would be cut by the relay's
/// buffer: it is dropped, counted and logged, never forwarded cut, and the client's next
/// datagram still goes through.
#[test]
fn a_datagram_too_large_to_relay_is_dropped_and_logged() {
    let echo = UdpEcho::start("::1");
    let upstream = echo.addr.to_string();
    let relay = RelayProcess::start(&["-l", "udp:[::1]:0", "-u", &upstream]);
    let client = udp_client("::1");
    client.send_to(&pattern(1, 65_508), relay.addr).expect("IPv6 carries 65,508 bytes");
    let line = relay.log_line_with("msg=\"datagram dropped\"");
    assert_eq!(log_field(&line, "reason"), "too_large", "{line}");
    let (reply, _) = udp_round_trip(&client, relay.addr, b"after");
    assert_eq!(reply, b"after");
    assert!(echo.senders().len() == 1, "only the small datagram reached the upstream");
}

/// A flow with no datagram either way for `udp-idle-timeout` ends, with one `flow closed`
/// line that counts what it relayed each way.
#[test]
fn an_idle_flow_ends_and_its_line_counts_both_ways() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let args = ["-l", "udp:127.0.0.1:0", "-u", &upstream, "--udp-idle-timeout", "200ms"];
    let relay = RelayProcess::start(&args);
    let client = udp_client("127.0.0.1");
    udp_round_trip(&client, relay.addr, b"one");
    udp_round_trip(&client, relay.addr, b"three");
    let line = relay.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&line, "reason"), "idle_timeout", "{line}");
    assert_eq!(log_field(&line, "client"), client.local_addr().unwrap().to_string());
    assert_eq!(log_field(&line, "upstream"), upstream);
    for (field, value) in [
        ("datagrams_to_upstream", "2"),
        ("bytes_to_upstream", "8"),
        ("datagrams_to_client", "2"),
        ("bytes_to_client", "8"),
    ] {
        assert_eq!(log_field(&line, field), value, "{field}: {line}");
    }
    let duration: u64 = log_field(&line, "duration_ms").parse().expect("a number");
    assert!(duration >= 200, "{line}");
    // The same client again: a new flow, relayed as the first was.
    let (reply, _) = udp_round_trip(&client, relay.addr, b"again");
    assert_eq!(reply, b"again");
}

/// `udp-responses 1` (a DNS route) ends the flow with its answer; the client's next query
/// makes a new flow.
#[test]
fn udp_responses_ends_the_flow_after_the_answers() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let args = ["-l", "udp:127.0.0.1:0", "-u", &upstream, "--udp-responses", "1"];
    let relay = RelayProcess::start(&args);
    let client = udp_client("127.0.0.1");
    assert_eq!(udp_round_trip(&client, relay.addr, b"query 1").0, b"query 1");
    let first = relay.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&first, "reason"), "responses", "{first}");
    assert_eq!(log_field(&first, "datagrams_to_client"), "1", "{first}");
    assert_eq!(udp_round_trip(&client, relay.addr, b"query 2").0, b"query 2");
    let second = relay.log_line_with("msg=\"flow closed\"");
    assert_ne!(log_field(&first, "flow"), log_field(&second, "flow"));
    // Each flow had its own upstream socket.
    let senders = echo.senders();
    assert_eq!(senders.len(), 2);
    assert_ne!(senders[0], senders[1]);
}

/// `--check` prints a UDP route in the config file's own form, and refuses with exit 2,
/// naming the setting and the value, what cannot work over UDP.
#[test]
fn check_prints_udp_routes_and_refuses_what_udp_cannot_do() {
    let output = run_tcprelay(&["--check", "-l", "udp:127.0.0.1:5353", "-u", "udp:127.0.0.1:53"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("route udp:127.0.0.1:5353 -> udp:127.0.0.1:53 "), "{stdout}");
    assert!(stdout.contains(" udp-idle-timeout=1m udp-responses=0 max-flows=500 "), "{stdout}");
    let refused: [(&[&str], &str); 5] = [
        (&["-l", ":5353", "-u", "udp:127.0.0.1:53"], "udp:127.0.0.1:53 is a UDP upstream"),
        (&["-l", "udp::5353", "-u", "unix:/run/dns.sock"], "cannot relay to unix:/run/dns.sock"),
        (&["--route", "udp::5353=:53", "--proxy-protocol", "v2"], "proxy-protocol: not on udp"),
        (&["--route", "udp::5353=:53", "--accept-proxy"], "accept-proxy: not on udp"),
        (&["-l", "udp:127.0.0.1", "-u", ":53"], "\"udp:127.0.0.1\""),
    ];
    for (args, expected) in refused {
        let output = run_tcprelay(&[&["--check"], args].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A drain (`POST /drain`, as `tcprelay drain` and a stop by systemd send it) makes no new
/// flow but keeps relaying for the open ones until `drain-timeout`; then they end with
/// `reason=drain` and the process exits 0.
#[test]
fn a_drain_keeps_open_flows_then_ends_them_and_exits() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let args = ["-l", "udp:127.0.0.1:0", "-u", &upstream, "--admin", "127.0.0.1:0"];
    // Long enough that the steps below always come first, however loaded the machine.
    let mut relay =
        RelayProcess::start_routes(&[&args[..], &["--drain-timeout", "5s"]].concat(), 1, true);
    let open = udp_client("127.0.0.1");
    assert_eq!(udp_round_trip(&open, relay.addr, b"before").0, b"before");
    let (status, _) = http_post(relay.admin.expect("an admin endpoint"), "/drain");
    assert_eq!(status, 200);
    assert_eq!(udp_round_trip(&open, relay.addr, b"during").0, b"during");
    let newcomer = udp_client("127.0.0.2");
    newcomer.send_to(b"too late", relay.addr).expect("send");
    let dropped = relay.log_line_with("msg=\"datagram dropped\"");
    assert_eq!(log_field(&dropped, "reason"), "draining", "{dropped}");
    let closed = relay.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&closed, "reason"), "drain", "{closed}");
    assert_eq!(log_field(&closed, "datagrams_to_client"), "2", "{closed}");
    assert_eq!(relay.wait_for_exit(), Some(0));
    assert_eq!(echo.senders().len(), 2, "the newcomer's datagram never reached the upstream");
}

/// A library user's `Relay` is TCP: a UDP route's `Config` is refused, not bound as TCP.
#[test]
fn a_relay_refuses_a_udp_config() {
    let config = tcprelay::Config {
        udp: true,
        upstream: "127.0.0.1:9".to_string(),
        ..tcprelay::Config::default()
    };
    let error = tcprelay::Relay::bind(config).expect_err("a UDP route is not a Relay's");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("udp:127.0.0.1:0"), "{error}");
}
