//! The admin endpoint: `GET /metrics`, `GET /healthz` and `POST /drain` over HTTP/1.1, on a
//! TCP address or a Unix socket.
//!
//! It must stay up and stay closed. Up: a Prometheus scrape, a load balancer's health check
//! or systemd's `ExecStop=… /drain` must be answered at once even while tens of slow or
//! silent clients (slowloris) hold connections open. Closed: only who the operator meant may
//! drain the relay, not a web page in a browser on the same host.
//!
//! **Up.** Each connection is served on a thread of its own, at most [`MAX_HANDLERS`] at
//! once, each with one short deadline for its whole request ([`REQUEST_TIMEOUT`]). When all
//! handlers are busy, a new client does not queue behind them: the oldest connection that is
//! not being answered (still sending its request, or lingering after its answer) is shut
//! down to make room, once it has had [`NEW_CONNECTION_GRACE`] to send its request (a burst
//! of new clients is served beside the others, up to twice the bound). A real client sends its whole request in one segment and is long
//! done; the oldest is the one that trickles. A legitimate request therefore only has to
//! outlive `MAX_HANDLERS - 1` newer connections, not the deadlines of every slow one. When
//! every handler is busy answering, or the threads of shut-down connections have not left
//! yet (twice the bound alive), a new client gets an immediate `503` instead of a wait.
//!
//! **`/healthz` above all.** A load balancer that sees `503` from `/healthz` pulls a healthy
//! relay, so answers that can hold a handler long never hold them all: everything but
//! `/healthz` (a big `/metrics` to a slow reader, a reload, `/status`) is a long answer, and
//! at most [`MAX_LONG_ANSWERS`] run at once; one more gets `503` at once. The other handlers
//! are then always free, or held by clients not being answered, which are shut down to make
//! room; `/healthz` is answered from memory. (HAProxy keeps its stats and health-check
//! answers apart from proxied traffic the same way: `monitor-uri` is answered by the
//! frontend itself.)
//!
//! **Closed.** See [`refusal`]: a request that changes state (any method but `GET` and
//! `HEAD`) is refused with `403` when it carries an `Origin` header (browsers add one to
//! cross-site form posts, which need no CORS preflight) or, on TCP, a `Host` that is not
//! the admin address (DNS rebinding: a page whose host name was re-pointed at 127.0.0.1).
//! With `--admin-token-file`, every request but `GET /healthz` also needs
//! `Authorization: Bearer TOKEN`, compared in constant time. A Unix socket is created with
//! mode `0600` (configurable), so file permissions decide who may connect at all.
//!
//! The HTTP reading and writing is `admin_http.rs`; this module accepts, guards and routes.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::counter::Counter;

use crate::net::address::Address;
use crate::net::stream::{self, Listener, SocketFile, Stream};
use crate::ops::admin_http::{self, Request, Response, Status};
use crate::ops::log::Log;
use crate::ops::metrics::{self, RouteMetrics};
use crate::ops::udp_metrics::{self, UdpSnapshot};
use crate::settings::admin_access::AdminAccess;
use crate::settings::units::format_duration;

/// How long one admin client may take to send its whole request (and each write of the
/// answer). curl, Prometheus and systemd send a request in one segment right after the
/// handshake; one second is generous even across a slow link.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How many admin connections are served at once. Beyond it the oldest is shut down to make
/// room (see the module docs). Sixteen covers a scraper, a health checker and an operator
/// many times over; each handler thread costs a small stack ([`HANDLER_STACK_SIZE`]).
pub const MAX_HANDLERS: usize = 16;

/// How many answers other than `/healthz` may be computed or written at once; the
/// remaining `MAX_HANDLERS - MAX_LONG_ANSWERS` handlers are kept for `/healthz` (see the
/// module docs). Twelve scrapers, reloads and `status` calls at once is already far more
/// than an operator's tools make.
pub const MAX_LONG_ANSWERS: usize = MAX_HANDLERS - 4;

/// The stack of an admin handler thread: rendering `/metrics` is a few `format!` calls.
pub const HANDLER_STACK_SIZE: usize = 256 * 1024;

/// How long a new client waits, at most, for the threads of shut-down connections to leave
/// when twice [`MAX_HANDLERS`] are still alive, before it is answered `503`. They leave in
/// microseconds once shut down; this only absorbs a burst of connections.
const THREAD_EXIT_WAIT: Duration = Duration::from_millis(100);

/// How long a new connection has to send its request before it may be shut down to make
/// room. A real client's request follows its handshake within a round trip; without the
/// grace, a burst of new clients (sixteen reloads at once) shut each other down, a load
/// balancer's probe among them. Beyond [`MAX_HANDLERS`], such a burst is served on up to
/// as many handler threads again.
const NEW_CONNECTION_GRACE: Duration = Duration::from_millis(100);

/// The start-up warning for an endpoint that anyone on the network may use, if it is one:
/// a TCP address beyond loopback and no token.
pub fn exposure_warning(address: &Address, access: &AdminAccess) -> Option<String> {
    match address {
        Address::Tcp(addr) if access.token.is_none() && !addr.ip().to_canonical().is_loopback() => {
            Some(format!(
                "the admin endpoint listens on {addr}, beyond loopback, without a token: \
                 anyone who can reach it can read the metrics and drain the relay; set \
                 --admin-token-file (docs/operations.md, \"Admin security\")"
            ))
        }
        _ => None,
    }
}

/// Why `request` may not be served, as the response that says so; `None` when it may.
///
/// - `GET`/`HEAD /healthz` is always allowed: load balancers probe it without credentials,
///   and it reveals only "ok" or "draining".
/// - With a token, everything else needs `Authorization: Bearer TOKEN` (else `401`).
/// - A request that may change state (any method but `GET` and `HEAD`) is refused with
///   `403` when it has an `Origin` header, or, on TCP, a `Host` that does not name the
///   admin address (see [`host_names_admin`]). curl, systemd's `ExecStop=` and scripts
///   send neither; a browser always sends both.
pub fn refusal(request: &Request, access: &AdminAccess, local: &Address) -> Option<Response> {
    let reads_only = request.method == "GET" || request.method == "HEAD";
    if reads_only && request.path == "/healthz" {
        return None;
    }
    if let Some(token) = &access.token {
        if !token.accepts(request.authorization.as_deref()) {
            return Some(Response {
                challenge: Some("Bearer realm=\"tcprelay admin\""),
                ..Response::text(
                    Status::Unauthorized,
                    "this admin endpoint needs Authorization: Bearer TOKEN \
                     (the token in --admin-token-file)\n",
                )
            });
        }
    }
    if reads_only {
        return None;
    }
    if request.origin.is_some() {
        return Some(Response::text(
            Status::Forbidden,
            "refused: a request with an Origin header (from a web page) may not change state\n",
        ));
    }
    if let (Address::Tcp(local), Some(host)) = (local, &request.host) {
        if !host_names_admin(host, *local) {
            return Some(Response::text(
                Status::Forbidden,
                format!(
                    "refused: Host must be this admin address ({local}, or localhost:{}) to \
                     change state\n",
                    local.port()
                ),
            ));
        }
    }
    None
}

/// Whether a `Host` header value names the admin endpoint bound at `local`: `localhost` or an
/// IP address (the bound one, or any when bound to a wildcard), with the bound port (80 when
/// none is given). A DNS-rebinding page always arrives with its own host *name*, which this
/// refuses; a name is never resolved here.
pub fn host_names_admin(host: &str, local: SocketAddr) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, after)) => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.rsplit_once(':') {
            // More than one colon without brackets is not a valid Host.
            Some((name, _)) if name.contains(':') => return false,
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port_matches = match port {
        None => local.port() == 80,
        Some(port) => port.parse::<u16>().is_ok_and(|port| port == local.port()),
    };
    let name_matches = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| {
            local.ip().is_unspecified() || ip.to_canonical() == local.ip().to_canonical()
        });
    port_matches && name_matches
}

/// What the admin endpoint steers: the server it serves (`server::handle::ServerHandle`
/// implements it). The endpoint knows the requests, not the server behind them.
pub trait Steer: fmt::Debug + Send + Sync {
    /// Each route's live counters, for `GET /metrics`.
    fn metrics(&self) -> Vec<Arc<RouteMetrics>>;
    /// Each UDP route's counters now, for `GET /metrics`.
    fn udp_metrics(&self) -> Vec<UdpSnapshot>;
    /// Reloads applied and refused since start.
    fn reloads(&self) -> (u64, u64);
    /// Whether a drain or stop has begun (`GET /healthz` then answers 503).
    fn is_draining(&self) -> bool;
    /// The drain timeout now in force.
    fn drain_timeout(&self) -> Duration;
    /// The drain grace now in force.
    fn drain_grace(&self) -> Duration;
    /// Starts a drain (`POST /drain`); returns at once.
    fn drain(&self);
    /// What `GET /status` answers.
    fn status(&self) -> String;
    /// Reads the config file again and applies it (`POST /reload`): what changed, or why
    /// it was refused.
    fn reload(&self) -> Result<String, String>;
}

/// The bound admin endpoint.
#[derive(Debug)]
pub struct Admin {
    listener: Listener,
    local: Address,
    access: AdminAccess,
    server: Box<dyn Steer>,
    log: Log,
    stopping: Arc<AtomicBool>,
}

/// Stops the admin endpoint's accept loop.
#[derive(Debug)]
pub struct AdminStop {
    local: Address,
    stopping: Arc<AtomicBool>,
}

impl Admin {
    /// Binds the admin listener (a Unix socket gets `access.socket_mode`), and warns in the
    /// log when it is reachable beyond loopback without a token.
    ///
    /// # Errors
    /// The OS error, naming the address, if it cannot be bound.
    pub fn bind(
        address: &Address,
        access: AdminAccess,
        server: impl Steer + 'static,
        log: Log,
    ) -> io::Result<Admin> {
        let listener = Listener::bind(address, SocketFile::with_mode(access.socket_mode)).map_err(
            |error| {
                io::Error::new(error.kind(), format!("cannot listen on {address} (admin): {error}"))
            },
        )?;
        let local = listener.local_addr()?;
        if let Some(warning) = exposure_warning(&local, &access) {
            log.warn(&warning, &[]);
        }
        let stopping = Arc::new(AtomicBool::new(false));
        Ok(Admin { listener, local, access, server: Box::new(server), log, stopping })
    }

    /// The address the admin endpoint listens on.
    pub fn local_addr(&self) -> Address {
        self.local.clone()
    }

    /// A handle that ends [`Admin::serve`].
    pub fn stop_handle(&self) -> AdminStop {
        AdminStop { local: self.local.clone(), stopping: Arc::clone(&self.stopping) }
    }

    /// Serves connections, each on a handler thread of its own (see the module docs), until
    /// stopped; then shuts down the connections not being answered (an answer in progress,
    /// such as the one to the `POST /drain` that led here, is finished) and joins every
    /// handler thread. Errors of one request (a client that resets, a malformed request) are
    /// logged at debug level and never end the loop.
    pub fn serve(self) {
        let slots = Slots::default();
        let long_answers = LongAnswers::default();
        thread::scope(|scope| {
            loop {
                let accepted = self.listener.accept();
                if self.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let connection = match accepted {
                    Ok((stream, _peer)) => Arc::new(Connection::new(stream)),
                    Err(error) => {
                        self.log.debug("admin accept failed", &[("error", &error)]);
                        // Out of descriptors would fail again at once: don't spin.
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let Some(ticket) = slots.claim(&connection) else {
                    refuse_busy(&connection.stream);
                    continue;
                };
                let handler_connection = Arc::clone(&connection);
                let (admin, long_answers) = (&self, &long_answers);
                let spawned = thread::Builder::new()
                    .name("tcprelay-admin-handler".into())
                    .stack_size(HANDLER_STACK_SIZE)
                    .spawn_scoped(scope, move || {
                        let _ticket = ticket; // frees the slot when this thread ends
                        admin.serve_connection(&handler_connection, long_answers);
                    });
                if let Err(error) = spawned {
                    self.log.warn("cannot start an admin handler thread", &[("error", &error)]);
                    refuse_busy(&connection.stream);
                }
            }
            slots.shut_down_idle();
        });
    }

    /// Serves the one request of one connection, marking it as being answered from the
    /// moment its request is complete until the answer is written. Any answer but
    /// `/healthz`'s counts as a long one while it is computed and written, and gets `503`
    /// when [`MAX_LONG_ANSWERS`] are running already.
    fn serve_connection(&self, connection: &Connection, long_answers: &LongAnswers) {
        let stream = &connection.stream;
        let mut long_answer = None;
        let served = admin_http::respond_to_one(stream, REQUEST_TIMEOUT, |request| {
            connection.answering.store(true, Ordering::SeqCst);
            if let Some(refused) = refusal(request, &self.access, &self.local) {
                return refused;
            }
            if request.path != "/healthz" {
                long_answer = long_answers.start();
                if long_answer.is_none() {
                    return busy();
                }
            }
            self.answer(request)
        });
        drop(long_answer); // the answer is written (or failed)
        connection.answering.store(false, Ordering::SeqCst);
        match served {
            Ok(Some(_)) => admin_http::linger_close(stream),
            Ok(None) => {}
            Err(error) => self.log.debug("admin request failed", &[("error", &error)]),
        }
    }

    /// The response for one valid, allowed request.
    fn answer(&self, request: &Request) -> Response {
        let method = request.method.as_str();
        let is_get = method == "GET" || method == "HEAD";
        match request.path.as_str() {
            "/metrics" if is_get => {
                let routes = self.server.metrics();
                let snapshots: Vec<_> = routes.iter().map(|route| route.snapshot()).collect();
                let mut text = metrics::render_prometheus(&snapshots);
                let udp = self.server.udp_metrics();
                if !udp.is_empty() {
                    // A TCP-only relay's text stays as it was: no families it cannot have.
                    text.push_str(&udp_metrics::render_udp(&udp));
                }
                let (applied, refused) = self.server.reloads();
                text.push_str(&metrics::render_reload_counters(applied, refused));
                text.push_str(&metrics::render_log_counters(
                    crate::ops::log::lines_dropped(),
                    crate::ops::log::lines_suppressed(),
                ));
                Response { content_type: metrics::CONTENT_TYPE, ..Response::text(Status::Ok, text) }
            }
            "/healthz" if is_get => {
                if self.server.is_draining() {
                    Response::text(Status::ServiceUnavailable, "draining\n")
                } else {
                    Response::text(Status::Ok, "ok\n")
                }
            }
            "/drain" if method == "POST" => {
                let timeout = format_duration(self.server.drain_timeout());
                let grace = self.server.drain_grace();
                if grace.is_zero() {
                    self.log.info("drain requested", &[("drain_timeout", &timeout)]);
                } else {
                    let grace = format_duration(grace);
                    let fields: [(&str, &dyn fmt::Display); 2] =
                        [("drain_grace", &grace), ("drain_timeout", &timeout)];
                    self.log.info("drain requested", &fields);
                }
                // Logged first, so the log tells the drain before the `stopped` lines it causes.
                self.server.drain();
                let answer = match grace.is_zero() {
                    true => format!("draining, up to {timeout}\n"),
                    false => format!(
                        "draining after a grace of {}, up to {timeout}\n",
                        format_duration(grace)
                    ),
                };
                Response::text(Status::Ok, answer)
            }
            "/status" if is_get => Response::text(Status::Ok, self.server.status()),
            "/reload" if method == "POST" => match self.server.reload() {
                Ok(summary) => Response::text(Status::Ok, format!("{summary}\n")),
                Err(why) => Response::text(Status::Conflict, format!("reload refused: {why}\n")),
            },
            "/metrics" | "/healthz" | "/status" => Response::method_not_allowed("GET, HEAD"),
            "/reopen-logs" if method == "POST" => match crate::ops::log::reopen() {
                Ok(Some(path)) => {
                    Response::text(Status::Ok, format!("reopened {}\n", path.display()))
                }
                Ok(None) => Response::text(Status::Ok, "no log file to reopen\n"),
                Err(error) => Response::text(Status::Conflict, format!("{error}\n")),
            },
            "/drain" | "/reload" | "/reopen-logs" => Response::method_not_allowed("POST"),
            _ => Response::not_found(),
        }
    }
}

/// The answer when the admin endpoint has no handler (or no long answer) to spare.
fn busy() -> Response {
    Response::text(Status::ServiceUnavailable, "the admin endpoint is busy; try again\n")
}

/// Answers `503` at once, without reading the request, when no handler can take a client.
/// The write fits in the socket buffer, so it does not block the accept loop.
fn refuse_busy(stream: &Stream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    if admin_http::respond(&mut &*stream, &busy()).is_ok() {
        // Read what already arrived, so closing sends a FIN rather than a reset that could
        // destroy the answer (see `admin_http::linger_close`); never wait long for more.
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
        let _ = (&*stream).read(&mut [0; 4096]);
    }
}

/// One admin connection, shared by its handler thread and [`Slots`] (which may shut it
/// down to make room, or at stop).
struct Connection {
    stream: Stream,
    /// Whether its request is complete and its answer not yet written: then it is never
    /// shut down, so an answer (say, to `POST /drain`) is not cut off.
    answering: AtomicBool,
    /// When it was accepted: a connection younger than [`NEW_CONNECTION_GRACE`] is never
    /// shut down to make room.
    opened: Instant,
}

impl Connection {
    fn new(stream: Stream) -> Connection {
        Connection { stream, answering: AtomicBool::new(false), opened: Instant::now() }
    }

    fn shut_down(&self) {
        // Its blocked read returns at once and its thread ends.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The connections being served, oldest first, and how many handler threads are alive.
#[derive(Default)]
struct Slots {
    open: Mutex<Vec<(u64, Arc<Connection>)>>,
    /// Notified whenever a handler thread leaves.
    thread_left: Condvar,
    threads: AtomicUsize,
    next_id: Counter,
}

/// One claimed slot; dropping it (when its handler thread ends) gives the slot back.
struct Ticket<'a> {
    slots: &'a Slots,
    id: u64,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Arc<Connection>)>> {
        // A handler that panicked cannot have left the list half-changed (each change is one
        // `push` or `remove`), so a poisoned lock is still good.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for `connection`, first shutting down the oldest connection not being
    /// answered when all [`MAX_HANDLERS`] are taken, if it has had [`NEW_CONNECTION_GRACE`]
    /// to send its request; in a burst of new clients none has, and the slot is taken beside
    /// them, up to twice the bound in threads (then the grace is not waited for). `None`
    /// when the threads of shut-down connections have not left (twice the bound alive)
    /// within [`THREAD_EXIT_WAIT`]: then the caller refuses the client.
    fn claim(&self, connection: &Arc<Connection>) -> Option<Ticket<'_>> {
        let mut open = self.lock();
        if open.len() >= MAX_HANDLERS {
            let crowded = self.threads.load(Ordering::SeqCst) >= 2 * MAX_HANDLERS;
            let now = Instant::now();
            let may_go = |(_, c): &(u64, Arc<Connection>)| {
                !c.answering.load(Ordering::SeqCst)
                    && (crowded || now.duration_since(c.opened) >= NEW_CONNECTION_GRACE)
            };
            if let Some(oldest_idle) = open.iter().position(may_go) {
                let (_, oldest) = open.remove(oldest_idle);
                oldest.shut_down();
            }
        }
        let (mut open, _) = self
            .thread_left
            .wait_timeout_while(open, THREAD_EXIT_WAIT, |_| {
                self.threads.load(Ordering::SeqCst) >= 2 * MAX_HANDLERS
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.threads.load(Ordering::SeqCst) >= 2 * MAX_HANDLERS {
            return None;
        }
        let id = self.next_id.fetch_add(1);
        open.push((id, Arc::clone(connection)));
        self.threads.fetch_add(1, Ordering::SeqCst);
        Some(Ticket { slots: self, id })
    }

    /// Shuts down every connection not being answered, so that its thread ends promptly;
    /// those being answered finish (their writes are bounded by [`REQUEST_TIMEOUT`]).
    fn shut_down_idle(&self) {
        for (_, connection) in self.lock().iter() {
            if !connection.answering.load(Ordering::SeqCst) {
                connection.shut_down();
            }
        }
    }
}

/// How many long answers (all but `/healthz`'s) are running; see [`MAX_LONG_ANSWERS`].
#[derive(Default)]
struct LongAnswers {
    running: AtomicUsize,
}

/// One running long answer; dropping it, once the answer is written, lets another start.
struct LongAnswer<'a>(&'a LongAnswers);

impl LongAnswers {
    /// Counts one more long answer; `None` when [`MAX_LONG_ANSWERS`] are running.
    fn start(&self) -> Option<LongAnswer<'_>> {
        let one_more = |running: usize| (running < MAX_LONG_ANSWERS).then_some(running + 1);
        self.running.fetch_update(Ordering::SeqCst, Ordering::SeqCst, one_more).ok()?;
        Some(LongAnswer(self))
    }
}

impl Drop for LongAnswer<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.retain(|(id, _)| *id != self.id);
        self.slots.threads.fetch_sub(1, Ordering::SeqCst);
        self.slots.thread_left.notify_all();
    }
}

impl AdminStop {
    /// Ends the accept loop; connections still being served are shut down and their
    /// threads joined before [`Admin::serve`] returns.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked `accept` the way a client would (see `StopHandle::stop`).
        stream::wake(&self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::admin_access::AdminToken;
    use std::path::{Path, PathBuf};

    fn post(path: &str, host: Option<&str>, origin: Option<&str>) -> Request {
        Request {
            host: host.map(str::to_string),
            origin: origin.map(str::to_string),
            ..Request::new("POST", path)
        }
    }

    fn tcp(text: &str) -> Address {
        Address::Tcp(text.parse().expect("a socket address"))
    }

    fn status(refused: Option<Response>) -> Option<u16> {
        refused.map(|response| response.status.code())
    }

    #[test]
    fn a_state_change_with_an_origin_or_a_foreign_host_is_forbidden() {
        let open = AdminAccess::default();
        let local = tcp("127.0.0.1:9090");
        let cases: &[(Option<&str>, Option<&str>, Option<u16>)] = &[
            (Some("127.0.0.1:9090"), None, None),
            (Some("localhost:9090"), None, None),
            (Some("LOCALHOST:9090"), None, None),
            (None, None, None), // HTTP/1.0 without Host: not a browser
            (Some("127.0.0.1:9090"), Some("http://evil.example"), Some(403)),
            (Some("127.0.0.1:9090"), Some("null"), Some(403)),
            (Some("evil.example:9090"), None, Some(403)),
            (Some("evil.example"), None, Some(403)),
            (Some("127.0.0.1:9091"), None, Some(403)),
            (Some("127.0.0.2:9090"), None, Some(403)),
            (Some("127.0.0.1"), None, Some(403)), // port 80 implied
            (Some("[::1]:9090"), None, Some(403)),
            (Some("127.0.0.1:9090:1"), None, Some(403)),
            (Some("localhost.:9090"), None, Some(403)),
        ];
        for (host, origin, expected) in cases {
            let request = post("/drain", *host, *origin);
            assert_eq!(status(refusal(&request, &open, &local)), *expected, "{request:?}");
        }
        // Reading is never refused for Host or Origin: Prometheus scrapes by host name.
        let get = Request {
            host: Some("relay1.internal:9090".to_string()),
            origin: Some("http://evil.example".to_string()),
            ..Request::new("GET", "/metrics")
        };
        assert!(refusal(&get, &open, &local).is_none());
    }

    #[test]
    fn host_rules_follow_the_bound_address() {
        let any = "0.0.0.0:9090".parse().unwrap();
        assert!(host_names_admin("192.0.2.7:9090", any), "a wildcard bind accepts any IP");
        assert!(host_names_admin("[2001:db8::1]:9090", any));
        assert!(!host_names_admin("relay.example:9090", any), "but never a name");
        let v6 = "[::1]:80".parse().unwrap();
        assert!(host_names_admin("[::1]", v6));
        assert!(host_names_admin("[::1]:80", v6));
        assert!(host_names_admin("localhost", v6));
        assert!(!host_names_admin("[::1", v6));
        assert!(!host_names_admin("[::1]x", v6));
        assert!(!host_names_admin("::1", v6));
    }

    #[test]
    fn on_a_unix_socket_the_host_is_not_checked_but_the_origin_is() {
        let open = AdminAccess::default();
        let local = Address::Unix(PathBuf::from("/run/tcprelay/admin.sock"));
        assert!(refusal(&post("/drain", Some("localhost"), None), &open, &local).is_none());
        assert!(refusal(&post("/drain", Some("anything"), None), &open, &local).is_none());
        let from_page = post("/drain", Some("localhost"), Some("http://evil.example"));
        assert_eq!(status(refusal(&from_page, &open, &local)), Some(403));
    }

    fn with_token() -> AdminAccess {
        let token = AdminToken::new(Path::new("/etc/t"), "0123456789abcdef").unwrap();
        AdminAccess { token: Some(token), ..AdminAccess::default() }
    }

    #[test]
    fn a_token_guards_everything_but_healthz() {
        let access = with_token();
        let local = tcp("127.0.0.1:9090");
        let request = |method: &str, path: &str, authorization: Option<&str>| Request {
            host: Some("127.0.0.1:9090".to_string()),
            authorization: authorization.map(str::to_string),
            ..Request::new(method, path)
        };
        let good = Some("Bearer 0123456789abcdef");
        let cases = [
            (request("GET", "/healthz", None), None),
            (request("HEAD", "/healthz", None), None),
            (request("POST", "/healthz", None), Some(401)),
            (request("GET", "/metrics", None), Some(401)),
            (request("GET", "/nowhere", None), Some(401)),
            (request("POST", "/drain", None), Some(401)),
            (request("POST", "/drain", Some("Bearer 0123456789abcdeF")), Some(401)),
            (request("POST", "/drain", Some("Bearer 0123456789abcde")), Some(401)),
            (request("POST", "/drain", Some("Bearer 0123456789abcdef0")), Some(401)),
            (request("POST", "/drain", Some("Basic 0123456789abcdef")), Some(401)),
            (request("POST", "/drain", Some("0123456789abcdef")), Some(401)),
            (request("GET", "/metrics", good), None),
            (request("GET", "/metrics", Some("bearer 0123456789abcdef")), None),
            (request("POST", "/drain", good), None),
        ];
        for (request, expected) in cases {
            let refused = refusal(&request, &access, &local);
            if expected == Some(401) {
                let challenge = refused.as_ref().and_then(|response| response.challenge);
                assert!(challenge.is_some_and(|c| c.starts_with("Bearer")), "{request:?}");
            }
            assert_eq!(status(refused), expected, "{request:?}");
        }
        // The token does not lift the cross-site rule.
        let cross_site = Request {
            origin: Some("http://evil.example".to_string()),
            ..request("POST", "/drain", good)
        };
        assert_eq!(status(refusal(&cross_site, &access, &local)), Some(403));
    }

    #[test]
    fn the_warning_is_for_tcp_beyond_loopback_without_a_token() {
        let open = AdminAccess::default();
        let warned = |text: &str, access: &AdminAccess| exposure_warning(&tcp(text), access);
        let warning = warned("0.0.0.0:9090", &open).expect("a wildcard bind warns");
        assert!(warning.contains("0.0.0.0:9090") && warning.contains("--admin-token-file"));
        assert!(warned("[::]:9090", &open).is_some());
        assert!(warned("192.0.2.1:9090", &open).is_some());
        assert!(warned("127.0.0.1:9090", &open).is_none());
        assert!(warned("127.0.0.2:9090", &open).is_none());
        assert!(warned("[::1]:9090", &open).is_none());
        assert!(warned("[::ffff:127.0.0.1]:9090", &open).is_none());
        assert!(warned("0.0.0.0:9090", &with_token()).is_none());
        let unix = Address::Unix(PathBuf::from("/run/admin.sock"));
        assert!(exposure_warning(&unix, &open).is_none());
    }
}
