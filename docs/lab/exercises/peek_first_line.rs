//! The stretch exercise of docs/lab.md: look at a client's first line without taking it,
//! as SNI routing must look at a TLS ClientHello and still forward all of it.
//!
//! Test it with `cargo test --test lab_peek`.

use std::io;
use std::net::TcpStream;

/// The client's first line, through its `\n`, or at most `max` bytes if no `\n` comes
/// first, or everything that has arrived if the line is not complete yet, all **left in
/// the socket**: the next `read` on `stream` must still return these bytes.
pub fn peek_first_line(stream: &TcpStream, max: usize) -> io::Result<Vec<u8>> {
    // Your code here. `TcpStream::peek` fills a buffer like `read`, without taking.
    let _ = (stream, max);
    Err(io::Error::other("peek_first_line is not written yet (docs/lab.md, stretch)"))
}
