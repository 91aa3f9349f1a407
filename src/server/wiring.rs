//! The one place a route's watchers are put together: its events go to an
//! [`Observer`] (the log at the route's level, `--explain`, its counters). The core
//! (relay/) is handed them and knows none of them; [`Relay::bind`] is defined here so
//! that a relay bound on its own is watched as one a `Server` runs, and so is binding a
//! `Server`'s listeners (at start and on a reload).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::limits::capacity::Reserve;
use crate::ops::admin;
use crate::ops::observe::Observer;
use crate::relay::accept::Relay;
use crate::relay::counts::RouteMetrics;
use crate::relay::route::Watchers;
use crate::relay::test_hooks::TestHooks;
use crate::settings::config::Config;
use crate::settings::server_config::ServerConfig;
use crate::upstream::health;

// A UDP route's wiring (`bind_datagram`, `watch_datagram`, `Bound`).
use crate::datagram::{DatagramRelay, DatagramWatchers};
use crate::limits::capacity::Capacity;
use crate::net::address::{Address, UDP_PREFIX};
use crate::ops::flow_log::FlowLog;
use crate::ops::log::Log;

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
        Relay::bind_with(config, watch, TestHooks::default())
    }

    /// [`Relay::bind`], with `hooks` in place of the machine's threads and resolver: the
    /// seam tests use to fail or count thread creation and to fake DNS ([`TestHooks`]).
    ///
    /// # Errors
    /// As [`Relay::bind`].
    pub fn bind_with_hooks(config: Config, hooks: TestHooks) -> io::Result<Relay> {
        Relay::bind_with(config, watch, hooks)
    }
}

/// A bound listener, as the server runs it: a TCP (or Unix socket) listener with its
/// routes, or a UDP route's socket.
#[derive(Debug)]
pub(crate) enum Bound {
    /// A TCP or Unix socket listener: one route's, or routes' that share it by `sni=`.
    Stream(Relay),
    /// A UDP route, with its upstreams' counters (kept across reloads, read by `status`).
    Datagram(DatagramRelay, Arc<RouteMetrics>),
}

impl Bound {
    /// Where it listens (the real port when 0 was asked).
    pub fn listen_addr(&self) -> Address {
        match self {
            Bound::Stream(relay) => relay.listen_addr(),
            Bound::Datagram(relay, _) => Address::Tcp(relay.local_addr()),
        }
    }

    /// How many connections the process can hold, by this listener's cost of one.
    pub fn capacity(&self) -> Capacity {
        match self {
            Bound::Stream(relay) => relay.capacity(),
            Bound::Datagram(relay, _) => relay.capacity(),
        }
    }
}

/// Binds a UDP route (`udp:` listen address), watched as a TCP route is: its flows by a
/// [`FlowLog`], its upstreams by an [`Observer`] over counters of their own, which are
/// returned too.
///
/// # Errors
/// As [`DatagramRelay::bind`].
pub(crate) fn bind_datagram(config: &Config) -> io::Result<(DatagramRelay, Arc<RouteMetrics>)> {
    let mut made = None;
    let relay = DatagramRelay::bind(config.clone(), |config, local_addr| {
        let label = datagram_label(config, local_addr);
        let metrics = Arc::new(RouteMetrics::with_upstreams(label, config.upstreams()));
        made = Some(Arc::clone(&metrics));
        watch_datagram(config, &metrics)
    })?;
    let metrics = made.ok_or_else(|| io::Error::other("a UDP route bound without watchers"))?;
    Ok((relay, metrics))
}

/// A UDP route's watchers, labelled by `metrics.route()`: a [`FlowLog`] at the route's
/// level, and an [`Observer`] counting in `metrics`' upstreams.
pub(crate) fn watch_datagram(config: &Config, metrics: &Arc<RouteMetrics>) -> DatagramWatchers {
    let label = metrics.route();
    let log = Log::for_route(config.log_level, &label);
    DatagramWatchers {
        flows: Arc::new(FlowLog::new(label, log)),
        upstream_counts: metrics.upstreams(),
        upstream: Arc::new(Observer::for_route(config, Arc::clone(metrics))),
    }
}

/// A UDP route's label in logs (and metrics): its name, else `udp:` and its bound address.
pub(crate) fn datagram_label(config: &Config, local_addr: SocketAddr) -> String {
    match config.name.as_str() {
        "" => format!("{UDP_PREFIX}{local_addr}"),
        name => name.to_string(),
    }
}

/// Binds the listener of one group of routes (see `listener_groups`): a route's own, or
/// one shared by routes that differ by `sni=`; a UDP route's socket.
///
/// # Errors
/// As [`Relay::bind`] and [`bind_datagram`]; `InvalidInput` for an empty group.
pub(crate) fn bind_listener(configs: &[Config]) -> io::Result<Bound> {
    match configs {
        [] => Err(io::Error::new(io::ErrorKind::InvalidInput, "no route to bind")),
        // A UDP route is a group of one: it shares its socket with no other route.
        [config] if config.udp => {
            let (relay, metrics) = bind_datagram(config)?;
            Ok(Bound::Datagram(relay, metrics))
        }
        // A group without sni= is one route on a listener of its own.
        [config] if config.server_names.is_empty() => {
            Ok(Bound::Stream(Relay::bind(config.clone())?))
        }
        _ => Ok(Bound::Stream(Relay::bind_sharing(configs.to_vec(), watch, TestHooks::default())?)),
    }
}

/// The threads `config` adds besides connections, in their worst case, for every route's
/// cap to leave out (see [`Reserve`]): each TCP route's health-check threads twice
/// over, as the checks a reload replaced may still be in a check beside the new ones (see
/// upstream/health.rs), and the admin endpoint's accept loop with its handlers, up to
/// twice [`admin::MAX_HANDLERS`] alive at once (see ops/admin.rs).
pub(crate) fn thread_reserve(config: &ServerConfig) -> Reserve {
    let health_check_threads: u64 = config
        .routes
        .iter()
        .filter(|route| !route.udp && !route.health_check.is_zero())
        .map(|route| 2 * route.upstreams().count().min(health::MAX_CHECK_THREADS) as u64)
        .sum();
    let admin_threads = match config.admin {
        Some(_) => 1 + 2 * admin::MAX_HANDLERS as u64,
        None => 0,
    };
    Reserve {
        health_check_threads,
        admin_threads,
        stacks: health_check_threads * health::CHECK_STACK_SIZE as u64
            + admin_threads * admin::HANDLER_STACK_SIZE as u64,
    }
}
