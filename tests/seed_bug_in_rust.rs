//! The seed article's bug, reproduced in Rust: a handler that reads from the
//! client "just to look" before it starts the two copies loses the client's
//! first message. The same client, through `tcprelay::Relay`, gets its first
//! message delivered: nothing in tcprelay reads a socket before both copies
//! have started.
//!
//! One scenario, two relays: the client sends a 128-byte first message (the
//! size of the seed's buffer) in one write right after connecting, then a
//! second message, then half-closes; the test reports what the upstream got.
#![forbid(unsafe_code)]

mod support;

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use support::{
    SECOND_MESSAGE as SECOND, TIMEOUT, TestRelay, Upstream, connect, first_message, text, write_all,
};

#[test]
fn a_handler_that_reads_before_copying_loses_the_first_message() {
    let (upstream, recorded) = Upstream::recording();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the seed relay");
    let relay_addr = listener.local_addr().expect("the seed relay's address");

    let received = thread::scope(|scope| {
        let seed_relay = scope.spawn(|| {
            let client = accept_within(&listener, "the seed relay, waiting for its client");
            seed_handle_conn(client, upstream.addr)
        });
        let received = first_message_scenario(relay_addr, &recorded);
        let handled = seed_relay.join().expect("the seed relay does not panic");
        handled.expect("the seed relay's handler");
        received
    });

    assert_eq!(
        text(&received),
        text(SECOND),
        "the upstream should get only the second message: the first was read and dropped"
    );
}

#[test]
fn tcprelay_delivers_the_first_message() {
    let (upstream, recorded) = Upstream::recording();
    let relay = TestRelay::to(upstream.addr);

    let received = first_message_scenario(relay.addr, &recorded);

    let expected = [first_message().as_slice(), SECOND].concat();
    assert_eq!(text(&received), text(&expected), "tcprelay forwards both messages, in order");
    relay.stop();
}

/// The seed's `handleConn`, in Rust, with its bug: it reads up to 128 bytes
/// from the client to look at them, and never forwards them. (It dials its
/// own upstream and half-closes, so this reproduces the first bug alone.)
fn seed_handle_conn(mut client: TcpStream, upstream_addr: SocketAddr) -> io::Result<()> {
    let upstream = TcpStream::connect(upstream_addr)?;

    let mut data = [0u8; 128];
    // THE BUG. Clippy flags it (`unused_io_amount`: how many bytes were read
    // is ignored); `go vet` has no such check. The bytes now sit in `data`,
    // gone from the socket, and the copies below start after them.
    #[expect(clippy::unused_io_amount, reason = "this is the seed's bug, kept on purpose")]
    client.read(&mut data)?;

    thread::scope(|scope| {
        scope.spawn(|| {
            let _ = io::copy(&mut &client, &mut &upstream); // client -> upstream
            let _ = upstream.shutdown(Shutdown::Write);
        });
        let _ = io::copy(&mut &upstream, &mut &client); // upstream -> client
        let _ = client.shutdown(Shutdown::Write);
    });
    Ok(())
}

/// The client sends its two messages and half-closes; returns everything the
/// upstream received up to EOF.
fn first_message_scenario(
    relay_addr: SocketAddr,
    recorded: &mpsc::Receiver<io::Result<Vec<u8>>>,
) -> Vec<u8> {
    let client = connect(relay_addr);
    write_all(&client, &first_message()).expect("send the first message");
    write_all(&client, SECOND).expect("send the second message");
    client.shutdown(Shutdown::Write).expect("half-close the client");

    let received = recorded.recv_timeout(TIMEOUT).expect("the upstream records one connection");
    received.expect("the upstream reads up to EOF")
}

/// Accepts one connection, or panics after `TIMEOUT`. `accept` has no
/// timeout, so on expiry a last connection of our own wakes it, and its
/// thread ends.
fn accept_within(listener: &TcpListener, who: &str) -> TcpStream {
    let addr = listener.local_addr().expect("the listener's address");
    thread::scope(|scope| {
        let (accepted_tx, accepted_rx) = mpsc::channel();
        let acceptor = scope.spawn(move || {
            let accepted = listener.accept();
            let _ = accepted_tx.send(());
            accepted
        });
        if accepted_rx.recv_timeout(TIMEOUT).is_err() {
            let _ = TcpStream::connect(addr);
            let _ = acceptor.join();
            panic!("{who}: no connection within {TIMEOUT:?}");
        }
        let (stream, _) = acceptor
            .join()
            .expect("accept does not panic")
            .unwrap_or_else(|e| panic!("{who}: accept failed: {e}"));
        stream
    })
}
