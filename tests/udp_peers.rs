//! UDP routes with real clients and servers on loopback (issue #27): `dig` against `dnsmasq`
//! answering `*.example.test` itself (never the internet), `socat` as the UDP client and as
//! the UDP server, and `iperf3 -u` through a TCP and a UDP route on one port (its control
//! connection is TCP). Each needs a Debian package; `.ci/run` installs them.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use support::*;

/// A child process killed and reaped when dropped, whose stdout or stderr lines arrive on a
/// channel so a test can wait (bounded) for the one that says it is ready.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Peer {
    /// Starts `command` reading the lines of its stderr (`from_stderr`) or stdout.
    fn start(mut command: Command, from_stderr: bool) -> Peer {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // A group of its own, so that dropping it ends the children it forks too (socat's
        // `fork`), which hold its output open.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let output: Box<dyn std::io::Read + Send> = if from_stderr {
            Box::new(child.stderr.take().expect("stderr is piped"))
        } else {
            Box::new(child.stdout.take().expect("stdout is piped"))
        };
        let (send, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Peer { child, lines, reader: Some(reader) }
    }

    /// Waits (bounded) for a line containing `needle`; panics with the lines seen instead.
    fn wait_for(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            if line.contains(needle) {
                return line;
            }
            seen.push(line);
        }
        panic!("no line with {needle:?} within {TIMEOUT:?}: {seen:#?}")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let group = format!("kill -KILL -{}", self.child.id());
        let _ = Command::new("sh").args(["-c", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A program Debian installs in /usr/sbin, which may not be on a user's PATH.
fn sbin(program: &str) -> String {
    let path = format!("/usr/sbin/{program}");
    if std::path::Path::new(&path).exists() { path } else { program.to_string() }
}

/// dnsmasq on 127.0.0.1:`port` answering every name under example.test with 127.0.0.7
/// and refusing the rest (no upstream servers, no /etc/hosts, no config file).
fn dnsmasq(port: u16) -> Peer {
    let mut command = Command::new(sbin("dnsmasq"));
    command.args([
        "--keep-in-foreground",
        &format!("--port={port}"),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--pid-file",
        "--log-facility=-",
        "--address=/example.test/127.0.0.7",
    ]);
    let peer = Peer::start(command, true);
    peer.wait_for("started, version");
    peer
}

/// `dig +short NAME A` at `server`, one try of at most 5 s: the answer's lines.
fn dig(server: SocketAddr, name: &str) -> String {
    let output = Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            "+short",
            "+tries=1",
            "+timeout=5",
            name,
            "A",
        ])
        .output()
        .expect("run dig");
    assert!(output.status.success(), "dig {name}: {}", text(&output.stdout));
    text(&output.stdout).trim().to_string()
}

/// `dig` asks dnsmasq through the relay, over IPv4 and over IPv6 (the relay's listener on
/// ::1, its upstream on 127.0.0.1), with `udp-responses 1` as a DNS route should have: each
/// answer arrives and each query's flow ends with its answer.
#[test]
#[ignore = "needs dnsmasq and dig: apt-get install dnsmasq-base bind9-dnsutils"]
fn dig_gets_dnsmasqs_answers_through_the_relay() {
    let port = free_port();
    let _server = dnsmasq(port);
    let upstream = format!("127.0.0.1:{port}");
    let args = ["--route", "udp:127.0.0.1:0=PLACEHOLDER", "--route", "udp:[::1]:0=PLACEHOLDER"];
    let args: Vec<String> = args.iter().map(|arg| arg.replace("PLACEHOLDER", &upstream)).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--udp-responses", "1"]);
    let relay = RelayProcess::start_routes(&args, 2, false);
    for (n, &listener) in relay.routes.iter().enumerate() {
        for name in ["www.example.test", "a.b.example.test", "example.test"] {
            assert_eq!(dig(listener, name), "127.0.0.7", "{name} through {listener}");
            let flow = FlowLine::next(&relay);
            assert_eq!(flow.field("reason"), "responses", "route {n}: {flow:?}");
            assert_eq!(flow.number("datagrams_to_client"), 1, "{flow:?}");
        }
    }
    // A name dnsmasq does not serve is refused by dnsmasq, not lost by the relay.
    let output = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &relay.addr.port().to_string(),
            "+tries=1",
            "+timeout=5",
            "elsewhere.test",
        ])
        .output()
        .expect("run dig");
    assert!(text(&output.stdout).contains("status: REFUSED"), "{}", text(&output.stdout));
}

/// socat as the client (`STDIO` to `UDP:relay`): each line it sends comes back through the
/// relay from an echo upstream, four socat clients at once, each its own flow.
#[test]
#[ignore = "needs socat: apt-get install socat"]
fn socat_as_the_client_gets_its_lines_back() {
    let upstream = UdpUpstream::echo();
    let relay = udp_relay_to(upstream.addr, &[]);
    let mut clients: Vec<Peer> = (0..4)
        .map(|_| {
            let mut command = Command::new("socat");
            command.args(["-t", "10", "STDIO", &format!("UDP:{}", relay.addr)]);
            Peer::start(command, false)
        })
        .collect();
    for round in 0..10 {
        for (n, client) in clients.iter_mut().enumerate() {
            let line = format!("socat {n} round {round}");
            // One write of one line: socat sends what one read of its stdin gets as one datagram.
            let stdin = client.child.stdin.as_mut().expect("socat's stdin is piped");
            stdin.write_all(format!("{line}\n").as_bytes()).expect("write to socat");
            stdin.flush().expect("flush socat's stdin");
            assert_eq!(client.wait_for(&line), line);
        }
    }
    assert_eq!(upstream.sources().len(), 4, "one flow per socat");
}

/// socat as the server (`UDP-LISTEN` with `fork`, each peer echoed by its own `cat`): a flow
/// per client, each client's datagrams echoed through the relay in order.
#[test]
#[ignore = "needs socat: apt-get install socat"]
fn socat_as_the_server_echoes_each_flow() {
    let port = free_port();
    let mut command = Command::new("socat");
    command.args([
        "-d",
        "-d",
        &format!("UDP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
        "EXEC:cat",
    ]);
    let server = Peer::start(command, true);
    server.wait_for("listening on");
    let relay = udp_relay_to(SocketAddr::from(([127, 0, 0, 1], port)), &[]);
    let clients: Vec<_> = (0..8).map(|_| udp_client("127.0.0.1")).collect();
    for round in 0..10 {
        for (n, client) in clients.iter().enumerate() {
            let sent = format!("client {n} round {round}\n");
            assert_eq!(text(&request(client, relay.addr, sent.as_bytes())), sent);
        }
    }
}

/// `iperf3 -u` through the relay: its control connection on a TCP route and its datagrams
/// on a UDP route of the same port. Prints throughput and loss (not asserted: a shared
/// machine's load decides them); asserts the run completes and datagrams got through.
#[test]
#[ignore = "needs iperf3: apt-get install iperf3"]
fn iperf3_udp_runs_through_the_relay() {
    let server_port = free_port();
    let server_addr = format!("127.0.0.1:{server_port}");
    let mut command = Command::new("iperf3");
    command.args([
        "-s",
        "-1",
        "--forceflush",
        "--bind",
        "127.0.0.1",
        "-p",
        &server_port.to_string(),
    ]);
    let server = Peer::start(command, false);
    server.wait_for("Server listening");

    let relay_port = free_port();
    let tcp_route = format!("127.0.0.1:{relay_port}={server_addr}");
    let udp_route = format!("udp:127.0.0.1:{relay_port}={server_addr}");
    let _relay =
        RelayProcess::start_routes(&["--route", &tcp_route, "--route", &udp_route], 2, false);
    let output = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-p", &relay_port.to_string(), "-u", "-b", "100M", "-l", "1400"])
        .args(["-t", "3", "--json", "--connect-timeout", "5000"])
        .output()
        .expect("run iperf3");
    let report = text(&output.stdout);
    assert!(output.status.success(), "iperf3 failed: {report}");
    // The last "sum" object is end.sum, the whole run as the receiver saw it.
    let summary = report.rsplit("\"sum\":").next().filter(|sum| sum.contains("lost_packets"));
    let summary = summary.unwrap_or_else(|| panic!("no end.sum in {report}"));
    let number = |name: &str| -> f64 {
        let after =
            summary.split(&format!("\"{name}\":")).nth(1).unwrap_or_else(|| panic!("no {name}"));
        after
            .trim_start()
            .split([',', '\n', '}'])
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (packets, lost) = (number("packets"), number("lost_packets"));
    println!(
        "iperf3 -u through the relay: {:.1} Mbit/s offered, {packets} datagrams, {lost} lost ({:.2}%)",
        number("bits_per_second") / 1e6,
        number("lost_percent")
    );
    assert!(packets > lost, "no datagram got through: {summary}");
}
