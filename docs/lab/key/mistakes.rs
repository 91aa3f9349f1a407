//! Wrong answers to exercise 2 of docs/lab.md that students write, each catalogued in
//! docs/lab/key.md with the tests it fails. `LAB=mistake:NAME cargo test --test lab_copy`
//! runs one; tests/lab_exercises.sh runs them all and checks the key's table against what
//! the tests really say.

use std::io;
use std::net::{Shutdown, TcpStream};

/// The mistake called `name` in docs/lab/key.md, if there is one.
pub fn by_name(name: &str) -> Option<fn(&TcpStream, &TcpStream) -> io::Result<u64>> {
    match name {
        "no_shutdown" => Some(no_shutdown),
        "shutdown_both" => Some(shutdown_both),
        "drop_to" => Some(drop_to),
        "flipped" => Some(flipped),
        "question_mark" => Some(question_mark),
        _ => None,
    }
}

/// Copies, and never passes the EOF on.
fn no_shutdown(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    io::copy(&mut from, &mut to)
}

/// Passes the EOF on by closing both directions: the Go fix's early close.
fn shutdown_both(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let bytes = io::copy(&mut from, &mut to)?;
    to.shutdown(Shutdown::Both)?;
    Ok(bytes)
}

/// "Closes" `to` by dropping it: that drops a reference, and closes nothing.
#[allow(dropping_references, reason = "the mistake this catalogues")]
fn drop_to(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let bytes = io::copy(&mut from, &mut to)?;
    drop(to);
    Ok(bytes)
}

/// Go's `io.Copy(dst, src)` order kept: reads `to`, writes `from`, then shuts down `to`.
fn flipped(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let bytes = io::copy(&mut to, &mut from)?;
    to.shutdown(Shutdown::Write)?;
    Ok(bytes)
}

/// Right on the happy path; on an error, `?` returns without waking the other copy.
fn question_mark(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let bytes = io::copy(&mut from, &mut to)?;
    to.shutdown(Shutdown::Write)?;
    Ok(bytes)
}
