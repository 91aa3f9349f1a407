//! Faults in time and in the middle of a transfer: the idle and half-close timeouts, and
//! resets or abrupt closes in every phase of a connection. Each test checks the effect a
//! peer sees (bytes, EOF, when the close came) and that the relay gives back every
//! descriptor and thread.
//!
//! The tests run one at a time ([`serial`]) because they compare this process's descriptor
//! and thread counts with a [`Baseline`].
#![forbid(unsafe_code)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use tcprelay::Config;

/// The timeouts under test: short, so the suite stays fast, and eight times the pace of a
/// slow sender ([`PACE`]), so a sender that is descheduled for a while on a busy machine is
/// still well inside them. (At 400 ms, a test machine with a load average of 250 once
/// paused a 100 ms sender long enough to trip the timer.)
const IDLE: Duration = Duration::from_millis(800);
const HALF_CLOSE: Duration = Duration::from_millis(800);
/// The pace of a slow, steady sender, and the bytes it sends each time.
const PACE: Duration = Duration::from_millis(100);
const CHUNK: usize = 1000;
/// How late a timeout may close and still count as on time: generous for a busy machine,
/// and still far below what a timer that never fired (the read timeout of a test socket,
/// 10 s) would take.
const LATE: Duration = Duration::from_secs(2);

/// The first byte every client sends says what the upstream should do: run the scenario
/// under test, or echo (to show the relay still serves after a fault).
const SCENARIO: u8 = b's';
const ECHO: u8 = b'e';

/// An upstream that reads each connection's first byte and then echoes ([`ECHO`]) or runs
/// `scenario` ([`SCENARIO`]).
fn upstream_running(scenario: impl Fn(TcpStream) + Send + Sync + 'static) -> Upstream {
    Upstream::start(move |stream| {
        let mut first = [0; 1];
        if (&stream).read_exact(&mut first).is_err() {
            return;
        }
        if first[0] == ECHO {
            let _ = std::io::copy(&mut &stream, &mut &stream);
            let _ = stream.shutdown(Shutdown::Write);
        } else {
            scenario(stream);
        }
    })
}

/// One fault scenario: an upstream, a relay in front of it with these timeouts (zero: off),
/// and the process's descriptor and thread counts taken before any client connects.
struct Scenario {
    upstream: Upstream,
    relay: TestRelay,
    baseline: Baseline,
}

impl Scenario {
    /// An upstream that runs `scenario` for each client that asks for it (see
    /// [`upstream_running`]), behind a relay with these timeouts.
    fn start(
        idle: Duration,
        half_close: Duration,
        scenario: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Scenario {
        Scenario::with_upstream(upstream_running(scenario), idle, half_close)
    }

    /// A relay with these timeouts in front of `upstream`.
    fn with_upstream(upstream: Upstream, idle: Duration, half_close: Duration) -> Scenario {
        let relay = TestRelay::start(Config {
            upstream: upstream.addr.to_string(),
            idle_timeout: idle,
            half_close_timeout: half_close,
            // Threads exit with their connection instead of parking for the next one, so
            // the connection-thread count can return to the baseline (tests/thread_pool.rs
            // covers the parked threads).
            thread_keep_alive: Duration::ZERO,
            ..quiet_config()
        });
        Scenario { upstream, relay, baseline: Baseline::take() }
    }

    /// A client that has announced the scenario.
    fn client(&self) -> TcpStream {
        let client = connect(self.relay.addr);
        write_all(&client, &[SCENARIO]).expect("the relay takes the client's scenario byte");
        client
    }

    /// After the fault: the relay still serves, and every descriptor and connection thread
    /// of the faulty connection is given back.
    fn assert_recovered(self) {
        assert_still_serving(self.relay.addr);
        self.baseline.assert_restored();
        drop(self.upstream);
    }
}

/// A fresh client gets an echo through the relay: it survived whatever came before.
fn assert_still_serving(relay: SocketAddr) {
    let client = connect(relay);
    write_all(&client, &[ECHO]).expect("a fresh client after the fault sends its echo byte");
    write_all(&client, b"still serving").expect("a fresh client after the fault sends its message");
    client.shutdown(Shutdown::Write).expect("the fresh client half-closes after its message");
    assert_eq!(
        read_all(&client).expect("the echo after the fault ends with EOF"),
        b"still serving"
    );
}

/// A slow, steady sender: `bytes` in chunks of [`CHUNK`], one every [`PACE`].
fn send_paced(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    for chunk in bytes.chunks(CHUNK) {
        thread::sleep(PACE); // pacing the sender, not synchronising
        write_all(stream, chunk)?;
    }
    Ok(())
}

/// Reads until the connection ends, by EOF or by a reset, and returns what arrived. A read
/// timeout (the relay never closed) is a test failure.
fn read_until_closed(mut stream: &TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return received,
            Err(error) => panic!("the connection did not end: {error}"),
        }
    }
}

/// Writes `chunk` over and over until the connection fails, and returns the bytes of the
/// whole chunks written (so the stream was exactly that many copies of `chunk`, then maybe a
/// part of one more). Bounded: a relay that never closes fails the test.
///
/// A write that blocks is not yet a failure: when the relay closes while our writes have
/// filled its receive window, no reset comes back for bytes it never got to see, and the
/// end shows as its FIN waiting to be read. So a blocked write looks (without taking) for
/// that EOF, or a reset, and counts it as closed.
fn write_until_closed(mut stream: &TcpStream, chunk: &[u8]) -> u64 {
    let mut written = 0u64;
    let deadline = Instant::now() + TIMEOUT;
    let short = Some(Duration::from_millis(200));
    stream.set_write_timeout(short).expect("the test shortens its write timeout");
    loop {
        match stream.write_all(chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                if eof_or_reset_waiting(stream) {
                    return written;
                }
            }
            Err(_) => return written, // broken pipe or reset: closed
        }
        assert!(Instant::now() < deadline, "the connection did not end within {TIMEOUT:?}");
    }
}

/// Whether the peer's end of `stream` is closed: its EOF or a reset is waiting, looked at
/// with `peek` so a later read still sees it.
fn eof_or_reset_waiting(stream: &TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(10))).expect("the test sets a read timeout");
    let closed = match stream.peek(&mut [0; 1]) {
        Ok(0) => true,
        Ok(_) => false, // bytes from the peer: not closed (the caller checks what they are)
        Err(error) => error.kind() == ErrorKind::ConnectionReset,
    };
    stream.set_read_timeout(Some(TIMEOUT)).expect("the test restores its read timeout");
    closed
}

/// Sends one byte every few milliseconds on a connection the peer has already shut down,
/// until the kernel reports it closed (the reset that answers data sent to a closed socket).
/// Returns whether that happened within [`TIMEOUT`]. Only for the effect no signal
/// announces: a peer that closed after we had already seen its FIN.
fn peer_has_closed(mut stream: &TcpStream) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if stream.write_all(b"?").is_err() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

fn assert_within(elapsed: Duration, earliest: Duration, what: &str) {
    assert!(
        elapsed >= earliest && elapsed <= earliest + LATE,
        "{what} after {elapsed:?}; expected between {earliest:?} and {:?}",
        earliest + LATE
    );
}

// ---- the idle timeout ----------------------------------------------------------------

/// Nothing moves either way: both peers see the relay close after the idle timeout, not
/// before and not much later.
#[test]
fn idle_timeout_closes_an_idle_connection_on_both_sides() {
    let _serial = serial();
    let (upstream_saw, upstream_closed) = mpsc::channel();
    let scenario = Scenario::start(IDLE, Duration::ZERO, move |stream| {
        let end = (&stream).read(&mut [0; 1]).map_err(|error| error.kind());
        upstream_saw
            .send((Instant::now(), end))
            .expect("the test waits to hear how the upstream connection ended");
    });

    // The scenario byte is the last activity; the relay forwards it after we send it.
    let quiet_from = Instant::now();
    let client = scenario.client();
    let end = (&client).read(&mut [0; 1]);
    let client_closed = quiet_from.elapsed();

    assert_eq!(end.expect("EOF, not an error or a timeout"), 0, "the client sees EOF");
    assert_within(client_closed, IDLE, "the client saw EOF");
    let (at, end) = upstream_closed.recv_timeout(TIMEOUT).expect("the upstream saw the end");
    assert_eq!(end, Ok(0), "the upstream sees EOF");
    assert_within(at.duration_since(quiet_from), IDLE, "the upstream saw EOF");
    drop(client);
    scenario.assert_recovered();
}

/// The upstream sends a chunk every [`PACE`] for four idle timeouts while the client says
/// nothing. The timer is shared by both directions, so this download is never idle; a
/// relay with a timer per direction would cut it after the first timeout.
#[test]
fn download_only_stream_outlives_the_idle_timeout() {
    let _serial = serial();
    let chunks = (4 * IDLE.as_millis() / PACE.as_millis()) as usize;
    let sent = pattern(11, chunks * CHUNK);
    let upstream_sent = sent.clone();
    let scenario = Scenario::start(IDLE, Duration::ZERO, move |stream| {
        send_paced(&stream, &upstream_sent)
            .expect("the relay keeps taking the slow download (the idle timer must not cut it)");
        stream.shutdown(Shutdown::Write).expect("the upstream half-closes after the download");
        let _ = read_all(&stream);
    });

    let started = Instant::now();
    let client = scenario.client();
    let received = read_all(&client).expect("the whole download, then EOF");

    assert!(started.elapsed() >= 3 * IDLE, "the download ended too soon to prove anything");
    assert_eq!(received.len(), sent.len(), "bytes lost: the download was cut");
    assert!(received == sent, "download corrupted");
    drop(client);
    scenario.assert_recovered();
}

/// The mirror image: the client uploads a chunk every [`PACE`] for four idle timeouts while
/// the upstream says nothing; every byte arrives.
#[test]
fn upload_only_stream_outlives_the_idle_timeout() {
    let _serial = serial();
    let chunks = (4 * IDLE.as_millis() / PACE.as_millis()) as usize;
    let sent = pattern(12, chunks * CHUNK);
    let (upstream_got, upload) = mpsc::channel();
    let scenario = Scenario::start(IDLE, Duration::ZERO, move |stream| {
        upstream_got
            .send(read_all(&stream).map_err(|error| error.kind()))
            .expect("the test waits for the upload the upstream read");
    });

    let started = Instant::now();
    let client = scenario.client();
    send_paced(&client, &sent).expect("the relay is still forwarding");
    client.shutdown(Shutdown::Write).expect("the client half-closes after its slow upload");
    let received = upload
        .recv_timeout(TIMEOUT)
        .expect("the upstream's read of the slow upload ends in time")
        .expect("the whole upload, then EOF");

    assert!(started.elapsed() >= 3 * IDLE, "the upload ended too soon to prove anything");
    assert_eq!(received.len(), sent.len(), "bytes lost: the upload was cut");
    assert!(received == sent, "upload corrupted");
    assert!(
        read_all(&client)
            .expect("EOF reaches the client after its upload (the upstream sent nothing)")
            .is_empty()
    );
    drop(client);
    scenario.assert_recovered();
}

// ---- the half-close timeout ----------------------------------------------------------

/// The client half-closes; the upstream reads the EOF and then neither replies nor closes
/// (a half-open peer). With the idle timeout off, only the half-close timeout can end this:
/// both sides are closed after it, and the descriptors and threads come back.
#[test]
fn half_close_timeout_closes_a_silent_half_open_peer() {
    let _serial = serial();
    let (upstream_saw, upstream_events) = mpsc::channel();
    let (client_done, client_saw_eof) = mpsc::channel::<()>();
    let client_saw_eof = Mutex::new(client_saw_eof);
    let scenario = Scenario::start(Duration::ZERO, HALF_CLOSE, move |stream| {
        let request = read_all(&stream).map_err(|error| error.kind());
        upstream_saw.send(request).expect("the test waits for the request the upstream read");
        // Silent until the client has seen the end; only then probe whether the relay let
        // go of us too (a probe sent earlier would be a reply and restart the timer).
        let _ = client_saw_eof
            .lock()
            .expect("no upstream handler panicked holding the client's EOF signal")
            .recv_timeout(TIMEOUT);
        upstream_saw
            .send(Ok(vec![u8::from(peer_has_closed(&stream))]))
            .expect("the test waits to hear whether the relay let go of the upstream");
    });

    let client = scenario.client();
    write_all(&client, b"request").expect("the relay takes the client's request");
    let half_closed = Instant::now();
    client.shutdown(Shutdown::Write).expect("the client half-closes after its request");
    let request = upstream_events
        .recv_timeout(TIMEOUT)
        .expect("the upstream reports what it read up to the client's EOF");
    assert_eq!(request, Ok(b"request".to_vec()), "the upstream gets the request and EOF");
    let reply = read_all(&client).expect("EOF from the relay, not a read timeout");
    let client_closed = half_closed.elapsed();
    client_done.send(()).expect("the upstream waits to hear the client saw EOF");

    assert!(reply.is_empty());
    assert_within(client_closed, HALF_CLOSE, "the client saw EOF");
    let upstream_closed = upstream_events
        .recv_timeout(TIMEOUT)
        .expect("the upstream reports whether the relay closed its connection");
    assert_eq!(upstream_closed, Ok(vec![1]), "the relay closed the upstream connection");
    drop(client);
    scenario.assert_recovered();
}

/// After the client's half-close, the upstream replies slowly but steadily: a chunk every
/// [`PACE`] for more than three half-close timeouts. The timer counts quiet time, not time
/// since the EOF, so the whole reply arrives.
#[test]
fn slow_steady_reply_after_half_close_is_not_cut() {
    let _serial = serial();
    let chunks = (4 * HALF_CLOSE.as_millis() / PACE.as_millis()) as usize;
    let reply = pattern(13, chunks * CHUNK);
    let upstream_reply = reply.clone();
    let scenario = Scenario::start(Duration::ZERO, HALF_CLOSE, move |stream| {
        assert_eq!(
            read_all(&stream)
                .expect("the upstream gets the request, then the EOF of the client's half-close"),
            b"request"
        );
        send_paced(&stream, &upstream_reply)
            .expect("the relay keeps taking the slow reply after the client's half-close");
    });

    let client = scenario.client();
    write_all(&client, b"request")
        .expect("the relay takes the client's request before the slow reply");
    let half_closed = Instant::now();
    client.shutdown(Shutdown::Write).expect("the client half-closes before the slow reply");
    let received = read_all(&client).expect("the whole reply, then EOF");

    assert!(half_closed.elapsed() >= 3 * HALF_CLOSE, "the reply was too quick to prove anything");
    assert_eq!(received.len(), reply.len(), "bytes lost: the reply was cut");
    assert!(received == reply, "reply corrupted");
    drop(client);
    scenario.assert_recovered();
}

// ---- resets and abrupt closes, phase by phase -----------------------------------------

/// Clients that close the moment they are connected, racing the relay's dial: each
/// connection still ends, and nothing is left behind. (tests/faults_threads.rs holds the
/// dial back with a hook to make "before the dial finishes" certain.)
#[test]
fn clients_closing_right_after_connect_leave_nothing_behind() {
    let _serial = serial();
    let (ended, upstream_ends) = mpsc::channel();
    let ended = Mutex::new(ended);
    let upstream = Upstream::start(move |stream| {
        // Speak first, as SMTP would, into a client that is already gone; then wait for
        // the relay to pass on the client's close.
        let _ = write_all(&stream, b"220 ready\r\n");
        let end = read_all(&stream).map_err(|error| error.kind());
        ended
            .lock()
            .expect("no upstream handler panicked holding the report channel")
            .send(end)
            .expect("the test waits for every upstream connection's end");
    });
    let scenario = Scenario::with_upstream(upstream, Duration::ZERO, Duration::ZERO);

    const CLIENTS: usize = 20;
    for _ in 0..CLIENTS {
        drop(connect(scenario.relay.addr));
    }
    for _ in 0..CLIENTS {
        let end = upstream_ends.recv_timeout(TIMEOUT).expect("every upstream connection ends");
        // EOF, or a reset if the relay closed with the greeting unread; not a timeout.
        assert!(
            end.as_ref().is_ok_and(|rest| rest.is_empty())
                || end == Err(ErrorKind::ConnectionReset),
            "{end:?}"
        );
    }

    assert_eq!(scenario.upstream.accepted(), CLIENTS);
    scenario.baseline.assert_restored();
}

/// The client resets while uploading (it closes with the upstream's greeting unread, so its
/// kernel sends RST): the upstream connection ends, having received a prefix of the upload.
#[test]
fn client_reset_mid_upload_ends_the_upstream_connection() {
    let _serial = serial();
    let sent = pattern(14, 1 << 20);
    let (upstream_got, upload) = mpsc::channel();
    let (got_some, upstream_has_some) = mpsc::channel();
    let got_some = Mutex::new(got_some);
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        write_all(&stream, b"hello").expect("the upstream sends a greeting the client never reads");
        let mut received = vec![0; 64 * 1024];
        (&stream).read_exact(&mut received).expect("the upstream gets 64 KiB of the upload");
        got_some
            .lock()
            .expect("no upstream handler panicked holding the signal")
            .send(())
            .expect("the test waits for the first 64 KiB to arrive");
        received.extend(read_until_closed(&stream));
        upstream_got
            .send(received)
            .expect("the test waits for the upload the upstream got before the reset");
    });

    let client = scenario.client();
    write_all(&client, &sent[..256 * 1024]).expect("the relay takes 256 KiB of the upload");
    upstream_has_some.recv_timeout(TIMEOUT).expect("64 KiB of the upload reach the upstream");
    drop(client); // RST: "hello" is unread

    let received = upload.recv_timeout(TIMEOUT).expect("the upstream connection ended");
    assert!(received.len() >= 64 * 1024 && received.len() <= 256 * 1024);
    assert!(received == sent[..received.len()], "the upload is not a prefix of what was sent");
    scenario.assert_recovered();
}

/// The client resets while downloading: the upstream's writes fail soon after, and the
/// bytes the client did get are a prefix of the download.
#[test]
fn client_reset_mid_download_ends_the_upstream_connection() {
    let _serial = serial();
    let chunk = pattern(15, 64 * 1024);
    let (upstream_wrote, written) = mpsc::channel();
    let upstream_chunk = chunk.clone();
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        upstream_wrote
            .send(write_until_closed(&stream, &upstream_chunk))
            .expect("the test waits for how much the upstream wrote before the reset");
    });

    let client = scenario.client();
    let mut first = vec![0; 100_000];
    (&client).read_exact(&mut first).expect("the client gets 100,000 bytes of the download");
    drop(client); // RST: the rest of the flood is unread

    let written = written.recv_timeout(TIMEOUT).expect("the upstream's writes fail");
    assert!(written >= first.len() as u64);
    assert!(first[..65536] == chunk[..] && first[65536..] == chunk[..100_000 - 65536]);
    scenario.assert_recovered();
}

/// The upstream resets while the client uploads (it closes with bytes unread): the client
/// learns promptly, by a failed write or by EOF or a reset on read, and the upstream got a
/// prefix of the upload.
#[test]
fn upstream_reset_mid_upload_ends_the_client_connection() {
    let _serial = serial();
    let chunk = pattern(16, 64 * 1024);
    let (upstream_got, upload) = mpsc::channel();
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        let mut received = vec![0; 200_000];
        (&stream).read_exact(&mut received).expect("the upstream gets 200,000 bytes of the upload");
        upstream_got.send(received).expect("the test waits for the bytes the upstream got");
        // Dropped with more of the upload queued unread: the kernel sends RST.
    });

    let client = scenario.client();
    let written = write_until_closed(&client, &chunk);
    let rest = read_until_closed(&client);
    drop(client);

    assert!(rest.is_empty());
    assert!(written >= 200_000);
    let received =
        upload.recv_timeout(TIMEOUT).expect("the upstream reports the 200,000 bytes it got");
    let expected: Vec<u8> = chunk.iter().copied().cycle().take(received.len()).collect();
    assert!(received == expected, "the upload is not a prefix of what was sent");
    scenario.assert_recovered();
}

/// The upstream resets in the middle of a download (it closes with the client's bytes
/// unread): the client sees the end promptly, and what it got is a prefix of the download.
#[test]
fn upstream_reset_mid_download_ends_the_client_connection() {
    let _serial = serial();
    let sent = pattern(17, 512 * 1024);
    let upstream_sent = sent.clone();
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        let _ = write_all(&stream, &upstream_sent);
        // The client's 4 KiB below stay unread: dropping now sends RST.
    });

    let client = scenario.client();
    write_all(&client, &[7; 4096]).expect("the relay takes the client's 4 KiB");
    let received = read_until_closed(&client);

    assert!(received.len() <= sent.len());
    assert!(received == sent[..received.len()], "the download is not a prefix of what was sent");
    drop(client);
    scenario.assert_recovered();
}

/// The client half-closes, the upstream starts a long reply, and the client resets partway
/// through reading it: the upstream's writes fail soon after.
#[test]
fn client_reset_after_its_half_close_ends_the_upstream_connection() {
    let _serial = serial();
    let chunk = pattern(18, 64 * 1024);
    let upstream_chunk = chunk.clone();
    let (upstream_wrote, written) = mpsc::channel();
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        assert_eq!(
            read_all(&stream).expect("the upstream gets the request, then the client's EOF"),
            b"request"
        );
        upstream_wrote
            .send(write_until_closed(&stream, &upstream_chunk))
            .expect("the test waits for how much of the reply the upstream wrote");
    });

    let client = scenario.client();
    write_all(&client, b"request")
        .expect("the relay takes the client's request before the long reply");
    client.shutdown(Shutdown::Write).expect("the client half-closes, then reads the long reply");
    let mut first = vec![0; chunk.len()];
    (&client).read_exact(&mut first).expect("the client gets 64 KiB of reply after half-closing");
    assert!(first == chunk);
    drop(client); // RST: the rest of the reply is unread

    assert!(written.recv_timeout(TIMEOUT).expect("the upstream's writes fail") >= 65536);
    scenario.assert_recovered();
}

/// The client half-closes, and the upstream resets partway through its reply (it closes
/// with part of the request unread): the client sees the end, after a prefix of the reply.
#[test]
fn upstream_reset_after_the_client_half_close_ends_the_client_connection() {
    let _serial = serial();
    let reply = pattern(19, 256 * 1024);
    let upstream_reply = reply.clone();
    let scenario = Scenario::start(Duration::ZERO, Duration::ZERO, move |stream| {
        let mut start = [0; 4];
        (&stream).read_exact(&mut start).expect("the upstream gets 4 bytes, the rest stays unread");
        let _ = write_all(&stream, &upstream_reply);
    });

    let client = scenario.client();
    write_all(&client, &[b'r'; 8192]).expect("the relay takes the client's 8 KiB request");
    client.shutdown(Shutdown::Write).expect("the client half-closes, then reads the reply");
    let received = read_until_closed(&client);

    assert!(received.len() <= reply.len());
    assert!(received == reply[..received.len()], "the reply is not a prefix of what was sent");
    drop(client);
    scenario.assert_recovered();
}

/// Timeouts on, and a burst of short echo exchanges: each ends by its own EOFs long before
/// any timer, and the timers leave nothing behind (no thread waits out a tick).
#[test]
fn timers_leave_nothing_behind_after_normal_exchanges() {
    let _serial = serial();
    let scenario = Scenario::start(IDLE, HALF_CLOSE, |_| {});

    let sent = Arc::new(pattern(20, 100_000));
    thread::scope(|scope| {
        for _ in 0..10 {
            let sent = Arc::clone(&sent);
            scope.spawn(move || {
                let client = connect(scenario.relay.addr);
                write_all(&client, &[ECHO]).expect("the relay takes the client's echo byte");
                let received = exchange(&client, &sent);
                assert!(received == *sent, "echo corrupted");
            });
        }
    });

    scenario.baseline.assert_restored();
}
