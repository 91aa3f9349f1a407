//! The exercises of docs/lab.md, each against a test that fails until the answer is right.
//!
//! By default every test runs the teacher's key (`docs/lab/key/*.rs`, and
//! `docs/go/correct` for the Go exercise), so `cargo test` and CI prove the key passes.
//! With `LAB=mine` they run the student's work instead: `docs/lab/exercises/*.rs` and
//! `docs/go/mine/main.go` (a copy of `articlefix` the student fixes).
#![forbid(unsafe_code)]

mod support;

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;

use support::go::build_go_program;
use support::{
    RelayProcess, TIMEOUT, connect, handing_upstream, pattern, read_exactly, send, text,
};

/// The student's answers (compiled always, run with `LAB=mine`).
#[path = "../docs/lab/exercises/copy_then_shutdown.rs"]
mod mine_copy;
#[path = "../docs/lab/exercises/peek_first_line.rs"]
mod mine_peek;

/// The teacher's key (run by default, and by CI).
#[path = "../docs/lab/key/copy_then_shutdown.rs"]
mod key_copy;
#[path = "../docs/lab/key/peek_first_line.rs"]
mod key_peek;

/// Whether to test the student's answers (`LAB=mine`) rather than the key.
fn testing_mine() -> bool {
    std::env::var("LAB").is_ok_and(|value| value == "mine")
}

type CopyFn = fn(&TcpStream, &TcpStream) -> io::Result<u64>;

fn copy_then_shutdown() -> CopyFn {
    if testing_mine() { mine_copy::copy_then_shutdown } else { key_copy::copy_then_shutdown }
}

fn peek_first_line(stream: &TcpStream, max: usize) -> io::Result<Vec<u8>> {
    if testing_mine() {
        mine_peek::peek_first_line(stream, max)
    } else {
        key_peek::peek_first_line(stream, max)
    }
}

// ---------------------------------------------------------------------------
// Exercise 2 (Rust): copy_then_shutdown, in a relay of two threads.
// ---------------------------------------------------------------------------

/// A relay made of the exercise's function, as src/relay/ is made of `copy_then_close_write`:
/// for one client, dial the upstream, copy each way on its own thread, join both.
struct ExerciseRelay {
    addr: std::net::SocketAddr,
    thread: Option<thread::JoinHandle<()>>,
}

impl ExerciseRelay {
    fn to(upstream: std::net::SocketAddr) -> ExerciseRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the exercise relay");
        let addr = listener.local_addr().expect("local_addr");
        let copy = copy_then_shutdown();
        let thread = thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else { return };
            let Ok(up) = TcpStream::connect(upstream) else { return };
            // Bounded, so even an answer that never returns ends; later than the test's own
            // reads time out, so the close at that bound never passes for an EOF.
            for stream in [&client, &up] {
                let _ = stream.set_read_timeout(Some(TIMEOUT * 2));
                let _ = stream.set_write_timeout(Some(TIMEOUT * 2));
            }
            thread::scope(|s| {
                s.spawn(|| copy(&client, &up)); // Go: go func() { copyThenCloseWrite(up, conn) }()
                let _ = copy(&up, &client); // Go: copyThenCloseWrite(conn, up)
            });
        });
        ExerciseRelay { addr, thread: Some(thread) }
    }
}

impl Drop for ExerciseRelay {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if !thread::panicking() {
                thread.join().expect("the exercise relay's thread does not panic");
            }
        }
    }
}

/// Reads to EOF or panics with `failure` (and the error, and how much had come).
#[track_caller]
fn read_until_eof(mut stream: &TcpStream, failure: &str) -> Vec<u8> {
    let mut received = Vec::new();
    if let Err(e) = stream.read_to_end(&mut received) {
        panic!("{failure}: {e}, after {} bytes", received.len());
    }
    received
}

#[test]
fn rust_copy_moves_every_byte_in_order() {
    let (upstream, accepted) = handing_upstream();
    let relay = ExerciseRelay::to(upstream.addr);
    let sent = pattern(18, 1024 * 1024);

    let client = connect(relay.addr);
    let upstream_side = accepted.next("the exercise relay");
    thread::scope(|s| {
        s.spawn(|| send(&client, &sent));
        let received = read_exactly(&upstream_side, sent.len(), "the upstream");
        assert!(received == sent, "the bytes arrived changed or out of order");
    });
    drop((client, upstream_side, relay));
}

#[test]
fn rust_copy_passes_the_eof_on() {
    let (upstream, accepted) = handing_upstream();
    let relay = ExerciseRelay::to(upstream.addr);

    let client = connect(relay.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let upstream_side = accepted.next("the exercise relay");
    let request = read_until_eof(&upstream_side, "no EOF reached the upstream");
    assert_eq!(text(&request), "request\n", "the request should reach the upstream, then EOF");
    drop((client, upstream_side, relay));
}

#[test]
fn rust_copy_leaves_the_other_direction_open_for_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let relay = ExerciseRelay::to(upstream.addr);

    let client = connect(relay.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let upstream_side = accepted.next("the exercise relay");
    read_until_eof(&upstream_side, "no EOF reached the upstream");

    // Like wc -c: the answer comes only after the request's EOF, then "that was all".
    send(&upstream_side, b"8\n");
    let _ = upstream_side.shutdown(Shutdown::Write); // fails if the relay closed it already
    let reply = read_until_eof(&client, "no EOF reached the client after the reply");
    assert_eq!(text(&reply), "8\n", "the reply, sent after the half-close, must reach the client");
    drop((client, upstream_side, relay));
}

// ---------------------------------------------------------------------------
// The stretch (Rust): peek_first_line.
// ---------------------------------------------------------------------------

/// A connected pair: the client's end and the accepted end.
fn pair(first_bytes: &[u8]) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = connect(listener.local_addr().expect("local_addr"));
    send(&client, first_bytes); // one write: on loopback, one segment
    let (accepted, _) = listener.accept().expect("accept");
    accepted.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
    (client, accepted)
}

#[test]
fn rust_peek_returns_the_first_line_and_leaves_it_in_the_socket() {
    let (client, server) = pair(b"HOST alpha\nthe request\n");
    let line = peek_first_line(&server, 64).expect("peek_first_line");
    assert_eq!(text(&line), "HOST alpha\n");

    client.shutdown(Shutdown::Write).expect("half-close the client");
    let everything = read_until_eof(&server, "the client's bytes");
    assert_eq!(
        text(&everything),
        "HOST alpha\nthe request\n",
        "the line was taken out of the socket"
    );
}

#[test]
fn rust_peek_stops_at_max_bytes() {
    let (client, server) = pair(b"a line longer than sixteen bytes\n");
    let line = peek_first_line(&server, 16).expect("peek_first_line");
    assert_eq!(text(&line), "a line longer th");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let everything = read_until_eof(&server, "the client's bytes");
    assert_eq!(everything.len(), 33, "the bytes were taken out of the socket");
}

// ---------------------------------------------------------------------------
// Exercise 1 (Go): the student's fixed articlefix, docs/go/mine.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn go_exercise_dials_one_upstream_per_client() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_exercise(upstream.addr);

    let a = connect(proxy.addr);
    send(&a, b"A: hello\n");
    let upstream_a = accepted.next("the proxy, for client A");
    assert_eq!(text(&read_exactly(&upstream_a, 9, "A's upstream")), "A: hello\n");
    let b = connect(proxy.addr);
    send(&b, b"B: hello\n");
    let upstream_b = accepted.next("the proxy, for client B (one upstream per client)");
    assert_eq!(text(&read_exactly(&upstream_b, 9, "B's upstream")), "B: hello\n");

    send(&upstream_b, b"reply to B\n");
    assert_eq!(text(&read_exactly(&b, 11, "client B")), "reply to B\n");
    drop((a, b, upstream_a, upstream_b, proxy));
    assert_eq!(upstream.accepted(), 2, "one upstream connection per client");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn go_exercise_passes_the_clients_eof_on_and_delivers_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_exercise(upstream.addr);

    let client = connect(proxy.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let upstream_side = accepted.next("the proxy");
    let request = read_until_eof(&upstream_side, "no EOF reached the upstream");
    assert_eq!(text(&request), "request\n");

    send(&upstream_side, b"8\n");
    let _ = upstream_side.shutdown(Shutdown::Write); // fails if the relay closed it already
    let reply = read_until_eof(&client, "no EOF reached the client after the reply");
    assert_eq!(text(&reply), "8\n", "the reply, sent after the half-close, must reach the client");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn go_exercise_passes_the_upstreams_eof_on() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_exercise(upstream.addr);

    let client = connect(proxy.addr);
    let upstream_side = accepted.next("the proxy");
    send(&upstream_side, b"banner\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    let banner = read_until_eof(&client, "no EOF reached the client");
    assert_eq!(text(&banner), "banner\n");

    // The client can still talk after the server's EOF.
    send(&client, b"still here\n");
    let _ = client.shutdown(Shutdown::Write); // fails if the proxy closed the client already
    let late = read_until_eof(&upstream_side, "no EOF reached the upstream");
    assert_eq!(text(&late), "still here\n", "the client's bytes after the upstream's EOF");
}

/// Builds the Go exercise (`docs/go/mine` with `LAB=mine`, else the key `docs/go/correct`)
/// and starts it: `PROGRAM -listen 127.0.0.1:0 -upstream ADDR`.
fn go_exercise(upstream: std::net::SocketAddr) -> RelayProcess {
    let package = if testing_mine() { "mine" } else { "correct" };
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-exercises");
    let binary: PathBuf = scratch.join(format!("{package}-{}", std::process::id()));
    build_go_program(package, &binary).unwrap_or_else(|e| {
        let hint = if testing_mine() { "\n(did you copy articlefix to docs/go/mine?)" } else { "" };
        panic!("{e}{hint}")
    });
    let upstream = upstream.to_string();
    RelayProcess::start_program(&binary, &["-listen", "127.0.0.1:0", "-upstream", &upstream])
}

// ---------------------------------------------------------------------------
// The teacher's key answers every "Ask why" of the lab.
// ---------------------------------------------------------------------------

#[test]
fn every_ask_why_of_the_lab_has_an_answer_in_the_key() {
    let lab = include_str!("../docs/lab.md");
    let key = include_str!("../docs/lab/key.md");
    let questions: Vec<&str> =
        lab.split("Ask why").skip(1).filter_map(|rest| rest.split(['(', ')']).nth(1)).collect();
    assert!(questions.len() >= 7, "the lab's questions: {questions:?}");
    for question in questions {
        assert!(question.starts_with('Q'), "`Ask why` without its (Qn): {question:?}");
        assert!(key.contains(&format!("### {question}:")), "docs/lab/key.md has no {question}");
    }
}
