//! The commands, their options checked, and the self-check run with no
//! arguments.

use crate::flags::Flags;
use crate::result_line::Measurement;
use crate::{dns, echo, flood, idle_flows, summary};
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The help text (`--help`).
pub const USAGE: &str = "\
The tcprelay UDP load generator (tests/bench/udp_loadgen.rs).

Usage:
  udp                            check every workload against its own echo, about a second
  udp echo [--for S]             a UDP echo server on 127.0.0.1:0: prints `udp-echo=ADDR`,
                                 serves S seconds (default 3600)
  udp free-port                  print a UDP port that was free on 127.0.0.1 just now
  udp wait-ready --target ADDR [--timeout S]
                                 send a probe every 100 ms until it comes back (default 10 s)
  udp flood --target ADDR [--flows N] [--size B] [--secs S] [--window W | --rate PPS]
            [--relay-pid PID]
                                 N client sockets (default 1) sending B-byte datagrams
                                 (default 64) for S seconds (default 2), at most W unanswered
                                 per flow (default 32) or PPS per second in all; prints sent,
                                 received, loss, datagrams per second; with --relay-pid, the
                                 relay's CPU time and context switches per echo
  udp dns --target ADDR [--queries N] [--sockets one|per-query]
                                 N DNS queries (default 2000) one after another; p50/p99
  udp idle --target ADDR --relay-pid PID [--flows N]
                                 open N flows (default 1000), one datagram each, and read the
                                 relay's memory before and after from /proc
  udp summarize FILE             turn result lines (with candidate=) into markdown tables
  udp --help                     this text

Every address is on loopback. Under cargo, pass arguments after `--`.";

/// Why a command did not succeed.
pub enum Failure {
    /// A mistake on the command line: exit status 2.
    Usage(String),
    /// The command ran and failed.
    Run(io::Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Usage(message)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Run(error)
    }
}

/// Runs the command in `args`.
pub fn run(args: &[String]) -> Result<(), Failure> {
    let Some((command, rest)) = args.split_first() else {
        return self_check();
    };
    match command.as_str() {
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "echo" => {
            let flags = Flags::parse("echo", rest, &["--for"])?;
            let secs = flags.number("--for", 3600, 1, 86_400)?;
            let server = echo::Echo::start(Duration::from_secs(secs))?;
            println!("udp-echo={}", server.addr);
            io::stdout().flush()?;
            server.join();
            Ok(())
        }
        "free-port" => {
            Flags::parse("free-port", rest, &[])?;
            println!("{}", UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
            Ok(())
        }
        "wait-ready" => {
            let flags = Flags::parse("wait-ready", rest, &["--target", "--timeout"])?;
            let timeout = Duration::from_secs(flags.number("--timeout", 10, 1, 600)?);
            Ok(wait_ready(flags.target()?, timeout)?)
        }
        "flood" => {
            let known =
                ["--target", "--flows", "--size", "--secs", "--window", "--rate", "--relay-pid"];
            let flags = Flags::parse("flood", rest, &known)?;
            let plan = flood::Plan {
                target: flags.target()?,
                flows: flags.number("--flows", 1, 1, 10_000)? as u32,
                size: flags.number(
                    "--size",
                    64,
                    crate::payload::HEADER as u64,
                    echo::MAX_DATAGRAM as u64,
                )? as usize,
                duration: Duration::from_secs_f64(flags.get("--secs", 2.0f64)?.clamp(0.05, 3600.0)),
                rate: flags.number("--rate", 0, 0, 10_000_000)?,
                window: flags.number("--window", 32, 1, 100_000)?,
                relay: match flags.number("--relay-pid", 0, 0, u64::from(u32::MAX))? {
                    0 => None,
                    pid => Some(pid as u32),
                },
            };
            print_result(flood::run(&plan))
        }
        "dns" => {
            let flags = Flags::parse("dns", rest, &["--target", "--queries", "--sockets"])?;
            let per_query = match flags.get("--sockets", "one".to_string())?.as_str() {
                "one" => false,
                "per-query" => true,
                other => {
                    return Err(
                        format!("dns: --sockets '{other}': expected one or per-query").into()
                    );
                }
            };
            print_result(dns::run(
                flags.target()?,
                flags.number("--queries", 2000, 1, 1_000_000)?,
                per_query,
            ))
        }
        "idle" => {
            let flags = Flags::parse("idle", rest, &["--target", "--relay-pid", "--flows"])?;
            let pid = flags.number("--relay-pid", 0, 1, u64::from(u32::MAX))? as u32;
            print_result(idle_flows::run(
                flags.target()?,
                flags.number("--flows", 1000, 1, 100_000)? as u32,
                pid,
            ))
        }
        "summarize" => {
            let [file] = rest else {
                return Err("summarize: expected one FILE of result lines".to_string().into());
            };
            let text = std::fs::read_to_string(file)
                .map_err(|e| io::Error::new(e.kind(), format!("reading {file}: {e}")))?;
            print!("{}", summary::tables(&text));
            Ok(())
        }
        other => Err(format!("unknown command '{other}'").into()),
    }
}

fn print_result(result: Measurement) -> Result<(), Failure> {
    println!("{}", result.line());
    if result.is_ok() {
        Ok(())
    } else {
        Err(io::Error::other("the run failed (ok=false above)").into())
    }
}

/// Sends a probe every 100 ms until one comes back: a relay is ready when a
/// datagram makes the round trip, whatever its log says.
fn wait_ready(target: SocketAddr, timeout: Duration) -> io::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let began = Instant::now();
    let mut buf = [0u8; 64];
    while began.elapsed() < timeout {
        // Refused (nothing listening yet) shows up on send or recv: try again.
        let _ = socket.send(b"ready?");
        if let Ok(len) = socket.recv(&mut buf) {
            if &buf[..len] == b"ready?" {
                return Ok(());
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no echo through {target} within {timeout:?}"),
    ))
}

/// Every workload for a moment against our own echo: they work end to end,
/// nothing is lost, corrupt, foreign or reordered on a direct path.
fn self_check() -> Result<(), Failure> {
    let server = echo::Echo::start(Duration::from_secs(5))?;
    let target = server.addr;
    wait_ready(target, Duration::from_secs(5))?;
    let short = Duration::from_millis(200);
    let this = Some(std::process::id());
    let windowed = flood::Plan {
        target,
        flows: 2,
        size: 1400,
        duration: short,
        rate: 0,
        window: 4,
        relay: this,
    };
    let paced = flood::Plan { rate: 2000, window: 0, size: 64, ..windowed };
    let results = [
        flood::run(&windowed),
        flood::run(&paced),
        dns::run(target, 50, false),
        dns::run(target, 20, true),
        idle_flows::run(target, 20, std::process::id()),
    ];
    let mut failed = false;
    for result in &results {
        let line = result.line();
        println!("{line}");
        let fields = crate::result_line::ResultLine::parse(&line);
        let clean = fields.is_some_and(|f| {
            f.ok()
                && ["reordered", "foreign", "corrupt", "lost"]
                    .iter()
                    .all(|k| f.number(k).unwrap_or(0.0) == 0.0)
                && f.number("received").or(f.number("answered")).unwrap_or(0.0) > 0.0
        });
        failed |= !clean;
    }
    if failed {
        return Err(io::Error::other(
            "self-check: a workload failed or lost datagrams on loopback",
        )
        .into());
    }
    Ok(())
}
