//! Memory per idle flow: the relay's resident memory with no flow of ours,
//! then with `flows` flows each opened by one datagram and its echo and then
//! left silent, read from /proc over the relay's process tree (nginx's
//! workers, socat's children).
//!
//! The "no flow" baseline is taken after the script's readiness probe, which
//! opened one flow of its own. Memory per flow divides by the flows whose
//! echo came back (`answered`): a flow the relay lost may hold nothing.

use crate::echo::is_timeout;
use crate::footprint::{self, Watched};
use crate::result_line::Measurement;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long all the flows together wait for their echoes.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the workload against the relay `pid` at `target`.
pub fn run(target: SocketAddr, flows: u32, pid: u32) -> Measurement {
    let mut result = Measurement::new("idle");
    result.push("flows", flows);
    match measure(target, flows, pid, &mut result) {
        Ok(()) => result,
        Err(e) => result.fail(&e),
    }
}

fn measure(target: SocketAddr, flows: u32, pid: u32, result: &mut Measurement) -> io::Result<()> {
    let watched = Watched::Tree { root: pid };
    let before = footprint::sample(watched)?;
    let mut sockets = Vec::with_capacity(flows as usize);
    for flow in 0..flows {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(target)?;
        socket.send(&flow.to_be_bytes())?;
        sockets.push(socket);
    }
    // One deadline for all the echoes, not one per socket: a relay that loses
    // most of them (socat-listen does) must not make the run last flows × 2 s.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut answered = 0u32;
    let mut buf = [0u8; 64];
    for socket in &sockets {
        match deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) {
            Some(left) => socket.set_read_timeout(Some(left))?,
            None => socket.set_nonblocking(true)?,
        }
        match socket.recv(&mut buf) {
            Ok(_) => answered += 1,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
    let after = footprint::sample(watched)?;
    result.push("answered", answered);
    result.push("rss_kib_before", before.rss_kib);
    result.push("rss_kib_after", after.rss_kib);
    result.push("pss_kib_before", before.pss_kib);
    result.push("pss_kib_after", after.pss_kib);
    result.push("threads_after", after.threads);
    result.push("processes_after", after.processes);
    let per_flow = after.pss_kib.saturating_sub(before.pss_kib) as f64 / f64::from(answered.max(1));
    result.push_number("pss_kib_per_flow", per_flow, 1);
    drop(sockets);
    Ok(())
}
