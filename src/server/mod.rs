//! Several routes in one process: [`Server`] owns one [`Relay`](crate::Relay) per route and the optional
//! admin endpoint, runs each accept loop on its own thread, and drains or stops them together.
//!
//! A route is a [`Relay`](crate::Relay): one listener, one accept loop, its own [`Config`]; except that
//! routes on one address that differ by `sni=` share one listener, which picks the route
//! by the TLS server name each client asks for. A UDP route (`udp:`) is a
//! [`DatagramRelay`](crate::datagram::DatagramRelay): one socket, one receive loop, run,
//! drained, reloaded and shown beside the TCP routes. The server adds nothing to the life
//! of a connection or a flow; it only starts the relays, hands their counters to the admin
//! endpoint, and waits for them all.
//!
//! ```
//! use std::time::Duration;
//! use tcprelay::{Server, ServerConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! let route = |upstream: &str| tcprelay::Config {
//!     upstream: upstream.to_string(),
//!     ..tcprelay::Config::default()
//! };
//! let server = Server::bind(ServerConfig {
//!     routes: vec![route("127.0.0.1:6379"), route("127.0.0.1:5432")],
//!     admin: Some(tcprelay::Address::Tcp("127.0.0.1:0".parse().unwrap())),
//!     drain_timeout: Duration::from_secs(30),
//!     ..ServerConfig::default()
//! })?;
//! assert_eq!(server.local_addrs().len(), 2); // e.g. 127.0.0.1:41234 and 127.0.0.1:41235
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve());
//! handle.drain(); // what `POST /drain` does: stop accepting, let connections finish
//! serving.join().expect("server thread panicked")?;
//! # Ok(())
//! # }
//! ```

mod admin_endpoint;
pub(crate) mod handle;
pub(crate) mod pid_file;
mod reload;
pub(crate) mod routes;
mod watch;
mod wiring;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::limits::capacity::{self, Binding, Capacity};
use crate::net::address::Address;
use crate::ops::log::Log;
use crate::ops::metrics::RouteMetrics;
use crate::settings::config::Config;
pub use crate::settings::server_config::{ConfigFile, ServerConfig};
use admin_endpoint::AdminEndpoint;
pub use handle::ServerHandle;
use reload::Reloader;
use routes::Routes;
use wiring::Bound;

/// Several relays and the admin endpoint, bound and ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    /// One per listener, in the order of the routes, with the routes it was bound for: a
    /// route's own, or one shared by routes with `sni=`; a UDP route's socket.
    listeners: Vec<(Bound, Vec<Config>)>,
    /// For each TCP route, in the order of the routes: the index of its listener in
    /// `listeners` (`None` for a UDP route).
    listener_of: Vec<Option<usize>>,
    /// Each route's counters, in the order of the routes.
    route_metrics: Vec<Arc<RouteMetrics>>,
    routes: Arc<Routes>,
    admin: Arc<AdminEndpoint>,
    handle: ServerHandle,
    /// The config file to watch and how often (`watch-config`), if asked.
    watch: Option<(PathBuf, Duration)>,
    log: Log,
}

impl Server {
    /// Binds every route's listener and the admin endpoint.
    ///
    /// # Errors
    /// `InvalidInput` when [`ServerConfig::validate`] refuses the settings; otherwise the
    /// first address that cannot be bound, named in the error; nothing is left bound.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        config.validate()?;
        capacity::set_reserve(wiring::thread_reserve(&config));
        let log = Log::new(config.log_level());
        let groups = crate::settings::config::listener_groups(&config.routes);
        let mut listener_of = vec![None; config.routes.len()];
        let mut by_route = vec![None; config.routes.len()];
        let mut listeners = Vec::new();
        for group in &groups {
            let configs: Vec<Config> =
                group.iter().map(|&route| config.routes[route].clone()).collect();
            let listener = wiring::bind_listener(&configs)?;
            if let Bound::Stream(relay) = &listener {
                for (&route, metrics) in group.iter().zip(relay.all_metrics()) {
                    listener_of[route] = Some(listeners.len());
                    by_route[route] = Some(metrics);
                }
            }
            listeners.push((listener, configs));
        }
        let route_metrics: Vec<_> = by_route.into_iter().flatten().collect();
        let routes = Arc::new(Routes::new(config.drain_timeout, config.drain_grace));
        let admin = Arc::new(AdminEndpoint::new(log.clone(), config.pid_file.as_deref()));
        let reload = config.config_file.clone().map(|file| {
            // Weak: the endpoint holds the handle that holds this reloader.
            let admin = Arc::downgrade(&admin);
            let reloader = Reloader::new(file, &config, Arc::clone(&routes), admin, log.clone());
            Arc::new(move || reloader.reload()) as handle::Reload
        });
        let handle = ServerHandle::new(Arc::clone(&routes), reload);
        admin.bind(config.admin.as_ref(), &config.admin_access, handle.clone())?;
        let watch = match &config.config_file {
            Some(file) if !config.watch_config.is_zero() => {
                Some((file.path.clone(), config.watch_config))
            }
            _ => None,
        };
        Ok(Server { listeners, listener_of, route_metrics, routes, admin, handle, watch, log })
    }

    /// Each TCP route's listening address, in the order of the routes (real ports when 0
    /// was asked; `unix:/path` for a Unix socket route). UDP routes are not among them.
    pub fn local_addrs(&self) -> Vec<Address> {
        let relays = self.listener_of.iter().flatten();
        relays.map(|&relay| self.listeners[relay].0.listen_addr()).collect()
    }

    /// Each UDP route's bound address and its label, in the order of the routes.
    pub(crate) fn datagram_addrs(&self) -> Vec<(SocketAddr, String)> {
        let addrs = self.listeners.iter().filter_map(|(listener, _)| match listener {
            Bound::Stream(_) => None,
            Bound::Datagram(relay, upstream_metrics) => {
                Some((relay.local_addr(), upstream_metrics.route()))
            }
        });
        addrs.collect()
    }

    /// The admin endpoint's TCP address, if it has one (`None` also for a Unix socket: see
    /// [`Server::admin_address`]).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        match self.admin_address()? {
            Address::Tcp(addr) => Some(addr),
            Address::Unix(_) => None,
        }
    }

    /// The admin endpoint's address, TCP or Unix, if there is one.
    pub fn admin_address(&self) -> Option<Address> {
        self.admin.local_addr()
    }

    /// Each route's live counters, in the order of the routes.
    pub fn metrics(&self) -> Vec<Arc<RouteMetrics>> {
        self.route_metrics.clone()
    }

    /// A handle that drains or stops every route from another thread.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Runs every route's accept loop on its own thread, and the admin endpoint on another,
    /// until every route has stopped (after [`ServerHandle::drain`] or
    /// [`ServerHandle::stop`], or `POST /drain`); then stops the admin endpoint and returns.
    ///
    /// # Errors
    /// An accept thread that cannot be created (then every route is stopped first), or the
    /// first error a route's `serve` returned.
    pub fn serve(self) -> io::Result<()> {
        let Server { listeners, routes, admin, handle, watch, log, .. } = self;
        // Every route counts against the one cap; a UDP flow takes half a connection's share.
        // A TCP route's figure first (a UDP route's cost counts its larger buffer).
        let first_tcp = listeners.iter().find(|(listener, _)| matches!(listener, Bound::Stream(_)));
        if let Some((listener, _)) = first_tcp.or(listeners.first()) {
            let capacity = listener.capacity();
            log_capacity(&log, capacity);
        }
        admin.start();
        thread::scope(|scope| {
            // Dropped when the routes have stopped, which ends the watcher's wait.
            let (stop_watching, stopped) = mpsc::channel::<()>();
            if let Some((path, every)) = &watch {
                let (handle, log) = (&handle, &log);
                let spawned = thread::Builder::new()
                    .name("tcprelay-watch-config".into())
                    .spawn_scoped(scope, move || watch::watch(path, *every, handle, log, &stopped));
                if let Err(error) = spawned {
                    log.error("cannot start the watch-config thread", &[("error", &error)]);
                }
            }
            // Every route's accept loop, and those a reload adds, until all have stopped.
            let started = routes.start(listeners);
            let served = routes.wait();
            drop(stop_watching);
            admin.stop_and_join();
            started.and(served)
        })
    }
}

/// The start-up line that says how many connections the process can hold, every route
/// together, and which OS limit set that (see docs/operations.md, "Sizing under memory
/// limits").
fn log_capacity(log: &Log, capacity: Capacity) {
    let Capacity { connections, limited_by, limit, cost, .. } = capacity;
    let cap: &dyn std::fmt::Display =
        if limited_by == Binding::None { &"none" } else { &connections };
    log.info(
        "connection cap",
        &[
            ("cap", cap),
            ("limited_by", &limited_by.name()),
            ("limit", &limit),
            ("address_space_per_connection", &cost.address_space),
            ("descriptors_per_connection", &cost.descriptors),
            ("threads_per_connection", &cost.threads),
            ("maps_per_connection", &cost.maps),
            ("malloc_arena_max", &tcprelay_arena_max()),
        ],
    );
}

/// The arena limit in force, for the start-up line: the operator's, or glibc's default.
fn tcprelay_arena_max() -> String {
    match crate::limits::arenas::arena_max_from_environment() {
        Some(max) => max.to_string(),
        None => "default".to_string(),
    }
}
