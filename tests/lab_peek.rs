//! The stretch exercise of docs/lab.md: `peek_first_line`. Tests the student's
//! docs/lab/exercises/peek_first_line.rs; `LAB=key` tests the teacher's key instead. Not run
//! by a plain `cargo test` (Cargo.toml: `test = false`); CI runs it explicitly
//! (tests/lab_exercises.sh).
#![forbid(unsafe_code)]

mod support;

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};

use support::lab::{Answers, announce, read_until_eof};
use support::{TIMEOUT, connect, send, text};

#[path = "../docs/lab/key/peek_first_line.rs"]
mod key;
#[path = "../docs/lab/exercises/peek_first_line.rs"]
mod mine;

/// The line the `peek_first_line` under test returned, after saying whose it is. An error
/// is shown as the function's own message (the stub's "not written yet"), not as the
/// `Custom { kind: .. }` of `io::Error`'s Debug.
fn peek_first_line(stream: &TcpStream, max: usize) -> Vec<u8> {
    let mine_path = "docs/lab/exercises/peek_first_line.rs";
    let returned: io::Result<Vec<u8>> =
        match announce("the stretch", mine_path, "docs/lab/key/peek_first_line.rs") {
            Answers::Mine => mine::peek_first_line(stream, max),
            Answers::Key => key::peek_first_line(stream, max),
            Answers::Mistake(name) => panic!("LAB=mistake:{name}: the stretch has no mistakes.rs"),
        };
    returned.unwrap_or_else(|e| panic!("peek_first_line returned Err: {e}"))
}

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
    let line = peek_first_line(&server, 64);
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
    let line = peek_first_line(&server, 16);
    assert_eq!(text(&line), "a line longer th");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    let everything = read_until_eof(&server, "the client's bytes");
    assert_eq!(everything.len(), 33, "the bytes were taken out of the socket");
}
