//! The `tcprelay` binary: exit codes, messages, `--help`, the demo, and real forwarding.
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use support::*;

fn tcprelay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcprelay")).args(args).output().expect("run tcprelay")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_name_the_culprit_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--frobnicate"], "unknown flag \"--frobnicate\""),
        (&["--listen"], "--listen needs a value"),
        (&["-l", "localhost:notaport", "-u", ":80"], "\"localhost:notaport\""),
        (&["-l", ":0", "-u", "[::1:80"], "\"[::1:80\""),
        (&["-l", ":0", "-u", ":80", "--connect-timeout", "soon"], "\"soon\""),
        (&["-l", ":0", "-u", ":80", "--log-level", "chatty"], "\"chatty\""),
        (&["-l", ":0"], "missing --upstream"),
        (&[], "missing --listen"),
    ];
    for (args, expected) in cases {
        let output = tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: no hint to --help: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_goes_to_stdout_and_lists_every_flag_with_defaults() {
    let output = tcprelay(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--listen", "--upstream", "--connect-timeout", "--log-level", "--version", "demo"]
    {
        assert!(help.contains(flag), "{flag} missing");
    }
    assert!(help.contains("[default: 5s]"));
}

#[test]
fn version_prints_the_package_version() {
    let output = tcprelay(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("tcprelay {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bind_failure_exits_1_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = tcprelay(&["-l", &addr, "-u", ":80"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
}

#[test]
fn demo_passes_every_step() {
    let output = tcprelay(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr_of(&output));
    assert_eq!(stdout.matches("[ok]").count(), 3, "{stdout}");
    assert!(stdout.contains("all steps passed"), "{stdout}");
}

/// A relay process that is killed (and reaped) when dropped.
struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    stderr_lines: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
}

impl RelayProcess {
    fn start(args: &[&str]) -> RelayProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcprelay");
        let stderr = child.stderr.take().unwrap();
        let (lines, stderr_lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let first = stderr_lines.recv_timeout(TIMEOUT).expect("a first log line");
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(['"', ' ']).next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no `listening on ADDR` in {first:?}"));
        RelayProcess { child, addr, stderr_lines, reader: Some(reader) }
    }

    /// The next stderr line that contains `needle`.
    fn log_line_with(&self, needle: &str) -> String {
        loop {
            let line = self.stderr_lines.recv_timeout(TIMEOUT).expect("a log line");
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[test]
fn binary_relays_and_logs_one_line_per_connection() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["--listen", "127.0.0.1:0", "--upstream", &upstream_arg]);

    let sent = pattern(9, 100_000);
    let client = connect(relay.addr);
    let received = thread::scope(|scope| {
        scope.spawn(|| {
            write_all(&client, &sent).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        });
        read_all(&client).unwrap()
    });
    assert!(received == sent, "echo through the binary differs");

    let line = relay.log_line_with("connection closed");
    for field in [
        "level=info",
        "conn=1",
        &format!("upstream={upstream_arg}"),
        "bytes_to_upstream=100000",
        "bytes_to_client=100000",
        "reason=client_eof",
        "duration_ms=",
        "client=127.0.0.1:",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(line.starts_with("ts=20") && line.contains("Z level="), "{line}");
}

#[test]
fn binary_logs_connect_failures_with_the_upstream() {
    let dead = refusing_addr().to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &dead]);

    let client = connect(relay.addr);
    assert!(read_all(&client).unwrap().is_empty());
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("reason=connect_failed") && line.contains(&dead), "{line}");
}
