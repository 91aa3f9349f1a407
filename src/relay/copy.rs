//! One direction of a connection: [`copy_then_close_write`], Go's `copyThenCloseWrite`, and the
//! two ends it copies between, metered: a [`Source`] to read from and a [`Sink`] to write to.
//!
//! The ends wrap the sockets that `io::copy` reads and writes, and do three small jobs on the way:
//!
//! - **count** the bytes delivered. `io::copy` returns its total only on success; when a
//!   peer resets mid-transfer the count would be lost with the error. We count on the
//!   writing side, so the log reports bytes that really left through the other socket.
//! - **record activity** on the connection's shared clock, for the idle timers.
//! - **turn socket-timeout ticks into timer checks** (see [`crate::timers`] for why a tick
//!   never loses a byte), and remember whether an error came from writing, so the close
//!   reason blames the right peer.

use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::thread;

use crate::net::stream::Stream;
use crate::ops::observe::Observer;
use crate::outcome::{CloseReason, Direction};
use crate::relay::connection::Connection;

/// Copies `src` → `dst` until EOF or an error, then half-closes or closes, and returns the
/// bytes delivered. Go's `copyThenCloseWrite(dst, src)`:
///
/// ```go
/// func copyThenCloseWrite(dst, src *net.TCPConn) {
///     if _, err := io.Copy(dst, src); err != nil { // io::copy(&mut source, &mut sink)
///         src.Close()                       // connection.close(reason, error):
///         dst.Close()                       //   shutdown(Both) on both sockets
///         return
///     }
///     dst.CloseWrite()                      // dst.shutdown(Shutdown::Write)
/// }
/// ```
///
/// At EOF the source has said "I am done sending": we pass that on with `shutdown(Write)`
/// on the sink (Go's `CloseWrite`) and leave the other direction running, so a client that
/// half-closes still gets its whole reply. On an error, the whole connection is closed so
/// the other thread wakes up at once.
pub fn copy_then_close_write(
    dst: &Stream,
    src: &Stream,
    direction: Direction,
    connection: &Connection,
    observer: &Observer,
    buffer_size: usize,
) -> u64 {
    let _close_on_panic = CloseOnPanic(connection);
    let mut source = Source::new(src, connection, direction, observer);
    let mut sink = Sink::new(dst, connection, observer);
    // `0`: std's own loop with its 8 KiB buffer on this thread's stack, the plain shape.
    // Otherwise a heap buffer of that size, which `io::copy` reads into directly: fewer
    // system calls per byte, at the cost of memory. docs/benchmarks.md has both measured.
    let copied = match buffer_size {
        0 => io::copy(&mut source, &mut sink),
        size => io::copy(&mut BufReader::with_capacity(size, source), &mut sink),
    };
    match copied {
        Ok(_) => {
            connection.record_eof(direction.source_eof());
            // Told first, so the story stays in order: the peer reacts to the shutdown at once.
            observer.eof(connection.id, direction);
            // Fails only if the sink is already shut down or gone; the other copy will see it.
            let _ = dst.shutdown(Shutdown::Write);
        }
        Err(error) => {
            let reason =
                if sink.write_failed { direction.sink_failed() } else { direction.source_failed() };
            observer.copy_failed(connection.id, direction, &error);
            connection.close(reason, error);
        }
    }
    sink.bytes
}

/// Closes the connection if dropped during a panic, so a bug in one copy thread wakes its
/// sibling (which could otherwise wait forever in `read`) instead of leaking both.
pub struct CloseOnPanic<'a>(pub &'a Connection);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.close(CloseReason::Panicked, "copy thread panicked");
        }
    }
}

/// The socket a copy reads from.
#[derive(Debug)]
pub struct Source<'a> {
    stream: &'a Stream,
    connection: &'a Connection,
    observer: &'a Observer,
    direction: Direction,
    /// Whether `--explain` still has to tell this copy's first bytes (false when it is off,
    /// so the hot path pays one `bool` test).
    first_bytes_untold: bool,
}

impl<'a> Source<'a> {
    /// Wraps `stream`, the socket of `connection` that the copy in `direction` reads.
    pub fn new(
        stream: &'a Stream,
        connection: &'a Connection,
        direction: Direction,
        observer: &'a Observer,
    ) -> Source<'a> {
        let first_bytes_untold = observer.narrates();
        Source { stream, connection, observer, direction, first_bytes_untold }
    }

    fn tell_first_bytes(&mut self, count: usize) {
        self.first_bytes_untold = false;
        self.observer.first_bytes(self.connection.id, self.direction, count);
    }
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.stream).read(buf) {
                Ok(read) => {
                    if read > 0 {
                        self.connection.timers.record_activity();
                        if self.first_bytes_untold {
                            self.tell_first_bytes(read);
                        }
                    }
                    return Ok(read);
                }
                Err(error) if is_tick(&error) => self.connection.check_timers(self.observer)?,
                Err(error) => return Err(error),
            }
        }
    }
}

/// The socket a copy writes to; counts what was delivered.
#[derive(Debug)]
pub struct Sink<'a> {
    stream: &'a Stream,
    connection: &'a Connection,
    observer: &'a Observer,
    /// Bytes the kernel accepted so far.
    pub bytes: u64,
    /// Whether a write failed (as opposed to a read on the other side).
    pub write_failed: bool,
}

impl<'a> Sink<'a> {
    /// Wraps `stream`, a socket of `connection`, with a count of zero.
    pub fn new(stream: &'a Stream, connection: &'a Connection, observer: &'a Observer) -> Sink<'a> {
        Sink { stream, connection, observer, bytes: 0, write_failed: false }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.stream).write(buf) {
                Ok(written) => {
                    self.bytes += written as u64;
                    self.connection.timers.record_activity();
                    return Ok(written);
                }
                // A write timeout that sent nothing: the peer is not reading. Retrying is
                // safe; a partial write would have returned Ok with its count instead.
                Err(error) if is_tick(&error) => self.connection.check_timers(self.observer)?,
                // `write_all` retries `Interrupted` itself.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(error),
                Err(error) => {
                    self.write_failed = true;
                    return Err(error);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has no user-space buffer to flush
    }
}

/// Whether an error is a socket timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_tick(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
