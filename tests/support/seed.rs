//! The seed article's scenario (tests/go_programs.rs, tests/seed_bug_in_rust.rs): its two
//! messages, and which of two clients receives a reply.

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;

use super::TIMEOUT;

/// The client's second message: what follows the first one.
pub const SECOND_MESSAGE: &[u8] = b"second message\n";

/// The client's first message: exactly 128 bytes, the size of the seed's `data` buffer,
/// written with one `write` right after connect. On loopback one write is one segment, so
/// the seed's one `conn.Read(data)` takes exactly this message, no less and no more.
pub fn first_message() -> Vec<u8> {
    let mut message = b"first message: 128 bytes, one write, right after connect".to_vec();
    message.resize(127, b'.');
    message.push(b'\n');
    message
}

/// Reads `len` bytes on `a` and on `b` at once and returns what each got. As soon as one
/// has them, the other's read side is shut down, which wakes its blocked read with EOF: no
/// waiting out a timeout.
pub fn who_receives(a: &TcpStream, b: &TcpStream, len: usize) -> (Vec<u8>, Vec<u8>) {
    let (done_tx, done_rx) = mpsc::channel();
    thread::scope(|scope| {
        let readers = [a, b].map(|mut stream| {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut received = Vec::new();
                let mut buffer = [0u8; 64];
                while received.len() < len {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => received.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = done_tx.send(());
                received
            })
        });
        if done_rx.recv_timeout(TIMEOUT + TIMEOUT).is_ok() {
            for stream in [a, b] {
                let _ = stream.shutdown(std::net::Shutdown::Read);
            }
        }
        let [a, b] = readers.map(|reader| reader.join().expect("the reader does not panic"));
        (a, b)
    })
}
