//! How a connection ended, and which way a copy runs: the plain values that the core, the
//! observers (log, `--explain`, metrics) and the settings all speak of. A leaf: it imports
//! nothing from the crate, so every module can use it without a cycle.

use std::fmt;

/// Why a connection ended. In the log as `reason=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client finished sending first (then the upstream finished too).
    ClientEof,
    /// The upstream finished sending first (then the client finished too).
    UpstreamEof,
    /// Reading from or writing to the client failed (reset, broken pipe, ...).
    ClientReset,
    /// Reading from or writing to the upstream failed.
    UpstreamReset,
    /// No upstream connection could be made.
    ConnectFailed,
    /// The thread for the second direction could not be created.
    SpawnFailed,
    /// A connection thread panicked (a bug); the connection was closed and the relay went on.
    Panicked,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// After one side finished sending, the other moved no byte for the half-close timeout.
    HalfCloseTimeout,
    /// The relay was stopped while this connection was open.
    Stopped,
    /// The access rules (`allow`/`deny`) refused the client; no upstream was dialled.
    Denied,
    /// The route was short of slots and the client already held its share of them
    /// (`--max-connections-per-client`), or of the room where connections wait for their
    /// first bytes: closed at once, no upstream dialled.
    ClientLimit,
    /// The whole process was at the connection cap its OS limits allow (several routes
    /// together): closed at once, no upstream dialled.
    ProcessLimit,
    /// The route expects a PROXY protocol header (`accept-proxy`) and the client's first
    /// bytes were not a valid one, or did not arrive in time; nothing was forwarded.
    BadProxyHeader,
    /// No route on the listener takes the server name the client asked for (or it asked
    /// for none), and the listener has no default route; nothing was forwarded.
    NoRoute,
    /// The upstream resolved only to the route's own listen address: dialling it would make
    /// the relay connect to itself, again and again; nothing was dialled.
    SelfLoop,
    /// The route expects a PROXY protocol header (`accept-proxy`) and the client is not one
    /// of the senders named by `proxy-from`: closed before any byte was read, as its header
    /// could claim any address.
    UntrustedProxy,
}

impl CloseReason {
    /// The name used in logs, e.g. `client_eof`.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientEof => "client_eof",
            CloseReason::UpstreamEof => "upstream_eof",
            CloseReason::ClientReset => "client_reset",
            CloseReason::UpstreamReset => "upstream_reset",
            CloseReason::ConnectFailed => "connect_failed",
            CloseReason::SpawnFailed => "spawn_failed",
            CloseReason::Panicked => "panicked",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HalfCloseTimeout => "half_close_timeout",
            CloseReason::Stopped => "stopped",
            CloseReason::Denied => "denied",
            CloseReason::ClientLimit => "client_limit",
            CloseReason::ProcessLimit => "process_limit",
            CloseReason::BadProxyHeader => "bad_proxy_header",
            CloseReason::NoRoute => "no_route",
            CloseReason::SelfLoop => "self_loop",
            CloseReason::UntrustedProxy => "untrusted_proxy",
        }
    }

    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [CloseReason; 17] = [
        CloseReason::ClientEof,
        CloseReason::UpstreamEof,
        CloseReason::ClientReset,
        CloseReason::UpstreamReset,
        CloseReason::ConnectFailed,
        CloseReason::SpawnFailed,
        CloseReason::Panicked,
        CloseReason::IdleTimeout,
        CloseReason::HalfCloseTimeout,
        CloseReason::Stopped,
        CloseReason::Denied,
        CloseReason::ClientLimit,
        CloseReason::ProcessLimit,
        CloseReason::BadProxyHeader,
        CloseReason::NoRoute,
        CloseReason::SelfLoop,
        CloseReason::UntrustedProxy,
    ];

    /// This reason's place in [`CloseReason::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether this ending points at a fault in the relay itself (a thread it could not
    /// start, a bug), which the log reports as a warning rather than as news.
    pub fn is_relay_fault(self) -> bool {
        matches!(self, CloseReason::SpawnFailed | CloseReason::Panicked)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way bytes flow in one copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Read the client, write the upstream.
    ClientToUpstream,
    /// Read the upstream, write the client.
    UpstreamToClient,
}

impl Direction {
    /// The ending when this copy's source finished sending cleanly.
    pub fn source_eof(self) -> CloseReason {
        match self {
            Direction::ClientToUpstream => CloseReason::ClientEof,
            Direction::UpstreamToClient => CloseReason::UpstreamEof,
        }
    }

    /// The ending when reading this copy's source failed.
    pub fn source_failed(self) -> CloseReason {
        match self {
            Direction::ClientToUpstream => CloseReason::ClientReset,
            Direction::UpstreamToClient => CloseReason::UpstreamReset,
        }
    }

    /// The ending when writing this copy's sink failed.
    pub fn sink_failed(self) -> CloseReason {
        match self {
            Direction::ClientToUpstream => CloseReason::UpstreamReset,
            Direction::UpstreamToClient => CloseReason::ClientReset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index() {
        for (index, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index, "{reason} is out of place in CloseReason::ALL");
        }
    }
}
