//! The accept loop: [`Relay`] owns the listening socket and starts two threads per client.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::limits::capacity::{Capacity, OPEN_IN_PROCESS, ProcessSlot};
use crate::limits::per_client::ClientKey;
use crate::limits::threads::ThreadRole;
use crate::net::address::Address;
use crate::net::inherited;
use crate::net::stream::{self, Listener};
use crate::outcome::CloseReason;
use crate::relay::connection::{Connection, next_id};
use crate::relay::counts::RouteMetrics;
use crate::relay::current::CurrentRoute;
use crate::relay::events::Events;
use crate::relay::handle_conn::{self, ReportPanic};
use crate::relay::preface::{self, Refusal, permits, preface_then_relay};
use crate::relay::route::{Route, ServerNames, Watch};
use crate::relay::server_names;
use crate::relay::test_hooks::TestHooks;
use crate::settings::config::Config;

/// A relay with its listening socket bound, ready to [`serve`](Relay::serve).
///
/// Binding and serving are separate steps so a caller can learn the real address (when port
/// 0 was asked) and get a [`StopHandle`] before the accept loop starts blocking.
#[derive(Debug)]
pub struct Relay {
    listener: Listener,
    local_addr: SocketAddr,
    /// The route's settings of now: a reload swaps them (see `current.rs`).
    current: Arc<CurrentRoute>,
}

impl Relay {
    /// [`Relay::bind`] (defined where the relay is wired, server/wiring.rs), with the
    /// route's watchers built by `watch`, and `hooks` in place of the machine.
    pub(crate) fn bind_with(config: Config, watch: Watch, hooks: TestHooks) -> io::Result<Relay> {
        config.validate()?;
        if !config.server_names.is_empty() {
            // It picks its clients by name.
            return Relay::bind_sharing(vec![config], watch, hooks);
        }
        let wanted = config.listen_address();
        let listener = match config.listen_stdin {
            true => inherited::listener_on_stdin()?,
            false => Listener::bind(&wanted, socket_file(&config)).map_err(|error| {
                io::Error::new(error.kind(), format!("cannot listen on {wanted}: {error}"))
            })?,
        };
        let listen_addr = listener.local_addr()?;
        let local_addr = match &listen_addr {
            Address::Tcp(addr) => *addr,
            Address::Unix(_) => config.listen,
        };
        let route = Arc::new(Route::new(config, listen_addr, watch, hooks));
        Ok(Relay { listener, local_addr, current: Arc::new(CurrentRoute::new(route)) })
    }

    /// The address the relay listens on, with the real port if port 0 was asked. For a
    /// Unix socket relay this is [`Config::listen`] unchanged; see [`Relay::listen_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the relay listens on, TCP or Unix (`unix:/path`).
    pub fn listen_addr(&self) -> Address {
        self.current.get().listen_addr.clone()
    }

    /// The route's counters (connections, bytes, close reasons), live: read them with
    /// [`RouteMetrics::snapshot`]. The label is [`Config::name`], or the listen address.
    pub fn metrics(&self) -> Arc<RouteMetrics> {
        Arc::clone(&self.current.get().metrics)
    }

    /// How many connections the whole process can hold, and which OS limit says so.
    pub(crate) fn capacity(&self) -> Capacity {
        self.current.get().capacity
    }

    /// A handle that stops this relay from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { current: Arc::clone(&self.current) }
    }

    /// The route's current settings, which a reload replaces (see `current.rs`).
    pub(crate) fn current(&self) -> Arc<CurrentRoute> {
        Arc::clone(&self.current)
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
        let Relay { listener, local_addr: _, current } = self;
        // The listener's own parts, the same in every generation of the route.
        let first = current.get();
        let listen_addr = &first.listen_addr;
        let connections = &first.connections;
        let mut backoff = AcceptBackoff::default();
        say_serving(&first);
        for other in first.server_names.iter().flat_map(ServerNames::others) {
            say_serving(other);
        }
        current.start_serving(); // the health checks
        if first.max_connections < first.config.max_connections {
            first.observer.max_connections_lowered(first.config.max_connections, &first.capacity);
        }
        // Clients being held back at the connection limit. One such episode is logged
        // twice, when it starts and when it ends (with how long it lasted and how many
        // clients waited), however many clients pass through the slots that free up.
        let mut at_limit: Option<LimitEpisode> = None;
        loop {
            // The limit of now; a reload may raise or lower it.
            let now = current.get();
            let (observer, max_connections) = (&*now.observer, now.max_connections);
            // At the limit, stop accepting: new clients wait in the kernel's backlog.
            if connections.is_full(max_connections) {
                if at_limit.is_none() {
                    at_limit = Some(LimitEpisode { started: Instant::now(), held: 0 });
                    observer.limit_reached(max_connections);
                }
                let waiting = Instant::now();
                let room = connections.wait_for_room(max_connections);
                observer.waited_at_limit(waiting.elapsed());
                if !room {
                    break;
                }
            }
            // conn, err := l.Accept()
            let accepted = match &mut at_limit {
                Some(episode) => match listener.accept_waiting() {
                    Some(accepted) => {
                        episode.held += 1;
                        accepted
                    }
                    None => {
                        // A slot is free and nobody is queueing for it: the episode is over.
                        let LimitEpisode { started, held } = *episode;
                        at_limit = None;
                        observer.limit_cleared(started.elapsed(), held);
                        continue;
                    }
                },
                None => listener.accept(),
            };
            if !connections.accepting() {
                break; // the wake-up connection from `stop`, or a client too late
            }
            match accepted {
                Ok((client, client_addr)) => {
                    // The settings of now for this client: a reload may have replaced them
                    // while `accept` waited.
                    let route = &current.get();
                    backoff.succeeded(&*route.observer);
                    let connection = Connection::new(next_id(), client, client_addr, &route.config);
                    admit(route, connection);
                }
                Err(error) => backoff.failed(&error, observer),
            }
        }
        // Closing the listener now makes new clients fail at once (connection refused), so
        // they can try elsewhere, instead of waiting in the backlog for the whole drain.
        drop(listener);
        // New clients are gone, so the checks' verdicts are of no more use: told to stop now,
        // they are not waited for (a check in progress may take its whole timeout).
        current.stop_serving();
        let last = current.get();
        let open = connections.open_count();
        if open > 0 {
            last.observer.route_info("draining", &[("listen", listen_addr), ("open", &open)]);
        }
        connections.wait_until_drained();
        // Whatever is still open when the drain ends is closed now (reason `stopped`).
        connections.close_all();
        connections.wait_until_empty();
        last.threads.release_parked();
        last.observer.route_info("stopped", &[("listen", listen_addr)]);
        Ok(())
    }
}

/// A time during which the accept loop is held at the connection limit.
#[derive(Clone, Copy, Debug)]
struct LimitEpisode {
    started: Instant,
    /// Clients accepted from the backlog during the episode: each had waited there.
    held: u64,
}

/// Lets an accepted client in, or closes it at once, before any upstream is dialled and
/// any byte read: when the access rules refuse it (`denied`), when the per-client limit does
/// (`client_limit`), when it may not send the PROXY header it must (`untrusted_proxy`), or
/// when the whole process holds all the connections its OS limits allow (`process_limit`;
/// only several routes together get there, as each route's own limit is at most the
/// process's).
fn admit(route: &Arc<Route>, connection: Connection) {
    // With `accept-proxy` or `sni=`, the client and its route are known only from its first
    // bytes: here only its TCP peer is checked; the rest waits for its own thread
    // (preface.rs).
    let refusal = match preface::checks_access_later(route) {
        true => preface::refuses_peer(route, &connection.client_addr),
        false => refuses_client(route, &connection.client_addr),
    };
    if let Some((reason, detail)) = refusal {
        return handle_conn::close_early(&connection, route, reason, detail);
    }
    match OPEN_IN_PROCESS.take(route.capacity.connections) {
        Some(slot) => start_connection(route, connection, slot),
        None => {
            let Capacity { connections, limited_by, .. } = route.capacity;
            let detail =
                format!("the process holds {connections}, its cap under {}", limited_by.name());
            handle_conn::close_early(&connection, route, CloseReason::ProcessLimit, detail)
        }
    }
}

/// On a route that needs no first bytes: the access rules, then the per-client limit.
fn refuses_client(route: &Route, client: &Address) -> Option<Refusal> {
    if !permits(&route.config, client) {
        return Some((CloseReason::Denied, String::new()));
    }
    let limit = route.per_client;
    let refused = route.connections.refuses(ClientKey::of(client)?, limit, route.max_connections);
    refused.then(|| (CloseReason::ClientLimit, limit.refusal()))
}

/// Starts the first thread of a new connection (Go: `go handleConn(conn.(*net.TCPConn), *upstream)`).
///
/// If the OS cannot create the thread (out of memory, `ulimit -u`), the client is closed and
/// the relay carries on: dropping the unstarted closure drops the connection's entry, which
/// closes its socket.
fn start_connection(route: &Arc<Route>, connection: Connection, slot: ProcessSlot) {
    // A client that must send its first bytes waits for them apart from the relayed ones.
    let entry = match preface::checks_access_later(route) {
        true => route.connections.insert_waiting(connection, slot),
        false => route.connections.insert(connection, slot),
    };
    // Our own share, so that if no thread can be made the client's socket stays open until
    // its close has been reported: whoever the client tells sees it counted.
    let connection = Arc::clone(entry.connection());
    let thread_route = Arc::clone(route);
    let spawned = route.threads.run(ThreadRole::First, move || {
        // Declared in this order so that the hook hears `Finished`, and the close is
        // reported, before the entry leaves the open connections and frees a slot.
        let entry = entry;
        let _report_panic = ReportPanic { conn: &entry, route: &thread_route };
        let _life = thread_route.threads.life(ThreadRole::First);
        preface_then_relay(entry.connection(), &thread_route); // counted as accepted there
    });
    if let Err(error) = spawned {
        // The closure, and with it the entry, was dropped unstarted; our share closes the
        // socket once the ending is reported.
        handle_conn::close_early(&connection, route, CloseReason::SpawnFailed, error);
    }
}

// Routes that share one listener by TLS server name (`sni=`); see server_names.rs.
impl Relay {
    /// Binds one listener for several routes on the same address that differ by `sni=`:
    /// the first route owns it and its accept loop, the others share it (see
    /// [`ServerNames`]). Each route's label says its names unless it has a `name`.
    ///
    /// # Errors
    /// As [`Relay::bind`], for the first route or any other.
    pub(crate) fn bind_sharing(
        mut configs: Vec<Config>,
        watch: Watch,
        hooks: TestHooks,
    ) -> io::Result<Relay> {
        for config in &configs {
            config.validate()?;
        }
        let others = configs.split_off(1.min(configs.len()));
        let Some(first) = configs.pop() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no route to bind"));
        };
        let unnamed = Config { server_names: Vec::new(), ..first.clone() };
        let Relay { listener, local_addr, current } = Relay::bind_with(unnamed, watch, hooks)?;
        let bound = current.get();
        // Built again beside the others, so that its label too names its server names and
        // the real port.
        let mut route = server_names::sharing_route(&bound, first);
        route.server_names = Some(ServerNames::sharing(&bound, others));
        Ok(Relay { listener, local_addr, current: Arc::new(CurrentRoute::new(Arc::new(route))) })
    }

    /// The counters of every route on this listener: its own, then those sharing it.
    pub(crate) fn all_metrics(&self) -> Vec<Arc<RouteMetrics>> {
        self.current.get().all_metrics()
    }
}

/// Says that `route` is serving: its `serving` line, with where it listens and relays to.
fn say_serving(route: &Route) {
    let upstreams = route.config.upstreams().collect::<Vec<_>>().join(",");
    route.observer.route_info(
        "serving",
        &[
            ("listen", &route.listen_addr),
            ("upstream", &upstreams),
            ("policy", &route.config.policy),
        ],
    );
}

/// Stops a [`Relay`] from another thread.
///
/// Std has no portable signal handling, so this is how embedders, tests and the admin
/// endpoint stop a relay: [`stop`](StopHandle::stop), then join the thread running
/// [`Relay::serve`].
#[derive(Clone, Debug)]
pub struct StopHandle {
    current: Arc<CurrentRoute>,
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
        let route = self.current.get(); // its connections and address are every generation's
        let connections = &route.connections;
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
        stream::wake(&route.listen_addr);
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

    fn succeeded(&mut self, observer: &dyn Events) {
        if std::mem::take(&mut self.warned_this_run) {
            observer.route_warn("accept recovered", &[]);
        }
        self.pause = Duration::ZERO;
    }

    fn failed(&mut self, error: &io::Error, observer: &dyn Events) {
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

/// The mode, owner and group of the route's Unix socket file, if it listens on one.
fn socket_file(config: &Config) -> stream::SocketFile {
    stream::SocketFile {
        mode: config.listen_unix_mode,
        owner: config.listen_unix_owner,
        group: config.listen_unix_group,
    }
}
