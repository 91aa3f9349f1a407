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
//! The keys are the settings of the [settings table](crate::settings), with the same
//! parsers and bounds as the flags. This module checks everything it can check alone
//! (keys, values, duplicates) and reports the file, line and column of the first mistake.
//! Addresses stay text, with their position, until [`FileConfig::server_config`] resolves
//! them and checks the whole (two routes on one address, a route that forwards to itself),
//! still reporting at the right place.
//!
//! The test `the_module_example` at the end of this file runs an example.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::net::address::UNIX_PREFIX;
use crate::settings::address;
use crate::settings::config::Config;
use crate::settings::server_config::ServerConfig;
use crate::settings::{
    self, Error, ErrorKind, Location, SETTINGS, Scope, Setting, Value, spelling,
};
use crate::untrusted_paths::open_regular_file;

/// The largest config file read: 1 MiB, a thousand times a big real one. Anything larger
/// is refused before it is read, so a mistaken `--config /dev/zero` cannot eat the memory.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// A parsed config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The file it was read from, for error messages.
    pub file: PathBuf,
    /// The settings before the first route, in file order.
    pub globals: Vec<FileValue>,
    /// The routes, in file order.
    pub routes: Vec<RouteSpec>,
}

/// A setting as written in the file, and where its value starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    /// The setting.
    pub setting: &'static Setting,
    /// Its value as written.
    pub text: Located,
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
    /// The route's own options, in order; they override the globals.
    pub options: Vec<FileValue>,
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

impl FileConfig {
    /// An error pointing at `located` in this file, for checks made after parsing, such as
    /// `config.error_at(&route.listen, format!("expected HOST:PORT, found {:?}", route.listen.text))`.
    pub fn error_at(&self, located: &Located, message: impl Into<String>) -> Error {
        Error::file(&self.file, located.line, located.column, message)
    }

    /// Where `located` is in this file, to put in front of an error found after parsing.
    pub fn location(&self, located: &Located) -> Location {
        Location { file: self.file.clone(), line: located.line, column: located.column }
    }

    /// What the server runs: each route starts from the defaults, then the file's globals,
    /// then `overrides` (the command line's flags, which override the file's globals), then
    /// its own options. Resolves the listen addresses, checks the upstreams, and checks the
    /// whole ([`ServerConfig::validate`]), reporting each mistake at its place in the file.
    ///
    /// # Errors
    /// An [`Error`] at the first address that does not parse or resolve, or at the
    /// later route of two that clash.
    pub fn server_config(&self, overrides: &[Value]) -> Result<ServerConfig, Error> {
        let globals: Vec<Value> = self.globals.iter().map(FileValue::value).collect();
        let mut routes = Vec::new();
        for spec in &self.routes {
            let mut config = Config::default();
            for values in [&globals[..], overrides] {
                settings::apply_route(values, &mut config)
                    .map_err(|e| e.at(self.location(&spec.listen)))?;
            }
            for option in &spec.options {
                settings::apply_route(&[option.value()], &mut config)
                    .map_err(|e| e.at(self.location(&option.text)))?;
            }
            address::parse_route_listen(&spec.listen.text)
                .map_err(|e| e.at(self.location(&spec.listen)))?
                .apply(&mut config);
            let mut upstreams = Vec::new();
            for located in &spec.upstreams {
                upstreams.push(
                    address::parse_upstream(&located.text)
                        .map_err(|e| e.at(self.location(located)))?,
                );
            }
            let mut upstreams = upstreams.into_iter();
            config.upstream = upstreams.next().unwrap_or_default();
            config.more_upstreams = upstreams.collect();
            config.name = spec.name.clone().unwrap_or_default();
            routes.push(config);
        }
        if routes.is_empty() {
            let none = "expected at least one route line, found none";
            return Err(Error::file(&self.file, 0, 0, none));
        }
        let mut server = ServerConfig { routes, ..ServerConfig::default() };
        for values in [&globals[..], overrides] {
            settings::apply_process(values, &mut server).map_err(|e| e.at(self.whole_file()))?;
        }
        server.validate().map_err(|error| match error.kind() {
            ErrorKind::Conflict { route: Some(index), .. } => {
                let at = self.location(&self.routes[*index].listen);
                error.at(at)
            }
            _ => error.at(self.whole_file()),
        })?;
        Ok(server)
    }

    /// The file as a whole, for a mistake no one line holds.
    fn whole_file(&self) -> Location {
        Location { file: self.file.clone(), line: 0, column: 0 }
    }
}

impl FileValue {
    fn value(&self) -> Value {
        Value { setting: self.setting, text: self.text.text.clone() }
    }
}

/// Reads and parses the config file at `file`, which must be a regular file of at most
/// [`MAX_FILE_SIZE`] bytes of UTF-8 text.
///
/// The file is opened first and what was opened is checked, never the path before opening:
/// a path swapped for a FIFO in between would block the open for ever (and with it every
/// later reload). Opened without blocking, a FIFO, a device or a directory is refused, and
/// the read is bounded, since `/dev/zero` never ends.
///
/// # Errors
/// An [`Error`] for the first mistake (a byte that is not UTF-8 too, at its line and
/// column), or with line 0 when the file cannot be read or is not a regular file or is too big.
pub fn load(file: &Path) -> Result<FileConfig, Error> {
    let error = |message: String| Error::file(file, 0, 0, message);
    let (opened, metadata) = open_regular_file(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => error(e.to_string()),
        _ => error(format!("cannot read the config file: {e}")),
    })?;
    if metadata.len() > MAX_FILE_SIZE {
        return Err(error(format!(
            "expected a config file of at most {MAX_FILE_SIZE} bytes, found {} bytes",
            metadata.len()
        )));
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(format!("cannot read the config file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(error(format!("expected a config file of at most {MAX_FILE_SIZE} bytes")));
    }
    parse_bytes(&bytes, file)
}

/// Parses config file bytes, which must be UTF-8; a byte that is not is reported at its line
/// and column. `file` is only used in error messages.
///
/// # Errors
/// An [`Error`] naming the line and column of the first mistake.
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<FileConfig, Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file),
        Err(error) => {
            let good = &bytes[..error.valid_up_to()];
            // The valid prefix is UTF-8 by definition, so this never replaces anything.
            let good = String::from_utf8_lossy(good);
            let line = good.matches('\n').count() + 1;
            let column = good.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
            let byte = bytes[error.valid_up_to()];
            Err(error_at_position(
                file,
                line,
                column,
                format!("expected UTF-8 text, found the byte 0x{byte:02x}"),
            ))
        }
    }
}

/// Parses config file text; `file` is only used in error messages.
///
/// # Errors
/// An [`Error`] naming the line and column of the first mistake.
pub fn parse(text: &str, file: &Path) -> Result<FileConfig, Error> {
    // Editors on Windows may start a UTF-8 file with a byte order mark; it is not a setting.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser {
        file,
        config: FileConfig { file: file.to_path_buf(), globals: Vec::new(), routes: Vec::new() },
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

/// Only ASCII space and tab separate words. Other Unicode white space (a no-break space
/// pasted from a web page) is part of a word, and then shows up, escaped, in the error.
fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits the file into entries: the words of one setting or one route, with a route's
/// indented continuation lines joined to it. Blank lines and comments are dropped.
fn entries<'a>(text: &'a str, file: &Path) -> Result<Vec<Vec<Token<'a>>>, Error> {
    let mut entries: Vec<Vec<Token<'a>>> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let tokens = words(line, index + 1);
        let Some(first) = tokens.first() else {
            continue;
        };
        let continues_a_route = line.starts_with(is_separator);
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

/// The words of one line, up to a word starting with `#`.
fn words(line: &str, line_number: usize) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    // (byte offset, column) where the current word started.
    let mut word_start: Option<(usize, usize)> = None;
    for (column_index, (offset, c)) in line.char_indices().enumerate() {
        if is_separator(c) {
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

/// The keys allowed before the first route.
fn global_keys() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.scope != Scope::RouteOnly)
}

/// The keys allowed on a route: `name`, and the settings that apply per route.
fn route_key_names() -> impl Iterator<Item = &'static str> {
    let keys = SETTINGS.iter().filter(|s| s.scope != Scope::Process).map(|s| s.name);
    std::iter::once("name").chain(keys)
}

/// [`route_key_names`] as a list in words.
fn route_keys() -> String {
    route_key_names().collect::<Vec<_>>().join(", ")
}

/// The value names a setting's value takes when it is a file (`pid-file FILE`): such a
/// value, like every `unix:PATH` address, is a path.
const PATH_VALUES: [&str; 2] = ["FILE", "PATH"];

struct Parser<'a> {
    file: &'a Path,
    config: FileConfig,
}

impl Parser<'_> {
    fn error(&self, line: usize, column: usize, message: String) -> Error {
        error_at_position(self.file, line, column, message)
    }

    fn error_at(&self, token: &Token<'_>, message: String) -> Error {
        self.error(token.line, token.column, message)
    }

    fn located(&self, token: &Token<'_>) -> Location {
        Location { file: self.file.to_path_buf(), line: token.line, column: token.column }
    }

    /// A path written in the file, as the file means it. The one rule for every path in a
    /// config file (a FILE or PATH setting, and a `unix:PATH` listen, upstream or admin
    /// address): a relative path is relative to the file's own directory (HAProxy's
    /// `default-path config`), so the file means the same from any working directory. An
    /// absolute path stays as it is.
    fn relative_to_the_file(&self, path: &str) -> String {
        if path.is_empty() || Path::new(path).is_absolute() {
            return path.to_string();
        }
        let directory = self.file.parent().unwrap_or(Path::new(""));
        directory.join(path).display().to_string()
    }

    /// A `unix:PATH` address with its path taken as [`relative_to_the_file`] says; any
    /// other text as it is.
    ///
    /// [`relative_to_the_file`]: Parser::relative_to_the_file
    fn unix_relative_to_the_file(&self, text: &str) -> String {
        match text.strip_prefix(UNIX_PREFIX) {
            Some(path) => format!("{UNIX_PREFIX}{}", self.relative_to_the_file(path)),
            None => text.to_string(),
        }
    }

    /// `KEY VALUE` before the first route.
    fn global(&mut self, entry: &[Token<'_>]) -> Result<(), Error> {
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
        let setting = self.global_setting(entry)?;
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
        let earlier = self.config.globals.iter().find(|v| v.setting.name == setting.name);
        if let (Some(earlier), false) = (earlier, setting.list) {
            return Err(self.error_at(
                &key,
                format!(
                    "expected each global setting once, found {:?} again (first on line {})",
                    key.text, earlier.text.line
                ),
            ));
        }
        let resolved = match PATH_VALUES.contains(&setting.value) {
            true => self.relative_to_the_file(value.text),
            false => self.unix_relative_to_the_file(value.text),
        };
        let value = &Token { text: &resolved, ..*value };
        self.check_value(setting, value)?;
        self.config.globals.push(FileValue { setting, text: value.located() });
        Ok(())
    }

    /// The setting a global line sets, or an error explaining the likely slip: `key=value`
    /// written at the top level, a route-only option used as a global, or a line in
    /// rinetd's own syntax.
    fn global_setting(&self, entry: &[Token<'_>]) -> Result<&'static Setting, Error> {
        let key = entry[0];
        if let Some(setting) = global_keys().find(|s| s.name == key.text) {
            return Ok(setting);
        }
        let all = global_keys().map(|s| s.name).collect::<Vec<_>>().join(", ");
        let is_global = |name: &str| global_keys().any(|s| s.name == name);
        let is_port =
            |t: &Token<'_>| !t.text.is_empty() && t.text.bytes().all(|b| b.is_ascii_digit());
        let message = match (key.text.split_once('='), settings::find(key.text)) {
            (Some((name, _)), _) if is_global(name) => format!(
                "expected a space between a global setting and its value, found {:?}",
                key.text
            ),
            (_, Some(setting)) => format!(
                "expected a global setting ({all}) or \"route\", found the route option {:?} \
                 (write {}=... on a route line)",
                key.text, setting.name
            ),
            _ if entry.len() == 4 && is_port(&entry[1]) && is_port(&entry[3]) => format!(
                "expected a global setting or \"route\", found a rinetd forwarding rule, \
                 written here as \"route {}:{} -> {}:{}\" (see \"Migrating from rinetd\" in \
                 docs/operations.md)",
                entry[0].text, entry[1].text, entry[2].text, entry[3].text
            ),
            _ => {
                let keys = global_keys().map(|s| s.name).chain(["route"]);
                let hint = spelling::did_you_mean(key.text, keys);
                format!(
                    "expected a global setting ({all}) or \"route\", found {:?}{hint}",
                    key.text
                )
            }
        };
        Err(self.error_at(&key, message))
    }

    /// Checks a value with the setting's own parser. A list setting's comma-separated
    /// pieces are checked one by one, so that the column points at the bad piece.
    fn check_value(&self, setting: &Setting, value: &Token<'_>) -> Result<(), Error> {
        if !setting.list {
            return settings::check(setting, value.text).map_err(|e| e.at(self.located(value)));
        }
        let mut column = value.column;
        for piece in value.text.split(',') {
            let at = Location { file: self.file.to_path_buf(), line: value.line, column };
            settings::check(setting, piece).map_err(|e| e.at(at))?;
            column += piece.chars().count() + 1;
        }
        Ok(())
    }

    /// `route LISTEN -> UPSTREAM... [KEY=VALUE...]`, possibly spread over indented lines.
    fn route(&mut self, entry: &[Token<'_>]) -> Result<(), Error> {
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

        let listen_text = self.unix_relative_to_the_file(listen.text);
        let mut route = RouteSpec {
            line: keyword.line,
            name: None,
            listen: Token { text: &listen_text, ..listen }.located(),
            upstreams: Vec::new(),
            options: Vec::new(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for token in &entry[3..] {
            if !is_option(token.text) {
                if token.text.contains(',') && !token.text.starts_with(UNIX_PREFIX) {
                    return Err(self.error_at(token, comma_list(entry, token.text)));
                }
                let upstream = self.unix_relative_to_the_file(token.text);
                route.upstreams.push(Token { text: &upstream, ..*token }.located());
                continue;
            }
            let (key, value) = token.text.split_once('=').unwrap_or((token.text, ""));
            let setting = SETTINGS.iter().find(|s| s.name == key && s.scope != Scope::Process);
            if seen.contains(&key) && !setting.is_some_and(|s| s.list) {
                return Err(self.error_at(
                    token,
                    format!("expected each route option once, found {key:?} again"),
                ));
            }
            seen.push(key);
            let resolved = match setting {
                Some(setting) if PATH_VALUES.contains(&setting.value) => {
                    self.relative_to_the_file(value)
                }
                Some(_) => self.unix_relative_to_the_file(value),
                None => value.to_string(), // `name=`, a label
            };
            let value = Token {
                text: &resolved,
                line: token.line,
                column: token.column + key.chars().count() + 1,
            };
            match setting {
                Some(setting) => {
                    self.check_value(setting, &value)?;
                    route.options.push(FileValue { setting, text: value.located() });
                }
                None if key == "name" => route.name = Some(self.route_name(&value)?),
                None => {
                    let hint = match settings::find(key) {
                        Some(_) => " (a global setting: write it before the first route)".into(),
                        None => spelling::did_you_mean(key, route_key_names()),
                    };
                    return Err(self.error_at(
                        token,
                        format!("expected a route option ({}), found {key:?}{hint}", route_keys()),
                    ));
                }
            }
        }
        if route.upstreams.is_empty() {
            let arrow = entry[2];
            return Err(self.expected_after(&arrow, "an upstream address", entry.get(3)));
        }
        self.config.routes.push(route);
        Ok(())
    }

    fn route_name(&self, value: &Token<'_>) -> Result<String, Error> {
        if value.text.is_empty() {
            return Err(self.error_at(value, "expected a route name, found \"\"".to_string()));
        }
        if let Some(other) =
            self.config.routes.iter().find(|r| r.name.as_deref() == Some(value.text))
        {
            return Err(self.error_at(
                value,
                format!(
                    "expected each route name once, found {:?} again (route on line {})",
                    value.text, other.line
                ),
            ));
        }
        Ok(value.text.to_string())
    }

    /// `expected WHAT after "BEFORE", found "NEXT"` (or `found end of line`), pointing at
    /// the next word, or just past `before` at the end of the line.
    fn expected_after(&self, before: &Token<'_>, what: &str, next: Option<&Token<'_>>) -> Error {
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

/// The message for `route LISTEN -> a:1,b:2`: the command line's `-u a:1,b:2` written in a
/// file, where upstreams are separated by spaces, as the route line's other words are.
/// `entry` is the whole route; `list` is the word with the comma.
fn comma_list(entry: &[Token<'_>], list: &str) -> String {
    let upstreams = entry[3..].iter().map(|t| t.text).filter(|word| !is_option(word));
    let spaced: Vec<&str> =
        upstreams.flat_map(|word| word.split(',')).filter(|u| !u.is_empty()).collect();
    format!(
        "expected upstreams separated by spaces, found the comma list {list:?}; in a config \
         file write \"route {} -> {}\"",
        entry[1].text,
        spaced.join(" ")
    )
}

fn error_at_position(file: &Path, line: usize, column: usize, message: String) -> Error {
    Error::file(file, line, column, message)
}

/// A route word is an option when it holds `=`. Unix socket paths may hold `=` too, so a
/// word starting with `unix:` is always an address.
fn is_option(word: &str) -> bool {
    word.contains('=') && !word.starts_with("unix:")
}

impl fmt::Display for RouteSpec {
    /// Writes the route back as one config line with the options it sets, in file order.
    /// Parsing the line gives the route back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {} ->", self.listen.text)?;
        for upstream in &self.upstreams {
            write!(f, " {}", upstream.text)?;
        }
        if let Some(name) = &self.name {
            write!(f, " name={name}")?;
        }
        for option in &self.options {
            write!(f, " {}={}", option.setting.name, option.text.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::XorShift;
    use crate::net::proxy_protocol::ProxyVersion;
    use crate::settings::access::Cidr;
    use crate::settings::config::Policy;
    use std::time::Duration;

    fn parse_ok(text: &str) -> FileConfig {
        parse(text, Path::new("relay.conf")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses `text`, which must fail, and returns `(line, column, message)`.
    fn parse_err(text: &str) -> (usize, usize, String) {
        match parse(text, Path::new("relay.conf")) {
            Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
            Err(error) => {
                let at = error.location().expect("a parse error has a position");
                (at.line, at.column, error.kind().to_string())
            }
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

    /// A UDP route as the docs write it: `udp:` on the listen address, the UDP settings as
    /// route options; `--check`'s description gives the same route back.
    #[test]
    fn a_udp_route_line() {
        let text = "udp-idle-timeout 30s\n\
                    route udp:0.0.0.0:53 -> 127.0.0.1:5300 udp:[::1]:5300 udp-responses=1 max-flows=64\n\
                    route :53 -> 127.0.0.1:5300\n";
        let server = parse_ok(text).server_config(&[]).unwrap_or_else(|e| panic!("{e}"));
        let [udp, tcp] = &server.routes[..] else { panic!("two routes: {server:?}") };
        assert!(udp.udp && !tcp.udp, "a TCP and a UDP route may share a port");
        assert_eq!(udp.listen.to_string(), "0.0.0.0:53");
        assert_eq!(udp.upstreams().collect::<Vec<_>>(), ["127.0.0.1:5300", "udp:[::1]:5300"]);
        assert_eq!(
            (udp.udp_idle_timeout, udp.udp_responses, udp.max_flows),
            (Duration::from_secs(30), 1, 64)
        );
        let described = settings::describe(&server);
        assert!(described.contains("route udp:0.0.0.0:53 -> 127.0.0.1:5300 udp:[::1]:5300 "));
        assert!(!described.lines().nth(2).unwrap_or_default().contains("udp-"), "{described}");
        let again = parse_ok(&described).server_config(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings::describe(&again), described);
    }

    /// What cannot work over UDP is refused at its route's line, naming the setting.
    #[test]
    fn a_udp_route_refuses_what_needs_tcp() {
        for (line, named) in [
            ("route udp::53 -> unix:/run/dns.sock", "upstream"),
            ("route udp::443 -> :444 sni=a.example", "sni"),
            ("route udp::53 -> :54 accept-proxy=on", "accept-proxy"),
            ("route udp::53 -> :54 proxy-protocol=v1", "proxy-protocol"),
            ("route :53 -> udp::53", "upstream"),
            (
                "route udp::53 -> :54\nroute udp:127.0.0.1:53 -> :55",
                "both listen on udp:127.0.0.1:53",
            ),
        ] {
            let error = parse_ok(line).server_config(&[]).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains(named), "{line}: {error}");
            assert!(error.contains("relay.conf:"), "{line}: {error}");
        }
    }

    #[test]
    fn parses_the_reference_example() {
        let server = parse_ok(EXAMPLE).server_config(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.log_level(), crate::LogLevel::Info);
        assert_eq!(server.admin, Some(crate::Address::Tcp("127.0.0.1:9090".parse().unwrap())));
        assert_eq!(server.drain_timeout, Duration::from_secs(30));

        let [web, ssh] = &server.routes[..] else {
            panic!("expected two routes, got {:?}", server.routes);
        };
        assert_eq!(web.name, "web");
        assert_eq!(web.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(web.upstreams().collect::<Vec<_>>(), ["app1:80", "app2:80"]);
        assert_eq!(web.proxy_protocol, Some(ProxyVersion::V2));
        assert_eq!(web.policy, Policy::RoundRobin);
        assert_eq!(web.idle_timeout, Duration::from_secs(60));
        assert_eq!(web.connect_timeout, Duration::from_secs(5), "from globals");
        assert_eq!(web.max_connections, 512, "from globals");
        let allow: Vec<String> = web.access.allow.iter().map(|c| c.to_string()).collect();
        assert_eq!(allow, ["10.0.0.0/8", "192.168.0.0/16", "::1/128"]);
        assert_eq!(web.access.deny, ["10.0.0.5".parse::<Cidr>().unwrap()]);

        assert_eq!(ssh.name, "");
        assert_eq!(ssh.listen.to_string(), "[::1]:2222");
        assert_eq!(ssh.upstreams().collect::<Vec<_>>(), ["unix:/run/ssh=proxy.sock"]);
        assert_eq!(ssh.max_connections, 4);
        assert_eq!(ssh.policy, Policy::First, "from globals");
        assert_eq!(ssh.proxy_protocol, None);
        assert!(ssh.access.is_empty());

        let parsed = parse_ok(EXAMPLE);
        assert_eq!(parsed.routes[0].line, 12);
        assert_eq!(
            parsed.routes[0].listen,
            Located { text: "127.0.0.1:8080".into(), line: 12, column: 7 }
        );
        assert_eq!(parsed.routes[0].upstreams[1].column, 33);
    }

    #[test]
    fn every_setting_of_a_flag_can_be_set_in_the_file() {
        let text = "buffer-size 64k\nstack-size 128k\nthread-keep-alive 0\nexplain on\n\
                    route :0 -> :1\nroute :0 -> :2 buffer-size=0 explain=off stack-size=1m\n";
        let server = parse_ok(text).server_config(&[]).unwrap();
        let [one, two] = &server.routes[..] else { panic!() };
        assert_eq!((one.buffer_size, one.stack_size, one.explain), (65536, 131072, true));
        assert_eq!(one.thread_keep_alive, Duration::ZERO);
        assert_eq!((two.buffer_size, two.stack_size, two.explain), (0, 1 << 20, false));
        for setting in SETTINGS {
            let key = setting.name;
            match setting.scope {
                Scope::RouteOnly => assert!(!global_keys().any(|s| s.name == key)),
                _ => assert!(global_keys().any(|s| s.name == key), "{key}"),
            }
        }
    }

    #[test]
    fn overrides_replace_the_globals_but_not_a_routes_own_option() {
        let text =
            "idle-timeout 5m\nlog-level warn\nroute :0 -> :1\nroute :0 -> :2 idle-timeout=1m\n";
        let overrides = [
            Value { setting: settings::find("idle-timeout").unwrap(), text: "2m".into() },
            Value { setting: settings::find("log-level").unwrap(), text: "debug".into() },
        ];
        let server = parse_ok(text).server_config(&overrides).unwrap();
        assert_eq!(server.routes[0].idle_timeout, Duration::from_secs(120));
        assert_eq!(server.routes[1].idle_timeout, Duration::from_secs(60));
        assert_eq!(server.log_level(), crate::LogLevel::Debug);
        assert!(server.routes.iter().all(|r| r.log_level == crate::LogLevel::Debug));
    }

    #[test]
    fn check_output_reads_back_as_the_same_config() {
        let first = parse_ok(EXAMPLE).server_config(&[]).unwrap();
        let described = first.describe();
        let again =
            parse_ok(&described).server_config(&[]).unwrap_or_else(|e| panic!("{e}\n{described}"));
        assert_eq!(again.describe(), described);
        assert!(
            described.contains(" buffer-size=1m stack-size=64k thread-keep-alive=10s explain=off"),
            "{described}"
        );
    }

    #[test]
    fn clashes_point_at_the_later_route_and_name_both() {
        let cases = [
            (
                "route :7001 -> :1\nroute 127.0.0.1:7001 -> :2\n",
                2,
                7,
                "both listen on 127.0.0.1:7001",
            ),
            ("route 0.0.0.0:7001 -> :1\nroute 127.0.0.1:7001 -> :2\n", 2, 7, "route 0.0.0.0:7001"),
            (
                "admin 127.0.0.1:7001\nroute :7001 -> :1\n",
                2,
                7,
                "admin 127.0.0.1:7001 and route 127.0.0.1:7001",
            ),
            ("route :7001 -> 127.0.0.1:7001\n", 1, 7, "forwards to its own listen address"),
            ("route :1 -> b:1\n\nroute :1 -> c:1", 3, 7, "both listen on"),
        ];
        for (text, line, column, message) in cases {
            let error = parse_ok(text).server_config(&[]).unwrap_err();
            let at = error.location().expect("a route's mistake has a position");
            assert_eq!((at.line, at.column), (line, column), "{text:?}: {error}");
            assert!(error.to_string().contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_example_in_the_docs_parses() {
        let doc = include_str!("../../docs/operations.md");
        let example = doc
            .split("```text\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/operations.md starts with a ```text example");
        let config = parse_ok(example);
        let names: Vec<_> = config.routes.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(names, [Some("web"), None, Some("postgres")]);
        let option = |route: &RouteSpec, key: &str| {
            route.options.iter().find(|o| o.setting.name == key).map(|o| o.text.text.clone())
        };
        assert_eq!(
            option(&config.routes[0], "allow").as_deref(),
            Some("10.0.0.0/8,192.168.0.0/16")
        );
        assert_eq!(option(&config.routes[1], "max-connections").as_deref(), Some("20"));
    }

    #[test]
    fn an_empty_or_comment_only_file_has_no_routes() {
        for text in ["", "\n\n", "# nothing here\n   # indented comment\n"] {
            let config = parse_ok(text);
            assert!(config.routes.is_empty());
            assert!(config.globals.is_empty());
        }
    }

    #[test]
    fn tolerates_crlf_tabs_a_byte_order_mark_and_no_final_newline() {
        let text = "\u{feff}idle-timeout\t2m\r\nroute\t:8080 ->\tapp:80\r\n\tname=x";
        let config = parse_ok(text);
        assert_eq!(config.globals[0].text.text, "2m");
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
             proxy-protocol=v2 allow=10.0.0.0/8,192.168.0.0/16 allow=::1 deny=10.0.0.5 idle-timeout=1m"
        );
        let reparsed = parse_ok(&line);
        assert_eq!(reparsed.routes[0].to_string(), line);
        let texts = |route: &RouteSpec| -> Vec<(String, String)> {
            route.options.iter().map(|o| (o.setting.name.into(), o.text.text.clone())).collect()
        };
        assert_eq!(texts(&reparsed.routes[0]), texts(web));
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

    /// The names of the settings whose scope passes `keep`, in the order of [`SETTINGS`],
    /// as the error messages list them: adding a setting needs no edit to these tests.
    fn names(keep: impl Fn(Scope) -> bool) -> String {
        let kept = SETTINGS.iter().filter(|s| keep(s.scope)).map(|s| s.name);
        kept.collect::<Vec<_>>().join(", ")
    }

    #[test]
    fn global_setting_errors() {
        let globals = names(|scope| scope != Scope::RouteOnly);
        let unknown = format!(
            r#"expected a global setting ({globals}) or "route", found "conect-timeout" (did you mean "connect-timeout"?)"#
        );
        #[rustfmt::skip]
        let cases = [
            ("conect-timeout 5s", 1, 1, unknown.as_str()),
            ("idle-timeout=5m", 1, 1, r#"expected a space between a global setting and its value, found "idle-timeout=5m""#),
            ("allow 10.0.0.0/8", 1, 1, r#"found the route option "allow" (write allow=... on a route line)"#),
            ("\nidle-timeout", 2, 13, r#"expected a value after "idle-timeout", found end of line"#),
            ("idle-timeout 5m 10m", 1, 17, r#"expected end of line after "5m", found "10m""#),
            ("  drain-timeout soon", 1, 3, r#"expected a "route" line above this indented line"#),
            ("drain-timeout   soon", 1, 17, r#"expected a duration such as 250ms, 5s, 2m, 1h or 0, found "soon""#),
            ("max-connections 0", 1, 17, r#"expected a whole number from 1 to 65536, found "0""#),
            ("max-connections +5", 1, 17, r#"found "+5""#),
            ("connect-timeout 0", 1, 17, r#"expected a duration from 1ms to 10m, found "0""#),
            ("buffer-size 2g", 1, 13, r#"expected 0, or a size from 8k to 1m, found "2g""#),
            ("stack-size 1000g", 1, 12, r#"found "1000g""#),
            ("explain", 1, 8, r#"expected a value after "explain", found end of line"#),
            ("0.0.0.0 8080 10.0.0.2 80", 1, 1, r#"found a rinetd forwarding rule, written here as "route 0.0.0.0:8080 -> 10.0.0.2:80" (see "Migrating from rinetd" in docs/operations.md)"#),
            ("idle-timeout\u{a0}5m", 1, 1, r#"found "idle-timeout\u{a0}5m""#),
            ("idle-timeout 5m\u{b}", 1, 14, r#"found "5m\u{b}""#),
            ("log-level loud", 1, 11, r#"expected error, warn, info or debug, found "loud""#),
            ("policy rr", 1, 8, r#"expected first, round-robin or least-connections, found "rr""#),
            ("admin :9090\n# again\nadmin :9091", 3, 1, r#"expected each global setting once, found "admin" again (first on line 1)"#),
        ];
        assert_errors(&cases);
    }

    #[test]
    fn route_errors() {
        let options = names(|scope| scope != Scope::Process);
        let unknown = format!(r#"expected a route option (name, {options}), found "polcy""#);
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
            ("route a:1 -> b:1 polcy=first", 1, 18, unknown.as_str()),
            ("route a:1 -> b:1 admin=:1", 1, 18, r#"found "admin" (a global setting: write it before the first route)"#),
            ("route a:1 -> b:1 connect-timeout=0", 1, 34, r#"expected a duration from 1ms to 10m, found "0""#),
            ("route a:1 -> b:1 idle-timeout=1m\n    idle-timeout=2m", 2, 5, r#"expected each route option once, found "idle-timeout" again"#),
            ("route a:1 -> b:1 policy=", 1, 25, r#"expected first, round-robin or least-connections, found """#),
            ("route a:1 -> b:1\n  proxy-protocol=v3", 2, 18, r#"expected v1 or v2, found "v3""#),
            ("route a:1 -> b:1 allow=10.0.0.0/8,10.0.0.1/8", 1, 35, r#"expected a block that starts at its network address, like 10.0.0.0/8, found "10.0.0.1/8""#),
            ("route a:1 -> b:1 deny=10.0.0.0/8,", 1, 34, r#"expected an IPv4 or IPv6 address or block such as 10.0.0.0/8 or ::1/128, found """#),
            ("route a:1 -> b:1 name=", 1, 23, r#"expected a route name, found """#),
            ("route a:1 -> b:1 name=x\nroute c:1 -> d:1 name=x", 2, 23, r#"expected each route name once, found "x" again (route on line 1)"#),
            ("route a:1 -> b:1\n    idle-timeout 5m", 2, 5, r#"expected route options (KEY=VALUE) on an indented line, found "idle-timeout""#),
            ("route\n  a:1 -> b:1", 2, 3, r#"expected route options (KEY=VALUE) on an indented line, found "a:1""#),
            // The command line's comma list, written in a file.
            ("route a:1 -> b:1,c:1", 1, 14, r#"expected upstreams separated by spaces, found the comma list "b:1,c:1"; in a config file write "route a:1 -> b:1 c:1""#),
            ("route a:1 -> b:1, c:1 policy=first", 1, 14, r#"found the comma list "b:1,"; in a config file write "route a:1 -> b:1 c:1""#),
            ("route a:1 -> b:1 idle-timout=1m", 1, 18, r#"found "idle-timout" (did you mean "idle-timeout"?)"#),
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
        assert_eq!(config.routes[0].options[0].text.text, "::1");
    }

    /// A mistake found after parsing keeps what the layer below knew (the setting, the
    /// kind) and gains its place in the file.
    #[test]
    fn a_late_error_keeps_its_setting_and_gains_its_place() {
        let parsed = parse_ok("route :1 -> b:2\nroute unix:/r -> c:3 sni=b.test\n");
        let error = parsed.server_config(&[]).unwrap_err();
        let at = error.location().expect("a route's mistake has a position");
        assert_eq!((at.line, at.column), (2, 7), "{error}");
        assert!(matches!(error.kind(), ErrorKind::Conflict { route: Some(1), .. }), "{error:?}");
        let setting = settings::find("buffer-size").expect("a setting");
        let flag = Value { setting, text: "2g".to_string() };
        let error = parse_ok("route :1 -> b:2\n").server_config(&[flag]).unwrap_err();
        assert_eq!(error.setting_or_flag(), Some("buffer-size"), "{error}");
        assert_eq!(error.location().map(|at| (at.line, at.column)), Some((1, 7)), "{error}");
    }

    #[test]
    fn error_at_points_at_a_located_value() {
        let config = parse_ok("admin  :9090\n");
        let admin = &config.globals[0].text;
        let error = config.error_at(admin, "expected HOST:PORT, found \"nowhere\"");
        assert_eq!(error.to_string(), r#"relay.conf:1:8: expected HOST:PORT, found "nowhere""#);
    }

    #[test]
    fn load_reports_a_missing_file_without_a_position() {
        let path = Path::new("/nonexistent/tcprelay-test/relay.conf");
        let error = load(path).unwrap_err();
        let at = error.location().expect("a file's mistake names the file");
        assert_eq!((at.line, at.column), (0, 0));
        let text = error.to_string();
        assert!(
            text.starts_with(
                "/nonexistent/tcprelay-test/relay.conf: cannot read the config file: "
            ),
            "{text}"
        );
    }

    #[test]
    fn a_control_character_in_the_file_name_is_escaped() {
        let error = parse("x 1\n", Path::new("a\u{1b}[2Jb.conf")).unwrap_err();
        assert!(error.to_string().starts_with("a\\u{1b}[2Jb.conf:1:1: "), "{error}");
    }

    #[test]
    fn a_file_that_is_not_utf8_gets_its_line_and_column() {
        let error = parse_bytes(b"idle-timeout 5m\nroute :0 -> caf\xe9:1\n", Path::new("r.conf"))
            .unwrap_err();
        assert_eq!(error.to_string(), "r.conf:2:16: expected UTF-8 text, found the byte 0xe9");
    }

    #[test]
    #[cfg_attr(windows, ignore = "/dev/zero and FIFOs: Windows has no such files")]
    fn load_refuses_devices_fifos_directories_and_big_files() {
        let error = load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(error.to_string(), "/dev/zero: expected a regular file, found a device");
        let dir = std::env::temp_dir().join(format!("tcprelay-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = load(&dir).unwrap_err();
        assert!(error.to_string().contains("found a directory"), "{error}");
        let big = dir.join("big.conf");
        let mut text = "# padding\n".repeat((MAX_FILE_SIZE / 10) as usize + 1);
        text.push_str("route :0 -> :1\n");
        std::fs::write(&big, text).unwrap();
        let error = load(&big).unwrap_err();
        assert!(error.to_string().contains("at most 1048576 bytes"), "{error}");
        // A FIFO with no writer: opening it would block forever, so it must not be opened.
        let fifo = dir.join("fifo.conf");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|status| status.success()) {
            let error = load(&fifo).unwrap_err();
            assert!(error.to_string().contains("expected a regular file, found a FIFO"), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Mutated config files never panic the parser: 4,000 variations of the reference
    /// example (bytes flipped, inserted, deleted, lines duplicated, pieces of other
    /// settings spliced in), each either parsed or refused with a position.
    #[test]
    fn fuzzed_config_files_never_panic() {
        let pieces: &[&[u8]] = &[
            b" ",
            b"\t",
            b"\n",
            b"\r\n",
            b"=",
            b"->",
            b",",
            b"#",
            b"route",
            b"unix:",
            b"[",
            b"]",
            b":",
            b"0",
            b"99999999999999999999",
            b"\xe9",
            b"\xc2\xa0",
            b"\0",
            b"name=",
            b"allow=",
            b"buffer-size",
            b"explain on",
            b"+5",
            b"64g",
            b"\n    ",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4000 {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                    1 if at < bytes.len() => {
                        let end = (at + rng.below(20)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    2 => {
                        let piece = pieces[rng.below(pieces.len())];
                        bytes.splice(at..at, piece.iter().copied());
                    }
                    _ => {
                        let end = (at + rng.below(40)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                }
            }
            if let Ok(config) = parse_bytes(&bytes, Path::new("fuzz.conf")) {
                // Resolving names could wait on DNS: only the literal addresses go further.
                let literal = |l: &Located| {
                    !l.text.bytes().any(|b| b.is_ascii_alphabetic()) || l.text.starts_with("unix:")
                };
                if config.routes.iter().all(|r| literal(&r.listen)) {
                    if let Ok(server) = config.server_config(&[]) {
                        let _ = parse(&server.describe(), Path::new("again.conf"));
                    }
                }
            }
        }
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::settings::file::parse;
        use std::path::Path;
        use std::time::Duration;

        let text = "idle-timeout 5m\nroute 127.0.0.1:8080 -> app:80 idle-timeout=1m\n";
        let config = parse(text, Path::new("relay.conf")).unwrap();
        assert_eq!(config.routes[0].upstreams[0].text, "app:80");
        let server = config.server_config(&[]).unwrap();
        assert_eq!(server.routes[0].idle_timeout, Duration::from_secs(60));

        let error = parse("idle-timeout 5x\n", Path::new("relay.conf")).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"relay.conf:1:14: expected a duration such as 250ms, 5s, 2m, 1h or 0, found "5x""#
        );
    }
}
