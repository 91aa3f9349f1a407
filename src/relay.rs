//! The life of one connection, top to bottom: dial → spawn → copy both ways → half-close →
//! join → close. Read it beside `handleConn` in `docs/go/correct/main.go`, quoted here with
//! the Rust that does each line (the names are the Go program's: `conn` is the client, `up`
//! the upstream, `dst`/`src` the two sides of one copy):
//!
//! ```go
//! func handleConn(conn *net.TCPConn, upstream string) { // relay(), on the first thread
//!     defer conn.Close()                    // Drop of the Connection, after both copies
//!     c, err := net.Dial("tcp", upstream)   // shared.upstreams.dial(connect_timeout, ..)
//!     if err != nil {
//!         log.Println("dial:", err)         // connection.close(ConnectFailed, ..)
//!         return
//!     }
//!     up := c.(*net.TCPConn)
//!     defer up.Close()                      // attach_upstream: the Connection owns it
//!     var wg sync.WaitGroup                 // mpsc::channel(): `done` / `second_done`
//!     wg.Add(1)
//!     go func() {                           // shared.threads.run(ThreadRole::Second, ..)
//!         defer wg.Done()                   // done.send(bytes)
//!         copyThenCloseWrite(up, conn)      // copy_one_way(client → upstream)
//!     }()
//!     copyThenCloseWrite(conn, up)          // copy_one_way(upstream → client)
//!     wg.Wait()                             // second_done.recv()
//! }
//!
//! func copyThenCloseWrite(dst, src *net.TCPConn) { // copy_one_way(from: src, to: dst)
//!     if _, err := io.Copy(dst, src); err != nil { // io::copy(&mut source, &mut sink)
//!         src.Close()                       // connection.close(reason, error):
//!         dst.Close()                       //   shutdown(Both) on both sockets
//!         return
//!     }
//!     dst.CloseWrite()                      // to.shutdown(Shutdown::Write)
//! }
//! ```
//!
//! The second thread comes from [`crate::threads::ThreadPool`]: a new OS thread, or one
//! parked after an earlier connection (the goroutine runtime does the same for Go). A parked
//! thread cannot borrow this function's locals, so the Connection is shared by an `Arc` and
//! the wait is a channel, where a scoped thread would need neither (docs/go-to-rust.md).

use std::fmt::Display;
use std::io::{self, BufReader, Write};
use std::net::Shutdown;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;

use crate::connection::{CloseReason, Connection};
use crate::listener::Shared;
use crate::meter::{Direction, Sink, Source};
use crate::proxy_protocol::{self, ProxyVersion};
use crate::stream::{Address, Stream};
use crate::threads::{ThreadHook, ThreadLife, ThreadRole};

/// The close reasons for a copy in `direction`: its source finished, its source failed, its
/// sink failed.
fn reasons(direction: Direction) -> (CloseReason, CloseReason, CloseReason) {
    match direction {
        Direction::ClientToUpstream => {
            (CloseReason::ClientEof, CloseReason::ClientReset, CloseReason::UpstreamReset)
        }
        Direction::UpstreamToClient => {
            (CloseReason::UpstreamEof, CloseReason::UpstreamReset, CloseReason::ClientReset)
        }
    }
}

/// Relays one accepted client until both directions are done, then logs one line.
///
/// This runs on the connection's first thread. It returns when both copies have ended; the
/// sockets are closed afterwards, when the last owner of the [`Connection`] drops it.
pub fn relay(connection: &Arc<Connection>, shared: &Shared) {
    let started = Instant::now();
    let config = &shared.config;
    let log = &shared.log;
    let _ = connection.client.set_nodelay(true);

    // c, err := net.Dial("tcp", upstream), with a timeout: our *own* upstream, never shared.
    let metrics = &shared.metrics;
    let upstream = match shared.upstreams.dial(config.connect_timeout, log, metrics, connection.id)
    {
        Ok(upstream) => upstream,
        Err(error) => {
            // Each upstream's failure was logged once per back-off (see upstreams.rs), and the
            // "connection closed" line below carries the error: no warning per client here.
            log.debug("every upstream failed", &[("conn", &connection.id), ("error", &error)]);
            connection.explain.dial_failed(connection.id, &error);
            connection.close(CloseReason::ConnectFailed, &error);
            log_closed(connection, shared, started, None, (0, 0));
            return;
        }
    };
    // A relay must not add Nagle's delay to the small writes it passes on.
    let _ = upstream.set_nodelay(true);
    // The PROXY protocol header goes first, in one write, before any client byte can.
    if let Some(version) = config.proxy_protocol {
        if let Err(error) = write_proxy_header(version, connection, &upstream) {
            log.warn(
                "cannot send the PROXY header",
                &[("conn", &connection.id), ("error", &error)],
            );
            connection.close(CloseReason::UpstreamReset, &error);
            log_closed(connection, shared, started, upstream.peer_addr().ok(), (0, 0));
            return;
        }
    }
    let upstream_addr = upstream.peer_addr().ok();
    let upstream = connection.attach_upstream(upstream);
    // With a timer on, blocked reads and writes wake up every tick to look at it.
    if let Some(tick) = connection.timers.tick() {
        for socket in [&connection.client, upstream] {
            let _ = socket.set_read_timeout(Some(tick));
            let _ = socket.set_write_timeout(Some(tick));
        }
    }
    log.debug(
        "upstream dialled",
        &[("conn", &connection.id), ("upstream", &show(upstream_addr.as_ref()))],
    );
    connection.explain.dialled(connection.id, &show(upstream_addr.as_ref()));

    let hook = config.thread_hook;
    let buffer_size = config.buffer_size;
    // go func() { defer wg.Done(); copyThenCloseWrite(up, conn) }()
    connection.explain.copies_starting(connection.id);
    let (done, second_done) = mpsc::channel();
    let second = Arc::clone(connection);
    let started_second = shared.threads.run(ThreadRole::Second, move || {
        let bytes = second_thread(&second, hook, buffer_size);
        // Our share of the connection goes before `done`: the first thread, once it hears
        // it, holds the last share and closes both sockets before its slot is seen free.
        drop(second);
        let _ = done.send(bytes);
    });
    let bytes = match started_second {
        Err(error) => {
            log.warn("cannot start copy thread", &[("conn", &connection.id), ("error", &error)]);
            connection.close(CloseReason::SpawnFailed, &error);
            (0, 0)
        }
        Ok(()) => {
            // copyThenCloseWrite(conn, up), on this thread.
            let to_client = copy_one_way(
                connection,
                upstream,
                &connection.client,
                Direction::UpstreamToClient,
                buffer_size,
            );
            // wg.Wait(). A second thread that panicked dropped `done` unsent;
            // it already closed the connection on its way out (see `CloseOnPanic`).
            let to_upstream = second_done.recv().unwrap_or(0);
            (to_upstream, to_client)
        }
    };
    connection.explain.closed(connection.id, connection.outcome().0);
    log_closed(connection, shared, started, upstream_addr, bytes);
    // Added once at the end rather than per write: the copy loops stay free of shared
    // counters. So /metrics shows a connection's bytes when it has closed.
    shared.metrics.add_bytes_client_to_upstream(bytes.0);
    shared.metrics.add_bytes_upstream_to_client(bytes.1);
}

/// The second thread's copy, client → upstream; returns the bytes delivered.
fn second_thread(connection: &Connection, hook: ThreadHook, buffer_size: usize) -> u64 {
    // Before anything else, so a panic even before the copy starts closes the connection;
    // else the first thread would wait on an upstream that waits for client bytes nobody
    // will copy.
    let _close_on_panic = CloseOnPanic(connection);
    let _life = ThreadLife::begin(hook, ThreadRole::Second);
    let Some(upstream) = connection.upstream() else { return 0 }; // attached before the spawn
    let client = &connection.client;
    copy_one_way(connection, client, upstream, Direction::ClientToUpstream, buffer_size)
}

/// Writes the PROXY protocol header for `connection` to the fresh `upstream` socket with a
/// single `write_all` (a header is at most 107 bytes in v1 and 52 in v2: it fits in any
/// socket buffer, so it never waits on the peer).
fn write_proxy_header(
    version: ProxyVersion,
    connection: &Connection,
    upstream: &Stream,
) -> io::Result<()> {
    // A Unix socket client has no IP address to tell: the header says "unknown".
    let header = match (&connection.client_addr, connection.client.local_addr()) {
        (Address::Tcp(client), Ok(Address::Tcp(local))) => {
            proxy_protocol::header(version, *client, local)
        }
        _ => proxy_protocol::unknown_header(version),
    };
    let mut upstream = upstream;
    upstream.write_all(&header)
}

/// Copies `from` → `to` until EOF or an error, then half-closes or closes, and returns the
/// bytes delivered.
///
/// At EOF the source has said "I am done sending": we pass that on with `shutdown(Write)`
/// on the sink (Go: `dst.CloseWrite()`) and leave the other direction running, so a client
/// that half-closes still gets its whole reply. On an error, the whole connection is closed so
/// the other thread wakes up at once.
fn copy_one_way(
    connection: &Connection,
    from: &Stream,
    to: &Stream,
    direction: Direction,
    buffer_size: usize,
) -> u64 {
    let _close_on_panic = CloseOnPanic(connection);
    let (source_eof, source_failed, sink_failed) = reasons(direction);
    let mut source = Source::new(from, connection, direction);
    let mut sink = Sink::new(to, connection);
    // `0`: std's own loop with its 8 KiB buffer on this thread's stack, the plain shape.
    // Otherwise a heap buffer of that size, which `io::copy` reads into directly: fewer
    // system calls per byte, at the cost of memory. docs/benchmarks.md has both measured.
    let copied = match buffer_size {
        0 => io::copy(&mut source, &mut sink),
        size => io::copy(&mut BufReader::with_capacity(size, source), &mut sink),
    };
    match copied {
        Ok(_) => {
            connection.record_eof(source_eof);
            // Told first, so the story stays in order: the peer reacts to the shutdown at once.
            connection.explain.eof(connection.id, direction);
            // Fails only if the sink is already shut down or gone; the other copy will see it.
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(error) => {
            let reason = if sink.write_failed { sink_failed } else { source_failed };
            connection.explain.copy_failed(connection.id, direction, &error);
            connection.close(reason, error);
        }
    }
    sink.bytes
}

/// Closes the connection if dropped during a panic, so a bug in one copy thread wakes its
/// sibling (which could otherwise wait forever in `read`) instead of leaking both.
struct CloseOnPanic<'a>(&'a Connection);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.close(CloseReason::Panicked, "copy thread panicked");
        }
    }
}

/// The one info line per finished connection.
fn log_closed(
    connection: &Connection,
    shared: &Shared,
    started: Instant,
    upstream_addr: Option<Address>,
    (to_upstream, to_client): (u64, u64),
) {
    let (reason, error) = connection.outcome();
    let upstream = show(upstream_addr);
    let duration_ms = started.elapsed().as_millis();
    let fields: &[(&str, &dyn std::fmt::Display)] = &[
        ("conn", &connection.id),
        ("client", &connection.client_addr),
        ("upstream", &upstream),
        ("bytes_to_upstream", &to_upstream),
        ("bytes_to_client", &to_client),
        ("duration_ms", &duration_ms),
        ("reason", &reason),
    ];
    if error.is_empty() {
        shared.log.info("connection closed", fields);
    } else {
        shared.log.info("connection closed", &[fields, &[("error", &error)]].concat());
    }
}

/// An address for the log, or `-` when there is none (no upstream was dialled).
fn show(addr: Option<impl Display>) -> String {
    addr.map(|addr| addr.to_string()).unwrap_or_else(|| "-".to_string())
}
