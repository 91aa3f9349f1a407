//! Paths another local user may change under the relay: a config file, a token file, a pid
//! file, a socket file, in a directory that user can write to.
//!
//! Such a user can swap a path between two of the relay's system calls. So nothing here
//! checks a path and then acts on it: a file is opened first and what was opened is checked
//! (`File::metadata` is `fstat`), and a file the relay creates gets a name nobody can guess
//! and is created exclusively (`O_EXCL` never follows a planted symbolic link).
//! docs/reliability.md ("A local user who can write to a directory the relay uses") names
//! the tests that race such a user.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;

/// Opens `path` for reading and checks that what was opened is a regular file.
///
/// Opened with `O_NONBLOCK` where the target's value of that flag is known: a FIFO swapped in
/// for the file then opens at once instead of waiting for ever for a writer, and is refused
/// by the check that follows. On a regular file the flag changes nothing. Symbolic links are
/// followed (a Kubernetes Secret volume reaches each file through two of them): the checks
/// are made on the file reached, whatever the path went through.
///
/// # Errors
/// The OS error of `open`, or `InvalidInput` saying what was found instead ("expected a
/// regular file, found a FIFO"). Neither names the path: callers add it.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        let message = format!("expected a regular file, found {}", file_kind(&metadata));
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    Ok((file, metadata))
}

/// `O_NONBLOCK` on this target (std has no constant for it, and the value differs: Linux
/// on mips and sparc, the BSDs and macOS, Solaris). Where it is not known here, 0: the open
/// of a swapped-in FIFO could then block, as before.
#[cfg(unix)]
pub(crate) const O_NONBLOCK: i32 = if cfg!(any(target_os = "linux", target_os = "android")) {
    if cfg!(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6"
    )) {
        0o200
    } else if cfg!(any(target_arch = "sparc", target_arch = "sparc64")) {
        0x4000
    } else {
        0o4000
    }
} else if cfg!(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    0x4
} else if cfg!(any(target_os = "solaris", target_os = "illumos")) {
    0x80
} else {
    0
};

/// What a file that is not a regular one is, for messages: "a FIFO", "a directory"...
pub(crate) fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() { "a directory" } else { "something that is not a regular file" }
}

/// Sixteen hex digits nobody can predict, for the name of a file or directory the relay
/// creates beside a path others can write to. Std's `RandomState` is seeded from the OS's
/// random source; the clock and the process id are mixed in as well.
pub(crate) fn unpredictable_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    format!("{:016x}", hasher.finish())
}

/// The relay's effective user id, from `/proc/self/status` (std has no `geteuid`); `None`
/// where there is no `/proc` (then the callers say what they check instead).
#[cfg(unix)]
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // "Uid:\treal\teffective\tsaved\tfilesystem"
    let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` is a tcprelay, by `/proc` (Linux): what a pid file names is only
/// believed while it is one (a stale or planted file names some other process, or none). Without /proc (Windows, macOS,
/// the BSDs) never: every pid file is stale there, said rather than left to a failed read
/// (under wine the path would name the Linux host's processes).
pub(crate) fn is_tcprelay(pid: u32) -> bool {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return false;
    }
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc.join("comm")).unwrap_or_default();
    let argv0 = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let argv0 = argv0.split(|&b| b == 0).next().unwrap_or_default();
    let program = Path::new(std::str::from_utf8(argv0).unwrap_or_default()).file_name();
    let named = |name: &str| name.starts_with("tcprelay");
    named(comm.trim()) || program.and_then(|p| p.to_str()).is_some_and(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_opened_without_blocking_and_refused() {
        let dir = std::env::temp_dir().join(format!("tcprelay-untrusted-{}", unpredictable_name()));
        std::fs::create_dir(&dir).expect("the test makes its directory");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|status| status.success()) {
            // With no writer, a blocking open would never return: this one must.
            let error = open_regular_file(&fifo).expect_err("a FIFO is refused");
            assert_eq!(error.to_string(), "expected a regular file, found a FIFO");
        }
        let regular = dir.join("regular");
        std::fs::write(&regular, b"text").expect("the test writes a file");
        assert!(open_regular_file(&regular).is_ok());
        let error = open_regular_file(&dir).expect_err("a directory is refused");
        // Windows refuses to open a directory as a file at all ("Access denied").
        if cfg!(unix) {
            assert_eq!(error.to_string(), "expected a regular file, found a directory");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_differ_and_the_effective_uid_is_our_files_owner() {
        assert_ne!(unpredictable_name(), unpredictable_name());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata("/proc/self").expect("/proc/self exists").uid();
            assert_eq!(effective_uid(), Some(owner));
        }
    }
}
