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
//!     admin: Some("127.0.0.1:0".parse().unwrap()),
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

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::admin::Admin;
use crate::config::Config;
use crate::limits::capacity::{Binding, Capacity};
use crate::log::{Log, LogLevel};
use crate::metrics::RouteMetrics;
use crate::net::stream::Address;
use crate::relay::accept::{Relay, StopHandle};
use crate::units::format_duration;

/// What a [`Server`] runs: the routes, and the process-wide settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// One [`Config`] per route. The first route's `log_level` is the admin endpoint's too.
    pub routes: Vec<Config>,
    /// Where to serve the admin endpoint (`/metrics`, `/healthz`, `/drain`); none if `None`.
    pub admin: Option<SocketAddr>,
    /// How long a drain lets live connections finish before closing them.
    pub drain_timeout: Duration,
}

/// The default drain timeout: 30 s, well inside systemd's default `TimeoutStopSec` of 90 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl ServerConfig {
    /// What would run, in the config file's own format, one line per setting and per route
    /// (this is what `tcprelay --check` prints).
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let level = self.routes.first().map(|route| route.log_level).unwrap_or(LogLevel::Info);
        let _ = writeln!(text, "log-level {level}");
        if let Some(admin) = self.admin {
            let _ = writeln!(text, "admin {admin}");
        }
        let _ = writeln!(text, "drain-timeout {}", format_duration(self.drain_timeout));
        for route in &self.routes {
            let _ = write!(text, "route {} ->", route.listen_address());
            for upstream in route.upstreams() {
                let _ = write!(text, " {upstream}");
            }
            if !route.name.is_empty() {
                let _ = write!(text, " name={}", route.name);
            }
            let _ = write!(
                text,
                " policy={} connect-timeout={} idle-timeout={} half-close-timeout={} \
                 max-connections={}",
                route.policy,
                format_duration(route.connect_timeout),
                format_duration(route.idle_timeout),
                format_duration(route.half_close_timeout),
                route.max_connections,
            );
            if let Some(max) = route.max_connections_per_client {
                let _ = write!(text, " max-connections-per-client={max}");
            }
            if let Some(version) = route.proxy_protocol {
                let _ = write!(text, " proxy-protocol={version}");
            }
            for (key, blocks) in [("allow", &route.access.allow), ("deny", &route.access.deny)] {
                if !blocks.is_empty() {
                    let blocks: Vec<String> = blocks.iter().map(ToString::to_string).collect();
                    let _ = write!(text, " {key}={}", blocks.join(","));
                }
            }
            text.push('\n');
        }
        text
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
    /// The first address that cannot be bound, named in the error; nothing is left bound.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        let log =
            Log::new(config.routes.first().map(|route| route.log_level).unwrap_or(LogLevel::Info));
        let relays = config.routes.into_iter().map(Relay::bind).collect::<io::Result<Vec<_>>>()?;
        let handle = ServerHandle {
            stops: relays.iter().map(Relay::stop_handle).collect(),
            drain_timeout: config.drain_timeout,
            draining: Arc::new(AtomicBool::new(false)),
        };
        let admin = match config.admin {
            None => None,
            Some(addr) => {
                let metrics = relays.iter().map(Relay::metrics).collect();
                Some(Admin::bind(addr, metrics, handle.clone(), log)?)
            }
        };
        Ok(Server { relays, admin, handle, log })
    }

    /// Each route's listening address, in the order of the routes (real ports when 0 was
    /// asked; `unix:/path` for a Unix socket route).
    pub fn local_addrs(&self) -> Vec<Address> {
        self.relays.iter().map(Relay::listen_addr).collect()
    }

    /// The admin endpoint's address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
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
        if let Some(relay) = relays.first() {
            log_capacity(&log, relay.capacity());
        }
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
                // A small stack: the loop is shallow, and under a memory limit every
                // megabyte counts (see `capacity.rs`).
                let builder = thread::Builder::new().name(name).stack_size(ACCEPT_STACK_SIZE);
                match builder.spawn_scoped(scope, move || relay.serve()) {
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

/// The stack of each accept loop's thread; `capacity.rs` counts it.
const ACCEPT_STACK_SIZE: usize = 256 * 1024;

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

/// Drains or stops every route of a [`Server`], from any thread (the admin endpoint uses one).
#[derive(Clone, Debug)]
pub struct ServerHandle {
    stops: Vec<StopHandle>,
    drain_timeout: Duration,
    draining: Arc<AtomicBool>,
}

impl ServerHandle {
    /// Stops accepting on every route and lets live connections finish for up to the
    /// configured drain timeout, then closes the rest; [`Server::serve`] returns when all
    /// are done. Returns at once; calling it again changes nothing.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for stop in &self.stops {
            stop.drain(self.drain_timeout);
        }
    }

    /// Stops every route now, closing live connections; also cuts a drain short.
    pub fn stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for stop in &self.stops {
            stop.stop();
        }
    }

    /// Whether a drain or stop has begun (`GET /healthz` then answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The drain timeout the server was configured with.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}
