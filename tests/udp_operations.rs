//! Operating UDP routes (issue 27, "Operations"): `/metrics` after known traffic, `tcprelay
//! status`, a reload that keeps an unchanged route's flows and ends a removed route's, a
//! drain that lets flows finish and exits 0, and a process out of descriptors that drops
//! and counts instead of aborting. Every test runs the binary, as an operator would, with
//! UDP echo upstreams on 127.0.0.1 that answer with the address they were sent from (the
//! flow's own upstream socket), so a test can tell which socket relayed each datagram.
#![cfg(unix)]
#![forbid(unsafe_code)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::*;

/// A UDP upstream on 127.0.0.1 that answers each datagram with `NAME FROM PAYLOAD`: its
/// name, the address the datagram came from (the relay's socket for that flow), and the
/// datagram itself. Stopped and joined when dropped.
struct NamedEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NamedEcho {
    fn start(name: &'static str) -> NamedEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP upstream on 127.0.0.1");
        let addr = socket.local_addr().expect("the UDP upstream's address");
        // Wakes every 50 ms to see whether the test is over.
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buffer = vec![0; 65_536];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else { continue };
                let mut answer = format!("{name} {from} ").into_bytes();
                answer.extend_from_slice(&buffer[..len]);
                let _ = socket.send_to(&answer, from);
            }
        });
        NamedEcho { addr, stop, thread: Some(thread) }
    }
}

impl Drop for NamedEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `payload` to `relay` and waits for the answer: `(upstream name, the flow's upstream
/// socket as the upstream saw it)`. Asserts that the answer comes from the relay's own
/// address (the client sees replies from where it sent) and carries the payload back.
fn ask(client: &UdpSocket, relay: SocketAddr, payload: &str) -> (String, String) {
    client.send_to(payload.as_bytes(), relay).expect("send a datagram to the relay");
    let mut buffer = [0; 2048];
    let (len, from) = client.recv_from(&mut buffer).unwrap_or_else(|e| {
        panic!("no answer to {payload:?} through {relay} within {TIMEOUT:?}: {e}")
    });
    assert_eq!(from, relay, "the answer to {payload:?} must come from the listening address");
    let answer = String::from_utf8_lossy(&buffer[..len]).into_owned();
    let mut words = answer.splitn(3, ' ');
    let (name, socket, echoed) = (words.next(), words.next(), words.next());
    assert_eq!(echoed, Some(payload), "the upstream's answer: {answer:?}");
    (name.unwrap_or_default().to_string(), socket.unwrap_or_default().to_string())
}

/// The relay started from `file`: reads its `listening on` lines and its admin endpoint's.
struct Relay {
    process: RelayProcess,
    /// Each route's label (`route=`) and address, as the `listening on` lines came.
    routes: Vec<(String, SocketAddr)>,
    admin: SocketAddr,
}

impl Relay {
    fn start(file: &ConfigFile, routes: usize) -> Relay {
        Relay::start_with_ulimit("", file, routes)
    }

    /// Under the shell's `ulimit ULIMIT` when it is not empty.
    fn start_with_ulimit(ulimit: &str, file: &ConfigFile, routes: usize) -> Relay {
        let args = ["--config", file.arg()];
        let process = match ulimit {
            "" => RelayProcess::start_logging_elsewhere(&args),
            ulimit => RelayProcess::start_with_ulimit(ulimit, &args, 0, false),
        };
        let routes = (0..routes).map(|_| {
            let line = process.log_line_with("listening on ");
            (log_field(&line, "route").to_string(), listening_addr(&line))
        });
        let routes = routes.collect();
        let admin = process.log_line_with("admin endpoint on http://");
        let admin = after(&admin, "admin endpoint on http://").trim_end_matches('/').parse();
        Relay { routes, admin: admin.expect("the admin endpoint's address"), process }
    }

    /// The address of the route labelled `name`.
    fn route(&self, name: &str) -> SocketAddr {
        let found = self.routes.iter().find(|(label, _)| label == name);
        found.unwrap_or_else(|| panic!("no route {name} in {:?}", self.routes)).1
    }

    fn metrics(&self) -> String {
        let (status, body) = http_get(self.admin, "/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of the sample `name{labels}` in `/metrics`.
    fn metric(&self, sample: &str) -> u64 {
        let metrics = self.metrics();
        let line = metrics.lines().find(|line| line.starts_with(&format!("{sample} ")));
        let value = line.and_then(|line| line.rsplit(' ').next()?.parse().ok());
        value.unwrap_or_else(|| panic!("no {sample} in /metrics:\n{metrics}"))
    }

    fn client(&self, action: &str) -> Output {
        run_tcprelay(&[action, "--admin", &self.admin.to_string()])
    }

    /// `tcprelay reload`, which must succeed; what it printed.
    fn reload(&self) -> String {
        let output = self.client("reload");
        assert_eq!(output.status.code(), Some(0), "reload: {}", text(&output.stderr));
        text(&output.stdout)
    }

    fn status(&self) -> String {
        let output = self.client("status");
        assert_eq!(output.status.code(), Some(0), "status: {}", text(&output.stderr));
        text(&output.stdout)
    }
}

/// The text after `marker` in `line`, to the next space or quote.
fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    let rest = line.split(marker).nth(1).unwrap_or_else(|| panic!("no {marker:?} in {line}"));
    rest.split(['"', ' ']).next().unwrap_or_default()
}

/// The address of a `listening on ADDR` or `listening on udp:ADDR` line.
fn listening_addr(line: &str) -> SocketAddr {
    let addr = after(line, "listening on ");
    let addr = addr.strip_prefix("udp:").unwrap_or(addr);
    addr.parse().unwrap_or_else(|e| panic!("no address in {line:?}: {e}"))
}

/// A config file's text: an admin endpoint on an ephemeral port, `log-level info`, then
/// `lines` (routes, process settings).
fn config(lines: &[String]) -> String {
    let mut text = String::from("admin 127.0.0.1:0\nlog-level info\n");
    lines.iter().for_each(|line| text.push_str(&format!("{line}\n")));
    text
}

#[test]
fn metrics_count_flows_datagrams_bytes_and_drops_of_known_traffic() {
    let echo = NamedEcho::start("echo");
    let file = ConfigFile::new(
        "udp-metrics.conf",
        &config(&[format!("route udp:127.0.0.1:0 -> {} name=dns deny=127.0.0.2", echo.addr)]),
    );
    let relay = Relay::start(&file, 1);
    let route = relay.route("dns");
    // Two flows: 3 + 2 datagrams of known sizes, each answered (paced, so none is lost).
    let (one, two) = (udp_client("127.0.0.1"), udp_client("127.0.0.1"));
    let mut to_upstream = 0;
    let mut to_client = 0;
    for (client, payload) in [(&one, "a"), (&one, "bb"), (&two, "ccc"), (&one, "dddd"), (&two, "")]
    {
        let (_, socket) = ask(client, route, payload);
        to_upstream += payload.len();
        to_client += format!("echo {socket} {payload}").len();
    }
    // A denied client: dropped before a flow exists, counted (below).
    udp_client("127.0.0.2").send_to(b"denied", route).expect("send from 127.0.0.2");

    let denied = "tcprelay_udp_drops_total{route=\"dns\",cause=\"denied\"}";
    assert!(eventually(|| relay.metric(denied) == 1), "{}", relay.metrics());
    assert_eq!(relay.metric("tcprelay_udp_flows_open{route=\"dns\"}"), 2);
    let sample = |name: &str, direction: &str| {
        relay.metric(&format!("{name}{{route=\"dns\",direction=\"{direction}\"}}"))
    };
    assert_eq!(sample("tcprelay_udp_datagrams_total", "to_upstream"), 5);
    assert_eq!(sample("tcprelay_udp_bytes_total", "to_upstream"), to_upstream as u64);
    // A reply is counted just after it is sent, so possibly after the client read it.
    assert!(eventually(|| sample("tcprelay_udp_datagrams_total", "to_client") == 5));
    assert_eq!(sample("tcprelay_udp_bytes_total", "to_client"), to_client as u64);
    let metrics = relay.metrics();
    for reason in ["idle_timeout", "responses", "drain", "stop", "upstream_error", "removed"] {
        let sample =
            format!("tcprelay_udp_flows_closed_total{{route=\"dns\",reason=\"{reason}\"}} 0\n");
        assert!(metrics.contains(&sample), "{sample} in\n{metrics}");
    }
    // The UDP route is in none of the TCP routes' families.
    assert!(!metrics.contains("tcprelay_connections_accepted_total{route=\"dns\"}"), "{metrics}");
}

#[test]
fn a_flow_ended_by_its_responses_is_logged_and_counted_once() {
    let echo = NamedEcho::start("echo");
    let file = ConfigFile::new(
        "udp-responses.conf",
        &config(&[format!("route udp:127.0.0.1:0 -> {} name=dns udp-responses=1", echo.addr)]),
    );
    let relay = Relay::start(&file, 1);
    let client = udp_client("127.0.0.1");
    let (_, socket) = ask(&client, relay.route("dns"), "query");
    let line = relay.process.log_line_with("msg=\"flow closed\"");
    assert_eq!(
        log_field(&line, "client"),
        client.local_addr().expect("the client's address").to_string()
    );
    assert_eq!(log_field(&line, "upstream"), echo.addr.to_string());
    for (name, value) in [
        ("datagrams_to_upstream", "1".to_string()),
        ("bytes_to_upstream", "5".to_string()),
        ("datagrams_to_client", "1".to_string()),
        ("bytes_to_client", format!("echo {socket} query").len().to_string()),
        ("reason", "responses".to_string()),
    ] {
        assert_eq!(log_field(&line, name), value, "{name} in {line}");
    }
    assert!(log_field(&line, "duration_ms").parse::<u64>().is_ok(), "{line}");
    assert_eq!(
        relay.metric("tcprelay_udp_flows_closed_total{route=\"dns\",reason=\"responses\"}"),
        1
    );
    assert_eq!(relay.metric("tcprelay_udp_flows_open{route=\"dns\"}"), 0);
}

#[test]
fn status_shows_udp_routes_their_flows_and_upstreams() {
    let echo = NamedEcho::start("echo");
    let tcp = Upstream::echo();
    let file = ConfigFile::new(
        "udp-status.conf",
        &config(&[
            format!("route udp:127.0.0.1:0 -> {} name=dns", echo.addr),
            format!("route 127.0.0.1:0 -> {} name=web", tcp.addr),
        ]),
    );
    let relay = Relay::start(&file, 2);
    let (dns, web) = (relay.route("dns"), relay.route("web"));
    for client in [udp_client("127.0.0.1"), udp_client("127.0.0.1")] {
        ask(&client, dns, "hello");
    }
    let expected = format!(
        "route dns listen=udp:{dns} flows=2 state=serving\n  upstream {} up flows=2\n\
         route web listen={web} connections=0 state=serving\n  upstream {} up connections=0\n",
        echo.addr, tcp.addr
    );
    assert_eq!(relay.status(), expected);
}

/// A global `health-check` (for the file's TCP routes) runs no check on a UDP route, whose
/// upstreams take no connection: there, as without it, a closed port marks its upstream
/// down in `status`, rather than leaving it `up` for checks that never come.
#[test]
fn a_closed_udp_upstream_shows_down_under_a_global_health_check() {
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind a port to close");
    let closed_addr = closed.local_addr().expect("its address");
    drop(closed);
    let file = ConfigFile::new(
        "udp-health.conf",
        &config(&[
            "health-check 1s".to_string(),
            format!("route udp:127.0.0.1:0 -> {closed_addr} name=dns"),
        ]),
    );
    let relay = Relay::start(&file, 1);
    let client = udp_client("127.0.0.1");
    client.send_to(b"anyone?", relay.route("dns")).expect("send a datagram to the relay");
    let closed_line = relay.process.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&closed_line, "reason"), "upstream_error", "{closed_line}");
    let status = relay.status();
    assert!(status.contains(&format!("upstream {closed_addr} down ")), "{status}");
}

#[test]
fn a_reload_keeps_an_unchanged_routes_flows_and_a_changed_route_sends_new_flows_on() {
    let (old, new) = (NamedEcho::start("old"), NamedEcho::start("new"));
    let kept = format!("route udp:127.0.0.1:0 -> {} name=kept", old.addr);
    let changed = |to: SocketAddr| format!("route udp:127.0.0.1:0 -> {to} name=changed");
    let file = ConfigFile::new("udp-reload.conf", &config(&[kept.clone(), changed(old.addr)]));
    let relay = Relay::start(&file, 2);
    let (kept_addr, changed_addr) = (relay.route("kept"), relay.route("changed"));
    let (on_kept, on_changed) = (udp_client("127.0.0.1"), udp_client("127.0.0.1"));
    let before_kept = ask(&on_kept, kept_addr, "before");
    let before_changed = ask(&on_changed, changed_addr, "before");

    file.write(&config(&[kept, changed(new.addr)]));
    let summary = relay.reload();
    assert!(summary.contains("changed changed(udp:"), "{summary}");
    assert!(summary.contains("1 unchanged"), "{summary}");

    // The same client sockets get answers from the same upstream sockets: their flows went on.
    assert_eq!(ask(&on_kept, kept_addr, "after"), before_kept);
    assert_eq!(ask(&on_changed, changed_addr, "after"), before_changed);
    // A new flow of the changed route takes its new upstream.
    let (upstream, _) = ask(&udp_client("127.0.0.1"), changed_addr, "new flow");
    assert_eq!(upstream, "new");
    assert_eq!(
        relay.process.log_count("msg=\"flow closed\""),
        0,
        "{:#?}",
        relay.process.log_lines()
    );
}

/// A reload that lowers `max-flows` ends no flow: the open one goes on, and a new client is
/// dropped (`max_flows`) while the route holds the new limit.
#[test]
fn a_reload_that_lowers_max_flows_keeps_open_flows_and_drops_new_ones() {
    let echo = NamedEcho::start("echo");
    let route =
        |max: u32| format!("route udp:127.0.0.1:0 -> {} name=dns max-flows={max}", echo.addr);
    let file = ConfigFile::new("udp-max-flows.conf", &config(&[route(2)]));
    let relay = Relay::start(&file, 1);
    let dns = relay.route("dns");
    let open = udp_client("127.0.0.1");
    let before = ask(&open, dns, "before");

    file.write(&config(&[route(1)]));
    assert!(relay.reload().contains("changed dns(udp:"));
    udp_client("127.0.0.1").send_to(b"over the limit", dns).expect("send to the relay");
    let drops = "tcprelay_udp_drops_total{route=\"dns\",cause=\"max_flows\"}";
    assert!(eventually(|| relay.metric(drops) == 1), "{}", relay.metrics());
    assert_eq!(ask(&open, dns, "after"), before);
}

/// Every flow's thread and socket, and a removed route's own, are given back: flows that
/// go idle leave the counts where they were, and a reload that removes a route with open
/// flows leaves one thread and one descriptor fewer than before its first flow (its
/// receive thread and its socket), read from /proc/PID/task and /proc/PID/fd.
#[test]
fn threads_and_descriptors_come_back_after_an_idle_timeout_and_a_removal() {
    if let Some(emulator) = emulator() {
        // qemu opens descriptors of its own in the relay's process (2 more, once, on armv7).
        eprintln!("skipped under {emulator}: the emulator's own descriptors move the count");
        return;
    }
    let echo = NamedEcho::start("echo");
    // thread-keep-alive=0: a flow's thread that parked for the next flow would count here.
    let gone = format!("route udp:127.0.0.1:0 -> {} name=gone thread-keep-alive=0", echo.addr);
    let stays = format!(
        "route udp:127.0.0.1:0 -> {} name=stays udp-idle-timeout=1s thread-keep-alive=0",
        echo.addr
    );
    let file = ConfigFile::new("udp-baseline.conf", &config(&[gone, stays.clone()]));
    let relay = Relay::start(&file, 2);
    let (gone_addr, stays_addr) = (relay.route("gone"), relay.route("stays"));
    let counts = || (relay.process.status("Threads"), relay.process.open_fds().len() as u64);
    let names = || {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", relay.process.pid()));
        let comm = |task: std::fs::DirEntry| std::fs::read_to_string(task.path().join("comm"));
        let tasks = tasks.expect("read /proc/PID/task").filter_map(|task| comm(task.ok()?).ok());
        tasks.collect::<String>()
    };
    // The routes' receive threads and the admin thread start after their lines are written.
    let started = ["tcprelay-udp-0", "tcprelay-udp-1", "tcprelay-admin"];
    assert!(eventually(|| started.iter().all(|name| names().contains(name))), "{}", names());
    let (threads, fds) = counts();
    let on = |route: SocketAddr| -> Vec<UdpSocket> {
        let clients: Vec<UdpSocket> = (0..8).map(|_| udp_client("127.0.0.1")).collect();
        clients.iter().for_each(|client| drop(ask(client, route, "hello")));
        clients
    };
    let _on_gone = on(gone_addr);
    let expected = (threads + 8, fds + 8);
    assert!(eventually(|| counts() == expected), "{:?}, not {expected:?}", counts());
    let _on_stays = on(stays_addr); // they end 1 s after their answer
    assert!(eventually(|| counts() == expected), "{:?}, not {expected:?}", counts());

    file.write(&config(&[stays]));
    relay.reload();
    let expected = (threads - 1, fds - 1);
    assert!(eventually(|| counts() == expected), "{:?}, not {expected:?}\n{}", counts(), names());
}

#[test]
fn a_reload_that_removes_a_udp_route_closes_its_socket_and_ends_its_flows() {
    let echo = NamedEcho::start("echo");
    let gone = format!("route udp:127.0.0.1:0 -> {} name=gone", echo.addr);
    let stays = format!("route udp:127.0.0.1:0 -> {} name=stays", echo.addr);
    let file = ConfigFile::new("udp-remove.conf", &config(&[gone, stays.clone()]));
    let relay = Relay::start(&file, 2);
    let (gone_addr, stays_addr) = (relay.route("gone"), relay.route("stays"));
    let (on_gone, on_stays) = (udp_client("127.0.0.1"), udp_client("127.0.0.1"));
    ask(&on_gone, gone_addr, "hello");
    let before = ask(&on_stays, stays_addr, "hello");

    file.write(&config(&[stays]));
    let summary = relay.reload();
    assert!(summary.contains(&format!("removed gone(udp:{gone_addr})")), "{summary}");
    let line = relay.process.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&line, "reason"), "removed", "{line}");
    assert_eq!(log_field(&line, "client"), on_gone.local_addr().expect("an address").to_string());
    assert_eq!(log_field(&line, "datagrams_to_upstream"), "1", "{line}");
    // Its socket is closed: the route leaves the status, and its port is free to bind.
    assert!(eventually(|| !relay.status().contains("route gone ")), "{}", relay.status());
    assert!(eventually(|| UdpSocket::bind(gone_addr).is_ok()), "udp:{gone_addr} still bound");
    // The other route's flow never noticed.
    assert_eq!(ask(&on_stays, stays_addr, "after"), before);
}

#[test]
fn a_drain_lets_open_flows_finish_refuses_new_ones_and_exits_0() {
    // An upstream that answers when the test says: the flow is open, its query unanswered,
    // until the drain has begun. It ends by its count (one answer per query); the drain
    // would wait up to 30 s.
    let upstream = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP upstream on 127.0.0.1");
    upstream.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    let upstream_addr = upstream.local_addr().expect("its address");
    let file = ConfigFile::new(
        "udp-drain.conf",
        &config(&[
            "drain-timeout 30s".to_string(),
            format!("route udp:127.0.0.1:0 -> {upstream_addr} name=dns udp-responses=1"),
        ]),
    );
    let mut relay = Relay::start(&file, 1);
    let route = relay.route("dns");
    let open = udp_client("127.0.0.1");
    open.send_to(b"question", route).expect("send to the relay");
    let mut buffer = [0; 64];
    let (len, flow_socket) = upstream.recv_from(&mut buffer).expect("the query, relayed");
    assert_eq!(&buffer[..len], b"question");
    // What `tcprelay drain` asks; it then waits for the exit, which this test checks itself.
    let (status, body) = http_post(relay.admin, "/drain");
    assert_eq!(status, 200, "{body}");
    relay.process.log_line_with("msg=draining route=dns");
    // A new client is not served any more; the open flow is, until it ends by its count.
    udp_client("127.0.0.1").send_to(b"new", route).expect("send to the draining relay");
    let dropped = relay.process.log_line_with("msg=\"datagram dropped\"");
    assert_eq!(log_field(&dropped, "reason"), "draining", "{dropped}");
    upstream.send_to(b"answer", flow_socket).expect("answer the open flow");
    assert_eq!(
        udp_receive(&open).expect("the answer, during the drain"),
        (b"answer".to_vec(), route)
    );
    let line = relay.process.log_line_with("msg=\"flow closed\"");
    assert_eq!(log_field(&line, "reason"), "responses", "{line}");
    assert_eq!(relay.process.wait_for_exit(), Some(0));
}

#[test]
#[cfg(target_os = "linux")] // prlimit is util-linux's
fn a_flow_whose_socket_cannot_be_made_counts_its_datagrams_as_process_limit() {
    if let Some(emulator) = emulator() {
        eprintln!("skipped under {emulator}: the descriptor limit would bound the emulator too");
        return;
    }
    let echo = NamedEcho::start("echo");
    let file = ConfigFile::new(
        "udp-emfile.conf",
        &config(&[format!("route udp:127.0.0.1:0 -> {} name=dns", echo.addr)]),
    );
    let mut relay = Relay::start(&file, 1);
    let route = relay.route("dns");
    let first = udp_client("127.0.0.1");
    let before = ask(&first, route, "first");
    let pid = relay.process.pid().to_string();
    let limit = |nofile: &str| {
        let set = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={nofile}")])
            .status()
            .expect("run prlimit (util-linux)");
        assert!(set.success(), "prlimit --nofile={nofile}");
    };
    // No descriptor left: 0, 1 and 2 are open, so every new one is over the limit.
    limit("3:1024");
    let clients: Vec<UdpSocket> = (0..5).map(|_| udp_client("127.0.0.1")).collect();
    for client in &clients {
        client.send_to(b"no socket for me", route).expect("send to the relay");
    }
    // Each of the five flows fails in its own thread: its datagram is counted, then its
    // `flow closed` line written. The limit stays until all five have said so (raised at
    // the first line, the later flows found descriptors again: 1 run in 10 counted fewer).
    let failed = || relay.process.log_count("msg=\"flow closed\"") >= 5;
    assert!(eventually(failed), "{:#?}", relay.process.log_lines());
    assert!(relay.process.log_count("reason=process_limit") > 0);
    limit("1024:1024");
    assert!(relay.process.is_running(), "the relay died:\n{:#?}", relay.process.log_lines());
    // Every one of the five, the first datagram of its flow, counted as the limit's.
    let drops = "tcprelay_udp_drops_total{route=\"dns\",cause=\"process_limit\"}";
    assert!(eventually(|| relay.metric(drops) == 5), "{}", relay.metrics());
    let no_upstream = "tcprelay_udp_drops_total{route=\"dns\",cause=\"no_upstream\"}";
    assert_eq!(relay.metric(no_upstream), 0, "{}", relay.metrics());
    assert_eq!(ask(&first, route, "still"), before);
}

/// One cap for the whole process: TCP connections and UDP flows count in the same
/// process-wide count (a flow half a connection), so when TCP clients hold the cap a new
/// UDP client is dropped (`process_limit`), and one TCP connection closing lets it in.
#[test]
fn udp_flows_and_tcp_connections_share_the_process_cap() {
    if let Some(emulator) = emulator() {
        eprintln!("skipped under {emulator}: the descriptor limit would bound the emulator too");
        return;
    }
    let (echo, tcp) = (NamedEcho::start("echo"), Upstream::echo());
    let file = ConfigFile::new(
        "udp-shared-cap.conf",
        &config(&[
            format!("route udp:127.0.0.1:0 -> {} name=dns", echo.addr),
            format!("route 127.0.0.1:0 -> {} name=web", tcp.addr),
        ]),
    );
    let relay = Relay::start_with_ulimit("-n 40", &file, 2);
    let (cap, limited_by) = relay.process.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let (dns, web) = (relay.route("dns"), relay.route("web"));
    // TCP clients take the whole cap, each relaying.
    let held: Vec<_> = (0..cap).map(|_| connect(web)).collect();
    for client in &held {
        assert_eq!(round_trip(client, b"held"), b"held");
    }
    let udp = udp_client("127.0.0.1");
    udp.send_to(b"no room", dns).expect("send to the relay");
    let drops = "tcprelay_udp_drops_total{route=\"dns\",cause=\"process_limit\"}";
    assert!(eventually(|| relay.metric(drops) == 1), "{}", relay.metrics());
    // One TCP connection ends: its slot is two flows' room.
    let mut held = held;
    let ending = held.pop().expect("the cap is at least one connection");
    ending.shutdown(std::net::Shutdown::Write).expect("the client half-closes");
    assert_eq!(read_all(&ending).expect("the upstream's EOF comes back"), b"");
    drop(ending);
    // Its slot is given back just after its `connection closed` line: ask until answered
    // (each unanswered try is one more drop, each wait bounded).
    udp.set_read_timeout(Some(Duration::from_millis(100))).expect("a short read timeout");
    let answered = || {
        udp.send_to(b"room now?", dns).expect("send to the relay");
        udp.recv_from(&mut [0; 256]).is_ok()
    };
    assert!(eventually(answered), "no room after a TCP connection ended: {}", relay.metrics());
}
