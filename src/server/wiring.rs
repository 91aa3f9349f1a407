//! The one place a route's watchers are put together: its events go to an
//! [`Observer`] (the log at the route's level, `--explain`, its counters). The core
//! (relay/) is handed them and knows none of them; [`Relay::bind`] is defined here so
//! that a relay bound on its own is watched as one a `Server` runs, and so is binding a
//! `Server`'s listeners (at start and on a reload).

use std::io;
use std::sync::Arc;

use crate::ops::metrics::RouteMetrics;
use crate::ops::observe::Observer;
use crate::relay::accept::Relay;
use crate::relay::route::Watchers;
use crate::settings::config::Config;

/// A route's watchers: one [`Observer`] for its own events and its upstreams'.
pub(crate) fn watch(config: &Config, metrics: &Arc<RouteMetrics>) -> Watchers {
    let observer = Arc::new(Observer::for_route(config, Arc::clone(metrics)));
    Watchers { events: Arc::clone(&observer) as _, upstream: observer }
}

impl Relay {
    /// Binds the listening socket (Go: `net.Listen("tcp", addr)`), or the Unix domain socket
    /// of [`Config::listen_unix`] (Go: `net.Listen("unix", path)`).
    ///
    /// # Errors
    /// `InvalidInput` naming the setting if [`Config::validate`] refuses the config; else
    /// the OS error, with the address in its message, if the address cannot be bound
    /// (in use, not a local address, permission denied for a low port or a directory).
    pub fn bind(config: Config) -> io::Result<Relay> {
        Relay::bind_with(config, watch)
    }
}

/// Binds the listener of one group of routes (see `listener_groups`): a route's own, or
/// one shared by routes that differ by `sni=`.
///
/// # Errors
/// As [`Relay::bind`]; `InvalidInput` for an empty group.
pub(crate) fn bind_listener(configs: &[Config]) -> io::Result<Relay> {
    match configs {
        [] => Err(io::Error::new(io::ErrorKind::InvalidInput, "no route to bind")),
        // A group without sni= is one route on a listener of its own.
        [config] if config.server_names.is_empty() => Relay::bind(config.clone()),
        _ => Relay::bind_sharing(configs.to_vec(), watch),
    }
}
