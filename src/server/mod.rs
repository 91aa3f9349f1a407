//! Several routes in one process: [`Server`] owns one [`Relay`] per route and the optional
//! admin endpoint, runs each accept loop on its own thread, and drains or stops them together.
//!
//! A route is exactly a [`Relay`]: one listener, one accept loop, its own [`Config`]. The
//! server adds nothing to the life of a connection; it only starts the relays, hands their
//! counters to the admin endpoint, and waits for them all.
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
//!     admin_access: Default::default(),
//!     drain_timeout: Duration::from_secs(30),
//! })?;
//! assert_eq!(server.local_addrs().len(), 2); // e.g. 127.0.0.1:41234 and 127.0.0.1:41235
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve());
//! handle.drain(); // what `POST /drain` does: stop accepting, let connections finish
//! serving.join().expect("server thread panicked")?;
//! # Ok(())
//! # }
//! ```

pub(crate) mod handle;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::admin::Admin;
pub use crate::admin::{AdminAccess, AdminToken};
use crate::config::Config;
use crate::log::{Log, LogLevel};
use crate::metrics::RouteMetrics;
use crate::net::stream::Address;
use crate::relay::accept::Relay;
pub use handle::ServerHandle;

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
    relays: Vec<Relay>,
    admin: Option<Admin>,
    handle: ServerHandle,
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
        let log = Log::new(config.log_level());
        let relays = config.routes.into_iter().map(Relay::bind).collect::<io::Result<Vec<_>>>()?;
        let handle = ServerHandle::new(
            relays.iter().map(Relay::stop_handle).collect(),
            config.drain_timeout,
        );
        let admin = match &config.admin {
            None => None,
            Some(address) => {
                let metrics = relays.iter().map(Relay::metrics).collect();
                let access = config.admin_access.clone();
                Some(Admin::bind(address, access, metrics, handle.clone(), log.clone())?)
            }
        };
        Ok(Server { relays, admin, handle, log })
    }

    /// Each route's listening address, in the order of the routes (real ports when 0 was
    /// asked; `unix:/path` for a Unix socket route).
    pub fn local_addrs(&self) -> Vec<Address> {
        self.relays.iter().map(Relay::listen_addr).collect()
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
        self.admin.as_ref().map(Admin::local_addr)
    }

    /// Each route's live counters, in the order of the routes.
    pub fn metrics(&self) -> Vec<Arc<RouteMetrics>> {
        self.relays.iter().map(Relay::metrics).collect()
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
        let Server { relays, admin, handle, log } = self;
        let admin_stop = admin.as_ref().map(Admin::stop_handle);
        thread::scope(|scope| {
            if let Some(admin) = admin {
                let spawned = thread::Builder::new()
                    .name("tcprelay-admin".into())
                    .spawn_scoped(scope, move || admin.serve());
                if let Err(error) = spawned {
                    // The relays can run without it; say so loudly.
                    log.error("cannot start the admin thread", &[("error", &error)]);
                }
            }
            let mut accept_threads = Vec::new();
            let mut result = Ok(());
            for (index, relay) in relays.into_iter().enumerate() {
                let name = format!("tcprelay-accept-{index}");
                match thread::Builder::new().name(name).spawn_scoped(scope, move || relay.serve()) {
                    Ok(thread) => accept_threads.push(thread),
                    Err(error) => {
                        // Half a server is a surprise: stop the routes already running.
                        handle.stop();
                        result = Err(error);
                        break;
                    }
                }
            }
            for thread in accept_threads {
                let served = thread.join().unwrap_or_else(|_| {
                    Err(io::Error::other("an accept loop panicked (a bug in tcprelay)"))
                });
                if result.is_ok() {
                    result = served;
                }
            }
            if let Some(admin_stop) = admin_stop {
                admin_stop.stop();
            }
            result
        })
    }
}
