//! After every kind of ending, the relay gives back every socket and thread it took.
//!
//! One test in its own binary, because it counts this process's descriptors and threads:
//! other tests running in parallel would move the counts.
#![forbid(unsafe_code)]

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;

use support::*;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "counts descriptors and threads in /proc/self")]
fn descriptors_and_threads_return_to_idle_after_every_kind_of_ending() {
    let upstream = Upstream::start(|stream| {
        let mut first = [0; 1];
        if (&stream).read_exact(&mut first).is_err() {
            return;
        }
        match first[0] {
            b'e' => {
                let _ = std::io::copy(&mut &stream, &mut &stream);
                let _ = stream.shutdown(Shutdown::Write);
            }
            b'r' => {} // drop with the rest unread: the kernel sends RST
            _ => {
                let _ = write_all(&stream, &pattern(6, 1 << 20));
            }
        }
    });
    // Threads exit with their connection instead of parking for the next one, so the thread
    // count can return to idle (tests/thread_pool.rs covers the parked threads).
    let no_parking = |upstream: String| tcprelay::Config {
        upstream,
        thread_keep_alive: std::time::Duration::ZERO,
        ..quiet_config()
    };
    let relay = TestRelay::start(no_parking(upstream.addr.to_string()));
    let refused = TestRelay::start(no_parking(refusing_addr().to_string()));
    let (idle_fds, idle_threads) = (open_fds(), thread_count());

    // A normal exchange with a half-close.
    let client = connect(relay.addr);
    write_all(&client, b"echo me").expect("the relay takes the echo request");
    client.shutdown(Shutdown::Write).expect("the client half-closes after its request");
    // The upstream kept the "e".
    assert_eq!(
        read_all(&client).expect("the echo ends with EOF after the client's half-close"),
        b"cho me"
    );
    drop(client);
    // The upstream resets.
    let client = connect(relay.addr);
    write_all(&client, &[b'r'; 8192]).expect("the relay takes the bytes the upstream resets on");
    let _ = read_all(&client);
    drop(client);
    // The client resets while the upstream is sending.
    let mut client = connect(relay.addr);
    write_all(&client, b"f").expect("the relay takes the flood request");
    let mut some = [0; 10];
    client.read_exact(&mut some).expect("the client gets the flood's first 10 bytes");
    client.write_all(b"unread").ok();
    drop(client);
    // The upstream refuses.
    let client = connect(refused.addr);
    assert!(read_all(&client).expect("the client of the refused upstream sees EOF").is_empty());
    drop(client);

    assert!(eventually(|| open_fds() == idle_fds), "fds: idle {idle_fds}, now {}", open_fds());
    assert!(
        eventually(|| thread_count() == idle_threads),
        "threads: idle {idle_threads}, now {}",
        thread_count()
    );
}
