//! tcprelay: a TCP relay (port forwarder) on the Rust standard library alone.
//!
//! Every accepted client gets its own upstream connection and two threads; each thread runs
//! [`std::io::copy`] one way. When one side finishes sending (EOF), the relay passes that on
//! with `shutdown(Write)` (a half-close) and lets the other direction run to its end, so
//! protocols that say "done" by closing keep working. It is the Go `io.Copy` proxy, one for
//! one: a goroutine becomes a thread, `io.Copy` becomes `io::copy`, `CloseWrite` becomes
//! `shutdown(Shutdown::Write)`, and `defer conn.Close()` becomes `Drop`.
//!
//! The crate is for two kinds of reader: people building for small targets with no async
//! runtime (no dependencies, no `unsafe`, memory per connection you can set), and students
//! learning how Go's networking maps to Rust. docs/architecture.md is the map of the code.
//!
//! # What the library offers
//!
//! One [`Relay`] is one route: one listener and its accept loop. A [`Server`] runs several
//! routes in one process, with an admin endpoint for metrics and a graceful drain; that is
//! what the `tcprelay` binary runs (docs/operations.md). These are the types a user of the
//! library meets, and the only ones it exports:
//!
//! - **One route**: [`Relay`] (bind, serve), [`StopHandle`] (stop or drain it from another
//!   thread), [`Config`] (its settings, with [`Policy`], [`AccessRules`] and [`Cidr`],
//!   [`ProxyVersion`], [`NamePattern`], [`LogLevel`]), [`Address`] (TCP or Unix socket).
//! - **Several routes**: [`Server`], [`ServerConfig`] (with [`AdminAccess`] and
//!   [`AdminToken`] for its admin endpoint), [`ServerHandle`] (drain, stop, reload, status).
//!   A `Server` also runs UDP routes ([`Config::udp`], the `udp:` listen addresses of the
//!   binary); a `Relay` is TCP only.
//! - **What happened**: [`RouteMetrics`] and its [`RouteSnapshot`] and [`UpstreamSnapshot`]
//!   (the counters `/metrics` shows), [`CloseReason`] (every way a connection ends).
//! - **Seams for tests**: [`Resolver`] (with [`system_resolver`], the default) and
//!   [`ThreadHook`] (with [`ThreadRole`] and [`ThreadStage`]), two fields of [`Config`] that
//!   tests use to fake DNS and to fail or watch thread creation.
//!
//! Everything else (the settings table and its parsers, the admin HTTP server, the logger,
//! the limits) is the binary's and stays inside the crate; docs/architecture.md maps it.
//!
//! # Example: one relay
//!
//! Relay to an upstream on an ephemeral port, send through it, and stop it:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Shutdown, TcpListener, TcpStream};
//! use std::thread;
//!
//! # fn main() -> std::io::Result<()> {
//! // An upstream that answers "hello" and closes.
//! let upstream = TcpListener::bind("127.0.0.1:0")?;
//! let upstream_addr = upstream.local_addr()?;
//! let upstream_thread = thread::spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _) = upstream.accept()?;
//!     conn.write_all(b"hello")
//! });
//!
//! // The relay, on a free loopback port.
//! let relay = tcprelay::Relay::bind(tcprelay::Config {
//!     upstream: upstream_addr.to_string(),
//!     ..tcprelay::Config::default()
//! })?;
//! let relay_addr = relay.local_addr();
//! let stop = relay.stop_handle();
//! let relay_thread = thread::spawn(move || relay.serve());
//!
//! // A client: everything the upstream sent, then EOF.
//! let mut client = TcpStream::connect(relay_addr)?;
//! let mut reply = String::new();
//! client.read_to_string(&mut reply)?;
//! assert_eq!(reply, "hello");
//! client.shutdown(Shutdown::Write)?;
//!
//! upstream_thread.join().expect("upstream thread panicked")?;
//! stop.stop();
//! relay_thread.join().expect("relay thread panicked")?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example: drain a relay
//!
//! A drain stops accepting at once but lets the open connections finish, here a client in
//! the middle of a conversation with an echo upstream; the relay's counters then say how
//! it ended:
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{Shutdown, TcpListener, TcpStream};
//! use std::thread;
//! use std::time::Duration;
//!
//! # fn main() -> io::Result<()> {
//! // An upstream that echoes one connection until it half-closes.
//! let upstream = TcpListener::bind("127.0.0.1:0")?;
//! let upstream_addr = upstream.local_addr()?;
//! let echo = thread::spawn(move || -> io::Result<()> {
//!     let (conn, _) = upstream.accept()?;
//!     io::copy(&mut &conn, &mut &conn)?;
//!     conn.shutdown(Shutdown::Write)
//! });
//!
//! let relay = tcprelay::Relay::bind(tcprelay::Config {
//!     upstream: upstream_addr.to_string(),
//!     ..tcprelay::Config::default()
//! })?;
//! let (relay_addr, stop, metrics) = (relay.local_addr(), relay.stop_handle(), relay.metrics());
//! let relay_thread = thread::spawn(move || relay.serve());
//!
//! let mut client = TcpStream::connect(relay_addr)?;
//! let mut reply = [0; 4];
//! client.write_all(b"ping")?;
//! client.read_exact(&mut reply)?; // the connection is open end to end
//!
//! stop.drain(Duration::from_secs(30)); // no new clients; this one may finish
//! client.write_all(b"pong")?;
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"pong");
//! client.shutdown(Shutdown::Write)?; // done: the relay passes the EOF on
//! assert_eq!(client.read(&mut reply)?, 0);
//!
//! relay_thread.join().expect("relay thread panicked")?; // returns once the client is gone
//! echo.join().expect("echo thread panicked")?;
//! let counters = metrics.snapshot();
//! assert_eq!((counters.accepted, counters.active), (1, 0));
//! assert_eq!(counters.closed("client_eof"), Some(1));
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a server of several routes
//!
//! Two routes in one process, each to its own upstream, and an admin endpoint on a free
//! port; a [`ServerHandle`] drains them all at once, as `POST /drain` or `SIGTERM` does:
//!
//! ```
//! use std::time::Duration;
//! use tcprelay::{Address, Config, Server, ServerConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! let route = |name: &str, upstream: &str| Config {
//!     name: name.to_string(),
//!     upstream: upstream.to_string(),
//!     ..Config::default()
//! };
//! let server = Server::bind(ServerConfig {
//!     routes: vec![route("cache", "127.0.0.1:6379"), route("db", "127.0.0.1:5432")],
//!     admin: Some(Address::Tcp("127.0.0.1:0".parse().expect("a socket address"))),
//!     drain_timeout: Duration::from_secs(30),
//!     ..ServerConfig::default()
//! })?;
//! assert_eq!(server.local_addrs().len(), 2); // e.g. 127.0.0.1:41234 and 127.0.0.1:41235
//! let names: Vec<String> = server.metrics().iter().map(|route| route.snapshot().route).collect();
//! assert_eq!(names, ["cache", "db"]);
//!
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve());
//! handle.drain(); // stop accepting everywhere, let open connections finish
//! serving.join().expect("server thread panicked")?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
mod counter;
mod datagram;
#[cfg(test)]
mod fuzz;
mod limits;
mod lock;
mod net;
mod ops;
mod outcome;
mod relay;
mod server;
mod settings;
mod teach;
mod untrusted_paths;
mod upstream;

pub use limits::threads::{ThreadHook, ThreadRole, ThreadStage};
pub use net::address::Address;
pub use net::proxy_protocol::ProxyVersion;
pub use net::sni::NamePattern;
pub use ops::metrics::{RouteMetrics, RouteSnapshot, UpstreamSnapshot};
pub use ops::udp_metrics::UdpSnapshot;
pub use outcome::CloseReason;
pub use relay::{Relay, StopHandle};
pub use server::{Server, ServerHandle};
pub use settings::access::{AccessRules, Cidr};
pub use settings::admin_access::{AdminAccess, AdminToken};
pub use settings::config::{Config, Policy};
pub use settings::logging::LogLevel;
pub use settings::server_config::ServerConfig;
pub use upstream::dial::{Resolver, system_resolver};

/// The classroom chapter, docs/go-to-rust.md: from the Go `io.Copy` proxy to this crate.
#[doc = include_str!("../docs/go-to-rust.md")]
pub mod go_to_rust {}
