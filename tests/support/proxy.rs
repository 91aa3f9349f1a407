//! PROXY protocol headers as a load balancer in front of the relay sends them (HAProxy's
//! proxy-protocol.txt, sections 2.1 and 2.2), written here apart from the relay's own
//! encoder so that a test holds the relay to the spec, not to itself.

use std::net::SocketAddr;

use tcprelay::ProxyVersion;

/// The v2 signature: twelve bytes no v1 line or other protocol starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The header announcing that `client` connected to `local` over TCP. Both must be of one
/// family, as the spec requires (the relay's own encoder maps a mixed pair; tests send none).
pub fn proxy_header(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => {
            let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            let (source, destination) = (client.ip(), local.ip());
            let (source_port, destination_port) = (client.port(), local.port());
            format!("PROXY {family} {source} {destination} {source_port} {destination_port}\r\n")
                .into_bytes()
        }
        ProxyVersion::V2 => {
            // Version 2 and command PROXY; then TCP over IPv4 (0x11) or IPv6 (0x21) and the
            // length of the addresses and ports that follow.
            let (family, addresses) = match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    (0x11, [c.ip().octets(), l.ip().octets()].concat())
                }
                (SocketAddr::V6(c), SocketAddr::V6(l)) => {
                    (0x21, [c.ip().octets(), l.ip().octets()].concat())
                }
                _ => panic!("a PROXY header carries one address family: {client} and {local}"),
            };
            let length = u16::try_from(addresses.len() + 4).expect("at most 36 bytes");
            let mut block = V2_SIGNATURE.to_vec();
            block.extend_from_slice(&[0x21, family]);
            block.extend_from_slice(&length.to_be_bytes());
            block.extend_from_slice(&addresses);
            block.extend_from_slice(&client.port().to_be_bytes());
            block.extend_from_slice(&local.port().to_be_bytes());
            block
        }
    }
}
