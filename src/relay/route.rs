//! One route at run time: what its accept loop shares with every connection thread and with
//! the [`StopHandle`](crate::relay::StopHandle)s: the settings, the log, the open connections,
//! the upstreams, the counters and the thread pool.

use std::sync::Arc;

use crate::limits::map_limit;
use crate::limits::open_connections::OpenConnections;
use crate::limits::threads::ThreadPool;
use crate::net::stream::Address;
use crate::ops::log::Log;
use crate::ops::metrics::RouteMetrics;
use crate::ops::observe::Observer;
use crate::settings::config::Config;
use crate::teach::explain::Explain;
use crate::upstream::Upstreams;

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
    /// `config.max_connections`, or less if that many would not fit under the kernel's
    /// memory-map limit.
    pub max_connections: usize,
    /// The bound address, which [`StopHandle::stop`] connects to in order to wake a blocked
    /// `accept`.
    pub listen_addr: Address,
}

impl Route {
    /// A route's first generation, as [`Relay::bind`](crate::Relay::bind) makes it for the
    /// listener bound at `listen_addr`.
    pub fn new(config: Config, listen_addr: Address) -> Route {
        let label = label(&config, &listen_addr);
        let metrics = Arc::new(RouteMetrics::with_upstreams(label, config.upstreams()));
        let threads = Arc::new(ThreadPool::new(
            config.stack_size,
            config.thread_hook,
            config.thread_keep_alive,
            MAX_PARKED_THREADS,
        ));
        Route::with_shared(config, listen_addr, metrics, Arc::default(), threads)
    }

    /// The next generation of this route after a reload: `config`'s settings for the
    /// connections accepted from now on, on the same listener. What belongs to the listener
    /// carries over: the open connections (the connection limit and a drain count the old
    /// generation's connections too), the counters, and the thread pool when its settings
    /// are unchanged. Live connections keep the generation they started with.
    pub fn reloaded(&self, config: Config) -> Route {
        let label = label(&config, &self.listen_addr);
        self.metrics.reloaded(&label, config.upstreams());
        let same_threads = config.stack_size == self.config.stack_size
            && config.thread_keep_alive == self.config.thread_keep_alive;
        let threads = if same_threads {
            Arc::clone(&self.threads)
        } else {
            Arc::new(ThreadPool::new(
                config.stack_size,
                config.thread_hook,
                config.thread_keep_alive,
                MAX_PARKED_THREADS,
            ))
        };
        let connections = Arc::clone(&self.connections);
        let metrics = Arc::clone(&self.metrics);
        Route::with_shared(config, self.listen_addr.clone(), metrics, connections, threads)
    }

    fn with_shared(
        config: Config,
        listen_addr: Address,
        metrics: Arc<RouteMetrics>,
        connections: Arc<OpenConnections>,
        threads: Arc<ThreadPool>,
    ) -> Route {
        let label = metrics.route();
        Route {
            observer: Observer::new(
                Log::for_route(config.log_level, &label),
                Explain::new(config.explain),
                Arc::clone(&metrics),
            ),
            upstreams: Upstreams::new(&config, &metrics),
            metrics,
            max_connections: capped_max_connections(config.max_connections),
            threads,
            config,
            connections,
            listen_addr,
        }
    }
}

/// A route's label in logs and metrics: its name, else its listen address.
fn label(config: &Config, listen_addr: &Address) -> String {
    if config.name.is_empty() { listen_addr.to_string() } else { config.name.clone() }
}

/// At most this many finished connection threads wait for the next connection; more exit.
/// Enough for a burst of short connections from a few dozen clients at once; each parked
/// thread holds its touched stack (about 16 KiB) until `--thread-keep-alive` passes.
const MAX_PARKED_THREADS: usize = 128;

/// `--max-connections`, lowered to what fits under the kernel's memory-map limit, where std
/// would abort the process (see `map_limit.rs`). Read at bind time, so that serving opens
/// no file of its own.
fn capped_max_connections(asked: usize) -> usize {
    match map_limit::connections_that_fit() {
        Some(fit) if fit < asked => fit,
        _ => asked,
    }
}
