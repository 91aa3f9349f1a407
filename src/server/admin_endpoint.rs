//! The admin endpoint a [`Server`](crate::Server) runs, and moving it when a reload changes
//! the `admin` line.
//!
//! `tcprelay reload --config FILE` and `tcprelay drain --config FILE` (systemd's
//! `ExecReload=` and `ExecStop=`) find the relay at the address the file names *now*. If a
//! reload kept the old address, the first edit of the `admin` line would break both, and
//! a failed `ExecStop=` is followed by SIGTERM, which cuts every connection. So a reload
//! that changes `admin` moves the endpoint the way nginx moves a changed `listen` on reload:
//! the new address is bound first (a reload whose new address cannot be bound is refused,
//! and the old endpoint stays), then the old one stops accepting, finishes the answer it is
//! writing (the one to this very `POST /reload`) and closes. The new endpoint takes the
//! file's `admin-token-file` and `admin-socket-mode` with it.
//!
//! But `tcprelay reload --config FILE` itself runs after the edit, while the relay still
//! listens at the old address. So, with a `pid-file`, the endpoint also writes where it
//! listens now to a runtime file beside it, `PIDFILE.admin`, in the config file's own
//! syntax (`admin ADDR`, and `admin-token-file FILE` when it has one); the client tries
//! that first (see ops/admin_client.rs). The file is replaced whole on every move and
//! removed when the endpoint stops.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::lock::lock;
use crate::net::address::Address;
use crate::ops::admin::{Admin, AdminStop};
use crate::ops::admin_client::runtime_file_of;
use crate::ops::log::Log;
use crate::server::handle::ServerHandle;
use crate::settings::admin_access::AdminAccess;

/// The stack of an admin endpoint's accept thread: its loop is shallow.
const ADMIN_STACK_SIZE: usize = 256 * 1024;

/// The server's admin endpoint, if it has one, and the threads of those a reload replaced.
#[derive(Debug)]
pub(crate) struct AdminEndpoint {
    state: Mutex<State>,
    /// `PIDFILE.admin`, when the server has a pid file.
    runtime_file: Option<PathBuf>,
    log: Log,
}

#[derive(Debug, Default)]
struct State {
    /// The `admin` address as configured (`127.0.0.1:0` stays that, whatever port it got).
    configured: Option<Address>,
    /// The bound endpoint, until [`AdminEndpoint::start`] runs it on a thread.
    waiting: Option<Admin>,
    /// Stops the endpoint that serves now, and its address.
    serving: Option<(AdminStop, Address)>,
    /// The thread of the endpoint that serves now, and of each one a reload replaced:
    /// joined by [`AdminEndpoint::stop_and_join`].
    threads: Vec<JoinHandle<()>>,
    /// The handle each new endpoint is given, to drain and reload the server.
    server: Option<ServerHandle>,
    /// The token file of the endpoint that serves now, for the runtime file.
    token_file: Option<PathBuf>,
    /// Whether [`AdminEndpoint::start`] has run: a moved endpoint starts at once then.
    started: bool,
}

/// An endpoint bound by a reload, not yet serving: [`AdminEndpoint::replace`] starts it.
/// Dropping it (a reload refused after all) closes it.
#[derive(Debug)]
pub(crate) struct Moved {
    admin: Option<Admin>,
    configured: Option<Address>,
    token_file: Option<PathBuf>,
}

impl AdminEndpoint {
    /// No endpoint yet; [`AdminEndpoint::bind`] binds the one the server starts with. With
    /// a `pid_file`, the endpoint's address is kept in `PIDFILE.admin` (see the module docs).
    pub fn new(log: Log, pid_file: Option<&Path>) -> AdminEndpoint {
        let runtime_file = pid_file.map(runtime_file_of);
        AdminEndpoint { state: Mutex::new(State::default()), runtime_file, log }
    }

    /// Binds the endpoint the server starts with at `address` (none if `None`), serving
    /// `server` once [`AdminEndpoint::start`] runs.
    ///
    /// # Errors
    /// The OS error, naming the address, if it cannot be bound.
    pub fn bind(
        &self,
        address: Option<&Address>,
        access: &AdminAccess,
        server: ServerHandle,
    ) -> io::Result<()> {
        let admin = match address {
            Some(address) => {
                Some(Admin::bind(address, access.clone(), server.clone(), self.log.clone())?)
            }
            None => None,
        };
        let mut state = self.lock();
        state.configured = address.cloned();
        state.waiting = admin;
        state.server = Some(server);
        state.token_file = token_file(access);
        Ok(())
    }

    /// The address the endpoint listens on now, if there is one.
    pub fn local_addr(&self) -> Option<Address> {
        let state = self.lock();
        match &state.waiting {
            Some(admin) => Some(admin.local_addr()),
            None => state.serving.as_ref().map(|(_, address)| address.clone()),
        }
    }

    /// Serves the bound endpoint on a thread of its own.
    pub fn start(&self) {
        let mut state = self.lock();
        state.started = true;
        if let Some(admin) = state.waiting.take() {
            self.run(&mut state, admin);
        }
        self.write_runtime_file(&state);
    }

    fn run(&self, state: &mut State, admin: Admin) {
        let stop = admin.stop_handle();
        let address = admin.local_addr();
        let spawned = thread::Builder::new()
            .name("tcprelay-admin".into())
            .stack_size(ADMIN_STACK_SIZE)
            .spawn(move || admin.serve());
        match spawned {
            Ok(thread) => {
                state.threads.push(thread);
                state.serving = Some((stop, address));
            }
            // The relays can run without it; say so loudly.
            Err(error) => self.log.error("cannot start the admin thread", &[("error", &error)]),
        }
    }

    /// For a reload: binds the endpoint at `address` with `access` if `address` differs
    /// from the one configured now; `Ok(None)` if it does not. Nothing changes yet.
    ///
    /// # Errors
    /// Why the new address cannot be bound; the reload is refused then.
    pub fn bind_moved(
        &self,
        address: Option<&Address>,
        access: &AdminAccess,
    ) -> Result<Option<Moved>, String> {
        let state = self.lock();
        if state.configured.as_ref() == address {
            return Ok(None);
        }
        let Some(server) = state.server.clone() else {
            return Err("the admin endpoint has stopped".to_string());
        };
        drop(state);
        let admin = match address {
            Some(address) => Some(
                Admin::bind(address, access.clone(), server, self.log.clone())
                    .map_err(|error| format!("{error}; the admin endpoint stays where it is"))?,
            ),
            None => None,
        };
        Ok(Some(Moved { admin, configured: address.cloned(), token_file: token_file(access) }))
    }

    /// Starts the endpoint `moved` bound, then stops the old one (which finishes the
    /// answers it is writing), and logs the move.
    pub fn replace(&self, moved: Moved) {
        let mut state = self.lock();
        let old = state.serving.take();
        let from = old.as_ref().map(|(_, address)| address.to_string());
        let to = moved.admin.as_ref().map(|admin| admin.local_addr().to_string());
        state.configured = moved.configured;
        state.token_file = moved.token_file;
        match (moved.admin, state.started) {
            (Some(admin), true) => self.run(&mut state, admin),
            (admin, false) => state.waiting = admin,
            (None, true) => {}
        }
        if state.started {
            self.write_runtime_file(&state);
        }
        if let Some((stop, _)) = old {
            stop.stop();
        }
        drop(state);
        let none = || "none".to_string();
        self.log.info(
            "admin endpoint moved",
            &[("from", &from.unwrap_or_else(none)), ("to", &to.unwrap_or_else(none))],
        );
    }

    /// Stops the endpoint that serves now and joins its thread and those of the endpoints a
    /// reload replaced; drops the server's handle, which a reload's closure holds too.
    pub fn stop_and_join(&self) {
        let mut state = self.lock();
        if let Some((stop, _)) = state.serving.take() {
            stop.stop();
        }
        state.waiting = None;
        state.server = None;
        if let Some(path) = &self.runtime_file {
            let _ = fs::remove_file(path);
        }
        let threads = std::mem::take(&mut state.threads);
        drop(state);
        for thread in threads {
            if thread.join().is_err() {
                self.log.error("the admin thread panicked (a bug in tcprelay)", &[]);
            }
        }
    }

    /// Writes where the endpoint listens now to the runtime file, or removes the file when
    /// there is no endpoint. A failure is logged: the client then falls back on the config
    /// file's `admin` line, which is right until that line is edited.
    fn write_runtime_file(&self, state: &State) {
        let Some(path) = &self.runtime_file else { return };
        let Some((_, address)) = &state.serving else {
            let _ = fs::remove_file(path);
            return;
        };
        let mut text = format!("admin {address}\n");
        if let Some(token_file) = &state.token_file {
            text.push_str(&format!("admin-token-file {}\n", token_file.display()));
        }
        if let Err(error) = replace_file(path, &text) {
            let shown = path.display();
            self.log.warn(
                "cannot write the admin runtime file",
                &[("file", &shown), ("error", &error)],
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change of `State` is a field store or a push: a panic cannot leave it
        // half-done, so a poisoned lock is still good.
        lock(&self.state)
    }
}

fn token_file(access: &AdminAccess) -> Option<PathBuf> {
    access.token.as_ref().map(|token| token.file().to_path_buf())
}

/// Replaces `path` whole with `text`: written to a new file beside it (`create_new`, which
/// does not follow a planted symlink, under a name nobody can guess in advance), then renamed
/// over it, so a reader never sees half a file.
fn replace_file(path: &Path, text: &str) -> io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.{nanos}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Writable by its owner only, whatever the umask: the client trusts nothing else.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    let written = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}
