//! The PROXY protocol header, so that an upstream behind the relay sees the real client.
//!
//! A relay hides the client: the upstream's `getpeername()` returns the relay's address.
//! HAProxy's PROXY protocol fixes that by sending one small header at the very start of the
//! upstream connection, before any client byte, naming the client's address and port and the
//! address the client connected to. The receiver (nginx `listen ... proxy_protocol`, HAProxy
//! `accept-proxy`, Postfix, Dovecot ...) must be configured to expect it; a server that is not
//! will see the header as garbage, so the relay sends it only when a route asks for it.
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>, sections
//! 2.1 (version 1, one text line) and 2.2 (version 2, binary). This module only *encodes*;
//! the relay never reads a PROXY header.
//!
//! The caller writes the whole header with a single `write_all` on the freshly connected
//! upstream socket, before the two copy threads start. The spec asks for the header to be
//! sent "at once"; it is at most 104 bytes (v1) or 52 bytes (v2), far below one TCP segment.
//!
//! The test `the_module_example` at the end of this file runs an example.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Which PROXY protocol header to send: the text line (v1) or the binary block (v2).
///
/// Both carry the same information for TCP. v1 is readable in a packet dump and is the
/// only one nginx's `proxy_protocol` *sender* speaks; v2 is cheaper for the receiver to
/// parse. Receivers that accept v2 usually accept v1 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Version 1: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    V1,
    /// Version 2: a 16-byte binary header followed by the addresses.
    V2,
}

/// A text that is not `v1` or `v2`; `Display` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyVersionError {
    /// The text that was given, exactly as written.
    pub value: String,
}

impl fmt::Display for ProxyVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected v1 or v2, found {:?}", self.value)
    }
}

impl std::error::Error for ProxyVersionError {}

impl FromStr for ProxyVersion {
    type Err = ProxyVersionError;

    /// Parses `v1` or `v2`, the spellings used by the `--proxy-protocol` flag and the
    /// `proxy-protocol=` route option.
    fn from_str(text: &str) -> Result<ProxyVersion, ProxyVersionError> {
        match text {
            "v1" => Ok(ProxyVersion::V1),
            "v2" => Ok(ProxyVersion::V2),
            _ => Err(ProxyVersionError { value: text.to_string() }),
        }
    }
}

impl fmt::Display for ProxyVersion {
    /// Writes `v1` or `v2`, the same spelling [`FromStr`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyVersion::V1 => f.write_str("v1"),
            ProxyVersion::V2 => f.write_str("v2"),
        }
    }
}

/// The 12 bytes every v2 header starts with (spec 2.2). They contain a NUL and `QUIT`, so no
/// text protocol can mistake them for a request.
pub const V2_SIGNATURE: [u8; 12] =
    [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// v2 byte 13: version 2 in the high nibble, command PROXY (1) in the low one.
const V2_VERSION_PROXY: u8 = 0x21;
/// v2 byte 14: address family in the high nibble (1 = INET, 2 = INET6), transport in the
/// low one (1 = STREAM); 0x00 is "unspecified".
const V2_TCP_OVER_IPV4: u8 = 0x11;
const V2_TCP_OVER_IPV6: u8 = 0x21;
const V2_UNSPEC: u8 = 0x00;

/// The header announcing that `client` connected to `local` over TCP.
///
/// `client` is the accepted socket's peer address and `local` its local address (the
/// address the client dialled, which is what the upstream would have seen itself).
///
/// Addresses are normalised first, so that the upstream sees what the client really used:
/// an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as reported by a dual-stack listener on
/// `[::]`) is sent as plain IPv4. If the two addresses still differ in family, the IPv4 one
/// is sent IPv4-mapped and the header is TCP6, because the spec requires one family for
/// both addresses and mapping loses nothing (this is what HAProxy does too).
pub fn header(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(client.ip(), local.ip());
    match version {
        ProxyVersion::V1 => v1_line(source, destination, client.port(), local.port()),
        ProxyVersion::V2 => v2_block(source, destination, client.port(), local.port()),
    }
}

/// The header for a connection whose addresses are not IP, such as a Unix domain socket.
///
/// v1 sends `PROXY UNKNOWN\r\n`; v2 sends the PROXY command with the unspecified family
/// and no addresses. Both tell the receiver to use the connection's own addresses (spec
/// 2.1 and 2.2), which is the honest answer when there is no client IP to report.
pub fn unknown_header(version: ProxyVersion) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
        ProxyVersion::V2 => {
            let mut block = V2_SIGNATURE.to_vec();
            block.extend_from_slice(&[V2_VERSION_PROXY, V2_UNSPEC, 0, 0]);
            block
        }
    }
}

/// Brings both addresses to one family: plain IPv4 when both are IPv4 (mapped or not),
/// IPv6 otherwise.
fn same_family(client: IpAddr, local: IpAddr) -> (IpAddr, IpAddr) {
    match (client.to_canonical(), local.to_canonical()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => (IpAddr::V4(c), IpAddr::V4(l)),
        (c, l) => (IpAddr::V6(to_ipv6(c)), IpAddr::V6(to_ipv6(l))),
    }
}

fn to_ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// `PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n` (spec 2.1).
fn v1_line(source: IpAddr, destination: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    let source = v1_address(source);
    let destination = v1_address(destination);
    format!("PROXY {family} {source} {destination} {sport} {dport}\r\n").into_bytes()
}

/// An address as v1 wants it. Rust prints IPv4-mapped IPv6 addresses in the dotted form
/// `::ffff:10.0.0.1`, but the spec asks for hexadecimal groups only, so those are spelled
/// `::ffff:a00:1`. Every other address uses the standard form, which matches the spec.
fn v1_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            let groups = v6.segments();
            format!("::ffff:{:x}:{:x}", groups[6], groups[7])
        }
        _ => ip.to_string(),
    }
}

/// Signature, version/command, family, length, then source address, destination address,
/// source port, destination port, all in network byte order (spec 2.2).
fn v2_block(source: IpAddr, destination: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let (family, mut addresses) = match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (V2_TCP_OVER_IPV4, [s.octets(), d.octets()].concat()),
        (s, d) => (V2_TCP_OVER_IPV6, [to_ipv6(s).octets(), to_ipv6(d).octets()].concat()),
    };
    addresses.extend_from_slice(&sport.to_be_bytes());
    addresses.extend_from_slice(&dport.to_be_bytes());
    // 12 bytes for IPv4, 36 for IPv6: always fits the u16 length field.
    let length = u16::try_from(addresses.len()).expect("an address block is at most 36 bytes");

    let mut block = V2_SIGNATURE.to_vec();
    block.push(V2_VERSION_PROXY);
    block.push(family);
    block.extend_from_slice(&length.to_be_bytes());
    block.extend_from_slice(&addresses);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("test address {text}: {e}"))
    }

    #[test]
    fn parses_and_prints_versions() {
        assert_eq!("v1".parse(), Ok(ProxyVersion::V1));
        assert_eq!("v2".parse(), Ok(ProxyVersion::V2));
        assert_eq!(ProxyVersion::V1.to_string(), "v1");
        assert_eq!(ProxyVersion::V2.to_string(), "v2");
        for bad in ["", "1", "V1", "v3", "v1 "] {
            let error = bad.parse::<ProxyVersion>().expect_err(bad);
            assert_eq!(error.to_string(), format!("expected v1 or v2, found {bad:?}"));
        }
    }

    #[test]
    fn v1_tcp4_matches_the_spec_example() {
        // Spec section 2.1: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".
        let line = header(ProxyVersion::V1, addr("192.168.0.1:56324"), addr("192.168.0.11:443"));
        assert_eq!(line, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    }

    #[test]
    fn v1_tcp6_uses_the_compressed_form() {
        let line = header(ProxyVersion::V1, addr("[2001:db8::1]:40000"), addr("[::1]:8080"));
        assert_eq!(line, b"PROXY TCP6 2001:db8::1 ::1 40000 8080\r\n");
    }

    #[test]
    fn v1_longest_lines_are_the_spec_maxima() {
        // Spec 2.1: 56 bytes for TCP4, 104 for TCP6, CRLF included.
        let v4 =
            header(ProxyVersion::V1, addr("255.255.255.255:65535"), addr("255.255.255.255:65535"));
        assert_eq!(v4.len(), 56);
        let all_ones = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        let v6 = header(ProxyVersion::V1, addr(all_ones), addr(all_ones));
        assert_eq!(v6.len(), 104);
    }

    #[test]
    fn v2_tcp4_matches_bytes_sent_by_haproxy() {
        // A v2 header captured from HAProxy (172.19.0.1:42578 -> 172.19.0.3:80), as shown in
        // github.com/seriousben/experiment-proxy-protocol's README.
        let expected: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP over IPv4, 12 address bytes
            0xac, 0x13, 0x00, 0x01, // 172.19.0.1
            0xac, 0x13, 0x00, 0x03, // 172.19.0.3
            0xa6, 0x52, 0x00, 0x50, // 42578, 80
        ];
        let block = header(ProxyVersion::V2, addr("172.19.0.1:42578"), addr("172.19.0.3:80"));
        assert_eq!(block, expected);
    }

    #[test]
    fn v2_tcp6_carries_sixteen_byte_addresses() {
        let block = header(ProxyVersion::V2, addr("[2001:db8::1]:40000"), addr("[::1]:8080"));
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]); // v2 PROXY, TCP6, 36 bytes
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90]); // 40000, 8080
        assert_eq!(block, expected);
        assert_eq!(block.len(), 16 + 36);
    }

    #[test]
    fn ipv4_mapped_addresses_are_sent_as_ipv4() {
        // What a dual-stack listener on [::] reports for an IPv4 client.
        let client = addr("[::ffff:10.0.0.1]:5000");
        let local = addr("[::ffff:10.0.0.2]:80");
        assert_eq!(
            header(ProxyVersion::V1, client, local),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n"
        );
        assert_eq!(
            header(ProxyVersion::V2, client, local),
            header(ProxyVersion::V2, addr("10.0.0.1:5000"), addr("10.0.0.2:80"))
        );
    }

    #[test]
    fn mixed_families_are_sent_as_tcp6_with_the_ipv4_side_mapped() {
        let client = addr("10.0.0.1:5000");
        let local = addr("[2001:db8::2]:80");
        assert_eq!(
            header(ProxyVersion::V1, client, local),
            b"PROXY TCP6 ::ffff:a00:1 2001:db8::2 5000 80\r\n"
        );
        let block = header(ProxyVersion::V2, client, local);
        assert_eq!(block[13], 0x21, "TCP over IPv6");
        assert_eq!(&block[16..32], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
    }

    #[test]
    fn unknown_headers_carry_no_addresses() {
        assert_eq!(unknown_header(ProxyVersion::V1), b"PROXY UNKNOWN\r\n");
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        assert_eq!(unknown_header(ProxyVersion::V2), expected);
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::net::proxy_protocol::{ProxyVersion, header};

        let client = "192.168.0.1:56324".parse().unwrap();
        let local = "192.168.0.11:443".parse().unwrap();
        assert_eq!(
            header(ProxyVersion::V1, client, local),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
    }
}
