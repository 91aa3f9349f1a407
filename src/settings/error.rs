//! The one error of configuration and usage: a value that does not parse, a command line
//! that cannot be run, a config file that cannot be read, a whole configuration that
//! cannot run.
//!
//! Shaped like walkdir's and globset's errors: one [`Error`] that says *where* (the setting
//! or flag, the file position) around an [`ErrorKind`] that says *what*. Each layer adds
//! what it knows as the error passes up: a value parser knows only the text
//! (`expected on or off, found "yes"`), the settings table adds the setting's name, the
//! config file adds its `FILE:LINE:COLUMN`. `Display` writes them in that order:
//!
//! ```text
//! relay.conf:3:14: idle-timeout: expected a duration from 0 to 24h, found "25h"
//! ```
//!
//! At the socket edge (`Relay::bind`, `Server::bind`) it becomes an [`io::Error`] of kind
//! `InvalidInput` with the same message.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A mistake in the configuration or on the command line, naming the value at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    setting_or_flag: Option<String>,
    location: Option<Location>,
    kind: ErrorKind,
}

/// What went wrong; the [`Error`] around it says where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value that does not parse or is out of bounds: `expected ..., found "TEXT"`.
    Value(String),
    /// A command line that cannot be run: an unknown flag, a flag without its value or given
    /// twice, a missing `--listen`.
    Usage(String),
    /// A config file that cannot be read, or a line of it that does not parse.
    File(String),
    /// A whole configuration that cannot run: no route, two routes on one address, a route
    /// that forwards to itself. `route` is the route at fault (an index into the server's
    /// routes; the later one of a clashing pair), if the mistake is about one.
    Conflict {
        /// The route at fault, if any.
        route: Option<usize>,
        /// What is wrong, naming both sides of a clash.
        message: String,
    },
}

/// Where in a config file: `FILE:LINE:COLUMN`, or only `FILE` when the mistake is about the
/// whole file (it cannot be read, or has no route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number, or 0 when the mistake is about the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 when the mistake is about the whole file.
    pub column: usize,
}

impl Error {
    /// A value that does not parse or is out of bounds; `message` is `expected ..., found
    /// "TEXT"`.
    pub(crate) fn value(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Value(message.into()))
    }

    /// A command line that cannot be run.
    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage(message.into()))
    }

    /// A mistake in the whole configuration, about `route` (an index) if it is about one.
    pub(crate) fn conflict(route: Option<usize>, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict { route, message: message.into() })
    }

    /// A config file that cannot be read or parsed, at `line` and `column` (0 and 0 for the
    /// whole file).
    pub(crate) fn file(
        file: &Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Error {
        Error::new(ErrorKind::File(message.into())).at(Location {
            file: file.to_path_buf(),
            line,
            column,
        })
    }

    fn new(kind: ErrorKind) -> Error {
        Error { setting_or_flag: None, location: None, kind }
    }

    /// The same error, about the setting or flag `name` (`idle-timeout`, `--listen`).
    pub(crate) fn for_setting(mut self, name: impl Into<String>) -> Error {
        self.setting_or_flag = Some(name.into());
        self
    }

    /// The same error, at `location` in a config file.
    pub(crate) fn at(mut self, location: Location) -> Error {
        self.location = Some(location);
        self
    }

    /// The setting (`idle-timeout`) or flag as written (`-l`, `--listen`) at fault, if known.
    pub fn setting_or_flag(&self) -> Option<&str> {
        self.setting_or_flag.as_deref()
    }

    /// Where in a config file, if the error came from one.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(name) = &self.setting_or_flag {
            write!(f, "{name}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Value(message)
            | ErrorKind::Usage(message)
            | ErrorKind::File(message)
            | ErrorKind::Conflict { message, .. } => f.write_str(message),
        }
    }
}

/// `FILE:LINE:COLUMN`, the form editors and terminals turn into a link; `FILE` alone for
/// the whole file.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A path is shown as it is, but a control character in it could rewrite the
        // terminal, so those are escaped.
        let file: String = self
            .file
            .display()
            .to_string()
            .chars()
            .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
            .collect();
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}:{}", self.line, self.column)
        }
    }
}

impl std::error::Error for Error {}

/// For `Relay::bind` and `Server::bind`, which speak `io::Error`: a configuration that cannot
/// run is `InvalidInput`, with the same message.
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_location_then_setting_then_message() {
        let error = Error::value(r#"expected on or off, found "yes""#)
            .for_setting("explain")
            .at(Location { file: "relay.conf".into(), line: 3, column: 14 });
        assert_eq!(
            error.to_string(),
            r#"relay.conf:3:14: explain: expected on or off, found "yes""#
        );
        let whole = Error::file(Path::new("relay.conf"), 0, 0, "expected a route, found none");
        assert_eq!(whole.to_string(), "relay.conf: expected a route, found none");
    }

    #[test]
    fn becomes_an_invalid_input_io_error_with_the_same_message() {
        let error = Error::conflict(Some(1), "route b and route a both listen on :1");
        let io_error = io::Error::from(error.clone());
        assert_eq!(io_error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(io_error.to_string(), error.to_string());
    }
}
