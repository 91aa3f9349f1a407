//! Receiving the PROXY protocol: the header a load balancer in front of the relay sends at
//! the start of each connection, naming the real client.
//!
//! [`read_header`] reads *exactly* the header, never a byte more, so the client's own first
//! bytes stay in the socket for the copy. That is the one deliberate exception to "nothing
//! reads a socket before both copies start": the header is a message addressed to the
//! relay, consumed here and replaced by the relay's own header upstream (if the route sends
//! one). Both versions are detected by their first bytes (spec 2.1 and 2.2,
//! <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>).
//!
//! Bounded size and time: a v1 line is at most 107 bytes (spec 2.1), a v2 block at most
//! [`V2_MAX_LEN`] bytes here (its addresses and TLVs; longer blocks are refused), and the
//! whole header must arrive before the caller's deadline. A v1 line is read a byte at a
//! time, because reading ahead would take client bytes; at most 107 small reads, once per
//! connection, and only on routes that expect the header.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::net::proxy_protocol::V2_SIGNATURE;
use crate::net::stream::Stream;

/// The longest v1 line, CRLF included (spec 2.1).
pub const V1_MAX_LEN: usize = 107;

/// The longest v2 block accepted: the 16 fixed bytes and up to 512 bytes of addresses and
/// TLVs (HAProxy's own TLVs fit in far less; the spec's limit of 64 KiB is no use here).
pub const V2_MAX_LEN: usize = 16 + 512;

/// What a PROXY header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxied {
    /// The real client (`source`) and the address it connected to (`destination`).
    Tcp {
        /// The client's address and port.
        source: SocketAddr,
        /// The address and port the client connected to.
        destination: SocketAddr,
    },
    /// The sender had no address to give (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified or
    /// non-IP family): the connection's own addresses stand.
    Unknown,
}

/// Why a connection's PROXY header was refused.
#[derive(Debug)]
pub enum HeaderError {
    /// The first bytes are not a PROXY header of either version.
    NotProxy,
    /// It began like a header but breaks the spec; the text says where.
    Malformed(&'static str),
    /// Longer than the bound for its version.
    TooLong,
    /// The connection ended before the header was complete.
    Closed,
    /// The deadline passed before the header was complete.
    TimedOut,
    /// Reading the socket failed.
    Io(io::Error),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotProxy => f.write_str("no PROXY protocol header"),
            HeaderError::Malformed(what) => write!(f, "malformed PROXY header: {what}"),
            HeaderError::TooLong => f.write_str("PROXY header too long"),
            HeaderError::Closed => f.write_str("connection closed inside the PROXY header"),
            HeaderError::TimedOut => f.write_str("PROXY header not received in time"),
            HeaderError::Io(error) => write!(f, "reading the PROXY header: {error}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Reads the PROXY header that must open `stream`, by `deadline`, and returns what it says.
/// Leaves the socket's read timeout unset; the caller sets its own afterwards.
///
/// # Errors
/// [`HeaderError`]: anything but a complete, valid header in time. The caller closes the
/// connection (`reason=bad_proxy_header`) and never forwards it.
pub fn read_header(stream: &Stream, deadline: Instant) -> Result<Proxied, HeaderError> {
    let mut reader = DeadlineReader { stream, deadline };
    let read = read_header_from(&mut reader);
    let _ = stream.set_read_timeout(None);
    read
}

/// [`read_header`] over any reader: reads exactly one header and nothing after it.
///
/// # Errors
/// As [`read_header`]; a reader's `TimedOut` or `WouldBlock` is [`HeaderError::TimedOut`].
pub fn read_header_from(reader: &mut impl Read) -> Result<Proxied, HeaderError> {
    // Eight bytes tell the versions apart: "PROXY " or the start of the v2 signature. No
    // valid header of either version is shorter.
    let mut start = [0; 8];
    read_exact(reader, &mut start)?;
    if start.starts_with(b"PROXY ") {
        let mut line = start.to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() == V1_MAX_LEN {
                return Err(HeaderError::TooLong);
            }
            let mut byte = [0; 1];
            read_exact(reader, &mut byte)?;
            line.push(byte[0]);
        }
        parse_v1(&line)
    } else if start == V2_SIGNATURE[..8] {
        let mut fixed = [0; 16];
        fixed[..8].copy_from_slice(&start);
        read_exact(reader, &mut fixed[8..])?;
        if fixed[..12] != V2_SIGNATURE {
            return Err(HeaderError::NotProxy);
        }
        let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        if 16 + length > V2_MAX_LEN {
            return Err(HeaderError::TooLong);
        }
        let mut block = fixed.to_vec();
        block.resize(16 + length, 0);
        read_exact(reader, &mut block[16..])?;
        parse_v2(&block)
    } else {
        Err(HeaderError::NotProxy)
    }
}

/// Parses one complete v1 line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` or
/// `PROXY UNKNOWN ...\r\n`.
///
/// # Errors
/// [`HeaderError::Malformed`] naming the first field that breaks spec 2.1.
pub fn parse_v1(line: &[u8]) -> Result<Proxied, HeaderError> {
    let text = line
        .strip_suffix(b"\r\n")
        .and_then(|text| std::str::from_utf8(text).ok())
        .ok_or(HeaderError::Malformed("v1 line is not ASCII ending in CRLF"))?;
    let mut words = text.split(' ');
    if words.next() != Some("PROXY") {
        return Err(HeaderError::NotProxy);
    }
    let family = words.next().ok_or(HeaderError::Malformed("v1 family missing"))?;
    let is_v6 = match family {
        "UNKNOWN" => return Ok(Proxied::Unknown), // the rest of the line is to be ignored
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(HeaderError::Malformed("v1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut field = |what| words.next().ok_or(HeaderError::Malformed(what));
    let (source, destination) = (field("v1 source missing")?, field("v1 destination missing")?);
    let (sport, dport) = (field("v1 source port missing")?, field("v1 port missing")?);
    if words.next().is_some() {
        return Err(HeaderError::Malformed("v1 line has extra fields"));
    }
    let ip = |text: &str| -> Result<IpAddr, HeaderError> {
        let ip = if is_v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        ip.map_err(|_| HeaderError::Malformed("v1 address does not match its family"))
    };
    let port = |text: &str| -> Result<u16, HeaderError> {
        // Decimal without a sign or leading zeros (spec 2.1); `u16` bounds it.
        let canonical = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        let port = text.parse().ok().filter(|_| canonical);
        port.ok_or(HeaderError::Malformed("v1 port is not a number from 0 to 65535"))
    };
    Ok(Proxied::Tcp {
        source: SocketAddr::new(ip(source)?, port(sport)?),
        destination: SocketAddr::new(ip(destination)?, port(dport)?),
    })
}

/// Parses one complete v2 block: the 16 fixed bytes and exactly the length they announce.
///
/// # Errors
/// [`HeaderError::Malformed`] naming what breaks spec 2.2.
pub fn parse_v2(block: &[u8]) -> Result<Proxied, HeaderError> {
    if block.len() < 16 || block[..12] != V2_SIGNATURE {
        return Err(HeaderError::NotProxy);
    }
    let length = usize::from(u16::from_be_bytes([block[14], block[15]]));
    let body = &block[16..];
    if body.len() != length {
        return Err(HeaderError::Malformed("v2 length does not match the block"));
    }
    let (version, command) = (block[12] >> 4, block[12] & 0x0F);
    if version != 2 {
        return Err(HeaderError::Malformed("v2 version is not 2"));
    }
    match command {
        0 => return Ok(Proxied::Unknown), // LOCAL: a health check by the sender itself
        1 => {}                           // PROXY
        _ => return Err(HeaderError::Malformed("v2 command is not LOCAL or PROXY")),
    }
    let (family, transport) = (block[13] >> 4, block[13] & 0x0F);
    match (family, transport) {
        (1, 1) if length >= 12 => {
            let ip = |at: usize| IpAddr::from([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(Proxied::Tcp {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        (2, 1) if length >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(Proxied::Tcp {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        (1 | 2, 1) => Err(HeaderError::Malformed("v2 address block too short")),
        // UNSPEC, or a Unix socket sender: no IP address to use (spec 2.2: "the receiver
        // must ... use the real connection endpoints").
        (0, _) | (3, _) => Ok(Proxied::Unknown),
        _ => Err(HeaderError::Malformed("v2 family is not TCP over IPv4 or IPv6")),
    }
}

/// Fills `buf` or says why not, in the header's terms.
fn read_exact(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), HeaderError> {
    reader.read_exact(buf).map_err(|error| match error.kind() {
        io::ErrorKind::UnexpectedEof => HeaderError::Closed,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HeaderError::TimedOut,
        _ => HeaderError::Io(error),
    })
}

/// Reads a socket with a read timeout of whatever is left before `deadline`, so a header
/// trickled a byte at a time still has to be complete by then.
struct DeadlineReader<'a> {
    stream: &'a Stream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        (&mut &*self.stream).read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::XorShift;
    use crate::net::proxy_protocol::{ProxyVersion, header, unknown_header};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("test address {text}: {e}"))
    }

    /// Reads a header from `bytes` and returns it with what is left for the copy.
    fn read(bytes: &[u8]) -> (Result<Proxied, HeaderError>, Vec<u8>) {
        let mut reader = bytes;
        let header = read_header_from(&mut reader);
        (header, reader.to_vec())
    }

    #[test]
    fn reads_exactly_what_our_own_encoder_sends_and_leaves_the_rest() {
        let cases = [
            (addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
            (addr("[2001:db8::1]:40000"), addr("[::1]:8080")),
            (addr("0.0.0.0:0"), addr("255.255.255.255:65535")),
        ];
        for (source, destination) in cases {
            for version in [ProxyVersion::V1, ProxyVersion::V2] {
                let mut bytes = header(version, source, destination);
                bytes.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
                let (header, rest) = read(&bytes);
                assert_eq!(header.expect("a valid header"), Proxied::Tcp { source, destination });
                assert_eq!(rest, b"GET / HTTP/1.0\r\n\r\n", "the client's bytes stay unread");
            }
        }
    }

    #[test]
    fn unknown_and_local_mean_use_the_real_addresses() {
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let (header, rest) = read(&[unknown_header(version), b"x".to_vec()].concat());
            assert_eq!(header.expect("valid"), Proxied::Unknown);
            assert_eq!(rest, b"x");
        }
        let (header, _) = read(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
        assert_eq!(header.expect("the rest of an UNKNOWN line is ignored"), Proxied::Unknown);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).0.expect("LOCAL"), Proxied::Unknown);
    }

    #[test]
    fn refuses_what_breaks_the_spec() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", // LF only: runs to the length bound
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", // a leading zero
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", // beyond u16
            b"PROXY TCP4 ::1 ::2 1 2\r\n",       // IPv6 under TCP4
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", // IPv4 under TCP6
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", // a field too many
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", // a field short
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", // two spaces
        ];
        for bytes in bad {
            let text = String::from_utf8_lossy(bytes);
            assert!(read(bytes).0.is_err(), "accepted {text:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert!(matches!(read(&long).0, Err(HeaderError::TooLong)));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert!(matches!(read(&huge).0, Err(HeaderError::TooLong)));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(read(&short).0, Err(HeaderError::Malformed(_))));
    }

    #[test]
    fn a_header_cut_short_is_closed_not_accepted() {
        let whole = header(ProxyVersion::V2, addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        for cut in 0..whole.len() {
            assert!(matches!(
                read(&whole[..cut]).0,
                Err(HeaderError::Closed | HeaderError::NotProxy)
            ));
        }
        let line = header(ProxyVersion::V1, addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        for cut in 0..line.len() {
            assert!(read(&line[..cut]).0.is_err(), "accepted {} bytes of a v1 line", cut);
        }
    }

    /// A bounded random-mutation loop: every mutation of valid headers is either refused or
    /// read without panicking, reads no more than the header it accepts (within the size
    /// bound), and the loop stays quick.
    #[test]
    fn fuzzed_headers_never_panic_and_never_over_read() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let seeds = [
            header(ProxyVersion::V1, addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
            header(ProxyVersion::V1, addr("[2001:db8::1]:1"), addr("[::1]:2")),
            header(ProxyVersion::V2, addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
            header(ProxyVersion::V2, addr("[2001:db8::1]:1"), addr("[::1]:2")),
            unknown_header(ProxyVersion::V2),
        ];
        let started = Instant::now();
        for case in 0..20_000 {
            let mut bytes = seeds[case % seeds.len()].clone();
            rng.mutate(&mut bytes, 4);
            let input = [bytes.as_slice(), b"TAIL"].concat();
            let (result, rest) = read(&input);
            let consumed = &input[..input.len() - rest.len()];
            assert!(consumed.len() <= V1_MAX_LEN.max(V2_MAX_LEN), "case {case}: unbounded read");
            if let Ok(proxied) = result {
                // What was consumed is one whole header on its own: nothing was read past it.
                let (again, left) = read(consumed);
                assert_eq!(again.ok(), Some(proxied), "case {case}: {input:?}");
                assert!(left.is_empty(), "case {case}: {input:?}");
            }
        }
        assert!(started.elapsed().as_secs() < 30, "the fuzz loop must stay quick");
    }
}
