//! Logging never blocks the data path, however slow or full its sink, with the `tcprelay` binary
//! as a child process: a stderr nobody reads costs log lines, never connections, and a
//! storm of refused clients writes a handful of lines and one count.
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use support::*;

/// More clients than the relay used to survive with an unread stderr: it froze once the
/// 64 KiB pipe was full (about 330 lines) and then one thread per connection slot was stuck
/// behind the log: 385 clients with the 50 slots below, 835 with the default 500.
const CLIENTS_WITH_STUCK_LOG: u64 = 1500;

/// The relay's stderr is a pipe the test holds and does not read. Once the pipe and the
/// relay's log queue are full, every client must still be relayed end to end; when the test
/// reads at last, the log says how many lines it lost, and that count is exact.
#[test]
fn an_unread_stderr_costs_log_lines_not_connections() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let mut relay = UnreadRelay::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream_arg,
        "--max-connections",
        "50",
        "--admin",
        "127.0.0.1:0",
    ]);

    // One `connection closed` line per client: the first few hundred fill the pipe, the next
    // few hundred the relay's queue, and the rest are dropped.
    for client in 0..CLIENTS_WITH_STUCK_LOG {
        let sent = pattern(client, 100 + client as usize % 900);
        assert_eq!(echo_through(relay.addr, &sent), sent, "client {client} of an unread log");
    }

    // Each connection's line is handed to the log before its close is counted, so once
    // every close is counted, no more lines are coming.
    let closed = format!("tcprelay_connections_closed_total{{route=\"{}\",", relay.addr);
    assert!(
        eventually(|| {
            let metrics = http_get(relay.admin, "/metrics").1;
            let closed: u64 = metrics
                .lines()
                .filter(|line| line.starts_with(&closed))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            closed == CLIENTS_WITH_STUCK_LOG
        }),
        "not every client was counted closed"
    );
    let dropped_while_stuck = metric(relay.admin, "tcprelay_log_lines_dropped_total");
    assert!(dropped_while_stuck > 0, "the log never filled up: the test proves nothing");

    // The sink recovers: the test reads. The drops are reported in the log, then the relay
    // is drained and writes its last lines before it exits.
    let mut lines = relay.read_stderr_in_background();
    let report = lines
        .find(|line| line.contains("msg=\"dropped log lines\""))
        .expect("a `dropped log lines` line once stderr is read again");
    assert!(report.contains("level=warn"), "{report}");
    let (status, _) = http_post(relay.admin, "/drain");
    assert_eq!(status, 200);
    let log = relay.exit_and_collect(lines);

    assert!(log.last().is_some_and(|line| line.contains("msg=stopped")), "{:#?}", log.last());
    let closed_lines = count(&log, "msg=\"connection closed\"") as u64;
    let dropped_reported: u64 = log.iter().filter_map(|line| field(line, "dropped")).sum();
    // Every client is in the log or in the count of dropped lines, exactly.
    assert_eq!(closed_lines + dropped_while_stuck, CLIENTS_WITH_STUCK_LOG, "{closed_lines} lines");
    assert!(dropped_reported >= dropped_while_stuck, "{dropped_reported} < {dropped_while_stuck}");
}

/// As many refused clients as make it take well under a window (10 s) on a loaded machine.
const DENIED_CLIENTS: u64 = 2000;

/// A storm of clients refused by `--allow` writes at most 10 `connection closed` lines per
/// 10 s, and one `suppressed similar lines` count that makes up the rest exactly.
#[test]
fn a_storm_of_refused_clients_writes_a_few_lines_and_an_exact_count() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    // Our clients connect from 127.0.0.1 (std cannot pick a client address), so allowing
    // only the second address refuses every one of them.
    let mut relay = RelayProcess::start_routes(
        &["-l", "127.0.0.1:0", "-u", &upstream_arg, "--allow", "127.0.0.2", "--admin", ":0"],
        1,
        true,
    );
    let (admin, route) =
        (relay.admin.expect("the relay has an admin endpoint"), format!("route={}", relay.addr));
    let denied = format!("tcprelay_connections_denied_total{{route=\"{}\"}}", relay.addr);

    let started = Instant::now();
    for client in 0..DENIED_CLIENTS {
        let stream = connect(relay.addr);
        let mut byte = [0; 1];
        // EOF, or a reset if the relay closed before our connect was fully accepted.
        let refused = matches!((&stream).read(&mut byte), Ok(0) | Err(_));
        assert!(refused, "client {client} was not refused");
    }
    let storm = started.elapsed();
    assert!(eventually(|| metric(admin, &denied) == DENIED_CLIENTS));
    let suppressed_metric = metric(admin, "tcprelay_log_lines_suppressed_total");

    // The drain ends the accept loop after it logged every refusal; the exit writes the
    // counts still open.
    let (status, _) = http_post(admin, "/drain");
    assert_eq!(status, 200);
    assert_eq!(relay.wait_for_exit(), Some(0));
    let log = relay.kill_and_collect_log();

    let denied_lines = log
        .iter()
        .filter(|line| line.contains("msg=\"connection closed\"") && line.contains("reason=denied"))
        .count() as u64;
    let summaries: Vec<&String> =
        log.iter().filter(|line| line.contains("msg=\"suppressed similar lines\"")).collect();
    let suppressed: u64 = summaries.iter().filter_map(|line| field(line, "suppressed")).sum();
    assert!(!summaries.is_empty(), "no summary: {log:#?}");
    for summary in &summaries {
        assert!(summary.contains("like=\"connection closed\"") && summary.contains(&route));
        assert!(summary.contains("reason=denied"), "{summary}");
    }
    // Every refused client is a line or part of a count, exactly.
    assert_eq!(denied_lines + suppressed, DENIED_CLIENTS, "{denied_lines} lines, {suppressed}");
    // At most 10 lines per key per 10 s window that the storm touched.
    let windows = storm.as_secs() / 10 + 2;
    assert!(denied_lines <= 10 * windows, "{denied_lines} lines in {storm:?}");
    // Plus a summary per window, and the start-up and drain lines.
    let bound = 11 * windows as usize + 8;
    assert!(log.len() <= bound, "{} lines of log for {DENIED_CLIENTS} refused clients", log.len());
    assert!(suppressed_metric > 0 && suppressed_metric <= suppressed, "{suppressed_metric}");
    assert_eq!(count(&log, "dropped log lines"), 0, "nothing was dropped: stderr was read");
}

/// How many lines contain `needle`.
fn count(log: &[String], needle: &str) -> usize {
    log.iter().filter(|line| line.contains(needle)).count()
}

/// The number after ` NAME=` in a logfmt line.
fn field(line: &str, name: &str) -> Option<u64> {
    let rest = line.split(&format!(" {name}=")).nth(1)?;
    rest.split(' ').next()?.trim_end().parse().ok()
}

/// The value of a sample in `/metrics`, named with its labels if it has any.
fn metric(admin: std::net::SocketAddr, name: &str) -> u64 {
    let (status, text) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    let prefix = format!("{name} ");
    let value = text.lines().find_map(|line| line.strip_prefix(&prefix)?.parse().ok());
    value.unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The relay as a child process whose stderr the test reads only its start-up lines of,
/// then leaves unread until [`UnreadRelay::read_stderr_in_background`].
struct UnreadRelay {
    child: Child,
    stderr: Option<BufReader<ChildStderr>>,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    /// The lines read so far.
    startup: Vec<String>,
}

impl UnreadRelay {
    /// Starts `tcprelay ARGS` (which must ask for an admin endpoint) and reads its
    /// `listening on` and `admin endpoint on` lines.
    fn start(args: &[&str]) -> UnreadRelay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcprelay");
        let stderr = child.stderr.take().expect("stderr is piped");
        // The first lines are there at once; a reader thread bounds the wait for them and
        // hands the pipe back, unread past them.
        let (send, startup) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut lines = Vec::new();
            for _ in 0..2 {
                let mut line = String::new();
                if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                lines.push(line.trim_end().to_string());
            }
            let _ = send.send(());
            (stderr, lines)
        });
        let ready = startup.recv_timeout(TIMEOUT).is_ok();
        if !ready {
            let _ = child.kill();
        }
        let (stderr, startup) = reader.join().expect("the start-up reader panicked");
        let addr_after = |marker: &str| {
            startup.iter().find_map(|line| {
                line.split(marker).nth(1)?.split(['"', ' ', '/']).next()?.parse().ok()
            })
        };
        let (Some(addr), Some(admin)) = (addr_after("listening on "), addr_after("http://")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no start-up lines within {TIMEOUT:?}: {startup:#?}");
        };
        UnreadRelay { child, stderr: Some(stderr), addr, admin, startup }
    }

    /// Starts reading stderr at last; the lines arrive on the channel.
    fn read_stderr_in_background(&mut self) -> LogLines {
        let stderr = self.stderr.take().expect("stderr is read only once");
        let (send, receive) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        LogLines { receive, reader: Some(reader), seen: self.startup.clone() }
    }

    /// Waits (bounded) for the relay to exit by itself, with exit code 0, and returns every
    /// line of its stderr.
    fn exit_and_collect(&mut self, mut lines: LogLines) -> Vec<String> {
        assert!(eventually(|| matches!(self.child.try_wait(), Ok(Some(_)))), "no exit");
        assert_eq!(self.child.wait().expect("reap the relay").code(), Some(0));
        // The pipe is at EOF now that the process is gone: the reader ends.
        if let Some(reader) = lines.reader.take() {
            reader.join().expect("the stderr reader panicked");
        }
        lines.seen.extend(lines.receive.try_iter());
        lines.seen
    }
}

impl Drop for UnreadRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stderr lines of an [`UnreadRelay`], as its reader thread delivers them.
struct LogLines {
    receive: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
    /// Every line received so far.
    seen: Vec<String>,
}

impl LogLines {
    /// The first line (bounded wait) that `matches`, keeping every line on the way.
    fn find(&mut self, matches: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.receive.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if matches(&line) {
                return Some(line);
            }
        }
    }
}
