//! The relay's configuration: one plain struct with defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::log::LogLevel;

/// Everything a [`Relay`](crate::Relay) needs to know. Build it with struct update syntax so
/// new fields keep their defaults:
///
/// ```
/// let config = tcprelay::Config {
///     upstream: "localhost:6379".to_string(),
///     ..tcprelay::Config::default()
/// };
/// assert_eq!(config.listen.to_string(), "127.0.0.1:0");
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to accept clients. Default `127.0.0.1:0`: loopback only, and port 0 asks the OS
    /// for a free port (read it back with [`Relay::local_addr`](crate::Relay::local_addr)).
    pub listen: SocketAddr,
    /// Where to forward each client, as `host:port`. Resolved again for every new connection,
    /// so a host name that moves to a new address is followed. Default: empty (must be set).
    pub upstream: String,
    /// How long dialling the upstream may take, shared between all its resolved addresses as
    /// Go's `net.DialTimeout` does. Default 5 s.
    pub connect_timeout: Duration,
    /// How much to log on stderr. Default [`LogLevel::Info`]: one line per finished connection.
    pub log_level: LogLevel,
    /// The stack size of each connection thread, in bytes. Default 256 KiB; see
    /// docs/architecture.md for what a connection thread needs.
    pub stack_size: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            upstream: String::new(),
            connect_timeout: Duration::from_secs(5),
            log_level: LogLevel::Info,
            stack_size: 256 * 1024,
        }
    }
}
