//! One request/response over an echo upstream: write a numbered message, read
//! the same number of bytes back, and check they are the message.
//!
//! The latency, keep-alive, connection-rate and idle workloads are all built
//! from this exchange; numbering the messages means a reply that belongs to an
//! earlier request (or to another connection) is caught, not counted.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single connect, read or write may take before the workload
/// fails: far above any healthy loopback figure, short enough that a stuck
/// relay ends the run quickly.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A reusable pair of buffers for exchanging `size`-byte messages.
pub struct Exchange {
    message: Vec<u8>,
    reply: Vec<u8>,
}

/// The smallest message: it must hold the 8-byte sequence number.
pub const MIN_MESSAGE_SIZE: usize = 8;

impl Exchange {
    /// Buffers for messages of `size` bytes (at least `MIN_MESSAGE_SIZE`).
    pub fn new(size: usize) -> Exchange {
        let size = size.max(MIN_MESSAGE_SIZE);
        Exchange { message: vec![0; size], reply: vec![0; size] }
    }

    /// Sends message number `sequence` and checks the echoed reply.
    pub fn round_trip(&mut self, stream: &mut TcpStream, sequence: u64) -> io::Result<()> {
        self.send(stream, sequence)?;
        self.receive(stream, sequence)
    }

    /// Sends message number `sequence` (the first half of `round_trip`).
    pub fn send(&mut self, stream: &mut TcpStream, sequence: u64) -> io::Result<()> {
        self.write_message(sequence);
        stream.write_all(&self.message)
    }

    /// Reads the echo of message number `sequence` and checks it (the second
    /// half of `round_trip`). The expected bytes are rebuilt from `sequence`,
    /// so several messages may be sent before their echoes are read.
    pub fn receive(&mut self, stream: &mut TcpStream, sequence: u64) -> io::Result<()> {
        stream.read_exact(&mut self.reply)?;
        self.write_message(sequence);
        if self.reply != self.message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("echo of message {sequence} came back different"),
            ));
        }
        Ok(())
    }

    /// Fills `message` with message number `sequence`: the number itself,
    /// then bytes that vary with it, so every byte of the echo is checked.
    fn write_message(&mut self, sequence: u64) {
        self.message[..8].copy_from_slice(&sequence.to_le_bytes());
        let fill = sequence as u8;
        for (i, byte) in self.message[8..].iter_mut().enumerate() {
            *byte = fill.wrapping_add(i as u8);
        }
    }
}

/// Connects to `target` with the workloads' settings: bounded connect,
/// bounded reads and writes, and `TCP_NODELAY` so a small request leaves at
/// once instead of waiting for Nagle's algorithm.
pub fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target, STALL_TIMEOUT)
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {target}: {e}")))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(STALL_TIMEOUT))?;
    stream.set_write_timeout(Some(STALL_TIMEOUT))?;
    Ok(stream)
}
