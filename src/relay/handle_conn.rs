//! The life of one connection, top to bottom: dial → spawn → copy both ways → half-close →
//! join → close. The card's shape, before production, is `tests/classroom/minimal.rs`
//! (`cargo run --example minimal`): this function without timeouts, limits or logs, in 68
//! lines. Read this one beside `handleConn` in `docs/go/correct/main.go`, quoted here with
//! the Rust that does each line (the names are the Go program's: `conn` is the client, `up`
//! the upstream, `dst`/`src` the two sides of one copy):
//!
//! ```go
//! func handleConn(conn *net.TCPConn, upstream string) { // handle_conn, on the first thread
//!     defer conn.Close()                    // Drop of the Connection, after both copies
//!     c, err := net.Dial("tcp", upstream)   // route.upstreams.dial(connect_timeout, ..)
//!     if err != nil {
//!         log.Println("dial:", err)         // close_early(conn, route, ConnectFailed, ..)
//!         return
//!     }
//!     up := c.(*net.TCPConn)
//!     defer up.Close()                      // attach_upstream: the Connection owns it
//!     var wg sync.WaitGroup                 // mpsc::channel(): `done` / `second_done`
//!     wg.Add(1)
//!     go func() {                           // route.threads.run(ThreadRole::Second, ..)
//!         defer wg.Done()                   // done.send(())
//!         copyThenCloseWrite(up, conn)      // copy_then_close_write(up, conn.client, ..)
//!     }()
//!     copyThenCloseWrite(conn, up)          // copy_then_close_write(conn.client, up, ..)
//!     wg.Wait()                             // second_done.recv()
//! }
//! ```
//!
//! `copyThenCloseWrite` itself is in `copy.rs`. The second thread comes from
//! [`crate::limits::threads::ThreadPool`]: a new OS thread, or one parked after an earlier
//! connection (the goroutine runtime does the same for Go). A parked thread cannot borrow
//! this function's locals, so the Connection is shared by an `Arc` and the wait is a
//! channel, where a scoped thread would need neither (docs/go-to-rust.md). Everything the
//! route's watchers hear goes through its [`Events`](crate::relay::events::Events), one
//! call per event; which watchers those are is decided in server/wiring.rs.

use std::fmt::Display;
use std::io::{self, Write};
use std::sync::{Arc, mpsc};
use std::thread;

use crate::limits::threads::ThreadRole;
use crate::net::address::Address;
use crate::net::proxy_protocol::{self, ProxyVersion};
use crate::net::stream::Stream;
use crate::outcome::{CloseReason, Direction};
use crate::relay::connection::Connection;
use crate::relay::copy::{CloseOnPanic, copy_then_close_write};
use crate::relay::events::Ending;
use crate::relay::route::Route;

/// Relays one accepted client until both directions are done, then reports how it ended.
///
/// This runs on the connection's first thread. It returns when both copies have ended; the
/// sockets are closed afterwards, when the last owner of the [`Connection`] drops it.
pub fn handle_conn(conn: &Arc<Connection>, route: &Arc<Route>) {
    let observer = &*route.observer;
    let _ = conn.client.set_nodelay(true);

    // c, err := net.Dial("tcp", upstream): our *own* upstream connection, never a shared one.
    // `_live` counts this connection in its upstream's open connections until we return.
    let (up, _live) = match route.upstreams.dial(route.config.connect_timeout, conn.id) {
        Ok(dialled) => dialled,
        Err(error) => {
            observer.dial_failed(conn.conn(), &error);
            return close_early(conn, route, error.close_reason(), &error); // or self_loop
        }
    };
    if let Err(error) = prepare_upstream(conn, route, &up) {
        observer.proxy_header_failed(conn.conn(), &error);
        return close_early(conn, route, CloseReason::UpstreamReset, &error);
    }
    let up = conn.attach_upstream(up);
    observer.dialled(conn.conn(), conn.upstream_addr());

    // go func() { defer wg.Done(); copyThenCloseWrite(up, conn) }()
    observer.copies_starting(conn.conn(), &conn.bytes);
    let (done, second_done) = mpsc::channel();
    let second = Arc::clone(conn);
    let second_route = Arc::clone(route);
    let started_second = route.threads.run(ThreadRole::Second, move || {
        second_thread(&second, &second_route);
        // Our share of the connection goes before `done`: the first thread, once it hears
        // it, holds the last share and closes both sockets before its slot is seen free.
        drop(second);
        let _ = done.send(());
    });
    if let Err(error) = started_second {
        return close_early(conn, route, CloseReason::SpawnFailed, &error);
    }

    // copyThenCloseWrite(conn, up), on this thread.
    let buffer_size = route.config.buffer_size;
    copy_then_close_write(
        &conn.client,
        up,
        Direction::UpstreamToClient,
        conn,
        observer,
        buffer_size,
    );
    // wg.Wait(). A second thread that panicked dropped `done` unsent; it already closed the
    // connection on its way out (see `CloseOnPanic`).
    let _ = second_done.recv();
    closed(conn, route);
}

/// The second thread's copy, client → upstream.
fn second_thread(conn: &Connection, route: &Route) {
    // Before anything else, so a panic even before the copy starts closes the connection;
    // else the first thread would wait on an upstream that waits for client bytes nobody
    // will copy.
    let _close_on_panic = CloseOnPanic(conn);
    let _life = route.threads.life(ThreadRole::Second);
    let Some(up) = conn.upstream() else { return }; // attached before the spawn
    let buffer_size = route.config.buffer_size;
    copy_then_close_write(
        up,
        &conn.client,
        Direction::ClientToUpstream,
        conn,
        &*route.observer,
        buffer_size,
    )
}

/// Readies a freshly dialled upstream socket before any client byte may pass: no Nagle
/// delay on the small writes a relay passes on, the PROXY protocol header first if the
/// route sends one, and the timers' tick as socket timeouts on both sockets.
fn prepare_upstream(conn: &Connection, route: &Route, up: &Stream) -> io::Result<()> {
    let _ = up.set_nodelay(true);
    if let Some(version) = route.config.proxy_protocol {
        write_proxy_header(version, conn, up)?;
    }
    // With a timer on, blocked reads and writes wake up every tick to look at it.
    if let Some(tick) = conn.timers.tick() {
        for socket in [&conn.client, up] {
            let _ = socket.set_read_timeout(Some(tick));
            let _ = socket.set_write_timeout(Some(tick));
        }
    }
    Ok(())
}

/// Writes the PROXY protocol header for `conn` to the fresh `up` socket with a single
/// `write_all` (a header is at most 107 bytes in v1 and 52 in v2: it fits in any socket
/// buffer, so it never waits on the peer).
fn write_proxy_header(version: ProxyVersion, conn: &Connection, up: &Stream) -> io::Result<()> {
    // A Unix socket client has no IP address to tell: the header says "unknown".
    // With `accept-proxy`, the addresses are those the client's own header carried.
    let header = match (conn.real_client(), conn.real_local()) {
        (Address::Tcp(client), Ok(Address::Tcp(local))) => {
            proxy_protocol::header(version, *client, local)
        }
        _ => proxy_protocol::unknown_header(version),
    };
    let mut up = up;
    up.write_all(&header)
}

/// Closes `conn` before (or instead of) relaying anything, for `reason`, and reports its
/// ending at once. The one path for every early close: the accept loop's refusals, the
/// preface's, a failed dial or spawn, and [`ReportPanic`].
pub fn close_early(conn: &Connection, route: &Route, reason: CloseReason, detail: impl Display) {
    // Counted as accepted before the client can see the close, so that whoever watches the
    // metrics never sees the close without the accept.
    accepted(conn, route);
    conn.close(reason, detail);
    closed(conn, route);
}

/// Reports a connection's ending on `route` if its thread unwinds from a panic (a bug), so
/// that even then it is closed, its `connection closed` line written and its close counted.
/// The accept loop's guard and the preface's may both fire; [`closed`] reports once.
pub struct ReportPanic<'a> {
    /// The connection the thread was relaying.
    pub conn: &'a Connection,
    /// The route that counted it.
    pub route: &'a Route,
}

impl Drop for ReportPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            close_early(self.conn, self.route, CloseReason::Panicked, "connection thread panicked");
        }
    }
}

/// The connection's one ending, reported once: the `connection closed` line and the counts,
/// with the bytes its copies counted. Also called through [`ReportPanic`] when a thread
/// unwinds from a panic; whichever comes first reports, the other does nothing.
pub fn closed(conn: &Connection, route: &Route) {
    if !conn.mark_reported() {
        return;
    }
    accepted(conn, route); // if it was not yet: every close follows its accept, on one route
    let (reason, error) = conn.outcome();
    let ending = Ending {
        reason,
        error: &error,
        upstream: conn.upstream_addr(),
        bytes: conn.bytes.get(),
        started: conn.started,
    };
    route.observer.closed(conn.conn(), &ending);
}

/// Counts `conn` as accepted by `route` (its `accepted` event), once: later calls do
/// nothing. A connection is counted by the route it is relayed on, as soon as that is known
/// (see `preface.rs`), and at the latest when it is closed.
pub fn accepted(conn: &Connection, route: &Route) {
    if conn.mark_accepted() {
        route.observer.accepted(conn.conn());
    }
}
