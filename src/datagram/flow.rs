//! One flow: [`Flow`], what the receive thread and the flow's own thread share (its
//! client, its idle clock, its way to the upstream, its counts), and the sizes and waits
//! every flow uses. Its life is in handle_flow.rs.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::counter::Counter;
use crate::datagram::counts::DatagramCounts;
use crate::datagram::events::{FlowEnd, FlowSummary, Traffic};
use crate::lock::lock;

/// The largest UDP payload over IPv4 (65,535 less the 8-byte UDP and 20-byte IP headers);
/// the largest datagram relayed, over IPv6 too.
pub const MAX_DATAGRAM: usize = 65_507;

/// The size of every receive buffer: one byte more than [`MAX_DATAGRAM`]. std has no
/// `MSG_TRUNC`, and a datagram longer than the buffer is cut to fit without a word; a
/// datagram that *fills* this buffer was longer than any relayed one, so it is dropped
/// rather than forwarded cut.
pub const RECEIVE_BUFFER: usize = MAX_DATAGRAM + 1;

/// How often a waiting flow thread looks at its flag, at the most: std cannot wake a
/// thread blocked in `recv` on a UDP socket (UDP has no `shutdown` in std), so a stop or a
/// drain's end reaches each flow within this. A quiet flow wakes this often, which costs
/// little (docs/operations.md, "UDP routes", has the figure measured).
pub const TICK: Duration = Duration::from_secs(1);

/// What the client sent before the flow's upstream socket was connected, kept for it in
/// order, up to 64 datagrams and 64 KiB; beyond that the client's datagrams are dropped
/// (`send_failed`). Connecting takes microseconds for an IP address, up to the resolver's
/// time for a host name.
const MAX_WAITING: (usize, usize) = (64, 64 * 1024);

/// How long a send may wait for room in a socket's buffer before the datagram is dropped
/// (`send_failed`). A UDP send waits only when the kernel's send buffer is full; the
/// receive thread must not wait long on one flow while others' datagrams queue behind.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(10);

/// The flow's way to its upstream, as the receive thread finds it.
#[derive(Debug)]
enum UpstreamSide {
    /// The flow's thread is still connecting: datagrams wait here, in order, with their
    /// total size.
    Connecting(Vec<Vec<u8>>, usize),
    /// Connected: the receive thread sends on it.
    Open(Arc<UdpSocket>),
    /// The flow has ended: a datagram for it belongs to a new flow.
    Ended,
}

/// What the receive thread did with a client datagram.
#[derive(Debug)]
pub enum Forwarded {
    /// Sent to the upstream, or kept until the upstream socket is connected.
    Done,
    /// Dropped (counted by the caller as `send_failed`), with why.
    Dropped(String),
    /// The flow ended just now: the datagram starts a new flow.
    Ended,
}

/// One client address's flow: shared by the receive thread (which forwards the client's
/// datagrams) and the flow's thread (which relays the replies).
#[derive(Debug)]
pub struct Flow {
    /// Unique in the process, for the log (`flow=`).
    pub id: u64,
    /// The client's address (IP and port): the flow's key.
    pub client: SocketAddr,
    started: Instant,
    /// Milliseconds from `started` to the last datagram either way: the idle clock, one
    /// for both directions, so a one-way stream keeps its flow.
    last_datagram_ms: Counter,
    /// Why the flow must end, set once by a stop, a drain's end, a reload, or a send that
    /// found the upstream's port closed.
    ending: OnceLock<FlowEnd>,
    /// That send's error, for the `flow closed` line.
    refused: OnceLock<String>,
    upstream: Mutex<UpstreamSide>,
    to_upstream: (Counter, Counter),
}

/// The next flow id, unique across every UDP route of the process.
fn next_flow_id() -> u64 {
    static NEXT: Counter = Counter::new(1);
    NEXT.fetch_add(1)
}

impl Flow {
    /// A flow for `client`, whose first datagram has just come; not connected yet.
    pub fn new(client: SocketAddr) -> Flow {
        Flow {
            id: next_flow_id(),
            client,
            started: Instant::now(),
            last_datagram_ms: Counter::new(0),
            ending: OnceLock::new(),
            refused: OnceLock::new(),
            upstream: Mutex::new(UpstreamSide::Connecting(Vec::new(), 0)),
            to_upstream: (Counter::new(0), Counter::new(0)),
        }
    }

    /// A datagram went either way now: the idle clock starts again.
    pub fn touch(&self) {
        self.last_datagram_ms.set(self.started.elapsed().as_millis() as u64);
    }

    /// How long since the last datagram either way.
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_datagram_ms.get());
        self.started.elapsed().saturating_sub(last)
    }

    /// Asks the flow's thread to end the flow for `reason` (within [`TICK`]); the first
    /// reason given wins.
    pub fn end(&self, reason: FlowEnd) {
        let _ = self.ending.set(reason);
    }

    /// Why the flow must end, once a stop, a drain's end, a reload or a refused send said
    /// so, with the refused send's error (empty for the others).
    pub fn ending(&self) -> Option<(FlowEnd, String)> {
        let reason = self.ending.get().copied()?;
        Some((reason, self.refused.get().cloned().unwrap_or_default()))
    }

    /// A send to the upstream failed. If the upstream's port is closed, the flow ends
    /// (within a [`TICK`]) as if its own receive had been told: an ICMP port unreachable
    /// is told to whichever call on the socket comes next, and a send that takes it leaves
    /// the flow's receive waiting for an answer that will never come.
    fn send_failed(&self, error: &io::Error) {
        if is_refused(error) {
            let _ = self.refused.set(error.to_string());
            self.end(FlowEnd::UpstreamError);
        }
    }

    /// No client datagram is forwarded from now on (see [`Forwarded::Ended`]).
    pub fn close(&self) {
        *lock(&self.upstream) = UpstreamSide::Ended;
    }

    /// Closes the flow if the upstream sent `replies`, at least `per_request` for each
    /// datagram the client sent to it (nginx's `proxy_responses` rule); returns whether it
    /// did. The count is read under the lock a [`forward`](Flow::forward) holds while it
    /// sends and counts, so a datagram is either counted here, and its answers awaited, or
    /// finds the flow closed and makes a new one: never sent to a socket no one reads.
    pub fn close_if_answered(&self, replies: u64, per_request: u64) -> bool {
        let mut upstream = lock(&self.upstream);
        if replies < per_request.saturating_mul(self.to_upstream.0.get()) {
            return false;
        }
        *upstream = UpstreamSide::Ended;
        true
    }

    /// Sends a client datagram to the upstream, or keeps it while the flow connects.
    /// Called by the receive thread only, so datagrams go out in the order they came.
    pub fn forward(&self, datagram: &[u8], counts: &DatagramCounts) -> Forwarded {
        let mut upstream = lock(&self.upstream);
        match &mut *upstream {
            UpstreamSide::Open(socket) => match socket.send(datagram) {
                Ok(_) => {
                    self.count_to_upstream(datagram.len(), counts);
                    Forwarded::Done
                }
                Err(error) => {
                    self.send_failed(&error);
                    Forwarded::Dropped(error.to_string())
                }
            },
            UpstreamSide::Connecting(waiting, bytes) => {
                if waiting.len() >= MAX_WAITING.0 || *bytes + datagram.len() > MAX_WAITING.1 {
                    return Forwarded::Dropped("too much waiting for the upstream socket".into());
                }
                *bytes += datagram.len();
                waiting.push(datagram.to_vec());
                Forwarded::Done
            }
            UpstreamSide::Ended => Forwarded::Ended,
        }
    }

    /// The upstream socket is connected: sends what waited, in order, then lets the receive
    /// thread send directly. Returns the send errors of the datagrams that waited.
    ///
    /// The waiting datagrams are taken out and sent without the lock, batch after batch,
    /// so the receive thread is never kept waiting for these sends; it queues behind them
    /// until the queue is found empty, and only then sends directly: the order holds.
    pub fn open(&self, socket: &Arc<UdpSocket>, counts: &DatagramCounts) -> Vec<io::Error> {
        let mut errors = Vec::new();
        loop {
            let waiting = match &mut *lock(&self.upstream) {
                UpstreamSide::Connecting(waiting, bytes) if !waiting.is_empty() => {
                    *bytes = 0;
                    std::mem::take(waiting)
                }
                upstream @ UpstreamSide::Connecting(..) => {
                    *upstream = UpstreamSide::Open(Arc::clone(socket));
                    return errors;
                }
                // Ended meanwhile (a stop): nothing more to send.
                _ => return errors,
            };
            for datagram in waiting {
                match socket.send(&datagram) {
                    Ok(_) => self.count_to_upstream(datagram.len(), counts),
                    Err(error) => {
                        self.send_failed(&error);
                        errors.push(error);
                    }
                }
            }
        }
    }

    /// The datagrams that waited for a socket that never came, forgotten; how many.
    pub fn abandon(&self) -> usize {
        match std::mem::replace(&mut *lock(&self.upstream), UpstreamSide::Ended) {
            UpstreamSide::Connecting(waiting, _) => waiting.len(),
            _ => 0,
        }
    }

    fn count_to_upstream(&self, bytes: usize, counts: &DatagramCounts) {
        counts.sent_to_upstream(bytes);
        self.to_upstream.0.fetch_add(1);
        self.to_upstream.1.fetch_add(bytes as u64);
    }

    /// The flow as its `flow closed` line tells it.
    pub fn summary<'a>(
        &self,
        upstream: Option<SocketAddr>,
        to_client: Traffic,
        reason: FlowEnd,
        error: &'a str,
    ) -> FlowSummary<'a> {
        FlowSummary {
            id: self.id,
            client: self.client,
            upstream,
            to_upstream: Traffic {
                datagrams: self.to_upstream.0.get(),
                bytes: self.to_upstream.1.get(),
            },
            to_client,
            duration: self.started.elapsed(),
            reason,
            error,
        }
    }
}

/// A read timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A datagram longer than the buffer, as Windows reports it: `WSAEMSGSIZE` (10040), the
/// buffer filled, and no sender's address. Unix cuts the datagram silently instead, which
/// the one-byte-larger buffer shows ([`RECEIVE_BUFFER`]).
pub fn is_too_large(error: &io::Error) -> bool {
    cfg!(windows) && error.raw_os_error() == Some(10040)
}

/// The upstream's port is closed: an ICMP port unreachable, which a connected UDP socket
/// reports on its next call (Windows says "reset").
pub fn is_refused(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset)
}
