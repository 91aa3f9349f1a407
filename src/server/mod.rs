//! Several routes in one process: [`Server`] owns one [`Relay`] per route and the optional
//! admin endpoint, runs each accept loop on its own thread, and drains or stops them together.
//!
//! A route is a [`Relay`]: one listener, one accept loop, its own [`Config`]; except that
//! routes on one address that differ by `sni=` share one listener, which picks the route
//! by the TLS server name each client asks for. The server adds nothing to the life of a
//! connection; it only starts the relays, hands their counters to the admin endpoint, and
//! waits for them all.
//!
//! ```
//! use std::time::Duration;
//! use tcprelay::server::{Server, ServerConfig};
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

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::limits::capacity::{self, Binding, Capacity};
use crate::net::address::Address;
use crate::ops::admin;
pub use crate::ops::admin::{AdminAccess, AdminToken};
use crate::ops::log::{Log, LogLevel};
use crate::ops::log_output::LogOutput;
use crate::ops::metrics::RouteMetrics;
use crate::relay::accept::Relay;
use crate::settings::config::Config;
use crate::upstream::health;
use admin_endpoint::AdminEndpoint;
pub use handle::ServerHandle;
use reload::Reloader;
use routes::Routes;

/// What a [`Server`] runs: the routes, and the process-wide settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// One [`Config`] per route. The first route's `log_level` is the admin endpoint's too.
    pub routes: Vec<Config>,
    /// Where to serve the admin endpoint (`/metrics`, `/healthz`, `/drain`): a TCP address
    /// or a Unix socket path; none if `None`.
    pub admin: Option<Address>,
    /// Who may use the admin endpoint: its token and its Unix socket's mode.
    pub admin_access: AdminAccess,
    /// How long a drain lets live connections finish before closing them.
    pub drain_timeout: Duration,
    /// How long a drain keeps accepting new clients, with `/healthz` answering 503, before
    /// it closes the listeners (`drain-grace`): the time a load balancer needs to stop
    /// sending. Zero by default.
    pub drain_grace: Duration,
    /// How often to look whether the config file changed, and reload if it did
    /// (`watch-config`); zero (the default) never looks. Needs `config_file`.
    pub watch_config: Duration,
    /// The config file the routes came from, which [`ServerHandle::reload`] reads again;
    /// `None` (routes from the command line or the library) refuses every reload.
    pub config_file: Option<ConfigFile>,
    /// Where the `tcprelay` binary writes its process id once listening (`--pid-file`).
    /// The library itself writes only the admin endpoint's address beside it, to
    /// `PIDFILE.admin`, for `tcprelay reload|drain|status --config` (server/admin_endpoint.rs).
    pub pid_file: Option<PathBuf>,
    /// Where the `tcprelay` binary sends its log (`--log-file`, `--syslog`) and in which
    /// format (`--log-format`). The library leaves the log where it is (stderr, logfmt).
    pub log_output: LogOutput,
}

/// The config file a server's routes came from, and the command line's settings that
/// override its globals: what a reload reads again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// Settings given as flags, as (setting name, value), which override the file's globals.
    pub overrides: Vec<(String, String)>,
}

/// The default drain timeout: 30 s, well inside systemd's default `TimeoutStopSec` of 90 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServerConfig {
    /// No routes, no admin endpoint, the default drain timeout.
    fn default() -> ServerConfig {
        ServerConfig {
            routes: Vec::new(),
            admin: None,
            admin_access: AdminAccess::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_grace: Duration::ZERO,
            watch_config: Duration::ZERO,
            config_file: None,
            pid_file: None,
            log_output: LogOutput::default(),
        }
    }
}

impl ServerConfig {
    /// The process's log level: the first route's (every route has the same one when the
    /// settings come from the command line or a config file).
    pub fn log_level(&self) -> LogLevel {
        self.routes.first().map(|route| route.log_level).unwrap_or(LogLevel::Info)
    }
}

/// Several relays and the admin endpoint, bound and ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    /// One per listener, with the routes it was bound for: a route's own, or one shared by
    /// routes with `sni=`.
    relays: Vec<(Relay, Vec<Config>)>,
    /// For each route, in the order of the routes: the index of its relay in `relays`.
    listener_of: Vec<usize>,
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
        config.validate().map_err(|c| io::Error::new(io::ErrorKind::InvalidInput, c.message))?;
        capacity::set_reserve(thread_reserve(&config));
        let log = Log::new(config.log_level());
        let groups = crate::settings::config::listener_groups(&config.routes);
        let mut listener_of = vec![0; config.routes.len()];
        let mut by_route = vec![None; config.routes.len()];
        let mut relays = Vec::new();
        for group in &groups {
            let configs: Vec<Config> =
                group.iter().map(|&route| config.routes[route].clone()).collect();
            let relay = bind_listener(&configs)?;
            for (&route, metrics) in group.iter().zip(relay.all_metrics()) {
                listener_of[route] = relays.len();
                by_route[route] = Some(metrics);
            }
            relays.push((relay, configs));
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
        Ok(Server { relays, listener_of, route_metrics, routes, admin, handle, watch, log })
    }

    /// Each route's listening address, in the order of the routes (real ports when 0 was
    /// asked; `unix:/path` for a Unix socket route).
    pub fn local_addrs(&self) -> Vec<Address> {
        self.listener_of.iter().map(|&relay| self.relays[relay].0.listen_addr()).collect()
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
        let Server { relays, routes, admin, handle, watch, log, .. } = self;
        if let Some((relay, _)) = relays.first() {
            log_capacity(&log, relay.capacity());
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
            let started = routes.start(relays);
            let served = routes.wait();
            drop(stop_watching);
            admin.stop_and_join();
            started.and(served)
        })
    }
}

/// Binds the listener of one group of routes (see `listener_groups`): a route's own, or
/// one shared by routes that differ by `sni=`.
///
/// # Errors
/// As [`Relay::bind`]; `InvalidInput` for an empty group.
fn bind_listener(configs: &[Config]) -> io::Result<Relay> {
    match configs {
        [] => Err(io::Error::new(io::ErrorKind::InvalidInput, "no route to bind")),
        // A group without sni= is one route on a listener of its own.
        [config] if config.server_names.is_empty() => Relay::bind(config.clone()),
        _ => Relay::bind_sharing(configs.to_vec()),
    }
}

/// The start-up line that says how many connections the process can hold, every route
/// together, and which OS limit set that (see docs/operations.md, "Sizing under memory
/// limits").
/// The threads `config` adds besides connections, in their worst case, for every route's
/// cap to leave out (see [`capacity::Reserve`]): each route's health-check threads twice
/// over, as the checks a reload replaced may still be in a check beside the new ones (see
/// upstream/health.rs), and the admin endpoint's accept loop with its handlers, up to
/// twice [`admin::MAX_HANDLERS`] alive at once (see ops/admin.rs).
pub(crate) fn thread_reserve(config: &ServerConfig) -> capacity::Reserve {
    let health_check_threads: u64 = config
        .routes
        .iter()
        .filter(|route| !route.health_check.is_zero())
        .map(|route| 2 * route.upstreams().count().min(health::MAX_CHECK_THREADS) as u64)
        .sum();
    let admin_threads = match config.admin {
        Some(_) => 1 + 2 * admin::MAX_HANDLERS as u64,
        None => 0,
    };
    capacity::Reserve {
        health_check_threads,
        admin_threads,
        stacks: health_check_threads * health::CHECK_STACK_SIZE as u64
            + admin_threads * admin::HANDLER_STACK_SIZE as u64,
    }
}

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
