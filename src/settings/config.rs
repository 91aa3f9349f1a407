//! The relay's configuration: one plain struct with defaults.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::net::address::Address;
use crate::net::proxy_protocol::ProxyVersion;
use crate::net::sni::NamePattern;
use crate::settings::Error;
use crate::settings::access::{AccessRules, Cidr};
use crate::settings::logging::LogLevel;

/// The default mode of a route's Unix socket file: owner and group may connect, others may
/// not. Connecting to a Unix socket needs write permission on its file, so `0660` lets in
/// the relay's own user and the members of its group (the usual way to grant a client
/// service access, as `/run/docker.sock` and php-fpm's `listen.mode` do), and no one else.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

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
    /// Listen on this Unix domain socket path instead of [`listen`](Config::listen) (the
    /// `unix:/path` form of the command line and config file). Unix only. Default: none.
    pub listen_unix: Option<PathBuf>,
    /// Accept on the listening socket passed as standard input instead of binding one
    /// (`--listen stdin`: systemd's `StandardInput=socket`, inetd's `wait`). Default: off.
    pub listen_stdin: bool,
    /// The mode of the [`listen_unix`](Config::listen_unix) socket file (the `socket-mode`
    /// setting). Default `0660`:
    /// the relay's user and group may connect, no one else.
    pub listen_unix_mode: u32,
    /// The owner (uid) and group (gid) to give the [`listen_unix`](Config::listen_unix)
    /// socket file (the `socket-owner` and `socket-group` settings). Default: none, the
    /// relay's own.
    pub listen_unix_owner: Option<u32>,
    /// See [`listen_unix_owner`](Config::listen_unix_owner).
    pub listen_unix_group: Option<u32>,
    /// Where to forward each client, as `host:port`. Resolved again for every new connection,
    /// so a host name that moves to a new address is followed. Default: empty (must be set).
    pub upstream: String,
    /// More upstreams after [`upstream`](Config::upstream), for failover or load sharing;
    /// [`policy`](Config::policy) says how one is picked. Default: none.
    pub more_upstreams: Vec<String>,
    /// How a route with several upstreams picks one for each new client. Default
    /// [`Policy::First`]: the first in the list, the next one only when a connect fails.
    pub policy: Policy,
    /// After a failed connect, an upstream is tried only after the healthy ones for this
    /// long, so that clients don't each wait for a dead host. Default 10 s, nginx's
    /// `fail_timeout`. When every upstream is backing off, they are all still tried.
    pub upstream_backoff: Duration,
    /// Connect to each upstream every this long and skip those that fail 3 checks in a row
    /// until 2 pass (active health checks, on a thread of the route's own); zero turns them
    /// off. Default 0: off, and only a client's failed connect backs an upstream off.
    pub health_check: Duration,
    /// Who may connect: checked right after `accept`, before any upstream is dialled.
    /// Default: no rules, everyone (the default listen address is loopback).
    pub access: AccessRules,
    /// Send a PROXY protocol header of this version to the upstream before any client byte,
    /// so the upstream sees the real client address. Default: none.
    pub proxy_protocol: Option<ProxyVersion>,
    /// Each client must open with a PROXY protocol header (v1 or v2, from a load balancer
    /// in front), whose source address is then the client's for everything: access rules,
    /// logs, metrics and [`proxy_protocol`](Config::proxy_protocol). A client without a
    /// valid header in [`first_bytes_timeout`](Config::first_bytes_timeout) is closed
    /// (`bad_proxy_header`); only senders in [`proxy_from`](Config::proxy_from) may send
    /// it. Default: off.
    pub accept_proxy: bool,
    /// Who may send the PROXY header ([`accept_proxy`](Config::accept_proxy)): the TCP
    /// peers in these blocks. Anyone else is closed before a byte is read
    /// (`untrusted_proxy`), as a header can claim any address. Empty, the default: loopback
    /// only (`127.0.0.0/8`, `::1`), a balancer on the same host.
    pub proxy_from: Vec<Cidr>,
    /// The TLS server names this route takes (`sni=`): routes on one listen address that
    /// differ by server name share one listener, which peeks at each client's ClientHello
    /// to pick the route (`Server::bind` groups them; a lone `Relay` with names takes only
    /// those, and closes other clients with `no_route`). Empty (the default): the route
    /// takes every client, or, among routes with names, the clients no other route takes.
    pub server_names: Vec<NamePattern>,
    /// How long a client may take to send what the relay looks at before relaying: its
    /// PROXY header ([`accept_proxy`](Config::accept_proxy)) or its TLS ClientHello
    /// ([`server_names`](Config::server_names)). Default 5 s.
    pub first_bytes_timeout: Duration,
    /// The route's name in logs and in the `route` label of metrics. Default: empty, which
    /// means the listen address.
    pub name: String,
    /// How long dialling the upstream may take, shared between all its resolved addresses as
    /// Go's `net.DialTimeout` does. Default 5 s.
    pub connect_timeout: Duration,
    /// How much to log on stderr. Default [`LogLevel::Info`]: one line per finished connection.
    pub log_level: LogLevel,
    /// Close a connection when no byte has moved in either direction for this long; zero
    /// turns it off. Default 10 min, as nginx `stream`'s `proxy_timeout`: abandoned
    /// connections give their threads and descriptors back within minutes, while an
    /// interactive session may sit quiet for a while. See docs/reliability.md.
    pub idle_timeout: Duration,
    /// After one side has finished sending, close both when the other direction moves no
    /// byte for this long; zero turns it off. Default 60 s: a peer that is still replying
    /// keeps the connection, a half-open peer that never will stops pinning two threads and
    /// a CLOSE_WAIT socket. See docs/reliability.md.
    pub half_close_timeout: Duration,
    /// At most this many connections at once. At the limit the relay stops accepting;
    /// clients wait in the kernel's backlog until a connection ends (HAProxy's `maxconn`
    /// policy). Default 500: each connection holds two descriptors, so at the common soft
    /// limit of 1024 descriptors the relay reaches its own limit before the OS's.
    pub max_connections: usize,
    /// One client's share (one IPv4 address, one IPv6 /64), enforced only when slots run
    /// short: while more than this many of the route's slots are free nobody is refused;
    /// with this many or fewer free, a client holding this many or more is closed at once
    /// (`reason=client_limit`). `None`, the default: an eighth of
    /// [`max_connections`](Config::max_connections), at least 1, loopback clients not
    /// counted (behind a local proxy every client is one loopback address). `Some(0)`: no
    /// limit. `Some(n)`: `n`, loopback clients included.
    pub max_connections_per_client: Option<usize>,
    /// Relay UDP datagrams instead of TCP connections (the `udp:` prefix of a listen
    /// address: `-l udp:127.0.0.1:5353`). Each client address is then a flow with its own
    /// upstream socket (docs/operations.md, "UDP"). Default: off, TCP.
    pub udp: bool,
    /// On a UDP route, a flow with no datagram either way for this long ends. Default 60 s:
    /// longer than the keepalives of WireGuard (25 s) and OpenVPN (10 s ping), so tunnels
    /// stay up, and short enough that a flood of one-shot clients gives its threads back
    /// within a minute (rinetd waits 72 s, realm 30 s, nginx 10 min).
    pub udp_idle_timeout: Duration,
    /// On a UDP route, end a flow once the upstream sent this many datagrams for each one
    /// the client sent (nginx's `proxy_responses`; 1 for DNS). Default 0: no count, only
    /// the idle timeout.
    pub udp_responses: u64,
    /// On a UDP route, at most this many flows at once; at the limit a new client's
    /// datagram is dropped and counted (UDP has no backpressure). Default 500, as
    /// [`max_connections`](Config::max_connections): a flow holds one thread and one socket.
    pub max_flows: usize,
    /// On a UDP route, one client's share of [`max_flows`](Config::max_flows), by the rule
    /// of [`max_connections_per_client`](Config::max_connections_per_client): `None`, the
    /// default, an eighth, loopback not counted; `Some(0)` no limit.
    pub max_flows_per_client: Option<usize>,
    /// The stack size of each connection thread, in bytes. Default 64 KiB; see
    /// docs/reliability.md for what a connection thread was measured to need.
    pub stack_size: usize,
    /// How long a connection thread that finished waits for the next connection before it
    /// exits; zero: it exits at once, and every connection gets two new threads. Reusing a
    /// parked thread saves creating one (see docs/benchmarks.md). Default 10 s.
    pub thread_keep_alive: Duration,
    /// The largest copy buffer of each direction, in bytes (default 1 MiB). A copy
    /// holds no buffer while its connection is quiet, starts with 8 KiB when bytes flow and
    /// grows toward this size while reads keep filling it (`relay/copy.rs`); `0` or 8 KiB
    /// keep it at 8 KiB. docs/benchmarks.md has the measurements.
    pub buffer_size: usize,
    /// Narrate each connection's life on stdout, paired with the Go proxy's lines
    /// (`--explain`, for classrooms). Default off.
    pub explain: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            listen_unix: None,
            listen_stdin: false,
            listen_unix_mode: DEFAULT_SOCKET_MODE,
            listen_unix_owner: None,
            listen_unix_group: None,
            upstream: String::new(),
            more_upstreams: Vec::new(),
            policy: Policy::First,
            upstream_backoff: Duration::from_secs(10),
            health_check: Duration::ZERO,
            access: AccessRules::default(),
            proxy_protocol: None,
            accept_proxy: false,
            proxy_from: Vec::new(),
            server_names: Vec::new(),
            first_bytes_timeout: Duration::from_secs(5),
            name: String::new(),
            connect_timeout: Duration::from_secs(5),
            log_level: LogLevel::Info,
            idle_timeout: Duration::from_secs(600),
            half_close_timeout: Duration::from_secs(60),
            max_connections: 500,
            max_connections_per_client: None,
            udp: false,
            udp_idle_timeout: Duration::from_secs(60),
            udp_responses: 0,
            max_flows: 500,
            max_flows_per_client: None,
            stack_size: 64 * 1024,
            thread_keep_alive: Duration::from_secs(10),
            buffer_size: 1024 * 1024,
            explain: false,
        }
    }
}

impl Config {
    /// Where the route listens: [`listen_unix`](Config::listen_unix) if set, else
    /// [`listen`](Config::listen).
    pub fn listen_address(&self) -> Address {
        match &self.listen_unix {
            Some(path) => Address::Unix(path.clone()),
            None => Address::Tcp(self.listen),
        }
    }

    /// `listen` followed by the route's server names, if it has any
    /// (`127.0.0.1:443 sni=a.example.com,*.example.org`): how the routes sharing one
    /// address are told apart in labels, messages and the reload summary.
    pub(crate) fn listen_and_names(&self, listen: &impl fmt::Display) -> String {
        if self.server_names.is_empty() {
            return listen.to_string();
        }
        let names = self.server_names.iter().map(ToString::to_string);
        format!("{listen} sni={}", names.collect::<Vec<_>>().join(","))
    }

    /// Where the route listens as the config file writes it: `stdin`, or
    /// [`listen_address`](Config::listen_address).
    pub fn listen_text(&self) -> String {
        match (self.listen_stdin, self.udp) {
            (true, _) => "stdin".to_string(),
            (false, true) => {
                format!("{}{}", crate::net::address::UDP_PREFIX, self.listen_address())
            }
            (false, false) => self.listen_address().to_string(),
        }
    }

    /// Every upstream of the route, in the order they are listed: [`upstream`](Config::upstream)
    /// then [`more_upstreams`](Config::more_upstreams).
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.upstream.as_str())
            .chain(self.more_upstreams.iter().map(String::as_str))
    }
}

/// Which routes share one listener: routes on the same listen address (port 0 included:
/// one ephemeral port for them all) of which at least one has `sni=`. Every other route
/// has a listener of its own. Each group lists route indices in order; together they hold
/// every route once, in order of their first route.
pub fn listener_groups(routes: &[Config]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let listen = route.listen_address();
        let shares = |group: &&mut Vec<usize>| {
            let named = |i: &usize| !routes[*i].server_names.is_empty();
            routes[group[0]].listen_address() == listen
                && routes[group[0]].udp == route.udp
                && (!route.server_names.is_empty() || group.iter().any(named))
        };
        match groups.iter_mut().find(shares) {
            Some(group) => group.push(index),
            None => groups.push(vec![index]),
        }
    }
    groups
}

/// How a route with several upstreams picks one for each new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Try the upstreams in the order listed; the next one only when a connect fails.
    First,
    /// Start each new client at the next upstream in the list, wrapping around.
    RoundRobin,
    /// The upstream with the fewest open connections from this route (ties: round-robin).
    LeastConnections,
}

impl FromStr for Policy {
    type Err = Error;

    /// Parses `first`, `round-robin` or `least-connections`; the error reads
    /// `expected first, round-robin or least-connections, found "rr"`.
    fn from_str(text: &str) -> Result<Policy, Error> {
        match text {
            "first" => Ok(Policy::First),
            "round-robin" => Ok(Policy::RoundRobin),
            "least-connections" => Ok(Policy::LeastConnections),
            _ => Err(Error::value(format!(
                "expected first, round-robin or least-connections, found {text:?}"
            ))),
        }
    }
}

impl fmt::Display for Policy {
    /// Writes `first`, `round-robin` or `least-connections`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::First => f.write_str("first"),
            Policy::RoundRobin => f.write_str("round-robin"),
            Policy::LeastConnections => f.write_str("least-connections"),
        }
    }
}
