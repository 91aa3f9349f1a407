//! The route a listener serves now: [`CurrentRoute`], which a reload swaps.
//!
//! A reload that keeps a route's listen address keeps its listener and its accept loop, so
//! no client of it is ever refused. What changes is the [`Route`] the loop hands to each
//! client it accepts: the loop asks for the current one once per client, and a reload
//! replaces it with the next generation ([`Route::reloaded`]). A connection holds the
//! `Arc<Route>` it started with until it ends, so live connections finish under the
//! settings they started with, and the old generation is freed when its last one ends.
//!
//! The health checks belong to a generation (they check its upstreams, and those of the
//! routes sharing its listener by `sni=`, at its interval): a reload tells the old
//! generation's checks to stop and starts the new one's, and the end of the accept loop
//! tells them to stop too; neither waits for a check in progress (see upstream/health.rs).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::lock::lock;
use crate::relay::route::Route;
use crate::relay::server_names;
use crate::settings::config::Config;
use crate::upstream::health::{self, HealthChecks};

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
    /// The current generation's checks: its own, and those of each route sharing it.
    checks: Vec<HealthChecks>,
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

    /// Makes `configs` the routes of every client accepted from now on (see the module
    /// docs): the listener's own route first, then those sharing it by `sni=`, if any. The
    /// health checks restart for the new generation.
    pub fn reload(&self, mut configs: Vec<Config>) {
        let others = configs.split_off(1.min(configs.len()));
        let Some(first) = configs.pop() else {
            return; // a listener always has a route: nothing to reload without one
        };
        let (old, new) = {
            let mut current = self.lock_route();
            let new = Arc::new(server_names::reloaded(&current, first, others));
            (std::mem::replace(&mut *current, Arc::clone(&new)), new)
        };
        if !Arc::ptr_eq(&old.threads, &new.threads) {
            // Threads parked in the old pool would otherwise wait out their keep-alive.
            old.threads.release_parked();
        }
        let mut health = self.lock_health();
        if health.serving {
            // The old checks are told to stop as they are dropped.
            health.checks = start_health_checks(&new);
        }
    }

    /// The accept loop starts: the current generation's health checks start too.
    pub fn start_serving(&self) {
        let route = self.get();
        let mut health = self.lock_health();
        health.serving = true;
        health.checks = start_health_checks(&route);
    }

    /// The accept loop has ended: tells every health check to stop, without waiting for
    /// one in progress (see upstream/health.rs).
    pub fn stop_serving(&self) {
        let mut health = self.lock_health();
        health.serving = false;
        health.checks.clear(); // dropped: told to stop
    }

    fn lock_route(&self) -> MutexGuard<'_, Arc<Route>> {
        // Replacing an `Arc` cannot be left half-done by a panic: a poisoned lock is good.
        lock(&self.route)
    }

    fn lock_health(&self) -> MutexGuard<'_, Health> {
        lock(&self.health)
    }
}

/// Starts the health checks of `route` and of each route sharing its listener, for those
/// whose `--health-check` asks for them. If a route's threads cannot be created it serves
/// without checks (the passive back-off still works), and says so.
fn start_health_checks(route: &Arc<Route>) -> Vec<HealthChecks> {
    let sharing = route.server_names.iter().flat_map(|names| names.others());
    std::iter::once(route).chain(sharing).filter_map(start_checks_of_one).collect()
}

fn start_checks_of_one(route: &Arc<Route>) -> Option<HealthChecks> {
    let every = route.config.health_check;
    if every.is_zero() {
        return None;
    }
    let timeout = health::check_timeout(every, route.config.connect_timeout);
    let checked = Arc::clone(route);
    let started = HealthChecks::start(route.upstreams.len(), move |share, stop| {
        health::run(&checked.upstreams, share, every, timeout, stop);
    });
    match started {
        Ok(checks) => Some(checks),
        Err(error) => {
            route.observer.route_warn("cannot start health checks", &[("error", &error)]);
            None
        }
    }
}
