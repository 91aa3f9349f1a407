//! What the datagram relay tells whoever watches it, in its own words: a flow opened, a
//! flow closed ([`FlowSummary`], [`FlowEnd`]), a datagram dropped ([`DropCause`]). The
//! watchers (the log and the metrics, wired in server/) implement [`FlowEvents`]; datagram/
//! names none of them.

use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::time::Duration;

/// Why a flow ended: the `reason=` of its `flow closed` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEnd {
    /// No datagram either way for `udp-idle-timeout`.
    IdleTimeout,
    /// The upstream sent the `udp-responses` datagrams the route expects for each one the
    /// client sent.
    Responses,
    /// The route drained and the flow was still open at the end of `drain-timeout`.
    Drain,
    /// The route stopped.
    Stop,
    /// No upstream could be chosen or reached, or the upstream refused a datagram (an ICMP
    /// port unreachable comes back as `ECONNREFUSED` on a connected UDP socket).
    UpstreamError,
    /// A reload removed the route.
    Removed,
    /// The client is the flow's own upstream: relaying would loop (see [`DropCause::Loop`]).
    Loop,
}

impl FlowEnd {
    /// Every reason, in the order the metrics list them.
    pub const ALL: [FlowEnd; 7] = [
        FlowEnd::IdleTimeout,
        FlowEnd::Responses,
        FlowEnd::Drain,
        FlowEnd::Stop,
        FlowEnd::UpstreamError,
        FlowEnd::Removed,
        FlowEnd::Loop,
    ];

    /// The reason as the log and the metrics write it: `idle_timeout`, `responses`, ...
    pub fn name(self) -> &'static str {
        match self {
            FlowEnd::IdleTimeout => "idle_timeout",
            FlowEnd::Responses => "responses",
            FlowEnd::Drain => "drain",
            FlowEnd::Stop => "stop",
            FlowEnd::UpstreamError => "upstream_error",
            FlowEnd::Removed => "removed",
            FlowEnd::Loop => "loop",
        }
    }
}

impl Display for FlowEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a datagram was not relayed. UDP has no backpressure: what does not fit is dropped,
/// and every drop is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// It filled the receive buffer, so it may have been longer than 65,507 bytes and cut:
    /// never forwarded cut.
    TooLarge,
    /// A new client while the route holds `max-flows` flows.
    MaxFlows,
    /// A new flow of a client holding its share (`max-flows-per-client`) when few are free.
    ClientLimit,
    /// A client that `allow=`/`deny=` refuses.
    Denied,
    /// The process cannot hold another flow (its thread and socket) under its OS limits, or
    /// the OS refused the flow's thread.
    ProcessLimit,
    /// A new flow found no upstream to send to (resolution or socket failed).
    NoUpstream,
    /// Sending failed (the socket's buffer stayed full, or the OS said no), or the flow's
    /// queue was full while its upstream socket was being opened.
    SendFailed,
    /// A new client while the route drains: only open flows are still relayed.
    Draining,
    /// A datagram from the address of the very upstream its flow was given: relaying that
    /// upstream's answers back to it would bounce datagrams between the two for ever (the
    /// "Loop DoS" of CVE-2024-2169, started by one forged datagram).
    Loop,
}

impl DropCause {
    /// Every cause, in the order the metrics list them.
    pub const ALL: [DropCause; 9] = [
        DropCause::TooLarge,
        DropCause::MaxFlows,
        DropCause::ClientLimit,
        DropCause::Denied,
        DropCause::ProcessLimit,
        DropCause::NoUpstream,
        DropCause::SendFailed,
        DropCause::Draining,
        DropCause::Loop,
    ];

    /// The cause as the log and the metrics write it: `too_large`, `max_flows`, ...
    pub fn name(self) -> &'static str {
        match self {
            DropCause::TooLarge => "too_large",
            DropCause::MaxFlows => "max_flows",
            DropCause::ClientLimit => "client_limit",
            DropCause::Denied => "denied",
            DropCause::ProcessLimit => "process_limit",
            DropCause::NoUpstream => "no_upstream",
            DropCause::SendFailed => "send_failed",
            DropCause::Draining => "draining",
            DropCause::Loop => "loop",
        }
    }
}

impl Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Datagrams and bytes that went one way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams relayed.
    pub datagrams: u64,
    /// Their bytes (payload only).
    pub bytes: u64,
}

/// A flow that ended, for its one `flow closed` line.
#[derive(Debug)]
pub struct FlowSummary<'a> {
    /// The process-wide flow id.
    pub id: u64,
    /// The client's address: the flow's key.
    pub client: SocketAddr,
    /// The upstream address its socket was connected to, if one was.
    pub upstream: Option<SocketAddr>,
    /// Client → upstream.
    pub to_upstream: Traffic,
    /// Upstream → client.
    pub to_client: Traffic,
    /// From its first datagram to its end.
    pub duration: Duration,
    /// Why it ended.
    pub reason: FlowEnd,
    /// The error's text for `upstream_error`; empty otherwise.
    pub error: &'a str,
}

/// What happens to a UDP route and its flows, as datagram/ tells it: one call per event,
/// and the watcher decides what each is worth (a log line, a counter). Datagram drops can
/// come by the million in a flood: the watcher must not log each one.
pub trait FlowEvents: fmt::Debug + Send + Sync {
    /// A flow opened: its socket is connected to `upstream`.
    fn flow_opened(&self, id: u64, client: SocketAddr, upstream: SocketAddr);

    /// A flow ended.
    fn flow_closed(&self, flow: &FlowSummary<'_>);

    /// A datagram from (or, for `TooLarge` and `SendFailed`, to) `client` was dropped;
    /// `detail` says more (an error, a limit).
    fn dropped(&self, cause: DropCause, client: SocketAddr, detail: &dyn Display);

    /// An info line about the route itself (draining, stopped).
    fn route_info(&self, message: &str);

    /// Receiving on the listening socket failed (the loop goes on).
    fn receive_failed(&self, error: &std::io::Error);
}
