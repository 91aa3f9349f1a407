//! A tiny logger: one `key=value` line per event on stderr (the "logfmt" style), or, as
//! [`set_output`] says, JSON lines, an appended file or syslog (see `log_output.rs`).
//!
//! ```text
//! ts=2026-11-25T08:00:00.123Z level=info msg="connection closed" conn=7 client=127.0.0.1:50412 ...
//! ```
//!
//! Lines below the configured level cost one comparison: callers check [`Log::enabled`] (or
//! use the level helpers, which do). An enabled line is formatted into one `String` by the
//! thread that logs it, and written whole by one thread, so lines never interleave.
//!
//! # Logging never blocks the data path
//!
//! A write to a pipe nobody reads blocks forever (a paused `| less`, a stalled journald or
//! Docker log driver). When connection threads wrote stderr themselves under its lock, one of
//! them blocked in the write and every other one waited for the lock, each holding its
//! connection slot: with an unread stderr, once the pipe's 64 KiB were full the relay
//! served no one more (measured: docs/benchmarks.md, "Figures the code relies on").
//!
//! So no connection thread writes to stderr. One thread, `tcprelay-log`, owns it: it is
//! started (with `thread::Builder`) by the first line the process logs, and lives as long
//! as the process. A logging thread hands its line to a bounded queue with `try_send` and
//! goes on at once. The queue holds at most [`QUEUE_LINES`] lines and [`QUEUE_BYTES`] bytes
//! (whichever comes first; at the usual 120 to 250 bytes a line, about 300 to 500 lines):
//! enough to ride out a slow sink for a moment, small enough for a small board. When it is
//! full, the line is dropped and counted ([`lines_dropped`], `tcprelay_log_lines_dropped_total`
//! in `/metrics`). When the writer catches up (the queue is empty again), it writes one
//! `msg="dropped log lines" dropped=N` line, so the gap in the log is visible where it was.
//! A stuck sink thus costs log lines, never connections.
//!
//! If the writer thread cannot be created (no memory, `ulimit -u`), it is tried again at
//! most once a second, and meanwhile a line is written by the thread that logs it, but only
//! if no other thread is writing (`try_lock`): otherwise it is dropped and counted. At most
//! one thread then waits on a stuck sink; every other one goes on. (With no threads to be
//! had, the relay cannot start connections anyway; see `threads.rs`.)
//!
//! # Lines written before the process exits
//!
//! The writer is a detached thread, and a process ends without waiting for it. [`flush`]
//! waits, up to a deadline, until every line logged before it was called is written: the
//! `tcprelay` binary calls it before it exits, so the last lines (`stopped`, the summaries
//! below) are not lost when the sink is healthy, and a stuck sink delays the exit by the
//! deadline at most.
//!
//! # Only a connection's lines may be dropped
//!
//! The lines of one connection (those with a `conn` field) are the stream that may be
//! dropped. Every other line tells the process's life: `listening on` (which scripts read
//! to learn the ports), `serving`, `connection cap`, `config reloaded`, `draining`,
//! `stopped`. There are a few per route and per operator action, and they wait for room in
//! the queue for as long as the writer keeps writing: with 2,000 routes, the start-up lines
//! overflow the queue, and hundreds were lost when they could be dropped like the rest. A sink that has not taken a line for [`STUCK_AFTER`] is stuck:
//! then waiting lines are dropped and counted too, until it moves again, so a stuck sink
//! delays one line by a second, not the relay forever.
//!
//! # Repeated lines are rate-limited
//!
//! A storm of refused clients would otherwise be a storm of identical lines, megabytes of
//! log a second (measured: docs/benchmarks.md, "Figures the code relies on"). Lines that repeat once
//! per refused client or per failure are limited; the normal line of a relayed connection
//! never is. A line is limited when it is a warning or an error, or a `connection closed`
//! line whose reason is one of [`REFUSALS`]. Its key is its level and message, plus the
//! values of the fields in [`KEY_FIELDS`] (`route`, `listen`, `upstream`, `reason`), where
//! the route is the one the [`Log`] was made for ([`Log::for_route`]). Client addresses and
//! errors are not part of the key: a storm from many addresses is still one storm.
//!
//! Per key, at most [`REPEAT_BURST`] lines are written in a window of [`REPEAT_WINDOW`]
//! that starts with the key's first line; later lines in the window are counted instead
//! ([`lines_suppressed`], `tcprelay_log_lines_suppressed_total`). When the window has ended
//! the count is written as one line, with the key's fields, at the key's level:
//!
//! ```text
//! ts=... level=info msg="suppressed similar lines" suppressed=19990 like="connection closed" route=web upstream=- reason=denied
//! ```
//!
//! The summary comes from the next line of that key after the window (just before it), from
//! the writer, which looks at ended windows once a second, or from [`flush`] at exit. So
//! a storm costs at most [`REPEAT_BURST`] lines and one summary per key every 10 s, and
//! every refused client is still accounted for: written or counted.

use std::fmt::{Display, Write as _};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread;
#[cfg(test)]
use std::time::UNIX_EPOCH;
use std::time::{Duration, Instant, SystemTime};

use crate::counter::Counter;
use crate::lock::{lock, wait_timeout};
use crate::ops::log_output::{self, Sinks};
use crate::ops::log_time::Rfc3339;
use crate::settings::logging::LogLevel;
use crate::settings::logging::{LogFormat, LogOutput};

/// A line's level as syslog ranks it.
impl LogLevel {
    /// The RFC 3164 severity of a line at this level: error 3, warning 4, info 6, debug 7.
    fn syslog_severity(self) -> u8 {
        match self {
            LogLevel::Error => 3,
            LogLevel::Warn => 4,
            LogLevel::Info => 6,
            LogLevel::Debug => 7,
        }
    }
}

/// The fields of one log line, in order: `(key, value)`.
pub type Fields<'a> = &'a [(&'a str, &'a dyn Display)];

/// Writes log lines at or above a level to stderr, without ever waiting for stderr (see the
/// module documentation).
#[derive(Clone, Debug)]
pub struct Log {
    level: LogLevel,
    /// The route this logger speaks for, if any: part of the key of repeated lines.
    route: Option<Arc<str>>,
}

impl Log {
    /// A logger that writes lines at `level` and more severe.
    pub fn new(level: LogLevel) -> Log {
        Log { level, route: None }
    }

    /// A logger for the route labelled `route`. Its lines are the same as [`Log::new`]'s;
    /// the route only keys its repeated lines, so that a storm on one route does not hide
    /// the same line from another, and names the route in their summary.
    pub fn for_route(level: LogLevel, route: &str) -> Log {
        Log { level, route: Some(Arc::from(route)) }
    }

    /// Whether a line at `level` would be written.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// Writes one line, if `level` is enabled and the line is not one repeated too often.
    /// It never waits for stderr: see the module documentation.
    pub fn event(&self, level: LogLevel, msg: &str, fields: Fields<'_>) {
        if !self.enabled(level) {
            return;
        }
        if repeats(level, msg, fields) {
            let key = Key::new(level, msg, self.route.as_deref(), fields);
            // A statement of its own, so the limiter is unlocked before anything is sent:
            // without a writer thread, `send` writes here and takes the limiter itself.
            let admitted = lock_limiter().admit(key, Instant::now());
            match admitted {
                Admit::Suppress => return,
                Admit::Write { summary: Some(summary) } => {
                    send(level, summary.line(SystemTime::now()), Urgency::MayDrop);
                }
                Admit::Write { summary: None } => {}
            }
        }
        send(level, format_line(SystemTime::now(), level, msg, fields), urgency(fields));
    }

    /// Writes one line at level `info` whatever the configured level, and never limited.
    /// Only for the `listening on ADDR` line, which scripts and tests read to learn the port.
    pub fn always(&self, msg: &str, fields: Fields<'_>) {
        let line = format_line(SystemTime::now(), LogLevel::Info, msg, fields);
        send(LogLevel::Info, line, Urgency::Waits);
    }

    /// [`Log::event`] at [`LogLevel::Error`].
    pub fn error(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Error, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Warn`].
    pub fn warn(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Warn, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Info`].
    pub fn info(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Info, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Debug`].
    pub fn debug(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Debug, msg, fields);
    }
}

/// Waits until every line logged before this call, and the summaries of lines suppressed
/// so far, are written to stderr, or until `timeout` has passed. Returns whether they were.
///
/// Call it before the process exits: the writer thread is not waited for otherwise. With a
/// stuck sink it returns `false` after `timeout`, and whatever is still queued is lost.
pub fn flush(timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    let past = |deadline: Option<Instant>| deadline.is_some_and(|at| Instant::now() >= at);
    // Every count still open, whether or not its window has ended.
    let summaries = lock_limiter().take_summaries(Instant::now(), true);
    for summary in summaries {
        send(summary.key.level, summary.line(SystemTime::now()), Urgency::Waits);
    }
    let Some(queue) = QUEUE.get() else {
        return true; // no writer thread: lines were written (or dropped) by their callers
    };
    let mark = NEXT_FLUSH_MARK.fetch_add(1) + 1;
    // Std's `SyncSender` has no `send_timeout` on stable Rust: offer the mark until it fits.
    loop {
        match queue.try_send(Message::FlushMark(mark)) {
            Ok(()) => break,
            Err(TrySendError::Full(_)) if !past(deadline) => thread::sleep(FLUSH_RETRY),
            Err(_) => return false,
        }
    }
    let mut flushed = lock(&FLUSHED);
    while *flushed < mark {
        let left = match deadline {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if left.is_zero() {
            return false;
        }
        flushed = wait_timeout(&FLUSH_DONE, flushed, left);
    }
    true
}

/// Makes a panic's message a log line (`level=error msg="thread panicked"`) that goes
/// through the writer's queue like any other, instead of Rust's default hook, which writes
/// stderr from the panicking thread and so would block it while stderr is stuck.
///
/// For the `tcprelay` binary, which calls it first thing. With `RUST_BACKTRACE` set, the
/// default hook is kept, backtrace and all, for debugging. A library embedder keeps its own
/// hook.
pub fn send_panics_to_the_log() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic payload that is not a string)");
        let thread = thread::current();
        let line = panic_line(SystemTime::now(), thread.name(), message, info.location());
        send(LogLevel::Error, line, Urgency::MayDrop);
        // A panic on the main thread ends the process, which does not wait for the writer.
        if thread.name() == Some("main") {
            flush(Duration::from_secs(2));
        }
    }));
}

/// The line [`send_panics_to_the_log`] writes for one panic.
fn panic_line(
    now: SystemTime,
    thread: Option<&str>,
    message: &str,
    location: Option<&std::panic::Location<'_>>,
) -> String {
    let location = location.map_or_else(|| "-".to_string(), ToString::to_string);
    let thread = thread.unwrap_or("-");
    let fields: Fields<'_> = &[("thread", &thread), ("error", &message), ("at", &location)];
    format_line(now, LogLevel::Error, "thread panicked", fields)
}

/// Log lines dropped since the process started, because the queue to stderr was full (the
/// sink did not keep up) or stderr failed.
pub fn lines_dropped() -> u64 {
    DROPPED.get()
}

/// Repeated log lines suppressed since the process started (each one counted in a
/// `suppressed similar lines` summary).
pub fn lines_suppressed() -> u64 {
    SUPPRESSED.get()
}

// ---------------------------------------------------------------------------------------
// The sink: one writer thread behind a bounded queue.
// ---------------------------------------------------------------------------------------

/// The most lines the queue to the writer holds.
pub const QUEUE_LINES: usize = 1024;

/// The most bytes of lines the queue to the writer holds (a line longer than this on its
/// own still goes into an empty queue).
pub const QUEUE_BYTES: usize = 64 * 1024;

/// How often the writer, when idle, looks for ended windows of suppressed lines.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long after a failed attempt to start the writer the next attempt may be made.
const RETRY_START_AFTER: Duration = Duration::from_secs(1);

/// The writer's stack: it formats summary lines and writes, nothing deeper.
const WRITER_STACK_SIZE: usize = 64 * 1024;

/// How often [`flush`] offers its mark to a full queue.
const FLUSH_RETRY: Duration = Duration::from_millis(5);

/// One item in the queue to the writer.
enum Message {
    /// A formatted line, newline included, and its level.
    Line(LogLevel, String),
    /// Marks the place of a [`flush`] call: reported done once the writer has caught up
    /// past it.
    FlushMark(u64),
}

/// Whether a line may be dropped when the queue is full (see [`urgency`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Urgency {
    /// A line of one connection's stream, or a panic: dropped and counted when the queue
    /// is full.
    MayDrop,
    /// A line of the process's life (start-up, reload, drain, stop): waits for room in the
    /// queue while the sink makes progress.
    Waits,
}

/// How long a waiting line waits for the writer to write anything before the sink is taken
/// as stuck: then it, and every waiting line after it until the writer moves again, is
/// dropped and counted like any other.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// How often a waiting line looks for room in the queue.
const WAIT_RETRY: Duration = Duration::from_millis(1);

/// The lines of one connection carry its `conn` field: those are the stream that may drop.
/// Every other line (`listening on`, `connection cap`, `serving`, `config reloaded`,
/// `stopped`, ...) is one of a few per route and per operator action, and waits for room:
/// with 2,000 routes and stderr a file, hundreds of start-up lines were dropped when every
/// line could be, none since (docs/operations.md, "A slow or stuck log sink").
fn urgency(fields: Fields<'_>) -> Urgency {
    match fields.iter().any(|(key, _)| *key == "conn") {
        true => Urgency::MayDrop,
        false => Urgency::Waits,
    }
}

// The counters are independent and only need to be current: relaxed atomics suffice.
const RELAXED: Ordering = Ordering::Relaxed;

/// The queue to the writer thread, once the thread runs.
static QUEUE: OnceLock<SyncSender<Message>> = OnceLock::new();
/// Held while starting the writer; holds when the last attempt failed.
static STARTING: Mutex<Option<Instant>> = Mutex::new(None);
/// Bytes of lines in the queue.
static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Lines dropped since start ([`lines_dropped`]).
static DROPPED: Counter = Counter::new(0);
/// Lines dropped since the last `dropped log lines` summary.
static DROPPED_UNREPORTED: Counter = Counter::new(0);
/// Lines suppressed since start ([`lines_suppressed`]).
static SUPPRESSED: Counter = Counter::new(0);
/// Where lines go. Held by the writer while it writes, or by the one thread that writes a
/// line itself when there is no writer thread (taken with `try_lock` then).
static SINKS: Mutex<Sinks> = Mutex::new(Sinks::stderr());
/// The log file, when there is one: what [`reopen`] opens again.
static LOG_FILE: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);
/// A log file [`reopen`] has opened, for the writer to take before its next line: the
/// reopening thread never waits for [`SINKS`], which a stuck sink may hold.
static REOPENED: Mutex<Option<File>> = Mutex::new(None);
/// Whether lines are JSON rather than logfmt.
static JSON_LINES: AtomicBool = AtomicBool::new(false);
/// Lines the writer has finished with, so that a waiting line can tell a slow sink that
/// moves from a stuck one.
static WRITTEN: Counter = Counter::new(0);
/// Set when a waiting line found the sink stuck; cleared by the writer's next line.
static SINK_STUCK: AtomicBool = AtomicBool::new(false);
/// The last [`flush`] mark numbered, and the last one the writer has caught up past.
static NEXT_FLUSH_MARK: Counter = Counter::new(0);
static FLUSHED: Mutex<u64> = Mutex::new(0);
static FLUSH_DONE: Condvar = Condvar::new();

/// Sends the log where `output` says, in its format, from now on. The `tcprelay` binary
/// calls it once, before its first line; without it, lines go to stderr as logfmt.
///
/// # Errors
/// Why the log file or the syslog address cannot be used, naming it: nothing changed then.
pub fn set_output(output: &LogOutput) -> io::Result<()> {
    let sinks = Sinks::open(output)?;
    JSON_LINES.store(output.format == LogFormat::Json, RELAXED);
    *lock(&LOG_FILE) = output.file.clone();
    *lock(&SINKS) = sinks;
    Ok(())
}

/// Opens the log file again at its path, for the lines that follow: after logrotate has
/// renamed it, they go to a new file there. Called by `POST /reopen-logs` and by every
/// reload. Returns the path reopened, `None` when there is no log file.
///
/// # Errors
/// Why the path cannot be opened (see [`log_output::open_log_file`]); the lines go on to
/// the file that was open.
pub fn reopen() -> io::Result<Option<std::path::PathBuf>> {
    let Some(path) = lock(&LOG_FILE).clone() else {
        return Ok(None);
    };
    let file = log_output::open_log_file(&path)?;
    *lock(&REOPENED) = Some(file);
    Ok(Some(path))
}

/// Hands a line to the writer without waiting, unless it is one that [`Urgency::Waits`];
/// drops and counts it when the queue is full.
fn send(level: LogLevel, line: String, urgency: Urgency) {
    let Some(queue) = writer_queue() else {
        return write_directly(level, &line);
    };
    let mut line = line;
    let mut waited_since: Option<(u64, Instant)> = None;
    loop {
        line = match enqueue(queue, level, line) {
            Ok(()) => return,
            Err(full) => full,
        };
        if urgency == Urgency::MayDrop || SINK_STUCK.load(RELAXED) {
            return count_dropped(1);
        }
        // Wait while the writer moves; give up once it has not moved for `STUCK_AFTER`.
        let written = WRITTEN.get();
        match waited_since {
            Some((seen, since)) if seen == written => {
                if since.elapsed() >= STUCK_AFTER {
                    SINK_STUCK.store(true, RELAXED);
                    return count_dropped(1);
                }
            }
            _ => waited_since = Some((written, Instant::now())),
        }
        thread::sleep(WAIT_RETRY);
    }
}

/// Puts a line in the queue, or gives it back if the queue is full (in lines or bytes).
fn enqueue(queue: &SyncSender<Message>, level: LogLevel, line: String) -> Result<(), String> {
    let len = line.len();
    let queued = QUEUED_BYTES.fetch_add(len, RELAXED);
    if queued > 0 && queued + len > QUEUE_BYTES {
        QUEUED_BYTES.fetch_sub(len, RELAXED);
        return Err(line);
    }
    match queue.try_send(Message::Line(level, line)) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(Message::Line(_, line))) => {
            QUEUED_BYTES.fetch_sub(len, RELAXED);
            Err(line)
        }
        // Only if the writer thread panicked, which it has no reason to: write it here.
        Err(TrySendError::Disconnected(Message::Line(level, line))) => {
            QUEUED_BYTES.fetch_sub(len, RELAXED);
            write_directly(level, &line);
            Ok(())
        }
        Err(_) => Ok(()), // a flush mark, which `send` never sends
    }
}

fn count_dropped(lines: u64) {
    DROPPED.fetch_add(lines);
    DROPPED_UNREPORTED.fetch_add(lines);
}

/// The writer's queue, starting the writer thread the first time (and again at most once
/// every [`RETRY_START_AFTER`] while it cannot be started). `None` if it is not running.
fn writer_queue() -> Option<&'static SyncSender<Message>> {
    if let Some(queue) = QUEUE.get() {
        return Some(queue);
    }
    // Threads that log while another starts the writer wait here for as long as creating
    // a thread takes; nothing in here touches the sinks.
    let mut failed_at = lock(&STARTING);
    if let Some(queue) = QUEUE.get() {
        return Some(queue);
    }
    if failed_at.is_some_and(|at| at.elapsed() < RETRY_START_AFTER) {
        return None;
    }
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    let started = thread::Builder::new()
        .name("tcprelay-log".to_string())
        .stack_size(WRITER_STACK_SIZE)
        .spawn(move || write_queue(&receiver));
    match started {
        // The handle is dropped: the writer lives as long as the process, and `flush` is
        // how the process waits for it.
        Ok(_) => {
            let _ = QUEUE.set(sender);
            QUEUE.get()
        }
        Err(_) => {
            *failed_at = Some(Instant::now());
            None
        }
    }
}

/// The writer thread: writes each queued line to the sinks, and when it has caught up (the
/// queue is empty), the summaries of dropped and suppressed lines.
fn write_queue(queue: &Receiver<Message>) {
    let mut caught_up_to_mark = 0;
    loop {
        let message = match queue.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                write_summaries(&mut write_line);
                report_flushed(caught_up_to_mark);
                match queue.recv_timeout(SWEEP_EVERY) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        match message {
            Message::Line(level, line) => {
                write_line(level, &line);
                QUEUED_BYTES.fetch_sub(line.len(), RELAXED);
                WRITTEN.fetch_add(1);
                SINK_STUCK.store(false, RELAXED);
            }
            Message::FlushMark(mark) => caught_up_to_mark = mark,
        }
    }
}

/// Writes the `dropped log lines` summary, if lines were dropped since the last one, and
/// the summaries of windows of suppressed lines that have ended, with `write`.
fn write_summaries(write: &mut impl FnMut(LogLevel, &str) -> bool) {
    let dropped = DROPPED_UNREPORTED.take();
    if dropped > 0 {
        let line = format_line(
            SystemTime::now(),
            LogLevel::Warn,
            "dropped log lines",
            &[("dropped", &dropped), ("why", &"the log sink did not keep up")],
        );
        if !write(LogLevel::Warn, &line) {
            DROPPED_UNREPORTED.fetch_add(dropped); // told next time, if ever
        }
    }
    let summaries = lock_limiter().take_summaries(Instant::now(), false);
    for summary in summaries {
        write(summary.key.level, &summary.line(SystemTime::now()));
    }
}

/// The writer's `write`: one line to every sink, taking a reopened log file first. A line
/// a sink refuses (closed, full disk, a syslogd that does not read) is counted as dropped.
fn write_line(level: LogLevel, line: &str) -> bool {
    let mut sinks = lock(&SINKS);
    write_to(&mut sinks, level, line)
}

fn write_to(sinks: &mut Sinks, level: LogLevel, line: &str) -> bool {
    if let Some(file) = lock(&REOPENED).take() {
        sinks.replace_file(file);
    }
    let written = sinks.write(level.syslog_severity(), line);
    if !written {
        count_dropped(1);
    }
    written
}

/// Tells waiting [`flush`] calls that the writer has caught up past `mark`.
fn report_flushed(mark: u64) {
    let mut flushed = lock(&FLUSHED);
    if *flushed < mark {
        *flushed = mark;
        FLUSH_DONE.notify_all();
    }
}

/// Without a writer thread: writes the line here, unless another thread is writing
/// already, in which case it is dropped and counted. So at most one thread waits on a
/// stuck sink.
fn write_directly(level: LogLevel, line: &str) {
    let mut sinks = match SINKS.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return count_dropped(1),
    };
    write_summaries(&mut |level, line| write_to(&mut sinks, level, line));
    write_to(&mut sinks, level, line);
}

// ---------------------------------------------------------------------------------------
// Repeated lines: a window per key.
// ---------------------------------------------------------------------------------------

/// At most this many lines of one key are written per window.
pub const REPEAT_BURST: u32 = 10;

/// The window of [`REPEAT_BURST`] lines per key.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// The close reasons of clients turned away before any byte was relayed: a storm of them is
/// one line per client, so their `connection closed` lines are limited.
pub const REFUSALS: [&str; 9] = [
    "denied",
    "bad_proxy_header",
    "untrusted_proxy",
    "no_route",
    "limit",
    "client_limit",
    "connect_failed",
    "spawn_failed",
    "self_loop",
];

/// The fields whose values, with the level and message, make the key of a limited line.
pub const KEY_FIELDS: [&str; 4] = ["route", "listen", "upstream", "reason"];

/// The most keys tracked at once. Keys come from configuration (routes, upstreams) and the
/// code (messages, reasons), never from a client, so this is never reached in practice;
/// if it were, new keys would go unlimited rather than grow the table.
const MAX_KEYS: usize = 256;

/// Whether a line is one that can repeat per client or per failure (see the module docs).
fn repeats(level: LogLevel, msg: &str, fields: Fields<'_>) -> bool {
    if level <= LogLevel::Warn {
        return true;
    }
    msg == "connection closed"
        && fields
            .iter()
            .any(|(key, value)| *key == "reason" && REFUSALS.contains(&value.to_string().as_str()))
}

/// What makes lines "similar": level, message and the values of the [`KEY_FIELDS`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    level: LogLevel,
    msg: String,
    fields: Vec<(&'static str, String)>,
}

impl Key {
    fn new(level: LogLevel, msg: &str, route: Option<&str>, fields: Fields<'_>) -> Key {
        let mut key_fields = Vec::new();
        for name in KEY_FIELDS {
            let value = fields.iter().find(|(key, _)| *key == name).map(|(_, value)| value);
            match (value, name) {
                (Some(value), _) => key_fields.push((name, value.to_string())),
                (None, "route") if route.is_some() => {
                    key_fields.push((name, route.unwrap_or_default().to_string()));
                }
                (None, _) => {}
            }
        }
        Key { level, msg: msg.to_string(), fields: key_fields }
    }
}

/// One key's current window.
#[derive(Debug)]
struct Window {
    key: Key,
    started: Instant,
    written: u32,
    suppressed: u64,
}

impl Window {
    fn has_ended(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= REPEAT_WINDOW
    }
}

/// The count of one key's suppressed lines, to be written as one line.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    key: Key,
    suppressed: u64,
}

impl Summary {
    fn line(&self, now: SystemTime) -> String {
        let mut fields: Vec<(&str, &dyn Display)> =
            vec![("suppressed", &self.suppressed), ("like", &self.key.msg)];
        for (name, value) in &self.key.fields {
            fields.push((name, value));
        }
        format_line(now, self.key.level, "suppressed similar lines", &fields)
    }
}

/// What to do with a limited line.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Write it, after the summary of its key's last window if that suppressed any.
    Write { summary: Option<Summary> },
    /// Count it, don't write it.
    Suppress,
}

/// The windows of the keys seen lately.
#[derive(Debug)]
struct Limiter {
    windows: Vec<Window>,
}

static LIMITER: Mutex<Limiter> = Mutex::new(Limiter { windows: Vec::new() });

/// The limiter, held only to count: nothing is written while it is held.
fn lock_limiter() -> MutexGuard<'static, Limiter> {
    lock(&LIMITER)
}

impl Limiter {
    /// Counts one line of `key` at `now` and says whether to write it.
    fn admit(&mut self, key: Key, now: Instant) -> Admit {
        if let Some(window) = self.windows.iter_mut().find(|window| window.key == key) {
            if !window.has_ended(now) {
                if window.written < REPEAT_BURST {
                    window.written += 1;
                    return Admit::Write { summary: None };
                }
                window.suppressed += 1;
                SUPPRESSED.fetch_add(1);
                return Admit::Suppress;
            }
            // A new window, which this line opens.
            let suppressed = std::mem::take(&mut window.suppressed);
            window.started = now;
            window.written = 1;
            let summary = (suppressed > 0).then_some(Summary { key, suppressed });
            return Admit::Write { summary };
        }
        if self.windows.len() >= MAX_KEYS {
            self.windows.retain(|window| window.suppressed > 0 || !window.has_ended(now));
        }
        if self.windows.len() < MAX_KEYS {
            self.windows.push(Window { key, started: now, written: 1, suppressed: 0 });
        }
        Admit::Write { summary: None }
    }

    /// Takes the counts of the windows that have ended (or of every window, if `all`), and
    /// forgets the ended windows.
    fn take_summaries(&mut self, now: Instant, all: bool) -> Vec<Summary> {
        let mut summaries = Vec::new();
        for window in &mut self.windows {
            if (all || window.has_ended(now)) && window.suppressed > 0 {
                let suppressed = std::mem::take(&mut window.suppressed);
                summaries.push(Summary { key: window.key.clone(), suppressed });
            }
        }
        self.windows.retain(|window| !window.has_ended(now));
        summaries
    }
}

/// Formats one complete line, newline included, in the format [`set_output`] chose.
fn format_line(now: SystemTime, level: LogLevel, msg: &str, fields: Fields<'_>) -> String {
    let format = match JSON_LINES.load(RELAXED) {
        true => LogFormat::Json,
        false => LogFormat::Logfmt,
    };
    format_as(format, now, level, msg, fields)
}

/// One line in `format`: `ts`, `level` and `msg`, then the fields, in order.
///
/// ```text
/// ts=... level=... msg=... key=value ...
/// {"ts":"...","level":"...","msg":"...","key":value,...}
/// ```
fn format_as(
    format: LogFormat,
    now: SystemTime,
    level: LogLevel,
    msg: &str,
    fields: Fields<'_>,
) -> String {
    let head: Fields<'_> = &[("ts", &Rfc3339(now)), ("level", &level), ("msg", &msg)];
    let mut line = String::with_capacity(200);
    let mut value = String::new();
    for (index, (key, field)) in head.iter().chain(fields).enumerate() {
        value.clear();
        let _ = write!(value, "{field}");
        match format {
            LogFormat::Logfmt => {
                if index > 0 {
                    line.push(' ');
                }
                line.push_str(key);
                line.push('=');
                push_value(&mut line, &value);
            }
            LogFormat::Json => {
                line.push(if index == 0 { '{' } else { ',' });
                push_json_string(&mut line, key);
                line.push(':');
                push_json_value(&mut line, &value);
            }
        }
    }
    if format == LogFormat::Json {
        line.push('}');
    }
    line.push('\n');
    line
}

/// Appends a value, quoted if it is empty or holds a space, quote, `=` or control character.
fn push_value(line: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value.chars().any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        line.push_str(value);
        return;
    }
    // `\u{1b}`, as Rust writes it.
    push_quoted(line, value, |line, c| {
        let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
    });
}

/// Appends `value` in double quotes, with `"`, `\` and newline escaped by a backslash and
/// any other control character by `escape`: logfmt and JSON spell those differently.
fn push_quoted(line: &mut String, value: &str, escape: fn(&mut String, char)) {
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            c if c.is_control() => escape(line, c),
            c => line.push(c),
        }
    }
    line.push('"');
}

/// Appends a field's value to a JSON line: a whole number (`conn`, byte counts,
/// `duration_ms`) as a number, every other value as a string.
fn push_json_value(line: &mut String, value: &str) {
    if is_json_number(value) {
        line.push_str(value);
    } else {
        push_json_string(line, value);
    }
}

/// Whether `value` is a whole number JSON can carry exactly: digits, no leading zero, at
/// most 15 of them (a JSON reader may hold numbers as doubles, exact to 2^53).
fn is_json_number(value: &str) -> bool {
    let digits = value.len();
    (1..=15).contains(&digits)
        && value.bytes().all(|byte| byte.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'))
}

/// Appends `value` as a JSON string (RFC 8259 section 7).
fn push_json_string(line: &mut String, value: &str) {
    push_quoted(line, value, |line, c| {
        let _ = write!(line, "\\u{:04x}", u32::from(c));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logfmt() {
        let line = format_as(
            LogFormat::Logfmt,
            UNIX_EPOCH,
            LogLevel::Info,
            "connection closed",
            &[("conn", &7), ("reason", &"client_eof"), ("error", &"broken \"pipe\"")],
        );
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z level=info msg=\"connection closed\" conn=7 \
             reason=client_eof error=\"broken \\\"pipe\\\"\"\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_with_numbers_as_numbers() {
        let line = format_as(
            LogFormat::Json,
            UNIX_EPOCH,
            LogLevel::Warn,
            "connection closed",
            &[("conn", &7), ("client", &"[::1]:5"), ("id", &"007"), ("error", &"a \"b\"\n\u{1}")],
        );
        assert_eq!(
            line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warn\",\"msg\":\"connection closed\",\
             \"conn\":7,\"client\":\"[::1]:5\",\"id\":\"007\",\"error\":\"a \\\"b\\\"\\n\\u0001\"}\n"
        );
        assert!(is_json_number("0") && is_json_number("123456789012345"));
        assert!(
            !is_json_number("") && !is_json_number("1234567890123456") && !is_json_number("-1")
        );
    }

    fn denied_key(route: &str) -> Key {
        Key::new(
            LogLevel::Info,
            "connection closed",
            Some(route),
            &[
                ("conn", &1),
                ("client", &"127.0.0.2:5000"),
                ("upstream", &"-"),
                ("reason", &"denied"),
            ],
        )
    }

    #[test]
    fn refusals_and_warnings_are_limited_but_relayed_connections_are_not() {
        let closed = |reason: &str| {
            repeats(LogLevel::Info, "connection closed", &[("conn", &1), ("reason", &reason)])
        };
        assert!(closed("denied") && closed("connect_failed") && closed("limit"));
        assert!(!closed("client_eof") && !closed("idle_timeout") && !closed("stopped"));
        assert!(repeats(LogLevel::Warn, "upstream connect failed, backing off", &[]));
        assert!(!repeats(LogLevel::Info, "serving", &[]));
        assert!(!repeats(LogLevel::Debug, "accepted", &[("reason", &"denied")]));
    }

    #[test]
    fn the_key_is_message_route_and_reason_not_the_client() {
        let key = denied_key("web");
        assert_eq!(
            key.fields,
            [("route", "web".to_string()), ("upstream", "-".into()), ("reason", "denied".into())]
        );
        let other_client = Key::new(
            LogLevel::Info,
            "connection closed",
            Some("web"),
            &[
                ("conn", &2),
                ("client", &"127.0.0.2:6000"),
                ("upstream", &"-"),
                ("reason", &"denied"),
            ],
        );
        assert_eq!(key, other_client);
        assert_ne!(key, denied_key("api"));
    }

    #[test]
    fn a_window_writes_a_burst_then_counts_and_the_next_window_reports_the_count() {
        let mut limiter = Limiter { windows: Vec::new() };
        let start = Instant::now();
        let write = Admit::Write { summary: None };
        for _ in 0..REPEAT_BURST {
            assert_eq!(limiter.admit(denied_key("web"), start), write);
        }
        for _ in 0..25 {
            assert_eq!(limiter.admit(denied_key("web"), start), Admit::Suppress);
        }
        // Another route has a window of its own.
        assert_eq!(limiter.admit(denied_key("api"), start), write);
        // Before the window ends, nothing is due unless asked for all.
        assert_eq!(limiter.take_summaries(start + REPEAT_WINDOW / 2, false), []);
        // The first line after the window carries the count, and opens a new window.
        let later = start + REPEAT_WINDOW;
        assert_eq!(
            limiter.admit(denied_key("web"), later),
            Admit::Write { summary: Some(Summary { key: denied_key("web"), suppressed: 25 }) }
        );
        for _ in 1..REPEAT_BURST {
            assert_eq!(limiter.admit(denied_key("web"), later), write);
        }
        assert_eq!(limiter.admit(denied_key("web"), later), Admit::Suppress);
        // At exit, every open count is taken, once.
        let summaries = limiter.take_summaries(later, true);
        assert_eq!(summaries, [Summary { key: denied_key("web"), suppressed: 1 }]);
        assert_eq!(limiter.take_summaries(later, true), []);
    }

    #[test]
    fn ended_windows_are_reported_by_the_sweep_and_forgotten() {
        let mut limiter = Limiter { windows: Vec::new() };
        let start = Instant::now();
        for _ in 0..REPEAT_BURST + 3 {
            limiter.admit(denied_key("web"), start);
        }
        let end = start + REPEAT_WINDOW;
        assert_eq!(
            limiter.take_summaries(end, false),
            [Summary { key: denied_key("web"), suppressed: 3 }]
        );
        assert!(limiter.windows.is_empty());
        assert_eq!(limiter.admit(denied_key("web"), end), Admit::Write { summary: None });
    }

    #[test]
    fn a_summary_line_names_the_count_and_the_key() {
        let summary = Summary { key: denied_key("web"), suppressed: 19_990 };
        assert_eq!(
            summary.line(UNIX_EPOCH),
            "ts=1970-01-01T00:00:00.000Z level=info msg=\"suppressed similar lines\" \
             suppressed=19990 like=\"connection closed\" route=web upstream=- reason=denied\n"
        );
    }

    #[test]
    fn the_summary_of_dropped_lines_says_how_many() {
        count_dropped(4);
        let mut out = String::new();
        write_summaries(&mut |_, line| {
            out.push_str(line);
            true
        });
        // Other tests may drop lines too (the count is process-wide): at least ours.
        let dropped: u64 = out
            .split("dropped=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(dropped >= 4 && out.contains("msg=\"dropped log lines\""), "{out}");
        assert!(lines_dropped() >= 4);
    }

    #[test]
    fn a_panic_is_one_error_line() {
        let here = std::panic::Location::caller();
        let line = panic_line(UNIX_EPOCH, Some("tcprelay-conn"), "index out of bounds", Some(here));
        let expected = format!(
            "ts=1970-01-01T00:00:00.000Z level=error msg=\"thread panicked\" \
             thread=tcprelay-conn error=\"index out of bounds\" at={here}\n"
        );
        assert_eq!(line, expected);
    }

    #[test]
    fn levels_filter() {
        let log = Log::new(LogLevel::Warn);
        assert!(log.enabled(LogLevel::Error) && log.enabled(LogLevel::Warn));
        assert!(!log.enabled(LogLevel::Info) && !log.enabled(LogLevel::Debug));
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        let error = "loud".parse::<LogLevel>().unwrap_err();
        assert!(error.to_string().contains("\"loud\""), "{error}");
    }
}
