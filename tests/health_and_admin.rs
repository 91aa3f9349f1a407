//! Health checks, reload and the admin endpoint under load (issue 22, items 10 to 13): checks
//! run per upstream and are bounded by their interval, a reload never waits for a check in
//! progress, `/healthz` answers while slow clients and reloads hold the admin endpoint, and
//! routes with `sni=` reload like any other.
#![forbid(unsafe_code)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use tcprelay::Config;

/// Polls `condition` every 5 ms until it holds or `bound` passes; returns whether it held.
/// For what a test must see happen within a bound it states (a check timeout, an interval),
/// far above what it takes on an idle machine.
fn within(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// Whether the health checks of `relay` have marked the upstream at `addr` down.
fn is_down(relay: &TestRelay, addr: std::net::SocketAddr) -> bool {
    let snapshot = relay.metrics.snapshot();
    !snapshot.upstream(&addr.to_string()).expect("a known upstream").up
}

#[test]
fn a_dead_upstream_behind_four_blackholed_ones_is_marked_down_within_a_few_intervals() {
    let blackholes: Vec<Blackhole> = (0..4).map(|_| Blackhole::on("127.0.0.1")).collect();
    let dead = refusing_addr();
    let mut upstreams: Vec<String> = blackholes.iter().map(|b| b.addr.to_string()).collect();
    upstreams.push(dead.to_string());
    let relay = TestRelay::start(Config {
        health_check: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        ..to_all(&upstreams)
    });
    // Three failed checks in a row, 100 ms apart: about 0.3 s when each upstream has its own
    // timer. Checked one after the other behind the blackholes, each waiting out its
    // connect timeout, it took 3 rounds of 4 × 5 s (22.5 s measured before the fix).
    assert!(
        within(Duration::from_secs(5), || is_down(&relay, dead)),
        "the dead upstream was not marked down within 5 s"
    );
    // The blackholes' checks give up at the interval, so they go down too.
    for blackhole in &blackholes {
        assert!(within(Duration::from_secs(5), || is_down(&relay, blackhole.addr)));
    }
}

#[test]
fn a_blackholed_upstream_is_marked_down_before_the_first_client_dials_it() {
    let blackhole = Blackhole::on("127.0.0.1");
    let live = Upstream::banner("live");
    let relay = TestRelay::start(Config {
        health_check: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(1),
        ..to_all(&[blackhole.addr.to_string(), live.addr.to_string()])
    });
    // Each check gives up after the 200 ms interval, not the 1 s connect timeout: down after
    // about 0.6 s (3 s before the fix, when a check waited out the connect timeout).
    assert!(
        within(Duration::from_millis(2500), || is_down(&relay, blackhole.addr)),
        "the blackholed upstream was not marked down within 2.5 s"
    );
    // The first client goes straight to the live upstream: nobody waited on the blackhole.
    assert_eq!(served_by(relay.addr), "live");
    let metrics = settled(&relay.metrics);
    let dialled = metrics.upstream(&blackhole.addr.to_string()).expect("a known upstream");
    assert_eq!((dialled.failures, metrics.connect_failed), (0, 0), "a client dialled it");
}

/// A config file's route line: `listen -> upstreams` and its options.
fn route_line(upstreams: &[String], options: &str) -> String {
    format!("route 127.0.0.1:0 -> {} {options}\n", upstreams.join(" "))
}

#[test]
fn a_reload_does_not_wait_for_a_health_check_in_progress_and_says_what_it_did() {
    let live = Upstream::echo();
    let blackhole = Blackhole::on("127.0.0.1");
    let upstreams = [live.addr.to_string(), blackhole.addr.to_string()];
    let options = |every: &str| format!("name=web connect-timeout=60s health-check={every}");
    let file = ConfigFile::new(
        "check-in-progress.conf",
        &format!("admin 127.0.0.1:0\n{}", route_line(&upstreams, &options("10s"))),
    );
    let relay = RelayProcess::start_routes(&["--config", file.arg()], 1, true);
    // Checked first, the live upstream answers at once; the blackhole's check, beside it (or
    // after it, before the fix), now waits for its whole timeout: 10 s, the interval.
    assert!(eventually(|| live.accepted() >= 1), "the live upstream was never checked");

    // A changed route: its checks are replaced, and the one in progress is not waited for.
    file.write(&format!("admin 127.0.0.1:0\n{}", route_line(&upstreams, &options("9s"))));
    let admin = relay.admin.expect("an admin endpoint").to_string();
    let asked = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["reload", "--admin", &admin])
        .output()
        .expect("run tcprelay reload");
    let took = asked.elapsed();
    let printed = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(printed.starts_with("reloaded: added none; removed none; changed web("), "{printed}");
    // 28.5 s before the fix (the check's 60 s connect timeout, joined by the reload).
    assert!(took < Duration::from_secs(5), "the reload took {took:?}");
    assert_eq!(echo_through(relay.addr, b"after the reload"), b"after the reload");
}

#[test]
fn a_drain_with_no_connection_left_does_not_wait_for_a_health_check_in_progress() {
    let live = Upstream::echo();
    let blackhole = Blackhole::on("127.0.0.1");
    // A check of the blackhole gives up after 120 s (the interval and the connect timeout),
    // twelve times the bound `wait_for_exit` gives the relay to exit.
    let file = ConfigFile::new(
        "drain-during-check.conf",
        &format!(
            "admin 127.0.0.1:0\ndrain-timeout 60s\nlog-level debug\n{}",
            route_line(
                &[live.addr.to_string(), blackhole.addr.to_string()],
                "name=web connect-timeout=120s health-check=120s"
            )
        ),
    );
    let mut relay = RelayProcess::start_routes(&["--config", file.arg()], 1, true);
    // Both upstreams' checks start together, each on its own thread: once the live one has
    // been checked, the blackhole's is under way, and it cannot end for 120 s.
    assert!(eventually(|| live.accepted() >= 1), "the live upstream was never checked");

    let (status, _) = http_post(relay.admin.expect("an admin endpoint"), "/drain");
    assert_eq!(status, 200);
    // No connection to wait for: the relay stops and exits while the check is in progress
    // (before the fix the accept loop joined the checking thread: 120 s).
    assert_eq!(relay.wait_for_exit(), Some(0), "the relay waited for the check");
    let log = relay.kill_and_collect_log();
    assert!(log.iter().any(|line| line.contains("msg=stopped")), "{log:#?}");
    // The check never ended, so it never reported (at debug level): the exit came first.
    assert!(!log.iter().any(|line| line.contains("health check failed")), "{log:#?}");
}

/// A client that asks for `/metrics` and reads the answer slowly, 16 KiB every 50 ms,
/// as a scraper on a slow link would, until told to stop.
struct SlowReader {
    /// The status line's code, once it has arrived.
    status: std::sync::mpsc::Receiver<u16>,
    thread: std::thread::JoinHandle<()>,
}

impl SlowReader {
    fn start(
        admin: std::net::SocketAddr,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> SlowReader {
        let (sender, status) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::clone(stop);
        let thread = std::thread::spawn(move || {
            let stream = connect(admin);
            send(&stream, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
            let head = read_exactly(&stream, 12, "the status line");
            let code = text(&head[9..12]).parse().expect("a status code");
            let _ = sender.send(code);
            let mut chunk = [0; 16 * 1024];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match std::io::Read::read(&mut &stream, &mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        SlowReader { status, thread }
    }
}

/// Sends `request` to the admin endpoint and returns the answer's status code, `None` when
/// none came within `deadline` (or the endpoint shut the connection to make room).
fn status_of(admin: std::net::SocketAddr, request: &str, deadline: Duration) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&admin, deadline).ok()?;
    stream.set_read_timeout(Some(deadline)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    text(answer.get(9..12)?).parse().ok()
}

/// `GET /healthz` with the deadline a load balancer gives it: 1 s to connect and answer.
fn probe_healthz(admin: std::net::SocketAddr) -> Option<u16> {
    status_of(admin, "GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n", Duration::from_secs(1))
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under wine the socket takes all 6 MB of /metrics, so no slow reader holds a handler"
)]
fn healthz_answers_while_slow_metrics_readers_and_queued_reloads_hold_the_admin_endpoint() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // 12 routes of 1,000 upstreams each (no checks, never dialled): a 6 MB /metrics, more
    // than the socket buffers hold, so a slow reader keeps its handler writing.
    let mut config = String::from("admin 127.0.0.1:0\n");
    for route in 0..12u16 {
        let upstreams: Vec<String> =
            (1..=1000u16).map(|port| format!("127.0.0.1:{}", route * 1000 + port)).collect();
        config.push_str(&route_line(&upstreams, ""));
    }
    let file = ConfigFile::new("big-metrics.conf", &config);
    let relay = RelayProcess::start_routes(&["--config", file.arg()], 12, true);
    let admin = relay.admin.expect("an admin endpoint");

    let stop = Arc::new(AtomicBool::new(false));
    // One after another: a reader still sending its request when all 16 handlers are taken
    // would be shut down to make room for the next (the admin's slowloris rule).
    let mut readers = Vec::new();
    let mut codes = Vec::new();
    for _ in 0..24 {
        let reader = SlowReader::start(admin, &stop);
        codes.push(reader.status.recv_timeout(TIMEOUT).expect("a status line"));
        readers.push(reader);
    }
    codes.sort_unstable();
    let post = format!("POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\n\r\n");
    let reloads: Vec<_> = (0..16)
        .map(|_| {
            let post = post.clone();
            std::thread::spawn(move || status_of(admin, &post, TIMEOUT))
        })
        .collect();

    let probes: Vec<Option<u16>> = (0..20).map(|_| probe_healthz(admin)).collect();
    let ok = probes.iter().filter(|&&code| code == Some(200)).count();

    stop.store(true, Ordering::SeqCst);
    readers.into_iter().for_each(|reader| reader.thread.join().expect("a slow reader"));
    for reload in reloads {
        // Applied (409: refused, the file being unchanged is not), busy, or shut down to make
        // room while it was still being sent.
        let code = reload.join().expect("a reload");
        assert!(matches!(code, Some(200 | 503) | None), "a reload answered {code:?}");
    }
    // 5 of 30 before the fix: every handler was writing /metrics to a slow reader.
    assert_eq!(ok, 20, "/healthz answers: {probes:?}; /metrics readers got {codes:?}");
    // Twelve long answers at once (more if one ended meanwhile), then 503 at once.
    assert!(codes.iter().all(|&code| code == 200 || code == 503), "/metrics answered {codes:?}");
    assert!(codes.contains(&200) && codes.contains(&503), "/metrics answered {codes:?}");
}

/// The config file of two routes sharing one listener by server name, and the admin.
fn sni_config(a: std::net::SocketAddr, b: std::net::SocketAddr) -> String {
    format!(
        "admin 127.0.0.1:0\n\
         route 127.0.0.1:0 -> {a} sni=a.test name=a\n\
         route 127.0.0.1:0 -> {b} sni=b.test name=b\n"
    )
}

/// `tcprelay reload` against `relay`, which must succeed; returns what it printed.
fn reload(relay: &RelayProcess) -> String {
    let admin = relay.admin.expect("an admin endpoint").to_string();
    let output = run_tcprelay(&["reload", "--admin", &admin]);
    assert_eq!(output.status.code(), Some(0), "reload: {}", text(&output.stderr));
    text(&output.stdout)
}

/// A client that asks for `name` and sees its hello echoed back, left open.
fn client_for(relay: std::net::SocketAddr, name: &str) -> std::net::TcpStream {
    let client = connect(relay);
    let hello = client_hello(Some(name));
    assert_eq!(round_trip(&client, &hello), hello, "the hello for {name} comes back");
    client
}

#[test]
fn routes_with_sni_reload_like_any_other_and_live_connections_keep_their_upstream() {
    let (a, b, b_moved) = (Upstream::echo(), Upstream::echo(), Upstream::echo());
    let file = ConfigFile::new("sni-reload.conf", &sni_config(a.addr, b.addr));
    let relay = RelayProcess::start_routes(&["--config", file.arg()], 2, true);
    assert_eq!(relay.routes[0], relay.routes[1], "one listener for both names");

    // The unchanged file reloads (refused before: "a reload cannot change routes with sni=").
    let unchanged = reload(&relay);
    assert!(unchanged.contains("changed none; 2 unchanged"), "{unchanged}");

    let live = client_for(relay.addr, "b.test");
    assert_eq!(b.accepted(), 1);

    // b.test moves to another upstream: new clients go there, the live one stays.
    file.write(&sni_config(a.addr, b_moved.addr));
    let moved = reload(&relay);
    let expected = format!("changed b({} sni=b.test); 1 unchanged", relay.addr);
    assert!(moved.contains(&expected), "{moved}");
    let new = client_for(relay.addr, "b.test");
    assert_eq!((b_moved.accepted(), b.accepted()), (1, 1), "new clients of b.test, moved");
    assert_eq!(round_trip(&live, b"still flowing"), b"still flowing", "the live one flows on");
    let other = client_for(relay.addr, "a.test");
    assert_eq!(a.accepted(), 1, "a.test is served as before");

    // A third name joins the listener and b.test leaves it; b's live client flows on.
    let c = Upstream::echo();
    let a_and_c = sni_config(a.addr, c.addr).replace("b.test name=b", "c.test name=c");
    file.write(&a_and_c);
    let changed = reload(&relay);
    assert!(changed.contains(&format!("added c({} sni=c.test)", relay.addr)), "{changed}");
    assert!(changed.contains(&format!("removed b({} sni=b.test)", relay.addr)), "{changed}");
    drop(client_for(relay.addr, "c.test"));
    assert_eq!(c.accepted(), 1, "c.test is served by its new route");
    assert_eq!(round_trip(&live, b"b has left"), b"b has left", "b's live client flows on");
    drop((live, new, other));
}
