//! Reload: read the config file again and apply it to the running server, keeping every
//! listener whose address is unchanged (`POST /reload`, `tcprelay reload`).
//!
//! The new file is checked whole first, exactly as `--check` checks it, and every new
//! listener is bound, before anything changes: a file that does not parse, or a listener
//! that cannot bind, refuses the reload with the file's `FILE:LINE:COLUMN` and leaves the
//! running configuration untouched. Then, under [`Routes`]' lock:
//!
//! - a route whose listen address is unchanged keeps its listener and accept loop; if its
//!   settings changed, the connections accepted from now on get the new ones, while live
//!   connections finish under those they started with (see relay/current.rs). Routes that
//!   share a listener by `sni=` are kept, changed, added or removed together with it: the
//!   listener's table of server names is rebuilt from the file;
//! - a new route starts accepting;
//! - a route no longer in the file stops accepting and drains under `drain-timeout`.
//!
//! A UDP route (`udp:`) is kept, changed, added or removed the same way, by its listen
//! address: a kept one keeps its socket, its flow table and its counts, and its open flows
//! go on (under the settings and upstream they started with) while new flows get the new
//! settings; a removed one closes its socket and ends its flows at once (`reason=removed`):
//! a flow has no transfer to finish, and the client's next datagram is refused by the
//! closed port.
//!
//! A changed `admin` address moves the admin endpoint, with the file's `admin-token-file`
//! and `admin-socket-mode`: the new address is bound before anything changes, and the old
//! endpoint closes last (see server/admin_endpoint.rs). Other process settings that only
//! apply at start (`admin-token-file` and `admin-socket-mode` on an unchanged address,
//! `pid-file`) keep their running values; the log line names those that differ.
//! `drain-timeout`, `drain-grace` and `log-level` apply; `watch-config` keeps the period it
//! started with, and is named as kept like the others.
//!
//! Every reload writes one log line: `config reloaded` with the routes added, removed and
//! changed, or `reload refused` with why; `/metrics` counts both.
//!
//! Every reload, applied or refused, also opens the `--log-file` again (as `tcprelay
//! reopen-logs` does), so a logrotate `postrotate` that runs `tcprelay reload` works too.

use std::sync::{Arc, Mutex, Weak};

use crate::lock::lock;
use crate::net::address::{Address, UDP_PREFIX};
use crate::ops::log::{self, Log};
use crate::server::admin_endpoint::AdminEndpoint;
use crate::server::routes::{Next, Routes};
use crate::server::wiring;
use crate::server::{ConfigFile, ServerConfig};
use crate::settings::config::{Config, listener_groups};
use crate::settings::{self, Field, SETTINGS, Value, file};

/// The process settings a reload applies; the others keep their values from the start.
const APPLIED_PROCESS_SETTINGS: [&str; 3] = ["drain-timeout", "drain-grace", "log-level"];

/// Reloads one server from its config file.
pub(crate) struct Reloader {
    file: ConfigFile,
    /// The process settings the server started with (the admin endpoint's as it moved).
    started: Mutex<ServerConfig>,
    routes: Arc<Routes>,
    admin: Weak<AdminEndpoint>,
    log: Log,
    /// One reload at a time: each compares against what the last one left.
    one_at_a_time: Mutex<()>,
}

impl Reloader {
    /// A reloader for the server that `started` describes, running `routes`.
    pub fn new(
        file: ConfigFile,
        started: &ServerConfig,
        routes: Arc<Routes>,
        admin: Weak<AdminEndpoint>,
        log: Log,
    ) -> Reloader {
        let started = Mutex::new(ServerConfig { routes: Vec::new(), ..started.clone() });
        Reloader { file, started, routes, admin, log, one_at_a_time: Mutex::new(()) }
    }

    /// Reads the file again and applies it; see the [module docs](self). Logs one line and
    /// counts the outcome either way.
    ///
    /// # Errors
    /// Why it was refused; nothing has changed then.
    pub fn reload(&self) -> Result<String, String> {
        let _one = lock(&self.one_at_a_time);
        if let Err(error) = log::reopen() {
            self.log.warn(
                "cannot reopen the log file; writing on to the open one",
                &[("error", &error)],
            );
        }
        let outcome = self.try_reload();
        match &outcome {
            Ok(summary) => {
                self.routes.reloads_applied.fetch_add(1);
                let Summary { added, removed, changed, unchanged, kept, .. } = summary;
                let list = |names: &[String]| match names.is_empty() {
                    true => "-".to_string(),
                    false => names.join(","),
                };
                self.log.info(
                    "config reloaded",
                    &[
                        ("file", &self.file.path.display()),
                        ("added", &list(added)),
                        ("removed", &list(removed)),
                        ("changed", &list(changed)),
                        ("unchanged", &unchanged),
                        ("kept_until_restart", &list(kept)),
                    ],
                );
            }
            Err(why) => {
                self.routes.reloads_refused.fetch_add(1);
                self.log.warn("reload refused", &[("error", why)]);
            }
        }
        outcome.map(|summary| summary.to_string())
    }

    fn try_reload(&self) -> Result<Summary, String> {
        let overrides = self
            .file
            .overrides
            .iter()
            .filter_map(|(name, text)| {
                Some(Value { setting: settings::find(name)?, text: text.clone() })
            })
            .collect::<Vec<_>>();
        let parsed = file::load(&self.file.path).map_err(|error| error.to_string())?;
        let server = parsed.server_config(&overrides).map_err(|error| error.to_string())?;
        // The caps of the routes this reload builds leave out the threads it asks for.
        crate::limits::capacity::set_reserve(wiring::thread_reserve(&server));
        let running = self.routes.configs().ok_or("the relay is draining")?;
        // One entry per listener, as at start: a route alone, or routes that share it by sni=.
        let groups = listener_groups(&server.routes);
        let listeners: Vec<Vec<Config>> = groups
            .iter()
            .map(|group| group.iter().map(|&route| server.routes[route].clone()).collect())
            .collect();
        let mut summary = Summary::default();
        let kept = match_listeners(&running, &listeners);
        let mut taken = vec![false; running.len()];
        let mut next = Vec::new();
        for (index, configs) in listeners.into_iter().enumerate() {
            match kept[index] {
                Some(old) => {
                    taken[old] = true;
                    let (running, listen) = &running[old];
                    let changed = summary.compare(running, &configs, listen);
                    next.push(Next::Keep(old, configs, changed));
                }
                None => {
                    // Bound now, before anything changes; dropped (closed) if the reload
                    // is refused after all.
                    let relay = wiring::bind_listener(&configs).map_err(|error| {
                        let first = &parsed.routes[groups[index][0]];
                        parsed.error_at(&first.listen, error.to_string()).to_string()
                    })?;
                    let listen = relay.listen_addr();
                    summary.added.extend(configs.iter().map(|config| label(config, &listen)));
                    next.push(Next::Add(relay, configs));
                }
            }
        }
        for (old, (configs, listen)) in running.iter().enumerate() {
            if !taken[old] {
                summary.removed.extend(configs.iter().map(|config| label(config, listen)));
            }
        }
        // The admin endpoint's new address is bound now too, and taken over last.
        let admin = self.admin.upgrade();
        let moved = match &admin {
            Some(admin) => admin.bind_moved(server.admin.as_ref(), &server.admin_access)?,
            None => None,
        };
        self.routes.apply(next, server.drain_timeout, server.drain_grace)?;
        let mut started = lock(&self.started);
        if let (Some(moved), Some(admin)) = (moved, admin) {
            admin.replace(moved);
            started.admin = server.admin.clone();
            started.admin_access = server.admin_access.clone();
            summary.admin_moved = Some(admin.local_addr().map_or("none".into(), |a| a.to_string()));
        }
        summary.kept = kept_until_restart(&started, &server);
        Ok(summary)
    }
}

/// What a reload changed, by route label.
#[derive(Debug, Default)]
struct Summary {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    unchanged: usize,
    /// Process settings that differ in the file but keep their running values.
    kept: Vec<String>,
    /// Where the admin endpoint listens now, if the reload moved it.
    admin_moved: Option<String>,
}

impl Summary {
    /// Counts a kept listener's routes, `running` before and `file` after: changed,
    /// unchanged, added or removed. A listener's only route stays itself (a rename is a
    /// change); routes sharing it by `sni=` are matched by label (name, else server names).
    /// Returns whether anything changed, their order included (the first one owns the
    /// listener).
    fn compare(&mut self, running: &[Config], file: &[Config], listen: &Address) -> bool {
        let key = |config: &Config| label(config, listen);
        let alone = running.len() == 1 && file.len() == 1;
        let same = |old: &Config, new: &Config| alone || key(old) == key(new);
        let mut changed = !alone && !running.iter().map(key).eq(file.iter().map(key));
        for new in file {
            match running.iter().find(|old| same(old, new)) {
                Some(old) if differs(old, new) => {
                    self.changed.push(key(new));
                    changed = true;
                }
                Some(_) => self.unchanged += 1,
                None => self.added.push(key(new)),
            }
        }
        let gone = running.iter().filter(|old| !file.iter().any(|new| same(old, new)));
        self.removed.extend(gone.map(key));
        changed
    }
}

impl std::fmt::Display for Summary {
    /// `reloaded: added db (127.0.0.1:5433); removed none; changed web; 1 unchanged`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |names: &[String]| match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        };
        write!(
            f,
            "reloaded: added {}; removed {}; changed {}; {} unchanged",
            list(&self.added),
            list(&self.removed),
            list(&self.changed),
            self.unchanged
        )?;
        if let Some(admin) = &self.admin_moved {
            write!(f, "; admin endpoint moved to {admin}")?;
        }
        if !self.kept.is_empty() {
            write!(f, "; kept until restart: {}", self.kept.join(", "))?;
        }
        Ok(())
    }
}

/// For each listener of the new file (its routes, the first one owning it), the running
/// listener it keeps, if any: one with the same listen address as configured (so
/// `127.0.0.1:0` keeps the port it was given), and the same first route's name first. A
/// listener on port 0 is kept only by that name too: port 0 means "any free port", so its
/// address does not tell listeners apart.
fn match_listeners(
    running: &[(Vec<Config>, Address)],
    listeners: &[Vec<Config>],
) -> Vec<Option<usize>> {
    let mut taken = vec![false; running.len()];
    let mut kept = vec![None; listeners.len()];
    let same_address = |old: &Config, new: &Config| old.listen_text() == new.listen_text();
    for by_name_too in [true, false] {
        for (index, configs) in listeners.iter().enumerate() {
            let Some(config) = configs.first() else { continue };
            if kept[index].is_some() {
                continue;
            }
            let found = running.iter().enumerate().position(|(old, (running, _))| {
                let Some(running) = running.first() else { return false };
                !taken[old]
                    && same_address(running, config)
                    && (running.name == config.name || !by_name_too && !any_port(config))
            });
            if let Some(old) = found {
                taken[old] = true;
                kept[index] = Some(old);
            }
        }
    }
    kept
}

/// Whether a route listens on "any free port" (port 0).
fn any_port(config: &Config) -> bool {
    matches!(config.listen_address(), Address::Tcp(addr) if addr.port() == 0)
}

/// Whether a kept route's settings changed: any route setting, or the log level.
fn differs(running: &Config, config: &Config) -> bool {
    settings::describe_route(running) != settings::describe_route(config)
        || running.log_level != config.log_level
}

/// A route in the reload's summary: its name and address, or its address alone (and its
/// server names, on a listener shared by `sni=`; `udp:` before a UDP route's).
fn label(config: &Config, listen: &Address) -> String {
    let address = match config.udp {
        true => format!("{UDP_PREFIX}{listen}"),
        false => config.listen_and_names(listen),
    };
    match config.name.is_empty() {
        true => address,
        false => format!("{}({address})", config.name),
    }
}

/// The process settings that differ between `started` and `file` but apply only at start.
fn kept_until_restart(started: &ServerConfig, file: &ServerConfig) -> Vec<String> {
    SETTINGS
        .iter()
        .filter(|setting| !APPLIED_PROCESS_SETTINGS.contains(&setting.name))
        .filter_map(|setting| match setting.field {
            Field::Process(_, get) if get(started) != get(file) => Some(setting.name.to_string()),
            _ => None,
        })
        .collect()
}
