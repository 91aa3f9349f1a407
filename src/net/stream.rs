//! A connected socket that is either TCP or a Unix domain socket, and the addresses of both.
//!
//! A route may listen on, or forward to, `unix:/path` instead of `host:port`. Everything
//! a connection does with its sockets (read, write, `shutdown`, timeouts) exists for both
//! kinds with the same meaning, so [`Stream`] is a plain enum whose methods `match` and
//! call the same method on the socket inside. On the copy path that is one branch per
//! `read` or `write`: no allocation, no trait object. Half-close works the same way on a
//! Unix stream socket: `shutdown(Write)` sends EOF and the other direction goes on.
//!
//! On platforms without Unix domain sockets the `Unix` variants do not exist.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use crate::net::address::Address;

/// A connected socket: TCP or Unix domain.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain stream socket.
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Stream {
    /// Connects to a Unix domain socket. There is no timeout: a local connect either
    /// succeeds or fails at once (unless the listener's backlog is full).
    ///
    /// # Errors
    /// The OS error, e.g. `NotFound` when no socket file exists at `path`.
    #[cfg(unix)]
    pub fn connect_unix(path: &std::path::Path) -> io::Result<Stream> {
        UnixStream::connect(path).map(Stream::Unix)
    }

    /// Shuts down reading, writing or both (Go's `CloseRead`/`CloseWrite`/`Close` on the
    /// socket itself, seen by every handle and every thread blocked on it).
    ///
    /// # Errors
    /// The OS error, e.g. `NotConnected` when the peer is already gone.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.shutdown(how),
        }
    }

    /// Sets the read timeout (`None`: block forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    /// Waits until at least one byte (or EOF) can be read, without taking it: a one-byte
    /// `peek`, so a copy that has gone quiet holds no buffer while it waits. Returns `true`
    /// if it waited. A Unix stream cannot peek on stable Rust (`unix_socket_peek`), so for
    /// it this returns `false` at once and the caller reads with a buffer as before.
    ///
    /// # Errors
    /// As `read`: the socket's timeout as `WouldBlock`, a reset, ...
    pub fn wait_readable(&self) -> io::Result<bool> {
        match self {
            Stream::Tcp(stream) => stream.peek(&mut [0; 1]).map(|_| true),
            #[cfg(unix)]
            Stream::Unix(_) => Ok(false),
        }
    }

    /// Sets the write timeout (`None`: block forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_write_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_write_timeout(timeout),
        }
    }

    /// Makes the socket blocking (clears `O_NONBLOCK`).
    pub(crate) fn set_blocking(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_nonblocking(false),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_nonblocking(false),
        }
    }

    /// Turns off Nagle's algorithm on TCP; a Unix socket has none, so there it does nothing.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_nodelay(nodelay),
            #[cfg(unix)]
            Stream::Unix(_) => Ok(()),
        }
    }

    /// Copies the bytes waiting in the socket into `buf` without taking them: the next
    /// `read` returns them again (`MSG_PEEK`). Blocks, within the read timeout, until at
    /// least one byte is there; returns at once while any is. `Ok(0)` is EOF.
    ///
    /// # Errors
    /// The OS error; `Unsupported` on a Unix socket, whose `peek` is not stable in std yet
    /// (`unix_socket_peek`, rust-lang/rust#76923).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.peek(buf),
            #[cfg(unix)]
            Stream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "std cannot peek a Unix socket (unix_socket_peek is unstable)",
            )),
        }
    }

    /// The address of the other end.
    ///
    /// # Errors
    /// The OS error, e.g. when the peer is already gone.
    pub fn peer_addr(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(stream) => stream.peer_addr().map(Address::Tcp),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.peer_addr().map(|addr| unix_address(&addr)),
        }
    }

    /// The address of our end (for a TCP client: the address it dialled).
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(stream) => stream.local_addr().map(Address::Tcp),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.local_addr().map(|addr| unix_address(&addr)),
        }
    }
}

/// A Unix socket address as an [`Address`]: its path, or an empty path when unnamed.
#[cfg(unix)]
pub fn unix_address(addr: &std::os::unix::net::SocketAddr) -> Address {
    Address::Unix(addr.as_pathname().map(PathBuf::from).unwrap_or_default())
}

// `Read` and `Write` for `&Stream`, as std has them for `&TcpStream`: each socket is read by
// one thread and written by the other through shared references.
impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&mut &*stream).read(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&mut &*stream).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&mut &*stream).write(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&mut &*stream).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has no user-space buffer to flush
    }
}

/// A listening socket: TCP or Unix domain. A Unix listener removes its socket file when
/// dropped, since it created it.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(std::net::TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// Who may use a Unix socket file the relay creates: its mode, and its owner and group where
/// given (numeric ids; `chown` needs the privilege to give the file away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketFile {
    /// The file's mode, e.g. [`DEFAULT_SOCKET_MODE`](crate::settings::config::DEFAULT_SOCKET_MODE).
    pub mode: u32,
    /// The owner's uid, if not the relay's own.
    pub owner: Option<u32>,
    /// The group's gid, if not the relay's own.
    pub group: Option<u32>,
}

impl SocketFile {
    /// A socket file with `mode`, owned by the relay's user and group.
    pub fn with_mode(mode: u32) -> SocketFile {
        SocketFile { mode, owner: None, group: None }
    }
}

impl Listener {
    /// Binds to `address`; a Unix socket file gets the mode, owner and group of `unix`.
    ///
    /// A file already at a Unix socket path is replaced only when it is a socket that nobody
    /// listens on (left behind by a process that is gone: a connect to it is refused). A
    /// socket that answers, and anything that is not a socket (a regular file, a directory,
    /// a symbolic link), is left alone and the bind fails naming the path: one typo in a
    /// path must never delete data.
    ///
    /// The socket is bound in a private directory next to the path, given its mode, owner
    /// and group there, and renamed into place: it appears at the path with them, and no
    /// other user can redirect the `chmod` or `chown` (see
    /// [`socket_file`](crate::net::socket_file)).
    pub(crate) fn bind(address: &Address, unix: SocketFile) -> io::Result<Listener> {
        match address {
            Address::Tcp(addr) => std::net::TcpListener::bind(addr)
                .map(Listener::Tcp)
                .map_err(|error| with_low_port_hint(error, addr.port())),
            #[cfg(unix)]
            Address::Unix(path) => bind_unix(path, unix),
            #[cfg(not(unix))]
            Address::Unix(_) => {
                let _ = unix;
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix domain sockets are not supported on this platform",
                ))
            }
        }
    }

    /// The bound address (with the real port when port 0 was asked).
    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(Address::Tcp),
            #[cfg(unix)]
            Listener::Unix(_, path) => Ok(Address::Unix(path.clone())),
        }
    }

    /// Waits for the next client (Go: `l.Accept()`).
    pub(crate) fn accept(&self) -> io::Result<(Stream, Address)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, addr) = listener.accept()?;
                Ok((Stream::Tcp(stream), Address::Tcp(addr)))
            }
            #[cfg(unix)]
            Listener::Unix(listener, _) => {
                let (stream, addr) = listener.accept()?;
                Ok((Stream::Unix(stream), unix_address(&addr)))
            }
        }
    }

    /// Accepts a client only if one is already waiting in the backlog; `None` if none is.
    ///
    /// The accept loop uses it at the connection limit, to tell "clients still queue" from
    /// "the limit has cleared" without blocking until the next client arrives.
    pub(crate) fn accept_waiting(&self) -> Option<io::Result<(Stream, Address)>> {
        if let Err(error) = self.set_nonblocking(true) {
            return Some(Err(error));
        }
        let accepted = self.accept();
        // Blocking again before anything else: a non-blocking listener would make every
        // later accept return at once, and the loop spin.
        if let Err(error) = self.set_nonblocking(false) {
            return Some(Err(error));
        }
        match accepted {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
            // On some systems (the BSDs) an accepted socket inherits O_NONBLOCK; ours blocks.
            Ok((stream, addr)) => Some(stream.set_blocking().map(|()| (stream, addr))),
            Err(error) => Some(Err(error)),
        }
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            #[cfg(unix)]
            Listener::Unix(listener, _) => listener.set_nonblocking(nonblocking),
        }
    }
}

#[cfg(unix)]
impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A TCP bind refused with "Permission denied", with what to do about it. On Linux only
/// root or a process with `CAP_NET_BIND_SERVICE` may bind a port below
/// `net.ipv4.ip_unprivileged_port_start` (1024 unless changed), and the bare OS message
/// names none of the three ways out.
fn with_low_port_hint(error: io::Error, port: u16) -> io::Error {
    if error.kind() != io::ErrorKind::PermissionDenied || port == 0 {
        return error;
    }
    let first_free = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if port >= first_free {
        return error; // not the low-port rule: a security module, say
    }
    io::Error::new(
        error.kind(),
        format!(
            "{error}: only root or a process with the CAP_NET_BIND_SERVICE capability may \
             bind a port below {first_free} (net.ipv4.ip_unprivileged_port_start); under \
             systemd add AmbientCapabilities=CAP_NET_BIND_SERVICE to the [Service] section, \
             elsewhere run setcap cap_net_bind_service=+ep on the binary, or lower the limit \
             for every user with sysctl net.ipv4.ip_unprivileged_port_start={port}"
        ),
    )
}

/// Binds a Unix listener at `path`, replacing only a stale socket file, with the mode,
/// owner and group of `file` (see [`socket_file`](crate::net::socket_file)).
#[cfg(unix)]
fn bind_unix(path: &std::path::Path, file: SocketFile) -> io::Result<Listener> {
    let listener = crate::net::socket_file::bind_in_place(path, file.mode, file.owner, file.group)?;
    // From here on the file is ours: dropping the listener removes it.
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

/// Connects to a listener at `address` once, to wake a thread blocked in its `accept`
/// (std cannot interrupt `accept`). A wildcard IP (`0.0.0.0`, `::`) is reached through
/// loopback. Errors are ignored: the caller has already told the loop to leave.
pub(crate) fn wake(address: &Address) {
    match address {
        Address::Tcp(addr) => {
            let mut addr = *addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            let _ = UnixStream::connect(path);
        }
        #[cfg(not(unix))]
        Address::Unix(_) => {}
    }
}
