//! The life cycle without signals: reload with live connections kept, the
//! client subcommands `tcprelay reload|drain|status`, `--listen stdin` and `--pid-file`.
//! Every test runs the binary, as an operator or an init system would.
#![cfg(unix)]
#![forbid(unsafe_code)]

mod support;

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use support::*;

/// A config file with an admin endpoint and one route line per `(name, upstream)`, all on
/// ephemeral ports.
fn config(routes: &[(&str, SocketAddr)]) -> String {
    let mut text = String::from("admin 127.0.0.1:0\nlog-level info\n");
    for (name, upstream) in routes {
        text.push_str(&format!("route 127.0.0.1:0 -> {upstream} name={name}\n"));
    }
    text
}

/// The relay started from `file`, with `routes` routes and its admin endpoint.
fn relay_from(file: &ConfigFile, routes: usize) -> RelayProcess {
    RelayProcess::start_routes(&["--config", file.arg()], routes, true)
}

/// Runs `tcprelay ACTION --admin ADDR [more]`.
fn client(action: &str, admin: SocketAddr, more: &[&str]) -> Output {
    let admin = admin.to_string();
    let mut args = vec![action, "--admin", &admin];
    args.extend_from_slice(more);
    run_tcprelay(&args)
}

/// `tcprelay reload`, which must succeed; returns what it printed.
fn reload(relay: &RelayProcess) -> String {
    let output = client("reload", relay.admin.expect("the relay has an admin endpoint"), &[]);
    assert_eq!(output.status.code(), Some(0), "reload: {}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn reloads_under_load_refuse_no_client_and_new_clients_get_the_new_upstream() {
    let (one, two) = (Upstream::banner("one"), Upstream::banner("two"));
    let file = ConfigFile::new("load.conf", &config(&[("web", one.addr)]));
    let relay = relay_from(&file, 1);
    let addr = relay.addr;
    // A client loop against the route's listener, which every reload keeps.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(Mutex::new(0usize));
    let client_loop = {
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let answer = TcpStream::connect_timeout(&addr, TIMEOUT).and_then(|stream| {
                    stream.set_read_timeout(Some(TIMEOUT))?;
                    let mut banner = String::new();
                    (&stream).read_to_string(&mut banner).map(|_| banner)
                });
                match answer {
                    Ok(banner) if banner == "one" || banner == "two" => {
                        *served.lock().expect("nothing panicked holding the served count") += 1
                    }
                    Ok(banner) => failures
                        .lock()
                        .expect("nothing panicked holding the failure list")
                        .push(format!("banner {banner:?}")),
                    Err(error) => failures
                        .lock()
                        .expect("nothing panicked holding the failure list")
                        .push(error.to_string()),
                }
            }
        })
    };
    for round in 0..10 {
        let (name, upstream) = if round % 2 == 0 { ("two", &two) } else { ("one", &one) };
        file.write(&config(&[("web", upstream.addr)]));
        let summary = reload(&relay);
        assert!(summary.contains("changed web"), "{summary}");
        // A client accepted after the reload is served by the new upstream.
        assert!(eventually(|| served_by(addr) == name), "round {round}: never served by {name}");
    }
    stop.store(true, Ordering::SeqCst);
    client_loop.join().expect("the client loop ends without panicking");
    let failures = failures.lock().expect("nothing panicked holding the failure list");
    assert!(failures.is_empty(), "clients refused or cut during reloads: {failures:?}");
    assert!(
        *served.lock().expect("nothing panicked holding the served count") > 0,
        "the client loop never got through"
    );
    let (status, metrics) =
        http_get(relay.admin.expect("the relay has an admin endpoint"), "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tcprelay_reloads_total{result=\"applied\"} 10\n"), "{metrics}");
    assert!(metrics.contains("tcprelay_reloads_total{result=\"refused\"} 0\n"), "{metrics}");
}

#[test]
fn a_connection_open_across_a_reload_keeps_flowing_on_its_old_upstream() {
    let (old, new) = (Upstream::echo(), Upstream::echo());
    let file = ConfigFile::new("across.conf", &config(&[("web", old.addr)]));
    let relay = relay_from(&file, 1);
    let live = connect(relay.addr);
    assert_eq!(round_trip(&live, b"before the reload"), b"before the reload");

    file.write(&config(&[("web", new.addr)]));
    reload(&relay);
    let line = relay.log_line_with("config reloaded");
    assert!(line.contains("changed=web(127.0.0.1:"), "{line}");
    assert!(line.contains("added=- removed=-"), "{line}");

    // The live connection still flows, end to end, through the upstream it started with.
    let data = pattern(13, 256 * 1024);
    assert_eq!(checksum(&round_trip(&live, &data)), checksum(&data));
    // A new client gets the new upstream.
    let fresh = connect(relay.addr);
    assert_eq!(exchange(&fresh, b"after"), b"after");
    assert_eq!((old.accepted(), new.accepted()), (1, 1));
    // The old connection still half-closes cleanly.
    live.shutdown(Shutdown::Write)
        .expect("the client half-closes the connection it kept across the reload");
    assert_eq!(
        read_all(&live).expect("the old upstream's EOF comes back after the client's half-close"),
        b""
    );
}

#[test]
fn a_file_that_does_not_parse_is_refused_with_its_line_and_column_and_nothing_changes() {
    let (one, two) = (Upstream::banner("one"), Upstream::banner("two"));
    let file = ConfigFile::new("bad.conf", &config(&[("web", one.addr)]));
    let relay = relay_from(&file, 1);
    let admin = relay.admin.expect("the relay has an admin endpoint");
    let good = config(&[("web", two.addr)]);
    file.write(&format!("{good}    idle-timeout=5x\n"));

    let output = client("reload", admin, &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let place = format!("{}:4:18: ", file.arg());
    assert!(stderr.contains(&place), "{stderr}");
    assert!(stderr.contains("\"5x\""), "{stderr}");
    // The same message --check prints for that file.
    let check = run_tcprelay(&["--config", file.arg(), "--check"]);
    assert_eq!(check.status.code(), Some(2));
    let checked = text(&check.stderr);
    let message = checked
        .lines()
        .next()
        .expect("--check prints an error line for the file that does not parse")
        .trim_start_matches("tcprelay: ");
    assert!(stderr.contains(message), "reload: {stderr}\n--check: {checked}");
    let line = relay.log_line_with("reload refused");
    assert!(line.contains(&place), "{line}");

    // The old configuration keeps running.
    assert_eq!(served_by(relay.addr), "one");
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(metrics.contains("tcprelay_reloads_total{result=\"refused\"} 1\n"), "{metrics}");
}

#[test]
fn a_new_listener_that_cannot_bind_refuses_the_whole_reload() {
    let one = Upstream::banner("one");
    let file = ConfigFile::new("bind.conf", &config(&[("web", one.addr)]));
    let relay = relay_from(&file, 1);
    let admin = relay.admin.expect("the relay has an admin endpoint");
    let taken =
        TcpListener::bind("127.0.0.1:0").expect("the test binds a loopback port to hold it taken");
    let port = taken.local_addr().expect("the held listener has a local address").port();
    // The kept route changes too: a refused reload must not apply even that.
    let good = config(&[("web", dead_addr())]);
    file.write(&format!("{good}route 127.0.0.1:{port} -> {} name=new\n", one.addr));

    let output = client("reload", admin, &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("{}:4:7: cannot listen on", file.arg())), "{stderr}");
    assert_eq!(served_by(relay.addr), "one", "the running configuration changed");
    let status = text(&client("status", admin, &[]).stdout);
    assert_eq!(status.matches("route ").count(), 1, "{status}");
}

#[test]
fn a_removed_route_drains_and_a_new_one_listens() {
    let (one, two, three) = (Upstream::echo(), Upstream::banner("two"), Upstream::banner("three"));
    let file = ConfigFile::new("routes.conf", &config(&[("one", one.addr), ("two", two.addr)]));
    let relay = relay_from(&file, 2);
    let admin = relay.admin.expect("the relay has an admin endpoint");
    let (addr_one, addr_two) = (relay.routes[0], relay.routes[1]);
    let live = connect(addr_one);
    assert_eq!(round_trip(&live, b"ping"), b"ping");

    file.write(&config(&[("two", two.addr), ("three", three.addr)]));
    let summary = reload(&relay);
    assert!(summary.contains("added three(127.0.0.1:"), "{summary}");
    assert!(summary.contains(&format!("removed one({addr_one})")), "{summary}");
    assert!(summary.contains("changed none; 1 unchanged"), "{summary}");

    // The removed route accepts no one, but its live connection finishes.
    assert!(eventually(|| TcpStream::connect_timeout(&addr_one, TIMEOUT).is_err()));
    let status = text(&client("status", admin, &[]).stdout);
    assert!(
        status.contains(&format!("route one listen={addr_one} connections=1 state=leaving\n")),
        "{status}"
    );
    assert_eq!(round_trip(&live, b"still here"), b"still here");
    live.shutdown(Shutdown::Write)
        .expect("the client half-closes its connection on the removed route");
    assert_eq!(
        read_all(&live)
            .expect("after the client's half-close the removed route's upstream EOF comes back"),
        b""
    );
    drop(live);

    // The kept route never moved; the new one serves on the address status shows.
    assert_eq!(served_by(addr_two), "two");
    let status = text(&client("status", admin, &[]).stdout);
    let three_addr: SocketAddr = status
        .lines()
        .find_map(|line| line.strip_prefix("route three listen=")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no route three in {status}"));
    assert_eq!(served_by(three_addr), "three");
    assert!(eventually(|| {
        let status = text(&client("status", admin, &[]).stdout);
        !status.contains("route one ")
    }));
}

#[test]
fn status_prints_each_route_its_connections_and_each_upstream_with_its_state() {
    let up = Upstream::echo();
    let dead = dead_addr();
    let file = ConfigFile::new(
        "status.conf",
        &format!("admin 127.0.0.1:0\nroute 127.0.0.1:0 -> {dead} {} name=web\n", up.addr),
    );
    let relay = relay_from(&file, 1);
    let client_conn = connect(relay.addr);
    assert_eq!(round_trip(&client_conn, b"hi"), b"hi"); // dead first: backs off, then up
    let output = client("status", relay.admin.expect("the relay has an admin endpoint"), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let expected = format!(
        "route web listen={} connections=1 state=serving\n  upstream {dead} down \
         connections=0\n  upstream {} up connections=1\n",
        relay.addr, up.addr
    );
    assert_eq!(text(&output.stdout), expected);
}

#[test]
fn the_client_exits_1_when_refused_or_unreachable_and_2_for_usage_mistakes() {
    // Unreachable: nobody listens there.
    let output = client("status", dead_addr(), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot reach the admin endpoint 127.0.0.1:1"));
    // Refused: routes from the command line have no file to re-read.
    let up = Upstream::echo();
    let relay = RelayProcess::start_routes(
        &["--listen", ":0", "--upstream", &up.addr.to_string(), "--admin", ":0"],
        1,
        true,
    );
    let output = client("reload", relay.admin.expect("the relay has an admin endpoint"), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("409: reload refused: nothing to reload"));
    // Usage.
    for args in [&["status"][..], &["drain", "--admin"], &["reload", "--admin", ":1", "x"]] {
        let output = run_tcprelay(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(text(&output.stderr).contains("tcprelay: "), "{args:?}");
    }
    // A config file without an admin line says so.
    let file = ConfigFile::new("no-admin.conf", "route :0 -> :1\n");
    let output = run_tcprelay(&["status", "--config", file.arg()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("has no admin line"));
}

#[test]
fn drain_waits_until_the_relay_has_stopped() {
    let up = Upstream::echo();
    let file = ConfigFile::new(
        "drain.conf",
        &format!("admin 127.0.0.1:0\ndrain-timeout 10s\nroute 127.0.0.1:0 -> {}\n", up.addr),
    );
    let mut relay = relay_from(&file, 1);
    let live = connect(relay.addr);
    assert_eq!(round_trip(&live, b"x"), b"x");
    let admin = relay.admin.expect("the relay has an admin endpoint");
    let drain = thread::spawn(move || client("drain", admin, &[]));
    // The drain has begun: new clients are refused, the live one still flows.
    assert!(eventually(|| TcpStream::connect_timeout(&relay.addr, TIMEOUT).is_err()));
    assert_eq!(round_trip(&live, b"y"), b"y");
    assert!(!drain.is_finished(), "drain returned while a connection was still open");
    live.shutdown(Shutdown::Write).expect("the client half-closes its connection during the drain");
    assert_eq!(
        read_all(&live)
            .expect("after the client's half-close the upstream's EOF comes back during the drain"),
        b""
    );
    drop(live);
    let output = drain.join().expect("the `tcprelay drain` thread ends without panicking");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "draining, up to 10s\ndrained: the relay has stopped\n");
    assert_eq!(relay.wait_for_exit(), Some(0));
}

#[test]
fn a_listening_socket_passed_as_stdin_is_served_and_closed_at_exit() {
    use std::os::fd::OwnedFd;
    let up = Upstream::echo();
    // What systemd's socket unit does: bind, listen, and hand the socket over as fd 0.
    let listener = TcpListener::bind("127.0.0.1:0")
        .expect("the test binds a loopback listener to hand over as stdin");
    let addr =
        listener.local_addr().expect("the listener handed over as stdin has a local address");
    let stdin = std::process::Stdio::from(OwnedFd::from(listener));
    let upstream = up.addr.to_string();
    let relay = RelayProcess::start_with_stdin(stdin, &["--listen", "stdin", "-u", &upstream]);
    assert_eq!(relay.addr, addr, "the `listening on` line names the inherited socket");
    let data = pattern(7, 64 * 1024);
    assert_eq!(checksum(&echo_through(addr, &data)), checksum(&data));
    // The relay held the only other copy: once it is gone, nobody listens there. (Read from
    // the kernel's socket table: a connect to a free loopback port may meet a parallel
    // test's new listener, or even connect to itself.)
    assert!(is_listening(addr));
    drop(relay);
    assert!(!is_listening(addr), "the inherited socket outlived the relay");
}

/// Whether a socket listens on `addr` (IPv4), by /proc/net/tcp (state 0A is LISTEN).
fn is_listening(addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else { panic!("an IPv4 address") };
    let local = format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port());
    let table =
        std::fs::read_to_string(proc_file("/proc/net/tcp".into())).expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
    })
}

#[test]
fn stdin_that_is_not_a_listening_socket_is_refused_saying_what_to_change() {
    // `output()` gives the child /dev/null as stdin.
    let output = run_tcprelay(&["--listen", "stdin", "--upstream", ":1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("--listen stdin: standard input is not a TCP socket"), "{stderr}");
    // A connected socket, as systemd's Accept=yes or inetd's nowait would pass.
    let listener = TcpListener::bind("127.0.0.1:0")
        .expect("the test binds a loopback listener to connect a socket to");
    let connected =
        TcpStream::connect(listener.local_addr().expect("the test's listener has a local address"))
            .expect("a client connects to the test's own listener");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["--listen", "stdin", "--upstream", ":1"])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(connected)))
        .output()
        .expect("the tcprelay binary runs with a connected socket as stdin");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("is a connected socket (systemd Accept=yes"), "{stderr}");
    // Two routes cannot both take stdin; --check says so before anything runs.
    let output = run_tcprelay(&["--route", "stdin=:1", "--route", "stdin=:2", "--check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("both listen on stdin"));
    let output = run_tcprelay(&["--route", "stdin=:1", "--check"]);
    assert!(text(&output.stdout).contains("route stdin -> 127.0.0.1:1"));
}

/// `tcprelay --listen stdin -u :1` with a socket perl (in every Debian system) made as its
/// standard input: `PERL` is the code between creating the socket `$s` and handing it over.
/// Its output once it exits; a relay that is still running after the bounded wait (it took
/// the socket) is killed, its exit code then `None`.
fn relay_with_stdin_socket(kind: &str, perl: &str) -> Output {
    let script = format!(
        "use Socket; socket(my $s, PF_INET, {kind}, 0) or die $!; {perl} \
         open(STDIN, '<&', $s) or die $!; exec @ARGV or die $!"
    );
    let mut child = std::process::Command::new("perl")
        .args(["-e", &script, env!("CARGO_BIN_EXE_tcprelay"), "--listen", "stdin", "-u", ":1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("perl runs tcprelay with a socket as stdin");
    if !eventually(|| child.try_wait().is_ok_and(|status| status.is_some())) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("collect tcprelay's output")
}

/// Issue 22, item 14: a UDP socket, a TCP socket never bound and one bound but not
/// listening used to be taken: `listening on 0.0.0.0:0`, then a warning every 10 s while
/// every client was refused. Each is refused at start with exit 1, naming what was given.
#[test]
fn stdin_that_is_udp_unbound_or_not_listening_is_refused_at_start() {
    let bind = "bind($s, pack_sockaddr_in(0, inet_aton('127.0.0.1'))) or die $!;";
    let cases = [
        ("SOCK_DGRAM", bind, "is a UDP (datagram) socket bound to 127.0.0.1:"),
        ("SOCK_STREAM", "", "is a TCP socket that was never bound (0.0.0.0:0)"),
        ("SOCK_STREAM", bind, "that does not listen (no listen() call)"),
    ];
    for (kind, perl, expected) in cases {
        let output = relay_with_stdin_socket(kind, perl);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{kind} {perl}: {stderr}");
        assert!(stderr.contains(expected), "{kind} {perl}: {stderr}");
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
    // A listening one is served as before: a_listening_socket_passed_as_stdin_is_served...
}

#[test]
fn the_pid_file_is_written_once_listening_guards_against_a_second_relay_and_goes_at_exit() {
    let up = Upstream::echo();
    let pid_path = std::env::temp_dir().join(format!("tcprelay-test-{}.pid", std::process::id()));
    // A stale file left by a process that is not a tcprelay (this test) is replaced.
    std::fs::write(&pid_path, format!("{}\n", std::process::id())).unwrap_or_else(|e| {
        panic!("the test writes a stale pid file at {}: {e}", pid_path.display())
    });
    let pid_arg = pid_path.to_str().expect("a UTF-8 temp path");
    let upstream = up.addr.to_string();
    let args = ["-l", ":0", "-u", &upstream, "--admin", ":0", "--pid-file", pid_arg];
    let mut relay = RelayProcess::start_routes(&args, 1, true);
    let written = std::fs::read_to_string(&pid_path)
        .unwrap_or_else(|e| panic!("the relay wrote {} once listening: {e}", pid_path.display()));
    assert_eq!(written, format!("{}\n", relay.pid()));

    // A second relay with the same pid file refuses to start.
    let output = run_tcprelay(&args);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("names process {}, a tcprelay", relay.pid())), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&pid_path)
            .expect("the pid file is still there after the second relay refused"),
        written,
        "the file was touched"
    );

    // A clean exit (a drain) removes it.
    let output = client("drain", relay.admin.expect("the relay has an admin endpoint"), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
    assert!(!pid_path.exists(), "the pid file outlived a clean exit");
}
