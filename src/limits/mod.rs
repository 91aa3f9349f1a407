//! Limits and threads: how many connections may be open, where their threads come from, and
//! what the kernel lets the process map.

pub mod map_limit;
pub mod open_connections;
pub mod threads;
