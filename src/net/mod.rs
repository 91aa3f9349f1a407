//! Sockets and what goes on the wire: TCP or Unix streams and listeners, their addresses, and
//! the PROXY protocol header; a listening socket inherited on standard input.

pub mod address;
pub mod inherited;
pub mod proxy_protocol;
pub mod proxy_receive;
pub mod sni;
#[cfg(unix)]
pub(crate) mod socket_file;
pub mod stream;
