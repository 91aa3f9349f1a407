//! Memory per idle flow: the relay's resident memory with no flow of ours,
//! then with `flows` flows each opened by one datagram and its echo and then
//! left silent, read from /proc over the relay's process tree (nginx's
//! workers, socat's children).
//!
//! The memory is read once all flows have answered and again after they sat
//! silent for `SETTLE` (the figure per flow is the second).
//! The flows start all at once (`burst_answered` counts how many the relay
//! took in that burst); those it lost retry 50 at a time, up to three times.
//! The "no flow" baseline is taken after the script's readiness probe, which
//! opened one flow of its own. Memory per flow divides by the flows whose
//! echo came back (`answered`): a flow the relay lost may hold nothing.

use crate::echo::is_timeout;
use crate::footprint::{self, Watched};
use crate::receive_drops;
use crate::result_line::Measurement;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// How long the flows sit silent before the memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the first burst of all the flows waits for its echoes.
const BURST_TIMEOUT: Duration = Duration::from_secs(3);
/// Retries of the flows the burst lost: passes, flows at a time, and the wait.
const RETRIES: usize = 3;
const RETRY_BATCH: usize = 50;
const RETRY_TIMEOUT: Duration = Duration::from_secs(1);

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
    for _ in 0..flows {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(target)?;
        sockets.push(socket);
    }
    // First every client at once, as after a network outage or a cold DNS cache:
    // how many new flows a relay takes in one burst is a figure of its own.
    let all: Vec<&UdpSocket> = sockets.iter().collect();
    let drops_before = receive_drops::count();
    let mut waiting = ask(&all, Instant::now() + BURST_TIMEOUT)?;
    result.push("burst_answered", flows as usize - waiting.len());
    result.push("burst_rcvbuf_errors", receive_drops::count().saturating_sub(drops_before));
    // Then, as clients retry, the burst's losses a few at a time, so the
    // memory is measured with every flow open.
    for _ in 0..RETRIES {
        let mut still = Vec::new();
        for batch in waiting.chunks(RETRY_BATCH) {
            still.extend(ask(batch, Instant::now() + RETRY_TIMEOUT)?);
        }
        waiting = still;
    }
    let answered = flows - waiting.len() as u32;
    let busy = footprint::sample(watched)?;
    // Idle means idle: a relay may hold a flow's buffers for a moment after
    // its last datagram (tcprelay gives its 64 KiB back after a second).
    thread::sleep(SETTLE);
    let after = footprint::sample(watched)?;
    result.push("answered", answered);
    result.push("pss_kib_just_after", busy.pss_kib);
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

/// Sends one datagram on each socket, then waits until `deadline` for the
/// echoes (one deadline for all, not one per socket: a relay that loses most of
/// them, as socat-listen does, must not make the run last flows × timeout).
/// Returns the sockets that heard nothing.
fn ask<'a>(sockets: &[&'a UdpSocket], deadline: Instant) -> io::Result<Vec<&'a UdpSocket>> {
    for socket in sockets {
        match socket.send(b"idle flow") {
            // An ICMP error left by an earlier try: this try is still sent.
            Err(e) if e.kind() != io::ErrorKind::ConnectionRefused => return Err(e),
            _ => {}
        }
    }
    let mut silent = Vec::new();
    let mut buf = [0u8; 64];
    for &socket in sockets {
        match deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) {
            Some(left) => {
                socket.set_nonblocking(false)?;
                socket.set_read_timeout(Some(left))?;
            }
            None => socket.set_nonblocking(true)?,
        }
        match socket.recv(&mut buf) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::ConnectionRefused => {
                silent.push(socket)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(silent)
}
