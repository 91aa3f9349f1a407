//! [`ServerHandle`]: drains or stops every route of a [`Server`](crate::Server) from any
//! thread. Its own module, below both the server and the admin endpoint (which holds one for
//! `POST /drain`), so that neither imports the other back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::relay::accept::StopHandle;

/// Drains or stops every route of a [`Server`](crate::Server), from any thread (the admin endpoint uses one).
#[derive(Clone, Debug)]
pub struct ServerHandle {
    stops: Vec<StopHandle>,
    drain_timeout: Duration,
    draining: Arc<AtomicBool>,
}

impl ServerHandle {
    /// A handle over these routes' stop handles, none draining yet.
    pub(crate) fn new(stops: Vec<StopHandle>, drain_timeout: Duration) -> ServerHandle {
        ServerHandle { stops, drain_timeout, draining: Arc::new(AtomicBool::new(false)) }
    }

    /// Stops accepting on every route and lets live connections finish for up to the
    /// configured drain timeout, then closes the rest; [`Server::serve`](crate::Server::serve) returns when all
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
