//! UDP routes through the binary, as a user runs them: `-l udp:ADDR -u ADDR`, datagrams both
//! ways, replies from the address the client sent to, whole datagrams at both ends of the
//! size range, and the ways a flow ends, each told by its `flow closed` line.
//! (The adversarial and peer-program tests are in tests/udp_*.rs.)
#![forbid(unsafe_code)]

mod support;

use support::*;

/// A UDP echo upstream on 127.0.0.1 and a relay in front of it, `-l udp:127.0.0.1:0` with
/// `extra` arguments.
fn echo_and_relay(extra: &[&str]) -> (UdpEcho, RelayProcess) {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let relay = RelayProcess::start(&[&["-l", "udp:127.0.0.1:0", "-u", &upstream], extra].concat());
    (echo, relay)
}

/// Two clients at once, each with its own flow: every datagram comes back whole and in
/// order, to the client that sent it, from the relay's listening address; the upstream
/// hears each client from a socket of that flow's own, never from the client itself.
#[test]
fn datagrams_go_both_ways_and_replies_come_from_the_listening_address() {
    let (echo, relay) = echo_and_relay(&[]);
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
    let (_echo, relay) = echo_and_relay(&[]);
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
    // Long enough that the two round trips always come within it, however loaded the
    // machine: a flow cut between them would count one datagram each way.
    let (echo, relay) = echo_and_relay(&["--udp-idle-timeout", "1s"]);
    let upstream = echo.addr.to_string();
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
    assert!(duration >= 1000, "{line}");
    // The same client again: a new flow, relayed as the first was.
    let (reply, _) = udp_round_trip(&client, relay.addr, b"again");
    assert_eq!(reply, b"again");
}

/// `udp-responses 1` (a DNS route) ends the flow with its answer; the client's next query
/// makes a new flow.
#[test]
fn udp_responses_ends_the_flow_after_the_answers() {
    let (echo, relay) = echo_and_relay(&["--udp-responses", "1"]);
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

/// A client that asks again the moment its answer comes (a stub resolver reusing its port)
/// on a `udp-responses 1` route: every query is answered. The flow is out of the table
/// before its last answer goes out, so the next query makes a new flow rather than going
/// to the old flow's socket, whose thread no longer reads.
#[test]
fn udp_responses_answers_a_query_sent_right_after_the_last_answer() {
    let (_echo, relay) = echo_and_relay(&["--udp-responses", "1"]);
    let client = udp_client("127.0.0.1");
    for query in 0..200u64 {
        let sent = pattern(query, 32);
        client.send_to(&sent, relay.addr).expect("send a query");
        let answer = udp_receive(&client);
        let answer = answer.unwrap_or_else(|error| panic!("query {query} unanswered: {error}"));
        assert_eq!(answer.0, sent, "query {query}");
    }
}

/// Two queries from one port before the first answer (glibc's resolver asks for A and AAAA
/// at once): on a `udp-responses 1` route each query is answered, as nginx's
/// `proxy_responses` expects that many answers for each datagram the client sent, and each
/// flow ends with its last answer.
#[test]
fn udp_responses_counts_the_answers_to_each_query() {
    let (_echo, relay) = echo_and_relay(&["--udp-responses", "1"]);
    for round in 0..10u64 {
        let client = udp_client("127.0.0.1");
        let queries = [pattern(round * 2, 30), pattern(round * 2 + 1, 40)];
        for query in &queries {
            client.send_to(query, relay.addr).expect("send a query");
        }
        for query in &queries {
            let answer = udp_receive(&client);
            let answer = answer.unwrap_or_else(|error| panic!("round {round}: {error}"));
            assert_eq!(answer.0, *query, "round {round}: in order, each once");
        }
        // One flow for both, or two if the second query came after the first answer.
        let mut answered = 0;
        while answered < 2 {
            let line = relay.log_line_with("msg=\"flow closed\"");
            assert_eq!(log_field(&line, "reason"), "responses", "{line}");
            answered += log_field(&line, "datagrams_to_client").parse::<u32>().expect("a count");
        }
        assert_eq!(answered, 2, "round {round}");
    }
}

/// The three ways to write a UDP route that docs/operations.md ("UDP routes") opens with,
/// taken from the doc as a reader pastes them: each passes `--check`.
#[test]
fn the_udp_route_examples_of_operations_md_pass_check() {
    let doc = std::fs::read_to_string("docs/operations.md").expect("read operations.md");
    let examples = support::docs::block(&doc, "## UDP routes", "text");
    for line in examples.lines() {
        let output = match line.strip_prefix("tcprelay ") {
            Some(args) => {
                let args: Vec<&str> =
                    ["--check"].into_iter().chain(args.split_whitespace()).collect();
                run_tcprelay(&args)
            }
            None => {
                let config = ConfigFile::new("udp-example.conf", &format!("{line}\n"));
                run_tcprelay(&["--check", "--config", config.arg()])
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{line}\n{stderr}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("route udp:"), "{line}");
    }
}

/// A flow's thread, once its flow ends, parks and serves the next flow
/// (`thread-keep-alive`, as TCP connection threads do): 200 flows one after another, each
/// sampled while its thread surely waits (the upstream has its first datagram and has not
/// answered; `udp-responses 1` ends the flow at the answers), run on a handful of threads,
/// not on 200 new ones. With `--thread-keep-alive 0` the same loop sees 200 threads. (A
/// client may beat a finished thread to its park now and then and get a new thread: hence
/// a handful.)
#[test]
#[cfg(target_os = "linux")] // tells threads apart by /proc/PID/task
fn a_finished_flow_thread_serves_the_next_flow() {
    let (held, flow_waits) = std::sync::mpsc::channel();
    let held = std::sync::Mutex::new(held);
    // "hold" is not answered, only told to the test; "go" is answered twice, once for each
    // datagram of the flow, which ends it.
    let upstream = UdpUpstream::start("127.0.0.1:0", move |socket, datagram, from, sent| {
        if datagram == b"hold" {
            let _ = held.lock().expect("the test holds no lock").send(());
        } else {
            sent.send(socket, b"one", from);
            sent.send(socket, b"two", from);
        }
    });
    let upstream_addr = upstream.addr.to_string();
    let relay = RelayProcess::start(&[
        "-l",
        "udp:127.0.0.1:0",
        "-u",
        &upstream_addr,
        "--udp-responses",
        "1",
    ]);
    let task_ids = || -> std::collections::BTreeSet<String> {
        let tasks = std::fs::read_dir(proc_file(format!("/proc/{}/task", relay.pid())));
        let tasks = tasks.expect("read the relay's /proc/PID/task");
        tasks
            .filter_map(|task| Some(task.ok()?.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    let before = task_ids();
    let mut serving = std::collections::BTreeSet::new();
    for n in 0..200 {
        let client = udp_client("127.0.0.1");
        client.send_to(b"hold", relay.addr).expect("send to the relay");
        flow_waits.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("flow {n} never reached"));
        // The flow's thread sent "hold" and waits for the answers: it is alive now.
        serving.extend(task_ids().difference(&before).cloned());
        client.send_to(b"go", relay.addr).expect("send to the relay");
        for answer in [&b"one"[..], b"two"] {
            let got = udp_receive(&client).unwrap_or_else(|error| panic!("flow {n}: {error}"));
            assert_eq!(got.0, answer, "flow {n}");
        }
    }
    assert!(serving.len() <= 20, "200 flows ran on {} threads: {serving:?}", serving.len());
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

/// An upstream whose port is closed answers with an ICMP port unreachable: the flow ends
/// (`reason=upstream_error`) and the upstream backs off as a failed TCP connect does, so
/// the client's next datagram goes to the route's next upstream and is answered.
#[test]
#[cfg_attr(
    windows,
    ignore = "under wine 8.0 the ICMP port unreachable never reaches the flow's connected socket"
)]
fn a_closed_upstream_port_ends_the_flow_and_the_next_flow_fails_over() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a port to close");
    let closed_addr = closed.local_addr().expect("its address").to_string();
    drop(closed);
    let echo = UdpEcho::start("127.0.0.1");
    let upstreams = format!("{closed_addr},{}", echo.addr);
    let relay = RelayProcess::start(&["-l", "udp:127.0.0.1:0", "-u", &upstreams]);
    let client = udp_client("127.0.0.1");
    client.send_to(b"lost", relay.addr).expect("send");
    let line = relay.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&line, "reason"), "upstream_error", "{line}");
    assert_eq!(log_field(&line, "upstream"), closed_addr, "{line}");
    assert_eq!(udp_round_trip(&client, relay.addr, b"answered").0, b"answered");
    assert_eq!(echo.senders().len(), 1);
}

/// The same closed port, told to a send rather than to the flow's receive: two datagrams
/// back to back, the second sent after the first's ICMP port unreachable came, so its send
/// is the call that hears of it. The flow still ends at once (`upstream_error`), not after
/// `udp-idle-timeout`, and its upstream backs off; each client's second datagram is dropped
/// (`send_failed`), never sent.
#[test]
fn a_closed_upstream_port_told_to_a_send_still_ends_the_flow() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a port to close");
    let closed_addr = closed.local_addr().expect("its address").to_string();
    drop(closed);
    // Ten minutes: a flow that waited for it would outlast the test's wait for its line.
    let args = ["-l", "udp:127.0.0.1:0", "-u", &closed_addr, "--udp-idle-timeout", "10m"];
    let relay = RelayProcess::start(&args);
    let clients: Vec<_> = (0..4).map(|_| udp_client("127.0.0.1")).collect();
    for client in &clients {
        for datagram in [&b"first"[..], b"second"] {
            client.send_to(datagram, relay.addr).expect("send");
        }
    }
    for _ in &clients {
        let line = relay.log_line_with("msg=\"flow closed\"");
        assert_eq!(log_field(&line, "reason"), "upstream_error", "{line}");
        assert!(line.contains("Connection refused"), "{line}");
    }
}

/// A reload keeps a UDP route running: unchanged, it is counted as such; changed, it is
/// named as changed (its new flows take the new settings: tests/udp_operations.rs).
#[test]
fn a_reload_keeps_udp_routes_running_and_names_a_changed_one() {
    let echo = UdpEcho::start("127.0.0.1");
    let route = format!("admin 127.0.0.1:0\nroute udp:127.0.0.1:0 -> {} name=dns\n", echo.addr);
    let file = ConfigFile::new("udp-reload", &route);
    let relay = RelayProcess::start_routes(&["--config", file.arg()], 1, true);
    let client = udp_client("127.0.0.1");
    assert_eq!(udp_round_trip(&client, relay.addr, b"before").0, b"before");
    let admin = relay.admin.expect("an admin endpoint").to_string();
    let reload = || run_tcprelay(&["reload", "--admin", &admin]);
    let unchanged = reload();
    assert_eq!(unchanged.status.code(), Some(0), "{unchanged:?}");
    assert!(String::from_utf8_lossy(&unchanged.stdout).contains("changed none; 1 unchanged"));
    file.write(&route.replace("name=dns", "name=dns udp-responses=1"));
    let changed = reload();
    let said = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(0), "{changed:?}");
    assert!(said.contains(&format!("changed dns(udp:{})", relay.addr)), "{said}");
    assert_eq!(udp_round_trip(&client, relay.addr, b"after").0, b"after");
}

/// A burst as a new flow's first datagrams (they wait while its upstream socket is
/// connected, then go out before any later one): every datagram arrives, once, in order.
#[test]
fn a_burst_on_a_new_flow_arrives_whole_and_in_order() {
    let (echo, relay) = echo_and_relay(&[]);
    let client = udp_client("127.0.0.1");
    let burst: Vec<Vec<u8>> = (0..50).map(|n| pattern(n, 100 + n as usize)).collect();
    for datagram in &burst {
        client.send_to(datagram, relay.addr).expect("send");
    }
    for (n, sent) in burst.iter().enumerate() {
        let (reply, _) = udp_receive(&client).unwrap_or_else(|e| panic!("reply {n}: {e}"));
        assert_eq!(checksum(&reply), checksum(sent), "reply {n} is datagram {n}");
    }
    assert_eq!(echo.senders().len(), 50);
}

/// Few descriptors (`ulimit -n 24`): the process-wide cap holds two flows per connection it
/// has room for; a client beyond them is dropped and counted (`process_limit`), never an
/// abort, and the flows already open go on.
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -n: no shell or descriptor limit on Windows")]
fn few_descriptors_drop_new_flows_and_keep_the_open_ones() {
    let echo = UdpEcho::start("127.0.0.1");
    let upstream = echo.addr.to_string();
    let mut relay =
        RelayProcess::start_with_fd_limit(24, &["-l", "udp:127.0.0.1:0", "-u", &upstream]);
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let room = 2 * cap; // a flow is half a connection
    assert!((1..=16).contains(&room), "a few flows fit under 24 descriptors: {room}");
    // 127.0.0.1 is loopback: the default per-client share does not count it.
    let open: Vec<_> = (0..room).map(|_| udp_client("127.0.0.1")).collect();
    for (n, client) in open.iter().enumerate() {
        let sent = format!("flow {n}");
        assert_eq!(udp_round_trip(client, relay.addr, sent.as_bytes()).0, sent.as_bytes());
    }
    let late = udp_client("127.0.0.1");
    late.send_to(b"no room", relay.addr).expect("send");
    let dropped = relay.log_line_with("msg=\"datagram dropped\"");
    assert_eq!(log_field(&dropped, "reason"), "process_limit", "{dropped}");
    for client in &open {
        assert_eq!(udp_round_trip(client, relay.addr, b"still").0, b"still");
    }
    assert!(relay.is_running());
    assert_eq!(echo.senders().len(), 2 * room, "the late client never reached the upstream");
}

/// A UDP route on a wildcard address cannot choose the source of its replies (std has no
/// `IP_PKTINFO`): a client that sent to a second address of the host hears from another
/// one and drops the reply. The relay says so at start, naming the route, and still serves
/// clients of the address the kernel picks.
#[test]
fn a_wildcard_udp_listener_warns_that_replies_leave_from_the_kernels_choice() {
    let upstream = UdpUpstream::echo();
    let upstream_addr = upstream.addr.to_string();
    let relay = udp_relay(&["-l", "udp:0.0.0.0:0", "-u", &upstream_addr]);
    let warning = relay.log_line_with("a UDP route on a wildcard address");
    assert!(warning.contains("level=warn"), "{warning}");
    let listen = format!("listen=udp:0.0.0.0:{}", relay.addr.port());
    assert!(warning.contains(&listen), "{warning}");
    let client = udp_client("127.0.0.1");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], relay.addr.port()));
    assert_eq!(text(&request(&client, to, b"hello")), "hello");
}
