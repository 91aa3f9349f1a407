//! The routes a [`Server`](crate::Server) runs now, and their accept threads (a UDP
//! route's receive thread is one too): what a drain stops, what `/metrics` and `/status`
//! read, and what a reload changes.
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
use crate::datagram::DatagramStop;

use crate::lock::{lock, wait, wait_timeout};
use crate::net::address::{Address, UDP_PREFIX};
use crate::ops::metrics::RouteMetrics;
use crate::ops::udp_metrics::UdpSnapshot;
use crate::relay::accept::StopHandle;
use crate::relay::current::CurrentRoute;
use crate::server::wiring::{self, Bound};
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
    handles: Handles,
}

/// How the server reaches a listener's loop: a TCP listener's or a UDP route's.
#[derive(Debug)]
enum Handles {
    /// A TCP or Unix socket listener: the route generation its accept loop hands out, and
    /// its stop handle.
    Stream(Arc<CurrentRoute>, StopHandle),
    /// A UDP route: its stop, drain and reload handle, and its upstreams' counters.
    Datagram(DatagramStop, Arc<RouteMetrics>),
}

impl Handles {
    fn stop(&self) {
        match self {
            Handles::Stream(_, stop) => stop.stop(),
            Handles::Datagram(stop, _) => stop.stop(),
        }
    }

    fn drain(&self, timeout: Duration) {
        match self {
            Handles::Stream(_, stop) => stop.drain(timeout),
            Handles::Datagram(stop, _) => stop.drain(timeout),
        }
    }

    /// A reload removed the listener: a TCP one drains under `timeout`; a UDP route ends
    /// its flows now (`reason=removed`): it has no connection to finish, and a client's
    /// next datagram, refused by the closed port, tells it to look elsewhere.
    fn remove(&self, timeout: Duration) {
        match self {
            Handles::Stream(_, stop) => stop.drain(timeout),
            Handles::Datagram(stop, _) => stop.remove(),
        }
    }

    /// A reload kept the listener with `configs`, which differ from its old ones: the
    /// clients (TCP) or flows (UDP) from now on get them.
    fn reload(&self, mut configs: Vec<Config>, listen: &Address) {
        match self {
            Handles::Stream(current, _) => current.reload(configs),
            Handles::Datagram(stop, upstream_metrics) => {
                let (Some(config), Address::Tcp(local)) = (configs.pop(), listen) else {
                    return; // a UDP route is one route on an IP address
                };
                let label = wiring::datagram_label(&config, *local);
                upstream_metrics.reloaded(&label, config.upstreams());
                let watchers = wiring::watch_datagram(&config, upstream_metrics);
                stop.reload(config, watchers);
            }
        }
    }
}

/// A listener as a reload leaves it.
#[derive(Debug)]
pub(crate) enum Next {
    /// The listener at this index of [`Routes::configs`] is kept, with these routes from
    /// now on; `true` if they differ from its old ones.
    Keep(usize, Vec<Config>, bool),
    /// A new listener, already bound, and its routes.
    Add(Bound, Vec<Config>),
}

impl Routes {
    /// No routes yet; a drain keeps accepting for `drain_grace`, then lets connections
    /// finish for `drain_timeout`.
    pub fn new(drain_timeout: Duration, drain_grace: Duration) -> Routes {
        let state = State {
            serving: Vec::new(),
            leaving: Vec::new(),
            threads: Vec::new(),
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

    /// Runs each listener's loop on a thread of its own: a TCP listener's accept loop, a
    /// UDP route's receive loop.
    ///
    /// # Errors
    /// A thread that cannot be created; the routes already started are stopped then.
    pub fn start(self: &Arc<Self>, listeners: Vec<(Bound, Vec<Config>)>) -> io::Result<()> {
        let mut state = self.lock();
        for (listener, configs) in listeners {
            if let Err(error) = self.spawn(&mut state, listener, configs) {
                // Half a server is a surprise: stop the routes already running.
                state.stopping = true;
                state.serving.iter().for_each(|route| route.handles.stop());
                return Err(error);
            }
        }
        Ok(())
    }

    fn spawn(
        self: &Arc<Self>,
        state: &mut State,
        listener: Bound,
        configs: Vec<Config>,
    ) -> io::Result<()> {
        let id = state.next_thread;
        let listen = listener.listen_addr();
        let (handles, name) = match &listener {
            Bound::Stream(relay) => (
                Handles::Stream(relay.current(), relay.stop_handle()),
                format!("tcprelay-accept-{id}"),
            ),
            Bound::Datagram(relay, upstream_metrics) => (
                Handles::Datagram(relay.stop_handle(), Arc::clone(upstream_metrics)),
                format!("tcprelay-udp-{id}"),
            ),
        };
        let served = Served { id, configs, listen, handles };
        let routes = Arc::clone(self);
        // A small stack: the loop is shallow, and under a memory limit every megabyte counts
        // (see `capacity.rs`).
        let builder = thread::Builder::new().name(name).stack_size(ACCEPT_STACK_SIZE);
        let thread = builder.spawn(move || {
            let _ended = ThreadEnded(&routes, id); // counted even if the loop panics
            match listener {
                Bound::Stream(relay) => relay.serve(),
                Bound::Datagram(relay, _) => relay.serve(),
            }
        })?;
        state.next_thread += 1;
        state.running += 1;
        state.threads.push(thread);
        if state.stopping && (!state.in_grace || state.stopped) {
            // A drain or stop came before this route started (say, right after `bind`). In
            // a drain's grace, the route accepts like the others until the grace ends.
            served.handles.drain(state.drain_timeout);
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
        state.serving.iter().chain(&state.leaving).for_each(|route| route.handles.stop());
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
        let tcp = routes.filter_map(|route| match &route.handles {
            Handles::Stream(current, _) => Some(current.get().all_metrics()),
            Handles::Datagram(..) => None,
        });
        tcp.flatten().collect()
    }

    /// Each UDP route's counters now, in the same order as [`metrics`](Self::metrics).
    pub fn udp_metrics(&self) -> Vec<UdpSnapshot> {
        let state = self.lock();
        let routes = state.serving.iter().chain(&state.leaving);
        let udp = routes.filter_map(|route| match &route.handles {
            Handles::Stream(..) => None,
            Handles::Datagram(stop, upstream_metrics) => {
                Some(UdpSnapshot::read(upstream_metrics.route(), &stop.route().counts))
            }
        });
        udp.collect()
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
                            added.handles.stop();
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
                        route.handles.reload(configs.clone(), &route.listen);
                    }
                    route.configs = configs;
                    Some(route)
                }
                Err(index) => added.get_mut(index).and_then(Option::take),
            };
            serving.extend(route);
        }
        for removed in old.into_iter().flatten() {
            removed.handles.remove(drain_timeout);
            state.leaving.push(removed);
        }
        state.serving = serving;
        state.drain_timeout = drain_timeout;
        state.drain_grace = drain_grace;
        Ok(())
    }

    /// What `GET /status` answers: each route (its name, listen address, live connections,
    /// or a UDP route's open flows) and each of its upstreams with its state.
    pub fn status(&self) -> String {
        let state = self.lock();
        let mut text = String::new();
        let routes = state.serving.iter().map(|r| (r, "serving"));
        for (route, doing) in routes.chain(state.leaving.iter().map(|r| (r, "leaving"))) {
            // A TCP route counts connections; a UDP route, flows (`udp:` before its address).
            let (metrics, listen, open, what) = match &route.handles {
                Handles::Stream(current, _) => {
                    let generation = current.get();
                    let open = generation.connections.open_count();
                    (generation.metrics.snapshot(), route.listen.to_string(), open, "connections")
                }
                Handles::Datagram(stop, upstream_metrics) => {
                    let open = stop.route().flows.len();
                    let listen = format!("{UDP_PREFIX}{}", route.listen);
                    (upstream_metrics.snapshot(), listen, open, "flows")
                }
            };
            let _ = writeln!(
                text,
                "route {} listen={listen} {what}={open} state={doing}",
                metrics.route
            );
            for upstream in &metrics.upstreams {
                let up = if upstream.up { "up" } else { "down" };
                let _ = writeln!(
                    text,
                    "  upstream {} {up} {what}={}",
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
    state.serving.iter().chain(&state.leaving).for_each(|route| route.handles.drain(timeout));
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
