//! `tcprelay demo`: a first run for newcomers and classrooms, on loopback only.
//!
//! It starts an echo upstream and a relay on ephemeral ports and checks, with numbers, the
//! three things this relay promises: the first message sent right after connecting arrives
//! (the seed article's bug), a half-close is passed on while the reply still flows back, and
//! bulk data crosses intact.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Config, Relay};

/// How much the bulk step moves each way.
const BULK_BYTES: u64 = 64 * 1024 * 1024;
/// No demo step may wait on a socket longer than this.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the demo, printing each step to `out`. Returns whether every step passed.
///
/// # Errors
/// Only if the echo upstream or the relay cannot be started (e.g. no free port).
pub fn run(out: &mut dyn Write) -> io::Result<bool> {
    let echo = EchoUpstream::start()?;
    let relay = Relay::bind(Config { upstream: echo.addr.to_string(), ..Config::default() })?;
    let relay_addr = relay.local_addr();
    let stop = relay.stop_handle();
    let relay_thread = thread::spawn(move || relay.serve());
    writeln!(out, "tcprelay demo: echo upstream on {}, relay on {relay_addr}", echo.addr)?;

    let steps: [(&str, Step); 3] = [
        ("first message sent right after connect", first_message),
        ("half-close: client stops sending, reply still arrives", half_close),
        ("64 MiB through the relay and back", bulk),
    ];
    let mut all_passed = true;
    for (name, step) in steps {
        match step(relay_addr) {
            Ok(detail) => writeln!(out, "[ok]   {name}: {detail}")?,
            Err(error) => {
                all_passed = false;
                writeln!(out, "[FAIL] {name}: {error}")?;
            }
        }
    }
    stop.stop();
    match relay_thread.join() {
        Ok(result) => result?,
        Err(_) => all_passed = false,
    }
    echo.stop();
    writeln!(out, "{}", if all_passed { "all steps passed" } else { "some steps FAILED" })?;
    Ok(all_passed)
}

/// One demo step: given the relay's address, a line of detail on success.
type Step = fn(SocketAddr) -> io::Result<String>;

fn connect(relay: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(relay)?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    Ok(stream)
}

/// The seed's bug: a proxy that reads the first packet "to look at it" loses it.
fn first_message(relay: SocketAddr) -> io::Result<String> {
    let mut stream = connect(relay)?;
    let message = b"hello through the relay\n";
    stream.write_all(message)?; // at once, before anything else happens
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed)?;
    check(echoed == message, "the echo differs from what was sent")?;
    Ok(format!("{} bytes sent and echoed back", message.len()))
}

/// `shutdown(Write)` says "done sending"; the upstream must see EOF and still reply.
fn half_close(relay: SocketAddr) -> io::Result<String> {
    let mut stream = connect(relay)?;
    let request = b"a request that ends when the sender closes";
    stream.write_all(request)?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?; // returns only once the upstream's EOF came through
    check(reply == request, "the reply differs from the request")?;
    Ok(format!("{} bytes came back after the half-close, then EOF", reply.len()))
}

/// Bulk data both ways at once, checked byte for byte.
fn bulk(relay: SocketAddr) -> io::Result<String> {
    let stream = connect(relay)?;
    let started = Instant::now();
    let received = thread::scope(|scope| {
        let sender = scope.spawn(|| -> io::Result<()> {
            let mut chunk = vec![0; 64 * 1024];
            let mut offset = 0;
            while offset < BULK_BYTES {
                fill_pattern(&mut chunk, offset);
                (&stream).write_all(&chunk)?;
                offset += chunk.len() as u64;
            }
            stream.shutdown(Shutdown::Write)
        });
        let received = receive_and_check(&stream);
        let sent = sender.join().unwrap_or_else(|_| Err(io::Error::other("sender panicked")));
        sent.and(received)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    check(received == BULK_BYTES, "fewer bytes came back than were sent")?;
    let mib = BULK_BYTES as f64 / (1024.0 * 1024.0);
    Ok(format!(
        "{received} bytes each way in {seconds:.2} s ({:.0} MiB/s each way), all bytes checked",
        mib / seconds
    ))
}

/// Reads until EOF, checking every byte against the pattern; returns the count.
fn receive_and_check(mut stream: &TcpStream) -> io::Result<u64> {
    let mut buffer = vec![0; 64 * 1024];
    let mut expected = vec![0; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(offset);
        }
        fill_pattern(&mut expected[..n], offset);
        if buffer[..n] != expected[..n] {
            return Err(io::Error::other(format!("corrupted data near byte {offset}")));
        }
        offset += n as u64;
    }
}

/// Deterministic test data: the byte at `offset` depends on its position, so a lost,
/// repeated or reordered chunk shows up.
fn fill_pattern(chunk: &mut [u8], offset: u64) {
    for (i, byte) in chunk.iter_mut().enumerate() {
        let position = offset + i as u64;
        *byte = (position ^ (position >> 11) ^ (position >> 23)) as u8;
    }
}

fn check(ok: bool, problem: &str) -> io::Result<()> {
    if ok { Ok(()) } else { Err(io::Error::other(problem.to_string())) }
}

/// An echo server: each connection gets back what it sends; at the client's EOF the server
/// half-closes too, after the last byte.
struct EchoUpstream {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl EchoUpstream {
    fn start() -> io::Result<EchoUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let thread = thread::spawn(move || {
            thread::scope(|scope| {
                for stream in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    scope.spawn(move || {
                        let _ = io::copy(&mut &stream, &mut &stream);
                        let _ = stream.shutdown(Shutdown::Write);
                    });
                }
            });
        });
        Ok(EchoUpstream { addr, stopping, thread })
    }

    /// Stops accepting and waits for every echo thread (the relay has closed them all).
    fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the blocked accept
        let _ = self.thread.join();
    }
}
