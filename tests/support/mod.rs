//! Shared test helpers, by purpose: relays in this process ([`relays`]) and the binary as a
//! child process ([`process`]), scriptable upstreams ([`upstreams`]), a client's bytes
//! ([`client`]), UDP peers ([`datagrams`]), counters of descriptors and threads to compare after a fault ([`counters`]),
//! scratch directories and log files the relay writes ([`files`]), fenced blocks of the docs
//! ([`docs`]), the seed article's scenario ([`seed`]), the lab exercises' harness ([`lab`]),
//! the external programs some tests drive ([`tools`]) and another local user to race the
//! relay with ([`privilege`]).
//! Each test binary uses `support::*`.
//!
//! Every helper bounds its waits ([`TIMEOUT`]) and joins its threads when dropped.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

pub mod client;
pub mod counters;
pub mod datagrams;
pub mod docs;
pub mod files;
pub mod go;
pub mod lab;
pub mod privilege;
pub mod process;
pub mod proxy;
pub mod relays;
pub mod seed;
pub mod tls;
pub mod tools;
pub mod upstreams;

// Each test binary uses some of these, never all.
#[allow(unused_imports)]
pub use privilege::*;
#[allow(unused_imports)]
pub use {
    client::*, counters::*, datagrams::*, files::*, process::*, proxy::*, relays::*, seed::*,
    tls::*, tools::*, upstreams::*,
};

/// The longest any single wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);
