//! The upstream servers a relay forwards to during a benchmark: echo, sink
//! and source, each a thread per connection on `127.0.0.1:0`, plus the
//! single-threaded quiet echo of the idle workload (see `quiet_echo.rs`).
//!
//! - **echo** writes back every byte it reads; at EOF it half-closes.
//! - **sink** reads the bulk pattern, checks it, and at EOF answers
//!   `ok BYTES` (or `mismatch OFFSET BYTES`), so an upload's sender learns how
//!   much really crossed the relay.
//! - **source** writes the bulk pattern until the reader goes away.

use crate::pattern::{self, PatternCheck};
use crate::quiet_echo::QuietEcho;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Which upstream a workload needs behind the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    /// Writes back what it reads.
    Echo,
    /// Counts and checks what it reads.
    Sink,
    /// Sends the pattern forever.
    Source,
    /// Echo for many mostly idle connections, on one thread.
    QuietEcho,
}

impl UpstreamKind {
    /// Every kind, in the order `serve` prints them.
    pub const ALL: [UpstreamKind; 4] =
        [UpstreamKind::Echo, UpstreamKind::Sink, UpstreamKind::Source, UpstreamKind::QuietEcho];

    /// The name used on the command line and in `serve`'s output.
    pub fn name(self) -> &'static str {
        match self {
            UpstreamKind::Echo => "echo",
            UpstreamKind::Sink => "sink",
            UpstreamKind::Source => "source",
            UpstreamKind::QuietEcho => "quiet",
        }
    }
}

impl fmt::Display for UpstreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// All four upstream servers, running until `stop`.
pub struct Upstreams {
    echo: ThreadedServer,
    sink: ThreadedServer,
    source: ThreadedServer,
    quiet: QuietEcho,
}

impl Upstreams {
    /// Binds and starts every server on an ephemeral loopback port.
    pub fn start() -> io::Result<Upstreams> {
        Ok(Upstreams {
            echo: ThreadedServer::start("echo", serve_echo)?,
            sink: ThreadedServer::start("sink", serve_sink)?,
            source: ThreadedServer::start("source", serve_source)?,
            quiet: QuietEcho::start()?,
        })
    }

    /// The address of one server.
    pub fn addr(&self, kind: UpstreamKind) -> SocketAddr {
        match kind {
            UpstreamKind::Echo => self.echo.addr,
            UpstreamKind::Sink => self.sink.addr,
            UpstreamKind::Source => self.source.addr,
            UpstreamKind::QuietEcho => self.quiet.addr(),
        }
    }

    /// Stops every server and joins all their threads. Connection errors
    /// that are not a peer simply going away are reported here, once per
    /// server, instead of once per connection while the workload runs.
    pub fn stop(self) -> io::Result<()> {
        for server in [self.echo, self.sink, self.source] {
            let name = server.name;
            let (errors, last) = server.stop()?;
            if errors > 0 {
                eprintln!(
                    "{name} upstream: {errors} connection errors, last: {}",
                    last.unwrap_or_default()
                );
            }
        }
        self.quiet.stop()
    }
}

/// What a server does with one accepted connection.
type ServeOne = fn(TcpStream) -> io::Result<()>;

/// A listener whose accept loop gives every connection its own thread.
struct ThreadedServer {
    name: &'static str,
    addr: SocketAddr,
    shared: Arc<ServerShared>,
    accept_thread: JoinHandle<()>,
}

/// State the accept loop shares with `stop` and the connection threads.
struct ServerShared {
    stopping: AtomicBool,
    /// A clone of every live connection, so `stop` can shut them down and
    /// wake threads blocked in `read` (dropping a clone would not).
    live: Mutex<HashMap<u64, TcpStream>>,
    /// A lock, not an `AtomicU64`, which the 32-bit MIPS targets lack; taken only on an error.
    errors: Mutex<u64>,
    last_error: Mutex<Option<String>>,
}

/// Connection threads need little stack: their buffers are on the heap.
const CONNECTION_STACK: usize = 128 * 1024;

impl ThreadedServer {
    fn start(name: &'static str, serve_one: ServeOne) -> io::Result<ThreadedServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(ServerShared {
            stopping: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            errors: Mutex::new(0),
            last_error: Mutex::new(None),
        });
        let loop_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(name, listener, &loop_shared, serve_one))?;
        Ok(ThreadedServer { name, addr, shared, accept_thread })
    }

    /// Stops accepting, shuts down live connections, joins every thread,
    /// and returns the count of unexpected connection errors and the last one.
    fn stop(self) -> io::Result<(u64, Option<String>)> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // `accept` cannot be interrupted in std; a connection of our own
        // wakes it, and the loop sees `stopping` before serving it.
        let wake = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5));
        if let Err(error) = wake {
            return Err(io::Error::new(
                error.kind(),
                format!("waking the {} upstream to stop it: {error}", self.name),
            ));
        }
        self.accept_thread.join().map_err(|_| {
            io::Error::other(format!("{} upstream's accept loop panicked", self.name))
        })?;
        let last = lock(&self.shared.last_error).take();
        Ok((*lock(&self.shared.errors), last))
    }
}

impl ServerShared {
    fn record_error(&self, error: &io::Error) {
        *lock(&self.errors) += 1;
        *lock(&self.last_error) = Some(error.to_string());
    }
}

/// Accepts until `stopping`; the scope joins every connection thread before
/// the loop's thread ends.
fn accept_loop(name: &str, listener: TcpListener, shared: &ServerShared, serve_one: ServeOne) {
    thread::scope(|scope| {
        let mut next_id: u64 = 0;
        loop {
            let accepted = listener.accept();
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, typically: back off instead of
                    // spinning on an error that will repeat at once.
                    shared.record_error(&error);
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let id = next_id;
            next_id += 1;
            match stream.try_clone() {
                Ok(clone) => {
                    lock(&shared.live).insert(id, clone);
                }
                Err(error) => {
                    shared.record_error(&error);
                    continue;
                }
            }
            let spawned = thread::Builder::new()
                .name(format!("{name}-conn"))
                .stack_size(CONNECTION_STACK)
                .spawn_scoped(scope, move || {
                    if let Err(error) = serve_one(stream)
                        && !is_peer_gone(&error)
                    {
                        shared.record_error(&error);
                    }
                    lock(&shared.live).remove(&id);
                });
            if let Err(error) = spawned {
                shared.record_error(&error);
                lock(&shared.live).remove(&id);
            }
        }
        for stream in lock(&shared.live).values() {
            // Already closed by the peer is fine: the thread is ending anyway.
            let _ = stream.shutdown(Shutdown::Both);
        }
    });
}

/// Errors that only mean the client went away, which every workload does at
/// its end (a download simply drops its connection, for instance).
fn is_peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

/// The maps and strings behind these locks stay consistent even if a thread
/// panicked while holding one, so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve_echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return stream.shutdown(Shutdown::Write);
        }
        stream.write_all(&buffer[..n])?;
    }
}

fn serve_sink(mut stream: TcpStream) -> io::Result<()> {
    let mut check = PatternCheck::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        check.feed(&buffer[..n]);
    }
    let verdict = match check.first_mismatch() {
        None => format!("ok {}\n", check.bytes_seen()),
        Some(offset) => format!("mismatch {offset} {}\n", check.bytes_seen()),
    };
    stream.write_all(verdict.as_bytes())?;
    stream.shutdown(Shutdown::Write)
}

fn serve_source(mut stream: TcpStream) -> io::Result<()> {
    let block = pattern::block();
    loop {
        stream.write_all(block)?;
    }
}
