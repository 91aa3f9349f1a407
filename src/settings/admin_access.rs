//! Who may use the admin endpoint, as configured: its bearer token (`admin-token-file`) and
//! its Unix socket's mode (`admin-socket-mode`). The endpoint itself, which asks
//! [`AdminToken::accepts`] of every request, is `ops/admin.rs`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::settings::Error;
use crate::untrusted_paths::open_regular_file;

/// The mode a Unix admin socket is created with by default: only the relay's own user (and
/// root) may connect. `--admin-socket-mode` changes it, e.g. to `0660` for a group.
pub const DEFAULT_ADMIN_SOCKET_MODE: u32 = 0o600;

/// The largest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The shortest token accepted: 16 visible characters. `openssl rand -hex 32` gives 64.
const MIN_TOKEN_LEN: usize = 16;

/// Who may use the admin endpoint, beyond who can reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAccess {
    /// When set, every request but `GET /healthz` needs `Authorization: Bearer TOKEN`
    /// (`--admin-token-file`). Default: none.
    pub token: Option<AdminToken>,
    /// The mode of the socket file when the endpoint is a Unix socket
    /// (`--admin-socket-mode`). Default `0600`: only the relay's own user may connect.
    pub socket_mode: u32,
}

impl Default for AdminAccess {
    fn default() -> AdminAccess {
        AdminAccess { token: None, socket_mode: DEFAULT_ADMIN_SOCKET_MODE }
    }
}

/// The admin endpoint's bearer token, read from a file. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    file: PathBuf,
    secret: Vec<u8>,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken").field("file", &self.file).finish_non_exhaustive()
    }
}

/// OpenSSH's `StrictModes` for a token file (see [`AdminToken::read`]): refuses a file other
/// users can read, one anyone but its owner can write, and one owned by anyone but root or
/// the relay's effective user (where `/proc` tells it; elsewhere the owner is not checked).
#[cfg(unix)]
fn check_token_file_access(file: &Path, metadata: &std::fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let shown = file.display();
    let mode = metadata.mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(Error::value(format!(
            "{shown} is readable by every user (mode {mode:04o}); a token must be secret: \
             chmod o-r {shown}"
        )));
    }
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 { "every user" } else { "its group" };
        return Err(Error::value(format!(
            "{shown} is writable by {who} (mode {mode:04o}); whoever can write the token \
             can set it: chmod go-w {shown}"
        )));
    }
    let owner = metadata.uid();
    match crate::untrusted_paths::effective_uid() {
        Some(relay) if owner != 0 && owner != relay => Err(Error::value(format!(
            "{shown} is owned by uid {owner}, who could change the token; it must be owned \
             by root or by the relay's user (uid {relay})"
        ))),
        _ => Ok(()),
    }
}

impl AdminToken {
    /// Reads the token from `file`: its content with surrounding white space trimmed.
    ///
    /// The file is read once, at start-up (and by `--check`), and must be a regular file of
    /// at most 4 KiB. On Unix, the rules of OpenSSH's `StrictModes`: no other user may read
    /// it (no `o+r`: a token every local user can read guards nothing), nobody but its owner
    /// may write it (no `g+w`, `o+w`: whoever can write the token can set it), and its owner
    /// is root or the relay's own user. Group-readable is allowed (`0640 root:monitoring`),
    /// so a monitoring group can share it. Symbolic links are followed and the file reached
    /// is checked, as a Kubernetes Secret volume needs (`token -> ..data/token`). The file is
    /// opened first and the opened file checked, so the path cannot be swapped in between.
    /// The token must be at least 16 visible ASCII characters, no spaces.
    ///
    /// # Errors
    /// A message naming the file and what is wrong with it.
    pub fn read(file: &Path) -> Result<AdminToken, Error> {
        let shown = file.display();
        let (opened, metadata) = open_regular_file(file)
            .map_err(|error| Error::value(format!("cannot read {shown}: {error}")))?;
        #[cfg(unix)]
        check_token_file_access(file, &metadata)?;
        #[cfg(not(unix))]
        let _ = metadata;
        let mut text = String::new();
        opened
            .take(MAX_TOKEN_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|error| Error::value(format!("cannot read {shown}: {error}")))?;
        if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return Err(Error::value(format!(
                "{shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes"
            )));
        }
        AdminToken::new(file, text.trim())
            .map_err(|error| Error::value(format!("{shown}: {error}")))
    }

    /// A token with this secret, as if read from `file`.
    ///
    /// # Errors
    /// A message when the secret is empty, shorter than 16 characters, or holds anything
    /// but visible ASCII (an HTTP header could not carry it).
    pub fn new(file: &Path, secret: &str) -> Result<AdminToken, Error> {
        if secret.is_empty() {
            return Err(Error::value("the token is empty"));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            let visible = "the token may hold only visible ASCII characters, no spaces";
            return Err(Error::value(visible));
        }
        if secret.len() < MIN_TOKEN_LEN {
            return Err(Error::value(format!(
                "the token is {} characters; use at least {MIN_TOKEN_LEN} \
                 (e.g. openssl rand -hex 32)",
                secret.len()
            )));
        }
        Ok(AdminToken { file: file.to_path_buf(), secret: secret.as_bytes().to_vec() })
    }

    /// The `Authorization` header value that carries this token: what the admin client
    /// (`tcprelay reload|drain|status`) sends.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(&self.secret))
    }

    /// Where the file's permissions cannot be checked, the start-up warning that says so.
    /// That is everywhere but Unix: on Windows std shows only the read-only attribute, not
    /// who may read the file (its ACL), so a token file every user can read is accepted.
    pub(crate) fn unchecked_warning(&self) -> Option<String> {
        if cfg!(unix) {
            return None;
        }
        Some(format!(
            "cannot check who may read the admin token file {} on this platform: make sure \
             only the relay's own user can (Windows: icacls FILE /inheritance:r /grant:r \
             USER:R; docs/operations.md, \"Admin security\")",
            self.file.display()
        ))
    }

    /// The file the token was read from (`--check` prints it; never the token).
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Whether an `Authorization` header value is `Bearer` and this token. The comparison
    /// takes the same time wherever the first difference is, so response times do not
    /// reveal how much of a guess was right.
    pub(crate) fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, credentials)) = authorization.and_then(|value| value.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && constant_time_eq(credentials.trim_start_matches(' ').as_bytes(), &self.secret)
    }
}

/// Compares two byte strings in time that depends only on `expected`'s length: every byte
/// is looked at, and differences are collected with `|` instead of returning at the first.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, &want) in expected.iter().enumerate() {
        difference |= want ^ given.get(i).copied().unwrap_or(!want);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        // A missing byte is compared against a value it can never equal.
        assert!(!constant_time_eq(b"ab", b"ab\x00"));
    }

    #[test]
    fn tokens_that_guard_nothing_are_refused() {
        let file = Path::new("/etc/t");
        for (secret, expected) in [
            ("", "empty"),
            ("short", "at least 16"),
            ("has a space in it, long enough", "visible ASCII"),
            ("tab\tinside-long-enough", "visible ASCII"),
            ("ünïcode-long-enough-token", "visible ASCII"),
        ] {
            let error = AdminToken::new(file, secret).unwrap_err();
            assert!(error.to_string().contains(expected), "{secret:?}: {error}");
        }
        let token = AdminToken::new(file, "0123456789abcdef").unwrap();
        assert!(!format!("{token:?}").contains("0123"), "Debug hides the secret");
    }
}
