//! Where a UDP datagram or flow ends at the edges (issue #27): a datagram too large to carry
//! whole is dropped, logged and counted either way, while the largest and the empty ones
//! are counted to the byte; a drain's timeout ends a flow that would outlive it
//! (`reason=drain`) while another finishes by itself. tests/udp_operations.rs has the
//! rest of the metrics, reload and drain.

mod support;

use support::*;

/// Over IPv6 a 65,508-byte datagram can be sent but not relayed whole: from the client or
/// from the upstream, it is dropped with a `datagram dropped ... reason=too_large` line and
/// counted in `tcprelay_udp_drops_total{cause="too_large"}`; the 0-byte and 65,507-byte
/// datagrams around it are relayed and counted to the byte.
#[test]
fn too_large_datagrams_are_logged_and_counted_and_the_largest_and_empty_ones_are_counted() {
    let too_large = vec![b'x'; LARGEST_DATAGRAM + 1];
    let upstream = UdpUpstream::start("[::1]:0", {
        let too_large = too_large.clone();
        move |socket, datagram, from, sent| {
            let reply: &[u8] = if datagram == b"big" { &too_large } else { datagram };
            sent.send(socket, reply, from);
        }
    });
    let upstream_addr = upstream.addr.to_string();
    let args = ["-l", "udp:[::1]:0", "-u", &upstream_addr, "--admin", "127.0.0.1:0"];
    let relay = RelayProcess::start_routes(&args, 1, true);
    let client = udp_client("::1");

    client.send_to(&too_large, relay.addr).expect("IPv6 carries 65,508 bytes");
    let line = relay.log_line_with("msg=\"datagram dropped\"");
    assert_eq!(logfmt_field(&line, "reason").as_deref(), Some("too_large"), "{line}");
    client.send_to(b"big", relay.addr).expect("send to the relay");
    let largest = pattern(1, LARGEST_DATAGRAM);
    for datagram in [&b""[..], &largest] {
        assert!(request(&client, relay.addr, datagram) == datagram, "{} bytes", datagram.len());
    }

    let too_large_drops = ["cause=\"too_large\""];
    let drops = || metric_sum(&metrics_of(&relay), "tcprelay_udp_drops_total", &too_large_drops);
    assert!(eventually(|| drops() == 2), "too_large drops: {} of 2", drops());
    let page = metrics_of(&relay);
    let bytes_to_upstream = 3 + LARGEST_DATAGRAM as u64;
    let to_upstream = ["direction=\"to_upstream\""];
    assert_eq!(metric_sum(&page, "tcprelay_udp_datagrams_total", &to_upstream), 3, "{page}");
    assert_eq!(metric_sum(&page, "tcprelay_udp_bytes_total", &to_upstream), bytes_to_upstream);
    let to_client = ["direction=\"to_client\""];
    assert!(
        eventually(
            || metric_sum(&metrics_of(&relay), "tcprelay_udp_datagrams_total", &to_client) == 2
        ),
        "the big reply is not counted as sent: {}",
        metrics_of(&relay)
    );
    let page = metrics_of(&relay);
    assert_eq!(metric_sum(&page, "tcprelay_udp_bytes_total", &to_client), LARGEST_DATAGRAM as u64);
}

/// During a drain a flow whose idle timeout comes first ends by itself
/// (`reason=idle_timeout`); one that would outlive `drain-timeout` is ended then
/// (`reason=drain`); then the relay exits 0.
#[test]
fn a_drain_ends_a_flow_that_would_outlive_drain_timeout_and_lets_a_shorter_one_finish() {
    let (short, long) = (UdpUpstream::echo(), UdpUpstream::echo());
    let config = format!(
        "admin 127.0.0.1:0\ndrain-timeout 3s\n\
         route udp:127.0.0.1:0 -> {} name=short udp-idle-timeout=200ms\n\
         route udp:127.0.0.1:0 -> {} name=long udp-idle-timeout=1h\n",
        short.addr, long.addr
    );
    let file = ConfigFile::new("udp-drain-timeout.conf", &config);
    let mut relay = RelayProcess::start_routes(&["--config", file.arg()], 2, true);
    let (short_client, long_client) = (udp_client("127.0.0.1"), udp_client("127.0.0.1"));
    request(&long_client, relay.routes[1], b"long");
    request(&short_client, relay.routes[0], b"short");

    let (status, body) = http_post(relay.admin.expect("an admin endpoint"), "/drain");
    assert_eq!(status, 200, "{body}");
    let mut flows = [FlowLine::next(&relay), FlowLine::next(&relay)];
    flows.sort_by_key(|flow| flow.field("reason"));
    assert_eq!(flows[0].field("reason"), "drain", "{flows:?}");
    assert_eq!(flows[0].field("client"), long_client.local_addr().expect("bound").to_string());
    assert_eq!(flows[1].field("reason"), "idle_timeout", "{flows:?}");
    assert_eq!(relay.wait_for_exit(), Some(0), "the drained relay exits cleanly");
}
