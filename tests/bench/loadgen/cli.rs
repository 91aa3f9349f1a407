//! The command line: which command to run, with its options checked.
//!
//! Every mistake is an error naming the flag and the offending value; `main`
//! prints it and exits with status 2.

use crate::suite::SuitePlan;
use crate::workload::Workload;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The help text (`--help`).
pub const USAGE: &str = "\
The tcprelay load generator (tests/bench/relay.rs).

Usage:
  relay                         a few seconds of every workload, in-process (cargo test --all-targets)
  cargo bench --bench relay     the short suite: tcprelay in-process vs direct, then a table
  relay suite [--secs S] [--idle N,N]   the same with other durations or idle counts
  relay serve [--for S]         start the upstreams on 127.0.0.1:0, print one line
                                `upstreams echo=ADDR sink=ADDR source=ADDR quiet=ADDR`,
                                serve for S seconds (default 3600), then stop
  relay upstream-for WORKLOAD   print which upstream (echo, sink, source, quiet) a relay
                                must forward to for WORKLOAD
  relay run --workload W --target ADDR [--secs S] [--streams N] [--connections N]
            [--workers N] [--message-size B] [--relay-pid PID]
                                run one workload through the relay at ADDR (or directly
                                against an upstream) and print one `bench-result` line;
                                with --relay-pid, read that process tree's CPU, memory
                                and threads from /proc
  relay free-port               print a TCP port that was free on 127.0.0.1 just now
  relay wait-listening --port PORT [--timeout S]
                                wait until a socket listens on PORT (default 10 s)
  relay summarize FILE          turn result lines (with candidate=) into a markdown table
  relay --help                  this text

Workloads: bulk-up, bulk-down, ping-pong, keep-alive, connection-rate, idle, idle-after-bulk.
Under cargo, pass arguments after `--`: cargo bench --bench relay -- run --workload ...";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Print `USAGE`.
    Help,
    /// Run the in-process suite with this plan.
    Suite(SuitePlan),
    /// Serve the upstreams for this long.
    Serve {
        /// How long before stopping by itself.
        duration: Duration,
    },
    /// Print the upstream kind a workload needs.
    UpstreamFor(Workload),
    /// Run one workload.
    Run(RunOptions),
    /// Print a free port.
    FreePort,
    /// Wait until something listens on a port.
    WaitListening {
        /// The port.
        port: u16,
        /// How long to keep trying.
        timeout: Duration,
    },
    /// Summarize a file of result lines.
    Summarize {
        /// The file.
        input: PathBuf,
    },
}

/// Options of `run`.
#[derive(Debug)]
pub struct RunOptions {
    /// The workload, with its shape.
    pub workload: Workload,
    /// The relay (or upstream) to connect to.
    pub target: SocketAddr,
    /// The measured window.
    pub duration: Duration,
    /// The relay process to watch.
    pub relay_pid: Option<u32>,
}

/// A command-line mistake.
#[derive(Debug)]
pub enum UsageError {
    /// A command that does not exist.
    UnknownCommand(String),
    /// A flag the command does not take.
    UnknownFlag { command: String, flag: String },
    /// A flag given without its value.
    MissingValue(String),
    /// A required flag not given.
    MissingFlag { command: String, flag: &'static str },
    /// A value that does not parse or is out of range.
    BadValue { flag: String, value: String, expected: &'static str },
    /// An extra word after the command's arguments.
    Unexpected(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownCommand(word) => write!(f, "unknown command {word:?}"),
            UsageError::UnknownFlag { command, flag } => {
                write!(f, "{command}: unknown flag {flag:?}")
            }
            UsageError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            UsageError::MissingFlag { command, flag } => write!(f, "{command} needs {flag}"),
            UsageError::BadValue { flag, value, expected } => {
                write!(f, "{flag} {value:?}: expected {expected}")
            }
            UsageError::Unexpected(word) => write!(f, "unexpected argument {word:?}"),
        }
    }
}

/// The longest window a single `run` may ask for; every run stays bounded.
const LONGEST_RUN: f64 = 600.0;

/// The longest `serve` may run: a full peers.sh run with room to spare.
const LONGEST_SERVE: f64 = 7_200.0;

/// Parses the arguments after the program name.
///
/// `cargo bench` adds `--bench` to whatever it passes; it is dropped here,
/// and on its own it means "run the short suite". No arguments at all is the
/// self-check that `cargo test --all-targets` runs.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let under_cargo_bench = args.iter().any(|a| a == "--bench");
    let args: Vec<&str> = args.iter().map(String::as_str).filter(|&a| a != "--bench").collect();
    let Some((&command, rest)) = args.split_first() else {
        return Ok(Command::Suite(if under_cargo_bench {
            SuitePlan::short()
        } else {
            SuitePlan::self_check()
        }));
    };
    match command {
        "--help" | "-h" | "help" => Ok(Command::Help),
        "suite" => parse_suite(rest),
        "serve" => {
            let flags = Flags::parse("serve", rest, &["--for"])?;
            Ok(Command::Serve {
                duration: flags
                    .seconds("--for", LONGEST_SERVE)?
                    .unwrap_or(Duration::from_secs(3600)),
            })
        }
        "upstream-for" => match rest {
            [name] => Ok(Command::UpstreamFor(workload_named(name)?)),
            [] => Err(UsageError::MissingValue("upstream-for".to_string())),
            [_, extra, ..] => Err(UsageError::Unexpected(extra.to_string())),
        },
        "run" => parse_run(rest),
        "free-port" => match rest {
            [] => Ok(Command::FreePort),
            [extra, ..] => Err(UsageError::Unexpected(extra.to_string())),
        },
        "wait-listening" => {
            let flags = Flags::parse("wait-listening", rest, &["--port", "--timeout"])?;
            Ok(Command::WaitListening {
                port: flags.port("--port")?,
                timeout: flags
                    .seconds("--timeout", LONGEST_RUN)?
                    .unwrap_or(Duration::from_secs(10)),
            })
        }
        "summarize" => match rest {
            [file] => Ok(Command::Summarize { input: PathBuf::from(file) }),
            [] => Err(UsageError::MissingValue("summarize".to_string())),
            [_, extra, ..] => Err(UsageError::Unexpected(extra.to_string())),
        },
        other => Err(UsageError::UnknownCommand(other.to_string())),
    }
}

fn parse_suite(rest: &[&str]) -> Result<Command, UsageError> {
    let flags = Flags::parse("suite", rest, &["--secs", "--idle"])?;
    let mut plan = SuitePlan::short();
    if let Some(duration) = flags.seconds("--secs", LONGEST_RUN)? {
        plan.duration = duration;
    }
    if let Some(list) = flags.value("--idle") {
        plan.idle_connections =
            list.split(',').map(|n| positive("--idle", n)).collect::<Result<_, _>>()?;
    }
    Ok(Command::Suite(plan))
}

fn parse_run(rest: &[&str]) -> Result<Command, UsageError> {
    let flags = Flags::parse(
        "run",
        rest,
        &[
            "--workload",
            "--target",
            "--secs",
            "--streams",
            "--connections",
            "--workers",
            "--message-size",
            "--relay-pid",
        ],
    )?;
    let name = flags
        .value("--workload")
        .ok_or(UsageError::MissingFlag { command: "run".to_string(), flag: "--workload" })?;
    let mut workload = workload_named(name)?;
    // Apply the shape flags that fit this workload; the others are an error,
    // so a typo'd script never measures something other than it says.
    let count = |flag: &str| flags.value(flag).map(|v| positive(flag, v)).transpose();
    let mut used = vec!["--workload", "--target", "--secs", "--relay-pid"];
    match &mut workload {
        Workload::BulkUpload { streams } | Workload::BulkDownload { streams } => {
            *streams = count("--streams")?.unwrap_or(*streams);
            used.push("--streams");
        }
        Workload::PingPong { message_size } => {
            *message_size = message_size_flag(&flags)?.unwrap_or(*message_size);
            used.push("--message-size");
        }
        Workload::KeepAlive { connections, message_size } => {
            *connections = count("--connections")?.unwrap_or(*connections);
            *message_size = message_size_flag(&flags)?.unwrap_or(*message_size);
            used.extend(["--connections", "--message-size"]);
        }
        Workload::ConnectionRate { workers } => {
            *workers = count("--workers")?.unwrap_or(*workers);
            used.push("--workers");
        }
        Workload::Idle { connections, .. } => {
            *connections = count("--connections")?.unwrap_or(*connections);
            used.push("--connections");
        }
    }
    if let Some(flag) = flags.given().find(|flag| !used.contains(flag)) {
        return Err(UsageError::UnknownFlag {
            command: format!("run --workload {name}"),
            flag: flag.to_string(),
        });
    }
    let relay_pid = flags
        .value("--relay-pid")
        .map(|v| {
            v.parse::<u32>().map_err(|_| UsageError::BadValue {
                flag: "--relay-pid".to_string(),
                value: v.to_string(),
                expected: "a process id",
            })
        })
        .transpose()?;
    Ok(Command::Run(RunOptions {
        workload,
        target: flags.required_addr("--target")?,
        duration: flags.seconds("--secs", LONGEST_RUN)?.unwrap_or(Duration::from_secs(3)),
        relay_pid,
    }))
}

fn workload_named(name: &str) -> Result<Workload, UsageError> {
    Workload::by_name(name).ok_or_else(|| UsageError::BadValue {
        flag: "workload".to_string(),
        value: name.to_string(),
        expected: "one of bulk-up, bulk-down, ping-pong, keep-alive, connection-rate, idle, \
                   idle-after-bulk",
    })
}

fn message_size_flag(flags: &Flags<'_>) -> Result<Option<usize>, UsageError> {
    let Some(value) = flags.value("--message-size") else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(size) if (crate::exchange::MIN_MESSAGE_SIZE..=65_536).contains(&size) => Ok(Some(size)),
        _ => Err(UsageError::BadValue {
            flag: "--message-size".to_string(),
            value: value.to_string(),
            expected: "a byte count from 8 to 65536",
        }),
    }
}

fn positive(flag: &str, value: &str) -> Result<usize, UsageError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(UsageError::BadValue {
            flag: flag.to_string(),
            value: value.to_string(),
            expected: "a whole number from 1 to 1000000",
        }),
    }
}

/// `--flag value` pairs, checked against the flags a command accepts.
struct Flags<'a> {
    command: &'static str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Flags<'a> {
    fn parse(
        command: &'static str,
        args: &[&'a str],
        allowed: &[&str],
    ) -> Result<Flags<'a>, UsageError> {
        let mut pairs = Vec::new();
        let mut words = args.iter();
        while let Some(&flag) = words.next() {
            if !flag.starts_with("--") {
                return Err(UsageError::Unexpected(flag.to_string()));
            }
            if !allowed.contains(&flag) {
                return Err(UsageError::UnknownFlag {
                    command: command.to_string(),
                    flag: flag.to_string(),
                });
            }
            let value = words.next().ok_or_else(|| UsageError::MissingValue(flag.to_string()))?;
            pairs.push((flag, *value));
        }
        Ok(Flags { command, pairs })
    }

    /// The last value given for `flag`.
    fn value(&self, flag: &str) -> Option<&'a str> {
        self.pairs.iter().rev().find(|(f, _)| *f == flag).map(|(_, v)| *v)
    }

    fn given(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pairs.iter().map(|(flag, _)| *flag)
    }

    /// A duration in (possibly fractional) seconds, above 0 and at most
    /// `longest`.
    fn seconds(&self, flag: &str, longest: f64) -> Result<Option<Duration>, UsageError> {
        let Some(value) = self.value(flag) else {
            return Ok(None);
        };
        match value.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= longest => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(UsageError::BadValue {
                flag: flag.to_string(),
                value: value.to_string(),
                expected: if longest == LONGEST_SERVE {
                    "seconds, above 0 and at most 7200"
                } else {
                    "seconds, above 0 and at most 600"
                },
            }),
        }
    }

    fn port(&self, flag: &'static str) -> Result<u16, UsageError> {
        let value = self
            .value(flag)
            .ok_or(UsageError::MissingFlag { command: self.command.to_string(), flag })?;
        match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(UsageError::BadValue {
                flag: flag.to_string(),
                value: value.to_string(),
                expected: "a port number from 1 to 65535",
            }),
        }
    }

    fn required_addr(&self, flag: &'static str) -> Result<SocketAddr, UsageError> {
        let value = self
            .value(flag)
            .ok_or(UsageError::MissingFlag { command: self.command.to_string(), flag })?;
        value.parse().map_err(|_| UsageError::BadValue {
            flag: flag.to_string(),
            value: value.to_string(),
            expected: "IP:PORT, e.g. 127.0.0.1:8080",
        })
    }
}
