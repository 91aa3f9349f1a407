//! [`FlowLog`]: what a UDP route's flows write to the log, as the datagram relay tells it
//! ([`FlowEvents`]): one `flow closed` line per flow, debug lines for the rest, and drops as
//! at most one warning per cause a second, which says how many datagrams it stands for.
//!
//! Drops come on the receive thread, by the million in a flood of forged sources: each one
//! costs an atomic add here, and only the first of a second builds a line, so the log
//! (its lock, its limiter, its writer) never slows the thread every client depends on.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::counter::Counter;
use crate::datagram::events::{DropCause, FlowEvents, FlowSummary};
use crate::ops::log::Log;

/// At most one `datagram dropped` line per cause in this many milliseconds.
const DROP_LINE_EVERY_MS: u64 = 1000;

/// The log of one UDP route, under its label (`route=`).
#[derive(Debug)]
pub struct FlowLog {
    route: String,
    log: Log,
    started: Instant,
    /// Per cause (`cause as usize`): when the next drop line may be written, in ms from
    /// `started`, and the drops since the last line.
    next_drop_line: [Counter; DropCause::ALL.len()],
    drops_unsaid: [Counter; DropCause::ALL.len()],
}

impl FlowLog {
    /// The log of the route labelled `route`, at `log`'s level.
    pub fn new(route: String, log: Log) -> FlowLog {
        FlowLog {
            route,
            log,
            started: Instant::now(),
            next_drop_line: std::array::from_fn(|_| Counter::new(0)),
            drops_unsaid: std::array::from_fn(|_| Counter::new(0)),
        }
    }

    /// Whether a drop of `cause` gets a line now; if so, how many drops it stands for.
    fn drop_line_due(&self, cause: DropCause) -> Option<u64> {
        let index = cause as usize;
        self.drops_unsaid[index].fetch_add(1);
        let now = self.started.elapsed().as_millis() as u64;
        let next = &self.next_drop_line[index];
        // A plain load and store: two threads may both write a line in the same moment,
        // which costs a line, never a count.
        if now < next.get() {
            return None;
        }
        next.set(now + DROP_LINE_EVERY_MS);
        Some(self.drops_unsaid[index].take())
    }
}

impl FlowEvents for FlowLog {
    fn flow_opened(&self, id: u64, client: SocketAddr, upstream: SocketAddr) {
        self.log.debug(
            "flow opened",
            &[("route", &self.route), ("flow", &id), ("client", &client), ("upstream", &upstream)],
        );
    }

    fn flow_closed(&self, flow: &FlowSummary<'_>) {
        let upstream: &dyn Display = match &flow.upstream {
            Some(upstream) => upstream,
            None => &"-",
        };
        let duration_ms = flow.duration.as_millis();
        let fields: &[(&str, &dyn Display)] = &[
            ("route", &self.route),
            ("flow", &flow.id),
            ("client", &flow.client),
            ("upstream", upstream),
            ("datagrams_to_upstream", &flow.to_upstream.datagrams),
            ("bytes_to_upstream", &flow.to_upstream.bytes),
            ("datagrams_to_client", &flow.to_client.datagrams),
            ("bytes_to_client", &flow.to_client.bytes),
            ("duration_ms", &duration_ms),
            ("reason", &flow.reason),
        ];
        if flow.error.is_empty() {
            self.log.info("flow closed", fields);
        } else {
            let error: &dyn Display = &flow.error;
            self.log.info("flow closed", &[fields, &[("error", error)]].concat());
        }
    }

    fn dropped(&self, cause: DropCause, client: SocketAddr, detail: &dyn Display) {
        let Some(datagrams) = self.drop_line_due(cause) else { return };
        self.log.warn(
            "datagram dropped",
            &[
                ("route", &self.route),
                ("client", &client),
                ("reason", &cause),
                ("detail", detail),
                ("datagrams", &datagrams),
            ],
        );
    }

    fn route_info(&self, message: &str) {
        self.log.info(message, &[("route", &self.route)]);
    }

    fn receive_failed(&self, error: &io::Error) {
        self.log.warn("receive failed", &[("route", &self.route), ("error", error)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::logging::LogLevel;

    /// A flood of drops makes one line a second per cause, each counting what it stands for.
    #[test]
    fn drops_make_one_line_a_second_per_cause() {
        let log = FlowLog::new("udp:test".into(), Log::new(LogLevel::Error));
        assert_eq!(log.drop_line_due(DropCause::MaxFlows), Some(1));
        for _ in 0..999 {
            assert_eq!(log.drop_line_due(DropCause::MaxFlows), None);
        }
        assert_eq!(log.drop_line_due(DropCause::Denied), Some(1), "each cause on its own");
        log.next_drop_line[DropCause::MaxFlows as usize].set(0); // a second later
        assert_eq!(log.drop_line_due(DropCause::MaxFlows), Some(1000));
    }
}
