//! [`handle_flow`]: the life of one UDP flow on its own thread, top to bottom, as
//! `handle_conn` is a TCP connection's: connect its own upstream socket → send what the
//! client sent meanwhile → relay the upstream's replies to the client from the listening
//! socket → end (idle, response count, stop) → report.
//!
//! A flow is the UDP counterpart of a TCP connection, with one thread instead of two: the
//! client → upstream direction needs none, since the listener's receive thread sends each
//! client datagram on the flow's socket itself (a UDP send does not wait for the peer).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use crate::datagram::events::{DropCause, FlowEnd, Traffic};
use crate::datagram::flow::{
    Flow, MAX_DATAGRAM, RECEIVE_BUFFER, SEND_TIMEOUT, TICK, is_refused, is_timeout, is_too_large,
};
use crate::datagram::route::DatagramRoute;
use crate::limits::capacity::ProcessSlot;

/// The life of one flow, on its own thread, top to bottom: the UDP `handle_conn`.
///
/// The receive thread has put `flow` in the route's table with the client's first
/// datagram waiting in it; `slot` is its share of the process-wide cap, given back as this
/// returns.
pub fn handle_flow(
    route: Arc<DatagramRoute>,
    flow: Arc<Flow>,
    listener: Arc<UdpSocket>,
    slot: ProcessSlot,
) {
    // Connect: a socket of its own, connected to the upstream the route's policy picks, so
    // it sends only there and hears only from there.
    let (socket, upstream, live) = match route.upstreams.connect_datagram(flow.id) {
        Ok((socket, live)) => {
            let upstream = socket.peer_addr().ok();
            (Arc::new(socket), upstream, live)
        }
        Err(error) => {
            // Out of descriptors, ports or memory here: the process's limit, not the upstream.
            let cause = match error.is_local() {
                true => DropCause::ProcessLimit,
                false => DropCause::NoUpstream,
            };
            for _ in 0..flow.abandon() {
                route.dropped(cause, flow.client, &error);
            }
            let error = error.to_string();
            finish(&route, &flow, None, Traffic::default(), FlowEnd::UpstreamError, &error);
            drop(slot);
            return;
        }
    };
    // A datagram from the upstream itself (forged, or the upstream's own): its answers would
    // go back to it, and each of its answers come back here, for ever. Not relayed.
    if upstream.is_some_and(|upstream| same_address(upstream, flow.client)) {
        for _ in 0..flow.abandon() {
            route.dropped(DropCause::Loop, flow.client, &"a datagram from the flow's upstream");
        }
        finish(&route, &flow, upstream, Traffic::default(), FlowEnd::Loop, "");
        return drop(slot);
    }
    // Bounded waits: a full buffer drops a datagram rather than stopping the sender.
    let _ = socket.set_write_timeout(Some(SEND_TIMEOUT));
    if let Some(upstream) = upstream {
        route.events.flow_opened(flow.id, flow.client, upstream);
    }
    // Send what the client sent meanwhile; from now on the receive thread sends directly.
    for error in flow.open(&socket, &route.counts) {
        route.dropped(DropCause::SendFailed, flow.client, &error);
    }
    // Relay the upstream's replies until the flow ends.
    let (to_client, reason, error) = relay_replies(&route, &flow, &socket, &listener);
    if reason == FlowEnd::UpstreamError {
        // Its port is closed: the next flows try the route's other upstreams first.
        route.upstreams.datagram_refused(&live, flow.id, &error);
    }
    // End: out of the table, counted, its one line; then its share of the cap goes back.
    drop(live);
    finish(&route, &flow, upstream, to_client, reason, &error);
    drop(slot);
}

/// Whether `a` and `b` are one address and port, an IPv4 address and its IPv4-mapped IPv6
/// form (`::ffff:127.0.0.1`, as an IPv6 listener sees an IPv4 client) counting as one.
fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Takes the flow out of the route's table (the client's next datagram makes a new flow),
/// counts its end and writes its one `flow closed` line.
fn finish(
    route: &DatagramRoute,
    flow: &Arc<Flow>,
    upstream: Option<SocketAddr>,
    to_client: Traffic,
    reason: FlowEnd,
    error: &str,
) {
    route.flows.remove(flow);
    route.counts.flow_closed(reason);
    route.events.flow_closed(&flow.summary(upstream, to_client, reason, error));
}

/// Receives the upstream's replies and sends each, whole, to the client from the listening
/// socket, so the client sees them come from the address it sent to. One datagram out for
/// each datagram in: the relay never sends a client more than its upstream sent.
///
/// The wait for a reply is a read timeout, up to the flow's idle deadline and at most
/// [`TICK`]; the 64 KiB buffer is held only while replies come, and given back when the
/// flow goes quiet (a quiet flow waits with a 1-byte `peek`), so an idle flow costs its
/// thread's stack and its socket, no buffer.
fn relay_replies(
    route: &DatagramRoute,
    flow: &Arc<Flow>,
    socket: &UdpSocket,
    listener: &UdpSocket,
) -> (Traffic, FlowEnd, String) {
    let idle_timeout = route.config.udp_idle_timeout;
    let per_request = route.config.udp_responses;
    let mut to_client = Traffic::default();
    let mut replies = 0;
    let mut buffer: Option<Vec<u8>> = None;
    let mut read_timeout = None;
    loop {
        if let Some((reason, error)) = flow.ending() {
            return (to_client, reason, error);
        }
        let wait =
            idle_timeout.saturating_sub(flow.quiet_for()).clamp(Duration::from_millis(1), TICK);
        if read_timeout != Some(wait) {
            let _ = socket.set_read_timeout(Some(wait));
            read_timeout = Some(wait);
        }
        let received = match &mut buffer {
            // Quiet: wait for a datagram without holding a buffer for it. Any answer but a
            // timeout (a datagram, or Windows' "too large for 1 byte") means one is there.
            None => match socket.peek(&mut [0; 1]) {
                Err(error) if !is_timeout(&error) && !is_refused(&error) => Ok(None),
                other => other.map(|_| None),
            },
            Some(buffer) => socket.recv(buffer).map(Some),
        };
        match received {
            // One is waiting: take a buffer, and receive it whole on the next turn.
            Ok(None) => buffer = Some(vec![0; RECEIVE_BUFFER]),
            Ok(Some(len)) if len > MAX_DATAGRAM => {
                route.dropped(DropCause::TooLarge, flow.client, &format_args!("{len}+ bytes"));
            }
            Ok(Some(len)) => {
                if let Some((reason, error)) = flow.ending() {
                    return (to_client, reason, error);
                }
                flow.touch();
                replies += 1;
                // Out of the table before the last answer goes: the client's next datagram,
                // sent once it has the answer, makes a new flow instead of going to this
                // socket, which nobody reads from then on.
                let last =
                    per_request > 0 && route.flows.end_if_answered(flow, replies, per_request);
                let reply = buffer.as_deref().map_or(&[][..], |buffer| &buffer[..len]);
                match listener.send_to(reply, flow.client) {
                    Ok(_) => {
                        to_client.datagrams += 1;
                        to_client.bytes += len as u64;
                        route.counts.sent_to_client(len);
                    }
                    Err(error) => route.dropped(DropCause::SendFailed, flow.client, &error),
                }
                if last {
                    return (to_client, FlowEnd::Responses, String::new());
                }
            }
            Err(error) if is_too_large(&error) => {
                route.dropped(DropCause::TooLarge, flow.client, &"65,508+ bytes from upstream");
            }
            Err(error) if is_timeout(&error) => {
                buffer = None; // quiet for a while: give the buffer back
                if route.flows.end_if_idle(flow, idle_timeout) {
                    return (to_client, FlowEnd::IdleTimeout, String::new());
                }
            }
            Err(error) => return (to_client, FlowEnd::UpstreamError, error.to_string()),
        }
    }
}
