//! Who may connect: CIDR blocks and the allow/deny rules of one route.
//!
//! The relay asks [`AccessRules::permits`] right after `accept`, before any upstream is
//! dialled, so a denied client never costs an upstream connection.
//!
//! # Evaluation order
//!
//! 1. If the client matches any `deny` rule, it is denied. A deny always wins, so a narrow
//!    deny can carve a hole out of a wide allow (`allow=10.0.0.0/8 deny=10.0.0.5`).
//! 2. Otherwise, if there is at least one `allow` rule, the client must match one of them.
//! 3. With no rules at all, everyone is allowed (the relay listens on loopback by default).
//!
//! The order of the rules in the configuration does not matter, which makes a rule list
//! safe to read in any order and to merge from several places.
//!
//! An IPv6 client whose address is IPv4-mapped (`::ffff:10.1.2.3`, what a dual-stack
//! listener on `[::]` reports for an IPv4 peer) is matched as the IPv4 address it carries,
//! so IPv4 rules work whichever way the listener was bound.
//!
//! [`AccessRules`] shows it on an example.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A block of IP addresses: a network address and a prefix length, like `10.0.0.0/8`.
///
/// Build one with `"10.0.0.0/8".parse::<Cidr>()`. A bare address (`10.0.0.5`, `::1`) is a
/// block of exactly that one address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a text is not a CIDR block; `Display` names the text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    /// The text that was given, exactly as written.
    pub value: String,
    /// What was expected instead, e.g. `a prefix length from 0 to 32 after an IPv4 address`.
    pub expected: String,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {:?}", self.expected, self.value)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The first address of the block, e.g. `10.0.0.0` for `10.0.0.0/8`.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits every address in the block shares (0 to 32, or 0 to 128).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies inside this block. An IPv4 block never contains an IPv6 address and
    /// the other way round, except that IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = prefix_mask_v4(self.prefix_len);
                u32::from(ip) & mask == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = prefix_mask_v6(self.prefix_len);
                u128::from(ip) & mask == u128::from(network)
            }
            _ => false,
        }
    }

    /// Builds the block holding `address` with `prefix_len` leading bits, clearing the rest.
    /// IPv4-mapped IPv6 blocks of /96 or longer become the IPv4 block they describe.
    fn from_parts(address: IpAddr, prefix_len: u8) -> Cidr {
        match address {
            IpAddr::V6(v6) if prefix_len >= 96 && v6.to_ipv4_mapped().is_some() => {
                // `to_canonical` turns `::ffff:a.b.c.d` into `a.b.c.d`.
                Cidr::from_parts(address.to_canonical(), prefix_len - 96)
            }
            IpAddr::V4(v4) => Cidr {
                network: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & prefix_mask_v4(prefix_len))),
                prefix_len,
            },
            IpAddr::V6(v6) => Cidr {
                network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & prefix_mask_v6(prefix_len))),
                prefix_len,
            },
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDRESS/PREFIX` or a bare `ADDRESS`.
    ///
    /// The address must be the first of its block: `10.0.0.5/8` is rejected rather than
    /// silently widened, because it usually means the user meant `10.0.0.5` alone.
    /// An IPv4-mapped IPv6 block such as `::ffff:10.0.0.0/104` is stored as `10.0.0.0/8`.
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let error = |expected: String| CidrError { value: text.to_string(), expected };
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text.parse().map_err(|_| {
            error("an IPv4 or IPv6 address or block such as 10.0.0.0/8 or ::1/128".to_string())
        })?;
        let max_len: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max_len,
            // `u8::from_str` accepts a leading `+`; a prefix is digits only.
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                match digits.parse::<u8>() {
                    Ok(len) if len <= max_len => len,
                    _ => return Err(error(prefix_expectation(address))),
                }
            }
            Some(_) => return Err(error(prefix_expectation(address))),
        };
        let cidr = Cidr::from_parts(address, prefix_len);
        if has_host_bits(address, prefix_len) {
            return Err(error(format!("a block that starts at its network address, like {cidr}")));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    /// Writes `10.0.0.0/8`; a single address is written with its full prefix (`10.0.0.5/32`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Whether `address` has bits set after its first `prefix_len` bits (`10.0.0.5/8` does).
fn has_host_bits(address: IpAddr, prefix_len: u8) -> bool {
    match address {
        IpAddr::V4(v4) => u32::from(v4) & !prefix_mask_v4(prefix_len) != 0,
        IpAddr::V6(v6) => u128::from(v6) & !prefix_mask_v6(prefix_len) != 0,
    }
}

fn prefix_expectation(address: IpAddr) -> String {
    match address {
        IpAddr::V4(_) => "a prefix length from 0 to 32 after an IPv4 address".to_string(),
        IpAddr::V6(_) => "a prefix length from 0 to 128 after an IPv6 address".to_string(),
    }
}

/// The netmask with the top `prefix_len` bits set. Shifting a `u32` by 32 would overflow,
/// hence the special case for `/0`.
fn prefix_mask_v4(prefix_len: u8) -> u32 {
    if prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix_len)) }
}

fn prefix_mask_v6(prefix_len: u8) -> u128 {
    if prefix_len == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix_len)) }
}

/// The access rules of one route, asked right after `accept` (see
/// [`permits`](AccessRules::permits)): a client matching a `deny` block is denied (a deny
/// always wins); otherwise, if there are `allow` blocks, it must match one; with no rules,
/// everyone is allowed. The order of the rules does not matter.
///
/// ```
/// use tcprelay::AccessRules;
///
/// let rules = AccessRules {
///     allow: vec!["10.0.0.0/8".parse().unwrap()],
///     deny: vec!["10.0.0.5".parse().unwrap()],
/// };
/// assert!(rules.permits("10.1.2.3".parse().unwrap()));
/// assert!(!rules.permits("10.0.0.5".parse().unwrap()));
/// assert!(!rules.permits("192.168.1.1".parse().unwrap()));
/// assert!(rules.permits("::ffff:10.1.2.3".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// If not empty, only clients inside one of these blocks may connect.
    pub allow: Vec<Cidr>,
    /// Clients inside any of these blocks may not connect, even if an allow rule matches.
    pub deny: Vec<Cidr>,
}

impl AccessRules {
    /// Whether a client connecting from `ip` may use the route: not denied, and allowed
    /// when there are allow rules.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|cidr| cidr.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|cidr| cidr.contains(ip))
    }

    /// Whether there are no rules at all, so that every client is permitted.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Whether a client connecting from `ip` may send a PROXY protocol header, given a route's
/// `proxy-from` blocks: it is in one of them, or, with none named, it is on this host
/// (127.0.0.0/8, also as `::ffff:127.0.0.0/104`, or `::1`): a balancer beside the relay.
/// Like nginx's `set_real_ip_from` and HAProxy's `expect-proxy layer4 if { src … }`, only
/// named senders are believed; unlike them, the default names this host rather than nobody.
pub fn may_send_proxy_header(proxy_from: &[Cidr], ip: IpAddr) -> bool {
    match proxy_from {
        [] => ip.to_canonical().is_loopback(),
        blocks => blocks.iter().any(|cidr| cidr.contains(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap_or_else(|e| panic!("test CIDR {text}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("test address {text}: {e}"))
    }

    #[test]
    fn parses_ipv4_and_ipv6_blocks() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::/0").to_string(), "::/0");
    }

    #[test]
    fn bare_address_is_a_host_route() {
        assert_eq!(cidr("10.0.0.5"), cidr("10.0.0.5/32"));
        assert_eq!(cidr("::1"), cidr("::1/128"));
        assert_eq!(cidr("::1").prefix_len(), 128);
    }

    #[test]
    fn ipv4_block_membership_at_the_edges() {
        let block = cidr("192.168.4.0/22");
        assert!(block.contains(ip("192.168.4.0")));
        assert!(block.contains(ip("192.168.7.255")));
        assert!(!block.contains(ip("192.168.3.255")));
        assert!(!block.contains(ip("192.168.8.0")));
    }

    #[test]
    fn ipv6_block_membership_at_the_edges() {
        let block = cidr("2001:db8:aa00::/40");
        assert!(block.contains(ip("2001:db8:aa00::")));
        assert!(block.contains(ip("2001:db8:aaff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!block.contains(ip("2001:db8:ab00::")));
        assert!(!block.contains(ip("2001:db8:a9ff::1")));
    }

    #[test]
    fn slash_zero_matches_its_whole_family_only() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_rules() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.0.0.1")));
        assert!(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_rules_become_ipv4_rules() {
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:10.0.0.5"), cidr("10.0.0.5"));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.1.1")));
    }

    #[test]
    fn rejects_malformed_blocks_naming_the_value() {
        let cases = [
            ("", "an IPv4 or IPv6 address"),
            ("10.0.0/8", "an IPv4 or IPv6 address"),
            ("example.com", "an IPv4 or IPv6 address"),
            ("fe80::1%eth0", "an IPv4 or IPv6 address"),
            ("10.0.0.0/33", "a prefix length from 0 to 32"),
            ("10.0.0.0/", "a prefix length from 0 to 32"),
            ("10.0.0.0/+8", "a prefix length from 0 to 32"),
            ("10.0.0.0/8/8", "a prefix length from 0 to 32"),
            ("::/129", "a prefix length from 0 to 128"),
            ("::/999", "a prefix length from 0 to 128"),
            ("10.0.0.5/8", "like 10.0.0.0/8"),
            ("2001:db8::1/32", "like 2001:db8::/32"),
            ("::ffff:10.0.0.5/104", "like 10.0.0.0/8"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<Cidr>().expect_err(text);
            assert_eq!(error.value, text);
            assert!(
                error.to_string().contains(expected),
                "{text}: {error} should mention {expected}"
            );
        }
    }

    #[test]
    fn error_message_reads_expected_then_found() {
        let error = "10.0.0.0/33".parse::<Cidr>().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"expected a prefix length from 0 to 32 after an IPv4 address, found "10.0.0.0/33""#
        );
    }

    #[test]
    fn no_rules_allow_everyone() {
        let rules = AccessRules::default();
        assert!(rules.is_empty());
        assert!(rules.permits(ip("203.0.113.9")));
        assert!(rules.permits(ip("2001:db8::1")));
    }

    #[test]
    fn allow_rules_admit_only_their_blocks() {
        let rules =
            AccessRules { allow: vec![cidr("10.0.0.0/8"), cidr("2001:db8::/32")], deny: vec![] };
        assert!(rules.permits(ip("10.1.2.3")));
        assert!(rules.permits(ip("2001:db8::7")));
        assert!(!rules.permits(ip("192.168.1.1")));
        assert!(!rules.permits(ip("::1")));
    }

    #[test]
    fn deny_wins_over_a_matching_allow() {
        let rules = AccessRules { allow: vec![cidr("10.0.0.0/8")], deny: vec![cidr("10.0.0.5")] };
        assert!(!rules.permits(ip("10.0.0.5")));
        assert!(!rules.permits(ip("::ffff:10.0.0.5")));
        assert!(rules.permits(ip("10.0.0.6")));
    }

    #[test]
    fn deny_only_rules_admit_everyone_else() {
        let rules = AccessRules { allow: vec![], deny: vec![cidr("192.0.2.0/24"), cidr("::1")] };
        assert!(!rules.permits(ip("192.0.2.200")));
        assert!(!rules.permits(ip("::1")));
        assert!(rules.permits(ip("127.0.0.1")));
        assert!(rules.permits(ip("2001:db8::1")));
    }

    #[test]
    fn only_named_senders_or_by_default_this_host_may_send_a_proxy_header() {
        for local in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(may_send_proxy_header(&[], ip(local)), "{local} is this host");
        }
        for remote in ["10.0.0.1", "::2", "::10.0.0.1", "::ffff:10.0.0.1"] {
            assert!(!may_send_proxy_header(&[], ip(remote)), "{remote} is not this host");
        }
        let named = [cidr("127.0.0.1/32"), cidr("10.0.0.0/8")];
        assert!(may_send_proxy_header(&named, ip("10.1.2.3")));
        assert!(may_send_proxy_header(&named, ip("127.0.0.1")));
        assert!(!may_send_proxy_header(&named, ip("127.0.0.2")), "named: loopback no more");
    }
}
