//! Dialling within the process's means: every Happy Eyeballs attempt is a thread and a
//! socket counted by the process-wide cap, so a storm of clients of a dead name neither
//! aborts the relay nor takes the descriptors a plain route's clients need; and a route whose
//! upstream name resolves to its own listen address refuses the loop.
//!
//! Each test runs the real binary with a private /etc/hosts (a mount namespace of its own,
//! see [`RelayProcess::start_with_hosts`]) naming loopback addresses only, under the
//! shell's `ulimit` where a limit is the point. That needs root; when not root each test
//! says so and returns.
#![forbid(unsafe_code)]

mod support;

use std::io::Read;
use std::net::TcpStream;

use support::*;

/// A hosts file where `name` has each of `ips`, in this order.
fn hosts_naming(file: &str, name: &str, ips: &[&str]) -> ConfigFile {
    let lines: String = ips.iter().map(|ip| format!("{ip} {name}\n")).collect();
    ConfigFile::new(file, &lines)
}

/// `127.0.0.FIRST` to `127.0.0.LAST`.
fn loopback_ips(first: u8, last: u8) -> Vec<String> {
    (first..=last).map(|n| format!("127.0.0.{n}")).collect()
}

/// `clients` connections to `route`, each sending one byte (which nobody will echo: the
/// route's upstream is dead).
fn storm(route: std::net::SocketAddr, clients: usize) -> Vec<TcpStream> {
    (0..clients)
        .map(|_| {
            let client = connect(route);
            write_all(&client, b"x").expect("a client of the dead name sends its byte");
            client
        })
        .collect()
}

/// Waits until the relay has closed `client` (its dial failed): EOF, or a reset.
fn closed_by_relay(mut client: &TcpStream) {
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "nothing relayed from a dead upstream: {rest:?}"),
        Err(error) => assert!(
            !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the relay never closed the client: {error}"
        ),
    }
}

/// One byte through the plain route, echoed.
fn served(route: std::net::SocketAddr, n: u64) -> bool {
    let data = pattern(n, 100);
    echo_through(route, &data) == data
}

/// At most this many descriptors are open once the storm is over and every dial socket is
/// closed: stdio, two listeners, and a few of the relay's own (7 measured).
const SETTLED_FDS: usize = 12;

/// Whether the relay's log says it aborted (std prints these before `abort()`).
fn aborted(log: &[String]) -> bool {
    log.iter().any(|line| line.contains("memory allocation") || line.contains("alternative stack"))
}

/// The relay with a dead name's route (`dead.test:PORT`, every address blackholed, 5 s to
/// connect, at most 250 clients: the rest of the process's cap stays the plain route's) and
/// a plain route to `echo`, under `ulimit`.
fn relay_with_dead_name(
    hosts: &ConfigFile,
    config_name: &str,
    port: u16,
    echo: &Upstream,
    ulimit: &str,
) -> (RelayProcess, ConfigFile) {
    let config = ConfigFile::new(
        config_name,
        &format!(
            "connect-timeout 5s\nmax-connections 5000\n\
             route 127.0.0.1:0 -> dead.test:{port} max-connections=250\nroute 127.0.0.1:0 -> {}\n",
            echo.addr
        ),
    );
    let relay =
        RelayProcess::start_with_hosts(hosts, ulimit, &["--config", config.arg()], 2, false);
    (relay, config)
}

/// Under `ulimit -v 100000` (100 MB), 300 clients of a name with 16 blackholed addresses:
/// before, each attempt was a thread of its own that the cap did not count, and the process
/// aborted ("failed to allocate an alternative stack", 1,625 threads). Now attempts beyond
/// the reserved ones wait for the previous one: no abort, and the plain route serves
/// throughout.
#[test]
fn under_100_mb_a_storm_of_clients_of_a_dead_name_does_not_abort_the_relay() {
    if let Some(emulator) = emulator() {
        eprintln!("not measured under {emulator}: ulimit -v would bound the emulator too");
        return;
    }
    if !can_use_private_hosts() {
        return;
    }
    let ips = loopback_ips(2, 17);
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let blackholes = Blackhole::on_one_port(&ips);
    let hosts = hosts_naming("hosts-100mb", "dead.test", &ips);
    let echo = Upstream::echo();
    let port = blackholes[0].addr.port();
    let (mut relay, _config) =
        relay_with_dead_name(&hosts, "dead-100mb.conf", port, &echo, "-v 100000");
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_AS");
    let (dead_route, plain_route) = (relay.routes[0], relay.routes[1]);

    let clients = storm(dead_route, 300);
    // The first close comes after every attempt of the first clients was started.
    closed_by_relay(&clients[0]);
    let threads_in_storm = relay.status("Threads");
    assert!(relay.is_running(), "the relay died in the storm");
    assert!(served(plain_route, 1), "the plain route serves during the storm");
    for client in &clients {
        closed_by_relay(client);
    }
    assert!(relay.is_running(), "the relay died in the storm");
    assert!(served(plain_route, 2), "the plain route serves after the storm");
    // The last attempts end by their deadline, and every dial socket with them.
    assert!(eventually(|| relay.open_fds().len() <= SETTLED_FDS), "{:?}", relay.open_fds());
    let (threads, fds) = (relay.status("Threads"), relay.open_fds().len());
    eprintln!(
        "cap {cap}: {threads_in_storm} threads in the storm; {threads} threads, {fds} fds after"
    );
    let log = relay.kill_and_collect_log();
    assert!(!aborted(&log), "{log:#?}");
}

/// Under `ulimit -n 1024`, 300 clients of a name with 4 blackholed addresses: before, their
/// attempts held 1,021 descriptors and a plain route's clients failed with
/// `connect_failed` (EMFILE). Now dial sockets come out of the descriptors the cap sets
/// aside, and the plain route's clients are served.
#[test]
fn under_1024_descriptors_dial_sockets_leave_a_plain_routes_clients_served() {
    if !can_use_private_hosts() {
        return;
    }
    let ips = loopback_ips(2, 5);
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let blackholes = Blackhole::on_one_port(&ips);
    let hosts = hosts_naming("hosts-1024fds", "dead.test", &ips);
    let echo = Upstream::echo();
    let port = blackholes[0].addr.port();
    let (mut relay, _config) =
        relay_with_dead_name(&hosts, "dead-1024fds.conf", port, &echo, "-n 1024");
    let (_, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let (dead_route, plain_route) = (relay.routes[0], relay.routes[1]);

    let clients = storm(dead_route, 300);
    closed_by_relay(&clients[0]);
    let fds_in_storm = relay.open_fds().len();
    for n in 0..20 {
        assert!(served(plain_route, n), "plain client {n} during the storm ({fds_in_storm} fds)");
    }
    for client in &clients {
        closed_by_relay(client);
    }
    assert!(relay.is_running());
    // The last attempts end by their deadline, and every dial socket with them.
    assert!(eventually(|| relay.open_fds().len() <= SETTLED_FDS), "{:?}", relay.open_fds());
    let (threads, fds) = (relay.status("Threads"), relay.open_fds().len());
    eprintln!("{fds_in_storm} fds in the storm; {threads} threads, {fds} fds after");
    let log = relay.kill_and_collect_log();
    let exhausted = log.iter().any(|line| line.contains("local resources exhausted"));
    assert!(!exhausted, "a dial ran out of descriptors: {log:#?}");
    let plain_failed = log.iter().any(|line| {
        line.contains("reason=connect_failed") && line.contains(&plain_route.to_string())
    });
    assert!(!plain_failed, "{log:#?}");
}

/// `-u selfloop.test:PORT` where the name resolves to the route's own listen address: before,
/// `--check` passed it, one client filled 100 of 100 slots and a new loop formed every 60 s
/// with nobody connected. Now `--check` names it (exit 2), and each client is closed at once
/// with `reason=self_loop`, counted, warned about once for the storm, nothing dialled.
#[test]
fn a_route_whose_name_resolves_to_its_own_listen_address_refuses_the_loop() {
    if !can_use_private_hosts() {
        return;
    }
    let hosts = hosts_naming("hosts-selfloop", "selfloop.test", &["127.0.0.1"]);
    // A port the OS hands out, free again for the relay to listen on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port();
    let (listen, upstream) = (format!("127.0.0.1:{port}"), format!("selfloop.test:{port}"));

    let check = run_tcprelay_with_hosts(&hosts, &["--check", "-l", &listen, "-u", &upstream]);
    let stderr = text(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    let named = format!("upstream {upstream} resolves to {listen}, the route's own listen address");
    assert!(stderr.contains(&named), "{stderr}");

    let args = ["-l", &listen, "-u", &upstream, "--admin", "127.0.0.1:0"];
    let relay = RelayProcess::start_with_hosts(&hosts, "", &args, 1, true);
    const CLIENTS: usize = 20;
    for n in 0..CLIENTS {
        let client = connect(relay.addr);
        let reply = read_all(&client).unwrap_or_else(|e| panic!("client {n}: {e}"));
        assert!(reply.is_empty(), "client {n} is closed at once, nothing relayed");
    }
    let line = relay.log_line_with("reason=self_loop");
    assert!(line.contains("conn="), "{line}");
    let admin = relay.admin.expect("the relay was started with --admin");
    let route = format!("route=\"{listen}\"");
    let counted = |metrics: &str, name: &str, value: usize| {
        metrics.contains(&format!("{name}{{{route}}} {value}"))
            || metrics.contains(&format!("{name}{{{route},reason=\"self_loop\"}} {value}"))
    };
    // The last client's close is counted just before it sees it; the metrics follow.
    assert!(eventually(|| {
        let (_, metrics) = http_get(admin, "/metrics");
        counted(&metrics, "tcprelay_connections_closed_total", CLIENTS)
    }));
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(counted(&metrics, "tcprelay_connections_accepted_total", CLIENTS), "{metrics}");
    assert!(counted(&metrics, "tcprelay_connections_active", 0), "{metrics}");
    let log = relay.kill_and_collect_log();
    let warnings = log.iter().filter(|line| line.contains("refusing the loop")).count();
    assert_eq!(warnings, 1, "one warning for the storm, not one per client: {log:#?}");
}
