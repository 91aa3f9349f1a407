//! Who counts as one client for `--max-connections-per-client`: one IPv4 address, or one
//! IPv6 /64 (what a single host or home network is usually given, so a client cannot
//! dodge the limit by hopping between the addresses of its own prefix).

use std::net::IpAddr;

use crate::net::address::Address;

/// The key a client's connections are counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// One IPv4 address (an IPv4-mapped IPv6 address counts as the IPv4 one).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl ClientKey {
    /// The key for a client address as `accept` returned it; `None` for a Unix socket
    /// client, which has no address to tell clients apart (guard the socket's file
    /// permissions instead).
    ///
    /// With a PROXY protocol listener (`--accept-proxy`, not built yet), call this with the
    /// address the header names, not the proxy's: the proxy is one address for everyone.
    pub fn of(client: &Address) -> Option<ClientKey> {
        match client {
            Address::Tcp(addr) => Some(ClientKey::of_ip(addr.ip())),
            Address::Unix(_) => None,
        }
    }

    fn of_ip(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }

    /// Whether the client is on this host (127.0.0.0/8, ::1). A local reverse proxy or
    /// load balancer makes every client look like one loopback address, so the default
    /// limit leaves loopback clients alone; a limit set explicitly counts them too.
    pub fn is_loopback(self) -> bool {
        match self {
            ClientKey::V4(octets) => octets[0] == 127,
            ClientKey::V6Prefix(prefix) => prefix == 0, // ::1 (and ::/64, unroutable)
        }
    }
}

/// The per-client limit of a route: at most `limit` connections per [`ClientKey`]; 0: none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerClientLimit {
    /// At most this many connections from one client; 0 turns the limit off.
    pub limit: usize,
    /// Whether loopback clients are counted (only when the limit was set explicitly).
    pub counts_loopback: bool,
}

/// The default share of `--max-connections` one client may hold: an eighth. Then one busy
/// client leaves 7/8 of the slots to the others, and it takes eight clients (or /64s)
/// acting together to fill the relay, while a client that legitimately opens several
/// connections (a browser opens 6 per host) is not cut at the default of 500 (62 each).
pub const DEFAULT_SHARE: usize = 8;

impl PerClientLimit {
    /// The limit for a route with `max_connections` slots and the setting `configured`
    /// (`None`: the default share; `Some(0)`: off; `Some(n)`: `n`, loopback included).
    pub fn new(configured: Option<usize>, max_connections: usize) -> PerClientLimit {
        match configured {
            None => PerClientLimit {
                limit: (max_connections / DEFAULT_SHARE).max(1),
                counts_loopback: false,
            },
            Some(limit) => PerClientLimit { limit, counts_loopback: true },
        }
    }

    /// Whether the client under `key` counts against the limit at all.
    pub fn applies_to(&self, key: ClientKey) -> bool {
        self.limit > 0 && (self.counts_loopback || !key.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ClientKey {
        ClientKey::of(&Address::Tcp(text.parse().unwrap())).unwrap()
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff::9]:2"));
        assert_ne!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
        assert_eq!(key("[::ffff:10.0.0.1]:1"), key("10.0.0.1:2"));
        assert_ne!(key("10.0.0.1:1"), key("10.0.0.2:1"));
        assert_eq!(ClientKey::of(&Address::Unix("".into())), None);
    }

    #[test]
    fn the_default_is_an_eighth_and_spares_loopback() {
        let default = PerClientLimit::new(None, 500);
        assert_eq!(default.limit, 62);
        assert!(!default.applies_to(key("127.0.0.2:1")) && !default.applies_to(key("[::1]:1")));
        assert!(default.applies_to(key("10.0.0.1:1")));
        assert_eq!(PerClientLimit::new(None, 5).limit, 1, "at least one");
        let explicit = PerClientLimit::new(Some(3), 500);
        assert!(explicit.applies_to(key("127.0.0.1:1")));
        assert!(!PerClientLimit::new(Some(0), 500).applies_to(key("10.0.0.1:1")), "0: off");
    }
}
