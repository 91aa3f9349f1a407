//! The relay core: what a class reads. One route's accept loop, and the life of each
//! connection beside the Go it mirrors.
//!
//! - [`accept`]: [`Relay`] binds the listener and runs the accept loop (Go's `for { l.Accept() }`).
//! - [`handle_conn`]: the life of one connection, top to bottom (Go's `handleConn`).
//! - [`preface`]: on routes that look at a client's first bytes, what its first thread does
//!   before relaying: read the PROXY header, peek at the TLS server name, pick the route.
//! - [`server_names`]: routes that share one listener, picked by TLS server name (`sni=`).
//! - [`copy`]: one direction, `io::copy` then `shutdown(Write)` (Go's `copyThenCloseWrite`).
//! - [`connection`]: what a connection's two threads share: the sockets and how it ended.
//! - [`counts`]: the bytes each copy has delivered and a route's counters, kept here and
//!   read by the close report and `/metrics`.
//! - [`events`]: who a connection is and how it ended, as the core tells its watchers.
//! - [`open_connections`]: a route's open connections, per client: where the accept loop
//!   waits for room, and what a stop closes.
//! - [`route`]: what a route's accept loop shares with its connections.
//! - [`current`]: the route's settings of now, which a reload swaps.
//! - [`timers`]: the idle and half-close timers, ticked by socket timeouts.
//! - [`test_hooks`]: what a test may put in place of the machine (threads, the resolver).

pub mod accept;
pub mod connection;
pub mod copy;
pub mod counts;
pub mod current;
pub mod events;
pub mod handle_conn;
pub mod open_connections;
pub mod preface;
pub mod route;
pub mod server_names;
pub mod test_hooks;
pub mod timers;

pub use accept::{Relay, StopHandle};
pub use test_hooks::TestHooks;
