//! `--explain`: each connection's life told as it happens, in plain words, each event paired
//! with the statement of `docs/go/correct/main.go` that does the same. For projecting in a
//! classroom while students connect with `nc`.
//!
//! ```text
//! conn 1   accepted a client from 127.0.0.1:50412             Go: conn, err := l.Accept()
//! conn 1   dialled its own upstream 127.0.0.1:7000            Go: c, err := net.Dial("tcp", upstream)
//! conn 1   a second thread starts, for client → upstream      Go: go func() {
//! conn 1   first 3 bytes client → upstream                    Go: copyThenCloseWrite(up, conn)
//! conn 1   client sent EOF: shutdown(Write) to upstream       Go: dst.CloseWrite()
//! ```
//!
//! The Go column quotes the program verbatim, one line of it per `Go:` (two lines are two
//! `Go:` lines), so a student can find each with a search; everything that explains goes in
//! the event text. Every line fits a 100-column projector, whatever an error says: an event
//! too long for one line is wrapped, and its Go goes below it, indented. Every Go statement
//! the relay is compared with lives in this file.
//!
//! The narration tells what happened, off the happy path too: a copy that ends because the
//! relay itself shut both sockets down (a timer, the other copy's error, a stop) reads
//! `Ok(0)`, which looks like the peer's EOF; it is told as the relay's close, with its
//! reason, never as an EOF (Go's `Close` wakes the reader with an error instead). When
//! narration is off (the default) each event costs one `bool` test, and reads pay one only
//! until a copy's first bytes.

use crate::net::address::Address;
use std::fmt::{self, Display};
use std::io::{self, Write};

use crate::outcome::CloseReason;
use crate::outcome::Direction;

/// Whether to narrate connections, and the one place that writes the narration (stdout).
#[derive(Clone, Copy, Debug, Default)]
pub struct Explain {
    on: bool,
}

impl Explain {
    /// Narration on or off.
    pub fn new(on: bool) -> Explain {
        Explain { on }
    }

    /// Whether narration is on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// `l.Accept()` returned a client.
    pub fn accepted(&self, id: u64, client: &Address) {
        self.tell(
            id,
            format_args!("accepted a client from {client}"),
            &["conn, err := l.Accept()"],
        );
    }

    /// `net.Dial` failed: Go logs it and returns, before any copy or `wg` exists.
    pub fn dial_failed(&self, id: u64, error: &dyn Display) {
        self.tell(
            id,
            format_args!("could not dial the upstream ({error}): closing the client"),
            &["log.Println(\"dial:\", err)", "return"],
        );
    }

    /// `net.Dial` made this connection's own upstream connection.
    pub fn dialled(&self, id: u64, upstream: &dyn Display) {
        self.tell(
            id,
            format_args!("dialled its own upstream {upstream}"),
            &["c, err := net.Dial(\"tcp\", upstream)"],
        );
    }

    /// About to start the second thread; told before the spawn so it comes before anything
    /// the new thread tells.
    pub fn copies_starting(&self, id: u64) {
        self.tell(
            id,
            format_args!("a second thread starts, for client → upstream"),
            &["go func() {"],
        );
    }

    /// A copy moved its first bytes.
    pub fn first_bytes(&self, id: u64, direction: Direction, count: usize) {
        let (from, to, go_call) = names(direction);
        self.tell(id, format_args!("first {count} bytes {from} → {to}"), &[go_call]);
    }

    /// A copy's source finished sending, and the relay half-closed the other socket.
    pub fn eof(&self, id: u64, direction: Direction) {
        let (from, to, _) = names(direction);
        self.tell(
            id,
            format_args!("{from} sent EOF: shutdown(Write) to {to}"),
            &["dst.CloseWrite()"],
        );
    }

    /// A copy's read returned `Ok(0)` because the relay had shut both sockets down itself
    /// (`reason`): not the peer's EOF, so nothing is passed on. Go's `Close` wakes the other
    /// goroutine's `Read` with an error, which takes the error branch of the same line.
    pub fn woken_by_close(&self, id: u64, direction: Direction, reason: CloseReason) {
        let (from, to, _) = names(direction);
        self.tell(
            id,
            format_args!("{from} → {to} ends: the relay closed both sockets ({reason}), no EOF"),
            &["if _, err := io.Copy(dst, src); err != nil {"],
        );
    }

    /// A copy failed; the relay closes both sockets.
    pub fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error) {
        let (from, to, _) = names(direction);
        self.tell(
            id,
            format_args!("{from} → {to} failed ({error}): closing both"),
            &["src.Close()", "dst.Close()"],
        );
    }

    /// The idle or half-close timer expired. `correct/main.go` has no timers, so there is no
    /// Go statement to show.
    pub fn timer_expired(&self, id: u64, reason: CloseReason) {
        self.tell(id, format_args!("{reason}: no byte moved in time, closing both"), &[]);
    }

    /// The connection is over. Told by what ended it: before any copy started (no
    /// upstream, or no second thread) there is no `wg.Wait()` to quote.
    pub fn closed(&self, id: u64, reason: CloseReason) {
        match reason {
            CloseReason::ConnectFailed => self.tell(
                id,
                format_args!("no copy: the client is closed ({reason})"),
                &["defer conn.Close()"],
            ),
            CloseReason::SpawnFailed => self.tell(
                id,
                format_args!("no second thread, no copy: both sockets closed ({reason})"),
                &[],
            ),
            CloseReason::Denied
            | CloseReason::ClientLimit
            | CloseReason::ProcessLimit
            | CloseReason::BadProxyHeader
            | CloseReason::NoRoute => self.tell(
                id,
                format_args!("refused, no dial: the client is closed ({reason})"),
                &[],
            ),
            _ => self.tell(
                id,
                format_args!("both copies done, both sockets closed ({reason})"),
                &["wg.Wait()"],
            ),
        }
    }

    fn tell(&self, id: u64, what: fmt::Arguments<'_>, go: &[&str]) {
        if !self.on {
            return;
        }
        let text = layout(id, &what.to_string(), go);
        // As in the logger: one write per event, so lines from two threads never interleave.
        let _ = io::stdout().lock().write_all(text.as_bytes());
    }
}

/// The widest line a projector shows: 100 columns.
const WIDTH: usize = 100;
/// Where the Go column starts, when the event fits before it.
const GO_COLUMN: usize = 60;

/// One event as it is printed: `conn ID  EVENT  Go: STATEMENT`, on one line when that fits
/// in [`WIDTH`] columns with the Go at [`GO_COLUMN`], each further Go line below the first.
/// Otherwise the event is wrapped at [`WIDTH`] (a word longer than a line, such as a long
/// path, is cut) and each Go line follows on its own line, indented to the event. An event
/// with no Go statement is printed alone.
fn layout(id: u64, what: &str, go: &[&str]) -> String {
    let head = format!("conn {id:<3} {what}");
    let head_width = head.chars().count();
    let fits_beside = |go: &str| GO_COLUMN + "Go: ".len() + go.chars().count() <= WIDTH;
    let mut text = String::new();
    if head_width < GO_COLUMN && go.iter().all(|go| fits_beside(go)) {
        let mut lines = go.iter();
        match lines.next() {
            Some(first) => text.push_str(&format!("{head:GO_COLUMN$}Go: {first}\n")),
            None => text.push_str(&format!("{head}\n")),
        }
        for go in lines {
            text.push_str(&format!("{:GO_COLUMN$}Go: {go}\n", ""));
        }
        return text;
    }
    let indent = format!("conn {id:<3} ").chars().count();
    for line in wrapped(&head, indent) {
        text.push_str(&line);
        text.push('\n');
    }
    for go in go {
        text.push_str(&format!("{:indent$}Go: {go}\n", ""));
    }
    text
}

/// `text` cut into lines of at most [`WIDTH`] columns at spaces, every line after the first
/// indented by `indent`; a word too long for a line is cut where the line ends.
fn wrapped(text: &str, indent: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut width = 0; // of the line being filled
    let new_line = |lines: &mut Vec<String>| lines.push(" ".repeat(indent));
    for word in text.split(' ') {
        let at_line_start = width == 0 || (lines.len() > 1 && width == indent);
        if !at_line_start {
            if width + 1 + word.chars().count() <= WIDTH {
                lines.last_mut().expect("there is always a line").push(' ');
                width += 1;
            } else {
                new_line(&mut lines);
                width = indent;
            }
        }
        for character in word.chars() {
            if width == WIDTH {
                new_line(&mut lines);
                width = indent;
            }
            lines.last_mut().expect("there is always a line").push(character);
            width += 1;
        }
    }
    lines
}

/// For a copy: the side it reads, the side it writes, and the call in `correct/main.go` that
/// does the same copy (the Go proxy calls the client `conn` and the upstream `up`).
fn names(direction: Direction) -> (&'static str, &'static str, &'static str) {
    match direction {
        Direction::ClientToUpstream => ("client", "upstream", "copyThenCloseWrite(up, conn)"),
        Direction::UpstreamToClient => ("upstream", "client", "copyThenCloseWrite(conn, up)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line fits [`WIDTH`], and no character of the event is lost to the wrapping.
    fn assert_fits_and_keeps(text: &str, what: &str) {
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{} columns: {line:?}", line.chars().count());
        }
        let kept: String = text.lines().filter(|l| !l.trim_start().starts_with("Go: ")).collect();
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert!(squeeze(&kept).ends_with(&squeeze(what)), "{text}");
    }

    #[test]
    fn a_short_event_and_its_go_share_one_line_within_100_columns() {
        let text = layout(
            1,
            "dialled its own upstream 127.0.0.1:9001",
            &["c, err := net.Dial(\"tcp\", upstream)"],
        );
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.chars().count() <= WIDTH + 1, "{text}");
        assert_eq!(text.find("Go: "), Some(GO_COLUMN), "{text}");
    }

    #[test]
    fn two_go_lines_are_quoted_as_two_lines() {
        let text = layout(
            2,
            "client → upstream failed (x): closing both",
            &["src.Close()", "dst.Close()"],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("Go: src.Close()") && lines[1].ends_with("Go: dst.Close()"));
        assert_eq!(lines[1].find("Go: "), Some(GO_COLUMN), "{text}");
    }

    /// The texts the relay really prints when the upstream cannot be dialled: refused (a
    /// student who forgot to start A), a name that does not resolve, a long Unix path.
    #[test]
    fn a_failed_dial_fits_100_columns_whatever_the_error_says() {
        let long_path =
            format!("/home/student/tcprelay/target/lab/{}/upstream.sock", "x".repeat(90));
        let errors = [
            "cannot connect to 127.0.0.1:9015: Connection refused (os error 111)".to_string(),
            "cannot resolve upstream.lab.example:9015: failed to lookup address information: \
             Name or service not known"
                .to_string(),
            format!("cannot connect to unix:{long_path}: No such file or directory (os error 2)"),
        ];
        for error in errors {
            let what = format!("could not dial the upstream ({error}): closing the client");
            let text = layout(12, &what, &["log.Println(\"dial:\", err)", "return"]);
            assert_fits_and_keeps(&text, &what);
            let go: Vec<&str> = text.lines().filter(|l| l.contains("Go: ")).collect();
            assert_eq!(go, ["         Go: log.Println(\"dial:\", err)", "         Go: return"]);
        }
    }

    #[test]
    fn an_event_without_go_is_one_line() {
        assert_eq!(
            layout(3, "idle_timeout: no byte moved in time, closing both", &[]),
            "conn 3   idle_timeout: no byte moved in time, closing both\n"
        );
    }
}
