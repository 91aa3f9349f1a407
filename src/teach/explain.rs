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
//! The Go column quotes the program verbatim, one statement (or two consecutive ones, joined
//! by `; `), so a student can find it with a search; everything that explains goes in the
//! event text. A line fits a 100-column projector; when an event is too long for that, its
//! Go goes on the next line, indented. Every Go statement the relay is compared with lives
//! in this file. When narration is off (the default) each event costs one `bool` test, and
//! reads pay one only until a copy's first bytes.

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
        self.tell(id, format_args!("accepted a client from {client}"), "conn, err := l.Accept()");
    }

    /// `net.Dial` failed.
    pub fn dial_failed(&self, id: u64, error: &dyn Display) {
        self.tell(
            id,
            format_args!("could not dial the upstream ({error}): closing the client"),
            "log.Println(\"dial:\", err)",
        );
    }

    /// `net.Dial` made this connection's own upstream connection.
    pub fn dialled(&self, id: u64, upstream: &dyn Display) {
        self.tell(
            id,
            format_args!("dialled its own upstream {upstream}"),
            "c, err := net.Dial(\"tcp\", upstream)",
        );
    }

    /// About to start the second thread; told before the spawn so it comes before anything
    /// the new thread tells.
    pub fn copies_starting(&self, id: u64) {
        self.tell(id, format_args!("a second thread starts, for client → upstream"), "go func() {");
    }

    /// A copy moved its first bytes.
    pub fn first_bytes(&self, id: u64, direction: Direction, count: usize) {
        let (from, to, go_call) = names(direction);
        self.tell(id, format_args!("first {count} bytes {from} → {to}"), go_call);
    }

    /// A copy's source finished sending, and the relay half-closed the other socket.
    pub fn eof(&self, id: u64, direction: Direction) {
        let (from, to, _) = names(direction);
        self.tell(id, format_args!("{from} sent EOF: shutdown(Write) to {to}"), "dst.CloseWrite()");
    }

    /// A copy failed; the relay closes both sockets.
    pub fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error) {
        let (from, to, _) = names(direction);
        self.tell(
            id,
            format_args!("{from} → {to} failed ({error}): closing both"),
            "src.Close(); dst.Close()",
        );
    }

    /// The idle or half-close timer expired. `correct/main.go` has no timers, so there is no
    /// Go statement to show.
    pub fn timer_expired(&self, id: u64, reason: CloseReason) {
        self.tell(id, format_args!("{reason}: no byte moved in time, closing both"), "");
    }

    /// Both copies are done and both sockets are about to be closed.
    pub fn closed(&self, id: u64, reason: CloseReason) {
        self.tell(
            id,
            format_args!("both copies done, both sockets closed ({reason})"),
            "wg.Wait()",
        );
    }

    fn tell(&self, id: u64, what: fmt::Arguments<'_>, go: &str) {
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
/// Where the event text starts: after `conn 1   `.
const EVENT_COLUMN: usize = 9;
/// Where the Go column starts, when the event fits before it.
const GO_COLUMN: usize = 60;

/// One event as it is printed: `conn ID  EVENT  Go: STATEMENT`, on one line when that fits
/// in [`WIDTH`] columns with the Go at [`GO_COLUMN`], otherwise with the Go on the next
/// line, indented to the event. An event with no Go statement is printed alone.
fn layout(id: u64, what: &str, go: &str) -> String {
    let head = format!("conn {id:<3} {what}");
    let head_width = head.chars().count();
    if go.is_empty() {
        return format!("{head}\n");
    }
    let go = format!("Go: {go}");
    if head_width < GO_COLUMN && GO_COLUMN + go.chars().count() <= WIDTH {
        let padding = GO_COLUMN - head_width;
        format!("{head}{:padding$}{go}\n", "")
    } else {
        format!("{head}\n{:EVENT_COLUMN$}{go}\n", "")
    }
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

    #[test]
    fn a_short_event_and_its_go_share_one_line_within_100_columns() {
        let text = layout(
            1,
            "dialled its own upstream 127.0.0.1:9001",
            "c, err := net.Dial(\"tcp\", upstream)",
        );
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.chars().count() <= WIDTH + 1, "{text}");
        assert_eq!(text.find("Go: "), Some(GO_COLUMN), "{text}");
    }

    #[test]
    fn a_long_event_puts_its_go_on_the_next_line_indented() {
        let what =
            "could not dial the upstream (connection refused (os error 111)): closing the client";
        let text = layout(12, what, "log.Println(\"dial:\", err)");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [format!("conn 12  {what}").as_str(), "         Go: log.Println(\"dial:\", err)"]
        );
    }

    #[test]
    fn an_event_without_go_is_one_line() {
        assert_eq!(
            layout(3, "idle_timeout: no byte moved in time, closing both", ""),
            "conn 3   idle_timeout: no byte moved in time, closing both\n"
        );
    }
}
