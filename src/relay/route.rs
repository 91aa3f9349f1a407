//! One route at run time: what its accept loop shares with every connection thread and with
//! the [`StopHandle`](crate::relay::StopHandle)s: the settings, the watchers, the open connections,
//! the upstreams, the counters and the thread pool.

use std::fmt::Display;
use std::sync::Arc;

use crate::limits::capacity::{self, Capacity, Cost};
use crate::limits::per_client::PerClientLimit;
use crate::limits::threads::ThreadPool;
use crate::net::address::Address;
use crate::relay::copy;
use crate::relay::counts::RouteMetrics;
use crate::relay::events::Events;
use crate::relay::open_connections::OpenConnections;
use crate::relay::test_hooks::TestHooks;
use crate::settings::config::Config;
use crate::upstream::Upstreams;
use crate::upstream::dial::DialRoom;
use crate::upstream::events::UpstreamEvents;

/// What the accept loop shares with every connection thread and with
/// [`StopHandle`](crate::relay::StopHandle)s.
#[derive(Debug)]
pub struct Route {
    pub config: Config,
    /// Where the route's events go (the log, `--explain`, the counters: the core does not
    /// know which).
    pub observer: Arc<dyn Events>,
    /// What built those two, kept to build them again for the next generation.
    pub watch: Watch,
    /// What a test put in place of the machine (threads, the resolver), kept likewise.
    pub hooks: TestHooks,
    pub connections: Arc<OpenConnections>,
    /// The route's upstreams, and which of them are backing off after a failed connect.
    pub upstreams: Upstreams,
    /// The route's counters, also read by the admin endpoint.
    pub metrics: Arc<RouteMetrics>,
    /// Where connection threads come from: parked ones first, else new ones.
    pub threads: Arc<ThreadPool>,
    /// `config.max_connections`, or less if that many would not fit in the process (see
    /// `capacity`).
    pub max_connections: usize,
    /// How many connections the whole process can hold, and which limit says so. A client
    /// accepted while the process holds that many, on every route together, is closed at
    /// once (`process_limit`).
    pub capacity: Capacity,
    /// The route's `--max-connections-per-client`.
    pub per_client: PerClientLimit,
    /// The bound address, which [`StopHandle::stop`](crate::relay::StopHandle::stop)
    /// connects to in order to wake a blocked `accept`.
    pub listen_addr: Address,
    /// On a listener shared by routes with `sni=`, held by the listener's own route: the
    /// others, picked by the server name each client asks for. `None` on every other route.
    pub server_names: Option<ServerNames>,
}

/// The other routes on a listener shared by routes with `sni=`, picked by the server name
/// each client asks for (`relay/server_names.rs` builds and reads it); the listener's own
/// route is the first one on the address, and holds this table.
#[derive(Debug)]
pub struct ServerNames {
    /// The routes other than the listener's own, in the order they were configured.
    pub others: Vec<Arc<Route>>,
}

/// Builds a route's watchers from its settings and counters. Whoever runs the relay passes
/// it in (server/wiring.rs); the core only calls what it returns.
pub type Watch = fn(&Config, &Arc<RouteMetrics>) -> Watchers;

/// Where a route's events go: its own, and its upstreams'.
#[derive(Debug)]
pub struct Watchers {
    /// The route's and its connections' events.
    pub events: Arc<dyn Events>,
    /// Its upstreams' failures and health changes.
    pub upstream: Arc<dyn UpstreamEvents>,
}

impl Route {
    /// A route's first generation, as [`Relay::bind`](crate::Relay::bind) makes it for the
    /// listener bound at `listen_addr`, watched by what `watch` builds.
    pub fn new(config: Config, listen_addr: Address, watch: Watch, hooks: TestHooks) -> Route {
        let label = label(&listen_addr, &config, false);
        let metrics = Arc::new(RouteMetrics::with_upstreams(label, config.upstreams()));
        Route::with_shared(config, listen_addr, metrics, Arc::default(), None, watch, hooks)
    }

    /// The next generation of this route after a reload: `config`'s settings for the
    /// connections accepted from now on, on the same listener. What belongs to the listener
    /// carries over: the open connections (the connection limit and a drain count the old
    /// generation's connections too), the counters, and the thread pool when its settings
    /// are unchanged. Live connections keep the generation they started with.
    pub fn reloaded(&self, config: Config) -> Route {
        let label = label(&self.listen_addr, &config, false);
        self.reloaded_as(&label, config)
    }

    /// [`Route::reloaded`], labelled `label` in logs and metrics from now on (a route
    /// sharing its listener by `sni=` is labelled by its server names).
    pub fn reloaded_as(&self, label: &str, config: Config) -> Route {
        self.metrics.reloaded(label, config.upstreams());
        let same_threads = config.stack_size == self.config.stack_size
            && config.buffer_size == self.config.buffer_size
            && config.thread_keep_alive == self.config.thread_keep_alive;
        let threads = same_threads.then(|| Arc::clone(&self.threads));
        let connections = Arc::clone(&self.connections);
        let metrics = Arc::clone(&self.metrics);
        Route::with_shared(
            config,
            self.listen_addr.clone(),
            metrics,
            connections,
            threads,
            self.watch,
            self.hooks,
        )
    }

    /// A route on its own listener: its capacity and thread pool worked out from `config`
    /// unless `threads` carries the pool over.
    fn with_shared(
        config: Config,
        listen_addr: Address,
        metrics: Arc<RouteMetrics>,
        connections: Arc<OpenConnections>,
        threads: Option<Arc<ThreadPool>>,
        watch: Watch,
        hooks: TestHooks,
    ) -> Route {
        let capacity = process_capacity(&config);
        let max_connections = config.max_connections.min(capacity.connections);
        metrics.set_max_connections(max_connections);
        let threads = threads.unwrap_or_else(|| {
            Arc::new(ThreadPool::new(
                config.stack_size,
                hooks.thread_hook,
                config.thread_keep_alive,
                capacity.max_parked,
            ))
        });
        let shared = Shared { connections, threads, capacity, max_connections };
        Route::assemble(config, listen_addr, metrics, shared, watch, hooks)
    }

    /// A route sharing `listener`'s socket, open connections, thread pool and limits
    /// (routes told apart by `sni=`, see server_names.rs).
    pub fn sharing(listener: &Route, config: Config, metrics: Arc<RouteMetrics>) -> Route {
        let shared = Shared {
            connections: Arc::clone(&listener.connections),
            threads: Arc::clone(&listener.threads),
            capacity: listener.capacity,
            max_connections: listener.max_connections,
        };
        let (watch, hooks) = (listener.watch, listener.hooks);
        Route::assemble(config, listener.listen_addr.clone(), metrics, shared, watch, hooks)
    }

    /// The one place a [`Route`] is put together: its watchers (what `watch` builds from
    /// `config` and `metrics`) and upstreams, beside what it shares with its listener.
    fn assemble(
        config: Config,
        listen_addr: Address,
        metrics: Arc<RouteMetrics>,
        shared: Shared,
        watch: Watch,
        hooks: TestHooks,
    ) -> Route {
        let Shared { connections, threads, capacity, max_connections } = shared;
        let watchers = watch(&config, &metrics);
        Route {
            observer: watchers.events,
            watch,
            hooks,
            upstreams: Upstreams::new(
                &config,
                hooks.resolver,
                &metrics.upstreams(),
                match listen_addr {
                    Address::Tcp(addr) => Some(addr),
                    Address::Unix(_) => None,
                },
                DialRoom::of(&capacity),
                watchers.upstream,
            ),
            metrics,
            max_connections,
            capacity,
            per_client: PerClientLimit::new(config.max_connections_per_client, max_connections),
            threads,
            config,
            connections,
            listen_addr,
            server_names: None,
        }
    }

    /// The counters of every route on this route's listener: its own, then those of the
    /// routes sharing it by `sni=`.
    pub fn all_metrics(&self) -> Vec<Arc<RouteMetrics>> {
        let others = self.server_names.iter().flat_map(|names| names.others.iter());
        std::iter::once(&self.metrics).chain(others.map(|route| &route.metrics)).cloned().collect()
    }
}

/// A route's label in logs and metrics: its name; else its listen address, followed on a
/// listener `shared` by `sni=` routes by the server names that pick it
/// (`127.0.0.1:443 sni=a.example.com,*.example.org`, or `127.0.0.1:443 default` for the route
/// without `sni=`), so that the routes on one address are told apart.
pub fn label(listen: &impl Display, config: &Config, shared: bool) -> String {
    if !config.name.is_empty() {
        return config.name.clone();
    }
    match (shared, config.server_names.is_empty()) {
        (false, _) => listen.to_string(),
        (true, true) => format!("{listen} default"),
        (true, false) => config.listen_and_names(listen),
    }
}

/// What the routes on one listener share (see [`Route::sharing`]).
struct Shared {
    connections: Arc<OpenConnections>,
    threads: Arc<ThreadPool>,
    capacity: Capacity,
    max_connections: usize,
}

/// How many connections of this route's cost the whole process can hold under its OS
/// limits (see `capacity.rs`). The limits are read once per process, at the first bind, so
/// that serving opens no file of its own.
///
/// Copy buffers: each direction holds at most [`copy::SMALL_BUFFER`] of its own (none while
/// quiet); anything larger is lent from one process-wide budget (`relay/copy.rs`), so the
/// cost counts the small buffer, and the budget is kept to a thirty-second of the tightest
/// memory limit, within the slack the fit leaves (`capacity::slack`: a sixteenth).
fn process_capacity(config: &Config) -> Capacity {
    let snapshot = capacity::snapshot();
    let tightest = [snapshot.address_space, snapshot.commit, snapshot.memory]
        .into_iter()
        .flatten()
        .map(|(limit, _used)| limit)
        .min();
    if let Some(limit) = tightest {
        copy::limit_buffer_budget(limit / 32);
    }
    let cost = Cost::of(config.stack_size, copy::SMALL_BUFFER, snapshot.signal_stack);
    capacity::fit(snapshot, &cost, capacity::reserve())
}
