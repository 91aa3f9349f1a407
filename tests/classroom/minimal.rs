//! The card's shape, before production: docs/go/correct/main.go in Rust, line for line.
//! An accept loop, one upstream per client, two threads each running `io::copy` one way,
//! `shutdown(Write)` at EOF, and both sockets closed once both copies are done.
//!
//! cargo run --example minimal -- 127.0.0.1:9000 127.0.0.1:9001
#![forbid(unsafe_code)]
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: minimal LISTEN UPSTREAM (e.g. 127.0.0.1:9000 127.0.0.1:9001)");
        std::process::exit(2);
    };
    let l = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("listen: {listen}: {e}"); // log.Fatal("listen: ", err)
        std::process::exit(1);
    });
    eprintln!("listening on {}", l.local_addr().map_or(listen.clone(), |a| a.to_string()));
    for conn in l.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}"); // log.Println("accept:", err); continue
                continue;
            }
        };
        let upstream = upstream.clone(); // go handleConn(conn, upstream):
        let spawned = thread::Builder::new().spawn(move || handle_conn(conn, &upstream));
        if let Err(e) = spawned {
            eprintln!("spawn: {e}"); // no thread: this client is closed, the loop goes on
        }
    }
}

/// func handleConn(conn, upstream): dial, copy both ways, wait for both, close.
fn handle_conn(conn: TcpStream, upstream: &str) {
    let up = match TcpStream::connect(upstream) {
        Ok(up) => up, // c, err := net.Dial("tcp", upstream)
        Err(e) => {
            eprintln!("dial: {e}"); // log.Println("dial:", err); return
            return;
        }
    };
    thread::scope(|s| {
        let second = thread::Builder::new() // go func() { copyThenCloseWrite(up, conn) }()
            .spawn_scoped(s, || copy_then_close_write(&up, &conn));
        if let Err(e) = second {
            eprintln!("spawn: {e}");
            return;
        }
        copy_then_close_write(&conn, &up); // copyThenCloseWrite(conn, up)
    }); // wg.Wait(): the scope joins the second thread
} // defer up.Close(); defer conn.Close(): both are dropped here

/// func copyThenCloseWrite(dst, src): copy until EOF, then pass the EOF on.
fn copy_then_close_write(mut dst: &TcpStream, mut src: &TcpStream) {
    if io::copy(&mut src, &mut dst).is_err() {
        // Close wakes the other goroutine in Go; dropping one handle would not wake the
        // other thread's read (rust-lang/rust#41399), shutdown(Both) does.
        let _ = src.shutdown(Shutdown::Both); // src.Close()
        let _ = dst.shutdown(Shutdown::Both); // dst.Close()
        return;
    }
    let _ = dst.shutdown(Shutdown::Write); // dst.CloseWrite()
}
