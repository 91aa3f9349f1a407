//! What a whole process runs: its routes and the process-wide settings. Plain values, read
//! by `server/` (which runs them) and written by the command line and the config file.

use std::path::PathBuf;
use std::time::Duration;

use crate::net::address::Address;
use crate::settings::admin_access::AdminAccess;
use crate::settings::config::Config;
use crate::settings::logging::{LogLevel, LogOutput};

/// What a [`Server`](crate::Server) runs: the routes, and the process-wide settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// One [`Config`] per route. The first route's `log_level` is the admin endpoint's too.
    pub routes: Vec<Config>,
    /// Where to serve the admin endpoint (`/metrics`, `/healthz`, `/drain`): a TCP address
    /// or a Unix socket path; none if `None`.
    pub admin: Option<Address>,
    /// Who may use the admin endpoint: its token and its Unix socket's mode.
    pub admin_access: AdminAccess,
    /// How long a drain lets live connections finish before closing them.
    pub drain_timeout: Duration,
    /// How long a drain keeps accepting new clients, with `/healthz` answering 503, before
    /// it closes the listeners (`drain-grace`): the time a load balancer needs to stop
    /// sending. Zero by default.
    pub drain_grace: Duration,
    /// How often to look whether the config file changed, and reload if it did
    /// (`watch-config`); zero (the default) never looks. Needs `config_file`.
    pub watch_config: Duration,
    /// The config file the routes came from, which [`ServerHandle::reload`](crate::ServerHandle::reload) reads again;
    /// `None` (routes from the command line or the library) refuses every reload.
    pub config_file: Option<ConfigFile>,
    /// Where the `tcprelay` binary writes its process id once listening (`--pid-file`).
    /// The library itself writes only the admin endpoint's address beside it, to
    /// `PIDFILE.admin`, for `tcprelay reload|drain|status --config` (server/admin_endpoint.rs).
    pub pid_file: Option<PathBuf>,
    /// Where the `tcprelay` binary sends its log (`--log-file`, `--syslog`) and in which
    /// format (`--log-format`). The library leaves the log where it is (stderr, logfmt).
    pub log_output: LogOutput,
}

/// The config file a server's routes came from, and the command line's settings that
/// override its globals: what a reload reads again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// Settings given as flags, as (setting name, value), which override the file's globals.
    pub overrides: Vec<(String, String)>,
}

/// The default drain timeout: 30 s, well inside systemd's default `TimeoutStopSec` of 90 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServerConfig {
    /// No routes, no admin endpoint, the default drain timeout.
    fn default() -> ServerConfig {
        ServerConfig {
            routes: Vec::new(),
            admin: None,
            admin_access: AdminAccess::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_grace: Duration::ZERO,
            watch_config: Duration::ZERO,
            config_file: None,
            pid_file: None,
            log_output: LogOutput::default(),
        }
    }
}

impl ServerConfig {
    /// The process's log level: the first route's (every route has the same one when the
    /// settings come from the command line or a config file).
    pub fn log_level(&self) -> LogLevel {
        self.routes.first().map(|route| route.log_level).unwrap_or(LogLevel::Info)
    }
}
