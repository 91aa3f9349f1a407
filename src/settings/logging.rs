//! The log's settings: how much to log (`log-level`), in which shape (`log-format`) and
//! where to (`log-file`, `syslog`). Plain values; `ops/log.rs` and `ops/log_output.rs`
//! open the sinks and write the lines.

use std::fmt::{self, Display};
use std::path::PathBuf;
use std::str::FromStr;

use crate::settings::Error;

/// How much to log. Each level includes the ones above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only failures of the relay itself (e.g. the listener failed).
    Error,
    /// Also problems with one connection or one upstream (e.g. connect failures).
    Warn,
    /// Also one line per finished connection, and start-up. The default.
    Info,
    /// Also one line per accepted connection and per dialled upstream.
    Debug,
}

impl LogLevel {
    fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl FromStr for LogLevel {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            _ => Err(Error::value(format!(
                "invalid log level \"{text}\": expected error, warn, info or debug"
            ))),
        }
    }
}

impl Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape of each line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` pairs, the default: easy to read and to `grep`.
    #[default]
    Logfmt,
    /// One JSON object per line, for log collectors that parse JSON (Loki, Elasticsearch).
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<LogFormat, Error> {
        match text {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(Error::value(format!("expected logfmt or json, found {text:?}"))),
        }
    }
}

impl Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        })
    }
}

/// Where `--syslog` sends the lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddress {
    /// A local daemon's Unix datagram socket, e.g. `/dev/log`.
    Unix(PathBuf),
    /// A daemon's UDP port: `HOST:PORT`, resolved once, at start.
    Udp(String),
}

impl FromStr for SyslogAddress {
    type Err = Error;

    fn from_str(text: &str) -> Result<SyslogAddress, Error> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                let expected = "expected unix:PATH or HOST:PORT";
                return Err(Error::value(format!("{expected}, found {text:?}")));
            }
            return Ok(SyslogAddress::Unix(path.into()));
        }
        // Docker's `syslog-address` is `udp://HOST:PORT` or `unixgram:///dev/log`; a scheme
        // would pass for part of a host name and fail only at start, as an unknown host.
        if let Some((scheme, rest)) = text.split_once(':') {
            let address = rest.trim_start_matches("//").trim_end_matches('/');
            let is_scheme = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic());
            if is_scheme && (rest.starts_with("//") || address.contains(':')) {
                let instead = if address.starts_with('/') {
                    format!("unix:{address} for a local syslogd")
                } else {
                    format!("HOST:PORT for UDP, here {address}")
                };
                return Err(Error::value(format!(
                    "a syslog address has no scheme ({scheme}:) in {text:?}; write {instead}"
                )));
            }
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(SyslogAddress::Udp(text.to_string()))
            }
            _ => Err(Error::value(format!(
                "expected unix:PATH (a local syslogd, usually unix:/dev/log) or HOST:PORT \
                 (syslog over UDP, usually port 514), found {text:?}"
            ))),
        }
    }
}

impl Display for SyslogAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            SyslogAddress::Udp(host_port) => f.write_str(host_port),
        }
    }
}

/// Where the log goes: stderr unless a file or syslog is named, and in which format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOutput {
    /// The format of every line, wherever it goes.
    pub format: LogFormat,
    /// Append the lines to this file instead of stderr.
    pub file: Option<PathBuf>,
    /// Send the lines to this syslog daemon instead of stderr.
    pub syslog: Option<SyslogAddress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_addresses_are_unix_paths_or_host_and_port() {
        assert_eq!("unix:/dev/log".parse(), Ok(SyslogAddress::Unix("/dev/log".into())));
        assert_eq!("127.0.0.1:514".parse(), Ok(SyslogAddress::Udp("127.0.0.1:514".into())));
        assert_eq!("[::1]:514".parse(), Ok(SyslogAddress::Udp("[::1]:514".into())));
        for wrong in ["unix:", "/dev/log", "loghost", "loghost:0", ":514", "loghost:syslog"] {
            let error = wrong.parse::<SyslogAddress>().unwrap_err();
            assert!(error.to_string().contains(&format!("{wrong:?}")), "{error}");
        }
        let schemes = [
            ("udp://127.0.0.1:514", "write HOST:PORT for UDP, here 127.0.0.1:514"),
            ("udp:loghost:514", "write HOST:PORT for UDP, here loghost:514"),
            ("tcp://[::1]:514/", "no scheme (tcp:)"),
            ("unixgram:///dev/log", "write unix:/dev/log for a local syslogd"),
        ];
        for (wrong, expected) in schemes {
            let error = wrong.parse::<SyslogAddress>().unwrap_err().to_string();
            assert!(error.contains(expected) && error.contains(&format!("{wrong:?}")), "{error}");
        }
        assert_eq!("loghost:514".parse(), Ok(SyslogAddress::Udp("loghost:514".into())));
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(LogFormat::default().to_string(), "logfmt");
        let error = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(error.to_string().contains("\"yaml\""), "{error}");
    }
}
