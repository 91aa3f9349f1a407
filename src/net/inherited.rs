//! A listening socket handed over on standard input: systemd's `StandardInput=socket` with
//! `Accept=no`, and inetd's `wait` mode (`--listen stdin`, `route stdin -> ...`).
//!
//! Whoever created the socket set every option std cannot (`Backlog=`, `ReusePort=`,
//! `BindToDevice=`, a privileged port without root, keep-alive); tcprelay only accepts on
//! it. Std takes it in safely: a duplicate of fd 0 (`try_clone_to_owned`) becomes an
//! `OwnedFd`, and `TcpListener::from` that. fd 0 itself stays open, so when tcprelay stops
//! accepting, the socket goes on queueing clients for whoever else holds it (under systemd,
//! the socket unit does: the next start serves them).

use std::io;

use crate::net::stream::Listener;

/// The TCP listening socket on standard input.
///
/// # Errors
/// `InvalidInput` when standard input is not a TCP socket (a terminal, a pipe, a file, a
/// Unix socket) or is a connected one (systemd's `Accept=yes`, inetd's `nowait`), saying
/// what to change; the OS error if fd 0 cannot be duplicated.
#[cfg(unix)]
pub(crate) fn listener_on_stdin() -> io::Result<Listener> {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    let refuse = |why: &str| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("--listen stdin: standard input {why}"))
    };
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    // A connected socket has a peer; a listening one does not (ENOTCONN).
    let probe = TcpStream::from(fd.try_clone()?);
    if probe.peer_addr().is_ok() {
        return Err(refuse(
            "is a connected socket (systemd Accept=yes, inetd nowait); tcprelay needs the \
             listening socket: Accept=no, inetd wait",
        ));
    }
    let listener = TcpListener::from(fd);
    if listener.local_addr().is_err() {
        return Err(refuse(
            "is not a TCP socket; start tcprelay with a listening TCP socket as its standard \
             input (systemd: StandardInput=socket with a .socket unit, Accept=no)",
        ));
    }
    // Ours blocks, whatever the socket's creator chose.
    listener.set_nonblocking(false)?;
    Ok(Listener::Tcp(listener))
}

/// Standard input as a socket needs Unix file descriptors.
#[cfg(not(unix))]
pub(crate) fn listener_on_stdin() -> io::Result<Listener> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "--listen stdin needs a Unix system"))
}
