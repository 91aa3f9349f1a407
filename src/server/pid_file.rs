//! `--pid-file PATH`: the process id, written once every route listens, removed on a clean
//! exit, for init systems that track a daemon by its pid file (procd, BusyBox, OpenRC).
//!
//! A relay that is killed (SIGKILL, or SIGTERM, which std cannot catch) leaves its file
//! behind. So a pid file is only respected while it names a live tcprelay: a process whose
//! `/proc/PID/comm` or first command-line word says `tcprelay`. A file that names nobody,
//! another program, or this very process (a container restarted as PID 1 again) is stale
//! and replaced. Where `/proc` does not exist, every file is taken as stale.
//!
//! A pid file often lives in a directory other users can write to (`/tmp`, a shared
//! `/var/run`). So it is trusted only when root or the relay's own user owns it: a file
//! another user planted, naming a process that calls itself tcprelay, is stale (a root relay
//! does not refuse to start because `nobody` said so). It is read without following a swap
//! into a FIFO, and written through a temporary file created exclusively under a name nobody
//! can predict, never through a link someone planted (docs/reliability.md).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::untrusted_paths::{self, open_regular_file, unpredictable_name};

/// The largest pid file read: a number and a newline.
const MAX_PID_FILE_BYTES: u64 = 64;

/// The written pid file; dropping it removes the file if it still holds this process's id.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

/// Refuses to start when `path` names a live tcprelay other than this process, in a file
/// that root or the relay's own user owns.
///
/// # Errors
/// A message naming the file and the process.
pub(crate) fn check(path: &Path) -> Result<(), String> {
    let Some(pid) = read_trusted_pid(path) else { return Ok(()) };
    if pid != std::process::id() && untrusted_paths::is_tcprelay(pid) {
        return Err(format!(
            "pid-file {} names process {pid}, a tcprelay that is still running; stop it first \
             (tcprelay drain), or give this one another pid-file",
            path.display()
        ));
    }
    Ok(())
}

impl PidFile {
    /// Writes this process's id to `path`, replacing it whole (written beside it, then
    /// renamed, so a reader never sees half a file).
    ///
    /// The file beside it is `PATH.UNPREDICTABLE.tmp`, created with `create_new` (`O_EXCL`:
    /// it fails on anything already there, a planted symbolic link included, instead of
    /// writing through it). `rename` then replaces whatever is at `path` itself, a link too,
    /// and never follows it.
    ///
    /// # Errors
    /// The OS error, naming the file.
    pub(crate) fn write(path: &Path) -> Result<PidFile, String> {
        let pid = std::process::id();
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", unpredictable_name()));
        let temporary = PathBuf::from(temporary);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .and_then(|mut file| {
                let written = file.write_all(format!("{pid}\n").as_bytes());
                if written.is_err() {
                    let _ = fs::remove_file(&temporary);
                }
                written
            })
            .and_then(|()| fs::rename(&temporary, path));
        if let Err(error) = written {
            return Err(format!("cannot write pid-file {}: {error}", path.display()));
        }
        Ok(PidFile { path: path.to_path_buf() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Another instance may have taken the path over since: leave its file alone.
        if read_trusted_pid(&self.path) == Some(std::process::id()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The number in a pid file, if it holds one and root or the relay's own user owns it (where
/// `/proc` cannot tell the relay's user, any owner is trusted).
fn read_trusted_pid(path: &Path) -> Option<u32> {
    let (file, metadata) = open_regular_file(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let owner = metadata.uid();
        let relay_uid = crate::untrusted_paths::effective_uid();
        if relay_uid.is_some_and(|relay| owner != 0 && owner != relay) {
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let mut text = String::new();
    file.take(MAX_PID_FILE_BYTES).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
