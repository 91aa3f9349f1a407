//! The Go programs of the classroom chapter (`docs/go/`), built with
//! `go build` and driven over loopback with the scenarios tcprelay's own
//! tests use. Each test proves one claim of `docs/go-to-rust.md`:
//!
//! - `seed`, the article's code, loses the client's first message;
//! - `seed` and `articlefix` (the article's fix) put every client on ONE
//!   upstream connection;
//! - `articlefix` never half-closes, and closes the client before the reply;
//! - `correct` passes every scenario.
//!
//! The last tests run the commands of `docs/lab.md`: the measurement
//! programs under `tests/classroom/`, `strace`, and `nc`.
//!
//! These tests need `go`, `strace` and the OpenBSD `nc` (Debian:
//! `apt-get install golang-go strace netcat-openbsd`), so plain `cargo test`
//! leaves them out: each is `#[ignore]`d with the tools it needs, and
//! `cargo test -- --include-ignored` runs them (`.ci/run` always does). Run
//! without a tool, they fail, saying how to install it.
// The lab's commands are Unix shell lines (sh -c, process groups, symlinks): Linux and macOS.
#![cfg(unix)]
#![forbid(unsafe_code)]
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::go::{build_go_program, go_command};
use support::{
    RelayProcess, SECOND_MESSAGE as SECOND, TIMEOUT as WAIT, assert_silent, connect, first_message,
    handing_upstream, openbsd_nc, read_exactly, read_to_eof, send, text, who_receives,
};

/// How long we listen for an EOF that must NOT come. Used only after the
/// program has shown, by something we observed, that the moment it would
/// have sent the EOF is already past.
const QUIET: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// The seed's bug: the first message is read and never forwarded.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn seed_loses_the_first_message() {
    let (upstream, accepted) = handing_upstream();
    let seed = go_proxy("seed", upstream.addr);
    let shared = accepted.next("the seed's start-up dial");

    let client = connect(seed.addr);
    send(&client, &first_message());
    send(&client, SECOND);

    // TCP keeps order: had the first message been forwarded, its 128 bytes
    // would come first. What comes first is the second message, so the
    // first was taken by `conn.Read(data)` and dropped.
    let received = read_exactly(&shared, SECOND.len(), "the upstream, behind the seed");
    assert_eq!(
        text(&received),
        text(SECOND),
        "the upstream should have received the second message first: the seed drops the first"
    );

    drop(client);
    drop(seed);
    assert_eq!(upstream.accepted(), 1, "the seed dials the upstream once, at start-up");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn articlefix_and_correct_deliver_the_first_message() {
    for program in ["articlefix", "correct"] {
        let (upstream, accepted) = handing_upstream();
        let proxy = go_proxy(program, upstream.addr);

        let client = connect(proxy.addr);
        send(&client, &first_message());
        send(&client, SECOND);

        let upstream_side = accepted.next(program);
        let expected = [first_message().as_slice(), SECOND].concat();
        let received = read_exactly(&upstream_side, expected.len(), program);
        assert_eq!(text(&received), text(&expected), "{program}: both messages, in order");
    }
}

// ---------------------------------------------------------------------------
// What the article does not say (1): one upstream connection for everyone.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn seed_and_articlefix_put_two_clients_on_one_upstream_connection() {
    for (program, swallows_first_message) in [("seed", true), ("articlefix", false)] {
        let (upstream, accepted) = handing_upstream();
        let proxy = go_proxy(program, upstream.addr);
        let shared = accepted.next(program);
        let say = |client: &TcpStream, line: &[u8]| {
            if swallows_first_message {
                send(client, &first_message()); // the seed's conn.Read(data) eats this
            }
            send(client, line);
        };

        let a = connect(proxy.addr);
        say(&a, b"A: hello\n");
        assert_eq!(text(&read_exactly(&shared, 9, program)), "A: hello\n");
        send(&shared, b"reply to A\n");
        assert_eq!(text(&read_exactly(&a, 11, "client A")), "reply to A\n");

        let b = connect(proxy.addr);
        say(&b, b"B: hello\n");
        // B's line arrives on the SAME upstream connection as A's.
        assert_eq!(
            text(&read_exactly(&shared, 9, program)),
            "B: hello\n",
            "{program}: B's bytes should follow A's on the one shared upstream stream"
        );

        // The upstream answers B. A byte stream carries no "to whom": the
        // reply goes to whichever handler is reading the shared dstConn. Go
        // holds a conn's read lock while a Read waits, so that is usually
        // A's, which has been waiting longest; we only assert "exactly one".
        send(&shared, b"reply to B\n");
        let (to_a, to_b) = who_receives(&a, &b, 11);
        let reached = match (text(&to_a).as_str(), text(&to_b).as_str()) {
            ("reply to B\n", "") => "A, the wrong client",
            ("", "reply to B\n") => "B",
            (a, b) => panic!(
                "{program}: the reply should reach exactly one client; A got {a:?}, B got {b:?}"
            ),
        };
        eprintln!("{program}: the reply meant for B reached {reached}");

        drop((a, b, shared, proxy));
        assert_eq!(upstream.accepted(), 1, "{program}: two clients, still one upstream connection");
    }
}

// ---------------------------------------------------------------------------
// What the article does not say (2) and (3): no half-close; the client is
// closed while the reply may still be on its way.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn articlefix_never_half_closes_and_closes_the_client_before_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("articlefix", upstream.addr);
    let shared = accepted.next("articlefix");

    let client = connect(proxy.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    assert_eq!(text(&read_exactly(&shared, 8, "articlefix")), "request\n");

    // The client→upstream copy saw the client's EOF and returned; its
    // deferred conn.Close() closed the client, which reads EOF: no reply
    // can reach it any more (the server has not even answered yet).
    let to_client = read_to_eof(&client, "the half-closed client");
    assert_eq!(text(&to_client), "", "articlefix closes the client before any reply");

    // That copy is over, and it never passed the EOF on: the upstream,
    // waiting for the end of the request, hears nothing at all.
    assert_silent(&shared, QUIET, "articlefix's upstream after the client half-closed");
}

// ---------------------------------------------------------------------------
// The corrected program.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_passes_the_half_close_on_and_delivers_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    let client = connect(proxy.addr);
    send(&client, &first_message());
    send(&client, SECOND);
    client.shutdown(Shutdown::Write).expect("half-close the client");

    // The upstream reads the whole request, then EOF: CloseWrite passed it on.
    let upstream_side = accepted.next("correct");
    let request = read_to_eof(&upstream_side, "correct's upstream");
    assert_eq!(text(&request), text(&[first_message().as_slice(), SECOND].concat()));

    // Only now does the server answer, and the reply still reaches the client.
    send(&upstream_side, b"the reply, sent after the request's EOF\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    let reply = read_to_eof(&client, "correct's client");
    assert_eq!(text(&reply), "the reply, sent after the request's EOF\n");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_passes_a_half_close_from_the_upstream() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    // A server that speaks first and says everything at once, then EOF.
    let client = connect(proxy.addr);
    let upstream_side = accepted.next("correct");
    send(&upstream_side, b"banner\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    assert_eq!(text(&read_to_eof(&client, "correct's client")), "banner\n");

    // The client can still talk after the server's EOF.
    send(&client, b"still here\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    assert_eq!(text(&read_to_eof(&upstream_side, "correct's upstream")), "still here\n");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_dials_one_upstream_per_client() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    let a = connect(proxy.addr);
    send(&a, b"A: hello\n");
    let upstream_a = accepted.next("correct, for A");
    assert_eq!(text(&read_exactly(&upstream_a, 9, "A's upstream")), "A: hello\n");

    let b = connect(proxy.addr);
    send(&b, b"B: hello\n");
    let upstream_b = accepted.next("correct, for B");
    assert_eq!(text(&read_exactly(&upstream_b, 9, "B's upstream")), "B: hello\n");

    // Each reply travels on its own client's connection.
    send(&upstream_b, b"reply to B\n");
    send(&upstream_a, b"reply to A\n");
    assert_eq!(text(&read_exactly(&b, 11, "client B")), "reply to B\n");
    assert_eq!(text(&read_exactly(&a, 11, "client A")), "reply to A\n");

    drop((a, b, upstream_a, upstream_b, proxy));
    assert_eq!(upstream.accepted(), 2, "one upstream connection per client");
}

// ---------------------------------------------------------------------------
// The lab's commands (docs/lab.md), run as the lab writes them: `sh -c` with
// the seat's $P and $U, in a "room" whose target/ holds this run's builds.
// Every listener starts on port 0 ($P or $U empty of meaning until then) and
// the test reads the port it got, so runs in parallel never collide.
// ---------------------------------------------------------------------------

/// Lab step 6: `go run tests/classroom/spawn_cost.go N`, and the `rustc -O`
/// builds of the Rust twins. Only the output's shape is checked: speed lives
/// in the chapter's measurements, not in assertions.
#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn lab_measurement_programs_run() {
    let go_run = run(go_command().args(["run", "tests/classroom/spawn_cost.go", "100"]));
    assert!(go_run.contains("goroutines: 100 started and parked in"), "{go_run}");

    let bins = classroom_programs();
    let threads = run(Command::new(bins.join("spawn_cost")).arg("100"));
    assert!(threads.contains("(std's default stacks): 100 started"), "{threads}");
    assert!(threads.contains("resident memory grew by"), "measured, on Linux: {threads}");
    let small = run(Command::new(bins.join("spawn_cost")).args(["100", "64"]));
    assert!(small.contains("(64 KiB stacks): 100 started"), "{small}");
    let go_copy = run(Command::new(bins.join("copy_syscalls_go")).arg("4"));
    assert!(go_copy.contains("go io.Copy: 4 MiB socket to socket in"), "{go_copy}");
    let rust_copy = run(Command::new(bins.join("copy_syscalls_rs")).arg("4"));
    assert!(rust_copy.contains("rust io::copy: 4 MiB socket to socket in"), "{rust_copy}");
}

/// Lab step 6 and the chapter's claim: Go's io.Copy between two TCP
/// connections splices; Rust's io::copy between two TcpStreams does not.
#[test]
#[ignore = "needs go, strace: apt-get install golang-go strace"]
fn lab_strace_shows_go_splices_and_rust_does_not() {
    require_tool("strace", &["-V"], "apt-get install strace");
    let bins = classroom_programs();
    let summary = |program: &str| {
        let output = Command::new("strace")
            .args(["-f", "-c", "-e", "trace=splice,read,write,recvfrom,sendto"])
            .arg(bins.join(program))
            .arg("8")
            .output()
            .unwrap_or_else(|e| panic!("cannot run strace on {program}: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "strace {program} failed:\n{stderr}");
        stderr
    };
    let go = summary("copy_syscalls_go");
    assert!(calls(&go, "splice") > 0, "Go's io.Copy should splice:\n{go}");
    let rust = summary("copy_syscalls_rs");
    assert_eq!(calls(&rust, "splice"), 0, "Rust's io::copy has no splice path:\n{rust}");
    assert!(calls(&rust, "recvfrom") >= 8 * 1024 * 1024 / 8192, "8 KiB at a time:\n{rust}");
}

/// Before class: each seat's two ports come from its number, no two seats
/// share one, and the pre-flight check tells a taken port from a free one.
#[test]
#[ignore = "needs ss: apt-get install iproute2"]
fn lab_seat_ports_and_the_preflight_check() {
    let ports = "P=$((9000 + 2*10#$SEAT)); U=$((P + 1)); echo $P $U";
    for line in ["P=$((9000 + 2*10#$SEAT))", "U=$((P + 1))"] {
        assert_lab_has(line);
    }
    let ports_of = |seat: &str| {
        let output = Command::new("bash").args(["-c", ports]).env("SEAT", seat).output();
        text(&output.expect("run bash").stdout)
    };
    let mut seen = std::collections::HashSet::new();
    for seat in 1..=30 {
        for port in ports_of(&seat.to_string()).split_whitespace() {
            assert!(seen.insert(port.to_string()), "seat {seat}: port {port} is another seat's");
        }
        // A teacher's list may say 08: the same seat, not an error ("value too great for base").
        assert_eq!(ports_of(&format!("{seat:02}")), ports_of(&seat.to_string()), "seat {seat:02}");
    }
    assert!(seen.contains("9014") && seen.contains("9015"), "seat 7 has 9014 and 9015");

    // A port held by "another process" (this test), and one nobody holds.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = stranger.local_addr().expect("local_addr").port();
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let free_port = free.local_addr().expect("local_addr").port();
    drop(free);
    let preflight = r#"ss -ltnH "( sport = :$P or sport = :$U )" | grep . && echo "TAKEN: ask for another SEAT" || echo "free: $P and $U""#;
    let mut check = Terminal::run(preflight, &Seat { p: free_port, u: taken });
    let said = text(&check.output_to_end(WAIT).expect("the check ends"));
    assert!(
        said.contains(&format!(":{taken}")) && said.ends_with("TAKEN: ask for another SEAT\n"),
        "{said}"
    );
    let mut check = Terminal::run(preflight, &Seat { p: free_port, u: free_port });
    let said = text(&check.output_to_end(WAIT).expect("the check ends"));
    assert_eq!(said, format!("free: {free_port} and {free_port}\n"));
}

/// What "address in use" looks like at each terminal, when another process
/// holds the seat's port: nc and socat (A), the Go proxies and tcprelay (B)
/// refuse to start and say so. The dangerous case is silent: with A failed,
/// a proxy started anyway connects to whoever holds $U.
#[test]
#[ignore = "needs go, nc, socat: apt-get install golang-go netcat-openbsd socat"]
fn lab_address_in_use_at_each_terminal() {
    openbsd_nc(); // fails with how to install it, unless OpenBSD netcat is there
    require_tool("socat", &["-V"], "apt-get install socat");
    let (stranger, accepted) = handing_upstream();
    let held = stranger.addr.port();
    let seat = Seat { p: held, u: held };
    for (command, says) in [
        ("nc -v -l 127.0.0.1 $U", "nc: Address already in use"),
        (SOCAT_WC, "Address already in use"),
        (
            "target/lab/correct -listen 127.0.0.1:$P -upstream 127.0.0.1:$U",
            "bind: address already in use",
        ),
        (TCPRELAY_EXPLAIN, "Address already in use (os error 98)"),
    ] {
        // tcprelay refuses a route to its own listen address before it binds: give it
        // another upstream, so that only $P is in use.
        let seat = if command == TCPRELAY_EXPLAIN { Seat { p: held, u: 1 } } else { seat };
        let mut terminal = Terminal::run(command, &seat);
        let line = terminal.stderr_line_with(says);
        assert!(terminal.exit_code(WAIT).is_some_and(|code| code != 0), "{command}: {line}");
    }

    // A second `nc -l` of the same user on the same port does NOT fail: OpenBSD nc sets
    // SO_REUSEPORT, so the two share the port and each connection goes to one of them.
    let mut first = Terminal::run("nc -v -l 127.0.0.1 $U", &Seat::default());
    let shared = first.listening_port();
    let mut second = Terminal::run("nc -v -l 127.0.0.1 $U", &Seat { p: 0, u: shared });
    assert_eq!(second.listening_port(), shared, "the second nc -l shares the port");

    // A failed, B started anyway: the seed says "listening on" and dials the stranger.
    let mut proxy = Terminal::run(SEED, &Seat { p: 0, u: held });
    proxy.listening_port();
    accepted.next("the stranger on $U, dialled by the seed");
}

/// Lab steps 1 and 2: the upstream is `nc -v -l 127.0.0.1 $U`, the client
/// `nc 127.0.0.1 $P`; the seed loses the first line, articlefix does not.
#[test]
#[ignore = "needs go, nc: apt-get install golang-go netcat-openbsd"]
fn lab_nc_shows_the_seed_losing_the_first_line() {
    openbsd_nc(); // fails with how to install it, unless OpenBSD netcat is there
    for (proxy_command, expected) in [
        (SEED, SECOND.to_vec()),
        (
            "target/lab/articlefix -listen 127.0.0.1:$P -upstream 127.0.0.1:$U",
            [first_message().as_slice(), SECOND].concat(),
        ),
    ] {
        let mut seat = Seat::default();
        let mut upstream = Terminal::run("nc -v -l 127.0.0.1 $U", &seat);
        seat.u = upstream.listening_port();
        let mut proxy = Terminal::run(proxy_command, &seat);
        seat.p = proxy.listening_port();
        // Both programs dial the upstream at start-up, before any client exists.
        upstream.stderr_line_with("Connection received");
        let mut client = Terminal::run("nc 127.0.0.1 $P", &seat);

        // One pipe write of 128 bytes is atomic, so nc forwards the first
        // line in one piece, as the Rust client above does.
        client.type_line(&first_message());
        client.type_line(SECOND);
        let shown = upstream.output_until(expected.len());
        assert_eq!(text(&shown), text(&expected), "{proxy_command}: what the upstream nc printed");
    }
}

/// Lab step 3: the upstream is socat running `wc -c` per connection, the
/// client `printf 'request\n' | nc -N 127.0.0.1 $P`. Behind articlefix the
/// client gets no reply and the upstream no EOF until the proxy dies; behind
/// correct the client prints 8.
#[test]
#[ignore = "needs go, nc, socat: apt-get install golang-go netcat-openbsd socat"]
fn lab_socat_wc_replies_8_only_when_the_proxy_passes_the_eof_on() {
    openbsd_nc(); // fails with how to install it, unless OpenBSD netcat is there
    require_tool("socat", &["-V"], "apt-get install socat");
    let client_command = "printf 'request\\n' | nc -N 127.0.0.1 $P";
    for (proxy_command, passes_eof_on) in [
        ("target/lab/articlefix -listen 127.0.0.1:$P -upstream 127.0.0.1:$U", false),
        ("target/lab/correct -listen 127.0.0.1:$P -upstream 127.0.0.1:$U", true),
    ] {
        let mut seat = Seat::default();
        let mut upstream = Terminal::run(SOCAT_WC, &seat);
        seat.u = upstream.listening_port();
        let mut proxy = Terminal::run(proxy_command, &seat);
        seat.p = proxy.listening_port();
        let mut client = Terminal::run(client_command, &seat);
        let reply = client.output_to_end(WAIT).map(|out| text(&out));
        if passes_eof_on {
            assert_eq!(reply.as_deref(), Some("8\n"), "correct: wc's count reaches the client");
            upstream.stderr_line_with("is at EOF");
        } else {
            // The client returns at once with nothing: articlefix closed it.
            assert_eq!(reply.as_deref(), Some(""), "articlefix: no reply reaches the client");
            // The request reached socat, but its EOF never does...
            upstream.stderr_line_with("starting data transfer loop");
            upstream.assert_no_stderr_line_with("is at EOF", QUIET);
            // ...until the proxy dies (Ctrl-C in B) and its shared connection closes.
            drop(proxy);
            upstream.stderr_line_with("is at EOF");
        }
    }
}

/// Laptops (docs/lab.md): where `nc` has no `-N`, step 3's client is a Python line that
/// sends, half-closes and prints the reply; behind `correct` it prints wc's `8` as nc does.
#[test]
#[ignore = "needs go, socat, python3: apt-get install golang-go socat python3"]
fn lab_python_client_half_closes_as_nc_n_does() {
    require_tool("socat", &["-V"], "apt-get install socat");
    require_tool("python3", &["-V"], "apt-get install python3");
    let mut seat = Seat::default();
    let mut upstream = Terminal::run(SOCAT_WC, &seat);
    seat.u = upstream.listening_port();
    let mut proxy =
        Terminal::run("target/lab/correct -listen 127.0.0.1:$P -upstream 127.0.0.1:$U", &seat);
    seat.p = proxy.listening_port();
    let mut client = Terminal::run(PYTHON_HALF_CLOSE, &seat);
    let reply = client.output_to_end(WAIT).map(|out| text(&out));
    assert_eq!(reply.as_deref(), Some("8\n"), "wc's count, after the Python client's EOF");
    upstream.stderr_line_with("is at EOF");
}

/// Lab step 4: `tcprelay --explain --log-level error` between `nc -v -l` and
/// `nc -N`: every event is told in order, each line fits 100 columns, and
/// its Go half quotes docs/go/correct/main.go verbatim, as the lab shows.
#[test]
#[ignore = "needs nc: apt-get install netcat-openbsd"]
fn lab_explain_pairs_each_event_with_its_go_line() {
    let (mut upstream, mut relay, mut client) = step_4_terminals(TCPRELAY_EXPLAIN);

    client.type_line(b"hello\n");
    assert_eq!(text(&upstream.output_until(6)), "hello\n");
    upstream.type_line(b"hi\n");
    assert_eq!(text(&client.output_until(3)), "hi\n");
    client.end_input(); // Ctrl-D: nc -N half-closes

    let narration = relay.stdout_lines_until("Go: wg.Wait()");
    let go_program = include_str!("../docs/go/correct/main.go");
    for line in &narration {
        assert!(line.chars().count() <= 100, "wider than 100 columns: {line:?}");
        let Some((_, go)) = line.split_once("Go: ") else { continue };
        for statement in go.split("; ") {
            assert!(go_program.contains(statement), "not in correct/main.go: {statement:?}");
        }
    }
    let go_of = |lines: &[String]| -> Vec<String> {
        lines.iter().filter_map(|l| l.split_once("Go: ")).map(|(_, go)| go.to_string()).collect()
    };
    let lab = include_str!("../docs/lab.md");
    let happy_path = &lab[..lab.find("Off the happy path").expect("step 4's off-path part")];
    let shown: Vec<String> = happy_path
        .lines()
        .filter(|line| line.starts_with("conn 1 ") || line.starts_with("         Go: "))
        .map(str::to_string)
        .collect();
    assert_eq!(go_of(&narration), go_of(&shown), "the narration's Go, and the lab's");
    assert_eq!(narration.len(), shown.len(), "{narration:#?}");
}

/// Lab step 4, first half: the minimal relay (tests/classroom/minimal.rs), the card's shape
/// before production, between `nc -l` and `nc -N`: both directions, then the client's
/// Ctrl-D passed on, A's `nc` ending at that EOF, and its EOF passed back so C ends too.
#[test]
#[ignore = "needs nc: apt-get install netcat-openbsd"]
fn lab_minimal_relay_carries_both_ways_and_passes_each_eof_on() {
    let (mut upstream, _relay, mut client) = // B runs until the end
        step_4_terminals("target/lab/minimal 127.0.0.1:$P 127.0.0.1:$U");

    client.type_line(b"hello\n");
    assert_eq!(text(&upstream.output_until(6)), "hello\n");
    upstream.type_line(b"hi\n");
    assert_eq!(text(&client.output_until(3)), "hi\n");
    client.end_input(); // Ctrl-D: nc -N half-closes; the relay passes it on to A
    assert_eq!(upstream.output_to_end(WAIT).map(|b| text(&b)), Some(String::new()), "A ends");
    assert_eq!(client.output_to_end(WAIT).map(|b| text(&b)), Some(String::new()), "C ends");
}

/// Lab step 7: a relay that looks at the client's first line with `peek`
/// (Rust) or `bufio.Reader.Peek` (Go) prints it and still forwards it; one
/// that `read`s it prints it and loses it; `replay` reads and gives it back.
#[test]
#[ignore = "needs go, nc: apt-get install golang-go netcat-openbsd"]
fn lab_peek_looks_without_taking_and_read_takes() {
    openbsd_nc(); // fails with how to install it, unless OpenBSD netcat is there
    for (proxy_command, how, keeps) in [
        ("target/lab/first_bytes peek 127.0.0.1:$P 127.0.0.1:$U", "peek", true),
        ("target/lab/first_bytes read 127.0.0.1:$P 127.0.0.1:$U", "read", false),
        ("target/lab/first_bytes replay 127.0.0.1:$P 127.0.0.1:$U", "read, then replayed", true),
        ("target/lab/peek -mode peek -listen 127.0.0.1:$P -upstream 127.0.0.1:$U", "peek", true),
        ("target/lab/peek -mode read -listen 127.0.0.1:$P -upstream 127.0.0.1:$U", "read", false),
        (
            "target/lab/peek -mode replay -listen 127.0.0.1:$P -upstream 127.0.0.1:$U",
            "read, then replayed",
            true,
        ),
    ] {
        let mut seat = Seat::default();
        let mut upstream = Terminal::run("nc -v -l 127.0.0.1 $U", &seat);
        seat.u = upstream.listening_port();
        let mut proxy = Terminal::run(proxy_command, &seat);
        seat.p = proxy.listening_port();
        let mut client = Terminal::run("nc 127.0.0.1 $P", &seat);

        client.type_line(b"hello\n");
        let looked = proxy.stderr_line_with("first bytes");
        assert_eq!(looked, format!("first bytes ({how}): \"hello\\n\""), "{proxy_command}");
        upstream.stderr_line_with("Connection received"); // dialled after the look
        client.type_line(b"world\n");
        let expected = if keeps { "hello\nworld\n" } else { "world\n" };
        assert_eq!(text(&upstream.output_until(expected.len())), expected, "{proxy_command}");
    }
}

/// Lab steps 1 and 2 (and "address in use"): the seed between the seat's ports.
const SEED: &str = "target/lab/seed -listen 127.0.0.1:$P -upstream 127.0.0.1:$U";
/// Lab step 3's upstream: one `wc -c` per connection, its count sent back as the reply.
const SOCAT_WC: &str = "socat -d -d TCP-LISTEN:$U,bind=127.0.0.1,reuseaddr,fork EXEC:'wc -c'";
/// Lab step 4's relay.
const PYTHON_HALF_CLOSE: &str = r#"printf 'request\n' | python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR); print(s.makefile("rb").read().decode(), end="")' $P"#;
const TCPRELAY_EXPLAIN: &str = "target/release/tcprelay --explain --log-level error --listen 127.0.0.1:$P --upstream 127.0.0.1:$U";

/// Step 4's three terminals: A `nc -v -l` on `$U`, B `proxy` between `$P` and `$U`, and C
/// `nc -N` on `$P`, each started once the one before it listens.
fn step_4_terminals(proxy: &str) -> (Terminal, Terminal, Terminal) {
    openbsd_nc(); // fails with how to install it, unless OpenBSD netcat is there
    let mut seat = Seat::default();
    let mut upstream = Terminal::run("nc -v -l 127.0.0.1 $U", &seat);
    seat.u = upstream.listening_port();
    let mut relay = Terminal::run(proxy, &seat);
    seat.p = relay.listening_port();
    let client = Terminal::run("nc -N 127.0.0.1 $P", &seat);
    (upstream, relay, client)
}

/// Starts `docs/go/<program> -listen 127.0.0.1:0 -upstream ADDR` and waits
/// for its `listening on ADDR` line.
fn go_proxy(program: &str, upstream: SocketAddr) -> RelayProcess {
    let upstream = upstream.to_string();
    let args = ["-listen", "127.0.0.1:0", "-upstream", &upstream];
    RelayProcess::start_program(&go_programs().join(program), &args)
}

/// Panics unless `command` is a line of docs/lab.md, as students type it.
fn assert_lab_has(command: &str) {
    let lab = include_str!("../docs/lab.md");
    assert!(lab.lines().any(|line| line.trim() == command), "docs/lab.md has no line `{command}`");
}

/// A seat's two ports, `$P` (the proxy) and `$U` (the upstream); 0 until the
/// program that listens there has said which port it got.
#[derive(Clone, Copy, Default)]
struct Seat {
    p: u16,
    u: u16,
}

/// One terminal of the lab: `sh -c COMMAND` with the seat's `$P` and `$U`,
/// run in the room (below), with piped stdin, stdout and stderr. It runs in a
/// process group of its own, killed and reaped on drop, so a pipeline's
/// every process goes. Its output is read on threads so every wait is bounded.
struct Terminal {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_chunks: mpsc::Receiver<Vec<u8>>,
    stderr_lines: mpsc::Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl Terminal {
    /// Runs a command of docs/lab.md (it must be there, verbatim) at `seat`.
    fn run(command: &str, seat: &Seat) -> Terminal {
        assert_lab_has(command);
        let mut child = Command::new("sh")
            .args(["-c", command])
            .current_dir(room())
            .env("P", seat.p.to_string())
            .env("U", seat.u.to_string())
            .env("PATH", terminal_path())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start `{command}`: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (chunk_tx, stdout_chunks) = mpsc::channel();
        let (line_tx, stderr_lines) = mpsc::channel();
        let readers = vec![
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                // An empty chunk means EOF: the command closed its output.
                while let Ok(n) = stdout.read(&mut buffer) {
                    let _ = chunk_tx.send(buffer[..n].to_vec());
                    if n == 0 {
                        break;
                    }
                }
            }),
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = line_tx.send(line);
                }
            }),
        ];
        Terminal {
            command: command.to_string(),
            child,
            stdin,
            stdout_chunks,
            stderr_lines,
            readers,
        }
    }

    /// The port in its first `listening on` line on stderr (nc -v says
    /// "Listening on localhost PORT", socat "listening on AF=2 127.0.0.1:PORT",
    /// the Go programs and tcprelay "listening on 127.0.0.1:PORT").
    fn listening_port(&mut self) -> u16 {
        let line = self.stderr_line_with("istening on ");
        let after = line.split("istening on ").nth(1).unwrap_or_default();
        after
            .split_whitespace()
            .find_map(|word| word.trim_matches('"').rsplit(':').next()?.parse().ok())
            .unwrap_or_else(|| panic!("`{}`: no port in {line:?}", self.command))
    }

    /// The next stderr line that contains `needle`, within `WAIT`.
    fn stderr_line_with(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.stderr_lines.recv_timeout(WAIT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => {
                    panic!("`{}` wrote no {needle:?} within {WAIT:?}: {seen:#?}", self.command)
                }
            }
        }
    }

    /// Panics if a stderr line with `needle` comes within `quiet`.
    fn assert_no_stderr_line_with(&self, needle: &str, quiet: Duration) {
        while let Ok(line) = self.stderr_lines.recv_timeout(quiet) {
            assert!(!line.contains(needle), "`{}`: {line:?}", self.command);
        }
    }

    /// Its stdout, line by line, up to and including the first with `last`.
    fn stdout_lines_until(&mut self, last: &str) -> Vec<String> {
        let mut shown = Vec::new();
        while !text(&shown).lines().any(|line| line.contains(last)) {
            match self.stdout_chunks.recv_timeout(WAIT) {
                Ok(chunk) if !chunk.is_empty() => shown.extend_from_slice(&chunk),
                _ => panic!("`{}` printed no {last:?}: {:?}", self.command, text(&shown)),
            }
        }
        text(&shown).lines().map(str::to_string).collect()
    }

    /// Writes to its stdin in one write, as if typed (or pasted) at once.
    fn type_line(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(line).expect("write to the terminal's stdin");
    }

    /// Closes its stdin, as Ctrl-D does.
    fn end_input(&mut self) {
        self.stdin = None;
    }

    /// What it printed, once `len` bytes have come; panics after `WAIT`.
    fn output_until(&mut self, len: usize) -> Vec<u8> {
        let mut shown = Vec::new();
        while shown.len() < len {
            match self.stdout_chunks.recv_timeout(WAIT) {
                Ok(chunk) if !chunk.is_empty() => shown.extend_from_slice(&chunk),
                _ => panic!(
                    "`{}` printed only {:?}, expected {len} bytes",
                    self.command,
                    text(&shown)
                ),
            }
        }
        shown
    }

    /// Everything it printed, if its output ended within `within`.
    fn output_to_end(&mut self, within: Duration) -> Option<Vec<u8>> {
        let mut shown = Vec::new();
        loop {
            match self.stdout_chunks.recv_timeout(within) {
                Ok(chunk) if chunk.is_empty() => return Some(shown),
                Ok(chunk) => shown.extend_from_slice(&chunk),
                Err(_) => return None,
            }
        }
    }

    /// Its exit code, if it exits within `within` (its stderr ending tells when).
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        while let Ok(_line) = self.stderr_lines.recv_timeout(within) {}
        match self.child.try_wait() {
            Ok(Some(status)) => status.code(),
            _ => self.child.wait().ok().and_then(|status| status.code()),
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stdin = None;
        // The whole process group: sh and every program of its pipeline.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// The terminals' PATH: the room's `bin/` (OpenBSD's `nc`), then the test's own PATH.
fn terminal_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(room().join("bin")).chain(std::env::split_paths(&path));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

/// The room the lab's commands run in: a directory whose `target/lab/` holds
/// this run's builds of the Go programs and `first_bytes`, and whose
/// `target/release/tcprelay` is the tcprelay under test, so `target/lab/seed`
/// and `target/release/tcprelay` mean what they mean in the lab.
fn room() -> &'static Path {
    static ROOM: OnceLock<PathBuf> = OnceLock::new();
    ROOM.get_or_init(|| {
        let room = Path::new(env!("CARGO_TARGET_TMPDIR")).join("room");
        let (lab, release) = (room.join("target/lab"), room.join("target/release"));
        for dir in [&lab, &release] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
        }
        let mut links: Vec<(PathBuf, PathBuf)> = ["seed", "articlefix", "correct", "peek"]
            .iter()
            .map(|program| (go_programs().join(program), lab.join(program)))
            .collect();
        for program in ["first_bytes", "minimal"] {
            links.push((classroom_programs().join(program), lab.join(program)));
        }
        links.push((PathBuf::from(env!("CARGO_BIN_EXE_tcprelay")), release.join("tcprelay")));
        // `nc` in the lab's commands is OpenBSD's, found by support::openbsd_nc (nc.openbsd
        // first): a `bin/nc` link to it comes first on the terminals' PATH.
        if let Ok(nc) = support::find_openbsd_nc(&std::env::var_os("PATH").unwrap_or_default()) {
            let bin = room.join("bin");
            std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("create {bin:?}: {e}"));
            links.push((nc, bin.join("nc")));
        }
        for (original, link) in links {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&original, &link)
                .unwrap_or_else(|e| panic!("link {link:?} to {original:?}: {e}"));
        }
        room
    })
}

/// Fails the test, saying how to install `program`, if it cannot be run.
fn require_tool(program: &str, args: &[&str], install: &str) {
    if let Err(e) = Command::new(program).args(args).output() {
        panic!("cannot run `{program}` ({e}); these tests need it: install it with `{install}`");
    }
}

/// Runs `command`, fails the test unless it succeeds, returns its stdout.
fn run(command: &mut Command) -> String {
    let Output { status, stdout, stderr } =
        command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stderr = text(&stderr);
    assert!(status.success(), "{command:?} failed ({status}):\n{stderr}");
    text(&stdout)
}

/// The number of calls in the `syscall` row of an `strace -c` summary.
fn calls(summary: &str, syscall: &str) -> u64 {
    summary
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.last() == Some(&syscall))
        .and_then(|fields| fields.get(3)?.parse().ok())
        .unwrap_or(0)
}

/// The directory holding `seed`, `articlefix`, `correct` and `peek`, built once per
/// test run with `cd docs/go && go build -o OUT ./PROGRAM`.
fn go_programs() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        check_go()?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-programs");
        for program in ["seed", "articlefix", "correct", "peek"] {
            // Built beside, then renamed into place: test processes running at once (lab
            // step 5's runs, tests/lab_step5.sh) never write over a binary another runs.
            let built = out.join(format!(".{program}.{}", std::process::id()));
            build_go_program(program, &built)?;
            std::fs::rename(&built, out.join(program))
                .map_err(|error| format!("cannot move {} into place: {error}", built.display()))?;
        }
        Ok(out)
    });
    built.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

/// The directory holding the lab's measurement programs, built once:
/// `rustc -O --edition 2024 tests/classroom/X.rs` and `go build tests/classroom/X.go`.
fn classroom_programs() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        check_go()?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("classroom");
        std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        for (source, binary) in [
            ("spawn_cost.rs", "spawn_cost"),
            ("copy_syscalls.rs", "copy_syscalls_rs"),
            ("first_bytes.rs", "first_bytes"),
            ("minimal.rs", "minimal"),
        ] {
            let mut rustc = Command::new("rustc");
            rustc.current_dir(env!("CARGO_MANIFEST_DIR"));
            rustc.args(["-O", "--edition", "2024"]).arg(format!("tests/classroom/{source}"));
            build(rustc.arg("-o").arg(out.join(binary)))?;
        }
        let mut go = go_command();
        go.args(["build", "-o"]).arg(out.join("copy_syscalls_go"));
        build(go.arg("tests/classroom/copy_syscalls.go"))?;
        Ok(out)
    });
    built.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

fn check_go() -> Result<(), String> {
    match go_command().arg("version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`go version` failed:\n{}", text(&output.stderr))),
        Err(e) => Err(format!(
            "cannot run `go` ({e}); the classroom tests build the Go programs under docs/go: \
             install Go with `apt-get install golang-go`"
        )),
    }
}

fn build(command: &mut Command) -> Result<(), String> {
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("{command:?} failed:\n{}", text(&output.stderr))),
        Err(e) => Err(format!("cannot run {command:?}: {e}")),
    }
}
