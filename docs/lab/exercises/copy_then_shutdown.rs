//! Exercise 2 of docs/lab.md: write `copy_then_shutdown`, the Rust twin of
//! `copyThenCloseWrite` in docs/go/correct/main.go.
//!
//! Test it with `cargo test --test lab_copy`. The test relays a connection through your
//! function, once per direction on two threads, as tests/classroom/minimal.rs does. Undo
//! with `git checkout docs/lab/exercises`.

use std::io;
use std::net::TcpStream;

/// Copies every byte from `from` to `to` until `from` says EOF, then tells `to`'s peer "no
/// more data" while leaving `to` open for reading (the other direction may still carry the
/// reply). On an error, shuts both streams down so the other copy, blocked in `read`, wakes.
/// Returns the bytes copied, or the error.
pub fn copy_then_shutdown(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    // Your code here. Hints: `io::copy` takes `&mut impl Read` and `&mut impl Write`, and
    // `&TcpStream` is both; `to.shutdown(...)` takes a `std::net::Shutdown`.
    let _ = (from, to);
    Err(io::Error::other("copy_then_shutdown is not written yet (docs/lab.md, exercise 2)"))
}
