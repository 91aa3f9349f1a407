//! The relay under tight limits never aborts: it caps its
//! connections below the address space, descriptors, threads and maps it has, across every
//! route together, and one client address cannot take every slot. Each test runs the real
//! binary, under the shell's `ulimit` where a limit is the point.
#![forbid(unsafe_code)]

mod support;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// Writes one byte and reads it back: the client is being served.
fn echo(client: &TcpStream, byte: u8) -> std::io::Result<u8> {
    write_all(client, &[byte])?;
    let mut echoed = [0; 1];
    (&*client).read_exact(&mut echoed)?;
    Ok(echoed[0])
}

/// Whether `client` gets nothing back within a short while: neither served nor closed.
/// (A negative check; 100 ms is only how long we look, never what makes the test pass.)
fn is_waiting(client: &TcpStream) -> bool {
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("shorten the client's read timeout to look for a reply");
    let mut byte = [0; 1];
    let read = (&*client).read(&mut byte);
    client.set_read_timeout(Some(TIMEOUT)).expect("restore the client's read timeout");
    matches!(read, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

/// The relay under `ulimit -v KIB`, to an echo upstream, with no idle timeout.
fn relay_under_address_space_limit(kib: u64, upstream: &Upstream) -> RelayProcess {
    let upstream_arg = upstream.addr.to_string();
    let args = [
        "-l",
        "127.0.0.1:0",
        "-u",
        &upstream_arg,
        "--idle-timeout",
        "0",
        "--max-connections",
        "5000",
    ];
    RelayProcess::start_with_ulimit(&format!("-v {kib}"), &args, 1, false)
}

/// Holds `count` idle, served connections through `relay`.
fn hold(relay: &RelayProcess, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|n| {
            let client = connect(relay.addr);
            assert_eq!(echo(&client, b'x').unwrap_or_else(|e| panic!("client {n}: {e}")), b'x');
            client
        })
        .collect()
}

/// Under `ulimit -v 400000` (400 MB) at least 300 idle connections are held. Before the
/// cap and the arena limit, 7 were (malloc's arenas took the space).
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -v: no shell or address-space limit on Windows")]
fn under_400_mb_of_address_space_300_idle_connections_are_held() {
    if let Some(emulator) = emulator() {
        eprintln!("not measured under {emulator}: ulimit -v would bound the emulator too");
        return;
    }
    let upstream = Upstream::echo();
    let mut relay = relay_under_address_space_limit(400_000, &upstream);
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_AS");
    assert!(cap >= 300, "cap {cap}");
    let held = hold(&relay, 300);
    assert!(relay.is_running());
    assert!(relay.status("VmSize") < 400_000, "within the limit");
    drop(held);
    let log = relay.kill_and_collect_log();
    assert!(!log.iter().any(|line| line.contains("memory allocation")), "{log:#?}");
}

/// Under `ulimit -v 100000` and `ulimit -v 20000` the relay never aborts: it fills its cap,
/// clients past it wait, and they are served once room returns. Before, malloc failed and
/// std aborted the process after a few hundred clients.
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -v: no shell or address-space limit on Windows")]
fn under_100_mb_and_20_mb_clients_past_the_cap_wait_and_are_served_when_room_returns() {
    if let Some(emulator) = emulator() {
        eprintln!("not measured under {emulator}: ulimit -v would bound the emulator too");
        return;
    }
    for kib in [100_000, 20_000] {
        const PAST_CAP: usize = 8;
        let upstream = Upstream::echo();
        let mut relay = relay_under_address_space_limit(kib, &upstream);
        let (cap, limited_by) = relay.connection_cap();
        assert_eq!(limited_by, "RLIMIT_AS", "under {kib} KiB");
        assert!(cap >= 5, "under {kib} KiB: cap {cap}");

        let mut held = hold(&relay, cap);
        let waiting: Vec<TcpStream> = (0..PAST_CAP).map(|_| connect(relay.addr)).collect();
        for client in &waiting {
            write_all(client, b"w").expect("a client past the cap sends into the backlog");
        }
        assert!(waiting.iter().all(is_waiting), "under {kib} KiB, past the cap of {cap}");
        assert!(relay.is_running(), "under {kib} KiB at the cap");

        // Room returns: the waiting clients are served, the relay keeps going.
        held.truncate(cap - PAST_CAP.min(cap));
        for client in &waiting {
            let mut byte = [0; 1];
            (&*client).read_exact(&mut byte).expect("served once room returns");
            assert_eq!(byte, *b"w");
        }
        // Churn through the cap: short connections, new threads for most.
        drop(waiting);
        for n in 0..100u64 {
            let data = pattern(n, 1000);
            assert_eq!(echo_through(relay.addr, &data), data, "under {kib} KiB, client {n}");
        }
        assert!(relay.is_running(), "under {kib} KiB after churn");
        drop(held);
        let log = relay.kill_and_collect_log();
        let crashed = log
            .iter()
            .any(|line| line.contains("memory allocation") || line.contains("alternative stack"));
        assert!(!crashed, "under {kib} KiB: {log:#?}");
    }
}

/// Two routes share one cap (once the map cap was per route, so routes together
/// could pass the limit). With `ulimit -n 64` the cap is about 20 connections in the whole
/// process: one route holding them all leaves none to the other, whose client is closed at
/// once (`reason=process_limit`, counted in /metrics), and served again when room returns.
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -n: no shell or descriptor limit on Windows")]
fn routes_share_one_process_wide_cap() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let first = format!("127.0.0.1:0={upstream_arg}");
    let second = format!("127.0.0.1:0={upstream_arg}");
    let args = ["--route", &first, "--route", &second, "--admin", "127.0.0.1:0"];
    let relay = RelayProcess::start_with_ulimit("-n 64", &args, 2, true);
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let (route_a, route_b) = (relay.routes[0], relay.routes[1]);

    let mut held: Vec<TcpStream> = (0..cap)
        .map(|n| {
            let client = connect(route_a);
            assert_eq!(echo(&client, b'a').unwrap_or_else(|e| panic!("client {n}: {e}")), b'a');
            client
        })
        .collect();
    let refused = connect(route_b);
    assert_eq!(read_all(&refused).expect("closed at once, not left waiting"), b"");
    let line = relay.log_line_with("reason=process_limit");
    assert!(line.contains(&format!("route={route_b}")), "{line}");
    let (_, metrics) =
        http_get(relay.admin.expect("the relay was started with --admin"), "/metrics");
    let counted = format!("tcprelay_connections_rejected_limit_total{{route=\"{route_b}\"}} 1");
    assert!(metrics.contains(&counted), "{metrics}");
    assert!(metrics.contains(&format!(
        "tcprelay_connections_closed_total{{route=\"{route_b}\",reason=\"process_limit\"}} 1"
    )));

    held.pop();
    // The slot is given back when the relay has seen the close; no signal says when.
    assert!(eventually(|| {
        let client = connect(route_b);
        echo(&client, b'b').is_ok_and(|byte| byte == b'b')
    }));
}

/// The threads of health checks and of the admin endpoint count against the cap: with
/// `ulimit -n 256`, eight routes each checking eight blackholed upstreams (64 checks in
/// progress, a socket each, for 60 s) and an admin endpoint, a ninth route holds every
/// connection the cap allows, and each is served. Before, the cap left them out (116
/// connections, beside the checks' 64 sockets): the 84th client was closed unserved, its
/// upstream dial refused with `EMFILE` (`connect_failed`).
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -n: no shell or descriptor limit on Windows")]
fn health_check_and_admin_threads_are_kept_out_of_the_cap() {
    let blackholes: Vec<Blackhole> = (0..8).map(|_| Blackhole::on("127.0.0.1")).collect();
    let dead: Vec<String> = blackholes.iter().map(|b| b.addr.to_string()).collect();
    let upstream = Upstream::echo();
    let mut config =
        format!("admin 127.0.0.1:0\nroute 127.0.0.1:0 -> {} name=plain\n", upstream.addr);
    for n in 0..8 {
        let checked = format!("name=checked{n} health-check=60s connect-timeout=60s");
        config.push_str(&format!("route 127.0.0.1:0 -> {} {checked}\n", dead.join(" ")));
    }
    let file = ConfigFile::new("checked-routes.conf", &config);
    let relay = RelayProcess::start_with_ulimit("-n 256", &["--config", file.arg()], 9, true);
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let lowered = relay.log_line_with("max-connections lowered");
    assert!(lowered.contains("health_check_threads=128 admin_threads=33"), "{lowered}");
    // Every check is in progress: 64 sockets to the blackholes, beside the listeners.
    assert!(eventually(|| relay.open_fds().len() >= 64 + 10), "the checks never started");

    // The plain route holds every connection the cap allows, and each one is served.
    let held: Vec<TcpStream> = (0..cap)
        .map(|n| {
            let client = connect(relay.routes[0]);
            assert_eq!(
                echo(&client, b'p').unwrap_or_else(|e| panic!("client {n} of {cap}: {e}")),
                b'p'
            );
            client
        })
        .collect();
    let (status, _) = http_get(relay.admin.expect("an admin endpoint"), "/healthz");
    assert_eq!(status, 200, "the admin endpoint answers beside them");
    drop(held);
    let log = relay.kill_and_collect_log();
    assert!(!log.iter().any(|line| line.contains("reason=connect_failed")), "{log:#?}");
}

/// A relay on 127.0.0.1 to `upstream` with `--max-connections MAX` and
/// `--max-connections-per-client SHARE`.
fn limited<'a>(upstream: &'a str, max: &'a str, share: &'a str) -> Vec<&'a str> {
    let mut args = vec!["-l", "127.0.0.1:0", "-u", upstream];
    args.extend(["--max-connections", max, "--max-connections-per-client", share]);
    args
}

/// One client address fills its share (`--max-connections-per-client 3`) of a route of 4,
/// so that only 1 slot is free, and its next connection is closed at once with
/// `reason=client_limit`, counted in /metrics; another connection is let in once one of its
/// own has closed.
#[test]
fn one_client_over_its_share_is_closed_at_once_with_client_limit() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let mut args = limited(&upstream_arg, "4", "3");
    args.extend(["--admin", "127.0.0.1:0"]);
    let relay = RelayProcess::start_routes(&args, 1, true);

    let mut held = hold(&relay, 3);
    let over = connect(relay.addr);
    assert_eq!(read_all(&over).expect("closed at once"), b"");
    let line = relay.log_line_with("reason=client_limit");
    assert!(line.contains("client=127.0.0.1:"), "{line}");
    let (_, metrics) = http_get(
        relay.admin.expect("the admin endpoint's address, asked for with --admin"),
        "/metrics",
    );
    let route = relay.addr;
    assert!(
        metrics.contains(&format!(
            "tcprelay_connections_closed_total{{route=\"{route}\",reason=\"client_limit\"}} 1"
        )),
        "{metrics}"
    );

    held.pop();
    assert!(eventually(|| {
        let client = connect(relay.addr);
        echo(&client, b'y').is_ok_and(|byte| byte == b'y')
    }));
}

/// A pool of 300 connections from one address on an otherwise idle relay is served whole:
/// the per-client limit (here 62, what `auto` gives a remote address at the default
/// `max-connections` of 500) refuses only when the route is short of slots. Before, the
/// 63rd connection and every one after it were closed at once (`client_limit`).
#[test]
fn a_pool_of_300_from_one_address_on_an_idle_relay_is_served() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let args = ["-l", "127.0.0.1:0", "-u", &upstream_arg, "--max-connections-per-client", "62"];
    let relay = RelayProcess::start(&args);
    let held = hold(&relay, 300); // each echoes a byte while all the earlier ones are open
    assert_eq!(held.len(), 300);
    assert_eq!(relay.log_count("reason=client_limit"), 0);
}

/// The route full but for its last slots: 127.0.0.1, holding its share, is refused
/// (`client_limit`) while 127.0.0.2, holding none, still gets in: one address cannot lock
/// the others out. std cannot choose a client's source address, so the second client is
/// OpenBSD netcat's `nc -s 127.0.0.2`.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn a_second_client_address_is_served_while_the_first_holds_its_share() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&limited(&upstream_arg, "3", "2"));
    let _held = hold(&relay, 2);
    let over = connect(relay.addr);
    assert_eq!(read_all(&over).expect("closed at once"), b"", "127.0.0.1 is over its share");

    // nc -N half-closes after its message; the echo upstream answers and closes.
    let echoed = exchange_from("127.0.0.2", relay.addr, b"from 127.0.0.2");
    assert_eq!(String::from_utf8_lossy(&echoed), "from 127.0.0.2");
    let line = relay.log_line_with("client=127.0.0.2:");
    assert!(line.contains("reason=client_eof"), "{line}");
}
