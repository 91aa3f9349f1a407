//! [`ServerHandle`]: drains, stops or reloads a [`Server`](crate::Server) from any thread.
//! Its own module, below both the server and the admin endpoint (which holds one for
//! `POST /drain`, `POST /reload` and `GET /status`), so that neither imports the other back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ops::admin::Steer;
use crate::ops::metrics::RouteMetrics;
use crate::ops::udp_metrics::UdpSnapshot;
use crate::server::routes::Routes;

/// What [`ServerHandle::reload`] runs: reads the config file again and applies it (see
/// server/reload.rs), answering what changed or why it was refused.
pub(crate) type Reload = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Drains, stops or reloads a [`Server`](crate::Server), from any thread (the admin
/// endpoint uses one).
#[derive(Clone)]
pub struct ServerHandle {
    routes: Arc<Routes>,
    reload: Option<Reload>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("routes", &self.routes)
            .field("reloads", &self.reload.is_some())
            .finish()
    }
}

impl ServerHandle {
    /// A handle over these routes, reloading with `reload` if the server has a config file.
    pub(crate) fn new(routes: Arc<Routes>, reload: Option<Reload>) -> ServerHandle {
        ServerHandle { routes, reload }
    }

    /// Stops accepting on every route and lets live connections finish for up to the
    /// configured drain timeout, then closes the rest; [`Server::serve`](crate::Server::serve) returns when all
    /// are done. With a drain grace, new clients are still accepted for that long first
    /// ([`is_draining`](Self::is_draining) is true from the start). Returns at once;
    /// calling it again changes nothing.
    pub fn drain(&self) {
        self.routes.drain();
    }

    /// Stops every route now, closing live connections; also cuts a drain short.
    pub fn stop(&self) {
        self.routes.stop();
    }

    /// Whether a drain or stop has begun (`GET /healthz` then answers 503).
    pub fn is_draining(&self) -> bool {
        self.routes.is_stopping()
    }

    /// The drain timeout the server was configured with (or the last reload set).
    pub fn drain_timeout(&self) -> Duration {
        self.routes.drain_timeout()
    }

    /// The drain grace the server was configured with (or the last reload set).
    pub fn drain_grace(&self) -> Duration {
        self.routes.drain_grace()
    }

    /// Reads the config file again and applies it without a restart: routes whose listen
    /// address is unchanged keep their listener (no client is refused), changed settings
    /// apply to connections accepted from now on, new routes start listening, removed
    /// routes drain. Returns what changed, in one line.
    ///
    /// # Errors
    /// Why the reload was refused, with nothing changed: the file's first mistake as
    /// `FILE:LINE:COLUMN: message`, a new listener that cannot bind, a drain in progress,
    /// or a server whose routes did not come from a config file.
    pub fn reload(&self) -> Result<String, String> {
        match &self.reload {
            Some(reload) => reload(),
            None => {
                self.routes.reloads_refused.fetch_add(1);
                Err("nothing to reload: the routes were not read from a config file \
                     (start with --config FILE)"
                    .to_string())
            }
        }
    }

    /// Reloads applied and refused since start.
    pub fn reloads(&self) -> (u64, u64) {
        let applied = self.routes.reloads_applied.get();
        (applied, self.routes.reloads_refused.get())
    }

    /// Each route's live counters: the serving routes in order, then those a reload
    /// removed that are still draining.
    pub fn metrics(&self) -> Vec<Arc<RouteMetrics>> {
        self.routes.metrics()
    }

    /// Each UDP route's counters now: the serving routes in order, then those a reload
    /// removed whose flows are still ending.
    pub fn udp_metrics(&self) -> Vec<UdpSnapshot> {
        self.routes.udp_metrics()
    }

    /// Each route (name, listen address, live connections, serving or leaving) and each
    /// of its upstreams with its state, one line each: what `GET /status` answers.
    pub fn status(&self) -> String {
        self.routes.status()
    }
}

/// The admin endpoint steers the server through this handle.
impl Steer for ServerHandle {
    fn metrics(&self) -> Vec<Arc<RouteMetrics>> {
        ServerHandle::metrics(self)
    }

    fn udp_metrics(&self) -> Vec<UdpSnapshot> {
        ServerHandle::udp_metrics(self)
    }

    fn reloads(&self) -> (u64, u64) {
        ServerHandle::reloads(self)
    }

    fn is_draining(&self) -> bool {
        ServerHandle::is_draining(self)
    }

    fn drain_timeout(&self) -> Duration {
        ServerHandle::drain_timeout(self)
    }

    fn drain_grace(&self) -> Duration {
        ServerHandle::drain_grace(self)
    }

    fn drain(&self) {
        ServerHandle::drain(self);
    }

    fn status(&self) -> String {
        ServerHandle::status(self)
    }

    fn reload(&self) -> Result<String, String> {
        ServerHandle::reload(self)
    }
}
