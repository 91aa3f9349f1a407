//! Datagrams per second and loss: `flows` client sockets, each sending
//! `size`-byte datagrams to the target for `secs` seconds and counting the
//! echoes that come back.
//!
//! Two ways to send:
//! - a window (the default, `--window 32`): each flow keeps at most that many
//!   datagrams unanswered, sending the next as an echo comes back. This finds
//!   how fast the relay forwards without flooding its buffers. A flow that
//!   hears nothing for `WRITE_OFF` counts its unanswered datagrams as in
//!   flight no longer (they may still arrive late and be counted) and sends on,
//!   so a relay that loses datagrams slows down but never stalls the run.
//! - an offered rate (`--rate PPS`, all flows together): each flow sends its
//!   share on a clock, whatever comes back, as a game or a tunnel would. Loss
//!   at the same offered rate compares relays fairly.
//!
//! Lost = sent − received after a last `DRAIN` of listening. Replies that are
//! corrupt, from another flow, or out of order within the flow are counted
//! separately: a relay must never produce them.

use crate::echo::is_timeout;
use crate::result_line::Measurement;
use crate::{footprint, payload, receive_drops, switches};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// How long a windowed flow waits for any echo before writing its window off.
const WRITE_OFF: Duration = Duration::from_millis(50);
/// How long every flow keeps listening after it stopped sending.
const DRAIN: Duration = Duration::from_millis(300);

/// One flood's shape.
pub struct Plan {
    pub target: SocketAddr,
    pub flows: u32,
    pub size: usize,
    pub duration: Duration,
    /// Datagrams per second offered by all flows together; 0 means windowed.
    pub rate: u64,
    pub window: u64,
    /// The relay's process, to read its CPU time and context switches.
    pub relay: Option<u32>,
}

/// What one flow counted.
#[derive(Default)]
struct Counts {
    sent: u64,
    received: u64,
    reordered: u64,
    foreign: u64,
    corrupt: u64,
    refused: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.received += other.received;
        self.reordered += other.reordered;
        self.foreign += other.foreign;
        self.corrupt += other.corrupt;
        self.refused += other.refused;
    }
}

/// The receiving half of a flow: checks each echo against the flow.
struct Receiver {
    flow: u32,
    last_seq: Option<u64>,
    counts: Counts,
}

impl Receiver {
    fn take(&mut self, datagram: &[u8]) {
        match payload::read(datagram) {
            None => self.counts.corrupt += 1,
            Some((flow, _)) if flow != self.flow => self.counts.foreign += 1,
            Some((_, seq)) => {
                self.counts.received += 1;
                if self.last_seq.is_some_and(|last| seq <= last) {
                    self.counts.reordered += 1;
                }
                self.last_seq = Some(seq);
            }
        }
    }

    /// Receives one datagram; `Ok(false)` on a timeout. An ICMP "port
    /// unreachable" (the relay not there) is counted, not fatal.
    fn receive(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<bool> {
        let mut received = socket.recv(buf);
        // A signal (a stopped and continued process, a profiler) is not an answer.
        while received.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::Interrupted) {
            received = socket.recv(buf);
        }
        match received {
            Ok(len) => {
                self.take(&buf[..len]);
                Ok(true)
            }
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.counts.refused += 1;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Runs the flood and returns its result line.
pub fn run(plan: &Plan) -> Measurement {
    let mut result = Measurement::new("flood");
    result.push("mode", if plan.rate == 0 { "window" } else { "rate" });
    result.push("flows", plan.flows);
    result.push("size", plan.size);
    if plan.rate == 0 {
        result.push("window", plan.window);
    } else {
        result.push("offered_pps", plan.rate);
    }
    let before = plan.relay.map(RelayCost::now);
    let drops_before = receive_drops::count();
    match flood(plan) {
        Err(e) => result.fail(&e),
        Ok((counts, elapsed)) => {
            if let (Some(before), Some(pid)) = (before, plan.relay) {
                // An echo is two datagrams through the relay, one each way.
                let echoes = counts.received.max(1) as f64;
                let after = RelayCost::now(pid);
                result.push_number(
                    "relay_cpu_us_per_echo",
                    (after.cpu_seconds - before.cpu_seconds) * 1e6 / echoes,
                    1,
                );
                result.push_number(
                    "relay_switches_per_echo",
                    after.switches.saturating_sub(before.switches) as f64 / echoes,
                    2,
                );
            }
            let secs = elapsed.as_secs_f64();
            let lost = counts.sent.saturating_sub(counts.received);
            result.push_number("secs", secs, 2);
            result.push("sent", counts.sent);
            result.push("received", counts.received);
            result.push("lost", lost);
            result.push_number("loss_pct", percent(lost, counts.sent), 3);
            result.push_number("pps", counts.received as f64 / secs, 0);
            result.push_number(
                "mbit_s",
                (counts.received * plan.size as u64 * 8) as f64 / secs / 1e6,
                1,
            );
            result.push("reordered", counts.reordered);
            result.push("foreign", counts.foreign);
            result.push("corrupt", counts.corrupt);
            result.push("refused", counts.refused);
            result.push("rcvbuf_errors", receive_drops::count().saturating_sub(drops_before));
            result
        }
    }
}

/// What the relay had spent at one moment: CPU seconds over its process tree
/// and context switches.
struct RelayCost {
    cpu_seconds: f64,
    switches: u64,
}

impl RelayCost {
    fn now(pid: u32) -> RelayCost {
        let zero = footprint::Footprint::default();
        let cpu_seconds = footprint::sample(footprint::Watched::Tree { root: pid })
            .map_or(0.0, |sample| sample.cpu_seconds_since(&zero));
        RelayCost { cpu_seconds, switches: switches::count(pid) }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// Every flow on its own thread(s), started together; returns the summed
/// counts and how long the sending lasted.
fn flood(plan: &Plan) -> io::Result<(Counts, Duration)> {
    let start = Arc::new(Barrier::new(plan.flows as usize + 1));
    let mut handles = Vec::new();
    for flow in 0..plan.flows {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(plan.target)?;
        let (start, size, duration) = (Arc::clone(&start), plan.size, plan.duration);
        let (rate, window) = (plan.rate, plan.window);
        let per_flow_rate = rate as f64 / plan.flows as f64;
        handles.push(thread::spawn(move || {
            start.wait();
            if rate == 0 {
                windowed(&socket, flow, size, window, duration)
            } else {
                paced(socket, flow, size, per_flow_rate, duration)
            }
        }));
    }
    start.wait();
    let began = Instant::now();
    let mut total = Counts::default();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(counts)) => total.add(&counts),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => {
                first_error = first_error.or(Some(io::Error::other("a flow thread panicked")))
            }
        }
    }
    let elapsed = began.elapsed().saturating_sub(DRAIN);
    match first_error {
        Some(e) => Err(e),
        None => Ok((total, elapsed)),
    }
}

fn windowed(
    socket: &UdpSocket,
    flow: u32,
    size: usize,
    window: u64,
    duration: Duration,
) -> io::Result<Counts> {
    socket.set_read_timeout(Some(WRITE_OFF))?;
    let mut datagram = vec![0u8; size];
    let mut buf = vec![0u8; crate::echo::MAX_DATAGRAM];
    let mut receiver = Receiver { flow, last_seq: None, counts: Counts::default() };
    let mut sent = 0u64;
    let mut in_flight = 0u64;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        while in_flight < window {
            payload::write(&mut datagram, flow, sent);
            match socket.send(&datagram) {
                Ok(_) => {
                    sent += 1;
                    in_flight += 1;
                }
                // A previous datagram's ICMP error surfaces on the next send.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    receiver.counts.refused += 1
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if receiver.receive(socket, &mut buf)? {
            in_flight = in_flight.saturating_sub(1);
        } else {
            in_flight = 0;
        }
    }
    drain(socket, &mut receiver, &mut buf)?;
    receiver.counts.sent = sent;
    Ok(receiver.counts)
}

fn paced(
    socket: UdpSocket,
    flow: u32,
    size: usize,
    rate: f64,
    duration: Duration,
) -> io::Result<Counts> {
    let listener = socket.try_clone()?;
    listener.set_read_timeout(Some(Duration::from_millis(20)))?;
    let began = Instant::now();
    let receiving = thread::spawn(move || -> io::Result<Counts> {
        let mut buf = vec![0u8; crate::echo::MAX_DATAGRAM];
        let mut receiver = Receiver { flow, last_seq: None, counts: Counts::default() };
        while began.elapsed() < duration + DRAIN {
            receiver.receive(&listener, &mut buf)?;
        }
        Ok(receiver.counts)
    });
    let mut datagram = vec![0u8; size];
    let mut sent = 0u64;
    let mut refused = 0u64;
    let mut send_error = None;
    while began.elapsed() < duration {
        // Catch up with the clock, then wait a millisecond: bursts of a
        // millisecond's share, as a paced sender on a busy machine sends.
        let due = (began.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            payload::write(&mut datagram, flow, sent);
            match socket.send(&datagram) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    send_error = Some(e);
                    break;
                }
            }
        }
        if send_error.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let mut counts =
        receiving.join().map_err(|_| io::Error::other("a receiving thread panicked"))??;
    if let Some(e) = send_error {
        return Err(e);
    }
    counts.sent = sent;
    counts.refused += refused;
    Ok(counts)
}

fn drain(socket: &UdpSocket, receiver: &mut Receiver, buf: &mut [u8]) -> io::Result<()> {
    socket.set_read_timeout(Some(DRAIN))?;
    while receiver.receive(socket, buf)? {}
    Ok(())
}
