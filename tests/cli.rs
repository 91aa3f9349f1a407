//! The `tcprelay` binary: exit codes, messages, `--help`, the demo, and real forwarding.
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader, Read};
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

/// A relay process that is killed (and reaped) when dropped; its stdout and stderr lines
/// arrive on channels.
struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    stdout_lines: mpsc::Receiver<String>,
    stderr_lines: mpsc::Receiver<String>,
    readers: Vec<thread::JoinHandle<()>>,
}

/// Sends each line of `pipe` to the returned channel, on a thread pushed onto `readers`.
fn lines_of(
    pipe: impl Read + Send + 'static,
    readers: &mut Vec<thread::JoinHandle<()>>,
) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    readers.push(thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    }));
    receiver
}

impl RelayProcess {
    fn start(args: &[&str]) -> RelayProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcprelay");
        let mut readers = Vec::new();
        let stdout_lines = lines_of(child.stdout.take().unwrap(), &mut readers);
        let stderr_lines = lines_of(child.stderr.take().unwrap(), &mut readers);
        let first = stderr_lines.recv_timeout(TIMEOUT).expect("a first log line");
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(['"', ' ']).next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no `listening on ADDR` in {first:?}"));
        RelayProcess { child, addr, stdout_lines, stderr_lines, readers }
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
        for reader in self.readers.drain(..) {
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

/// `--explain` tells a connection's life in order, each event beside its Go line.
#[test]
fn explain_narrates_each_connection_with_the_go_lines() {
    // The upstream replies only after the client's EOF, so the events have one order.
    let upstream = Upstream::start(|stream| {
        assert_eq!(read_all(&stream).unwrap(), b"hi\n");
        write_all(&stream, b"hello back").unwrap();
    });
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--explain"]);

    let client = connect(relay.addr);
    write_all(&client, b"hi\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&client).unwrap(), b"hello back");

    let expected = [
        ("accepted a client from 127.0.0.1:", "Go: conn, err := l.Accept()"),
        (&format!("dialled its own upstream {upstream_arg}"), "Go: up, err := net.Dial"),
        (
            "starting the second thread: both copies run",
            "Go: go io.Copy(up, conn); io.Copy(conn, up)",
        ),
        ("first 3 bytes client → upstream", "Go: io.Copy(up, conn) moves its first bytes"),
        (
            "client finished sending (EOF): shutdown(Write) to upstream",
            "Go: io.Copy(up, conn) returned nil; up.CloseWrite()",
        ),
        ("first 10 bytes upstream → client", "Go: io.Copy(conn, up) moves its first bytes"),
        (
            "upstream finished sending (EOF): shutdown(Write) to client",
            "Go: io.Copy(conn, up) returned nil; conn.CloseWrite()",
        ),
        (
            "both copies done, both sockets closed (client_eof)",
            "Go: wg.Wait(); defer conn.Close(); defer up.Close()",
        ),
    ];
    for (event, go) in expected {
        let line = relay.stdout_lines.recv_timeout(TIMEOUT).expect("an --explain line");
        assert!(line.starts_with("conn 1 "), "{line}");
        assert!(
            line.contains(event) && line.contains(go),
            "expected {event:?} / {go:?}, got {line:?}"
        );
    }
}
