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
/// Std has no `getsockopt`, so what the socket is comes from what std can ask: a peer
/// address means connected; `TCP_NODELAY` (readable on any TCP socket, refused on a UDP
/// one) means TCP; port 0 means never bound; and on Linux, whether it listens from
/// `shutdown(Write)` (see [`listens`]). A non-blocking `accept` would tell too (`EINVAL`
/// when not listening), but on a good socket it would take the first queued client away:
/// the very client socket activation kept waiting. The kernel's table
/// (`/proc/self/net/tcp`) would not do either: it lists no socket that is only bound, and
/// none of another network namespace (systemd's `PrivateNetwork=` with a socket unit).
/// Elsewhere a bound socket is taken as listening.
///
/// # Errors
/// `InvalidInput` when standard input is not a listening TCP socket (a terminal, a pipe, a
/// file, a Unix or UDP socket, a never-bound or a bound but not listening TCP socket, a
/// connected one: systemd's `Accept=yes`, inetd's `nowait`), saying what was given and what
/// to change; the OS error if fd 0 cannot be duplicated.
#[cfg(unix)]
pub(crate) fn listener_on_stdin() -> io::Result<Listener> {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    let refuse = |why: String| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("--listen stdin: standard input {why}"))
    };
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    // A connected socket has a peer; a listening one does not (ENOTCONN).
    let probe = TcpStream::from(fd.try_clone()?);
    if probe.peer_addr().is_ok() {
        return Err(refuse(
            "is a connected socket (systemd Accept=yes, inetd nowait); tcprelay needs the \
             listening socket: Accept=no, inetd wait"
                .to_string(),
        ));
    }
    let listener = TcpListener::from(fd);
    let Ok(local) = listener.local_addr() else {
        return Err(refuse(
            "is not a TCP socket; start tcprelay with a listening TCP socket as its standard \
             input (systemd: StandardInput=socket with a .socket unit, Accept=no)"
                .to_string(),
        ));
    };
    let needs = "tcprelay needs a listening TCP socket (systemd: ListenStream= with Accept=no)";
    if probe.nodelay().is_err() {
        return Err(refuse(format!("is a UDP (datagram) socket bound to {local}; {needs}")));
    }
    if local.port() == 0 {
        return Err(refuse(format!("is a TCP socket that was never bound ({local}); {needs}")));
    }
    if listens(&probe) == Some(false) {
        return Err(refuse(format!(
            "is a TCP socket bound to {local} that does not listen (no listen() call); {needs}"
        )));
    }
    // Ours blocks, whatever the socket's creator chose.
    listener.set_nonblocking(false)?;
    Ok(Listener::Tcp(listener))
}

/// Whether `socket` listens, where the OS can tell without side effects: on Linux,
/// `shutdown(SHUT_WR)` on a listening socket does nothing and succeeds, and on a socket that
/// is neither listening nor connected fails with `ENOTCONN` (`inet_shutdown` in
/// net/ipv4/af_inet.c). Elsewhere `None`: the BSDs answer `ENOTCONN` for both.
#[cfg(unix)]
fn listens(socket: &std::net::TcpStream) -> Option<bool> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    match socket.shutdown(std::net::Shutdown::Write) {
        Ok(()) => Some(true),
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Some(false),
        Err(_) => None,
    }
}

/// Standard input as a socket needs Unix file descriptors.
#[cfg(not(unix))]
pub(crate) fn listener_on_stdin() -> io::Result<Listener> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "--listen stdin needs a Unix system"))
}
