//! [`DatagramRoute`]: what a UDP route's receive thread shares with its flows: settings,
//! upstreams, the flow table, counters, watchers, the process-wide cap and the pool its flow
//! threads come from.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::datagram::counts::DatagramCounts;
use crate::datagram::events::{DropCause, FlowEvents};
use crate::datagram::flow::RECEIVE_BUFFER;
use crate::datagram::flows::Flows;
use crate::limits::capacity::{self, Capacity, Cost};
use crate::limits::threads::{ThreadPool, no_hook};
use crate::settings::config::Config;
use crate::upstream::Upstreams;
use crate::upstream::counts::UpstreamMetrics;
use crate::upstream::dial::{DialRoom, system_resolver};
use crate::upstream::events::UpstreamEvents;

/// Whoever runs a UDP route hands it these watchers (server/wiring.rs builds them).
#[derive(Debug, Clone)]
pub struct DatagramWatchers {
    /// Told of flows and drops.
    pub flows: Arc<dyn FlowEvents>,
    /// Told of upstream failures and back-offs, as for a TCP route.
    pub upstream: Arc<dyn UpstreamEvents>,
    /// Each upstream's counters (its `active` steers `least-connections`), in order.
    pub upstream_counts: Vec<Arc<UpstreamMetrics>>,
}

/// One UDP route, shared by its receive thread and its flows' threads.
#[derive(Debug)]
pub struct DatagramRoute {
    /// The route's settings.
    pub config: Config,
    /// Its upstreams: policy, back-off, failover, as for TCP.
    pub upstreams: Upstreams,
    /// Its open flows.
    pub flows: Arc<Flows>,
    /// Its counters.
    pub counts: Arc<DatagramCounts>,
    /// Told of flows and drops.
    pub events: Arc<dyn FlowEvents>,
    /// How many flows the whole process can hold: each flow takes half a connection's
    /// share of the process-wide cap (one thread and one socket to a connection's two).
    pub capacity: Capacity,
    /// Where flow threads come from: one parked after an earlier flow (for up to
    /// `thread-keep-alive`), else a new one with the route's `stack-size`, as for TCP.
    pub threads: Arc<ThreadPool>,
}

impl DatagramRoute {
    /// The route of `config`, listening at `listen`, watched by `watchers`.
    pub fn new(config: Config, listen: SocketAddr, watchers: DatagramWatchers) -> DatagramRoute {
        let counts = Arc::new(DatagramCounts::default());
        let flows = Flows::new(config.max_flows, config.max_flows_per_client, Arc::clone(&counts));
        DatagramRoute::with_table(config, listen, watchers, (Arc::new(flows), counts), None)
    }

    /// The next generation of this route after a reload kept it with `config`: new
    /// settings, upstreams and watchers for the flows made from now on, and the same flow
    /// table and counts (open flows stay, under the generation they started with), and the
    /// same thread pool unless `stack-size` or `thread-keep-alive` changed.
    pub fn reloaded(
        &self,
        config: Config,
        listen: SocketAddr,
        watchers: DatagramWatchers,
    ) -> DatagramRoute {
        self.flows.set_limits(config.max_flows, config.max_flows_per_client);
        let (flows, counts) = (Arc::clone(&self.flows), Arc::clone(&self.counts));
        let same_threads = config.stack_size == self.config.stack_size
            && config.thread_keep_alive == self.config.thread_keep_alive;
        let threads = same_threads.then(|| Arc::clone(&self.threads));
        DatagramRoute::with_table(config, listen, watchers, (flows, counts), threads)
    }

    /// A route of `config` with this flow table and counts, and this thread pool or else
    /// a new one.
    fn with_table(
        config: Config,
        listen: SocketAddr,
        watchers: DatagramWatchers,
        (flows, counts): (Arc<Flows>, Arc<DatagramCounts>),
        threads: Option<Arc<ThreadPool>>,
    ) -> DatagramRoute {
        let capacity = flow_capacity(&config);
        // No health check runs on a UDP route (a UDP upstream takes no connection to check),
        // so, as on a TCP route without checks, a closed port's back-off marks it down.
        let unchecked = Config { health_check: Duration::ZERO, ..config.clone() };
        let threads = threads.unwrap_or_else(|| {
            let (stack, keep_alive) = (config.stack_size, config.thread_keep_alive);
            let pool = ThreadPool::new(stack, no_hook, keep_alive, capacity.max_parked);
            Arc::new(pool.named("tcprelay-flow"))
        });
        DatagramRoute {
            upstreams: Upstreams::new(
                &unchecked,
                system_resolver,
                &watchers.upstream_counts,
                Some(listen),
                DialRoom::of(&capacity),
                watchers.upstream,
            ),
            flows,
            counts,
            events: watchers.flows,
            capacity,
            threads,
            config,
        }
    }

    /// Counts a dropped datagram and tells the watchers.
    pub fn dropped(&self, cause: DropCause, client: SocketAddr, detail: &dyn Display) {
        self.counts.dropped(cause);
        self.events.dropped(cause, client, detail);
    }
}

/// The process's capacity counted in connections whose threads have the route's stack and
/// whose buffers are a flow's receive buffer; a flow is half of one.
fn flow_capacity(config: &Config) -> Capacity {
    let snapshot = capacity::snapshot();
    let cost = Cost::of(config.stack_size, RECEIVE_BUFFER, snapshot.signal_stack);
    capacity::fit(snapshot, &cost, capacity::reserve())
}
