//! tcprelay: a TCP relay on the standard library alone.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod admin_http;
pub mod config_file;
pub mod metrics;
pub mod proxy_protocol;
pub mod units;
