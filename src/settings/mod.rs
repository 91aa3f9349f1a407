//! The settings table: every setting tcprelay has, in one place.
//!
//! Each entry says the setting's name (the flag is `--NAME`, the config file key is `NAME`:
//! `--buffer-size` ↔ `buffer-size`), where it applies, its help text, its default, its
//! limits, and the one function that parses and bounds its value and stores it. The command
//! line (`settings/cli.rs`), the config file ([`crate::settings::file`]), `--help`, `--check`
//! ([`describe`]) and the library's own checks ([`Config::validate`](crate::Config::validate))
//! all read this table, so they cannot disagree about what a value means or what is allowed.
//!
//! # Where a setting applies
//!
//! - [`Scope::Process`]: once per process (`admin`, `drain-timeout`, `log-level`): a global
//!   line in the file, or a flag.
//! - [`Scope::Route`]: per route. A global line in the file (or a flag) sets the default for
//!   every route; a route's own `KEY=VALUE` overrides it.
//! - [`Scope::RouteOnly`]: only on a route line (`allow`, `deny`, `proxy-protocol`); on the
//!   command line, it applies to every route given there.
//!
//! With `--config`, a flag overrides the file's global value; a route's own option still wins.
//!
//! # Errors
//!
//! Every parser and check here fails with one [`Error`]: what is wrong ([`ErrorKind`]) and,
//! added as the error passes up, the setting or flag and the config file's
//! `FILE:LINE:COLUMN` ([`Location`]). At the socket edge it becomes an `io::Error` of kind
//! `InvalidInput` with the same message.
//!
//! # Adding a setting
//!
//! Add a field to [`Config`] (per route) or [`ServerConfig`] (per process) with its default,
//! then one [`Setting`] entry to [`SETTINGS`] with a `set` that parses and bounds the text
//! and a `get` that writes the value back in a form `set` accepts. The flag, the config key,
//! `--help`, `--check`, the docs table check and [`Config::validate`] follow from the entry.
//!
//! The test `the_module_example` at the end of this file runs an example.

pub mod access;
pub mod address;
pub mod admin_access;
pub(crate) mod cli;
pub mod config;
pub mod error;
pub mod file;
pub mod logging;
#[cfg(test)]
mod man_page;
pub mod server_config;
pub(crate) mod spelling;
pub mod units;

pub use error::{Error, ErrorKind, Location};

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::net::address::Address;
use crate::settings::access::Cidr;
use crate::settings::admin_access::AdminToken;
use crate::settings::config::Config;
use crate::settings::server_config::ServerConfig;
use crate::settings::units::{
    format_duration, format_size, parse_duration, parse_size, parse_socket_mode,
};

/// Where a setting applies; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once per process.
    Process,
    /// Per route, with a global default.
    Route,
    /// Per route only (on the command line: every route given there).
    RouteOnly,
}

/// Parses, bounds and stores a setting's value; the error is `expected ..., found "TEXT"`.
pub type SetProcess = fn(&mut ServerConfig, &str) -> Result<(), Error>;
/// Writes a process setting back as text that its `set` accepts; `None` when it is unset.
pub type GetProcess = fn(&ServerConfig) -> Option<String>;
/// Parses, bounds and stores a route setting's value.
pub type SetRoute = fn(&mut Config, &str) -> Result<(), Error>;
/// Writes a route setting back as text that its `set` accepts; `None` when it is unset.
pub type GetRoute = fn(&Config) -> Option<String>;

/// How a setting is stored: in the process's settings or in each route's [`Config`].
#[derive(Clone, Copy)]
pub enum Field {
    /// A field of [`ServerConfig`] (or, for `log-level`, of every route at once).
    Process(SetProcess, GetProcess),
    /// A field of a route's [`Config`].
    Route(SetRoute, GetRoute),
}

/// One setting: one row of the table.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The config file key; the flag is `--` and this.
    pub name: &'static str,
    /// A one-letter flag, if any (`-l`).
    pub short: Option<&'static str>,
    /// What the value is, in `--help`: `DUR`, `BYTES`, `N`; empty for a switch, which takes
    /// no value on the command line (`--explain`) and `on` or `off` in the file.
    pub value: &'static str,
    /// Where it applies.
    pub scope: Scope,
    /// Whether it may be given more than once, each value adding to a list (`allow`).
    pub list: bool,
    /// The default, as `--help` and the docs print it.
    pub default: &'static str,
    /// The values accepted, in words.
    pub limits: &'static str,
    /// What it does, in one or two sentences.
    pub help: &'static str,
    /// Where the value goes.
    pub field: Field,
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Two settings are the same when they have the same name (names are unique).
impl PartialEq for Setting {
    fn eq(&self, other: &Setting) -> bool {
        self.name == other.name
    }
}

impl Eq for Setting {}

impl Setting {
    /// `--NAME`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name)
    }

    /// Whether it is a switch: no value on the command line, `on`/`off` in the file.
    pub fn is_switch(&self) -> bool {
        self.value.is_empty()
    }
}

// The limits. They are chosen for a small board: a 1 GB device must be able to hold any
// combination of them without the kernel or malloc saying no first.

/// The longest timeout of any kind: a day. Longer is "off", which is `0` where allowed.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The longest connect timeout: Linux gives up on a SYN after about two minutes anyway.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);
/// The most connections one route may hold: 65536, two descriptors and two threads each.
pub const MAX_CONNECTIONS: usize = 65_536;
/// The largest copy buffer: at least std's own 8 KiB (the size a copy starts with; 0 means the
/// same) and at most 1 MiB per direction. Buffers above 8 KiB exist only while bulk flows and
/// share one process-wide budget (64 MiB), so even 1m cannot multiply by the connections.
const BUFFER_SIZES: (usize, usize) = (8 << 10, 1 << 20);
/// The largest `udp-responses`: a count, not a limit anyone meets; bounded so that the
/// value prints and parses back the same everywhere.
const MAX_UDP_RESPONSES: usize = 1_000_000;
/// 16 KiB is the usual `PTHREAD_STACK_MIN`, below which the OS refuses every thread; 8 MiB
/// is the main thread's default stack on Linux, far more than a copy loop needs.
const STACK_SIZES: (usize, usize) = (16 << 10, 8 << 20);

/// Every setting, in the order `--help` and `--check` list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "log-level",
        short: None,
        value: "LEVEL",
        scope: Scope::Process,
        list: false,
        default: "info",
        limits: "error, warn, info or debug",
        help: "how much to log on stderr",
        field: Field::Process(
            |server, text| {
                let level = text.parse().map_err(|_| {
                    Error::value(format!("expected error, warn, info or debug, found {text:?}"))
                })?;
                server.routes.iter_mut().for_each(|route| route.log_level = level);
                Ok(())
            },
            |server| Some(server.log_level().to_string()),
        ),
    },
    Setting {
        name: "log-format",
        short: None,
        value: "FORMAT",
        scope: Scope::Process,
        list: false,
        default: "logfmt",
        limits: "logfmt or json",
        help: "write each log line as key=value pairs (logfmt) or as one JSON object",
        field: Field::Process(
            |server, text| {
                server.log_output.format = text.parse()?;
                Ok(())
            },
            |server| Some(server.log_output.format.to_string()),
        ),
    },
    Setting {
        name: "log-file",
        short: None,
        value: "FILE",
        scope: Scope::Process,
        list: false,
        default: "none",
        limits: "a path; in a config file a relative FILE is relative to it",
        help: "append the log to FILE instead of stderr (created 0640; a symlink is refused); \
               tcprelay reopen-logs and every reload open it again, for logrotate",
        field: Field::Process(
            |server, text| {
                server.log_output.file = Some(file_path(text)?);
                Ok(())
            },
            |server| server.log_output.file.as_ref().map(|path| path.display().to_string()),
        ),
    },
    Setting {
        name: "syslog",
        short: None,
        value: "ADDR",
        scope: Scope::Process,
        list: false,
        default: "none",
        limits: "unix:PATH (usually unix:/dev/log) or HOST:PORT (UDP)",
        help: "send the log to syslog instead of stderr: RFC 3164, facility daemon, as \
               BusyBox syslogd and OpenWrt's logd read it",
        field: Field::Process(
            |server, text| {
                server.log_output.syslog = Some(text.parse()?);
                Ok(())
            },
            |server| server.log_output.syslog.as_ref().map(ToString::to_string),
        ),
    },
    Setting {
        name: "admin",
        short: None,
        value: "ADDR",
        scope: Scope::Process,
        list: false,
        default: "none",
        limits: "HOST:PORT (:PORT means 127.0.0.1) or unix:PATH",
        help: "serve GET /metrics, /healthz, /status and POST /drain, /reload over HTTP \
               here; keep it on loopback or a unix: socket, or set admin-token-file",
        field: Field::Process(
            |server, text| {
                server.admin = Some(address::parse_listen_address(text)?);
                Ok(())
            },
            |server| server.admin.as_ref().map(|addr| addr.to_string()),
        ),
    },
    Setting {
        name: "admin-token-file",
        short: None,
        value: "FILE",
        scope: Scope::Process,
        list: false,
        default: "none",
        limits: "a regular file owned by root or the relay's user, writable only by its owner, not readable by others, holding 16 to 4096 visible characters",
        help: "every admin request but GET /healthz needs Authorization: Bearer TOKEN, TOKEN \
               being FILE's content; in a config file a relative FILE is relative to it",
        field: Field::Process(
            |server, text| {
                server.admin_access.token = Some(AdminToken::read(Path::new(text))?);
                Ok(())
            },
            |server| {
                let token = server.admin_access.token.as_ref()?;
                Some(token.file().display().to_string())
            },
        ),
    },
    Setting {
        name: "admin-socket-mode",
        short: None,
        value: "MODE",
        scope: Scope::Process,
        list: false,
        default: "0600",
        limits: "octal, at most 0777",
        help: "the mode of a unix: admin socket file: 0600 lets only the relay's own user in",
        field: Field::Process(
            |server, text| {
                server.admin_access.socket_mode = parse_socket_mode(text)?;
                Ok(())
            },
            // Printed by --check only where it applies: to a unix: admin socket.
            |server| match server.admin {
                Some(Address::Unix(_)) => Some(format!("{:04o}", server.admin_access.socket_mode)),
                _ => None,
            },
        ),
    },
    Setting {
        name: "pid-file",
        short: None,
        value: "FILE",
        scope: Scope::Process,
        list: false,
        default: "none",
        limits: "a path; in a config file a relative FILE is relative to it",
        help: "write the process id to FILE once every route listens, remove it on a clean \
               exit; refuse to start while it names a running tcprelay",
        field: Field::Process(
            |server, text| {
                if text.is_empty() {
                    return Err(Error::value("expected a file path, found \"\""));
                }
                server.pid_file = Some(text.into());
                Ok(())
            },
            |server| server.pid_file.as_ref().map(|path| path.display().to_string()),
        ),
    },
    Setting {
        name: "drain-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Process,
        list: false,
        default: "30s",
        limits: "0 (close at once) to 1h",
        help: "on POST /drain, how long live connections may take to finish before they are \
               closed",
        field: Field::Process(
            |server, text| {
                server.drain_timeout = duration(text, Duration::ZERO, Duration::from_secs(3600))?;
                Ok(())
            },
            |server| Some(format_duration(server.drain_timeout)),
        ),
    },
    Setting {
        name: "drain-grace",
        short: None,
        value: "DUR",
        scope: Scope::Process,
        list: false,
        default: "0",
        limits: "0 (close the listeners at once) to 10m",
        help: "on POST /drain, how long /healthz answers 503 while new clients are still \
               served, so load balancers stop sending before the listeners close; then \
               drain-timeout starts",
        field: Field::Process(
            |server, text| {
                server.drain_grace = duration(text, Duration::ZERO, Duration::from_secs(600))?;
                Ok(())
            },
            |server| Some(format_duration(server.drain_grace)),
        ),
    },
    Setting {
        name: "watch-config",
        short: None,
        value: "DUR",
        scope: Scope::Process,
        list: false,
        default: "0",
        limits: "0 (off), or 100ms to 1h; needs --config",
        help: "look at the config file this often (through symlinks, such as a Kubernetes \
               ConfigMap's ..data) and reload when it changed, as tcprelay reload would",
        field: Field::Process(
            |server, text| {
                let every = duration(text, Duration::ZERO, Duration::from_secs(3600))?;
                if !every.is_zero() && every < Duration::from_millis(100) {
                    return Err(Error::value(format!(
                        "expected 0, or a duration from 100ms to 1h, found {text:?}"
                    )));
                }
                server.watch_config = every;
                Ok(())
            },
            |server| Some(format_duration(server.watch_config)),
        ),
    },
    Setting {
        name: "policy",
        short: None,
        value: "POLICY",
        scope: Scope::Route,
        list: false,
        default: "first",
        limits: "first, round-robin or least-connections",
        help: "first: in order, the next only when a connect fails; round-robin: each client \
               starts at the next one; least-connections: the one with the fewest open. After \
               a failed connect an upstream is tried last for 10s",
        field: Field::Route(
            |route, text| {
                route.policy = text.parse()?;
                Ok(())
            },
            |route| Some(route.policy.to_string()),
        ),
    },
    Setting {
        name: "health-check",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "0",
        limits: "0 (off) or 10ms to 1h",
        help: "connect to each upstream every DUR; one that fails 3 checks in a row is tried \
               last until 2 pass",
        field: Field::Route(
            |route, text| {
                route.health_check = duration(text, Duration::ZERO, Duration::from_secs(3600))?;
                if !route.health_check.is_zero() && route.health_check < Duration::from_millis(10) {
                    return Err(Error::value(format!("expected 0 or 10ms to 1h, found {text:?}")));
                }
                Ok(())
            },
            |route| Some(format_duration(route.health_check)),
        ),
    },
    Setting {
        name: "connect-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "5s",
        limits: "1ms to 10m",
        help: "how long dialling the upstream may take",
        field: Field::Route(
            |route, text| {
                route.connect_timeout =
                    duration(text, Duration::from_millis(1), MAX_CONNECT_TIMEOUT)?;
                Ok(())
            },
            |route| Some(format_duration(route.connect_timeout)),
        ),
    },
    Setting {
        name: "first-bytes-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "5s",
        limits: "10ms to 1m",
        help: "how long a client may take to send what the relay looks at before relaying: \
               its PROXY header (accept-proxy) or its TLS ClientHello (routes with sni=)",
        field: Field::Route(
            |route, text| {
                route.first_bytes_timeout =
                    duration(text, Duration::from_millis(10), Duration::from_secs(60))?;
                Ok(())
            },
            |route| Some(format_duration(route.first_bytes_timeout)),
        ),
    },
    Setting {
        name: "idle-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "10m",
        limits: "0 (off) to 24h",
        help: "close a connection when no byte has moved either way for DUR",
        field: Field::Route(
            |route, text| {
                route.idle_timeout = duration(text, Duration::ZERO, MAX_TIMEOUT)?;
                Ok(())
            },
            |route| Some(format_duration(route.idle_timeout)),
        ),
    },
    Setting {
        name: "half-close-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "1m",
        limits: "0 (off) to 24h",
        help: "after one side finished sending, close when the other moves no byte for DUR",
        field: Field::Route(
            |route, text| {
                route.half_close_timeout = duration(text, Duration::ZERO, MAX_TIMEOUT)?;
                Ok(())
            },
            |route| Some(format_duration(route.half_close_timeout)),
        ),
    },
    Setting {
        name: "max-connections",
        short: None,
        value: "N",
        scope: Scope::Route,
        list: false,
        default: "500",
        limits: "1 to 65536",
        help: "at most N connections at once on the route; at the limit new clients wait in \
               the kernel's backlog",
        field: Field::Route(
            |route, text| {
                route.max_connections = count(text, 1, MAX_CONNECTIONS)?;
                Ok(())
            },
            |route| Some(route.max_connections.to_string()),
        ),
    },
    Setting {
        name: "max-connections-per-client",
        short: None,
        value: "N",
        scope: Scope::Route,
        list: false,
        default: "auto",
        limits: "auto, 0 (no limit) or 1 to 65536",
        help: "fairness when slots run short: while more than N of the route's slots are \
               free nobody is refused; with N or fewer free, a client (an IPv4 address, an \
               IPv6 /64) holding N or more is closed at once, reason=client_limit. auto: \
               max-connections/8, at least 1, loopback clients not counted",
        field: Field::Route(
            |route, text| {
                route.max_connections_per_client = per_client(text)?;
                Ok(())
            },
            |route| Some(per_client_text(route.max_connections_per_client)),
        ),
    },
    Setting {
        name: "udp-idle-timeout",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "1m",
        limits: "100ms to 24h",
        help: "on a udp: route, a flow (one client address) with no datagram either way for \
               DUR ends: longer than WireGuard's 25s keepalive and OpenVPN's 10s ping",
        field: Field::Route(
            |route, text| {
                route.udp_idle_timeout = duration(text, Duration::from_millis(100), MAX_TIMEOUT)?;
                Ok(())
            },
            // Printed by --check only where it applies: on a UDP route.
            |route| route.udp.then(|| format_duration(route.udp_idle_timeout)),
        ),
    },
    Setting {
        name: "udp-responses",
        short: None,
        value: "N",
        scope: Scope::Route,
        list: false,
        default: "0",
        limits: "0 (no count) to 1000000",
        help: "on a udp: route, end a flow once the upstream sent N datagrams for each one \
               the client sent (nginx's proxy_responses; 1 for DNS); 0: only udp-idle-timeout \
               ends it",
        field: Field::Route(
            |route, text| {
                route.udp_responses = count(text, 0, MAX_UDP_RESPONSES)? as u64;
                Ok(())
            },
            |route| route.udp.then(|| route.udp_responses.to_string()),
        ),
    },
    Setting {
        name: "max-flows",
        short: None,
        value: "N",
        scope: Scope::Route,
        list: false,
        default: "500",
        limits: "1 to 65536",
        help: "on a udp: route, at most N flows at once (a thread and a socket each); at the \
               limit a new client's datagram is dropped and counted",
        field: Field::Route(
            |route, text| {
                route.max_flows = count(text, 1, MAX_CONNECTIONS)?;
                Ok(())
            },
            |route| route.udp.then(|| route.max_flows.to_string()),
        ),
    },
    Setting {
        name: "max-flows-per-client",
        short: None,
        value: "N",
        scope: Scope::Route,
        list: false,
        default: "auto",
        limits: "auto, 0 (no limit) or 1 to 65536",
        help: "on a udp: route, one client's share of max-flows, by the rule of \
               max-connections-per-client: a new flow of a client holding N or more is \
               dropped when N or fewer are free. auto: max-flows/8, loopback not counted",
        field: Field::Route(
            |route, text| {
                route.max_flows_per_client = per_client(text)?;
                Ok(())
            },
            |route| route.udp.then(|| per_client_text(route.max_flows_per_client)),
        ),
    },
    Setting {
        name: "buffer-size",
        short: None,
        value: "BYTES",
        scope: Scope::Route,
        list: false,
        default: "1m",
        limits: "0, or 8k to 1m",
        help: "largest copy buffer of each direction: 8 KiB while bytes flow, growing x4 while \
               reads fill it, given back when the connection goes quiet; 0 or 8k = never grow",
        field: Field::Route(
            |route, text| {
                route.buffer_size = size(text, Some(0), BUFFER_SIZES)?;
                Ok(())
            },
            |route| Some(format_size(route.buffer_size)),
        ),
    },
    Setting {
        name: "stack-size",
        short: None,
        value: "BYTES",
        scope: Scope::Route,
        list: false,
        default: "64k",
        limits: "16k to 8m",
        help: "stack of each connection thread",
        field: Field::Route(
            |route, text| {
                route.stack_size = size(text, None, STACK_SIZES)?;
                Ok(())
            },
            |route| Some(format_size(route.stack_size)),
        ),
    },
    Setting {
        name: "thread-keep-alive",
        short: None,
        value: "DUR",
        scope: Scope::Route,
        list: false,
        default: "10s",
        limits: "0 to 1h",
        help: "how long a finished connection or UDP flow thread waits to serve the next \
               one before it exits; 0: every connection or flow gets new threads",
        field: Field::Route(
            |route, text| {
                route.thread_keep_alive =
                    duration(text, Duration::ZERO, Duration::from_secs(3600))?;
                Ok(())
            },
            |route| Some(format_duration(route.thread_keep_alive)),
        ),
    },
    Setting {
        name: "explain",
        short: None,
        value: "",
        scope: Scope::Route,
        list: false,
        default: "off",
        limits: "on or off (the flag alone means on)",
        help: "tell each connection's life on stdout as it happens, each event beside the Go \
               line it mirrors (for classrooms)",
        field: Field::Route(
            |route, text| {
                route.explain = switch(text)?;
                Ok(())
            },
            |route| Some(if route.explain { "on" } else { "off" }.to_string()),
        ),
    },
    Setting {
        name: "socket-mode",
        short: None,
        value: "MODE",
        scope: Scope::Route,
        list: false,
        default: "0660",
        limits: "octal, at most 0777",
        help: "the mode of a unix: listen socket file: 0660 lets the relay's user and group \
               connect, no one else",
        field: Field::Route(
            |route, text| {
                route.listen_unix_mode = parse_socket_mode(text)?;
                Ok(())
            },
            // Printed by --check only where it applies: to a unix: listen socket.
            |route| route.listen_unix.as_ref().map(|_| format!("{:04o}", route.listen_unix_mode)),
        ),
    },
    Setting {
        name: "socket-owner",
        short: None,
        value: "USER",
        scope: Scope::Route,
        list: false,
        default: "none",
        limits: "a user name from /etc/passwd, or a uid",
        help: "the owner to give a unix: listen socket file (needs the privilege to chown)",
        field: Field::Route(
            |route, text| {
                route.listen_unix_owner = Some(account_id(text, "/etc/passwd", "user")?);
                Ok(())
            },
            |route| route.listen_unix_owner.map(|uid| uid.to_string()),
        ),
    },
    Setting {
        name: "socket-group",
        short: None,
        value: "GROUP",
        scope: Scope::Route,
        list: false,
        default: "none",
        limits: "a group name from /etc/group, or a gid",
        help: "the group to give a unix: listen socket file: with socket-mode 0660, its members \
               may connect",
        field: Field::Route(
            |route, text| {
                route.listen_unix_group = Some(account_id(text, "/etc/group", "group")?);
                Ok(())
            },
            |route| route.listen_unix_group.map(|gid| gid.to_string()),
        ),
    },
    Setting {
        name: "proxy-protocol",
        short: None,
        value: "V",
        scope: Scope::RouteOnly,
        list: false,
        default: "none",
        limits: "v1 or v2",
        help: "send a PROXY protocol header of this version to the upstream before any \
               client byte",
        field: Field::Route(
            |route, text| {
                route.proxy_protocol =
                    Some(text.parse().map_err(|e| Error::value(format!("{e}")))?);
                Ok(())
            },
            |route| route.proxy_protocol.map(|version| version.to_string()),
        ),
    },
    Setting {
        name: "accept-proxy",
        short: None,
        value: "",
        scope: Scope::RouteOnly,
        list: false,
        default: "off",
        limits: "on or off (the flag alone means on)",
        help: "each client must open with a PROXY protocol v1 or v2 header (from a load \
               balancer in proxy-from); its address is then the client's for allow/deny, \
               logs, metrics and proxy-protocol. Without a valid header: closed, \
               reason=bad_proxy_header",
        field: Field::Route(
            |route, text| {
                route.accept_proxy = switch(text)?;
                Ok(())
            },
            |route| Some(if route.accept_proxy { "on" } else { "off" }.to_string()),
        ),
    },
    Setting {
        name: "proxy-from",
        short: None,
        value: "CIDR[,CIDR...]",
        scope: Scope::Route,
        list: true,
        default: "loopback",
        limits: "IPv4 or IPv6 blocks",
        help: "with accept-proxy, only clients in these blocks may send the PROXY header \
               (default: 127.0.0.0/8 and ::1, a balancer on this host); anyone else is \
               closed before a byte is read, reason=untrusted_proxy",
        field: Field::Route(
            |route, text| {
                route.proxy_from.extend(cidrs(text)?);
                Ok(())
            },
            |route| join_cidrs(&route.proxy_from),
        ),
    },
    Setting {
        name: "sni",
        short: None,
        value: "NAME[,NAME...]",
        scope: Scope::RouteOnly,
        list: true,
        default: "none",
        limits: "host names or *.suffix wildcards",
        help: "take the TLS clients that ask for these server names; routes on one address \
               that differ by sni= share one listener, and the one route there without sni= \
               takes every other client",
        field: Field::Route(
            |route, text| {
                for name in text.split(',') {
                    route.server_names.push(name.trim().parse().map_err(Error::value)?);
                }
                Ok(())
            },
            |route| {
                let names = route.server_names.iter().map(ToString::to_string);
                Some(names.collect::<Vec<_>>().join(",")).filter(|names| !names.is_empty())
            },
        ),
    },
    Setting {
        name: "allow",
        short: None,
        value: "CIDR[,CIDR...]",
        scope: Scope::RouteOnly,
        list: true,
        default: "everyone",
        limits: "IPv4 or IPv6 blocks",
        help: "only clients in these blocks may connect",
        field: Field::Route(
            |route, text| {
                route.access.allow.extend(cidrs(text)?);
                Ok(())
            },
            |route| join_cidrs(&route.access.allow),
        ),
    },
    Setting {
        name: "deny",
        short: None,
        value: "CIDR[,CIDR...]",
        scope: Scope::RouteOnly,
        list: true,
        default: "nobody",
        limits: "IPv4 or IPv6 blocks",
        help: "clients in these blocks may not connect; a deny wins over an allow",
        field: Field::Route(
            |route, text| {
                route.access.deny.extend(cidrs(text)?);
                Ok(())
            },
            |route| join_cidrs(&route.access.deny),
        ),
    },
];

/// A uid or gid: the number itself, or the id of the name in `file` (`/etc/passwd` or
/// `/etc/group`, whose lines are `name:password:id:...`). Std has no `getpwnam`; reading the
/// file is what it does for local accounts.
fn account_id(text: &str, file: &str, what: &str) -> Result<u32, Error> {
    if let Ok(id) = text.parse::<u32>() {
        return Ok(id);
    }
    let accounts = std::fs::read_to_string(file).unwrap_or_default();
    let id = accounts.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(text)).then(|| fields.nth(1)?.parse().ok())?
    });
    id.ok_or_else(|| {
        Error::value(format!("expected a {what} name from {file} or a number, found {text:?}"))
    })
}

/// The setting called `name` (a config key, or a flag without its `--`).
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name == name)
}

/// The setting a command-line flag (`--buffer-size`, or its short form) sets.
pub fn find_flag(flag: &str) -> Option<&'static Setting> {
    match flag.strip_prefix("--") {
        Some(name) => find(name),
        None => SETTINGS.iter().find(|setting| setting.short == Some(flag)),
    }
}

/// Sets a route setting on `route`; a process setting is an error naming it.
///
/// # Errors
/// `expected ..., found "TEXT"` when the value does not parse or is out of bounds.
#[cfg(test)]
pub fn set_route(setting: &Setting, route: &mut Config, text: &str) -> Result<(), Error> {
    match setting.field {
        Field::Route(set, _) => set(route, text),
        Field::Process(..) => {
            Err(Error::usage(format!("{} is a process setting, not a route's", setting.name)))
        }
    }
}

/// Checks `text` as a value of `setting` without storing it anywhere.
///
/// # Errors
/// `expected ..., found "TEXT"` when the value does not parse or is out of bounds.
pub fn check(setting: &Setting, text: &str) -> Result<(), Error> {
    match setting.field {
        Field::Route(set, _) => set(&mut Config::default(), text),
        Field::Process(set, _) => set(&mut ServerConfig::default(), text),
    }
}

/// A setting's value as written somewhere, with a label for error messages (a flag, or a
/// `FILE:LINE:COLUMN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The setting.
    pub setting: &'static Setting,
    /// The value as written.
    pub text: String,
}

/// Applies values in order, each to the process settings or to `route`, whichever it sets.
/// Later values override earlier ones; a list setting adds to its list.
///
/// # Errors
/// The first value that does not parse; values from [`check`]ed input always do.
pub fn apply_route(values: &[Value], route: &mut Config) -> Result<(), Error> {
    for value in values {
        if let Field::Route(set, _) = value.setting.field {
            set(route, &value.text).map_err(|e| e.for_setting(value.setting.name))?;
        }
    }
    Ok(())
}

/// Applies the process settings among `values` to `server`, after its routes are in place
/// (`log-level` sets every route's level too).
///
/// # Errors
/// As [`apply_route`].
pub fn apply_process(values: &[Value], server: &mut ServerConfig) -> Result<(), Error> {
    for value in values {
        if let Field::Process(set, _) = value.setting.field {
            set(server, &value.text).map_err(|e| e.for_setting(value.setting.name))?;
        }
    }
    Ok(())
}

/// Checks a route's [`Config`] with the same parsers and bounds as the command line and the
/// config file: each setting is written back and parsed again. Also checks that there is at
/// least one upstream and that each is a `HOST:PORT` (or `unix:PATH`) with a port.
///
/// # Errors
/// The first setting out of bounds, as `SETTING: expected ..., found "VALUE"`.
pub fn validate_route(route: &Config) -> Result<(), Error> {
    for setting in SETTINGS {
        if let Field::Route(set, get) = setting.field {
            if let Some(text) = get(route) {
                set(&mut Config::default(), &text).map_err(|e| e.for_setting(setting.name))?;
            }
        }
    }
    if route.upstream.is_empty() {
        let none = Error::value("expected at least one HOST:PORT, found none");
        return Err(none.for_setting("upstream"));
    }
    for upstream in route.upstreams() {
        address::parse_upstream(upstream).map_err(|e| e.for_setting("upstream"))?;
    }
    validate_transport(route)?;
    if let Some(path) = &route.listen_unix {
        if path.as_os_str().is_empty() {
            let empty = Error::value("expected unix:/path/to/socket, found \"unix:\"");
            return Err(empty.for_setting("listen"));
        }
        if !route.server_names.is_empty() {
            let why = "std cannot peek at a Unix socket, so sni= needs a TCP listen address";
            return Err(Error::value(why).for_setting("sni"));
        }
    }
    Ok(())
}

/// Checks what a route's transport allows: a UDP route (`udp:` listen address) listens on
/// an IP address and relays to `HOST:PORT` upstreams, with nothing that reads or writes a
/// TCP stream (`sni=`, `accept-proxy`, `proxy-protocol`); a TCP route takes no `udp:`
/// upstream. Each refusal names the setting and the value.
fn validate_transport(route: &Config) -> Result<(), Error> {
    use crate::net::address::{UDP_PREFIX, UNIX_PREFIX};
    if !route.udp {
        return match route.upstreams().find(|up| up.starts_with(UDP_PREFIX)) {
            Some(up) => Err(Error::value(format!(
                "{up} is a UDP upstream but the route listens on TCP ({}); write the listen \
                 address as udp:{} to relay UDP",
                route.listen_text(),
                route.listen_text()
            ))
            .for_setting("upstream")),
            None => Ok(()),
        };
    }
    let refuse = |setting: &str, why: String| Err(Error::value(why).for_setting(setting));
    if route.listen_stdin || route.listen_unix.is_some() {
        let listen = route.listen_address();
        return refuse("listen", format!("a udp: route listens on HOST:PORT, not {listen}"));
    }
    if let Some(up) = route.upstreams().find(|up| up.starts_with(UNIX_PREFIX)) {
        let why = format!("udp route {} cannot relay to {up}: a UDP upstream is HOST:PORT", {
            route.listen_text()
        });
        return refuse("upstream", why);
    }
    let tcp_only = [
        ("sni", !route.server_names.is_empty(), "a UDP datagram has no TLS server name"),
        ("accept-proxy", route.accept_proxy, "tcprelay reads PROXY headers on TCP only"),
        (
            "proxy-protocol",
            route.proxy_protocol.is_some(),
            "tcprelay sends PROXY headers on TCP only",
        ),
    ];
    for (setting, set, why) in tcp_only {
        if set {
            let listen = route.listen_text();
            return refuse(setting, format!("not on udp route {listen}: {why}"));
        }
    }
    Ok(())
}

/// Checks a whole server: each route ([`validate_route`]), the process settings, and that
/// what it will bind can be bound and will not loop: no two routes on one address however
/// spelled (`:7001` and `127.0.0.1:7001`; `0.0.0.0:7001` and `127.0.0.1:7001`), the admin
/// endpoint on no route's address, and no route whose upstream is its own listen address.
///
/// # Errors
/// The first mistake, as an [`ErrorKind::Conflict`] naming the route at fault.
pub fn validate_server(server: &ServerConfig) -> Result<(), Error> {
    let at = |route: Option<usize>| move |message: String| Error::conflict(route, message);
    if server.routes.is_empty() {
        return Err(at(None)("expected at least one route, found none".to_string()));
    }
    for setting in SETTINGS {
        if let Field::Process(set, get) = setting.field {
            if let Some(text) = get(server) {
                set(&mut ServerConfig::default(), &text)
                    .map_err(|e| at(None)(format!("{}: {e}", setting.name)))?;
            }
        }
    }
    // A token that guards no endpoint is a mistake the operator cannot see: they believe
    // the admin endpoint is on and locked. Refused, as a setting without its subject.
    if server.admin.is_none() && server.admin_access.token.is_some() {
        return Err(at(None)(
            "admin-token-file is set but admin is not: the token guards the admin endpoint, \
             which is off; add --admin ADDR (admin ADDR in a config file) or remove \
             --admin-token-file"
                .to_string(),
        ));
    }
    let groups = crate::settings::config::listener_groups(&server.routes);
    let group_of = |route: usize| groups.iter().position(|group| group.contains(&route));
    for (index, route) in server.routes.iter().enumerate() {
        let label = route_label(route);
        validate_route(route).map_err(|e| at(Some(index))(format!("route {label}: {e}")))?;
        let listen = route.listen_address();
        for (earlier_index, earlier) in server.routes[..index].iter().enumerate() {
            let other = earlier.listen_address();
            // A socket on stdin is known only once it is taken: it clashes only with stdin.
            // Routes on one address that differ by sni= share it (checked below).
            let clash = match (route.listen_stdin, earlier.listen_stdin) {
                (true, true) => true,
                // A UDP and a TCP socket on one port are two sockets, as in nginx's
                // `listen 53` beside `listen 53 udp`.
                (false, false) => {
                    route.udp == earlier.udp
                        && same_listener(&listen, &other)
                        && group_of(index) != group_of(earlier_index)
                }
                _ => false,
            };
            if clash {
                let listen = route.listen_text();
                return Err(at(Some(index))(format!(
                    "route {label} and route {} (route {}) both listen on {listen}",
                    route_label(earlier),
                    earlier_index + 1
                )));
            }
        }
        if route.listen_stdin {
            continue;
        }
        if let Some(admin) = &server.admin {
            if !route.udp && same_listener(admin, &listen) {
                return Err(at(Some(index))(format!(
                    "admin {admin} and route {label} listen on the same address"
                )));
            }
        }
        for upstream in route.upstreams() {
            let plain = upstream.strip_prefix(crate::net::address::UDP_PREFIX);
            if forwards_to_itself(&listen, plain.unwrap_or(upstream)) {
                return Err(at(Some(index))(format!(
                    "route {label} forwards to its own listen address: upstream {upstream} is \
                     {listen}, so one client would fill every slot"
                )));
            }
        }
    }
    for group in &groups {
        validate_sharing(&server.routes, group)?;
    }
    Ok(())
}

/// The settings that belong to a listener rather than to a route: routes that share one
/// (by `sni=`) must agree on them, since they apply before a route is picked.
const LISTENER_SETTINGS: [&str; 6] = [
    "accept-proxy",
    "proxy-from",
    "first-bytes-timeout",
    "max-connections",
    "stack-size",
    "thread-keep-alive",
];

/// Checks the routes of one listener group: at most one route without `sni=`, no server
/// name taken twice, one value of each listener setting.
fn validate_sharing(routes: &[Config], group: &[usize]) -> Result<(), Error> {
    let first = &routes[group[0]];
    let listen = first.listen_address();
    for (position, &index) in group.iter().enumerate() {
        let route = &routes[index];
        let label = route_label(route);
        for &earlier_index in &group[..position] {
            let earlier = &routes[earlier_index];
            let other = route_label(earlier);
            if route.server_names.is_empty() && earlier.server_names.is_empty() {
                return Err(Error::conflict(
                    Some(index),
                    format!(
                        "route {label} and route {other} both listen on {listen} without \
                         sni=: at most one route there takes the clients no name picks"
                    ),
                ));
            }
            if let Some(name) = route.server_names.iter().find(|n| earlier.server_names.contains(n))
            {
                return Err(Error::conflict(
                    Some(index),
                    format!("route {label} and route {other} both take sni={name} on {listen}"),
                ));
            }
        }
        for name in LISTENER_SETTINGS {
            let Some(setting) = find(name) else { continue };
            let Field::Route(_, get) = setting.field else { continue };
            let (mine, theirs) = (get(route), get(first));
            if mine != theirs {
                let show = |value: Option<String>| value.unwrap_or(setting.default.to_string());
                return Err(Error::conflict(
                    Some(index),
                    format!(
                        "route {label} shares {listen} with route {} by sni= but has {name}={} \
                         where it has {}: a listener has one",
                        route_label(first),
                        show(mine),
                        show(theirs)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A route as people know it: its name, else its listen address (and its server names).
fn route_label(route: &Config) -> String {
    let listen = route.listen_and_names(&route.listen_text());
    if route.name.is_empty() { listen } else { format!("{} ({listen})", route.name) }
}

fn same_listener(a: &Address, b: &Address) -> bool {
    match (a, b) {
        (Address::Tcp(a), Address::Tcp(b)) => same_socket(*a, *b),
        (Address::Unix(a), Address::Unix(b)) => a == b,
        _ => false,
    }
}

/// Whether two TCP listeners would fight over one port: the same port (not 0, which picks a
/// free one each time) and the same IP, or either one the wildcard of its family. Where
/// `[::]` also takes IPv4 ([`V6_WILDCARD_TAKES_V4`]) it clashes with every address on the
/// port; elsewhere `[::]:P` and `0.0.0.0:P` are two listeners, one per family.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    // `wild` takes `other`'s clients: the wildcard of the same family, or `[::]` taking
    // IPv4 too.
    let wildcard_over = |wild: IpAddr, other: IpAddr| {
        wild.is_unspecified()
            && (wild.is_ipv6() == other.is_ipv6() || (wild.is_ipv6() && V6_WILDCARD_TAKES_V4))
    };
    a.ip() == b.ip() || wildcard_over(a.ip(), b.ip()) || wildcard_over(b.ip(), a.ip())
}

/// Whether a listener on `[::]` also takes IPv4 clients, which decides whether it clashes
/// with `0.0.0.0` on the same port. std cannot set `IPV6_V6ONLY`, so tcprelay follows the
/// platform's default: dual-stack on Linux (unless `net.ipv6.bindv6only` is set) and macOS;
/// IPv6 only on Windows and the BSDs, where serving both families on one port takes two
/// listeners, `[::]:P` and `0.0.0.0:P` (nginx's `ipv6only=on` default asks the same
/// everywhere). docs/operations.md, "IPv4 and IPv6 on one port".
const V6_WILDCARD_TAKES_V4: bool =
    cfg!(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "ios"));

/// Whether a route's upstream is the route's own listener. Only literal addresses are
/// compared: a host name is resolved per connection and may well move.
fn forwards_to_itself(listen: &Address, upstream: &str) -> bool {
    match listen {
        Address::Unix(path) => {
            upstream.strip_prefix("unix:").is_some_and(|up| path.as_os_str() == up)
        }
        Address::Tcp(listen) => {
            let normal = address::parse_upstream(upstream).unwrap_or_default();
            let Ok(upstream) = normal.parse::<SocketAddr>() else {
                return false;
            };
            let local = upstream.ip().is_loopback() || upstream.ip().is_unspecified();
            upstream.port() == listen.port()
                && (upstream.ip() == listen.ip() || (listen.ip().is_unspecified() && local))
        }
    }
}

/// What will run, in the config file's own format: the process settings, then one line per
/// route with every route setting that applies to it. Parsing the text gives the same
/// [`ServerConfig`] back; `tcprelay --check` prints it.
pub fn describe(server: &ServerConfig) -> String {
    let mut text = String::new();
    for setting in SETTINGS {
        if let Field::Process(_, get) = setting.field {
            if let Some(value) = get(server) {
                let _ = writeln!(text, "{} {value}", setting.name);
            }
        }
    }
    for route in &server.routes {
        text.push_str(&describe_route(route));
        text.push('\n');
    }
    text
}

/// One route as a `route` line of the config file, every route setting written out: what
/// `--check` prints for it, and what a reload compares to tell a changed route.
pub fn describe_route(route: &Config) -> String {
    let mut text = format!("route {} ->", route.listen_text());
    for upstream in route.upstreams() {
        let _ = write!(text, " {upstream}");
    }
    if !route.name.is_empty() {
        let _ = write!(text, " name={}", route.name);
    }
    for setting in SETTINGS {
        if let Field::Route(_, get) = setting.field {
            if let Some(value) = get(route) {
                let _ = write!(text, " {}={value}", setting.name);
            }
        }
    }
    text
}

/// The settings as the Markdown table in README.md and docs/operations.md (a test checks
/// that both hold exactly this text).
#[cfg(test)]
pub fn markdown_table() -> String {
    let mut text = String::from(
        "| flag and config key | default | where | values | meaning |\n|---|---|---|---|---|\n",
    );
    for setting in SETTINGS {
        let flag = match setting.value {
            "" => setting.flag(),
            value => format!("{} {value}", setting.flag()),
        };
        let scope = match setting.scope {
            Scope::Process => "process",
            Scope::Route => "global or route",
            Scope::RouteOnly => "route",
        };
        let list = if setting.list { "; repeatable" } else { "" };
        let _ = writeln!(
            text,
            "| `{flag}` / `{}` | `{}` | {scope} | {}{list} | {} |",
            setting.name, setting.default, setting.limits, setting.help
        );
    }
    text
}

/// The settings as `--help` lists them, each with its values and default.
pub fn help_text() -> String {
    let mut text = String::new();
    for setting in SETTINGS {
        let flag = match setting.value {
            "" => setting.flag(),
            value => format!("{} {value}", setting.flag()),
        };
        let list = if setting.list { " (repeatable)" } else { "" };
        let mut body = format!("{}{list}; {}", setting.help, setting.limits);
        if !matches!(setting.default, "none" | "everyone" | "nobody") {
            let _ = write!(body, " [default: {}]", setting.default);
        }
        text.push_str(&help_entry(&flag, &body));
    }
    text
}

/// One `--help` entry: the flag in a 29-column gutter (or on a line of its own when longer),
/// and the text wrapped at 90 columns; `[default: X]` is never split.
pub fn help_entry(flag: &str, body: &str) -> String {
    const GUTTER: usize = 29;
    const WIDTH: usize = 90;
    // Long flags line up after the room a short one takes: `  -l, --listen`, `      --route`.
    let indent = if flag.starts_with("--") { "      " } else { "  " };
    let mut text = format!("{indent}{flag}");
    let mut column = text.len();
    if column + 2 > GUTTER {
        text.push('\n');
        column = 0;
    }
    let mut first_word = true;
    let words = split_keeping_defaults(body);
    for word in words {
        if first_word || column + 1 + word.len() > WIDTH {
            if !first_word {
                text.push('\n');
                column = 0;
            }
            text.push_str(&" ".repeat(GUTTER - column));
            column = GUTTER;
        } else {
            text.push(' ');
            column += 1;
        }
        text.push_str(&word);
        column += word.chars().count();
        first_word = false;
    }
    text.push('\n');
    text
}

/// Words of `body`, keeping `[default: X]` as one word.
fn split_keeping_defaults(body: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut in_default = false;
    for word in body.split(' ').filter(|w| !w.is_empty()) {
        match words.last_mut() {
            Some(last) if in_default => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
        if word.starts_with("[default:") {
            in_default = true;
        }
        if word.ends_with(']') {
            in_default = false;
        }
    }
    words
}

// The value parsers. Each message is `expected WHAT, found "TEXT"`, so that callers can put
// the flag or the file position in front of it.

fn duration(text: &str, min: Duration, max: Duration) -> Result<Duration, Error> {
    let value = parse_duration(text)?;
    if value < min || value > max {
        let range = if min.is_zero() {
            format!("0 to {}", format_duration(max))
        } else {
            format!("{} to {}", format_duration(min), format_duration(max))
        };
        return Err(Error::value(format!("expected a duration from {range}, found {text:?}")));
    }
    Ok(value)
}

/// A per-client share: `auto` (`None`), `0` (no limit) or a count from 1 to 65536.
fn per_client(text: &str) -> Result<Option<usize>, Error> {
    match text {
        "auto" => Ok(None),
        "0" => Ok(Some(0)),
        _ => count(text, 1, MAX_CONNECTIONS).map(Some).map_err(|_| {
            Error::value(format!("expected auto, 0 or a count from 1 to 65536, found {text:?}"))
        }),
    }
}

/// A per-client share as [`per_client`] reads it.
fn per_client_text(share: Option<usize>) -> String {
    share.map_or_else(|| "auto".to_string(), |max| max.to_string())
}

/// A whole number in `min..=max`, in decimal digits only: no sign, no spaces.
fn count(text: &str, min: usize, max: usize) -> Result<usize, Error> {
    match text.parse::<usize>() {
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::value(format!(
            "expected a whole number from {min} to {max}, found {text:?}"
        ))),
    }
}

/// A size in `range`, or exactly `also` (such as 0 for "the default buffer").
fn size(text: &str, also: Option<usize>, (min, max): (usize, usize)) -> Result<usize, Error> {
    let value = parse_size(text)?;
    if Some(value) == also || (min..=max).contains(&value) {
        return Ok(value);
    }
    let range = format!("a size from {} to {}", format_size(min), format_size(max));
    Err(Error::value(match also {
        Some(also) => format!("expected {also}, or {range}, found {text:?}"),
        None => format!("expected {range}, found {text:?}"),
    }))
}

/// A file path as a setting's value: not empty, and without the spaces and control
/// characters that a config file line could not hold (it splits words at spaces), so that
/// `--check` prints a line that reads back the same.
fn file_path(text: &str) -> Result<std::path::PathBuf, Error> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::value(format!("expected a file path without spaces, found {text:?}")));
    }
    Ok(text.into())
}

fn switch(text: &str) -> Result<bool, Error> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(Error::value(format!("expected on or off, found {text:?}"))),
    }
}

/// `10.0.0.0/8,192.168.0.0/16`: one or more CIDR blocks separated by commas.
pub fn cidrs(text: &str) -> Result<Vec<Cidr>, Error> {
    text.split(',')
        .map(|piece| piece.trim().parse::<Cidr>().map_err(|e| Error::value(e.to_string())))
        .collect()
}

fn join_cidrs(blocks: &[Cidr]) -> Option<String> {
    if blocks.is_empty() {
        return None;
    }
    Some(blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

// The settings' own checks, as methods of the types they check. They live here, beside the
// table, so that `Config` and `ServerConfig` (plain data) import nothing of the parsers.

impl Config {
    /// Checks the settings with the same parsers and bounds as the command line and the
    /// config file (the settings table, `tcprelay --help`), and that there is at least one
    /// upstream, each `HOST:PORT` with a port, or `unix:PATH`. [`Relay::bind`](crate::Relay::bind)
    /// calls it.
    ///
    /// ```
    /// let config = tcprelay::Config::default(); // no upstream
    /// assert_eq!(config.validate().unwrap_err().to_string(),
    ///            "upstream: expected at least one HOST:PORT, found none");
    /// ```
    ///
    /// # Errors
    /// The first setting that is out of bounds, as `SETTING: expected ..., found "VALUE"`;
    /// for a UDP route ([`Config::udp`]), that a `Relay` is TCP only (a
    /// [`Server`](crate::Server) runs UDP routes).
    pub fn validate(&self) -> Result<(), Error> {
        validate_route(self)?;
        if self.udp {
            let why = format!(
                "route {} is a UDP route: a Relay relays TCP; run it in a Server",
                self.listen_text()
            );
            return Err(Error::value(why).for_setting("listen"));
        }
        Ok(())
    }
}

impl ServerConfig {
    /// What would run, in the config file's own format, one line per setting and per route
    /// (this is what `tcprelay --check` prints).
    pub fn describe(&self) -> String {
        describe(self)
    }

    /// Checks every route ([`Config::validate`]) and the whole: no two routes on one
    /// address however it is spelled, the admin endpoint on no route's port, no route that
    /// forwards to itself. [`Server::bind`](crate::Server::bind) calls it.
    ///
    /// # Errors
    /// The first mistake, naming both sides of a clash.
    pub fn validate(&self) -> Result<(), Error> {
        validate_server(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_what_the_code_starts_from() {
        // Unix sockets, so that the socket modes apply and are printed.
        let route = Config { listen_unix: Some("/run/r.sock".into()), ..Config::default() };
        let admin = Some(Address::Unix("/run/admin.sock".into()));
        let server = ServerConfig { admin, ..ServerConfig::default() };
        // A UDP route, for the settings printed only on one.
        let udp = Config { udp: true, ..Config::default() };
        for setting in SETTINGS {
            let got = match setting.field {
                Field::Route(_, get) => get(&route).or_else(|| get(&udp)),
                Field::Process(_, get) => get(&server),
            };
            let documented = match setting.default {
                _ if setting.name == "admin" => Some("unix:/run/admin.sock".to_string()),
                "none" | "everyone" | "nobody" | "loopback" => None,
                text => Some(text.to_string()),
            };
            assert_eq!(got, documented, "{}", setting.name);
        }
    }

    #[test]
    fn names_are_unique_and_lower_case() {
        for (index, setting) in SETTINGS.iter().enumerate() {
            assert!(
                setting.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                setting.name
            );
            assert!(!SETTINGS[..index].iter().any(|s| s.name == setting.name), "{}", setting.name);
        }
    }

    #[test]
    fn bounds_are_checked_at_parse_time() {
        let cases = [
            // 2g, not 64g: a size that a 32-bit usize holds, so the bound (not the parse) says no.
            ("buffer-size", "2g", r#"expected 0, or a size from 8k to 1m, found "2g""#),
            ("buffer-size", "18446744073709551615", r#"found "18446744073709551615""#),
            ("buffer-size", "4k", r#"found "4k""#),
            ("stack-size", "3g", r#"expected a size from 16k to 8m, found "3g""#),
            ("stack-size", "1k", r#"found "1k""#),
            ("connect-timeout", "0", r#"expected a duration from 1ms to 10m, found "0""#),
            ("idle-timeout", "2d", r#"found "2d""#),
            ("idle-timeout", "25h", r#"expected a duration from 0 to 24h, found "25h""#),
            ("max-connections", "0", r#"expected a whole number from 1 to 65536, found "0""#),
            ("max-connections", "+5", r#"found "+5""#),
            ("max-connections", "65537", r#"found "65537""#),
            ("explain", "yes", r#"expected on or off, found "yes""#),
            ("drain-timeout", "2h", r#"found "2h""#),
        ];
        for (name, text, expected) in cases {
            let error = check(find(name).unwrap(), text).unwrap_err();
            assert!(error.to_string().contains(expected), "{name} {text}: {error}");
        }
        for (name, text) in [("buffer-size", "0"), ("buffer-size", "1m"), ("stack-size", "8m")] {
            assert_eq!(check(find(name).unwrap(), text), Ok(()), "{name} {text}");
        }
    }

    #[test]
    fn a_library_config_is_checked_with_the_same_bounds() {
        let good = Config { upstream: "127.0.0.1:80".into(), ..Config::default() };
        assert_eq!(validate_route(&good), Ok(()));
        let cases: Vec<(Config, &str)> = vec![
            (Config::default(), "upstream: expected at least one HOST:PORT"),
            (Config { max_connections: 0, ..good.clone() }, "max-connections: "),
            (Config { buffer_size: usize::MAX, ..good.clone() }, "buffer-size: "),
            (Config { stack_size: usize::MAX / 2, ..good.clone() }, "stack-size: "),
            (Config { connect_timeout: Duration::ZERO, ..good.clone() }, "connect-timeout: "),
            (Config { upstream: "localhost".into(), ..good.clone() }, "\"localhost\""),
            (Config { upstream: "bad host:80".into(), ..good.clone() }, "\"bad host:80\""),
        ];
        for (config, expected) in cases {
            let error = validate_route(&config).unwrap_err();
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
    }

    fn server(routes: &[(&str, &str)], admin: Option<&str>) -> ServerConfig {
        let routes = routes
            .iter()
            .map(|(listen, upstream)| {
                let listen = address::parse_listen_address(listen).unwrap();
                let (listen, listen_unix) = match listen {
                    Address::Tcp(addr) => (addr, None),
                    Address::Unix(path) => (Config::default().listen, Some(path)),
                };
                Config { listen, listen_unix, upstream: upstream.to_string(), ..Config::default() }
            })
            .collect();
        let admin = admin.map(|a| address::parse_listen_address(a).unwrap());
        ServerConfig { routes, admin, ..ServerConfig::default() }
    }

    #[test]
    fn clashes_name_both_sides() {
        let cases = [
            (server(&[(":7001", ":1"), ("127.0.0.1:7001", ":2")], None), "both listen on"),
            (server(&[("0.0.0.0:7001", ":1"), ("127.0.0.1:7001", ":2")], None), "both listen"),
            (server(&[("unix:/a", ":1"), ("unix:/a", ":2")], None), "both listen"),
            (server(&[(":7001", ":1")], Some("127.0.0.1:7001")), "admin 127.0.0.1:7001"),
            (server(&[(":7001", "127.0.0.1:7001")], None), "forwards to its own"),
            (server(&[("0.0.0.0:7001", ":7001")], None), "forwards to its own"),
            (server(&[("unix:/a", "unix:/a")], None), "forwards to its own"),
        ];
        for (config, expected) in cases {
            let error = validate_server(&config).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
        let error = validate_server(&server(&[(":7001", ":1"), ("127.0.0.1:7001", ":2")], None))
            .unwrap_err();
        let message =
            "route 127.0.0.1:7001 and route 127.0.0.1:7001 (route 1) both listen on 127.0.0.1:7001";
        assert_eq!(error.kind(), &ErrorKind::Conflict { route: Some(1), message: message.into() });
        // `[::]` beside IPv4 on one port clashes only where `[::]` takes IPv4 too
        // (tests/platforms.rs checks that against what the platform's `bind` does).
        let both_families = server(&[("[::]:7001", ":1"), ("127.0.0.1:7001", ":2")], None);
        assert_eq!(validate_server(&both_families).is_err(), V6_WILDCARD_TAKES_V4);
        for fine in [
            server(&[(":0", ":1"), ("127.0.0.1:0", ":2")], Some(":0")),
            server(&[("127.0.0.1:7001", ":1"), ("127.0.0.2:7001", ":2")], None),
            server(&[("0.0.0.0:7001", ":1"), ("[::1]:7001", ":2")], None),
            server(&[(":7001", "127.0.0.2:7002")], None),
        ] {
            assert_eq!(validate_server(&fine), Ok(()), "{fine:?}");
        }
    }

    /// `proxy-from` is checked before a route is picked, so routes sharing a listener by
    /// `sni=` must agree on it; the message names the default as the user would write it.
    #[test]
    fn routes_sharing_a_listener_must_agree_on_proxy_from() {
        let mut shared = server(&[("127.0.0.1:7001", ":1"), ("127.0.0.1:7001", ":2")], None);
        for route in &mut shared.routes {
            route.accept_proxy = true;
        }
        shared.routes[0].server_names.push("a.test".parse().expect("a server name"));
        shared.routes[0].proxy_from = cidrs("10.0.0.1").expect("a block");
        let error = validate_server(&shared).unwrap_err();
        assert!(
            error.to_string().contains("proxy-from=loopback where it has 10.0.0.1/32"),
            "{error:?}"
        );
        shared.routes[1].proxy_from = cidrs("10.0.0.1/32").expect("a block");
        assert_eq!(validate_server(&shared), Ok(()));
    }

    #[test]
    fn help_and_docs_tables_list_every_setting() {
        let help = help_text();
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let table = markdown_table();
        for setting in SETTINGS {
            assert!(help.contains(&setting.flag()), "{} missing from --help", setting.name);
            assert!(words.contains(setting.limits), "{} limits missing from --help", setting.name);
            assert!(table.contains(&format!("`{}`", setting.name)), "{}", setting.name);
        }
        for line in help.lines() {
            assert!(line.chars().count() <= 90, "too long: {line}");
        }
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::settings;

        let buffer = settings::find("buffer-size").unwrap();
        let mut config = crate::Config::default();
        settings::set_route(buffer, &mut config, "64k").unwrap();
        assert_eq!(config.buffer_size, 65536);
        let error = settings::set_route(buffer, &mut config, "2g").unwrap_err();
        assert_eq!(error.to_string(), r#"expected 0, or a size from 8k to 1m, found "2g""#);
    }

    /// The settings tables in README.md and docs/operations.md are [`markdown_table`]'s, word
    /// for word, so the docs list every setting with its key, default and range.
    #[test]
    fn docs_hold_the_settings_table() {
        let table = markdown_table();
        for (name, doc) in [
            ("README.md", include_str!("../../README.md")),
            ("docs/operations.md", include_str!("../../docs/operations.md")),
        ] {
            assert!(
                doc.contains(&table),
                "{name} must hold this table (from settings::markdown_table):\n{table}"
            );
        }
    }
}
