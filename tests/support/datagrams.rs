//! UDP peers for the datagram relay's tests: an echo upstream that remembers who sent what,
//! and a client socket with bounded waits.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::TIMEOUT;

/// One byte more than the largest UDP payload over IPv4: a buffer that shows a datagram
/// that was cut by filling up.
pub const DATAGRAM_BUFFER: usize = 65_508;

/// A UDP upstream on an ephemeral loopback port that sends every datagram back to its
/// sender, whole, and remembers each sender's address. Stopped and joined when dropped.
pub struct UdpEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    senders: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// An echo on `ip` (`127.0.0.1` or `::1`) and a free port.
    pub fn start(ip: &str) -> UdpEcho {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the UDP echo upstream");
        // Its loop looks at the stop flag this often.
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let addr = socket.local_addr().expect("the echo's address");
        let senders = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&senders), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buffer = vec![0; DATAGRAM_BUFFER];
            while !stopped.load(Ordering::Acquire) {
                if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                    seen.lock().expect("the echo's list is intact").push(from);
                    let _ = socket.send_to(&buffer[..len], from);
                }
            }
        });
        UdpEcho { addr, senders, stop, thread: Some(thread) }
    }

    /// Every sender, one entry per datagram received, in order.
    pub fn senders(&self) -> Vec<SocketAddr> {
        self.senders.lock().expect("the echo's list is intact").clone()
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP client on an ephemeral port of `ip`, whose receives wait at most [`TIMEOUT`].
pub fn udp_client(ip: &str) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a UDP client");
    socket.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    socket
}

/// Sends `datagram` to `to` and returns the next datagram received and who sent it.
pub fn udp_round_trip(
    client: &UdpSocket,
    to: SocketAddr,
    datagram: &[u8],
) -> (Vec<u8>, SocketAddr) {
    client.send_to(datagram, to).expect("send a datagram");
    udp_receive(client).expect("a reply within the timeout")
}

/// The next datagram `client` receives, and who sent it.
pub fn udp_receive(client: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
    let mut buffer = vec![0; DATAGRAM_BUFFER];
    let (len, from) = client.recv_from(&mut buffer)?;
    buffer.truncate(len);
    Ok((buffer, from))
}

/// The value of `name=` in a logfmt line.
pub fn log_field<'a>(line: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    line.split(' ')
        .find_map(|field| field.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}
