//! The server name a TLS client asks for (SNI), read from the first bytes of its
//! ClientHello without taking them: the relay *peeks* (`TcpStream::peek`), picks a route by
//! the name, and then relays from the first byte, so the upstream sees the ClientHello byte
//! for byte and does the TLS itself. The seed's bug was reading bytes to look at them;
//! peeking looks without taking.
//!
//! [`server_name`] parses what has been peeked so far (RFC 8446 section 4.1.2 for the
//! ClientHello, RFC 6066 section 3 for the extension) and says whether it needs more bytes.
//! A ClientHello split over several TLS records is put back together, up to
//! [`MAX_HELLO_LEN`] bytes; beyond that, or on anything that is not a ClientHello, the
//! answer is [`Peeked::NotTls`] and the caller uses its default route.

/// The most bytes of the client's first flight looked at: a ClientHello with a large
/// post-quantum key share is about 1.8 KiB; 16 KiB is one whole TLS record and then some.
pub const MAX_HELLO_LEN: usize = 16 * 1024 + 5;

/// What the peeked bytes say so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// The bytes so far are a valid beginning: peek again once more have arrived.
    NeedMore,
    /// Not a TLS ClientHello (or one beyond the size bound).
    NotTls,
    /// A complete ClientHello without a (usable) host name.
    NoServerName,
    /// The host name asked for, in lower case, without a trailing dot.
    ServerName(String),
}

/// Parses the start of a client's first bytes as a TLS ClientHello.
pub fn server_name(bytes: &[u8]) -> Peeked {
    let hello = match handshake_message(bytes) {
        Ok(hello) => hello,
        Err(peeked) => return peeked,
    };
    match parse_client_hello(&hello) {
        Some(Some(name)) => Peeked::ServerName(name),
        Some(None) => Peeked::NoServerName,
        None => Peeked::NotTls,
    }
}

/// Joins the handshake records at the start of `bytes` into the first handshake message,
/// which must be a ClientHello.
fn handshake_message(bytes: &[u8]) -> Result<Vec<u8>, Peeked> {
    let mut message = Vec::new();
    let mut rest = bytes;
    loop {
        if rest.len() < 5 {
            return Err(more_unless(rest.is_empty() || is_record_start(rest), bytes));
        }
        if !is_record_start(rest) {
            return Err(Peeked::NotTls);
        }
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if length == 0 || length > 16 * 1024 {
            return Err(Peeked::NotTls); // RFC 8446 5.1: at most 2^14 bytes of plaintext
        }
        let Some(fragment) = rest.get(5..5 + length) else {
            return Err(more_unless(true, bytes));
        };
        message.extend_from_slice(fragment);
        rest = &rest[5 + length..];
        if message[0] != 1 {
            return Err(Peeked::NotTls); // the first handshake message must be a ClientHello
        }
        if message.len() >= 4 {
            let wanted = 4 + u24(&message[1..4]);
            if wanted > MAX_HELLO_LEN {
                return Err(Peeked::NotTls);
            }
            if message.len() >= wanted {
                message.truncate(wanted);
                return Ok(message);
            }
        }
    }
}

/// `NeedMore` while a valid start is still within the size bound, else `NotTls`.
fn more_unless(valid_so_far: bool, bytes: &[u8]) -> Peeked {
    if valid_so_far && bytes.len() < MAX_HELLO_LEN { Peeked::NeedMore } else { Peeked::NotTls }
}

/// A handshake record (22) of TLS 1.0 to 1.3 (record versions 3.1 to 3.4; 3.0 is allowed
/// in a ClientHello's record for compatibility). Only the bytes present are checked.
fn is_record_start(bytes: &[u8]) -> bool {
    let expected = [Some(0x16), Some(0x03)];
    let present = [bytes.first().copied(), bytes.get(1).copied()];
    present.iter().zip(expected).all(|(got, want)| got.is_none() || *got == want)
        && bytes.get(2).is_none_or(|minor| *minor <= 0x04)
}

fn u24(bytes: &[u8]) -> usize {
    (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2])
}

/// A cursor over a message that refuses to read past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = (self.0.get(..count)?, self.0.get(count..)?);
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A vector with a one- or two-byte length in front.
    fn vector(&mut self, length_bytes: usize) -> Option<Reader<'a>> {
        let length = if length_bytes == 1 { self.u8()? } else { self.u16()? };
        self.take(length).map(Reader)
    }
}

/// The ClientHello's host name: `None` if the message is malformed, `Some(None)` if it is
/// well formed but names no host.
fn parse_client_hello(message: &[u8]) -> Option<Option<String>> {
    let mut hello = Reader(message.get(4..)?);
    hello.take(2 + 32)?; // legacy_version, random
    hello.vector(1)?; // legacy_session_id
    hello.vector(2)?; // cipher_suites
    hello.vector(1)?; // legacy_compression_methods
    if hello.0.is_empty() {
        return Some(None); // no extensions at all (TLS 1.2 and older may omit them)
    }
    let mut extensions = hello.vector(2)?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vector(2)?;
        if kind != 0 {
            continue; // not server_name
        }
        let mut names = data.vector(2)?;
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let name = names.vector(2)?;
            if name_type == 0 {
                return Some(host_name(name.0)); // host_name: the only type defined
            }
        }
        return Some(None);
    }
    Some(None)
}

/// A DNS host name as routes spell them, or `None` if these bytes cannot be one.
fn host_name(bytes: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(bytes).ok()?;
    // One trailing dot is the root (RFC 6066 forbids it, some clients send it anyway);
    // `a..b`, `.a` or `a..` have an empty label and are no host name.
    let name = name.strip_suffix('.').unwrap_or(name);
    is_host_name(name).then(|| name.to_ascii_lowercase())
}

/// Labels of letters, digits, `-` and `_`, each 1 to 63 bytes, at most 253 in all.
fn is_host_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// One name of a route's `sni=` list: an exact host name (`db.example.com`), or a wildcard
/// `*.example.com` that takes any name ending in `.example.com`, however many labels come
/// before it (as nginx's `server_name *.example.com`), but not `example.com` itself.
/// Written in lower case; names are compared in lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// Any name ending in `.` and this suffix.
    Wildcard(String),
}

impl NamePattern {
    /// Whether the server name `name` (lower case, as the relay reads it from a ClientHello) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => name == exact,
            NamePattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl std::str::FromStr for NamePattern {
    type Err = String;

    /// Parses `host.name` or `*.suffix`; the error reads
    /// `expected a host name or *.suffix, found "a*b"`.
    fn from_str(text: &str) -> Result<NamePattern, String> {
        let lower = text.to_ascii_lowercase();
        let pattern = match lower.strip_prefix("*.") {
            Some(suffix) => NamePattern::Wildcard(suffix.to_string()),
            None => NamePattern::Exact(lower.clone()),
        };
        let (NamePattern::Exact(name) | NamePattern::Wildcard(name)) = &pattern;
        if !is_host_name(name) {
            return Err(format!("expected a host name or *.suffix, found {text:?}"));
        }
        Ok(pattern)
    }
}

impl std::fmt::Display for NamePattern {
    /// `db.example.com` or `*.example.com`, as [`FromStr`](std::str::FromStr) reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamePattern::Exact(name) => f.write_str(name),
            NamePattern::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

// The tests' ClientHello builder is shared with tests/, which may use only the public API.
#[cfg(test)]
#[path = "../../tests/support/tls.rs"]
mod tls;

#[cfg(test)]
mod tests {
    use super::tls::client_hello;
    use super::*;
    use crate::fuzz::XorShift;

    #[test]
    fn finds_the_name_in_a_whole_hello() {
        let hello = client_hello(Some("Example.COM."));
        assert_eq!(server_name(&hello), Peeked::ServerName("example.com".to_string()));
        assert_eq!(server_name(&client_hello(None)), Peeked::NoServerName);
    }

    #[test]
    fn asks_for_more_until_the_hello_is_whole() {
        let hello = client_hello(Some("db.internal"));
        for cut in 0..hello.len() {
            assert_eq!(server_name(&hello[..cut]), Peeked::NeedMore, "after {cut} bytes");
        }
        let with_more = [hello.as_slice(), b"application data"].concat();
        assert_eq!(server_name(&with_more), Peeked::ServerName("db.internal".to_string()));
    }

    #[test]
    fn joins_a_hello_split_over_two_records() {
        let whole = client_hello(Some("split.example"));
        let handshake = &whole[5..];
        let (first, second) = handshake.split_at(40);
        let mut records = Vec::new();
        for part in [first, second] {
            records.extend_from_slice(&[0x16, 0x03, 0x03]);
            records.extend_from_slice(&(part.len() as u16).to_be_bytes());
            records.extend_from_slice(part);
        }
        assert_eq!(server_name(&records), Peeked::ServerName("split.example".to_string()));
    }

    #[test]
    fn other_protocols_are_not_tls() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x16\x02",
            b"\x17\x03\x03\x00\x10",
        ] {
            assert_eq!(server_name(bytes), Peeked::NotTls, "{bytes:?}");
        }
        // A handshake record whose first message is not a ClientHello.
        let mut server_hello = client_hello(Some("x"));
        server_hello[5] = 2;
        assert_eq!(server_name(&server_hello), Peeked::NotTls);
    }

    #[test]
    fn names_that_cannot_be_host_names_are_no_name() {
        for bad in ["", "a b", "évil", "x\0y", "a/b", ".a", "a..b", "a..", "."] {
            assert_eq!(server_name(&client_hello(Some(bad))), Peeked::NoServerName, "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_exact_names_and_suffixes() {
        let exact: NamePattern = "DB.Example.com".parse().expect("a host name");
        assert_eq!(exact.to_string(), "db.example.com");
        assert!(exact.matches("db.example.com"));
        assert!(!exact.matches("x.db.example.com"));
        let wild: NamePattern = "*.example.com".parse().expect("a wildcard");
        assert_eq!(wild.to_string(), "*.example.com");
        for name in ["a.example.com", "a.b.example.com"] {
            assert!(wild.matches(name), "{name}");
        }
        for name in ["example.com", "aexample.com", ".example.com", "example.com.evil"] {
            assert!(!wild.matches(name), "{name}");
        }
        for bad in ["", "*", "*.", "a.*.b", "*example.com", "a b", "**.a", "a..b"] {
            let error = bad.parse::<NamePattern>().expect_err(bad);
            assert_eq!(error, format!("expected a host name or *.suffix, found {bad:?}"));
        }
    }

    /// A bounded random-mutation loop over real ClientHellos: no panic, no read beyond the
    /// input, and `NeedMore` only while under the size bound.
    #[test]
    fn fuzzed_hellos_never_panic() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let seeds = [client_hello(Some("example.com")), client_hello(None)];
        for case in 0..20_000 {
            let mut bytes = seeds[case % seeds.len()].clone();
            rng.mutate(&mut bytes, 6);
            match server_name(&bytes) {
                Peeked::ServerName(name) => {
                    assert!(is_host_name(&name), "case {case}: {name:?}");
                }
                Peeked::NeedMore => assert!(bytes.len() < MAX_HELLO_LEN, "case {case}"),
                Peeked::NotTls | Peeked::NoServerName => {}
            }
        }
        let long =
            [&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xFF, 0xFF, 0xFF][..], &[0; 16400]].concat();
        assert_eq!(server_name(&long), Peeked::NotTls, "beyond the size bound");
    }
}
