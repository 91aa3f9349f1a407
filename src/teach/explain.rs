//! `--explain`: each connection's life told as it happens, in plain words, each event paired
//! with the line of the Go proxy it corresponds to. For projecting in a classroom while
//! students connect with `nc`.
//!
//! ```text
//! conn 1   accepted a client from 127.0.0.1:50412                  Go: conn, err := l.Accept()
//! conn 1   dialled its own upstream 127.0.0.1:7000                 Go: up, err := net.Dial("tcp", upstream)
//! conn 1   starting the second thread: both copies run             Go: go io.Copy(up, conn); io.Copy(conn, up)
//! conn 1   first 3 bytes client → upstream                         Go: io.Copy(up, conn) moves its first bytes
//! conn 1   client finished sending (EOF): shutdown(Write) to upstream Go: io.Copy(up, conn) returned nil; up.CloseWrite()
//! ```
//!
//! Every Go line the relay is compared with lives in this file. When narration is off (the
//! default) each event costs one `bool` test, and reads pay one only until a copy's first
//! bytes.

use crate::net::stream::Address;
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
            format_args!("could not dial the upstream: {error}"),
            "if err != nil { return }",
        );
    }

    /// `net.Dial` made this connection's own upstream connection.
    pub fn dialled(&self, id: u64, upstream: &dyn Display) {
        self.tell(
            id,
            format_args!("dialled its own upstream {upstream}"),
            "up, err := net.Dial(\"tcp\", upstream)",
        );
    }

    /// About to start the second thread; told before the spawn so it comes before anything
    /// the new thread tells.
    pub fn copies_starting(&self, id: u64) {
        self.tell(
            id,
            format_args!("starting the second thread: both copies run"),
            "go io.Copy(up, conn); io.Copy(conn, up)",
        );
    }

    /// A copy moved its first bytes.
    pub fn first_bytes(&self, id: u64, direction: Direction, count: usize) {
        let (from, to, go_copy, _) = names(direction);
        self.tell(
            id,
            format_args!("first {count} bytes {from} → {to}"),
            format_args!("{go_copy} moves its first bytes"),
        );
    }

    /// A copy's source finished sending, and the relay half-closed the other socket.
    pub fn eof(&self, id: u64, direction: Direction) {
        let (from, to, go_copy, go_sink) = names(direction);
        self.tell(
            id,
            format_args!("{from} finished sending (EOF): shutdown(Write) to {to}"),
            format_args!("{go_copy} returned nil; {go_sink}.CloseWrite()"),
        );
    }

    /// A copy failed; the relay closes both sockets.
    pub fn copy_failed(&self, id: u64, direction: Direction, error: &io::Error) {
        let (from, to, go_copy, _) = names(direction);
        self.tell(
            id,
            format_args!("{from} → {to} failed ({error}): closing both"),
            format_args!("{go_copy} returned err; conn.Close(); up.Close()"),
        );
    }

    /// The idle or half-close timer expired.
    pub fn timer_expired(&self, id: u64, reason: CloseReason) {
        self.tell(
            id,
            format_args!("{reason}: no byte moved in time, closing both"),
            "a conn.SetDeadline(...) expired",
        );
    }

    /// Both copies are done and both sockets are about to be closed.
    pub fn closed(&self, id: u64, reason: CloseReason) {
        self.tell(
            id,
            format_args!("both copies done, both sockets closed ({reason})"),
            "wg.Wait(); defer conn.Close(); defer up.Close()",
        );
    }

    fn tell(&self, id: u64, what: fmt::Arguments<'_>, go: impl Display) {
        if !self.on {
            return;
        }
        let line = format!("conn {id:<3} {:<60} Go: {go}\n", what.to_string());
        // As in the logger: one write per line, so lines from two threads never interleave.
        let _ = io::stdout().lock().write_all(line.as_bytes());
    }
}

/// For a copy: the side it reads, the side it writes, the Go copy that does the same, and
/// the Go name of the socket it writes (the Go proxy calls the client `conn`, the upstream `up`).
fn names(direction: Direction) -> (&'static str, &'static str, &'static str, &'static str) {
    match direction {
        Direction::ClientToUpstream => ("client", "upstream", "io.Copy(up, conn)", "up"),
        Direction::UpstreamToClient => ("upstream", "client", "io.Copy(conn, up)", "conn"),
    }
}
