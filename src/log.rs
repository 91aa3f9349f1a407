//! A tiny logger: one `key=value` line per event on stderr (the "logfmt" style).
//!
//! ```text
//! ts=2026-11-25T08:00:00.123Z level=info msg="connection closed" conn=7 client=127.0.0.1:50412 ...
//! ```
//!
//! Each line is formatted into one `String` first and handed to stderr in a single
//! `write_all` under the stderr lock, so lines from different threads never interleave and
//! a busy relay pays one system call per line. Lines below the configured level cost one
//! comparison: callers check [`Log::enabled`] (or use the level helpers, which do).

use std::fmt::{self, Display, Write as _};
use std::io::Write as _;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

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
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            _ => Err(format!("invalid log level \"{text}\": expected error, warn, info or debug")),
        }
    }
}

impl Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fields of one log line, in order: `(key, value)`.
pub type Fields<'a> = &'a [(&'a str, &'a dyn Display)];

/// Writes log lines at or above a level to stderr.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    level: LogLevel,
}

impl Log {
    /// A logger that writes lines at `level` and more severe.
    pub fn new(level: LogLevel) -> Log {
        Log { level }
    }

    /// Whether a line at `level` would be written.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// Writes one line, if `level` is enabled.
    pub fn event(&self, level: LogLevel, msg: &str, fields: Fields<'_>) {
        if !self.enabled(level) {
            return;
        }
        let line = format_line(SystemTime::now(), level, msg, fields);
        // Nothing sensible can be done if stderr is gone; the relay keeps relaying.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// Writes one line at level `info` whatever the configured level. Only for the
    /// `listening on ADDR` line, which scripts and tests read to learn the port.
    pub fn always(&self, msg: &str, fields: Fields<'_>) {
        Log::new(LogLevel::Debug).event(LogLevel::Info, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Error`].
    pub fn error(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Error, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Warn`].
    pub fn warn(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Warn, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Info`].
    pub fn info(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Info, msg, fields);
    }

    /// [`Log::event`] at [`LogLevel::Debug`].
    pub fn debug(&self, msg: &str, fields: Fields<'_>) {
        self.event(LogLevel::Debug, msg, fields);
    }
}

/// Formats one complete line, newline included.
fn format_line(now: SystemTime, level: LogLevel, msg: &str, fields: Fields<'_>) -> String {
    let mut line = String::with_capacity(160);
    let _ = write!(line, "ts={} level={} msg=", Rfc3339(now), level);
    push_value(&mut line, msg);
    let mut value = String::new();
    for (key, field) in fields {
        value.clear();
        let _ = write!(value, "{field}");
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_value(&mut line, &value);
    }
    line.push('\n');
    line
}

/// Appends a value, quoted if it is empty or holds a space, quote, `=` or control character.
fn push_value(line: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value.chars().any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// A UTC time shown as RFC 3339 with milliseconds, e.g. `2026-11-25T08:00:00.123Z`.
struct Rfc3339(SystemTime);

impl Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let secs_of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            since_epoch.subsec_millis()
        )
    }
}

/// Converts days since 1970-01-01 to a (year, month, day) date in the proleptic Gregorian
/// calendar. This is Howard Hinnant's `civil_from_days` algorithm
/// (<https://howardhinnant.github.io/date_algorithms.html>): std has no calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at =
            |secs, millis| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        assert_eq!(Rfc3339(at(0, 0)).to_string(), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day) 12:34:56.789
        assert_eq!(Rfc3339(at(951_827_696, 789)).to_string(), "2000-02-29T12:34:56.789Z");
        // 2026-11-25T07:59:14Z, the day this was written
        assert_eq!(Rfc3339(at(1_795_593_554, 5)).to_string(), "2026-11-25T07:59:14.005Z");
    }

    #[test]
    fn lines_are_logfmt() {
        let line = format_line(
            UNIX_EPOCH,
            LogLevel::Info,
            "connection closed",
            &[("conn", &7), ("reason", &"client_eof"), ("error", &"broken \"pipe\"")],
        );
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z level=info msg=\"connection closed\" conn=7 \
             reason=client_eof error=\"broken \\\"pipe\\\"\"\n"
        );
    }

    #[test]
    fn levels_filter() {
        let log = Log::new(LogLevel::Warn);
        assert!(log.enabled(LogLevel::Error) && log.enabled(LogLevel::Warn));
        assert!(!log.enabled(LogLevel::Info) && !log.enabled(LogLevel::Debug));
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("\"loud\""));
    }
}
