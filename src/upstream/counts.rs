//! One upstream's state and counts, owned here because the choice of upstream steers by
//! them (`up`, `active`); the metrics only read them when `/metrics` is scraped. Each is a
//! relaxed atomic: the counts are independent, and a reader needs each one current, not all
//! from one instant.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::counter::Counter;

const RELAXED: Ordering = Ordering::Relaxed;

/// The live state and counts of one upstream of a route. The route's upstream list steers
/// by two of them, `active` (the `least-connections` policy) and `up`; the metrics read all
/// of them when scraped.
#[derive(Debug)]
pub struct UpstreamMetrics {
    upstream: String,
    up: AtomicBool,
    active: Counter,
    connections: Counter,
    failures: Counter,
    address_failures: Counter,
    check_failures: Counter,
}

impl UpstreamMetrics {
    /// Zeroed counters for `upstream`, which starts up.
    pub fn new(upstream: impl Into<String>) -> UpstreamMetrics {
        UpstreamMetrics {
            upstream: upstream.into(),
            up: AtomicBool::new(true),
            active: Counter::new(0),
            connections: Counter::new(0),
            failures: Counter::new(0),
            address_failures: Counter::new(0),
            check_failures: Counter::new(0),
        }
    }

    /// The upstream as configured (`app1:80`), its label in the output.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Whether it is up: by the health checks when they are on, else by the last connect.
    pub fn is_up(&self) -> bool {
        self.up.load(RELAXED)
    }

    /// Sets the `up` gauge; returns what it was.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, RELAXED)
    }

    /// The connections to it that are open now.
    pub fn active(&self) -> u64 {
        self.active.get()
    }

    /// A client's connection to it was made: counts it, and one more is open.
    pub fn record_connected(&self) {
        self.connections.fetch_add(1);
        self.active.fetch_add(1);
    }

    /// A connection counted by [`record_connected`](Self::record_connected) has closed.
    pub fn record_disconnected(&self) {
        // Never below zero, as for the route's active count.
        let _ = self.active.decrement_unless_zero();
    }

    /// A client's attempt to connect to it failed (every address it resolved to failed).
    pub fn record_failure(&self) {
        self.failures.fetch_add(1);
    }

    /// One of its addresses failed or did not answer in time, whether or not another of
    /// its addresses then connected.
    pub fn record_address_failure(&self) {
        self.address_failures.fetch_add(1);
    }

    /// An active health check of it failed.
    pub fn record_check_failure(&self) {
        self.check_failures.fetch_add(1);
    }

    /// Client connections made to it so far.
    pub fn connections(&self) -> u64 {
        self.connections.get()
    }

    /// Client attempts that failed on every address.
    pub fn failures(&self) -> u64 {
        self.failures.get()
    }

    /// Addresses that failed or did not answer in time.
    pub fn address_failures(&self) -> u64 {
        self.address_failures.get()
    }

    /// Health checks that failed.
    pub fn check_failures(&self) -> u64 {
        self.check_failures.get()
    }
}
