//! `--explain`: each connection's life told as it happens, in plain words, each event paired
//! with the line of the Go proxy it corresponds to. For projecting in a classroom while
//! students connect with `nc`.
//!
//! ```text
//! conn 1  accepted a client from 127.0.0.1:50412              Go: conn, err := l.Accept()
//! conn 1  dialled its own upstream 127.0.0.1:7000             Go: up, err := net.Dial("tcp", upstream)
//! conn 1  started the second thread: both copies run          Go: go io.Copy(up, conn); io.Copy(conn, up)
//! conn 1  first 6 bytes client → upstream                     Go: io.Copy(up, conn) moves its first bytes
//! ```
//!
//! When off (the default) it costs one `bool` test per event, and per read only until a
//! copy's first bytes have been seen.

use std::fmt;
use std::io::Write;

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

    /// Tells one event of connection `id`, beside the Go line it mirrors.
    pub fn event(&self, id: u64, what: fmt::Arguments<'_>, go: impl fmt::Display) {
        if !self.on {
            return;
        }
        let line = format!("conn {id:<3} {:<60} Go: {go}\n", what.to_string());
        // Same as the logger: one write per line, so lines never interleave.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}
