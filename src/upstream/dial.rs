//! Dialling the upstream: the Rust side of Go's `net.DialTimeout("tcp", upstream, timeout)`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::net::stream::{Stream, UNIX_PREFIX};

/// Why no upstream connection could be made.
#[derive(Debug)]
pub enum DialError {
    /// The host name did not resolve (or resolved to nothing).
    Resolve {
        /// The upstream as configured.
        upstream: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// Connecting to a Unix domain socket (`unix:/path`) failed.
    Unix {
        /// The upstream as configured.
        upstream: String,
        /// What the OS said (e.g. no such file, connection refused).
        error: io::Error,
    },
    /// Every resolved address failed; each with its own error, in the order tried.
    Connect {
        /// The upstream as configured.
        upstream: String,
        /// Each address tried and why it failed.
        attempts: Vec<(SocketAddr, io::Error)>,
    },
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Resolve { upstream, error } => {
                write!(f, "cannot resolve {upstream}: {error}")
            }
            DialError::Unix { upstream, error } => {
                write!(f, "cannot connect to {upstream}: {error}")
            }
            DialError::Connect { upstream, attempts } => {
                write!(f, "cannot connect to {upstream}")?;
                // Each address once: an upstream given as an IP is its only address.
                for (index, (addr, error)) in attempts.iter().enumerate() {
                    let separator = if index == 0 { ": " } else { "; " };
                    if attempts.len() == 1 && addr.to_string() == *upstream {
                        write!(f, "{separator}{error}")?;
                    } else {
                        write!(f, "{separator}{addr}: {error}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DialError {}

/// Resolves `upstream` now (not once at start-up: the upstream may have moved) and tries each
/// address in turn until one connects.
///
/// As in Go's dialer, the whole attempt is bounded by `timeout`, and each address gets an
/// equal share of the time that is left, so one black-holed address (say an IPv6 address
/// with no route) cannot eat the time the next one needs. Name resolution itself has no
/// timeout: std's resolver (`getaddrinfo`) blocks, and only the system's resolver settings
/// bound it. A zero `timeout` means no limit of our own: each address gets the OS's
/// connect timeout (a minute or two on Linux).
///
/// `unix:/path` connects to a Unix domain socket instead; that takes no time worth bounding
/// (it succeeds or fails at once), so `timeout` does not apply.
pub fn dial(upstream: &str, timeout: Duration) -> Result<Stream, DialError> {
    if let Some(path) = upstream.strip_prefix(UNIX_PREFIX) {
        return dial_unix(upstream, Path::new(path));
    }
    let addrs: Vec<SocketAddr> = match upstream.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(error) => {
            return Err(DialError::Resolve { upstream: upstream.to_string(), error });
        }
    };
    if addrs.is_empty() {
        let error = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        return Err(DialError::Resolve { upstream: upstream.to_string(), error });
    }
    let deadline = Instant::now() + timeout;
    let mut attempts = Vec::new();
    for (index, addr) in addrs.iter().enumerate() {
        let addresses_left = (addrs.len() - index) as u32;
        let share = deadline.saturating_duration_since(Instant::now()) / addresses_left;
        let connected = if timeout.is_zero() {
            TcpStream::connect(addr)
        } else if share.is_zero() {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        } else {
            TcpStream::connect_timeout(addr, share)
        };
        match connected {
            Ok(stream) => return Ok(Stream::Tcp(stream)),
            Err(error) => attempts.push((*addr, error)),
        }
    }
    Err(DialError::Connect { upstream: upstream.to_string(), attempts })
}

#[cfg(unix)]
fn dial_unix(upstream: &str, path: &Path) -> Result<Stream, DialError> {
    Stream::connect_unix(path)
        .map_err(|error| DialError::Unix { upstream: upstream.to_string(), error })
}

#[cfg(not(unix))]
fn dial_unix(upstream: &str, _path: &Path) -> Result<Stream, DialError> {
    let error = io::Error::new(io::ErrorKind::Unsupported, "no Unix domain sockets here");
    Err(DialError::Unix { upstream: upstream.to_string(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_error_names_each_address_once_with_no_stray_separator() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let one = DialError::Connect {
            upstream: "127.0.0.1:1".into(),
            attempts: vec![("127.0.0.1:1".parse().unwrap(), refused())],
        };
        assert_eq!(one.to_string(), format!("cannot connect to 127.0.0.1:1: {}", refused()));
        let two = DialError::Connect {
            upstream: "localhost:1".into(),
            attempts: vec![
                ("[::1]:1".parse().unwrap(), refused()),
                ("127.0.0.1:1".parse().unwrap(), refused()),
            ],
        };
        let text = two.to_string();
        assert_eq!(
            text,
            format!("cannot connect to localhost:1: [::1]:1: {0}; 127.0.0.1:1: {0}", refused())
        );
        assert!(!text.ends_with(';'));
    }
}
