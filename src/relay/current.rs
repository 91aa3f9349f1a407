//! The route a listener serves now: [`CurrentRoute`], which a reload swaps.
//!
//! A reload that keeps a route's listen address keeps its listener and its accept loop, so
//! no client of it is ever refused. What changes is the [`Route`] the loop hands to each
//! client it accepts: the loop asks for the current one once per client, and a reload
//! replaces it with the next generation ([`Route::reloaded`]). A connection holds the
//! `Arc<Route>` it started with until it ends, so live connections finish under the
//! settings they started with, and the old generation is freed when its last one ends.
//!
//! The health checks belong to a generation (they check its upstreams, at its interval):
//! a reload stops the old generation's checks and starts the new one's.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::relay::route::Route;
use crate::settings::config::Config;
use crate::upstream::health::{self, HealthCheckThread};

/// The generation of a route that new clients get; see the [module docs](self).
#[derive(Debug)]
pub struct CurrentRoute {
    route: Mutex<Arc<Route>>,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Whether the accept loop runs: health checks run only while it does.
    serving: bool,
    checks: Option<HealthCheckThread>,
}

impl CurrentRoute {
    /// `route` as the first generation.
    pub fn new(route: Arc<Route>) -> CurrentRoute {
        CurrentRoute { route: Mutex::new(route), health: Mutex::default() }
    }

    /// The generation a client accepted now gets.
    pub fn get(&self) -> Arc<Route> {
        Arc::clone(&self.lock_route())
    }

    /// Makes `config` the settings of every client accepted from now on (see the module
    /// docs), and restarts the health checks for the new generation.
    pub fn reload(&self, config: Config) {
        let (old, new) = {
            let mut current = self.lock_route();
            let new = Arc::new(current.reloaded(config));
            (std::mem::replace(&mut *current, Arc::clone(&new)), new)
        };
        if !Arc::ptr_eq(&old.threads, &new.threads) {
            // Threads parked in the old pool would otherwise wait out their keep-alive.
            old.threads.release_parked();
        }
        let stopped = {
            let mut health = self.lock_health();
            match health.serving {
                true => std::mem::replace(&mut health.checks, start_health_checks(&new)),
                false => None,
            }
        };
        drop(stopped); // joins the old generation's checks, outside the lock
    }

    /// The accept loop starts: the current generation's health checks start too.
    pub fn start_serving(&self) {
        let route = self.get();
        let mut health = self.lock_health();
        health.serving = true;
        health.checks = start_health_checks(&route);
    }

    /// The accept loop has ended: stops and joins the health-check thread.
    pub fn stop_serving(&self) {
        let stopped = {
            let mut health = self.lock_health();
            health.serving = false;
            health.checks.take()
        };
        drop(stopped);
    }

    fn lock_route(&self) -> MutexGuard<'_, Arc<Route>> {
        // Replacing an `Arc` cannot be left half-done by a panic: a poisoned lock is good.
        self.route.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the route's health-check thread if `--health-check` asks for one. If the thread
/// cannot be created the route serves without checks (the passive back-off still works),
/// and says so.
pub fn start_health_checks(route: &Arc<Route>) -> Option<HealthCheckThread> {
    let every = route.config.health_check;
    if every.is_zero() {
        return None;
    }
    let checked = Arc::clone(route);
    let started = HealthCheckThread::start(move |stop| {
        let timeout = checked.config.connect_timeout;
        health::run(&checked.upstreams, &checked.observer, every, timeout, stop);
    });
    match started {
        Ok(thread) => Some(thread),
        Err(error) => {
            route.observer.route_warn("cannot start health checks", &[("error", &error)]);
            None
        }
    }
}
