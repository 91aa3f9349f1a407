//! The admin endpoint: `GET /metrics`, `GET /healthz` and `POST /drain` over HTTP/1.1.
//!
//! It runs on one thread of its own and serves one request at a time, each bounded in size
//! (by `admin_http`) and in time ([`REQUEST_TIMEOUT`]). That is plenty for Prometheus, curl
//! and systemd, and it means a confused client or a port scanner can at worst keep the admin
//! endpoint busy for a few seconds: the relays never wait for it. The HTTP reading and
//! writing is `admin_http.rs`; this module only accepts and routes.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::admin_http::{self, Response, Status};
use crate::log::Log;
use crate::metrics::{self, RouteMetrics};
use crate::net::stream::{self, Address};
use crate::server::ServerHandle;
use crate::units::format_duration;

/// How long one admin client may take to send its request (and to read the answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The bound admin endpoint.
#[derive(Debug)]
pub struct Admin {
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Vec<Arc<RouteMetrics>>,
    server: ServerHandle,
    log: Log,
    stopping: Arc<AtomicBool>,
}

/// Stops the admin endpoint's accept loop.
#[derive(Debug)]
pub struct AdminStop {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
}

impl Admin {
    /// Binds the admin listener.
    ///
    /// # Errors
    /// The OS error, naming the address, if it cannot be bound.
    pub fn bind(
        addr: SocketAddr,
        routes: Vec<Arc<RouteMetrics>>,
        server: ServerHandle,
        log: Log,
    ) -> io::Result<Admin> {
        let listener = TcpListener::bind(addr).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on {addr} (admin): {error}"))
        })?;
        let local_addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        Ok(Admin { listener, local_addr, routes, server, log, stopping })
    }

    /// The address the admin endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that ends [`Admin::serve`].
    pub fn stop_handle(&self) -> AdminStop {
        AdminStop { local_addr: self.local_addr, stopping: Arc::clone(&self.stopping) }
    }

    /// Answers requests one at a time until stopped. Errors of one request (a client that
    /// resets, a malformed request) are logged at debug level and never end the loop.
    pub fn serve(self) {
        for stream in self.listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(error) => {
                    self.log.debug("admin accept failed", &[("error", &error)]);
                    // Out of descriptors would fail again at once: don't spin.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let served = admin_http::serve_one(&stream, REQUEST_TIMEOUT, |method, path| {
                self.answer(method, path)
            });
            if let Err(error) = served {
                self.log.debug("admin request failed", &[("error", &error)]);
            }
        }
    }

    /// The response for one valid request.
    fn answer(&self, method: &str, path: &str) -> Response {
        let is_get = method == "GET" || method == "HEAD";
        match path {
            "/metrics" if is_get => {
                let snapshots: Vec<_> = self.routes.iter().map(|route| route.snapshot()).collect();
                let mut text = metrics::render_prometheus(&snapshots);
                text.push_str(&metrics::render_log_counters(
                    crate::log::lines_dropped(),
                    crate::log::lines_suppressed(),
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
                self.log.info("drain requested", &[("drain_timeout", &timeout)]);
                self.server.drain();
                Response::text(Status::Ok, format!("draining, up to {timeout}\n"))
            }
            "/metrics" | "/healthz" => Response::method_not_allowed("GET, HEAD"),
            "/drain" => Response::method_not_allowed("POST"),
            _ => Response::not_found(),
        }
    }
}

impl AdminStop {
    /// Ends the accept loop after the request in progress, if any.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked `accept` the way a client would (see `StopHandle::stop`).
        stream::wake(&Address::Tcp(self.local_addr));
    }
}
