//! The upstream: a UDP echo server on 127.0.0.1, answering every datagram
//! with the same bytes to the address it came from, like a DNS server answers
//! a query. One thread: two threads on one socket could swap two datagrams
//! of a flow, and the flood counts reordering as the relay's fault. The
//! "direct" rows of the tables show what this one thread can do.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// The largest datagram over IPv4 (65,535 minus the IP and UDP headers).
pub const MAX_DATAGRAM: usize = 65_507;

/// An echo server running on its own thread until `duration` has passed.
pub struct Echo {
    /// Where it listens.
    pub addr: SocketAddr,
    thread: thread::JoinHandle<()>,
}

impl Echo {
    /// Binds 127.0.0.1:0 and starts answering.
    pub fn start(duration: Duration) -> io::Result<Echo> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let addr = socket.local_addr()?;
        // A read timeout as a tick, so every thread sees the deadline.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let deadline = Instant::now() + duration;
        let thread = thread::spawn(move || serve(&socket, deadline));
        Ok(Echo { addr, thread })
    }

    /// Waits until the server has reached its deadline.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn serve(socket: &UdpSocket, deadline: Instant) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            // A lost echo is the relay's loss to the benchmark: nothing to do here.
            Ok((len, from)) => drop(socket.send_to(&buf[..len], from)),
            Err(e) if is_timeout(&e) => {}
            // ICMP errors from clients that went away show up here on Linux.
            Err(_) => {}
        }
    }
}

/// A read timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
