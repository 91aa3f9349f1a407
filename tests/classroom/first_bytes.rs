//! The lab's peek lesson (docs/lab.md, step 7): a relay that looks at each client's first
//! bytes, prints them, then relays both ways with `io::copy` and `shutdown(Write)`. How it
//! looks decides whether the upstream gets them:
//!
//! - `read`: `stream.read(&mut data)`, the seed's way: the bytes leave the socket and are
//!   never sent on;
//! - `replay`: `read` too, then the copy reads `(&data[..n]).chain(&client)`, which gives
//!   the taken bytes back first (Go: `io.MultiReader(bytes.NewReader(data[:n]), conn)`);
//! - `peek`: `TcpStream::peek`, the `MSG_PEEK` flag of `recv(2)`: the kernel shows the bytes
//!   and leaves them in the socket, so the plain copy that follows sends them on.
//!
//! Routing by TLS server name (SNI) is the same move with a ClientHello: peek, read the
//! server_name, dial the upstream it names, and copy the untouched ClientHello to it.
//!
//! Build and run (std only; the Go twin is docs/go/peek/main.go):
//!
//! ```sh
//! rustc -O --edition 2024 tests/classroom/first_bytes.rs -o target/lab/first_bytes
//! target/lab/first_bytes peek 127.0.0.1:9000 127.0.0.1:9001
//! ```
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

#[derive(Clone, Copy)]
enum Look {
    Read,
    Replay,
    Peek,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let look = match args.first().map(String::as_str) {
        Some("read") => Look::Read,
        Some("replay") => Look::Replay,
        Some("peek") => Look::Peek,
        _ => return usage(),
    };
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else { return usage() };
    let listener = match TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("first_bytes: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on {addr}"),
        Err(e) => eprintln!("listening (address unknown: {e})"),
    }
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Err(e) = handle(client, &upstream, look) {
                eprintln!("connection: {e}");
            }
        });
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: first_bytes read|replay|peek LISTEN_ADDR UPSTREAM_ADDR");
    ExitCode::from(2)
}

/// Looks at the client's first bytes, then relays the connection both ways.
fn handle(client: TcpStream, upstream: &str, look: Look) -> io::Result<()> {
    let mut data = [0u8; 128];
    let taken = match look {
        Look::Peek => {
            let n = client.peek(&mut data)?; // waits for bytes, takes none
            eprintln!("first bytes (peek): {:?}", String::from_utf8_lossy(&data[..n]));
            0
        }
        Look::Read | Look::Replay => {
            let n = (&client).read(&mut data)?; // the bytes leave the socket here
            let how = if let Look::Read = look { "read" } else { "read, then replayed" };
            eprintln!("first bytes ({how}): {:?}", String::from_utf8_lossy(&data[..n]));
            if let Look::Read = look { 0 } else { n }
        }
    };
    let up = TcpStream::connect(upstream)?;
    thread::scope(|s| {
        s.spawn(|| {
            // Replay: the bytes taken above first, then the socket (empty for read and peek).
            let mut from = (&data[..taken]).chain(&client);
            copy_then_shutdown(&mut from, &up, &client);
        });
        copy_then_shutdown(&mut &up, &client, &up);
    });
    Ok(())
}

/// Copies until EOF, then passes the EOF on; on an error, wakes the other copy.
fn copy_then_shutdown(from: &mut impl Read, mut to: &TcpStream, source: &TcpStream) {
    match io::copy(from, &mut to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = source.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}
