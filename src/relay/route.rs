//! One route at run time: what its accept loop shares with every connection thread and with
//! the [`StopHandle`](crate::relay::StopHandle)s: the settings, the log, the open connections,
//! the upstreams, the counters and the thread pool.

use std::sync::Arc;

use crate::limits::capacity::Capacity;
use crate::limits::open_connections::OpenConnections;
use crate::limits::per_client::PerClientLimit;
use crate::limits::threads::ThreadPool;
use crate::net::stream::Address;
use crate::ops::metrics::RouteMetrics;
use crate::ops::observe::Observer;
use crate::settings::config::Config;
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
