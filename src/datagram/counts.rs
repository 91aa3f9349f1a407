//! [`DatagramCounts`]: a UDP route's counters, kept by datagram/ as it relays and read by
//! `/metrics` when scraped. Plain atomic counters ([`Counter`]), so the receive thread
//! pays one atomic add per figure per datagram, and no lock.

use crate::counter::Counter;
use crate::datagram::events::{DropCause, FlowEnd, Traffic};

/// A UDP route's counters since it started.
#[derive(Debug)]
pub struct DatagramCounts {
    /// Flows open now.
    flows_open: Counter,
    /// Flows ended, by [`FlowEnd`] (indexed by `reason as usize`: [`FlowEnd::ALL`]'s order).
    flows_closed: [Counter; FlowEnd::ALL.len()],
    datagrams_to_upstream: Counter,
    bytes_to_upstream: Counter,
    datagrams_to_client: Counter,
    bytes_to_client: Counter,
    /// Datagrams dropped, by [`DropCause`] (indexed by `cause as usize`).
    drops: [Counter; DropCause::ALL.len()],
}

impl Default for DatagramCounts {
    fn default() -> DatagramCounts {
        DatagramCounts {
            flows_open: Counter::new(0),
            flows_closed: std::array::from_fn(|_| Counter::new(0)),
            datagrams_to_upstream: Counter::new(0),
            bytes_to_upstream: Counter::new(0),
            datagrams_to_client: Counter::new(0),
            bytes_to_client: Counter::new(0),
            drops: std::array::from_fn(|_| Counter::new(0)),
        }
    }
}

// The readers are `/metrics`' (ops/), wired by the operations work on issue #27.
#[allow(dead_code, reason = "read by the metrics, which are wired apart")]
impl DatagramCounts {
    /// Flows open now.
    pub fn flows_open(&self) -> u64 {
        self.flows_open.get()
    }

    /// Flows that ended for `reason`.
    pub fn flows_closed(&self, reason: FlowEnd) -> u64 {
        self.flows_closed[reason as usize].get()
    }

    /// Datagrams and bytes relayed client → upstream.
    pub fn to_upstream(&self) -> Traffic {
        let datagrams = self.datagrams_to_upstream.get();
        Traffic { datagrams, bytes: self.bytes_to_upstream.get() }
    }

    /// Datagrams and bytes relayed upstream → client.
    pub fn to_client(&self) -> Traffic {
        Traffic { datagrams: self.datagrams_to_client.get(), bytes: self.bytes_to_client.get() }
    }

    /// Datagrams dropped for `cause`.
    pub fn drops(&self, cause: DropCause) -> u64 {
        self.drops[cause as usize].get()
    }

    /// The flow table now holds `open` flows.
    pub(crate) fn set_flows_open(&self, open: usize) {
        self.flows_open.set(open as u64);
    }

    pub(crate) fn flow_closed(&self, reason: FlowEnd) {
        self.flows_closed[reason as usize].fetch_add(1);
    }

    pub(crate) fn sent_to_upstream(&self, bytes: usize) {
        self.datagrams_to_upstream.fetch_add(1);
        self.bytes_to_upstream.fetch_add(bytes as u64);
    }

    pub(crate) fn sent_to_client(&self, bytes: usize) {
        self.datagrams_to_client.fetch_add(1);
        self.bytes_to_client.fetch_add(bytes as u64);
    }

    pub(crate) fn dropped(&self, cause: DropCause) {
        self.drops[cause as usize].fetch_add(1);
    }
}
