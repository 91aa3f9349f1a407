//! tcprelay as a library, on threads of the benchmark process: what
//! `cargo bench` measures, with no process of its own to start or find.

use std::io;
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use tcprelay::{Config, LogLevel, Relay, StopHandle};

/// The connection limit of the benchmarked relay. The default (500) would
/// keep the idle workload's 1,000 clients waiting in the backlog; peers.sh
/// likewise raises HAProxy's `maxconn` and nginx's `worker_connections`.
const MAX_CONNECTIONS: usize = 20_000;

/// A relay serving on its own thread until `finish`.
pub struct InProcessRelay {
    addr: SocketAddr,
    stop: StopHandle,
    server: JoinHandle<io::Result<()>>,
}

impl InProcessRelay {
    /// Binds a relay on `127.0.0.1:0` that forwards to `upstream`.
    ///
    /// It logs warnings and errors only: at the default level every finished
    /// connection writes a line to stderr, and the connection-rate workload
    /// would bury the table under tens of thousands of them.
    pub fn start(upstream: SocketAddr) -> io::Result<InProcessRelay> {
        let relay = Relay::bind(Config {
            upstream: upstream.to_string(),
            log_level: LogLevel::Warn,
            max_connections: MAX_CONNECTIONS,
            ..Config::default()
        })?;
        let addr = relay.local_addr();
        let stop = relay.stop_handle();
        let server =
            thread::Builder::new().name("tcprelay".to_string()).spawn(move || relay.serve())?;
        Ok(InProcessRelay { addr, stop, server })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the relay and waits until every connection thread has ended.
    pub fn finish(self) -> io::Result<()> {
        self.stop.stop();
        self.server.join().map_err(|_| io::Error::other("the relay's serve thread panicked"))?
    }
}
