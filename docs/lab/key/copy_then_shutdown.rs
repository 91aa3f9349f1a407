//! The teacher's key to exercise 2 of docs/lab.md (see docs/lab/key.md). CI runs the
//! exercise's tests against this file.

use std::io;
use std::net::{Shutdown, TcpStream};

/// Copies every byte from `from` to `to` until `from` says EOF, then tells `to`'s peer "no
/// more data" while leaving `to` open for reading (the other direction may still carry the
/// reply). On an error, shuts both streams down so the other copy, blocked in `read`, wakes.
/// Returns the bytes copied, or the error.
pub fn copy_then_shutdown(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    match io::copy(&mut from, &mut to) {
        Ok(bytes) => {
            // Go: dst.CloseWrite(). Write only: `to` must still be readable.
            to.shutdown(Shutdown::Write)?;
            Ok(bytes)
        }
        Err(error) => {
            // Go: src.Close(); dst.Close(). Dropping our handle would not wake the other
            // thread's `read` (it has its own); shutdown acts on the socket itself.
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            Err(error)
        }
    }
}
