//! The routes a [`Server`](crate::Server) runs now, and their accept threads: what a drain
//! stops, what `/metrics` and `/status` read, and what a reload changes.
//!
//! A reload (server/reload.rs) works out what to change; this module applies it under one
//! lock, so that a drain and a reload never cross: once a drain has begun, a reload is
//! refused, and every route a reload added is drained with the rest.
//!
//! A drain with a grace (`drain-grace`) first only says so (`/healthz` answers 503) and
//! keeps accepting for the grace, on a thread of its own, then drains: a load balancer or a
//! Kubernetes Service takes seconds to stop sending to an endpoint that turned unready, and
//! clients sent meanwhile are served rather than refused.

use std::fmt::Write as _;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::counter::Counter;
use crate::datagram::{DatagramRelay, DatagramStop};

use crate::lock::{lock, wait, wait_timeout};
use crate::net::address::Address;
use crate::ops::metrics::RouteMetrics;
use crate::relay::accept::{Relay, StopHandle};
use crate::relay::current::CurrentRoute;
use crate::settings::config::Config;

/// The stack of each accept loop's thread; `capacity.rs` counts it.
const ACCEPT_STACK_SIZE: usize = 256 * 1024;

/// The stack of the thread that waits out a drain's grace: it only waits.
const GRACE_STACK_SIZE: usize = 64 * 1024;

/// The routes of a server and the threads that accept for them.
#[derive(Debug)]
pub(crate) struct Routes {
    state: Mutex<State>,
    /// Signalled when an accept thread ends.
    thread_ended: Condvar,
    /// Signalled when a stop cuts a drain's grace short.
    grace_cut: Condvar,
    /// Reloads applied and refused, for `/metrics`.
    pub reloads_applied: Counter,
    pub reloads_refused: Counter,
}

#[derive(Debug)]
struct State {
    /// The routes accepting clients, in the order of the configuration.
    serving: Vec<Served>,
    /// Routes a reload removed, draining until their accept thread ends.
    leaving: Vec<Served>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The UDP routes' handles: a drain or a stop reaches them with the TCP routes.
    datagram: Vec<DatagramStop>,
    /// Accept threads that have not ended yet.
    running: usize,
    /// A drain or stop has begun.
    stopping: bool,
    /// A stop has begun: a drain's grace, if one is running, ends now.
    stopped: bool,
    /// A drain's grace is running: routes keep accepting until it ends.
    in_grace: bool,
    drain_timeout: Duration,
    drain_grace: Duration,
    /// Names the accept threads: `tcprelay-accept-N`.
    next_thread: usize,
}

/// One listener: the settings of its routes as configured (a reload compares against
/// them) and its handles.
#[derive(Debug)]
struct Served {
    /// Its accept thread's number.
    id: usize,
    /// Its routes, in the order of the configuration: one, or several that differ by `sni=`.
    configs: Vec<Config>,
    listen: Address,
    current: Arc<CurrentRoute>,
    stop: StopHandle,
}

/// A listener as a reload leaves it.
#[derive(Debug)]
pub(crate) enum Next {
    /// The listener at this index of [`Routes::configs`] is kept, with these routes from
    /// now on; `true` if they differ from its old ones.
    Keep(usize, Vec<Config>, bool),
    /// A new listener, already bound, and its routes.
    Add(Relay, Vec<Config>),
}

impl Routes {
    /// No routes yet; a drain keeps accepting for `drain_grace`, then lets connections
    /// finish for `drain_timeout`.
    pub fn new(drain_timeout: Duration, drain_grace: Duration) -> Routes {
        let state = State {
            serving: Vec::new(),
            leaving: Vec::new(),
            threads: Vec::new(),
            datagram: Vec::new(),
            running: 0,
            stopping: false,
            stopped: false,
            in_grace: false,
            drain_timeout,
            drain_grace,
            next_thread: 0,
        };
        Routes {
            state: Mutex::new(state),
            thread_ended: Condvar::new(),
            grace_cut: Condvar::new(),
            reloads_applied: Counter::new(0),
            reloads_refused: Counter::new(0),
        }
    }

    /// Runs each relay's accept loop on a thread of its own.
    ///
    /// # Errors
    /// A thread that cannot be created; the routes already started are stopped then.
    pub fn start(self: &Arc<Self>, relays: Vec<(Relay, Vec<Config>)>) -> io::Result<()> {
        let mut state = self.lock();
        for (relay, configs) in relays {
            if let Err(error) = self.spawn(&mut state, relay, configs) {
                // Half a server is a surprise: stop the routes already running.
                state.stopping = true;
                state.serving.iter().for_each(|route| route.stop.stop());
                return Err(error);
            }
        }
        Ok(())
    }

    /// Runs each UDP route's receive loop on a thread of its own, counted and joined as an
    /// accept thread is.
    ///
    /// # Errors
    /// A thread that cannot be created; every route already started is stopped then.
    pub fn start_datagram(self: &Arc<Self>, relays: Vec<DatagramRelay>) -> io::Result<()> {
        let mut state = self.lock();
        for relay in relays {
            let id = state.next_thread;
            let stop = relay.stop_handle();
            let routes = Arc::clone(self);
            let builder = thread::Builder::new().name(format!("tcprelay-udp-{id}"));
            let spawned = builder.stack_size(ACCEPT_STACK_SIZE).spawn(move || {
                let _ended = ThreadEnded(&routes, id); // counted even if the loop panics
                relay.serve()
            });
            let thread = match spawned {
                Ok(thread) => thread,
                Err(error) => {
                    state.stopping = true;
                    state.serving.iter().for_each(|route| route.stop.stop());
                    state.datagram.iter().for_each(DatagramStop::stop);
                    return Err(error);
                }
            };
            state.next_thread += 1;
            state.running += 1;
            state.threads.push(thread);
            if state.stopping && (!state.in_grace || state.stopped) {
                stop.drain(state.drain_timeout);
            }
            state.datagram.push(stop);
        }
        Ok(())
    }

    fn spawn(
        self: &Arc<Self>,
        state: &mut State,
        relay: Relay,
        configs: Vec<Config>,
    ) -> io::Result<()> {
        let id = state.next_thread;
        let served = Served {
            id,
            configs,
            listen: relay.listen_addr(),
            current: relay.current(),
            stop: relay.stop_handle(),
        };
        let routes = Arc::clone(self);
        let name = format!("tcprelay-accept-{id}");
        // A small stack: the loop is shallow, and under a memory limit every megabyte counts
        // (see `capacity.rs`).
        let builder = thread::Builder::new().name(name).stack_size(ACCEPT_STACK_SIZE);
        let thread = builder.spawn(move || {
            let _ended = ThreadEnded(&routes, id); // counted even if the loop panics
            relay.serve()
        })?;
        state.next_thread += 1;
        state.running += 1;
        state.threads.push(thread);
        if state.stopping && (!state.in_grace || state.stopped) {
            // A drain or stop came before this route started (say, right after `bind`). In
            // a drain's grace, the route accepts like the others until the grace ends.
            served.stop.drain(state.drain_timeout);
        }
        state.serving.push(served);
        Ok(())
    }

    /// Waits until every accept thread has ended (after a drain or stop), then joins them.
    ///
    /// # Errors
    /// The first error an accept loop returned, or a panic in one.
    pub fn wait(&self) -> io::Result<()> {
        let mut state = self.lock();
        while state.running > 0 {
            state = wait(&self.thread_ended, state);
        }
        let threads = std::mem::take(&mut state.threads);
        drop(state);
        let mut result = Ok(());
        for thread in threads {
            let served = thread.join().unwrap_or_else(|_| {
                Err(io::Error::other("an accept loop panicked (a bug in tcprelay)"))
            });
            if result.is_ok() {
                result = served;
            }
        }
        result
    }

    /// Drains every route, those a reload removed too (see [`StopHandle::drain`]); with a
    /// grace, only after it (see the [module docs](self)). Only the first call does anything.
    pub fn drain(self: &Arc<Self>) {
        let mut state = self.lock();
        if state.stopping {
            return;
        }
        state.stopping = true;
        let grace = state.drain_grace;
        if grace.is_zero() {
            drain_now(&state);
            return;
        }
        let routes = Arc::clone(self);
        let builder = thread::Builder::new().name("tcprelay-drain-grace".into());
        match builder.stack_size(GRACE_STACK_SIZE).spawn(move || routes.drain_after(grace)) {
            // Joined by `wait`, which cannot return before it has drained every route.
            Ok(thread) => {
                state.in_grace = true;
                state.threads.push(thread);
            }
            // Without the thread there is no grace: drain at once rather than never.
            Err(_) => drain_now(&state),
        }
    }

    /// Waits out the grace, unless a stop cuts it short, then drains every route.
    fn drain_after(&self, grace: Duration) -> io::Result<()> {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if state.stopped || left.is_zero() {
                break;
            }
            state = wait_timeout(&self.grace_cut, state, left);
        }
        state.in_grace = false;
        if !state.stopped {
            drain_now(&state);
        }
        Ok(())
    }

    /// Stops every route now, closing live connections; ends a drain's grace.
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopping = true;
        state.stopped = true;
        state.serving.iter().chain(&state.leaving).for_each(|route| route.stop.stop());
        state.datagram.iter().for_each(DatagramStop::stop);
        self.grace_cut.notify_all();
    }

    /// Whether a drain or stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// How long a drain lets connections finish.
    pub fn drain_timeout(&self) -> Duration {
        self.lock().drain_timeout
    }

    /// How long a drain keeps accepting first.
    pub fn drain_grace(&self) -> Duration {
        self.lock().drain_grace
    }

    /// Each route's counters: the serving routes in order, then those still draining after
    /// a reload removed them.
    pub fn metrics(&self) -> Vec<Arc<RouteMetrics>> {
        let state = self.lock();
        let routes = state.serving.iter().chain(&state.leaving);
        routes.flat_map(|route| route.current.get().all_metrics()).collect()
    }

    /// The serving listeners' routes as configured and their bound addresses, in order,
    /// for a reload to compare with; `None` once a drain has begun.
    pub fn configs(&self) -> Option<Vec<(Vec<Config>, Address)>> {
        let state = self.lock();
        let configs =
            state.serving.iter().map(|route| (route.configs.clone(), route.listen.clone()));
        (!state.stopping).then(|| configs.collect())
    }

    /// Applies a reload: `next` becomes the routes in order (new ones start accepting,
    /// kept ones get their new settings), every serving route not kept starts draining,
    /// and drains take `drain_grace` and `drain_timeout` from now on.
    ///
    /// # Errors
    /// `draining` once a drain has begun, or an accept thread that cannot be created;
    /// then nothing has changed (the new routes are closed again).
    pub fn apply(
        self: &Arc<Self>,
        next: Vec<Next>,
        drain_timeout: Duration,
        drain_grace: Duration,
    ) -> Result<(), String> {
        let mut state = self.lock();
        if state.stopping {
            return Err("the relay is draining".to_string());
        }
        // New routes first: each one's thread is the only step that can fail.
        let before = state.serving.len();
        let mut order = Vec::new();
        for next in next {
            match next {
                Next::Keep(index, configs, changed) => order.push(Ok((index, configs, changed))),
                Next::Add(relay, configs) => {
                    if let Err(error) = self.spawn(&mut state, relay, configs) {
                        // Undo: the routes just started stop again, closing their listeners.
                        for added in state.serving.drain(before..).collect::<Vec<_>>() {
                            added.stop.stop();
                            state.leaving.push(added);
                        }
                        return Err(format!("cannot start an accept thread: {error}"));
                    }
                    order.push(Err(state.serving.len() - 1 - before));
                }
            }
        }
        let mut added: Vec<Option<Served>> =
            state.serving.split_off(before).into_iter().map(Some).collect();
        let mut old: Vec<Option<Served>> = state.serving.drain(..).map(Some).collect();
        let mut serving = Vec::new();
        for slot in order {
            let route = match slot {
                Ok((index, configs, changed)) => {
                    let Some(mut route) = old.get_mut(index).and_then(Option::take) else {
                        continue;
                    };
                    if changed {
                        route.current.reload(configs.clone());
                    }
                    route.configs = configs;
                    Some(route)
                }
                Err(index) => added.get_mut(index).and_then(Option::take),
            };
            serving.extend(route);
        }
        for removed in old.into_iter().flatten() {
            removed.stop.drain(drain_timeout);
            state.leaving.push(removed);
        }
        state.serving = serving;
        state.drain_timeout = drain_timeout;
        state.drain_grace = drain_grace;
        Ok(())
    }

    /// What `GET /status` answers: each route (its name, listen address, live connections)
    /// and each of its upstreams with its state.
    pub fn status(&self) -> String {
        let state = self.lock();
        let mut text = String::new();
        let routes = state.serving.iter().map(|r| (r, "serving"));
        for (route, doing) in routes.chain(state.leaving.iter().map(|r| (r, "leaving"))) {
            let generation = route.current.get();
            let metrics = generation.metrics.snapshot();
            let open = generation.connections.open_count();
            let _ = writeln!(
                text,
                "route {} listen={} connections={open} state={doing}",
                metrics.route, route.listen
            );
            for upstream in &metrics.upstreams {
                let up = if upstream.up { "up" } else { "down" };
                let _ = writeln!(
                    text,
                    "  upstream {} {up} connections={}",
                    upstream.upstream, upstream.active
                );
            }
        }
        text
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change of `State` is a push, a drain or a field store: a panic cannot leave
        // it half-done, so a poisoned lock is still good.
        lock(&self.state)
    }
}

/// Drains every route, those a reload removed too, under the drain timeout.
fn drain_now(state: &State) {
    let timeout = state.drain_timeout;
    state.serving.iter().chain(&state.leaving).for_each(|route| route.stop.drain(timeout));
    state.datagram.iter().for_each(|route| route.drain(timeout));
}

/// Counts the end of the accept thread with this number and wakes [`Routes::wait`],
/// however the thread ends.
struct ThreadEnded<'a>(&'a Routes, usize);

impl Drop for ThreadEnded<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.running -= 1;
        // A route a reload removed has nothing left to show once its thread is done.
        state.leaving.retain(|route| route.id != self.1);
        drop(state);
        self.0.thread_ended.notify_all();
    }
}
