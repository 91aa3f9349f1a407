//! Where a socket is: [`Address`], a TCP address or a Unix domain socket path, as the
//! relay binds, dials, logs and counts it. (Parsing the text a user writes into one is the
//! settings' job: `settings/address.rs`.)

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The prefix that marks a Unix domain socket address: `unix:/run/app.sock`.
pub const UNIX_PREFIX: &str = "unix:";

/// The prefix that marks a UDP address: `udp:127.0.0.1:53` (on a route's listen address it
/// makes the route a UDP route; on its upstreams it says the same again).
pub const UDP_PREFIX: &str = "udp:";

/// Where a socket is: an IP address and port, or a Unix domain socket path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address, e.g. `127.0.0.1:8080`.
    Tcp(SocketAddr),
    /// A Unix domain socket path; empty for an unnamed socket (what a Unix client usually is).
    Unix(PathBuf),
}

impl fmt::Display for Address {
    /// `127.0.0.1:8080`, `[::1]:8080`, or `unix:/run/app.sock` (`unix:` when unnamed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}
