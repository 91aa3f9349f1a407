//! The workloads of docs/benchmarks.md, by name, with the upstream each one needs and
//! one function that runs any of them.
//!
//! 1. `bulk-up` / `bulk-down`: throughput of 1 or N streams for a fixed time,
//!    client → sink or source → client, in Gbit/s. The relay's CPU seconds
//!    per GiB (workload 6) are measured during the same runs.
//! 2. `ping-pong`: small messages on one connection; p50, p99, p99.9.
//! 3. `keep-alive`: request rate over many concurrent connections.
//! 4. `connection-rate`: connect, one exchange, close; connections per second.
//! 5. `idle`: hold N connections, check a sample, read memory and threads.

use crate::bulk::{self, Direction};
use crate::footprint::Watched;
use crate::result_line::Measurement;
use crate::upstreams::UpstreamKind;
use crate::{connection_rate, idle, keep_alive, ping_pong};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// One workload with its shape; durations are given separately.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// Client → relay → sink, over `streams` parallel connections.
    BulkUpload {
        /// Parallel connections.
        streams: usize,
    },
    /// Source → relay → client, over `streams` parallel connections.
    BulkDownload {
        /// Parallel connections.
        streams: usize,
    },
    /// One connection, one small message in flight at a time.
    PingPong {
        /// Bytes per message.
        message_size: usize,
    },
    /// `connections` connections, each with one message in flight.
    KeepAlive {
        /// Concurrent connections.
        connections: usize,
        /// Bytes per message.
        message_size: usize,
    },
    /// `workers` threads, each connecting, exchanging once and closing.
    ConnectionRate {
        /// Concurrent connectors.
        workers: usize,
    },
    /// `connections` connections held open at once; with `after_bulk`, every fourth moved
    /// bulk data both ways first (`idle-after-bulk`).
    Idle {
        /// Connections to hold.
        connections: usize,
        /// Whether a quarter of them move `idle::PULL_BYTES` each way before sitting idle.
        after_bulk: bool,
    },
}

/// Defaults for the shape of each workload (overridable on the command line).
pub const DEFAULT_STREAMS: usize = 1;
/// Keep-alive request rate with many concurrent connections: 50, as redis-benchmark uses.
pub const DEFAULT_KEEP_ALIVE_CONNECTIONS: usize = 50;
/// Small enough to be one segment, large enough to carry a sequence number.
pub const DEFAULT_MESSAGE_SIZE: usize = 32;
/// Enough concurrent connectors to keep both cores busy with connection setup.
pub const DEFAULT_CONNECT_WORKERS: usize = 16;
/// 1,000 by default; peers.sh also holds 10 and 10,000.
pub const DEFAULT_IDLE_CONNECTIONS: usize = 1_000;
/// A quarter of 2,000 connections first pull 4 MiB each, then all sit idle.
pub const DEFAULT_IDLE_AFTER_BULK_CONNECTIONS: usize = 2_000;

impl Workload {
    /// The workload `name` with its default shape, or `None` if unknown.
    pub fn by_name(name: &str) -> Option<Workload> {
        Some(match name {
            "bulk-up" => Workload::BulkUpload { streams: DEFAULT_STREAMS },
            "bulk-down" => Workload::BulkDownload { streams: DEFAULT_STREAMS },
            "ping-pong" => Workload::PingPong { message_size: DEFAULT_MESSAGE_SIZE },
            "keep-alive" => Workload::KeepAlive {
                connections: DEFAULT_KEEP_ALIVE_CONNECTIONS,
                message_size: DEFAULT_MESSAGE_SIZE,
            },
            "connection-rate" => Workload::ConnectionRate { workers: DEFAULT_CONNECT_WORKERS },
            "idle" => Workload::Idle { connections: DEFAULT_IDLE_CONNECTIONS, after_bulk: false },
            "idle-after-bulk" => Workload::Idle {
                connections: DEFAULT_IDLE_AFTER_BULK_CONNECTIONS,
                after_bulk: true,
            },
            _ => return None,
        })
    }

    /// The name written into result lines.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::BulkUpload { .. } => "bulk-up",
            Workload::BulkDownload { .. } => "bulk-down",
            Workload::PingPong { .. } => "ping-pong",
            Workload::KeepAlive { .. } => "keep-alive",
            Workload::ConnectionRate { .. } => "connection-rate",
            Workload::Idle { after_bulk: false, .. } => "idle",
            Workload::Idle { after_bulk: true, .. } => "idle-after-bulk",
        }
    }

    /// The fields that tell this shape from others of the same workload, as
    /// the workload's own result line writes them.
    pub fn shape(&self) -> Vec<(&'static str, usize)> {
        match *self {
            Workload::BulkUpload { streams } | Workload::BulkDownload { streams } => {
                vec![("streams", streams)]
            }
            Workload::PingPong { message_size } => vec![("message_size", message_size)],
            Workload::KeepAlive { connections, message_size } => {
                vec![("connections", connections), ("message_size", message_size)]
            }
            Workload::ConnectionRate { workers } => vec![("workers", workers)],
            Workload::Idle { connections, .. } => vec![("connections", connections)],
        }
    }

    /// The result line of a run that failed with `error`.
    pub fn failed(&self, error: &dyn std::fmt::Display) -> Measurement {
        let mut measurement = Measurement::new(self.name());
        for (key, value) in self.shape() {
            measurement.push(key, value);
        }
        measurement.fail(error)
    }

    /// The upstream the relay under test must forward to.
    pub fn upstream(&self) -> UpstreamKind {
        match self {
            Workload::BulkUpload { .. } => UpstreamKind::Sink,
            Workload::BulkDownload { .. } => UpstreamKind::Source,
            Workload::PingPong { .. }
            | Workload::KeepAlive { .. }
            | Workload::ConnectionRate { .. } => UpstreamKind::Echo,
            Workload::Idle { .. } => UpstreamKind::QuietEcho,
        }
    }

    /// Runs the workload against `target` (a relay, or the upstream itself
    /// for the direct baseline) and measures `watched`, if given.
    ///
    /// `duration` bounds the measured window of the timed workloads; the idle
    /// workload is bounded by its connection count and the stall timeouts.
    pub fn run(
        &self,
        target: SocketAddr,
        duration: Duration,
        watched: Option<Watched>,
    ) -> io::Result<Measurement> {
        match *self {
            Workload::BulkUpload { streams } => {
                bulk::run(target, Direction::Upload, streams, duration, watched)
            }
            Workload::BulkDownload { streams } => {
                bulk::run(target, Direction::Download, streams, duration, watched)
            }
            Workload::PingPong { message_size } => ping_pong::run(target, message_size, duration),
            Workload::KeepAlive { connections, message_size } => {
                keep_alive::run(target, connections, message_size, duration)
            }
            Workload::ConnectionRate { workers } => connection_rate::run(target, workers, duration),
            Workload::Idle { connections, after_bulk } => {
                idle::run(target, connections, after_bulk, watched)
            }
        }
    }
}
