//! What choosing and dialling upstreams tells whoever watches it: failures, back-offs and
//! health changes, one call per event ([`UpstreamEvents`]). The watcher (ops/observe.rs:
//! the log and the metrics) implements it; upstream/ names none of them.

use std::fmt::{self, Display};
use std::net::SocketAddr;

use crate::upstream::counts::UpstreamMetrics;
use crate::upstream::dial::DialError;

/// The events of a route's upstreams, as upstream/ tells them.
pub trait UpstreamEvents: fmt::Debug + Send + Sync {
    /// One attempt to dial an upstream failed. `first` is whether this upstream was healthy
    /// until now: only then is it a warning (once per back-off, not once per client).
    fn upstream_failed(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        backoff_ms: u128,
        error: &dyn Display,
        first: bool,
    );

    /// One address of an upstream with several failed, or had not answered when another
    /// did (Happy Eyeballs); it backs off on its own. `first`: it was not backing off until
    /// now, so this is a warning (once per back-off, not once per client).
    fn address_failed(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        address: &SocketAddr,
        backoff_ms: u128,
        error: &dyn Display,
        first: bool,
    );

    /// Dialling failed on this machine (out of descriptors, ports or memory): not the
    /// upstream's fault, so it is counted apart and the upstream is not backed off. `warn`:
    /// the first such error in a while (a storm of them is one warning).
    fn dial_local_error(
        &self,
        conn: u64,
        upstream: &UpstreamMetrics,
        error: &dyn Display,
        warn: bool,
    );

    /// The upstream resolved only to the route's own listen address and was not dialled
    /// (see `upstream/mod.rs`). `warn`: the first in a while (one per back-off, not one per
    /// client of the storm); the client's close counts it as `reason=self_loop`.
    fn self_loop(&self, conn: u64, upstream: &UpstreamMetrics, error: &dyn Display, warn: bool);

    /// An active health check of `upstream` failed (a debug line; the change of state,
    /// if it comes, is the warning).
    fn check_failed(&self, upstream: &UpstreamMetrics, error: &dyn Display);

    /// The health checks took `upstream` down or brought it back up, after `checks`
    /// results in a row; `error` is the last check's, when it failed.
    fn upstream_health_changed(
        &self,
        upstream: &UpstreamMetrics,
        up: bool,
        checks: u32,
        error: Option<DialError>,
    );
}
