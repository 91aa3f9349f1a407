//! One connection's byte counts, owned by the core: each copy thread adds to its own
//! direction's counter, and the metrics read them when `/metrics` is scraped. The core
//! writes into nothing of the metrics.

use crate::counter::Counter;
use crate::outcome::Direction;

/// One connection's bytes delivered so far, each direction counted by its own copy thread,
/// read by a scrape while the connection is open. No counter is shared between
/// connections: the copy loop adds to its own, and the route's metrics sum the open
/// connections' counters with the totals of the closed ones.
#[derive(Debug, Default)]
pub struct LiveBytes {
    to_upstream: Counter,
    to_client: Counter,
}

impl LiveBytes {
    /// `bytes` more were delivered in `direction`.
    pub fn add(&self, direction: Direction, bytes: u64) {
        let counter = match direction {
            Direction::ClientToUpstream => &self.to_upstream,
            Direction::UpstreamToClient => &self.to_client,
        };
        counter.fetch_add(bytes);
    }

    /// Bytes delivered so far: client → upstream, upstream → client.
    pub fn get(&self) -> (u64, u64) {
        (self.to_upstream.get(), self.to_client.get())
    }
}
