//! The counts the core keeps: each connection's bytes, written by its two copies
//! ([`LiveBytes`]), and each route's counters ([`RouteMetrics`]): connections accepted and
//! how they ended, the bytes relayed each way, the waits at the connection limit; each
//! upstream's counts are read from `upstream/counts.rs`. The route's watcher
//! (ops/observe.rs) writes the route's counters as it hears the core's events; `/metrics`
//! and `tcprelay status` (ops/) read a [`RouteSnapshot`] and render it.
//!
//! Each route owns one [`RouteMetrics`], shared (behind an `Arc`) by its listener and its
//! connection threads. Counting is a relaxed atomic add: the counters are independent, and a
//! scrape only needs each value to be current, not all values to be from the same instant.
//!
//! # The bookkeeping contract
//!
//! Every accepted connection is counted once by [`RouteMetrics::record_accepted`] and, when it
//! is gone, once by [`RouteMetrics::record_close`] with the reason it ended, *including* the
//! connections that were denied or rejected at once. So at any moment
//! `accepted == active + sum of closed over all reasons`, which the tests check and which
//! an operator can use to spot a leak.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::counter::Counter;
use crate::lock::lock;
use crate::outcome::{CloseReason, Direction};
use crate::upstream::counts::UpstreamMetrics;

/// One connection's bytes delivered so far, each direction counted by its own copy thread:
/// the one count of them, read by the close report when the connection ends and by a
/// scrape while it is open. No counter is shared between connections: the copy loop adds
/// to its own, and the route's metrics sum the open connections' counters with the totals
/// of the closed ones.
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

/// The live counters of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    /// The label; a reload may rename the route (see [`RouteMetrics::reloaded`]).
    route: Mutex<String>,
    accepted: Counter,
    active: Counter,
    rejected_limit: Counter,
    max_connections: Counter,
    limit_reached: Counter,
    limit_wait_micros: Counter,
    denied: Counter,
    connect_failed: Counter,
    dial_local_errors: Counter,
    bytes_client_to_upstream: Counter,
    bytes_upstream_to_client: Counter,
    closed_by_reason: [Counter; CloseReason::ALL.len()],
    /// A reload may change the list; each upstream it keeps keeps its counters.
    upstreams: Mutex<Vec<Arc<UpstreamMetrics>>>,
    /// The byte counters of the connections relaying now, by id, summed at each scrape.
    open_bytes: Mutex<HashMap<u64, Arc<LiveBytes>>>,
}

impl RouteMetrics {
    /// Zeroed counters for the route labelled `route` in the output (its name, or its
    /// listen address when it has none).
    #[cfg(test)]
    pub(crate) fn new(route: impl Into<String>) -> RouteMetrics {
        RouteMetrics::with_upstreams(route, std::iter::empty::<String>())
    }

    /// Zeroed counters for the route labelled `route`, and for each of its upstreams
    /// (labelled as configured, e.g. `app1:80`), every upstream up.
    pub(crate) fn with_upstreams(
        route: impl Into<String>,
        upstreams: impl IntoIterator<Item = impl Into<String>>,
    ) -> RouteMetrics {
        RouteMetrics {
            route: Mutex::new(route.into()),
            accepted: Counter::new(0),
            active: Counter::new(0),
            rejected_limit: Counter::new(0),
            max_connections: Counter::new(0),
            limit_reached: Counter::new(0),
            limit_wait_micros: Counter::new(0),
            denied: Counter::new(0),
            connect_failed: Counter::new(0),
            dial_local_errors: Counter::new(0),
            bytes_client_to_upstream: Counter::new(0),
            bytes_upstream_to_client: Counter::new(0),
            closed_by_reason: std::array::from_fn(|_| Counter::new(0)),
            upstreams: Mutex::new(
                upstreams
                    .into_iter()
                    .map(|upstream| Arc::new(UpstreamMetrics::new(upstream)))
                    .collect(),
            ),
            open_bytes: Mutex::default(),
        }
    }

    /// The counters of each upstream, in the route's order.
    pub(crate) fn upstreams(&self) -> Vec<Arc<UpstreamMetrics>> {
        lock(&self.upstreams).clone()
    }

    /// The route label: its name, else its listen address (as of the last reload).
    pub fn route(&self) -> String {
        lock(&self.route).clone()
    }

    /// After a reload that kept the route's listener: the route's counters go on (they
    /// count the listener's clients, old and new), under the route's label of now, and the
    /// upstream list becomes `upstreams`. An upstream that stays keeps its counters and its
    /// up or down state; a new one starts from zero, up.
    pub(crate) fn reloaded<'a>(&self, route: &str, upstreams: impl IntoIterator<Item = &'a str>) {
        let mut list = lock(&self.upstreams);
        let next = upstreams
            .into_iter()
            .map(|upstream| match list.iter().find(|known| known.upstream() == upstream) {
                Some(known) => Arc::clone(known),
                None => Arc::new(UpstreamMetrics::new(upstream)),
            })
            .collect();
        *list = next;
        *lock(&self.route) = route.to_string();
    }

    /// A client connection was accepted: counts it and adds it to the active connections.
    pub(crate) fn record_accepted(&self) {
        self.accepted.fetch_add(1);
        self.active.fetch_add(1);
    }

    /// An accepted connection is gone: removes it from the active connections and counts
    /// the reason. Call it exactly once per [`record_accepted`](Self::record_accepted).
    pub(crate) fn record_close(&self, reason: CloseReason) {
        let index = reason.index();
        self.closed_by_reason[index].fetch_add(1);
        // Never wrap below zero: a double close would otherwise show 18446744073709551615
        // active connections. `fetch_update` fails (and changes nothing) when it is 0.
        let decremented = self.active.decrement_unless_zero();
        debug_assert!(decremented, "record_close without record_accepted");
    }

    /// A client was closed at once because the whole process held all the connections its
    /// OS limits allow (close reason `process_limit`).
    pub(crate) fn record_rejected_limit(&self) {
        self.rejected_limit.fetch_add(1);
    }

    /// The route's connection limit as it applies: `--max-connections`, or less if the
    /// process cannot hold that many.
    pub(crate) fn set_max_connections(&self, max: usize) {
        self.max_connections.set(max as u64);
    }

    /// The route reached its connection limit and paused accepting (once per episode).
    pub(crate) fn record_limit_reached(&self) {
        self.limit_reached.fetch_add(1);
    }

    /// The accept loop was paused at the connection limit for `waited`.
    pub(crate) fn add_limit_wait(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.limit_wait_micros.fetch_add(micros);
    }

    /// A client was refused by the route's access rules.
    pub(crate) fn record_denied(&self) {
        self.denied.fetch_add(1);
    }

    /// One attempt to connect to an upstream failed. With several upstreams one client can
    /// cause several failures, so this counts attempts, while the `connect_failed` close
    /// reason counts clients for whom every attempt failed.
    pub(crate) fn record_connect_failed(&self) {
        self.connect_failed.fetch_add(1);
    }

    /// Dialling an upstream failed for a reason on this machine (out of descriptors, ports
    /// or memory), not the upstream's: counted here, never as an upstream failure.
    pub(crate) fn record_dial_local_error(&self) {
        self.dial_local_errors.fetch_add(1);
    }

    /// `bytes` more were written from the client to the upstream.
    pub(crate) fn add_bytes_client_to_upstream(&self, bytes: u64) {
        self.bytes_client_to_upstream.fetch_add(bytes);
    }

    /// `bytes` more were written from the upstream to the client.
    pub(crate) fn add_bytes_upstream_to_client(&self, bytes: u64) {
        self.bytes_upstream_to_client.fetch_add(bytes);
    }

    /// Connection `id` has started relaying: from now on a scrape adds its bytes so far.
    pub(crate) fn track_bytes(&self, id: u64, bytes: Arc<LiveBytes>) {
        self.lock_open_bytes().insert(id, bytes);
    }

    /// Connection `id` closed having delivered these bytes: they move from its own
    /// counter (if it was tracked) to the route's totals, in one step under the lock a
    /// scrape takes, so that no scrape counts them twice or misses them.
    pub(crate) fn add_closed_bytes(&self, id: u64, to_upstream: u64, to_client: u64) {
        let mut open = self.lock_open_bytes();
        open.remove(&id);
        self.add_bytes_client_to_upstream(to_upstream);
        self.add_bytes_upstream_to_client(to_client);
        drop(open);
    }

    fn lock_open_bytes(&self) -> MutexGuard<'_, HashMap<u64, Arc<LiveBytes>>> {
        // A map only ever changed by one insert or remove: a poisoned lock is still good.
        lock(&self.open_bytes)
    }

    /// The current values, read one counter at a time (not one consistent instant). The
    /// bytes include those of connections still open, as far as they have got.
    pub fn snapshot(&self) -> RouteSnapshot {
        let (bytes_client_to_upstream, bytes_upstream_to_client) = {
            let open = self.lock_open_bytes();
            let live = open.values().map(|bytes| bytes.get());
            live.fold(
                (self.bytes_client_to_upstream.get(), self.bytes_upstream_to_client.get()),
                |(up, down), (more_up, more_down)| (up + more_up, down + more_down),
            )
        };
        RouteSnapshot {
            route: self.route(),
            accepted: self.accepted.get(),
            active: self.active.get(),
            rejected_limit: self.rejected_limit.get(),
            max_connections: self.max_connections.get(),
            limit_reached: self.limit_reached.get(),
            limit_wait_micros: self.limit_wait_micros.get(),
            denied: self.denied.get(),
            connect_failed: self.connect_failed.get(),
            dial_local_errors: self.dial_local_errors.get(),
            bytes_client_to_upstream,
            bytes_upstream_to_client,
            closed_by_reason: std::array::from_fn(|i| self.closed_by_reason[i].get()),
            upstreams: self
                .upstreams()
                .iter()
                .map(|upstream| upstream_snapshot(upstream))
                .collect(),
        }
    }
}

/// The values of `upstream`'s counters now, one counter at a time: upstream/ keeps them,
/// the metrics read them when scraped.
fn upstream_snapshot(upstream: &UpstreamMetrics) -> UpstreamSnapshot {
    UpstreamSnapshot {
        upstream: upstream.upstream().to_string(),
        up: upstream.is_up(),
        active: upstream.active(),
        connections: upstream.connections(),
        failures: upstream.failures(),
        address_failures: upstream.address_failures(),
        check_failures: upstream.check_failures(),
    }
}

/// The values of one upstream's counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSnapshot {
    /// The upstream label, as configured.
    pub upstream: String,
    /// Up (`true`) or down: by the health checks when they are on (down after 3 failed
    /// checks in a row, up after 2 good ones), else whether the last connect succeeded.
    pub up: bool,
    /// Connections to it open now.
    pub active: u64,
    /// Connections to it made since start.
    pub connections: u64,
    /// Clients' connect attempts to it that failed.
    pub failures: u64,
    /// Address-level failures: one of its addresses failed or was too slow.
    pub address_failures: u64,
    /// Failed health checks.
    pub check_failures: u64,
}

/// The values of one route's counters at one scrape: plain numbers, easy to render and to
/// assert on in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// The route label.
    pub route: String,
    /// Client connections accepted since start.
    pub accepted: u64,
    /// Client connections accepted and not yet closed.
    pub active: u64,
    /// Clients closed at once because the process was at its connection cap.
    pub rejected_limit: u64,
    /// The route's connection limit as it applies.
    pub max_connections: u64,
    /// Times the route reached its connection limit and paused accepting.
    pub limit_reached: u64,
    /// Microseconds the accept loop spent paused at the connection limit.
    pub limit_wait_micros: u64,
    /// Clients refused by the access rules.
    pub denied: u64,
    /// Failed attempts to connect to an upstream.
    pub connect_failed: u64,
    /// Dial attempts that failed for a local reason (out of descriptors, ports, memory).
    pub dial_local_errors: u64,
    /// Bytes written from clients to upstreams.
    pub bytes_client_to_upstream: u64,
    /// Bytes written from upstreams to clients.
    pub bytes_upstream_to_client: u64,
    /// Closed connections, by reason, in the order of [`CloseReason::ALL`].
    pub closed_by_reason: [u64; CloseReason::ALL.len()],
    /// Each upstream's counters, in the route's order.
    pub upstreams: Vec<UpstreamSnapshot>,
}

impl RouteSnapshot {
    /// How many connections closed for the reason named `reason` (as in the log, e.g.
    /// `client_eof`), or `None` if no [`CloseReason`] has that name.
    pub fn closed(&self, reason: &str) -> Option<u64> {
        let reason = CloseReason::ALL.iter().find(|known| known.name() == reason)?;
        Some(self.closed_by_reason[reason.index()])
    }

    /// The counters of the upstream labelled `upstream`, if the route has it.
    pub fn upstream(&self, upstream: &str) -> Option<&UpstreamSnapshot> {
        self.upstreams.iter().find(|known| known.upstream == upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_equals_active_plus_closed() {
        let metrics = RouteMetrics::new("web");
        for _ in 0..5 {
            metrics.record_accepted();
        }
        metrics.record_denied();
        metrics.record_close(CloseReason::Denied);
        metrics.record_close(CloseReason::ClientEof);
        metrics.record_close(CloseReason::ClientEof);

        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.accepted, 5);
        assert_eq!(snapshot.active, 2);
        assert_eq!(snapshot.denied, 1);
        assert_eq!(snapshot.closed("client_eof"), Some(2));
        assert_eq!(snapshot.closed("denied"), Some(1));
        assert_eq!(snapshot.closed("no_such_reason"), None);
        let closed: u64 = snapshot.closed_by_reason.iter().sum();
        assert_eq!(snapshot.accepted, snapshot.active + closed);
    }

    #[test]
    fn open_connections_bytes_count_until_they_close() {
        let metrics = RouteMetrics::new("web");
        let live = Arc::new(LiveBytes::default());
        metrics.track_bytes(7, Arc::clone(&live));
        live.add(Direction::ClientToUpstream, 5);
        live.add(Direction::UpstreamToClient, 11);
        let open = metrics.snapshot();
        assert_eq!((open.bytes_client_to_upstream, open.bytes_upstream_to_client), (5, 11));
        metrics.add_closed_bytes(7, 5, 11);
        let closed = metrics.snapshot();
        assert_eq!((closed.bytes_client_to_upstream, closed.bytes_upstream_to_client), (5, 11));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let metrics = RouteMetrics::new("web");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        metrics.record_accepted();
                        metrics.add_bytes_client_to_upstream(3);
                        metrics.add_bytes_upstream_to_client(7);
                        metrics.record_close(CloseReason::UpstreamEof);
                    }
                });
            }
        });
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.accepted, 4000);
        assert_eq!(snapshot.active, 0);
        assert_eq!(snapshot.bytes_client_to_upstream, 12_000);
        assert_eq!(snapshot.bytes_upstream_to_client, 28_000);
        assert_eq!(snapshot.closed("upstream_eof"), Some(4000));
    }
}
