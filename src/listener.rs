//! The accept loop: [`Relay`] owns the listening socket and starts two threads per client.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::connection::Connection;
use crate::connections::Connections;
use crate::log::Log;
use crate::map_limit;
use crate::metrics::RouteMetrics;
use crate::relay;
use crate::stream::{self, Address, Listener};
use crate::threads::{ThreadLife, ThreadPool, ThreadRole};
use crate::upstreams::Upstreams;

/// What the accept loop shares with every connection thread and with [`StopHandle`]s.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) log: Log,
    pub(crate) connections: Arc<Connections>,
    /// The route's upstreams, and which of them are backing off after a failed connect.
    pub(crate) upstreams: Upstreams,
    /// The route's counters, also read by the admin endpoint.
    pub(crate) metrics: Arc<RouteMetrics>,
    /// Where connection threads come from: parked ones first, else new ones.
    pub(crate) threads: Arc<ThreadPool>,
    /// `config.max_connections`, or less if that many would not fit under the kernel's
    /// memory-map limit.
    max_connections: usize,
    /// The bound address, which [`StopHandle::stop`] connects to in order to wake a blocked
    /// `accept`.
    listen_addr: Address,
}

/// A relay with its listening socket bound, ready to [`serve`](Relay::serve).
///
/// Binding and serving are separate steps so a caller can learn the real address (when port
/// 0 was asked) and get a [`StopHandle`] before the accept loop starts blocking.
#[derive(Debug)]
pub struct Relay {
    listener: Listener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Binds the listening socket (Go: `net.Listen("tcp", addr)`), or the Unix domain socket
    /// of [`Config::listen_unix`] (Go: `net.Listen("unix", path)`).
    ///
    /// # Errors
    /// The OS error, with the address in its message, if the address cannot be bound
    /// (in use, not a local address, permission denied for a low port or a directory).
    pub fn bind(config: Config) -> io::Result<Relay> {
        let wanted = config.listen_address();
        let listener = Listener::bind(&wanted).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on {wanted}: {error}"))
        })?;
        let listen_addr = listener.local_addr()?;
        let local_addr = match &listen_addr {
            Address::Tcp(addr) => *addr,
            Address::Unix(_) => config.listen,
        };
        let route =
            if config.name.is_empty() { listen_addr.to_string() } else { config.name.clone() };
        let shared = Arc::new(Shared {
            log: Log::new(config.log_level),
            upstreams: Upstreams::new(&config),
            metrics: Arc::new(RouteMetrics::new(route)),
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
        Ok(Relay { listener, local_addr, shared })
    }

    /// The address the relay listens on, with the real port if port 0 was asked. For a
    /// Unix socket relay this is [`Config::listen`] unchanged; see [`Relay::listen_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the relay listens on, TCP or Unix (`unix:/path`).
    pub fn listen_addr(&self) -> Address {
        self.shared.listen_addr.clone()
    }

    /// The route's counters (connections, bytes, close reasons), live: read them with
    /// [`RouteMetrics::snapshot`]. The label is [`Config::name`], or the listen address.
    pub fn metrics(&self) -> Arc<RouteMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// A handle that stops this relay from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { shared: Arc::clone(&self.shared) }
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
        // The listener is owned here, apart from `shared`, so that a drain can close it early.
        let Relay { listener, local_addr: _, shared } = self;
        let shared = &shared;
        let listen_addr = &shared.listen_addr;
        let config = &shared.config;
        let connections = &shared.connections;
        let mut backoff = AcceptBackoff::default();
        let mut next_id: u64 = 1;
        let upstreams = config.upstreams().collect::<Vec<_>>().join(",");
        shared.log.info(
            "serving",
            &[
                ("route", &shared.metrics.route()),
                ("listen", listen_addr),
                ("upstream", &upstreams),
                ("policy", &config.policy),
            ],
        );
        let max_connections = shared.max_connections;
        if max_connections < config.max_connections {
            shared.log.warn(
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
                    shared.log.warn(
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
                        shared.log.warn("connection limit cleared, accepting again", &[]);
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
                    backoff.succeeded(&shared.log);
                    shared.metrics.record_accepted();
                    if permits(config, &client_addr) {
                        let connection = Connection::new(next_id, client, client_addr, config);
                        start_connection(shared, connection);
                    } else {
                        refuse_denied(shared, next_id, client_addr);
                        // `client` is dropped here: closed before any upstream was dialled.
                    }
                    next_id += 1;
                }
                Err(error) => backoff.failed(&error, &shared.log),
            }
        }
        // Closing the listener now makes new clients fail at once (connection refused), so
        // they can try elsewhere, instead of waiting in the backlog for the whole drain.
        drop(listener);
        let open = connections.open_count();
        if open > 0 {
            shared.log.info("draining", &[("listen", listen_addr), ("open", &open)]);
        }
        connections.wait_until_drained();
        // Whatever is still open when the drain ends is closed now (reason `stopped`).
        connections.close_all();
        connections.wait_until_empty();
        shared.threads.release_parked();
        shared.log.info("stopped", &[("listen", listen_addr)]);
        Ok(())
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

/// Starts the first thread of a new connection (Go: `go handleConn(conn.(*net.TCPConn), *upstream)`).
///
/// If the OS cannot create the thread (out of memory, `ulimit -u`), the client is closed and
/// the relay carries on: dropping the unstarted closure drops the connection's entry, which
/// closes its socket.
fn start_connection(shared: &Arc<Shared>, connection: Connection) {
    let (id, client_addr) = (connection.id, connection.client_addr.clone());
    shared.log.debug("accepted", &[("conn", &id), ("client", &client_addr)]);
    connection.explain.accepted(id, &client_addr);
    let entry = shared.connections.insert(connection);
    let thread_shared = Arc::clone(shared);
    let hook = shared.config.thread_hook;
    let spawned = shared.threads.run(ThreadRole::First, move || {
        // Declared in this order so that the hook hears `Finished`, and the metrics count the
        // close, before the entry leaves `Connections` and frees a slot.
        let entry = entry;
        let _count_close = CountClose { connection: &entry, metrics: &thread_shared.metrics };
        let _life = ThreadLife::begin(hook, ThreadRole::First);
        relay::relay(entry.connection(), &thread_shared);
    });
    if let Err(error) = spawned {
        // The closure, and with it the entry, was dropped unstarted: the client is closed.
        shared.metrics.record_close("spawn_failed");
        shared.log.warn(
            "connection closed",
            &[
                ("conn", &id),
                ("client", &client_addr),
                ("reason", &"spawn_failed"),
                ("error", &error),
            ],
        );
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

/// Closes a client that the access rules refuse: one log line and the counters, no dial.
fn refuse_denied(shared: &Shared, id: u64, client_addr: Address) {
    shared.metrics.record_denied();
    shared.metrics.record_close("denied");
    shared.log.info(
        "connection closed",
        &[("conn", &id), ("client", &client_addr), ("upstream", &"-"), ("reason", &"denied")],
    );
}

/// Counts a connection's close in the route's metrics when its first thread ends, however
/// it ends: with the connection's close reason, or `panicked` if the thread unwinds.
struct CountClose<'a> {
    connection: &'a Connection,
    metrics: &'a RouteMetrics,
}

impl Drop for CountClose<'_> {
    fn drop(&mut self) {
        let reason = if thread::panicking() {
            crate::CloseReason::Panicked
        } else {
            self.connection.outcome().0
        };
        self.metrics.record_close(reason.name());
    }
}

/// Stops a [`Relay`] from another thread.
///
/// Std has no portable signal handling, so this is how embedders, tests and the admin
/// endpoint stop a relay: [`stop`](StopHandle::stop), then join the thread running
/// [`Relay::serve`].
#[derive(Clone, Debug)]
pub struct StopHandle {
    shared: Arc<Shared>,
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
        let connections = &self.shared.connections;
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
        stream::wake(&self.shared.listen_addr);
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

    fn succeeded(&mut self, log: &Log) {
        if std::mem::take(&mut self.warned_this_run) {
            log.warn("accept recovered", &[]);
        }
        self.pause = Duration::ZERO;
    }

    fn failed(&mut self, error: &io::Error, log: &Log) {
        if is_about_one_client(error) {
            return;
        }
        let now = Instant::now();
        if self.warned_at.is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY) {
            log.warn(
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
