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

/// The relay with a dead name's route and a plain route to an echo upstream, under `ulimit`,
/// and what they need kept alive.
struct DeadNameRelay {
    relay: RelayProcess,
    /// A route to `dead.test:PORT`, every one of its addresses blackholed, 5 s to connect, at
    /// most 250 clients: the rest of the process's cap stays the plain route's.
    dead_route: std::net::SocketAddr,
    /// A route to the echo upstream.
    plain_route: std::net::SocketAddr,
    _blackholes: Vec<Blackhole>,
    _files: (ConfigFile, ConfigFile),
    _echo: Upstream,
}

impl DeadNameRelay {
    /// `dead.test` with `addresses` blackholed addresses (127.0.0.2 on), the relay under
    /// `ulimit`; `tag` names its files.
    fn start(addresses: u8, ulimit: &str, tag: &str) -> DeadNameRelay {
        let ips = loopback_ips(2, 1 + addresses);
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let blackholes = Blackhole::on_one_port(&ips);
        let hosts = hosts_naming(&format!("hosts-{tag}"), "dead.test", &ips);
        let echo = Upstream::echo();
        let config = ConfigFile::new(
            &format!("dead-{tag}.conf"),
            &format!(
                "connect-timeout 5s\nmax-connections 5000\n\
                 route 127.0.0.1:0 -> dead.test:{} max-connections=250\n\
                 route 127.0.0.1:0 -> {}\n",
                blackholes[0].addr.port(),
                echo.addr
            ),
        );
        let args = ["--config", config.arg()];
        let relay = RelayProcess::start_with_hosts(&hosts, ulimit, &args, 2, false);
        let (dead_route, plain_route) = (relay.routes[0], relay.routes[1]);
        DeadNameRelay {
            relay,
            dead_route,
            plain_route,
            _blackholes: blackholes,
            _files: (hosts, config),
            _echo: echo,
        }
    }

    /// Waits for the relay to close every one of `clients`, then for the last attempts to
    /// end (by their deadline) and every dial socket with them; the threads and descriptors
    /// left.
    fn outlast(&self, clients: &[TcpStream]) -> (u64, usize) {
        for client in clients {
            closed_by_relay(client);
        }
        let relay = &self.relay;
        assert!(eventually(|| relay.open_fds().len() <= SETTLED_FDS), "{:?}", relay.open_fds());
        (relay.status("Threads"), relay.open_fds().len())
    }
}

/// Under `ulimit -v 100000` (100 MB), 300 clients of a name with 16 blackholed addresses:
/// before, each attempt was a thread of its own that the cap did not count, and the process
/// aborted ("failed to allocate an alternative stack", 1,625 threads). Now each attempt
/// takes half a connection's slot of the cap, and attempts past their bound wait for the
/// previous one: no abort, and the plain route serves throughout.
#[test]
fn under_100_mb_a_storm_of_clients_of_a_dead_name_does_not_abort_the_relay() {
    if let Some(emulator) = emulator() {
        eprintln!("not measured under {emulator}: ulimit -v would bound the emulator too");
        return;
    }
    if !can_use_private_hosts() {
        return;
    }
    let mut dead = DeadNameRelay::start(16, "-v 100000", "100mb");
    let (cap, limited_by) = dead.relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_AS");

    let clients = storm(dead.dead_route, 300);
    // The first close comes after every attempt of the first clients was started.
    closed_by_relay(&clients[0]);
    let threads_in_storm = dead.relay.status("Threads");
    assert!(dead.relay.is_running(), "the relay died in the storm");
    assert!(served(dead.plain_route, 1), "the plain route serves during the storm");
    let (threads, fds) = dead.outlast(&clients);
    assert!(dead.relay.is_running(), "the relay died in the storm");
    assert!(served(dead.plain_route, 2), "the plain route serves after the storm");
    eprintln!(
        "cap {cap}: {threads_in_storm} threads in the storm; {threads} threads, {fds} fds after"
    );
    let log = dead.relay.kill_and_collect_log();
    assert!(!aborted(&log), "{log:#?}");
}

/// Under `ulimit -n 1024`, 300 clients of a name with 4 blackholed addresses: before, their
/// attempts held about 1,000 descriptors and a plain route's clients failed with
/// `connect_failed` (EMFILE). Now each dial socket takes half a connection's slot of the
/// cap, which keeps every descriptor counted, and the plain route's clients are served.
#[test]
fn under_1024_descriptors_dial_sockets_leave_a_plain_routes_clients_served() {
    if !can_use_private_hosts() {
        return;
    }
    let mut dead = DeadNameRelay::start(4, "-n 1024", "1024fds");
    let (_, limited_by) = dead.relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    let plain_route = dead.plain_route;

    let clients = storm(dead.dead_route, 300);
    closed_by_relay(&clients[0]);
    let fds_in_storm = dead.relay.open_fds().len();
    for n in 0..20 {
        assert!(served(plain_route, n), "plain client {n} during the storm ({fds_in_storm} fds)");
    }
    let (threads, fds) = dead.outlast(&clients);
    assert!(dead.relay.is_running());
    eprintln!("{fds_in_storm} fds in the storm; {threads} threads, {fds} fds after");
    let log = dead.relay.kill_and_collect_log();
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
