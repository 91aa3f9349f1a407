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
//! One [`Relay`] is one route: one listener and its accept loop. A [`Server`] runs several
//! routes in one process, with an admin endpoint for metrics and a graceful drain; that is
//! what the `tcprelay` binary runs (docs/operations.md).
//!
//! # Example
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod counter;
#[cfg(test)]
mod fuzz;
mod limits;
mod net;
mod ops;
mod outcome;
mod relay;
pub mod server;
pub mod settings;
mod teach;
mod upstream;

pub use limits::threads::{ThreadHook, ThreadRole, ThreadStage, no_hook};
pub use net::address::Address;
pub use net::proxy_protocol;
pub use net::sni;
pub use ops::metrics;
pub use outcome::CloseReason;
pub use relay::{Relay, StopHandle};
pub use server::{Server, ServerHandle};
pub use settings::access::{AccessRules, Cidr};
pub use settings::admin_access::{AdminAccess, AdminToken};
pub use settings::config::{Config, Policy};
pub use settings::logging::LogLevel;
pub use settings::server_config::ServerConfig;
pub use upstream::dial::{DialError, Resolver, system_resolver};

/// The classroom chapter, docs/go-to-rust.md: from the Go `io.Copy` proxy to this crate.
#[doc = include_str!("../docs/go-to-rust.md")]
pub mod go_to_rust {}
