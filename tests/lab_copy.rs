//! Exercise 2 of docs/lab.md: `copy_then_shutdown`, relayed through two threads as
//! src/relay/handle_conn.rs is. Tests the student's docs/lab/exercises/copy_then_shutdown.rs;
//! `LAB=key` tests the teacher's key instead, `LAB=mistake:NAME` one of the key's
//! catalogued mistakes (docs/lab/key.md). Not run by a plain `cargo test` (Cargo.toml:
//! `test = false`): the student's untouched stub fails it on purpose; CI runs it explicitly
//! (tests/lab_exercises.sh).
#![forbid(unsafe_code)]

mod support;

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

use support::lab::{Answers, announce, read_until_eof};
use support::{Accepted, TIMEOUT, connect, handing_upstream, pattern, read_exactly, send, text};

#[path = "../docs/lab/key/copy_then_shutdown.rs"]
mod key;
#[path = "../docs/lab/exercises/copy_then_shutdown.rs"]
mod mine;
#[path = "../docs/lab/key/mistakes.rs"]
mod mistakes;

type CopyFn = fn(&TcpStream, &TcpStream) -> io::Result<u64>;

/// The `copy_then_shutdown` under test, after saying whose it is.
fn copy_then_shutdown() -> CopyFn {
    let mine_path = "docs/lab/exercises/copy_then_shutdown.rs";
    match announce("exercise 2", mine_path, "docs/lab/key/copy_then_shutdown.rs") {
        Answers::Mine => mine::copy_then_shutdown,
        Answers::Key => key::copy_then_shutdown,
        Answers::Mistake(name) => mistakes::by_name(&name)
            .unwrap_or_else(|| panic!("LAB=mistake:{name}: no such mistake in mistakes.rs")),
    }
}

/// A relay made of the exercise's function, as src/relay/ is made of `copy_then_close_write`:
/// for one client, dial the upstream, copy each way on its own thread, join both.
struct ExerciseRelay {
    addr: SocketAddr,
    thread: Option<thread::JoinHandle<()>>,
}

impl ExerciseRelay {
    fn to(upstream: SocketAddr) -> ExerciseRelay {
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
            // What the function returned is shown with the failure (the stub's "not written
            // yet" among it), in the failing test's output.
            let told = |direction: &str, result: io::Result<u64>| {
                if let Err(e) = result {
                    eprintln!("copy_then_shutdown({direction}) returned Err: {e}");
                }
            };
            thread::scope(|s| {
                // Go: go func() { copyThenCloseWrite(up, conn) }()
                s.spawn(|| told("client → upstream", copy(&client, &up)));
                // Go: copyThenCloseWrite(conn, up)
                told("upstream → client", copy(&up, &client));
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

    let (client, upstream_side) = request_and_its_eof(&relay, &accepted);
    drop((client, upstream_side, relay));
}

#[test]
fn rust_copy_leaves_the_other_direction_open_for_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let relay = ExerciseRelay::to(upstream.addr);

    let (client, upstream_side) = request_and_its_eof(&relay, &accepted);

    // Like wc -c: the answer comes only after the request's EOF, then "that was all".
    send(&upstream_side, b"8\n");
    let _ = upstream_side.shutdown(Shutdown::Write); // fails if the relay closed it already
    let reply = read_until_eof(&client, "no EOF reached the client after the reply");
    assert_eq!(text(&reply), "8\n", "the reply, sent after the half-close, must reach the client");
    drop((client, upstream_side, relay));
}

/// A client sends a request and half-closes; the upstream must read the request, then
/// EOF. Returns the client and the upstream's side, both still open the other way.
fn request_and_its_eof(relay: &ExerciseRelay, accepted: &Accepted) -> (TcpStream, TcpStream) {
    let client = connect(relay.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let upstream_side = accepted.next("the exercise relay");
    let request = read_until_eof(&upstream_side, "no EOF reached the upstream");
    assert_eq!(text(&request), "request\n", "the request should reach the upstream, then EOF");
    (client, upstream_side)
}

/// The doc comment's last sentence: on an error, wake the other copy. The upstream resets
/// (it closes with a byte unread, so the kernel sends RST) while the client is silent: the
/// copy reading the upstream fails, and the other copy sits in `read` on the client. Only a
/// `shutdown(Both)` from the failing copy wakes it and ends the connection.
#[test]
fn rust_copy_wakes_the_other_copy_when_one_fails() {
    let (upstream, accepted) = handing_upstream();
    let relay = ExerciseRelay::to(upstream.addr);

    let client = connect(relay.addr);
    send(&client, b"x");
    let upstream_side = accepted.next("the exercise relay");
    let mut first = [0u8; 1];
    match upstream_side.peek(&mut first) {
        Ok(1) => {}
        other => panic!("the client's first byte never reached the upstream: {other:?}"),
    }
    drop(upstream_side); // closed with "x" unread: a reset, not an EOF

    let mut rest = Vec::new();
    match (&client).read_to_end(&mut rest) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            panic!(
                "the upstream reset, but the client was never closed ({e}): the copy that \
                 failed returned without waking the other one, still blocked reading the \
                 client (shut both streams down on an error)"
            )
        }
        Ok(_) | Err(_) => {} // an EOF or a reset: the relay closed the client
    }
    drop((client, relay));
}
