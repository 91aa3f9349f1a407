//! Exercise 1 of docs/lab.md: the student's fixed `articlefix`, docs/go/mine/main.go (a copy
//! the student made). `LAB=key` tests the teacher's key, docs/go/correct, instead. Not run by
//! a plain `cargo test` (Cargo.toml: `test = false`): it needs `go` and the student's copy;
//! CI runs it explicitly (tests/lab_exercises.sh).
#![forbid(unsafe_code)]

mod support;

use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use support::go::build_go_program;
use support::lab::{Answers, announce, read_until_eof};
use support::{RelayProcess, connect, eventually, handing_upstream, read_exactly, send, text};

#[test]
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

/// Every connection's two sockets are closed when it ends: after 100 connections the
/// proxy holds as many descriptors as after one. Without `defer up.Close()` every test
/// above passes, and each connection leaves its upstream socket open (observed: 116
/// descriptors after 101 connections, 14 after one; docs/lab/key.md's table runs it).
#[test]
fn go_exercise_closes_both_sockets_of_every_connection() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_exercise(upstream.addr);
    let one_connection = || {
        let client = connect(proxy.addr);
        send(&client, b"request\n");
        client.shutdown(Shutdown::Write).expect("half-close the client");
        let upstream_side = accepted.next("the proxy");
        read_until_eof(&upstream_side, "no EOF reached the upstream");
        drop(upstream_side); // the upstream is done too: its EOF goes back to the client
        read_until_eof(&client, "no EOF reached the client after the upstream closed");
    };

    one_connection(); // Go's runtime opens what it needs on the first one
    let after_one = settled_fds(&proxy, usize::MAX);
    for _ in 0..100 {
        one_connection();
    }
    let after_many = settled_fds(&proxy, after_one);
    assert!(
        after_many <= after_one + 2,
        "the proxy holds {after_many} descriptors after 101 connections, {after_one} after \
         one: each connection leaves a socket open (which `defer` closes the upstream?)"
    );
}

/// The proxy's open descriptors, once they are at most `target` or have stopped falling
/// (a closed connection leaves /proc/PID/fd a moment after its peer saw the EOF).
fn settled_fds(proxy: &RelayProcess, target: usize) -> usize {
    let mut last = proxy.open_fds().len();
    eventually(|| {
        last = proxy.open_fds().len();
        last <= target
    });
    last
}

/// Builds the Go exercise (docs/go/mine, or with `LAB=key` the key docs/go/correct) and
/// starts it: `PROGRAM -listen 127.0.0.1:0 -upstream ADDR`.
fn go_exercise(upstream: SocketAddr) -> RelayProcess {
    let package = match announce("exercise 1", "docs/go/mine/main.go", "docs/go/correct") {
        Answers::Mine => "mine",
        Answers::Key => "correct",
        Answers::Mistake(name) => panic!("LAB=mistake:{name}: edit docs/go/mine instead"),
    };
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-exercises");
        let binary = scratch.join(format!("{package}-{}", std::process::id()));
        build_go_program(package, &binary).map(|()| binary).map_err(|e| match package {
            "mine" => format!("{e}\n(did you copy articlefix to docs/go/mine? docs/lab.md)"),
            _ => e,
        })
    });
    let binary = built.as_ref().unwrap_or_else(|e| panic!("{e}"));
    let upstream = upstream.to_string();
    RelayProcess::start_program(binary, &["-listen", "127.0.0.1:0", "-upstream", &upstream])
}
