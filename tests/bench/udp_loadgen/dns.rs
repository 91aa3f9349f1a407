//! DNS-like round trips: a query for an A record, one at a time, timing each
//! until its answer comes back (p50 and p99 of the round trip).
//!
//! The upstream is dnsmasq answering the name from its own configuration
//! (`--address=/bench.test/127.0.0.1`, so nothing leaves the machine) or the
//! echo server, whose "answer" is the query itself: either way the reply must
//! carry the query's ID, and a reply with another ID is counted as foreign.
//!
//! Two ways to ask:
//! - `--sockets one`: every query from the same socket, one flow for the
//!   relay's whole run (a resolver's long-lived socket);
//! - `--sockets per-query`: a new socket (a new source port, a new flow) for
//!   each query, as `dig` and most stub resolvers do, so the relay's cost of
//!   creating a flow is in every round trip.

use crate::echo::is_timeout;
use crate::result_line::Measurement;
use crate::stats::percentile;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long a query waits for its answer before it counts as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// The name asked for; dnsmasq answers it from `--address`.
pub const NAME: &str = "bench.test";

/// A query for `NAME`'s A record with this ID (RFC 1035 section 4.1).
pub fn query(id: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(32);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00]); // a standard query, recursion desired
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no records
    for label in NAME.split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
    packet
}

/// Runs `queries` round trips against `target` and returns the result line.
pub fn run(target: SocketAddr, queries: u64, per_query_socket: bool) -> Measurement {
    let mut result = Measurement::new("dns");
    result.push("sockets", if per_query_socket { "per-query" } else { "one" });
    result.push("queries", queries);
    match round_trips(target, queries, per_query_socket) {
        Err(e) => result.fail(&e),
        Ok((mut micros, lost, foreign)) => {
            micros.sort_unstable();
            result.push("answered", micros.len());
            result.push("lost", lost);
            result.push("foreign", foreign);
            result.push("p50_us", percentile(&micros, 0.50));
            result.push("p99_us", percentile(&micros, 0.99));
            result.push("max_us", micros.last().copied().unwrap_or(0));
            result
        }
    }
}

/// Round-trip times in microseconds of the answered queries, the count of
/// lost ones, and the count of replies that answered another query.
fn round_trips(
    target: SocketAddr,
    queries: u64,
    per_query_socket: bool,
) -> io::Result<(Vec<u64>, u64, u64)> {
    let mut micros = Vec::with_capacity(queries as usize);
    let (mut lost, mut foreign) = (0, 0);
    let mut shared = None;
    let mut buf = [0u8; 4096];
    for n in 0..queries {
        let fresh;
        let socket = if per_query_socket {
            fresh = open(target)?;
            &fresh
        } else {
            shared.get_or_insert(open(target)?)
        };
        let id = n as u16;
        let began = Instant::now();
        socket.send(&query(id))?;
        loop {
            match socket.recv(&mut buf) {
                Ok(len) if len >= 2 && buf[..2] == id.to_be_bytes() => {
                    micros.push(began.elapsed().as_micros() as u64);
                    break;
                }
                // A late answer to an earlier query on the shared socket.
                Ok(_) => foreign += 1,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::ConnectionRefused => {
                    lost += 1;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((micros, lost, foreign))
}

fn open(target: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    Ok(socket)
}
