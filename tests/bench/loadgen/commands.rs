//! What each command does, once the command line has been checked.

use crate::cli::{Command, RunOptions, USAGE};
use crate::footprint::Watched;
use crate::result_line::{Measurement, ResultLine};
use crate::suite;
use crate::summary;
use crate::upstreams::{UpstreamKind, Upstreams};
use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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
        Command::WaitReady { target, timeout } => wait_ready(target, timeout),
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
    match options
        .workload
        .run(options.target, options.duration, watched)
    {
        Ok(measurement) => {
            println!("{}", measurement.line());
            Ok(())
        }
        Err(error) => {
            println!(
                "{}",
                Measurement::failed(options.workload.name(), &error).line()
            );
            Err(error)
        }
    }
}

/// Tries to connect every 20 ms until `target` accepts or `timeout` passes.
/// Polling is the only way to learn when another process starts listening.
fn wait_ready(target: SocketAddr, timeout: Duration) -> io::Result<()> {
    let give_up = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= give_up => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("{target} did not accept a connection within {timeout:?}: {error}"),
                ));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
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
