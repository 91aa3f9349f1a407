//! [`FlowLog`]: what a UDP route's flows write to the log, as the datagram relay tells it
//! ([`FlowEvents`]): one `flow closed` line per flow, debug lines for the rest, and drops as
//! warnings that the log's limiter folds into one `suppressed similar lines` summary per
//! cause in a flood (their `reason=` is the cause), never one line per datagram.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;

use crate::datagram::events::{DropCause, FlowEvents, FlowSummary};
use crate::ops::log::Log;

/// The log of one UDP route, under its label (`route=`).
#[derive(Debug)]
pub struct FlowLog {
    route: String,
    log: Log,
}

impl FlowLog {
    /// The log of the route labelled `route`, at `log`'s level.
    pub fn new(route: String, log: Log) -> FlowLog {
        FlowLog { route, log }
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
        self.log.warn(
            "datagram dropped",
            &[("route", &self.route), ("client", &client), ("reason", &cause), ("detail", detail)],
        );
    }

    fn route_info(&self, message: &str) {
        self.log.info(message, &[("route", &self.route)]);
    }

    fn receive_failed(&self, error: &io::Error) {
        self.log.warn("receive failed", &[("route", &self.route), ("error", error)]);
    }
}
