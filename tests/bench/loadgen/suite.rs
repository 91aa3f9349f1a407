//! The in-process suite that `cargo bench` runs: every workload, short,
//! against the upstreams directly and through tcprelay on threads of this
//! process, alternating the two, then one table.
//!
//! Everything shares one process here, so the CPU, memory and thread figures
//! are the whole process's: the load generator and upstreams in the `direct`
//! column, plus the relay in the `tcprelay` column. The relay's own share is
//! the difference. tests/bench/peers.sh measures a relay process on its own.

use crate::footprint::Watched;
use crate::inprocess_relay::InProcessRelay;
use crate::result_line::{Measurement, ResultLine};
use crate::summary;
use crate::upstreams::Upstreams;
use crate::workload::{self, Workload};
use std::io;
use std::time::Duration;

/// How long and how large each workload runs.
#[derive(Clone, Debug)]
pub struct SuitePlan {
    /// The measured window of each timed workload.
    pub duration: Duration,
    /// Stream counts for the bulk workloads.
    pub streams: Vec<usize>,
    /// Concurrent connections of the keep-alive workload.
    pub keep_alive_connections: usize,
    /// Concurrent connectors of the connection-rate workload.
    pub connect_workers: usize,
    /// Connection counts for the idle workload.
    pub idle_connections: Vec<usize>,
}

impl SuitePlan {
    /// `cargo bench`: about 30 seconds in all on two cores. 10,000 idle
    /// connections in one process would need 40,000 descriptors (client,
    /// relay both sides, upstream), more than the usual limit, so the short
    /// suite holds 1,000; peers.sh does 10,000.
    pub fn short() -> SuitePlan {
        SuitePlan {
            duration: Duration::from_secs(1),
            streams: vec![1, 4],
            keep_alive_connections: workload::DEFAULT_KEEP_ALIVE_CONNECTIONS,
            connect_workers: workload::DEFAULT_CONNECT_WORKERS,
            idle_connections: vec![1_000],
        }
    }

    /// No arguments (`cargo test --all-targets`): a few seconds that prove
    /// every workload still runs and checks its data.
    pub fn self_check() -> SuitePlan {
        SuitePlan {
            duration: Duration::from_millis(200),
            streams: vec![1, 2],
            keep_alive_connections: 8,
            connect_workers: 4,
            idle_connections: vec![50],
        }
    }

    fn workloads(&self) -> Vec<Workload> {
        let mut list = Vec::new();
        for &streams in &self.streams {
            list.push(Workload::BulkUpload { streams });
            list.push(Workload::BulkDownload { streams });
        }
        list.push(Workload::PingPong { message_size: workload::DEFAULT_MESSAGE_SIZE });
        list.push(Workload::KeepAlive {
            connections: self.keep_alive_connections,
            message_size: workload::DEFAULT_MESSAGE_SIZE,
        });
        list.push(Workload::ConnectionRate { workers: self.connect_workers });
        for &connections in &self.idle_connections {
            list.push(Workload::Idle { connections, after_bulk: false });
        }
        list
    }
}

/// The two columns of the in-process table.
#[derive(Clone, Copy)]
enum Candidate {
    Direct,
    Tcprelay,
}

impl Candidate {
    fn name(self) -> &'static str {
        match self {
            Candidate::Direct => "direct",
            Candidate::Tcprelay => "tcprelay",
        }
    }
}

/// Runs the suite, prints each result line as it arrives and then the
/// table. Fails if any run failed, after the table is printed.
pub fn run(plan: &SuitePlan) -> io::Result<()> {
    let upstreams = Upstreams::start()?;
    let mut lines = Vec::new();
    let mut failures = 0;
    for workload in plan.workloads() {
        for candidate in [Candidate::Direct, Candidate::Tcprelay] {
            let measurement = match run_one(&upstreams, workload, candidate, plan.duration) {
                Ok(measurement) => measurement,
                Err(error) => workload.failed(&error),
            };
            let line = format!("candidate={} {}", candidate.name(), measurement.line());
            println!("{line}");
            let parsed = ResultLine::parse(&line).expect("a measurement line has a workload");
            if !parsed.ok() {
                failures += 1;
            }
            lines.push(parsed);
        }
    }
    upstreams.stop()?;
    println!();
    print!("{}", summary::markdown_table(&lines));
    println!();
    println!(
        "In-process: CPU, memory and threads are the whole bench process's (load generator and \
         upstreams in `direct`, plus the relay in `tcprelay`); the relay's share is the difference."
    );
    if failures > 0 {
        return Err(io::Error::other(format!("{failures} workload runs failed")));
    }
    Ok(())
}

fn run_one(
    upstreams: &Upstreams,
    workload: Workload,
    candidate: Candidate,
    duration: Duration,
) -> io::Result<Measurement> {
    let upstream = upstreams.addr(workload.upstream());
    match candidate {
        Candidate::Direct => workload.run(upstream, duration, Some(Watched::ThisProcess)),
        Candidate::Tcprelay => {
            let relay = InProcessRelay::start(upstream)?;
            let measured = workload.run(relay.addr(), duration, Some(Watched::ThisProcess));
            // Stop the relay even when the workload failed, and report the
            // workload's error first: it is the more telling one.
            let finished = relay.finish();
            let measurement = measured?;
            finished?;
            Ok(measurement)
        }
    }
}
