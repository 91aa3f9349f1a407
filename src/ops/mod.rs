//! Operating the relay: what watches it and what an operator reaches. The [`observe`] seam
//! through which the core reports each connection's events to the [`log`], `--explain` and
//! the [`metrics`]; and the [`admin`] endpoint (over [`admin_http`]) that serves the metrics
//! and takes a drain, and its client ([`admin_client`]: `tcprelay reload|drain|status|reopen-logs`).

pub mod admin;
pub mod admin_client;
pub mod admin_http;
pub mod flow_log;
pub mod log;
pub mod log_output;
pub(crate) mod log_time;
pub mod metrics;
pub mod observe;
pub mod udp_metrics;
