//! The config file: global settings, then one `route` line per listener.
//!
//! The format is line-based like rinetd's, so a file reads at a glance; docs/operations.md
//! is the full reference. In short:
//!
//! ```text
//! # Global settings come first: defaults for every route, and process settings.
//! connect-timeout 5s
//! idle-timeout    5m
//! admin           127.0.0.1:9090
//!
//! # route LISTEN -> UPSTREAM... [key=value...]; indented lines continue the route above.
//! route 127.0.0.1:8080 -> app1:80 app2:80
//!     name=web policy=round-robin proxy-protocol=v2
//!     allow=10.0.0.0/8 deny=10.0.0.5 idle-timeout=1m
//! ```
//!
//! This module checks everything it can check alone (keys, durations, numbers, CIDR blocks,
//! PROXY protocol versions, duplicates) and reports the file, line and column of the first
//! mistake. Addresses stay text, with their position, because resolving and validating them
//! is the address parser's job; [`FileConfig::error_at`] lets that parser report its own
//! errors at the right place.
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//! use tcprelay::config_file::parse;
//!
//! let text = "idle-timeout 5m\nroute 127.0.0.1:8080 -> app:80 idle-timeout=1m\n";
//! let config = parse(text, Path::new("relay.conf")).unwrap();
//! assert_eq!(config.routes[0].upstreams[0].text, "app:80");
//! assert_eq!(config.routes[0].options.idle_timeout, Some(Duration::from_secs(60)));
//!
//! let error = parse("idle-timeout 5x\n", Path::new("relay.conf")).unwrap_err();
//! assert_eq!(error.to_string(),
//!            r#"relay.conf:1:14: expected a duration such as 250ms, 5s, 2m, 1h or 0, found "5x""#);
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::access::{AccessRules, Cidr};
use crate::net::proxy_protocol::ProxyVersion;
use crate::units::{format_duration, parse_duration};

/// A parsed config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The file it was read from, for error messages.
    pub file: PathBuf,
    /// The settings before the first route.
    pub globals: Globals,
    /// The routes, in file order, with the global defaults already applied.
    pub routes: Vec<RouteSpec>,
}

/// The global settings. `None` means the file does not set it: use the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Globals {
    /// `log-level`: one of `error`, `warn`, `info`, `debug`.
    pub log_level: Option<String>,
    /// `admin`: where the admin HTTP endpoint listens. No admin endpoint when `None`.
    pub admin: Option<Located>,
    /// `drain-timeout`: how long a drain waits for live connections (0: close them at once).
    pub drain_timeout: Option<Duration>,
    /// The route options set globally, which every route starts from.
    pub route_defaults: RouteOptions,
}

/// The options a route shares with the global section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOptions {
    /// `policy`: how an upstream is chosen from the list.
    pub policy: Option<Policy>,
    /// `connect-timeout`: how long one upstream connection attempt may take (0: the OS's limit).
    pub connect_timeout: Option<Duration>,
    /// `idle-timeout`: close a connection with no byte in either direction for this long (0: off).
    pub idle_timeout: Option<Duration>,
    /// `half-close-timeout`: close a connection this long after its first EOF (0: off).
    pub half_close_timeout: Option<Duration>,
    /// `max-connections`: the most simultaneous connections on the route (at least 1).
    pub max_connections: Option<usize>,
    /// `max-connections-per-client`: the most simultaneous connections from one client
    /// address (IPv6: one /64) on the route; 0: no limit.
    pub max_connections_per_client: Option<usize>,
}

/// One `route` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The line the `route` keyword is on.
    pub line: usize,
    /// `name`: the route's label in logs and metrics. When `None`, use the listen address.
    pub name: Option<String>,
    /// The address to listen on, as written (`127.0.0.1:8080`, `[::1]:8080`, `unix:/path`).
    pub listen: Located,
    /// The upstream addresses, as written, in order; at least one.
    pub upstreams: Vec<Located>,
    /// The shared options: the global ones, overridden by the route's own.
    pub options: RouteOptions,
    /// `proxy-protocol`: the PROXY protocol header to send upstream, if any.
    pub proxy_protocol: Option<ProxyVersion>,
    /// `allow` and `deny`: who may connect. Empty means everyone.
    pub access: AccessRules,
}

/// A piece of text from the file and where it starts, so that a later check (such as
/// resolving an address) can still point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The text exactly as written.
    pub text: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// How a route with several upstreams picks one for each new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Try the upstreams in the order listed; the next one only when a connect fails.
    First,
    /// Start each new client at the next upstream in the list, wrapping around.
    RoundRobin,
}

impl FromStr for Policy {
    type Err = String;

    /// Parses `first` or `round-robin`; the error reads `expected first or round-robin, found "rr"`.
    fn from_str(text: &str) -> Result<Policy, String> {
        match text {
            "first" => Ok(Policy::First),
            "round-robin" => Ok(Policy::RoundRobin),
            _ => Err(format!("expected first or round-robin, found {text:?}")),
        }
    }
}

impl fmt::Display for Policy {
    /// Writes `first` or `round-robin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::First => f.write_str("first"),
            Policy::RoundRobin => f.write_str("round-robin"),
        }
    }
}

/// A mistake in the config file, or a file that cannot be read.
///
/// `Display` reads `FILE:LINE:COLUMN: MESSAGE`, the form editors and terminals turn into a
/// link, e.g. `relay.conf:3:14: expected a duration such as 250ms, 5s, 2m, 1h or 0, found "5x"`.
/// When the file cannot be read at all, `line` and `column` are 0 and only `FILE: MESSAGE`
/// is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number, or 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 when the error is about the whole file.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    /// An error pointing at `located` in this file, for checks made after parsing, such as
    /// `config.error_at(&route.listen, format!("expected HOST:PORT, found {:?}", route.listen.text))`.
    pub fn error_at(&self, located: &Located, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: located.line,
            column: located.column,
            message: message.into(),
        }
    }
}

/// Reads and parses the config file at `file`.
///
/// # Errors
/// A [`ConfigError`] for the first mistake, or with line 0 when the file cannot be read
/// (missing, unreadable, not UTF-8).
pub fn load(file: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the config file: {error}"),
    })?;
    parse(&text, file)
}

/// Parses config file text; `file` is only used in error messages.
///
/// # Errors
/// A [`ConfigError`] naming the line and column of the first mistake.
pub fn parse(text: &str, file: &Path) -> Result<FileConfig, ConfigError> {
    // Editors on Windows may start a UTF-8 file with a byte order mark; it is not a setting.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser {
        file,
        config: FileConfig {
            file: file.to_path_buf(),
            globals: Globals::default(),
            routes: Vec::new(),
        },
        globals_seen: Vec::new(),
    };
    for entry in entries(text, file)? {
        if entry[0].text == "route" {
            parser.route(&entry)?;
        } else {
            parser.global(&entry)?;
        }
    }
    Ok(parser.config)
}

/// A word of the file and where it starts.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    line: usize,
    column: usize,
}

impl Token<'_> {
    /// The column just past the token, where "found end of line" points.
    fn end_column(&self) -> usize {
        self.column + self.text.chars().count()
    }

    fn located(&self) -> Located {
        Located { text: self.text.to_string(), line: self.line, column: self.column }
    }
}

/// Splits the file into entries: the words of one setting or one route, with a route's
/// indented continuation lines joined to it. Blank lines and comments are dropped.
fn entries<'a>(text: &'a str, file: &Path) -> Result<Vec<Vec<Token<'a>>>, ConfigError> {
    let mut entries: Vec<Vec<Token<'a>>> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let tokens = words(line, index + 1);
        let Some(first) = tokens.first() else {
            continue;
        };
        let continues_a_route = line.starts_with(char::is_whitespace);
        if !continues_a_route {
            entries.push(tokens);
            continue;
        }
        match entries.last_mut() {
            Some(route) if route[0].text == "route" => route.extend(tokens),
            _ => {
                let message = format!(
                    "expected a \"route\" line above this indented line \
                     (only route lines continue on indented lines), found {:?}",
                    first.text
                );
                return Err(error_at_position(file, first.line, first.column, message));
            }
        }
    }
    Ok(entries)
}

/// The whitespace-separated words of one line, up to a word starting with `#`.
fn words(line: &str, line_number: usize) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    // (byte offset, column) where the current word started.
    let mut word_start: Option<(usize, usize)> = None;
    for (column_index, (offset, c)) in line.char_indices().enumerate() {
        if c.is_whitespace() {
            if let Some((start, column)) = word_start.take() {
                tokens.push(Token { text: &line[start..offset], line: line_number, column });
            }
        } else if word_start.is_none() {
            if c == '#' {
                return tokens;
            }
            word_start = Some((offset, column_index + 1));
        }
    }
    if let Some((start, column)) = word_start {
        tokens.push(Token { text: &line[start..], line: line_number, column });
    }
    tokens
}

const GLOBAL_KEYS: [&str; 9] = [
    "connect-timeout",
    "idle-timeout",
    "half-close-timeout",
    "max-connections",
    "max-connections-per-client",
    "policy",
    "log-level",
    "admin",
    "drain-timeout",
];
const ROUTE_KEYS: [&str; 10] = [
    "name",
    "policy",
    "connect-timeout",
    "idle-timeout",
    "half-close-timeout",
    "max-connections",
    "max-connections-per-client",
    "proxy-protocol",
    "allow",
    "deny",
];
/// The keys that may be given more than once on a route, adding to a list.
const LIST_KEYS: [&str; 2] = ["allow", "deny"];

struct Parser<'a> {
    file: &'a Path,
    config: FileConfig,
    /// Each global key set so far and its line, to report duplicates.
    globals_seen: Vec<(&'a str, usize)>,
}

impl<'a> Parser<'a> {
    fn error(&self, line: usize, column: usize, message: String) -> ConfigError {
        error_at_position(self.file, line, column, message)
    }

    fn error_at(&self, token: &Token<'_>, message: String) -> ConfigError {
        self.error(token.line, token.column, message)
    }

    /// `KEY VALUE` before the first route.
    fn global(&mut self, entry: &[Token<'a>]) -> Result<(), ConfigError> {
        let key = entry[0];
        if let Some(route) = self.config.routes.first() {
            return Err(self.error_at(
                &key,
                format!(
                    "expected global settings before the first route (line {}), found {:?}",
                    route.line, key.text
                ),
            ));
        }
        self.check_global_key(&key)?;
        let Some(value) = entry.get(1) else {
            return Err(self.error(
                key.line,
                key.end_column(),
                format!("expected a value after {:?}, found end of line", key.text),
            ));
        };
        if let Some(extra) = entry.get(2) {
            return Err(self.error_at(
                extra,
                format!("expected end of line after {:?}, found {:?}", value.text, extra.text),
            ));
        }
        if let Some((_, first_line)) = self.globals_seen.iter().find(|(k, _)| *k == key.text) {
            return Err(self.error_at(
                &key,
                format!(
                    "expected each global setting once, found {:?} again (first on line {first_line})",
                    key.text
                ),
            ));
        }
        self.globals_seen.push((key.text, key.line));

        let file = self.file;
        let at = |message: String| error_at_position(file, value.line, value.column, message);
        let globals = &mut self.config.globals;
        match key.text {
            "log-level" => globals.log_level = Some(parse_log_level(value.text).map_err(at)?),
            "admin" => globals.admin = Some(value.located()),
            "drain-timeout" => {
                let timeout = parse_duration(value.text).map_err(at)?;
                globals.drain_timeout = Some(timeout);
            }
            shared => {
                set_shared_option(&mut globals.route_defaults, shared, value.text).map_err(at)?
            }
        }
        Ok(())
    }

    /// Explains an unknown global key, with a hint for the two likely slips: `key=value`
    /// written at the top level, and a route-only option used as a global.
    fn check_global_key(&self, key: &Token<'_>) -> Result<(), ConfigError> {
        if GLOBAL_KEYS.contains(&key.text) {
            return Ok(());
        }
        let all = GLOBAL_KEYS.join(", ");
        let message = match key.text.split_once('=') {
            Some((name, _)) if GLOBAL_KEYS.contains(&name) => format!(
                "expected a space between a global setting and its value, found {:?}",
                key.text
            ),
            _ if ROUTE_KEYS.contains(&key.text) => format!(
                "expected a global setting ({all}) or \"route\", found the route option {:?} \
                 (write {}=... on a route line)",
                key.text, key.text
            ),
            _ => format!("expected a global setting ({all}) or \"route\", found {:?}", key.text),
        };
        Err(self.error_at(key, message))
    }

    /// `route LISTEN -> UPSTREAM... [KEY=VALUE...]`, possibly spread over indented lines.
    fn route(&mut self, entry: &[Token<'a>]) -> Result<(), ConfigError> {
        let keyword = entry[0];
        // An indented line holds options only. Otherwise a setting indented by mistake
        // (`  idle-timeout 5m`) would silently become two upstream addresses.
        if let Some(stray) = entry.iter().find(|t| t.line != keyword.line && !is_option(t.text)) {
            return Err(self.error_at(
                stray,
                format!(
                    "expected route options (KEY=VALUE) on an indented line, found {:?} \
                     (the listen address and upstreams go on the route line)",
                    stray.text
                ),
            ));
        }
        let listen = match entry.get(1) {
            Some(listen) if listen.text != "->" && listen.text.contains("->") => {
                return Err(self.error_at(
                    listen,
                    format!("expected spaces around \"->\", found {:?}", listen.text),
                ));
            }
            Some(listen) if listen.text != "->" && !is_option(listen.text) => *listen,
            other => return Err(self.expected_after(&keyword, "a listen address", other)),
        };
        match entry.get(2) {
            Some(arrow) if arrow.text == "->" => {}
            other => return Err(self.expected_after(&listen, "\"->\"", other)),
        }
        // Port 0 asks the OS for a free port, a different one each time: no clash.
        let same_listen = |r: &&RouteSpec| r.listen.text == listen.text;
        let port_zero = listen.text.ends_with(":0");
        if let Some(earlier) = self.config.routes.iter().find(same_listen).filter(|_| !port_zero) {
            return Err(self.error_at(
                &listen,
                format!(
                    "expected each listen address once, found {:?} again (route on line {})",
                    listen.text, earlier.line
                ),
            ));
        }

        let mut route = RouteSpec {
            line: keyword.line,
            name: None,
            listen: listen.located(),
            upstreams: Vec::new(),
            options: self.config.globals.route_defaults.clone(),
            proxy_protocol: None,
            access: AccessRules::default(),
        };
        let mut options_seen: Vec<&str> = Vec::new();
        for token in &entry[3..] {
            if !is_option(token.text) {
                route.upstreams.push(token.located());
                continue;
            }
            let (key, value) = token.text.split_once('=').unwrap_or((token.text, ""));
            if options_seen.contains(&key) && !LIST_KEYS.contains(&key) {
                return Err(self.error_at(
                    token,
                    format!("expected each route option once, found {key:?} again"),
                ));
            }
            options_seen.push(key);
            let value = Token {
                text: value,
                line: token.line,
                column: token.column + key.chars().count() + 1,
            };
            self.route_option(&mut route, key, token, &value)?;
        }
        if route.upstreams.is_empty() {
            let arrow = entry[2];
            return Err(self.expected_after(&arrow, "an upstream address", entry.get(3)));
        }
        self.config.routes.push(route);
        Ok(())
    }

    /// Applies one `KEY=VALUE` route option; `token` is the whole word, for key errors.
    fn route_option(
        &self,
        route: &mut RouteSpec,
        key: &str,
        token: &Token<'_>,
        value: &Token<'_>,
    ) -> Result<(), ConfigError> {
        let at = |message: String| self.error_at(value, message);
        match key {
            "name" => {
                if value.text.is_empty() {
                    return Err(at("expected a route name, found \"\"".to_string()));
                }
                if let Some(other) =
                    self.config.routes.iter().find(|r| r.name.as_deref() == Some(value.text))
                {
                    return Err(at(format!(
                        "expected each route name once, found {:?} again (route on line {})",
                        value.text, other.line
                    )));
                }
                route.name = Some(value.text.to_string());
            }
            "proxy-protocol" => {
                let version = value.text.parse::<ProxyVersion>();
                route.proxy_protocol = Some(version.map_err(|e| at(e.to_string()))?);
            }
            "allow" => route.access.allow.extend(self.cidr_list(value)?),
            "deny" => route.access.deny.extend(self.cidr_list(value)?),
            "policy"
            | "connect-timeout"
            | "idle-timeout"
            | "half-close-timeout"
            | "max-connections"
            | "max-connections-per-client" => {
                set_shared_option(&mut route.options, key, value.text).map_err(at)?
            }
            _ => {
                return Err(self.error_at(
                    token,
                    format!("expected a route option ({}), found {key:?}", ROUTE_KEYS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// `10.0.0.0/8,192.168.0.0/16`: one or more CIDR blocks separated by commas.
    fn cidr_list(&self, value: &Token<'_>) -> Result<Vec<Cidr>, ConfigError> {
        let mut blocks = Vec::new();
        let mut column = value.column;
        for piece in value.text.split(',') {
            let block = piece.parse::<Cidr>();
            blocks.push(block.map_err(|e| self.error(value.line, column, e.to_string()))?);
            column += piece.chars().count() + 1;
        }
        Ok(blocks)
    }

    /// `expected WHAT after "BEFORE", found "NEXT"` (or `found end of line`), pointing at
    /// the next word, or just past `before` at the end of the line.
    fn expected_after(
        &self,
        before: &Token<'_>,
        what: &str,
        next: Option<&Token<'_>>,
    ) -> ConfigError {
        match next {
            Some(next) => self.error_at(
                next,
                format!("expected {what} after {:?}, found {:?}", before.text, next.text),
            ),
            None => self.error(
                before.line,
                before.end_column(),
                format!("expected {what} after {:?}, found end of line", before.text),
            ),
        }
    }
}

fn error_at_position(file: &Path, line: usize, column: usize, message: String) -> ConfigError {
    ConfigError { file: file.to_path_buf(), line, column, message }
}

/// A route word is an option when it holds `=`. Unix socket paths may hold `=` too, so a
/// word starting with `unix:` is always an address.
fn is_option(word: &str) -> bool {
    word.contains('=') && !word.starts_with("unix:")
}

/// Sets one of the options a route shares with the global section. The error message is
/// the `expected ..., found ...` text, without a position.
fn set_shared_option(options: &mut RouteOptions, key: &str, value: &str) -> Result<(), String> {
    match key {
        "policy" => options.policy = Some(value.parse()?),
        "connect-timeout" => options.connect_timeout = Some(parse_duration(value)?),
        "idle-timeout" => options.idle_timeout = Some(parse_duration(value)?),
        "half-close-timeout" => options.half_close_timeout = Some(parse_duration(value)?),
        "max-connections" => options.max_connections = Some(parse_max_connections(value)?),
        "max-connections-per-client" => {
            options.max_connections_per_client = Some(parse_per_client(value)?)
        }
        // Callers only pass the keys above; anything else is a bug in this module.
        _ => unreachable!("set_shared_option called with {key:?}"),
    }
    Ok(())
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(count),
        _ => Err(format!("expected a whole number of connections, at least 1, found {text:?}")),
    }
}

fn parse_per_client(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(count),
        _ => Err(format!("expected a whole number of connections, 0 for no limit, found {text:?}")),
    }
}

fn parse_log_level(text: &str) -> Result<String, String> {
    match text {
        "error" | "warn" | "info" | "debug" => Ok(text.to_string()),
        _ => Err(format!("expected error, warn, info or debug, found {text:?}")),
    }
}

impl fmt::Display for RouteSpec {
    /// Writes the route back as one config line with every option it sets, in a fixed
    /// order, so that `--check` can show what will run. Parsing the line gives the route back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {} ->", self.listen.text)?;
        for upstream in &self.upstreams {
            write!(f, " {}", upstream.text)?;
        }
        if let Some(name) = &self.name {
            write!(f, " name={name}")?;
        }
        let options = &self.options;
        if let Some(policy) = options.policy {
            write!(f, " policy={policy}")?;
        }
        for (key, value) in [
            ("connect-timeout", options.connect_timeout),
            ("idle-timeout", options.idle_timeout),
            ("half-close-timeout", options.half_close_timeout),
        ] {
            if let Some(duration) = value {
                write!(f, " {key}={}", format_duration(duration))?;
            }
        }
        if let Some(max) = options.max_connections {
            write!(f, " max-connections={max}")?;
        }
        if let Some(max) = options.max_connections_per_client {
            write!(f, " max-connections-per-client={max}")?;
        }
        if let Some(version) = self.proxy_protocol {
            write!(f, " proxy-protocol={version}")?;
        }
        for cidr in &self.access.allow {
            write!(f, " allow={cidr}")?;
        }
        for cidr in &self.access.deny {
            write!(f, " deny={cidr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> FileConfig {
        parse(text, Path::new("relay.conf")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses `text`, which must fail, and returns `(line, column, message)`.
    fn parse_err(text: &str) -> (usize, usize, String) {
        match parse(text, Path::new("relay.conf")) {
            Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
            Err(error) => (error.line, error.column, error.message),
        }
    }

    fn texts(located: &[Located]) -> Vec<&str> {
        located.iter().map(|l| l.text.as_str()).collect()
    }

    const EXAMPLE: &str = "\
# tcprelay example
connect-timeout    5s
idle-timeout       5m
half-close-timeout 30s
max-connections    512
policy             first
log-level          info
admin              127.0.0.1:9090
drain-timeout      30s

# A web route with two backends.
route 127.0.0.1:8080 -> app1:80 app2:80
    name=web policy=round-robin   # spread clients
    proxy-protocol=v2
    allow=10.0.0.0/8,192.168.0.0/16 allow=::1
    deny=10.0.0.5
    idle-timeout=1m

route [::1]:2222 -> unix:/run/ssh=proxy.sock max-connections=4
";

    #[test]
    fn parses_the_reference_example() {
        let config = parse_ok(EXAMPLE);
        let globals = &config.globals;
        assert_eq!(globals.log_level.as_deref(), Some("info"));
        assert_eq!(globals.admin.as_ref().map(|a| a.text.as_str()), Some("127.0.0.1:9090"));
        assert_eq!(globals.drain_timeout, Some(Duration::from_secs(30)));
        assert_eq!(
            globals.route_defaults,
            RouteOptions {
                policy: Some(Policy::First),
                connect_timeout: Some(Duration::from_secs(5)),
                idle_timeout: Some(Duration::from_secs(300)),
                half_close_timeout: Some(Duration::from_secs(30)),
                max_connections: Some(512),
                max_connections_per_client: None,
            }
        );

        let [web, ssh] = &config.routes[..] else {
            panic!("expected two routes, got {:?}", config.routes);
        };
        assert_eq!(web.line, 12);
        assert_eq!(web.name.as_deref(), Some("web"));
        assert_eq!(web.listen, Located { text: "127.0.0.1:8080".into(), line: 12, column: 7 });
        assert_eq!(texts(&web.upstreams), ["app1:80", "app2:80"]);
        assert_eq!(web.upstreams[1].column, 33);
        assert_eq!(web.proxy_protocol, Some(ProxyVersion::V2));
        assert_eq!(web.options.policy, Some(Policy::RoundRobin));
        assert_eq!(web.options.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(web.options.connect_timeout, Some(Duration::from_secs(5)), "from globals");
        let allow: Vec<String> = web.access.allow.iter().map(|c| c.to_string()).collect();
        assert_eq!(allow, ["10.0.0.0/8", "192.168.0.0/16", "::1/128"]);
        assert_eq!(web.access.deny, ["10.0.0.5".parse::<Cidr>().unwrap()]);

        assert_eq!(ssh.name, None);
        assert_eq!(ssh.listen.text, "[::1]:2222");
        assert_eq!(texts(&ssh.upstreams), ["unix:/run/ssh=proxy.sock"]);
        assert_eq!(ssh.options.max_connections, Some(4));
        assert_eq!(ssh.options.policy, Some(Policy::First), "from globals");
        assert_eq!(ssh.proxy_protocol, None);
        assert!(ssh.access.is_empty());
    }

    #[test]
    fn the_example_in_the_docs_parses() {
        let doc = include_str!("../docs/operations.md");
        let example = doc
            .split("```text\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/operations.md starts with a ```text example");
        let config = parse_ok(example);
        let names: Vec<_> = config.routes.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(names, [Some("web"), None, Some("postgres")]);
        assert_eq!(config.routes[0].access.allow.len(), 2);
        assert_eq!(config.routes[1].options.max_connections, Some(20));
    }

    #[test]
    fn an_empty_or_comment_only_file_has_no_routes() {
        for text in ["", "\n\n", "# nothing here\n   # indented comment\n"] {
            let config = parse_ok(text);
            assert!(config.routes.is_empty());
            assert_eq!(config.globals, Globals::default());
        }
    }

    #[test]
    fn tolerates_crlf_tabs_a_byte_order_mark_and_no_final_newline() {
        let text = "\u{feff}idle-timeout\t2m\r\nroute\t:8080 ->\tapp:80\r\n\tname=x";
        let config = parse_ok(text);
        assert_eq!(config.globals.route_defaults.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(config.routes[0].name.as_deref(), Some("x"));
        assert_eq!(config.routes[0].listen.text, ":8080");
    }

    #[test]
    fn a_hash_inside_a_word_is_not_a_comment() {
        let config = parse_ok("route a:1 -> unix:/tmp/a#b # but this is\n");
        assert_eq!(texts(&config.routes[0].upstreams), ["unix:/tmp/a#b"]);
    }

    #[test]
    fn route_display_round_trips() {
        let config = parse_ok(EXAMPLE);
        let web = &config.routes[0];
        let line = web.to_string();
        assert_eq!(
            line,
            "route 127.0.0.1:8080 -> app1:80 app2:80 name=web policy=round-robin \
             connect-timeout=5s idle-timeout=1m half-close-timeout=30s max-connections=512 \
             proxy-protocol=v2 allow=10.0.0.0/8 allow=192.168.0.0/16 allow=::1/128 deny=10.0.0.5/32"
        );
        let reparsed = parse_ok(&line);
        assert_eq!(reparsed.routes[0].to_string(), line);
        assert_eq!(reparsed.routes[0].options, web.options);
        assert_eq!(reparsed.routes[0].access, web.access);
    }

    #[test]
    fn error_display_is_file_line_column_message() {
        let error = parse("\n\nroute a:1 -> b:2 idle-timeout=5x\n", Path::new("/etc/relay.conf"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"/etc/relay.conf:3:31: expected a duration such as 250ms, 5s, 2m, 1h or 0, found "5x""#
        );
    }

    /// Checks each `(file text, line, column, part of the message)`.
    fn assert_errors(cases: &[(&str, usize, usize, &str)]) {
        for &(text, line, column, message) in cases {
            let (got_line, got_column, got_message) = parse_err(text);
            assert_eq!((got_line, got_column), (line, column), "{text:?}: {got_message}");
            assert!(got_message.contains(message), "{text:?}: {got_message}");
        }
    }

    #[test]
    fn global_setting_errors() {
        #[rustfmt::skip]
        let cases = [
            ("conect-timeout 5s", 1, 1, r#"expected a global setting (connect-timeout, idle-timeout, half-close-timeout, max-connections, max-connections-per-client, policy, log-level, admin, drain-timeout) or "route", found "conect-timeout""#),
            ("idle-timeout=5m", 1, 1, r#"expected a space between a global setting and its value, found "idle-timeout=5m""#),
            ("allow 10.0.0.0/8", 1, 1, r#"found the route option "allow" (write allow=... on a route line)"#),
            ("\nidle-timeout", 2, 13, r#"expected a value after "idle-timeout", found end of line"#),
            ("idle-timeout 5m 10m", 1, 17, r#"expected end of line after "5m", found "10m""#),
            ("  drain-timeout soon", 1, 3, r#"expected a "route" line above this indented line"#),
            ("drain-timeout   soon", 1, 17, r#"expected a duration such as 250ms, 5s, 2m, 1h or 0, found "soon""#),
            ("max-connections 0", 1, 17, r#"expected a whole number of connections, at least 1, found "0""#),
            ("max-connections +5", 1, 17, r#"found "+5""#),
            ("max-connections-per-client -1", 1, 28, r#"0 for no limit, found "-1""#),
            ("log-level loud", 1, 11, r#"expected error, warn, info or debug, found "loud""#),
            ("policy rr", 1, 8, r#"expected first or round-robin, found "rr""#),
            ("admin :9090\n# again\nadmin :9091", 3, 1, r#"expected each global setting once, found "admin" again (first on line 1)"#),
        ];
        assert_errors(&cases);
    }

    #[test]
    fn route_errors() {
        #[rustfmt::skip]
        let cases = [
            ("route a:1 -> b:1\nidle-timeout 5m", 2, 1, r#"expected global settings before the first route (line 1), found "idle-timeout""#),
            ("route", 1, 6, r#"expected a listen address after "route", found end of line"#),
            ("route -> b:1", 1, 7, r#"expected a listen address after "route", found "->""#),
            ("route name=x a:1 -> b:1", 1, 7, r#"expected a listen address after "route", found "name=x""#),
            ("route a:1->b:1", 1, 7, r#"expected spaces around "->", found "a:1->b:1""#),
            ("route a:1 b:1", 1, 11, r#"expected "->" after "a:1", found "b:1""#),
            ("route a:1", 1, 10, r#"expected "->" after "a:1", found end of line"#),
            ("route a:1 ->", 1, 13, r#"expected an upstream address after "->", found end of line"#),
            ("route a:1 -> policy=first", 1, 14, r#"expected an upstream address after "->", found "policy=first""#),
            ("route a:1 -> b:1 polcy=first", 1, 18, r#"expected a route option (name, policy, connect-timeout, idle-timeout, half-close-timeout, max-connections, max-connections-per-client, proxy-protocol, allow, deny), found "polcy""#),
            ("route a:1 -> b:1 idle-timeout=1m\n    idle-timeout=2m", 2, 5, r#"expected each route option once, found "idle-timeout" again"#),
            ("route a:1 -> b:1 policy=", 1, 25, r#"expected first or round-robin, found """#),
            ("route a:1 -> b:1\n  proxy-protocol=v3", 2, 18, r#"expected v1 or v2, found "v3""#),
            ("route a:1 -> b:1 allow=10.0.0.0/8,10.0.0.1/8", 1, 35, r#"expected a block that starts at its network address, like 10.0.0.0/8, found "10.0.0.1/8""#),
            ("route a:1 -> b:1 deny=10.0.0.0/8,", 1, 34, r#"expected an IPv4 or IPv6 address or block such as 10.0.0.0/8 or ::1/128, found """#),
            ("route a:1 -> b:1 name=", 1, 23, r#"expected a route name, found """#),
            ("route a:1 -> b:1 name=x\nroute c:1 -> d:1 name=x", 2, 23, r#"expected each route name once, found "x" again (route on line 1)"#),
            ("route a:1 -> b:1\n\nroute a:1 -> c:1", 3, 7, r#"expected each listen address once, found "a:1" again (route on line 1)"#),
            ("route a:1 -> b:1\n    idle-timeout 5m", 2, 5, r#"expected route options (KEY=VALUE) on an indented line, found "idle-timeout""#),
            ("route\n  a:1 -> b:1", 2, 3, r#"expected route options (KEY=VALUE) on an indented line, found "a:1""#),
        ];
        assert_errors(&cases);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is two bytes in UTF-8 but one column on screen.
        let (line, column, message) = parse_err("route é:1 -> b:1 idle-timeout=5x");
        assert_eq!((line, column), (1, 31), "{message}");
    }

    #[test]
    fn a_route_line_with_only_options_on_indented_lines_is_fine() {
        let config =
            parse_ok("route a:1 -> b:1 c:1\n  # a comment between\n\n  name=n\n\tdeny=::1\n");
        assert_eq!(texts(&config.routes[0].upstreams), ["b:1", "c:1"]);
        assert_eq!(config.routes[0].name.as_deref(), Some("n"));
        assert_eq!(config.routes[0].access.deny.len(), 1);
    }

    #[test]
    fn error_at_points_at_a_located_value() {
        let config = parse_ok("admin  nowhere\n");
        let admin = config.globals.admin.as_ref().unwrap();
        let error = config.error_at(admin, "expected HOST:PORT, found \"nowhere\"");
        assert_eq!(error.to_string(), r#"relay.conf:1:8: expected HOST:PORT, found "nowhere""#);
    }

    #[test]
    fn load_reports_a_missing_file_without_a_position() {
        let path = Path::new("/nonexistent/tcprelay-test/relay.conf");
        let error = load(path).unwrap_err();
        assert_eq!((error.line, error.column), (0, 0));
        let text = error.to_string();
        assert!(
            text.starts_with(
                "/nonexistent/tcprelay-test/relay.conf: cannot read the config file: "
            ),
            "{text}"
        );
    }
}
