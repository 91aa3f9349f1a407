//! The two ends of one copy, metered: a [`Source`] to read from and a [`Sink`] to write to.
//!
//! They wrap the sockets that `io::copy` reads and writes, and do three small jobs on the way:
//!
//! - **count** the bytes delivered. `io::copy` returns its total only on success; when a
//!   peer resets mid-transfer the count would be lost with the error. We count on the
//!   writing side, so the log reports bytes that really left through the other socket.
//! - **record activity** on the connection's shared clock, for the idle timers.
//! - **turn socket-timeout ticks into timer checks** (see [`crate::timers`] for why a tick
//!   never loses a byte), and remember whether an error came from writing, so the close
//!   reason blames the right peer.

use crate::connection::Connection;
use crate::stream::Stream;
use std::io::{self, Read, Write};

/// Which way bytes flow in one copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Read the client, write the upstream.
    ClientToUpstream,
    /// Read the upstream, write the client.
    UpstreamToClient,
}

/// The socket a copy reads from.
#[derive(Debug)]
pub struct Source<'a> {
    stream: &'a Stream,
    connection: &'a Connection,
    direction: Direction,
    /// Whether `--explain` still has to tell this copy's first bytes (false when it is off,
    /// so the hot path pays one `bool` test).
    first_bytes_untold: bool,
}

impl<'a> Source<'a> {
    /// Wraps `stream`, the socket of `connection` that the copy in `direction` reads.
    pub fn new(stream: &'a Stream, connection: &'a Connection, direction: Direction) -> Source<'a> {
        let first_bytes_untold = connection.explain.is_on();
        Source { stream, connection, direction, first_bytes_untold }
    }

    fn tell_first_bytes(&mut self, count: usize) {
        self.first_bytes_untold = false;
        self.connection.explain.first_bytes(self.connection.id, self.direction, count);
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
                Err(error) if is_tick(&error) => self.connection.check_timers()?,
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
    /// Bytes the kernel accepted so far.
    pub bytes: u64,
    /// Whether a write failed (as opposed to a read on the other side).
    pub write_failed: bool,
}

impl<'a> Sink<'a> {
    /// Wraps `stream`, a socket of `connection`, with a count of zero.
    pub fn new(stream: &'a Stream, connection: &'a Connection) -> Sink<'a> {
        Sink { stream, connection, bytes: 0, write_failed: false }
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
                Err(error) if is_tick(&error) => self.connection.check_timers()?,
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
