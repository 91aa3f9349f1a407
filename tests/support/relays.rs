//! Relays in this process for a test: a [`TestRelay`] (one route) or a [`TestServer`]
//! (several), quiet configs, waiting for counters to settle, and config files on disk.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use tcprelay::{Config, LogLevel, Relay, StopHandle, TestHooks};

use super::TIMEOUT;
use super::counters::eventually;

/// A relay serving on its own thread; stopped and joined when dropped.
pub struct TestRelay {
    pub addr: SocketAddr,
    /// The relay's live counters.
    pub metrics: Arc<tcprelay::RouteMetrics>,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestRelay {
    /// A relay to `upstream` with default settings (logging only errors).
    pub fn to(upstream: impl ToString) -> TestRelay {
        TestRelay::start(Config { upstream: upstream.to_string(), ..quiet_config() })
    }

    /// A relay with this configuration.
    pub fn start(config: Config) -> TestRelay {
        TestRelay::serve(Relay::bind(config))
    }

    /// A relay with this configuration and `hooks` in place of the machine's threads or
    /// resolver.
    pub fn hooked(config: Config, hooks: TestHooks) -> TestRelay {
        TestRelay::serve(Relay::bind_with_hooks(config, hooks))
    }

    fn serve(bound: io::Result<Relay>) -> TestRelay {
        let relay = bound.expect("bind the relay on 127.0.0.1:0");
        let addr = relay.local_addr();
        let stop = relay.stop_handle();
        let metrics = relay.metrics();
        let thread = Some(thread::spawn(move || relay.serve()));
        TestRelay { addr, metrics, stop, thread }
    }

    /// Stops the relay and waits until `serve` has returned.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let result = thread.join().expect("relay thread panicked");
            result.expect("serve returned an error");
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop_and_join();
        } else {
            self.stop.stop();
        }
    }
}

/// Defaults for tests: loopback, ephemeral port, errors only on stderr.
pub fn quiet_config() -> Config {
    Config { log_level: LogLevel::Error, ..Config::default() }
}

/// A relay config with these upstreams, in order.
pub fn to_all(upstreams: &[String]) -> Config {
    Config {
        upstream: upstreams[0].clone(),
        more_upstreams: upstreams[1..].to_vec(),
        ..quiet_config()
    }
}

/// Waits (bounded) until a relay has no active connection, then returns its counters.
pub fn settled(metrics: &tcprelay::RouteMetrics) -> tcprelay::RouteSnapshot {
    assert!(eventually(|| metrics.snapshot().active == 0), "connections still active");
    metrics.snapshot()
}

/// A [`tcprelay::Server`] serving on its own thread. Dropping it stops it; [`TestServer::finish`]
/// waits (bounded) for `serve` to return after a drain.
pub struct TestServer {
    pub addrs: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub handle: tcprelay::ServerHandle,
    pub metrics: Vec<Arc<tcprelay::RouteMetrics>>,
    served: Option<std::sync::mpsc::Receiver<io::Result<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: tcprelay::ServerConfig) -> TestServer {
        let server = tcprelay::Server::bind(config).expect("bind the server on loopback");
        let addrs = server
            .local_addrs()
            .into_iter()
            .map(|addr| match addr {
                tcprelay::Address::Tcp(addr) => addr,
                unix => panic!("TestServer is for TCP routes, not {unix}"),
            })
            .collect();
        let admin = server.admin_addr();
        let (handle, metrics) = (server.handle(), server.metrics());
        let (sender, served) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let _ = sender.send(server.serve());
        });
        TestServer { addrs, admin, handle, metrics, served: Some(served), thread: Some(thread) }
    }

    /// Waits until `serve` has returned (after a drain or stop), at most [`TIMEOUT`].
    pub fn finish(mut self) -> io::Result<()> {
        let served = self.served.take().expect("finish is called once");
        let result = served.recv_timeout(TIMEOUT).expect("serve did not return in time");
        self.thread.take().expect("the thread").join().expect("server thread panicked");
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            if !thread::panicking() {
                thread.join().expect("server thread panicked");
            }
        }
    }
}

/// A config file with `text`, in a directory of its own under the system's temp dir;
/// removed when dropped.
pub struct ConfigFile {
    pub path: std::path::PathBuf,
}

impl ConfigFile {
    pub fn new(name: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("tcprelay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create the config directory {}: {e}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("write the config file {}: {e}", path.display()));
        ConfigFile { path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("the config file's path, under the temp dir, is UTF-8")
    }

    /// Replaces the file's text (for a reload).
    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap_or_else(|e| {
            panic!("rewrite the config file {} for a reload: {e}", self.path.display())
        });
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
