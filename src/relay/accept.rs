//! The accept loop: [`Relay`] owns the listening socket and starts two threads per client.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::limits::map_limit;
use crate::limits::threads::{ThreadLife, ThreadPool, ThreadRole};
use crate::log::Log;
use crate::metrics::RouteMetrics;
use crate::net::stream::{self, Address, Listener};
use crate::observe::{Conn, Ending, Observer};
use crate::outcome::CloseReason;
use crate::relay::connection::{Connection, next_id};
use crate::relay::handle_conn::{self, handle_conn};
use crate::relay::route::Route;
use crate::teach::explain::Explain;
use crate::upstream::Upstreams;
use crate::upstream::health::{self, HealthCheckThread};

/// A relay with its listening socket bound, ready to [`serve`](Relay::serve).
///
/// Binding and serving are separate steps so a caller can learn the real address (when port
/// 0 was asked) and get a [`StopHandle`] before the accept loop starts blocking.
#[derive(Debug)]
pub struct Relay {
    listener: Listener,
    local_addr: SocketAddr,
    route: Arc<Route>,
}

impl Relay {
    /// Binds the listening socket (Go: `net.Listen("tcp", addr)`), or the Unix domain socket
    /// of [`Config::listen_unix`] (Go: `net.Listen("unix", path)`).
    ///
    /// # Errors
    /// `InvalidInput` naming the setting if [`Config::validate`] refuses the config; else
    /// the OS error, with the address in its message, if the address cannot be bound
    /// (in use, not a local address, permission denied for a low port or a directory).
    pub fn bind(config: Config) -> io::Result<Relay> {
        config.validate().map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let wanted = config.listen_address();
        let listener = Listener::bind(&wanted, config.listen_unix_mode).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on {wanted}: {error}"))
        })?;
        let listen_addr = listener.local_addr()?;
        let local_addr = match &listen_addr {
            Address::Tcp(addr) => *addr,
            Address::Unix(_) => config.listen,
        };
        let label =
            if config.name.is_empty() { listen_addr.to_string() } else { config.name.clone() };
        let metrics = Arc::new(RouteMetrics::with_upstreams(label.clone(), config.upstreams()));
        let route = Arc::new(Route {
            observer: Observer::new(
                Log::for_route(config.log_level, &label),
                Explain::new(config.explain),
                Arc::clone(&metrics),
            ),
            upstreams: Upstreams::new(&config, &metrics),
            metrics,
            max_connections: capped_max_connections(config.max_connections),
            threads: Arc::new(ThreadPool::new(
                config.stack_size,
                config.thread_hook,
                config.thread_keep_alive,
                MAX_PARKED_THREADS,
            )),
            config,
            connections: Arc::default(),
            listen_addr,
        });
        Ok(Relay { listener, local_addr, route })
    }

    /// The address the relay listens on, with the real port if port 0 was asked. For a
    /// Unix socket relay this is [`Config::listen`] unchanged; see [`Relay::listen_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the relay listens on, TCP or Unix (`unix:/path`).
    pub fn listen_addr(&self) -> Address {
        self.route.listen_addr.clone()
    }

    /// The route's counters (connections, bytes, close reasons), live: read them with
    /// [`RouteMetrics::snapshot`]. The label is [`Config::name`], or the listen address.
    pub fn metrics(&self) -> Arc<RouteMetrics> {
        Arc::clone(&self.route.metrics)
    }

    /// A handle that stops this relay from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { route: Arc::clone(&self.route) }
    }

    /// Accepts clients until stopped, starting a connection thread for each.
    ///
    /// The loop never ends on an accept error: a client that gave up before we accepted it
    /// is skipped, and running out of file descriptors or memory pauses accepting for a
    /// moment (5 ms, doubling up to 1 s) instead of spinning or exiting. After
    /// [`StopHandle::stop`], it closes every open connection, waits until their threads have
    /// finished, and returns. After [`StopHandle::drain`], it first lets open connections
    /// finish on their own, up to the drain's timeout.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fatal listener errors.
    pub fn serve(self) -> io::Result<()> {
        // The listener is owned here, apart from `route`, so that a drain can close it early.
        let Relay { listener, local_addr: _, route } = self;
        let route = &route;
        let listen_addr = &route.listen_addr;
        let config = &route.config;
        let connections = &route.connections;
        let mut backoff = AcceptBackoff::default();
        let observer = &route.observer;
        let upstreams = config.upstreams().collect::<Vec<_>>().join(",");
        observer.route_info(
            "serving",
            &[("listen", listen_addr), ("upstream", &upstreams), ("policy", &config.policy)],
        );
        let health_checks = start_health_checks(route);
        let max_connections = route.max_connections;
        if max_connections < config.max_connections {
            observer.route_warn(
                "max-connections lowered to fit vm.max_map_count",
                &[("asked", &config.max_connections), ("allowed", &max_connections)],
            );
        }
        // Whether clients are being held back at the connection limit. One such episode is
        // logged twice, when it starts and when it ends, however many clients pass through
        // the slots that free up meanwhile.
        let mut at_limit = false;
        loop {
            // At the limit, stop accepting: new clients wait in the kernel's backlog.
            if connections.is_full(max_connections) {
                if !at_limit {
                    at_limit = true;
                    observer.route_warn(
                        "connection limit reached, pausing accept",
                        &[("max_connections", &max_connections)],
                    );
                }
                if !connections.wait_for_room(max_connections) {
                    break;
                }
            }
            // conn, err := l.Accept()
            let accepted = if at_limit {
                match listener.accept_waiting() {
                    Some(accepted) => accepted,
                    None => {
                        // A slot is free and nobody is queueing for it: the episode is over.
                        at_limit = false;
                        observer.route_warn("connection limit cleared, accepting again", &[]);
                        continue;
                    }
                }
            } else {
                listener.accept()
            };
            if !connections.accepting() {
                break; // the wake-up connection from `stop`, or a client too late
            }
            match accepted {
                Ok((client, client_addr)) => {
                    backoff.succeeded(observer);
                    let allowed = permits(config, &client_addr);
                    let connection = Connection::new(next_id(), client, client_addr, config);
                    if allowed {
                        start_connection(route, connection);
                    } else {
                        refuse_denied(route, connection); // closed: no upstream is dialled
                    }
                }
                Err(error) => backoff.failed(&error, observer),
            }
        }
        // Closing the listener now makes new clients fail at once (connection refused), so
        // they can try elsewhere, instead of waiting in the backlog for the whole drain.
        drop(listener);
        let open = connections.open_count();
        if open > 0 {
            observer.route_info("draining", &[("listen", listen_addr), ("open", &open)]);
        }
        connections.wait_until_drained();
        // Whatever is still open when the drain ends is closed now (reason `stopped`).
        connections.close_all();
        connections.wait_until_empty();
        route.threads.release_parked();
        drop(health_checks); // stops and joins the health-check thread
        observer.route_info("stopped", &[("listen", listen_addr)]);
        Ok(())
    }
}

/// Starts the route's health-check thread if `--health-check` asks for one. If the thread
/// cannot be created the route serves without checks (the passive back-off still works),
/// and says so.
fn start_health_checks(route: &Arc<Route>) -> Option<HealthCheckThread> {
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

/// Starts the first thread of a new connection (Go: `go handleConn(conn)`).
///
/// If the OS cannot create the thread (out of memory, `ulimit -u`), the client is closed and
/// the relay carries on: dropping the unstarted closure drops the connection's entry, which
/// closes its socket.
fn start_connection(route: &Arc<Route>, connection: Connection) {
    let (id, client, started) = (connection.id, connection.client_addr.clone(), connection.started);
    route.observer.accepted(connection.conn());
    let entry = route.connections.insert(connection);
    let thread_route = Arc::clone(route);
    let spawned = route.threads.run(ThreadRole::First, move || {
        // Declared in this order so that the hook hears `Finished`, and the close is
        // reported, before the entry leaves the open connections and frees a slot.
        let entry = entry;
        let _report_panic = ReportPanic { connection: &entry, route: &thread_route };
        let _life = ThreadLife::begin(thread_route.config.thread_hook, ThreadRole::First);
        handle_conn(entry.connection(), &thread_route);
    });
    if let Err(error) = spawned {
        // The closure, and with it the entry, was dropped unstarted: the client is closed.
        let error = error.to_string();
        let ending = Ending {
            reason: CloseReason::SpawnFailed,
            error: &error,
            upstream: None,
            bytes: (0, 0),
            started,
        };
        route.observer.closed(Conn { id, client: &client }, &ending);
    }
}

/// Whether the route's access rules let this client in. A Unix socket client has no IP
/// address, so it matches no rule: it is let in unless the route has allow rules (guard a
/// Unix socket with its file permissions instead).
fn permits(config: &Config, client: &Address) -> bool {
    match client {
        Address::Tcp(addr) => config.access.permits(addr.ip()),
        Address::Unix(_) => config.access.allow.is_empty(),
    }
}

/// Closes a client that the access rules refuse, before any upstream is dialled: its
/// `connection closed` line says `reason=denied`.
fn refuse_denied(route: &Route, connection: Connection) {
    route.observer.accepted(connection.conn());
    connection.close(CloseReason::Denied, "");
    handle_conn::closed(&connection, route, (0, 0));
}

/// Reports a connection's ending if its first thread unwinds from a panic (a bug), so that
/// even then it is closed, its `connection closed` line written and its close counted.
struct ReportPanic<'a> {
    connection: &'a Connection,
    route: &'a Route,
}

impl Drop for ReportPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.connection.close(CloseReason::Panicked, "connection thread panicked");
            handle_conn::closed(self.connection, self.route, (0, 0));
        }
    }
}

/// Stops a [`Relay`] from another thread.
///
/// Std has no portable signal handling, so this is how embedders, tests and the admin
/// endpoint stop a relay: [`stop`](StopHandle::stop), then join the thread running
/// [`Relay::serve`].
#[derive(Clone, Debug)]
pub struct StopHandle {
    route: Arc<Route>,
}

impl StopHandle {
    /// Stops accepting and closes every open connection; `serve` then returns once their
    /// threads have finished. Calling it again does nothing more.
    pub fn stop(&self) {
        self.drain(Duration::ZERO);
    }

    /// Stops accepting and lets open connections finish on their own for up to `timeout`;
    /// then closes those still open (reason `stopped`), and `serve` returns once their
    /// threads have finished. A graceful stop: clients in the middle of a transfer are not
    /// cut unless they outlast `timeout`. It returns at once; join the thread running
    /// `serve` to wait. A later `stop` or shorter `drain` cuts the drain short.
    pub fn drain(&self, timeout: Duration) {
        let connections = &self.route.connections;
        // A timeout too large for an `Instant` means "no limit": no deadline at all.
        if let Some(deadline) = Instant::now().checked_add(timeout) {
            connections.drain_until(deadline);
        }
        if !connections.stop_accepting() {
            return;
        }
        // `accept` blocks and std cannot interrupt it, so we wake it the way a client
        // would: by connecting. The loop then sees the flag and leaves. If even that
        // connect fails (no descriptors left), the loop leaves at its next accept.
        stream::wake(&self.route.listen_addr);
    }
}

/// What the accept loop does after an error from `accept`.
///
/// Errors about one client (it reset before we accepted it) are skipped at once. Running out
/// of a resource (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) would make `accept` fail again
/// immediately, spinning the CPU, so we sleep: 5 ms, doubling up to 1 s, until an accept
/// succeeds.
///
/// The warning is written at most once every 10 s, even when failures and successes
/// alternate: at the descriptor limit every new client is accepted into the one descriptor
/// a waiting `accept` holds, and the accept after it fails, so a client storm would
/// otherwise be a warning storm. "accept recovered" follows only a run of failures that
/// was warned about.
#[derive(Debug, Default)]
struct AcceptBackoff {
    pause: Duration,
    /// When the last "accept failed" warning was written.
    warned_at: Option<Instant>,
    /// Whether the current run of failures was warned about.
    warned_this_run: bool,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    /// Write the warning at most this often.
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn succeeded(&mut self, observer: &Observer) {
        if std::mem::take(&mut self.warned_this_run) {
            observer.route_warn("accept recovered", &[]);
        }
        self.pause = Duration::ZERO;
    }

    fn failed(&mut self, error: &io::Error, observer: &Observer) {
        if is_about_one_client(error) {
            return;
        }
        let now = Instant::now();
        if self.warned_at.is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY) {
            observer.route_warn(
                "accept failed, pausing",
                &[("error", error), ("pause_ms", &self.next_pause().as_millis())],
            );
            self.warned_at = Some(now);
            self.warned_this_run = true;
        }
        self.pause = self.next_pause();
        thread::sleep(self.pause);
    }

    fn next_pause(&self) -> Duration {
        (self.pause * 2).clamp(Self::FIRST, Self::MAX)
    }
}

/// Whether an accept error concerns only the client being accepted, so the next accept may
/// well succeed at once.
fn is_about_one_client(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::PermissionDenied // a firewall rule rejected this one client
    )
}
