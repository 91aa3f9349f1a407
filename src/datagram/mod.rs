//! The datagram relay: UDP routes, beside the TCP core (relay/) and in its spirit, with
//! blocking std sockets and threads.
//!
//! A UDP route is one bound socket and one receive thread ([`listener`]). A client address
//! (IP and port) is a *flow*: its first datagram makes the flow, with a socket of its own
//! connected to the upstream the route's policy picks and one thread
//! ([`handle_flow::handle_flow`])
//! that relays the upstream's replies back to the client from the listening socket, so
//! the client hears from the address it sent to. The receive thread sends the client's
//! later datagrams on the flow's socket itself. A flow ends after `udp-idle-timeout` with
//! no datagram either way, or after `udp-responses` replies to each client datagram, and
//! writes one `flow closed` line.
//!
//! ```text
//!  client ──▶ listening socket ─recv_from─▶ receive thread ─ flow of this client? ─┐
//!                 ▲                          (1 per route)   no: allow/deny, limits, │
//!                 │                                               new flow + thread  │
//!                 │ send_to(client)                                                  ▼
//!                 └──────────── flow thread ◀─recv── flow's socket ◀─send── (connected
//!                               (1 per flow)          ──▶ upstream           to upstream)
//! ```
//!
//! Datagrams go whole, up to 65,507 bytes, in order within a flow, never to another
//! flow's upstream; one that may have been cut is dropped and counted. What does not fit (a
//! limit, a full buffer) is dropped and counted: UDP has no backpressure.
//!
//! This layer does not know the log, the metrics, the admin endpoint, reloads or the
//! server that runs it, nor the TCP relay: it tells what happens through [`events`] and
//! keeps its own [`counts`].

pub mod counts;
pub mod events;
pub mod flow;
pub mod flows;
pub mod handle_flow;
pub mod listener;
pub mod route;

pub use listener::{DatagramRelay, DatagramStop};
pub use route::DatagramWatchers;
