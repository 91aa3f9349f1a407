//! Limits and threads: how many connections may be open (per route, per client, and in the
//! whole process under the OS's limits), where their threads come from, and what malloc
//! reserves.

pub mod arenas;
pub mod capacity;
pub mod open_connections;
pub mod per_client;
pub mod proc_limits;
pub mod threads;
