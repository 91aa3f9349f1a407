//! Parsing the addresses given on the command line.
//!
//! A listen address is resolved once, at start-up, because we bind to it once. An upstream
//! address is only checked for shape here: it is resolved again for every new connection
//! (see `dial.rs`), so an upstream that moves to a new IP address is found again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::net::address::{Address, UDP_PREFIX, UNIX_PREFIX};
use crate::settings::Error;

/// Where a route accepts clients: an address to bind, or the socket on standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Bind this address.
    Bind(Address),
    /// `stdin`: accept on the listening socket passed as standard input.
    Stdin,
    /// `udp:HOST:PORT`: receive UDP datagrams on this address (a UDP route).
    Udp(SocketAddr),
}

impl Listen {
    /// Sets `config`'s listen fields to this.
    pub fn apply(self, config: &mut crate::settings::config::Config) {
        match self {
            Listen::Bind(Address::Tcp(addr)) => config.listen = addr,
            Listen::Bind(Address::Unix(path)) => config.listen_unix = Some(path),
            Listen::Stdin => config.listen_stdin = true,
            Listen::Udp(addr) => {
                config.listen = addr;
                config.udp = true;
            }
        }
    }
}

/// A route's listen address: `stdin`, `udp:` and what [`parse_listen`] accepts (a UDP
/// route), or what [`parse_listen_address`] accepts. The prefix is taken off before the
/// address is read, so `udp:127.0.0.1:9` is never mistaken for an IPv6 address.
pub fn parse_route_listen(text: &str) -> Result<Listen, Error> {
    if text == "stdin" {
        return Ok(Listen::Stdin);
    }
    match udp_address(text) {
        Some(rest) => parse_listen(rest).map(Listen::Udp).map_err(|e| udp_context(text, rest, e)),
        None => parse_listen_address(text).map(Listen::Bind),
    }
}

/// The address after `udp:`, if `text` has the prefix (`udp://...` is another tool's URL:
/// [`common_mistake`] names it).
fn udp_address(text: &str) -> Option<&str> {
    text.strip_prefix(UDP_PREFIX).filter(|rest| !rest.starts_with("//"))
}

/// An error about the address after `udp:`, told about the whole text the user wrote.
fn udp_context(text: &str, rest: &str, error: Error) -> Error {
    let message = error.to_string().replace(&format!("{rest:?}"), &format!("{text:?}"));
    Error::value(message)
}

/// Parses a listen address as [`parse_listen`] does, or `unix:/path` for a Unix domain socket.
pub fn parse_listen_address(text: &str) -> Result<Address, Error> {
    match text.strip_prefix(UNIX_PREFIX) {
        Some(path) => Ok(Address::Unix(PathBuf::from(unix_path(text, path)?))),
        None => parse_listen(text).map(Address::Tcp),
    }
}

/// The path of a `unix:PATH` address, which must not be empty.
fn unix_path<'a>(text: &str, path: &'a str) -> Result<&'a str, Error> {
    if path.is_empty() {
        return Err(Error::value(format!(
            "invalid address {text:?}: expected unix:/path/to/socket"
        )));
    }
    Ok(path)
}

/// Parses a listen address: `host:port`, `[v6]:port`, or `:port` / `port` meaning
/// 127.0.0.1 (never all interfaces unless asked, e.g. with `0.0.0.0:port`).
pub fn parse_listen(text: &str) -> Result<SocketAddr, Error> {
    let (host, port) = split_host_port(text)?;
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    // A host name: resolve it once, now.
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            Error::value(format!("invalid address {text:?}: host {host:?} has no address"))
        }),
        Err(e) => {
            Err(Error::value(format!("invalid address {text:?}: cannot resolve {host:?}: {e}")))
        }
    }
}

/// Checks an upstream address for shape and returns it in the `host:port` form that
/// [`std::net::ToSocketAddrs`] accepts. `:port` and `port` mean 127.0.0.1, as for listening.
///
/// `unix:/path` (a Unix domain socket) is returned as it is; `udp:HOST:PORT` (an upstream
/// of a UDP route, which only UDP routes take) keeps its prefix.
pub fn parse_upstream(text: &str) -> Result<String, Error> {
    if let Some(path) = text.strip_prefix(UNIX_PREFIX) {
        return unix_path(text, path).map(|_| text.to_string());
    }
    if let Some(rest) = udp_address(text) {
        let upstream = parse_upstream(rest).map_err(|e| udp_context(text, rest, e))?;
        if upstream.starts_with(UNIX_PREFIX) || upstream.starts_with(UDP_PREFIX) {
            return Err(Error::value(format!("invalid address {text:?}: expected udp:HOST:PORT")));
        }
        return Ok(format!("{UDP_PREFIX}{upstream}"));
    }
    let (host, port) = split_host_port(text)?;
    if port == 0 {
        return Err(Error::value(format!(
            "invalid address {text:?}: an upstream needs a port other than 0"
        )));
    }
    Ok(match host {
        "" => format!("127.0.0.1:{port}"),
        host if host.contains(':') => format!("[{host}]:{port}"),
        host => format!("{host}:{port}"),
    })
}

/// Splits `host:port`, `[v6]:port`, `:port` or `port` into a host (possibly empty) and a port.
fn split_host_port(text: &str) -> Result<(&str, u16), Error> {
    if let Some(mistake) = common_mistake(text) {
        return Err(Error::value(format!("invalid address {text:?}: {mistake}")));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            Error::value(format!("invalid address {text:?}: missing ']' after the IPv6 address"))
        })?;
        let port = after.strip_prefix(':').ok_or_else(|| {
            Error::value(format!("invalid address {text:?}: expected [IPv6]:PORT"))
        })?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Error::value(format!(
                "invalid address {text:?}: {host:?} is not an IPv6 address"
            )));
        }
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(Error::value(format!(
                    "invalid address {text:?}: write IPv6 addresses in brackets, e.g. [::1]:8080"
                )));
            }
            Some((host, port)) => (host, port),
            None => ("", text),
        }
    };
    let port = port.parse::<u16>().map_err(|_| {
        Error::value(format!(
            "invalid address {text:?}: expected HOST:PORT with a port from 0 to 65535"
        ))
    })?;
    if !text.starts_with('[') && !host.is_empty() && !is_host_name(host) {
        return Err(Error::value(format!(
            "invalid address {text:?}: {host:?} is not a host name (letters, digits, '-', '_' \
             and dots) nor an IP address"
        )));
    }
    Ok((host, port))
}

/// The words that start a URL or another tool's address (`tcp://`, socat's `udp:`), which
/// a tcprelay address never has.
const SCHEMES: [&str; 10] =
    ["tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "http", "https", "socks5", "ssh"];

/// What an address written in another tool's syntax was meant to be, in words: a scheme
/// (`tcp://host:80`, `udp:host:53`), or two ports in one address (`localhost:80:90`,
/// Docker's `-p` form, or `8080:app:80`, OpenSSH's `-L` form). `None` when the text is not
/// one of these; the general checks then say what is wrong.
fn common_mistake(text: &str) -> Option<String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        // `udp:host:53` is a scheme, but `tcp:80` is the host "tcp" on port 80.
        None => match text.split_once(':') {
            Some((word, rest)) if SCHEMES.contains(&word) && rest.contains(':') => {
                (Some(word), rest)
            }
            _ => (None, text),
        },
    };
    if let Some(scheme) = scheme {
        let rest = rest.trim_end_matches('/');
        return Some(if scheme.to_ascii_lowercase().starts_with("udp") {
            format!(
                "udp: marks a route's listen address (and its upstreams) as UDP, written \
                 udp:HOST:PORT (here udp:{rest}); other addresses are TCP only"
            )
        } else {
            format!("an address has no scheme ({scheme}:); write HOST:PORT, here {rest}")
        });
    }
    let is_port = |t: &str| !t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit());
    let pieces: Vec<&str> = text.split(':').collect();
    match pieces[..] {
        // OpenSSH's -L PORT:HOST:HOSTPORT.
        [port, host, upstream_port]
            if is_port(port) && is_port(upstream_port) && is_host_name(host) =>
        {
            Some(format!(
                "an address has one port; to relay port {port} to {host}:{upstream_port}, \
                 listen on :{port} and forward to {host}:{upstream_port} (did you mean \
                 -l :{port} -u {host}:{upstream_port}?)"
            ))
        }
        // Docker's -p [HOST:]PORT:PORT.
        [host, port, upstream_port]
            if is_port(port)
                && is_port(upstream_port)
                && (host.is_empty() || is_host_name(host)) =>
        {
            Some(format!(
                "an address has one port; to relay port {port} to port {upstream_port}, \
                 listen on {host}:{port} and forward to HOST:{upstream_port} (did you mean \
                 -l {host}:{port} -u :{upstream_port}?)"
            ))
        }
        _ => None,
    }
}

/// Whether `host` can be a DNS name or an IPv4 address: dot-separated labels of 1 to 63
/// letters, digits, `-` or `_`, at most 253 characters in all (a final dot is allowed).
/// Spaces, commas, control characters and the like can never resolve, so they are refused
/// when the setting is read rather than at every client's connect.
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_listen(":8080"), Ok(local(8080)));
        assert_eq!(parse_listen("8080"), Ok(local(8080)));
        assert_eq!(parse_listen("127.0.0.1:0"), Ok(local(0)));
        assert_eq!(parse_listen("0.0.0.0:1"), Ok(SocketAddr::from(([0, 0, 0, 0], 1))));
        assert_eq!(parse_listen("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(parse_listen("localhost:7").unwrap().ip().is_loopback());
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(parse_upstream("example.com:80").as_deref(), Ok("example.com:80"));
        assert_eq!(parse_upstream(":80").as_deref(), Ok("127.0.0.1:80"));
        assert_eq!(parse_upstream("[::1]:80").as_deref(), Ok("[::1]:80"));
    }

    #[test]
    fn unix_socket_forms() {
        assert_eq!(
            parse_listen_address("unix:/run/a.sock"),
            Ok(Address::Unix("/run/a.sock".into()))
        );
        assert_eq!(parse_listen_address(":80"), Ok(Address::Tcp("127.0.0.1:80".parse().unwrap())));
        assert_eq!(parse_upstream("unix:/run/a.sock").as_deref(), Ok("unix:/run/a.sock"));
        assert!(parse_upstream("unix:").unwrap_err().to_string().contains("\"unix:\""));
        assert!(parse_listen_address("unix:").unwrap_err().to_string().contains("\"unix:\""));
    }

    #[test]
    fn bad_addresses_name_the_value() {
        for bad in
            ["", "host:", "host:http", "host:70000", "::1:80", "[::1]80", "[::1", "[nothost]:1"]
        {
            let err = parse_listen(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("\"{bad}\"")), "{bad}: {err}");
        }
        assert!(parse_upstream("host:0").unwrap_err().to_string().contains("\"host:0\""));
    }

    /// Addresses written as another tool writes them get a message naming that mistake,
    /// where they once all got "write IPv6 addresses in brackets".
    #[test]
    fn other_tools_syntax_is_named() {
        let cases = [
            ("localhost:80:90", "did you mean -l localhost:80 -u :90?"),
            (":80:90", "did you mean -l :80 -u :90?"),
            ("8080:app.example:80", "did you mean -l :8080 -u app.example:80?"),
            ("tcp://127.0.0.1:80", "no scheme (tcp:); write HOST:PORT, here 127.0.0.1:80"),
            ("http://app:8080/", "no scheme (http:); write HOST:PORT, here app:8080"),
            ("udp://[::1]:53", "written udp:HOST:PORT (here udp:[::1]:53)"),
            ("udp4:127.0.0.1:53", "written udp:HOST:PORT (here udp:127.0.0.1:53)"),
        ];
        for (text, expected) in cases {
            for error in [
                parse_listen(text).unwrap_err().to_string(),
                parse_upstream(text).unwrap_err().to_string(),
            ] {
                assert!(error.contains(expected), "{text}: {error}");
                assert!(!error.contains("brackets"), "{text}: {error}");
            }
        }
        // A host that happens to be named like a scheme is still a host.
        assert_eq!(parse_upstream("tcp:80").as_deref(), Ok("tcp:80"));
        assert!(parse_listen("::1:80").unwrap_err().to_string().contains("brackets"));
    }

    /// `udp:` on a route's listen address makes a UDP route, in every form a TCP address
    /// takes; it is never read as an IPv6 address, and a bad address after it is named whole.
    #[test]
    fn udp_forms() {
        let udp = |text: &str| match parse_route_listen(text) {
            Ok(Listen::Udp(addr)) => addr.to_string(),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(udp("udp:127.0.0.1:9"), "127.0.0.1:9");
        assert_eq!(udp("udp:[::1]:5353"), "[::1]:5353");
        assert_eq!(udp("udp::5353"), "127.0.0.1:5353");
        assert_eq!(udp("udp:0.0.0.0:53"), "0.0.0.0:53");
        assert_eq!(parse_upstream("udp:127.0.0.1:53").as_deref(), Ok("udp:127.0.0.1:53"));
        assert_eq!(parse_upstream("udp::53").as_deref(), Ok("udp:127.0.0.1:53"));
        for bad in ["udp:", "udp:127.0.0.1", "udp:[::1]:99999", "udp:unix:/x", "udp:udp::53"] {
            let route = parse_route_listen(bad).map(|_| ()).unwrap_err().to_string();
            let upstream = parse_upstream(bad).map(|_| ()).unwrap_err().to_string();
            for error in [route, upstream] {
                assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
                assert!(!error.contains("brackets"), "{bad}: {error}");
            }
        }
        // Only a route's listen address takes it: the admin endpoint is TCP.
        assert!(parse_listen_address("udp:127.0.0.1:9").unwrap_err().to_string().contains("udp:"));
    }

    #[test]
    fn impossible_host_names_are_refused_and_escaped() {
        for bad in ["bad host:80", " a:80", "a,b:80", "a..b:80", "a\u{a0}b:80", "x/y:1", "a\tb:1"] {
            let err = parse_upstream(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
            assert!(!err.contains('\t') && !err.contains('\u{a0}'), "escaped: {err}");
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
        for good in ["a-b.example.:80", "under_score:1", "10.0.0.1:1", "xn--bcher-kva.example:1"] {
            assert!(parse_upstream(good).is_ok(), "{good}");
        }
    }
}
