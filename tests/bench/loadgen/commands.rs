//! What each command does, once the command line has been checked.

use crate::cli::{Command, RunOptions, USAGE};
use crate::footprint::Watched;
use crate::result_line::ResultLine;
use crate::suite;
use crate::summary;
use crate::upstreams::{UpstreamKind, Upstreams};
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `command`; an error means the command did not do its job (exit 1).
pub fn execute(command: Command) -> io::Result<()> {
    match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Suite(plan) => suite::run(&plan),
        Command::Serve { duration } => serve(duration),
        Command::UpstreamFor(workload) => {
            println!("{}", workload.upstream());
            Ok(())
        }
        Command::Run(options) => run(&options),
        Command::FreePort => {
            // Racy by nature (someone may take the port before it is used),
            // but the runner script binds it within milliseconds and fails
            // loudly if it is taken. Peers like socat and HAProxy's config
            // need a number up front.
            let listener = TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?.port());
            Ok(())
        }
        Command::WaitListening { port, timeout } => wait_listening(port, timeout),
        Command::Summarize { input } => summarize(&input),
    }
}

/// Starts the upstreams, prints their addresses on one line, and serves
/// until `duration` passes (the runner script usually stops it sooner).
fn serve(duration: Duration) -> io::Result<()> {
    let upstreams = Upstreams::start()?;
    let mut line = "upstreams".to_string();
    for kind in UpstreamKind::ALL {
        line.push_str(&format!(" {kind}={}", upstreams.addr(kind)));
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    thread::sleep(duration);
    upstreams.stop()
}

/// Runs one workload and prints its result line, also when it failed.
fn run(options: &RunOptions) -> io::Result<()> {
    let watched = options.relay_pid.map(|root| Watched::Tree { root });
    match options.workload.run(options.target, options.duration, watched) {
        Ok(measurement) => {
            println!("{}", measurement.line());
            if measurement.is_ok() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "the {} workload did not succeed: see the result line",
                    options.workload.name()
                )))
            }
        }
        Err(error) => {
            println!("{}", options.workload.failed(&error).line());
            Err(error)
        }
    }
}

/// Waits until some socket listens on TCP `port`, checking every 20 ms.
///
/// It reads the kernel's socket tables instead of trying to connect: a test
/// connection through a relay would reach the upstream too, and an iperf3
/// server, for one, takes a connection that sends nothing as a failed test.
fn wait_listening(port: u16, timeout: Duration) -> io::Result<()> {
    let give_up = Instant::now() + timeout;
    while !is_listening(port)? {
        if Instant::now() >= give_up {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listened on port {port} within {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether /proc/net/tcp or tcp6 lists a listening socket on `port`.
/// Each line reads `sl local_address rem_address st ...`, the local address
/// as hex `ADDR:PORT`, and state `0A` is LISTEN.
fn is_listening(port: u16) -> io::Result<bool> {
    let wanted = format!(":{port:04X}");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match fs::read_to_string(table) {
            Ok(text) => text,
            // No IPv6 on this machine: only the IPv4 table exists.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io::Error::new(error.kind(), format!("{table}: {error}"))),
        };
        let listening = text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
        });
        if listening {
            return Ok(true);
        }
    }
    Ok(false)
}

fn summarize(input: &Path) -> io::Result<()> {
    let text = fs::read_to_string(input)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", input.display())))?;
    let lines: Vec<ResultLine> = text
        .lines()
        .filter_map(ResultLine::parse)
        .filter(|line| line.get("candidate").is_some())
        .collect();
    if lines.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no result lines with candidate=", input.display()),
        ));
    }
    print!("{}", summary::markdown_table(&lines));
    Ok(())
}
