//! A thin `Write` wrapper that counts the bytes a copy delivered, and remembers whether the
//! copy failed while writing (so we know which peer to blame).
//!
//! Why count on the writing side: `io::copy` returns its total only on success. When a peer
//! resets mid-transfer, the count of bytes already delivered would be lost with the error;
//! here it survives in the wrapper. Counting what was *written* (not read) means the log
//! reports bytes that really left through the other socket.

use std::io::{self, Write};
use std::net::TcpStream;

/// Counts bytes written to a socket.
#[derive(Debug)]
pub struct Meter<'a> {
    sink: &'a TcpStream,
    /// Bytes the kernel accepted so far.
    pub bytes: u64,
    /// Whether a write failed (as opposed to a read on the other side).
    pub write_failed: bool,
}

impl<'a> Meter<'a> {
    /// Wraps `sink` with a count of zero.
    pub fn new(sink: &'a TcpStream) -> Meter<'a> {
        Meter {
            sink,
            bytes: 0,
            write_failed: false,
        }
    }
}

impl Write for Meter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (&mut &*self.sink).write(buf) {
            Ok(written) => {
                self.bytes += written as u64;
                Ok(written)
            }
            Err(error) => {
                // `Interrupted` is retried by `write_all`; anything else ends the copy.
                if error.kind() != io::ErrorKind::Interrupted {
                    self.write_failed = true;
                }
                Err(error)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has no user-space buffer to flush
    }
}
