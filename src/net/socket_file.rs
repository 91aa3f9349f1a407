//! Creating a Unix socket file at a path in a directory other users may write to, with the
//! mode, owner and group asked for, without ever changing a file by a path they can swap.
//!
//! `bind` then `chmod(path)` and `chown(path)` follow whatever is at the path by then: a
//! user who can write to the directory swaps the fresh socket for a symbolic link, and
//! root's `chown` hands any file to that user (434 of 500 starts, issue 22). `fchmod` on
//! the socket's descriptor does not help: on Linux it changes the socket's own inode, not
//! the file. So the socket is bound in a fresh private directory created next to the path
//! (0700, the relay's, on the same file system), given its mode and owner there, where no
//! one else can reach it, and renamed into place. `rename` replaces the directory entry and
//! never follows a link at `path`.
//!
//! Another user can still rename the private directory itself (it sits in their directory)
//! and put one of theirs with a link inside under its name. So on Linux the directory is
//! opened once and reached through `/proc/self/fd/N`, which names the directory the relay
//! created whatever its name becomes; and the directory opened is checked to be the relay's
//! own, 0700, before anything is bound in it. Without `/proc`, the directory is reached by
//! its name, which nobody can predict: a racer must read the directory and win a rename
//! within microseconds (docs/reliability.md).

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::untrusted_paths::{effective_uid, unpredictable_name};

/// Binds a Unix listener whose socket file appears at `path` with `mode`, and `owner` and
/// `group` where given, from its first instant. A file already at `path` is replaced only
/// when it is a socket nobody listens on (see
/// [`Listener::bind`](crate::net::stream::Listener::bind)).
///
/// # Errors
/// `AlreadyExists` or `AddrInUse` naming `path` when something else is there; the OS error
/// of each step, naming the path and the mode or owner it was setting.
pub(crate) fn bind_in_place(
    path: &Path,
    mode: u32,
    owner: Option<u32>,
    group: Option<u32>,
) -> io::Result<UnixListener> {
    refuse_unless_replaceable(path)?;
    let staging = Staging::create_beside(path)?;
    let staged = staging.socket_path();
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot set mode {mode:04o} on {}: {error}", path.display()),
        )
    })?;
    if owner.is_some() || group.is_some() {
        std::os::unix::fs::chown(&staged, owner, group).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot give {} to uid {owner:?} gid {group:?}: {error}", path.display()),
            )
        })?;
    }
    std::fs::rename(&staged, path).map_err(|error| {
        io::Error::new(error.kind(), format!("cannot move a socket to {}: {error}", path.display()))
    })?;
    Ok(listener)
}

/// Fails unless `path` is free or holds a stale socket: a socket that nobody listens on (a
/// connect to it is refused). A socket that answers, and anything that is not a socket (a
/// regular file, a directory, a symbolic link), is left alone: one typo in a path must never
/// delete data.
fn refuse_unless_replaceable(path: &Path) -> io::Result<()> {
    // `symlink_metadata`: a symbolic link is judged itself, never what it points to.
    let file_type = match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        found => found?.file_type(),
    };
    if !file_type.is_socket() {
        let what = if file_type.is_file() {
            "a regular file"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_symlink() {
            "a symbolic link"
        } else {
            "not a socket"
        };
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is {what}; only a stale socket is ever replaced, so move it \
                 away or choose another path",
                path.display()
            ),
        ));
    }
    match UnixStream::connect(path) {
        Err(refused) if refused.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is a socket that another process listens on", path.display()),
        )),
    }
}

/// The private directory a socket is bound in before it is renamed into place; removed
/// (with the socket, if it is still there) when dropped.
struct Staging {
    /// Its name, next to the target path.
    dir: PathBuf,
    /// The directory itself, opened: on Linux it is reached through `/proc/self/fd/N`.
    opened: File,
}

impl Staging {
    /// Creates `.tcprelay.UNPREDICTABLE` (mode 0700) in the directory of `path`, opens it
    /// and checks that what was opened is the relay's own directory with that mode (not
    /// one another user swapped in after the `mkdir`).
    fn create_beside(path: &Path) -> io::Result<Staging> {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = parent.join(format!(".tcprelay.{}", unpredictable_name()));
        // `mkdir` fails on anything already there, a link included; it never follows one.
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot create a private directory {}: {error}", dir.display()),
            )
        })?;
        let staging = Staging { opened: File::open(&dir)?, dir };
        let metadata = staging.opened.metadata()?;
        let ours = effective_uid().is_none_or(|uid| metadata.uid() == uid);
        if !metadata.is_dir() || !ours || metadata.mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} was swapped for another file while tcprelay created it; another user \
                     can write to {}: give the socket a directory only tcprelay can write to",
                    staging.dir.display(),
                    parent.display()
                ),
            ));
        }
        Ok(staging)
    }

    /// Where the socket is bound: inside the opened directory, by a path no one else can
    /// redirect (`/proc/self/fd/N/socket` on Linux), else by the directory's name.
    fn socket_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        let through_proc = PathBuf::from(format!("/proc/self/fd/{}", self.opened.as_raw_fd()));
        if cfg!(any(target_os = "linux", target_os = "android")) && through_proc.is_dir() {
            through_proc.join("socket")
        } else {
            self.dir.join("socket")
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Gone already after a successful rename; after an error, it is ours to remove.
        let _ = std::fs::remove_file(self.socket_path());
        // Only an empty directory is ever removed: whatever is at the name now, nothing in
        // it is lost.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
