//! One route at run time: what its accept loop shares with every connection thread and with
//! the [`StopHandle`](crate::relay::StopHandle)s: the settings, the log, the open connections,
//! the upstreams, the counters and the thread pool.

use std::sync::Arc;

use crate::limits::capacity::{self, Capacity, Cost};
use crate::limits::open_connections::OpenConnections;
use crate::limits::per_client::PerClientLimit;
use crate::limits::threads::ThreadPool;
use crate::net::address::Address;
use crate::ops::log::Log;
use crate::ops::metrics::RouteMetrics;
use crate::ops::observe::Observer;
use crate::relay::copy;
use crate::settings::config::Config;
use crate::teach::explain::Explain;
use crate::upstream::Upstreams;
use crate::upstream::dial::DialRoom;

/// What the accept loop shares with every connection thread and with [`StopHandle`]s.
#[derive(Debug)]
pub struct Route {
    pub config: Config,
    /// Where the route's log lines, `--explain` narration and counters go.
    pub observer: Observer,
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
    /// The bound address, which [`StopHandle::stop`] connects to in order to wake a blocked
    /// `accept`.
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

impl Route {
    /// A route's first generation, as [`Relay::bind`](crate::Relay::bind) makes it for the
    /// listener bound at `listen_addr`.
    pub fn new(config: Config, listen_addr: Address) -> Route {
        let label = label(&config, &listen_addr);
        let metrics = Arc::new(RouteMetrics::with_upstreams(label, config.upstreams()));
        Route::with_shared(config, listen_addr, metrics, Arc::default(), None)
    }

    /// The next generation of this route after a reload: `config`'s settings for the
    /// connections accepted from now on, on the same listener. What belongs to the listener
    /// carries over: the open connections (the connection limit and a drain count the old
    /// generation's connections too), the counters, and the thread pool when its settings
    /// are unchanged. Live connections keep the generation they started with.
    pub fn reloaded(&self, config: Config) -> Route {
        let label = label(&config, &self.listen_addr);
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
        Route::with_shared(config, self.listen_addr.clone(), metrics, connections, threads)
    }

    fn with_shared(
        config: Config,
        listen_addr: Address,
        metrics: Arc<RouteMetrics>,
        connections: Arc<OpenConnections>,
        threads: Option<Arc<ThreadPool>>,
    ) -> Route {
        let label = metrics.route();
        let capacity = process_capacity(&config);
        let max_connections = config.max_connections.min(capacity.connections);
        metrics.set_max_connections(max_connections);
        let threads = threads.unwrap_or_else(|| {
            Arc::new(ThreadPool::new(
                config.stack_size,
                config.thread_hook,
                config.thread_keep_alive,
                capacity.max_parked,
            ))
        });
        Route {
            observer: Observer::new(
                Log::for_route(config.log_level, &label),
                Explain::new(config.explain),
                Arc::clone(&metrics),
            ),
            upstreams: Upstreams::new(
                &config,
                &metrics,
                match listen_addr {
                    Address::Tcp(addr) => Some(addr),
                    Address::Unix(_) => None,
                },
                DialRoom::of(&capacity),
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

/// A route's label in logs and metrics: its name, else its listen address.
fn label(config: &Config, listen_addr: &Address) -> String {
    if config.name.is_empty() { listen_addr.to_string() } else { config.name.clone() }
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
