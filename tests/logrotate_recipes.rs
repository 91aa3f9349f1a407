//! The two logrotate rules of docs/operations.md, taken from the doc by the test and run by
//! Debian's `logrotate` (`logrotate -f`, a state file of the test's) against a running
//! relay: the `--log-file` rule ("Log files, syslog and JSON"), whose `postrotate` runs
//! `tcprelay reopen-logs`, and the `copytruncate` rule for a file the relay's stderr is
//! written to ("Signals"), whose `postrotate` runs `tcprelay reload`. Each must leave the
//! lines before the rotation in `tcprelay.log.1`, the relay serving, and the lines after it
//! in a fresh `tcprelay.log`.
//!
//! The only changes to a block: `/var/log/tcprelay.log` becomes a file in the test's scratch
//! directory, `/etc/tcprelay.conf` a config file of the test's, and `tcprelay` (bare, or as
//! `/usr/bin/tcprelay`) the binary under test.
#![forbid(unsafe_code)]

mod support;

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::*;

const OPERATIONS: &str = include_str!("../docs/operations.md");

/// The first ```text block after `marker` in docs/operations.md, without the indentation of
/// the list item it may sit in.
fn doc_block(marker: &str) -> String {
    support::docs::block(OPERATIONS, marker, "text")
}

/// A path as the text of a logrotate rule or a config file.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The route's address, from its `listening on` line.
fn route_from(line: &str) -> std::net::SocketAddr {
    let rest = line.split("listening on ").nth(1).unwrap_or_else(|| panic!("no route in {line}"));
    let addr = rest.split(['"', ' ']).next().unwrap_or_default();
    addr.parse().unwrap_or_else(|_| panic!("no address in {line}"))
}

/// A scratch directory with a config file: one route to `upstream`, the admin endpoint on a
/// Unix socket there (a fixed address, so `--config` finds it), and `extra` lines.
fn config_in(dir: &ScratchDir, upstream: &Upstream, extra: &str) -> std::path::PathBuf {
    let config = dir.join("tcprelay.conf");
    let admin = dir.join("admin.sock");
    let text =
        format!("admin unix:{}\n{extra}route 127.0.0.1:0 -> {}\n", arg(&admin), upstream.addr);
    std::fs::write(&config, text).expect("write the config file");
    config
}

/// Runs logrotate on `rule` (written to a file of its own, as in /etc/logrotate.d), forced,
/// with a state file in `dir`; asserts it succeeded and returns what it printed.
fn logrotate(dir: &ScratchDir, rule: &str) -> String {
    let rule_file = dir.join("logrotate.conf");
    std::fs::write(&rule_file, rule).expect("write the logrotate rule");
    // Debian puts it in /usr/sbin, which may not be on a user's PATH.
    let program =
        if Path::new("/usr/sbin/logrotate").exists() { "/usr/sbin/logrotate" } else { "logrotate" };
    let output = Command::new(program)
        .args(["-f", "-s", arg(&dir.join("logrotate.state")), arg(&rule_file)])
        .stdin(Stdio::null())
        .output()
        .expect("run logrotate (apt-get install logrotate)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "logrotate failed on:\n{rule}\n{said}");
    said
}

/// The relay, killed and reaped when dropped, so a failed assertion leaves no process
/// behind (nor a pipe of the test harness held open).
struct Relay(Child);

impl Relay {
    fn start(config: &Path, stderr: Stdio) -> Relay {
        let child = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
            .args(["--config", arg(config)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start tcprelay");
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drains the relay through its config file, as the recipes' stop does, and waits for it.
fn drain_and_wait(config: &Path, mut relay: Relay) {
    let drained = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["drain", "--config", arg(config)])
        .output()
        .expect("run tcprelay drain");
    assert_eq!(drained.status.code(), Some(0), "{}", String::from_utf8_lossy(&drained.stderr));
    let status = relay.0.wait().expect("wait for the relay");
    assert_eq!(status.code(), Some(0));
}

/// One client (1,000 bytes) before the rotation and one (2,000 bytes) after it: `rule` runs
/// once the first client's line is in the log; `after_rotation`, if any, is a line the
/// rotation's `postrotate` makes the relay write before the second client comes.
fn one_client_each_side_of(dir: &ScratchDir, rule: &str, log: &Path, after_rotation: Option<&str>) {
    let route = route_from(&wait_for_file_line(log, "listening on"));
    let before = pattern(1, 1000);
    assert_eq!(echo_through(route, &before), before);
    wait_for_file_line(log, "connection closed");
    logrotate(dir, rule);
    if let Some(line) = after_rotation {
        wait_for_file_line(log, line);
    }
    let after = pattern(2, 2000);
    assert_eq!(echo_through(route, &after), after);
    wait_for_file_line(log, "bytes_to_client=2000");
}

/// What the lines of a log say about the two clients: how many closed, and whether the
/// second (2,000 bytes) is among them.
fn closed_lines(path: &Path) -> (usize, bool) {
    let lines = file_lines(path);
    let closed: Vec<&String> =
        lines.iter().filter(|line| line.contains("connection closed")).collect();
    (closed.len(), closed.iter().any(|line| line.contains("bytes_to_client=2000")))
}

#[test]
#[ignore = "needs logrotate"]
fn the_log_file_rule_rotates_and_its_postrotate_reopen_logs_starts_a_new_file() {
    let dir = ScratchDir::new("logrotate-log-file");
    let log = dir.join("tcprelay.log");
    let upstream = Upstream::echo();
    let config = config_in(&dir, &upstream, &format!("log-file {}\n", arg(&log)));
    let rule = doc_block("- `--log-file FILE` (`log-file FILE`")
        .replace("/var/log/tcprelay.log", arg(&log))
        .replace("/etc/tcprelay.conf", arg(&config))
        .replace(
            "tcprelay reopen-logs",
            &format!("{} reopen-logs", env!("CARGO_BIN_EXE_tcprelay")),
        );
    assert!(rule.contains("postrotate") && rule.contains("reopen-logs"), "{rule}");

    let relay = Relay::start(&config, Stdio::null());
    // The postrotate's `reopen-logs` has returned, so the relay writes to the new file.
    one_client_each_side_of(&dir, &rule, &log, None);
    drain_and_wait(&config, relay);

    let rotated = dir.join("tcprelay.log.1");
    assert_eq!(closed_lines(&rotated), (1, false), "{:#?}", file_lines(&rotated));
    assert!(file_lines(&rotated).iter().any(|line| line.contains("listening on")));
    assert_eq!(closed_lines(&log), (1, true), "{:#?}", file_lines(&log));
    assert!(file_lines(&log).last().is_some_and(|line| line.contains("msg=stopped")));
}

#[test]
#[ignore = "needs logrotate"]
fn the_copytruncate_rule_for_redirected_stderr_keeps_the_relay_serving() {
    let dir = ScratchDir::new("logrotate-copytruncate");
    let log = dir.join("tcprelay.log");
    let upstream = Upstream::echo();
    let config = config_in(&dir, &upstream, "");
    let rule = doc_block("A logrotate rule for a file that tcprelay's stderr is written to")
        .replace("/var/log/tcprelay.log", arg(&log))
        .replace("/etc/tcprelay.conf", arg(&config))
        .replace("/usr/bin/tcprelay", env!("CARGO_BIN_EXE_tcprelay"));
    assert!(rule.contains("copytruncate") && rule.contains("reload"), "{rule}");

    // `tcprelay --config FILE 2>> /var/log/tcprelay.log`, as a shell or an init system
    // redirects it: appended, so writes after the truncation start the file afresh.
    let stderr = OpenOptions::new().create(true).append(true).open(&log).expect("open the log");
    let relay = Relay::start(&config, Stdio::from(stderr));
    // No signal was sent: the postrotate's reload reached the relay and it still serves.
    one_client_each_side_of(&dir, &rule, &log, Some("config reloaded"));
    drain_and_wait(&config, relay);

    let rotated = dir.join("tcprelay.log.1");
    assert_eq!(closed_lines(&rotated), (1, false), "{:#?}", file_lines(&rotated));
    assert_eq!(closed_lines(&log), (1, true), "{:#?}", file_lines(&log));
    assert!(
        !file_lines(&log).iter().any(|line| line.contains("listening on")),
        "truncated: {:#?}",
        file_lines(&log)
    );
    assert!(!std::fs::read(&log).unwrap().contains(&0), "no hole of NULs where the old lines were");
}
