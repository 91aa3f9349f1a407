//! Who counts as one client for `--max-connections-per-client`: one IPv4 address, or one
//! IPv6 /64 (what a single host or home network is usually given, so a client cannot
//! dodge the limit by hopping between the addresses of its own prefix); and the rule that
//! limit follows: fairness when the route's slots run short, not a quota while they are
//! plentiful ([`PerClientLimit::refuses`]).

use std::net::IpAddr;

use crate::net::address::Address;

/// The key a client's connections are counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// One IPv4 address (an IPv4-mapped IPv6 address counts as the IPv4 one).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
    /// `::1`, the IPv6 loopback address: a key of its own, as `::/64` also holds `::2` and
    /// the IPv4-compatible `::10.0.0.1`, which are not this host.
    V6Loopback,
}

impl ClientKey {
    /// The key for a client address as `accept` returned it; `None` for a Unix socket
    /// client, which has no address to tell clients apart (guard the socket's file
    /// permissions instead).
    ///
    /// With a PROXY protocol listener (`accept-proxy`), the relay calls this with the
    /// address the header names once the sender is trusted (`proxy-from`), not the proxy's:
    /// the proxy is one address for everyone.
    pub fn of(client: &Address) -> Option<ClientKey> {
        match client {
            Address::Tcp(addr) => Some(ClientKey::of_ip(addr.ip())),
            Address::Unix(_) => None,
        }
    }

    fn of_ip(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) if v6.is_loopback() => ClientKey::V6Loopback,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }

    /// Whether the client is on this host: 127.0.0.0/8 (also as `::ffff:127.0.0.0/104`) or
    /// `::1`, and nothing else. A local reverse proxy or load balancer makes every client
    /// look like one loopback address, so the default limit leaves loopback clients alone; a
    /// limit set explicitly counts them too.
    pub fn is_loopback(self) -> bool {
        match self {
            ClientKey::V4(octets) => octets[0] == 127,
            ClientKey::V6Loopback => true,
            ClientKey::V6Prefix(_) => false,
        }
    }
}

/// The per-client limit of a route: its share of `limit` connections per [`ClientKey`],
/// enforced only when the route is short of slots (see [`refuses`](PerClientLimit::refuses));
/// 0: none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerClientLimit {
    /// At most this many connections from one client; 0 turns the limit off.
    pub limit: usize,
    /// Whether loopback clients are counted (only when the limit was set explicitly).
    pub counts_loopback: bool,
}

/// The default share of `--max-connections`: an eighth (62 of the default 500). Under the
/// rule of [`PerClientLimit::refuses`], one busy client may take all but the last eighth of
/// an idle route, and that last eighth stays for the others: the route is never short of
/// slots for a newcomer unless several clients fill it together.
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

    /// Whether a new connection from `client`, which already holds `held` of the route's
    /// `open` connections (at most `max`), is refused (`reason=client_limit`).
    ///
    /// The rule: while more than `limit` slots are free, nobody is refused, so a single
    /// client with a pool of 300 is served by an idle route of 500. Once `limit` or fewer
    /// are free, a client already holding `limit` or more is refused and the others still
    /// get in: the last `limit` slots are kept for the clients holding fewer, so the
    /// addresses holding the most are the ones refused, and one address cannot lock the
    /// others out. (HAProxy and nginx impose nothing by default; nginx's `limit_conn` is a
    /// plain quota. This is a quota only under pressure.)
    pub fn refuses(&self, client: ClientKey, held: usize, open: usize, max: usize) -> bool {
        let short_of_slots = open >= max.saturating_sub(self.limit);
        self.applies_to(client) && short_of_slots && held >= self.limit
    }

    /// What a refused client's `connection closed` line says.
    pub fn refusal(&self) -> String {
        format!(
            "max-connections-per-client={} reached with {} or fewer slots free",
            self.limit, self.limit
        )
    }
}

/// How many connections one address may have waiting for their first bytes (a PROXY
/// header, a TLS ClientHello) on a listener of `max_connections`, in their room of as many
/// (see `OpenConnections`): an eighth, at least 1, loopback included (a silent local client
/// is no more welcome). A fixed bound, not the fairness rule of
/// [`PerClientLimit::refuses`]: under that rule two addresses could fill the room (one with
/// all but the last eighth, the other with the rest), and a third waited out their
/// `first-bytes-timeout`. nginx does the same: `limit_conn` on the TCP peer before
/// `ssl_preread`. A balancer's header arrives with its connection, so its waits are short.
pub fn waiting_share(max_connections: usize) -> usize {
    (max_connections / DEFAULT_SHARE).max(1)
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
    fn only_127_0_0_0_8_and_colon_colon_1_are_loopback() {
        for local in ["127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "[::ffff:127.0.0.2]:1"] {
            assert!(key(local).is_loopback(), "{local} is this host");
        }
        for remote in ["[::2]:1", "[::10.0.0.1]:1", "[::]:1", "10.0.0.1:1", "[::ffff:10.0.0.1]:1"] {
            assert!(!key(remote).is_loopback(), "{remote} is not this host");
        }
        let default = PerClientLimit::new(None, 500);
        assert!(default.applies_to(key("[::2]:1")), "::2 is counted by the default");
        assert!(default.applies_to(key("[::10.0.0.1]:1")), "::10.0.0.1 too");
    }

    #[test]
    fn nobody_is_refused_while_the_route_has_room() {
        let default = PerClientLimit::new(None, 500); // a share of 62
        let client = key("10.0.0.1:1");
        // One client with a pool of 300 (or 437) on an otherwise idle route: all served.
        assert!(!default.refuses(client, 299, 299, 500));
        assert!(!default.refuses(client, 437, 437, 500), "63 slots still free");
        // With 62 or fewer free, the client holding 62 or more is refused...
        assert!(default.refuses(client, 438, 438, 500));
        assert!(default.refuses(client, 62, 490, 500));
        // ...and one holding fewer still gets in, up to the last slot.
        assert!(!default.refuses(key("10.0.0.2:1"), 0, 438, 500));
        assert!(!default.refuses(key("10.0.0.2:1"), 61, 499, 500));
        // Loopback is spared by the default, counted by an explicit limit.
        assert!(!default.refuses(key("127.0.0.1:1"), 499, 499, 500));
        let explicit = PerClientLimit::new(Some(3), 4);
        assert!(!explicit.refuses(key("127.0.0.1:1"), 0, 0, 4), "4 - 3 = 1 slot free or more");
        assert!(explicit.refuses(key("127.0.0.1:1"), 3, 3, 4));
        assert!(!PerClientLimit::new(Some(0), 4).refuses(client, 3, 3, 4), "0: off");
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

    #[test]
    fn an_address_may_have_an_eighth_of_the_waiting_room_and_at_least_one() {
        assert_eq!(waiting_share(500), 62);
        assert_eq!(waiting_share(8), 1);
        assert_eq!(waiting_share(2), 1, "at least one");
    }
}
