//! Limits and threads: how many connections may be open (per client, and in the whole
//! process under the OS's limits), where their threads come from, and what malloc reserves.
//! The set of a route's open connections, which applies these limits, is the core's own
//! (`relay/open_connections.rs`): limits/ knows no connection.

pub mod arenas;
pub mod capacity;
pub mod per_client;
pub mod proc_limits;
pub mod threads;
