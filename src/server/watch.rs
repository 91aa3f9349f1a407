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

use crate::untrusted_paths::open_regular_file;
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
    // between the two; and never waiting, in case a FIFO was put there, which would hang
    // this thread and with it the relay's exit.
    let (file, metadata) = open_regular_file(&target).ok()?;
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tcprelay-watch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a scratch directory");
        dir
    }

    #[test]
    fn a_change_that_keeps_time_and_length_is_seen_by_its_content() {
        let dir = scratch("content");
        let file = dir.join("relay.conf");
        fs::write(&file, "drain-timeout 5s\n").expect("write");
        let kept_time = fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");
        let before = fingerprint(&file).expect("a fingerprint");
        fs::write(&file, "drain-timeout 6s\n").expect("rewrite, same length");
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(kept_time))
            .expect("put the old time back");
        let after = fingerprint(&file).expect("a fingerprint");
        assert_eq!((before.len, before.modified), (after.len, after.modified));
        assert_ne!(before, after);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_in_place_of_the_file_is_none_at_once() {
        let dir = scratch("fifo");
        let fifo = dir.join("relay.conf");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        let (done, looked) = std::sync::mpsc::channel();
        let watcher = {
            let fifo = fifo.clone();
            std::thread::spawn(move || done.send(fingerprint(&fifo)).expect("send"))
        };
        let seen = looked.recv_timeout(Duration::from_secs(10));
        if seen.is_err() {
            // Waiting in open for a writer, as the watch thread did (and the relay's exit
            // with it): give it one so that it can be joined.
            let _ = fs::OpenOptions::new().write(true).open(&fifo);
        }
        watcher.join().expect("the fingerprint thread panicked");
        assert_eq!(seen, Ok(None), "a FIFO hung the watcher or was taken for a config file");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_swapped_to_an_identical_copy_is_a_change_and_a_missing_file_is_none() {
        let dir = scratch("swap");
        for generation in ["..one", "..two"] {
            fs::create_dir(dir.join(generation)).expect("create a generation");
            fs::write(dir.join(generation).join("relay.conf"), "x\n").expect("write");
        }
        std::os::unix::fs::symlink("..one", dir.join("..data")).expect("link ..data");
        std::os::unix::fs::symlink("..data/relay.conf", dir.join("relay.conf")).expect("link");
        let file = dir.join("relay.conf");
        let before = fingerprint(&file).expect("a fingerprint through the links");
        std::os::unix::fs::symlink("..two", dir.join("..data_tmp")).expect("stage");
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        let after = fingerprint(&file).expect("a fingerprint through the links");
        assert_eq!(before.content, after.content);
        assert_ne!(before, after, "the swap was not seen");
        fs::remove_dir_all(dir.join("..two")).expect("remove the target");
        assert_eq!(fingerprint(&file), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
