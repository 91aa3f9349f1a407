//! `watch-config DUR`: looks at the config file every DUR and reloads when it changed, for
//! a file that is replaced under the relay rather than edited by someone who then runs
//! `tcprelay reload` (a Kubernetes ConfigMap, a file pushed by configuration management).
//!
//! A ConfigMap volume shows the file as `relay.conf -> ..data/relay.conf`, with `..data` a
//! symlink to a timestamped directory that the kubelet swaps atomically on every update;
//! the old directory then goes. So a change is told by the file's *fingerprint*: the path
//! the symlinks resolve to, its modification time and length, and a hash of its content
//! (the kubelet may keep the time; an editor may keep the length). Polling, because std has
//! no file notification; a poll is one `stat`, one `realpath` and one read of a small file.
//!
//! A change is reloaded exactly as `tcprelay reload` would be, with the same refusals (the
//! reload logs its outcome). A refused file is not tried again until it changes again. A
//! file that cannot be read at a tick (mid-swap) is looked at again at the next one.

use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use crate::ops::log::Log;
use crate::server::handle::ServerHandle;
use crate::settings::file::MAX_FILE_SIZE;

/// What tells one version of the config file from another.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    /// The file the path resolves to through every symlink.
    target: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    content: u64,
}

/// The fingerprint of the file at `path`, or `None` if it cannot be read now.
fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let target = fs::canonicalize(path).ok()?;
    // Opened first, then its metadata read from what was opened: the path may change
    // between the two.
    let file = fs::File::open(&target).ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    let mut content = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut content).ok()?;
    let mut hasher = DefaultHasher::new();
    hasher.write(&content);
    Some(Fingerprint {
        target,
        modified: metadata.modified().ok(),
        len: metadata.len(),
        content: hasher.finish(),
    })
}

/// Looks at `path` every `every` and reloads `server` when it changed, until `stop` is
/// dropped or sent to (the server has stopped).
pub(crate) fn watch(
    path: &Path,
    every: Duration,
    server: &ServerHandle,
    log: &Log,
    stop: &Receiver<()>,
) {
    let mut last = fingerprint(path);
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(now) = fingerprint(path) else { continue };
        if last.as_ref() == Some(&now) {
            continue;
        }
        last = Some(now);
        log.info("config file changed", &[("file", &path.display())]);
        // The reload logs what it did or why it was refused.
        let _ = server.reload();
    }
}
