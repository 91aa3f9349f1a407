//! A client's side of the bytes: connecting, sending, reading with every wait bounded,
//! deterministic data and its checksum, and one-request HTTP for the admin endpoint.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use super::TIMEOUT;

/// A client connection with every wait bounded by [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the relay");
    stream.set_read_timeout(Some(TIMEOUT)).expect("set the client's read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("set the client's write timeout");
    stream
}

/// Reads until EOF (bounded by the stream's read timeout).
pub fn read_all(mut stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes all of `bytes`.
pub fn write_all(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)
}

/// Connects to `addr`, sends `data`, half-closes, and returns what came back up to EOF
/// (see [`exchange`]).
pub fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    exchange(&connect(addr), data)
}

/// Writes all of `sent` on a second thread while this one reads, half-closes after the last
/// byte, and returns everything that came back up to EOF. Writing and reading at once lets
/// an echo of more than the socket buffers hold through without a deadlock.
pub fn exchange(client: &TcpStream, sent: &[u8]) -> Vec<u8> {
    thread::scope(|scope| {
        scope.spawn(|| {
            write_all(client, sent).unwrap_or_else(|e| {
                panic!("the relay takes all {} bytes the client sends: {e}", sent.len())
            });
            client
                .shutdown(std::net::Shutdown::Write)
                .expect("the client half-closes after its last byte");
        });
        read_all(client).unwrap_or_else(|e| {
            panic!("the reply ends with EOF (a timeout: a half-close was not passed on): {e}")
        })
    })
}

/// Writes all of `sent` on a second thread while this one reads back as many bytes from an
/// echo, leaving the connection open for more: [`exchange`] without the half-close.
pub fn round_trip(client: &TcpStream, sent: &[u8]) -> Vec<u8> {
    thread::scope(|scope| {
        scope.spawn(|| send(client, sent));
        read_exactly(client, sent.len(), "the echo")
    })
}

/// `len` deterministic pseudo-random bytes for `seed` (xorshift64*), so each connection's
/// data differs and any loss, duplication or reordering changes the comparison.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// FNV-1a, a checksum for comparing large transfers.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Sends `request` as is to an HTTP endpoint and returns the status code and the body.
pub fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let stream = connect(addr);
    // The server may answer (and close) before it has read everything; that is fine.
    let _ = write_all(&stream, request);
    let response = read_all(&stream).unwrap_or_default();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string());
    (status, body.unwrap_or_default())
}

/// `GET path` on an HTTP endpoint: the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
}

/// `POST path` as curl sends it (`Host:` the admin address, no `Origin`, empty body): the
/// status and the body. The admin endpoint refuses a state change with any other `Host`.
pub fn http_post(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    http(addr, request.as_bytes())
}

/// Bytes as text for messages and comparisons (every message in these tests is ASCII).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `bytes` for a failure message: all of them, escaped, if they are few; else the first and
/// last 32 and how many there were, so a test that received megabytes prints one short line.
pub fn shown(bytes: &[u8]) -> String {
    const END: usize = 32;
    if bytes.len() <= 2 * END {
        return format!("{:?}", text(bytes));
    }
    let (first, last) = (&bytes[..END], &bytes[bytes.len() - END..]);
    format!("{} bytes: {:?} ... {:?}", bytes.len(), text(first), text(last))
}

/// Writes all of `bytes`, panicking with the reason if the peer is gone.
pub fn send(mut stream: &TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap_or_else(|e| panic!("write {}: {e}", shown(bytes)));
}

/// Reads exactly `len` bytes or panics, naming `who` and what had arrived.
pub fn read_exactly(mut stream: &TcpStream, len: usize, who: &str) -> Vec<u8> {
    let mut received = Vec::with_capacity(len);
    let mut buffer = [0u8; 4096];
    while received.len() < len {
        let want = (len - received.len()).min(buffer.len());
        match stream.read(&mut buffer[..want]) {
            Ok(0) => panic!("{who}: EOF after {}, expected {len} bytes", shown(&received)),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) => panic!("{who}: {e} after {}, expected {len} bytes", shown(&received)),
        }
    }
    received
}

/// Reads until EOF (each read bounded by the stream's read timeout), or panics naming `who`.
pub fn read_to_eof(mut stream: &TcpStream, who: &str) -> Vec<u8> {
    let mut received = Vec::new();
    if let Err(e) = stream.read_to_end(&mut received) {
        panic!("{who}: no EOF: {e} after {}", shown(&received));
    }
    received
}

/// Asserts that nothing, not even EOF, arrives on `stream` within `quiet`; then restores
/// the read timeout to [`TIMEOUT`].
pub fn assert_silent(mut stream: &TcpStream, quiet: Duration, who: &str) {
    stream.set_read_timeout(Some(quiet)).expect("set a read timeout");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        Ok(0) => panic!("{who}: EOF arrived"),
        Ok(n) => panic!("{who}: {:?} arrived", text(&buffer[..n])),
        Err(e) => panic!("{who}: {e}"),
    }
    stream.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
}
