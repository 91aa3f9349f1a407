//! What the core tells whoever watches it, in the core's own words: who a connection is
//! ([`Conn`]) and how it ended ([`Ending`]). The watchers (the log, `--explain`, the
//! metrics, in ops/) take these; the core names none of them.

use std::time::Instant;

use crate::net::address::Address;
use crate::outcome::CloseReason;

/// Who a connection is, as every line about it names it.
#[derive(Clone, Copy, Debug)]
pub struct Conn<'a> {
    /// The process-wide connection id.
    pub id: u64,
    /// The client's address as `accept` returned it.
    pub client: &'a Address,
}

/// How a connection ended, for the one `connection closed` line.
#[derive(Debug)]
pub struct Ending<'a> {
    /// The reason, as the connection recorded it.
    pub reason: CloseReason,
    /// The error's text, empty for a normal close.
    pub error: &'a str,
    /// The upstream it was relayed to, if one was dialled.
    pub upstream: Option<&'a Address>,
    /// Bytes delivered client → upstream and upstream → client.
    pub bytes: (u64, u64),
    /// When the connection was accepted.
    pub started: Instant,
}
