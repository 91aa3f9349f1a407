//! The teacher's key to the stretch exercise of docs/lab.md (see docs/lab/key.md).

use std::io;
use std::net::TcpStream;

/// The client's first line, through its `\n`, or at most `max` bytes if no `\n` comes
/// first, or everything that has arrived if the line is not complete yet, all **left in
/// the socket**: the next `read` on `stream` must still return these bytes.
pub fn peek_first_line(stream: &TcpStream, max: usize) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; max];
    // Waits until at least one byte has arrived, then shows what is there without taking
    // it. It does not wait for more: peeking again at once returns the same bytes.
    let arrived = stream.peek(&mut buffer)?;
    let line_end = buffer[..arrived].iter().position(|&byte| byte == b'\n');
    let end = line_end.map_or(arrived, |newline| newline + 1);
    buffer.truncate(end);
    Ok(buffer)
}
