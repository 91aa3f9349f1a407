//! The admin endpoint's client: `tcprelay reload`, `tcprelay drain` and `tcprelay status`,
//! so that a Kubernetes `preStop` hook, an init script or systemd's `ExecReload=` and
//! `ExecStop=` need no `curl`.
//!
//! Each sends one HTTP/1.1 request to the admin endpoint, named by `--admin ADDR` or taken
//! from the `admin` line of `--config FILE` (with its `admin-token-file`, unless
//! `--admin-token-file` is given), and prints the answer. With `--config`, a relay that has a
//! `pid-file` is first looked for where it says it listens, in `PIDFILE.admin` (see
//! server/admin_endpoint.rs): after the `admin` line is edited and before the reload that
//! moves the endpoint, the file names an address the relay does not listen on yet. Exit codes: 0 when the relay did
//! it; 1 when it refused or cannot be reached, with why on stderr; 2 for a usage mistake.
//!
//! `tcprelay drain` waits, by default, until the relay has finished draining and closed
//! its admin endpoint (at most the drain timeout the relay reports, plus a margin): a
//! `preStop` hook or `ExecStop=` must not return, and let SIGTERM follow, while
//! connections are still finishing. `--no-wait` returns once the drain has begun.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::address::Address;
use crate::settings::admin_access::AdminToken;
use crate::settings::{address, file, spelling, units};
use crate::untrusted_paths::open_regular_file;

/// What the client is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /reload`.
    Reload,
    /// `POST /drain`, then wait for the relay to finish.
    Drain,
    /// `GET /status`.
    Status,
    /// `POST /reopen-logs`: open the log file again, after logrotate renamed it.
    ReopenLogs,
}

impl Action {
    /// The subcommand that asks for it: `reload`, `drain` or `status`.
    pub fn from_word(word: &str) -> Option<Action> {
        match word {
            "reload" => Some(Action::Reload),
            "drain" => Some(Action::Drain),
            "status" => Some(Action::Status),
            "reopen-logs" => Some(Action::ReopenLogs),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Drain => "drain",
            Action::Status => "status",
            Action::ReopenLogs => "reopen-logs",
        }
    }

    fn request(self) -> (&'static str, &'static str) {
        match self {
            Action::Reload => ("POST", "/reload"),
            Action::Drain => ("POST", "/drain"),
            Action::Status => ("GET", "/status"),
            Action::ReopenLogs => ("POST", "/reopen-logs"),
        }
    }
}

/// A client command line, parsed: where the admin endpoint is and how to get in.
#[derive(Debug)]
pub struct AdminRequest {
    /// What to do.
    pub action: Action,
    /// The admin endpoint.
    pub admin: Address,
    /// The token, when the endpoint wants one.
    pub token: Option<AdminToken>,
    /// For `drain`: wait until the relay has finished.
    pub wait: bool,
}

/// How long the client waits to connect and for the answer. A reload reads the file and
/// binds the new listeners, which takes milliseconds; this is generous.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read (`/status` of a big config is a few KiB).
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// After the drain timeout the relay reports, how much longer `drain` waits for it to
/// close its connections, write its last log lines and stop.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);

/// The largest runtime file read: two lines.
const MAX_RUNTIME_FILE_BYTES: u64 = 8192;

/// How long the client tries the address in a runtime file before it takes the config
/// file's: the endpoint is local, and answers a connect at once when it is there.
const RUNTIME_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often `drain` looks whether the relay has stopped.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The usage of the three subcommands, for their `--help`.
pub const USAGE: &str = "\
Usage: tcprelay reload|drain|status|reopen-logs (--admin ADDR | --config FILE)
                                                [--admin-token-file FILE] [--no-wait]
  reload   re-read the relay's --config file and apply it, keeping live connections
  drain    stop accepting, let connections finish, and wait until the relay has stopped
           (--no-wait: return once the drain has begun)
  status   print each route, its live connections (a UDP route's open flows), and each
           upstream with its state
  reopen-logs  open the --log-file again (after logrotate renamed it); no signal needed
--config FILE takes the admin address (and admin-token-file) from the file's globals, or,
when it has a pid-file, from PIDFILE.admin, which the running relay keeps up to date.
Exit status: 0 done, 1 refused or unreachable, 2 usage error.
";

/// Parses the arguments after `reload`, `drain` or `status`.
///
/// # Errors
/// The mistake, naming the flag or value: the binary prints it and exits with code 2.
pub fn parse(
    action: Action,
    args: impl Iterator<Item = Result<String, String>>,
) -> Result<Option<AdminRequest>, String> {
    let (mut admin, mut config, mut token_file, mut wait) = (None, None, None, true);
    let mut args = args;
    while let Some(arg) = args.next() {
        let arg = arg?;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let mut value = |slot: &Option<String>| -> Result<String, String> {
            if slot.is_some() {
                return Err(format!("{flag} given twice: give it once"));
            }
            match inline {
                Some(value) => Ok(value.to_string()),
                None => args.next().unwrap_or_else(|| Err(format!("{flag} needs a value"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--admin" => admin = Some(value(&admin)?),
            "--config" => config = Some(value(&config)?),
            "--admin-token-file" => token_file = Some(value(&token_file)?),
            "--no-wait" if action == Action::Drain && inline.is_none() => wait = false,
            _ if flag.starts_with('-') => {
                let known = ["--admin", "--config", "--admin-token-file", "--no-wait", "--help"];
                let hint = spelling::did_you_mean(&flag, known);
                return Err(format!("unknown flag {flag:?} for tcprelay {}{hint}", action.word()));
            }
            _ => return Err(format!("unexpected argument {arg:?} after {}", action.word())),
        }
    }
    let (admin, file_token) = match (admin, config) {
        (Some(_), Some(_)) => {
            return Err("give --admin ADDR or --config FILE, not both".to_string());
        }
        (None, None) => {
            return Err(format!("tcprelay {} needs --admin ADDR or --config FILE", action.word()));
        }
        (Some(text), None) => {
            (address::parse_listen_address(&text).map_err(|e| format!("--admin: {e}"))?, None)
        }
        (None, Some(path)) => from_config_file(Path::new(&path))?,
    };
    let token = match token_file.map(PathBuf::from).or(file_token) {
        Some(path) => Some(AdminToken::read(&path).map_err(|e| format!("admin-token-file: {e}"))?),
        None => None,
    };
    Ok(Some(AdminRequest { action, admin, token, wait }))
}

/// The admin address and token file of a config file's globals.
fn from_config_file(path: &Path) -> Result<(Address, Option<PathBuf>), String> {
    let parsed = file::load(path).map_err(|error| error.to_string())?;
    let global = |name: &str| parsed.globals.iter().find(|value| value.setting.name == name);
    if let Some(pid_file) = global("pid-file") {
        let pid_file = Path::new(&pid_file.text.text);
        if relay_is_running(pid_file) {
            if let Some(running) = running_admin(&runtime_file_of(pid_file)) {
                return Ok(running);
            }
        }
    }
    let Some(admin) = global("admin") else {
        return Err(format!(
            "{} has no admin line, so the relay has no admin endpoint to ask; add \
             `admin 127.0.0.1:9090` (or a unix: path) there, or give --admin ADDR",
            path.display()
        ));
    };
    let address = address::parse_listen_address(&admin.text.text)
        .map_err(|error| error.at(parsed.location(&admin.text)).to_string())?;
    let token = global("admin-token-file").map(|value| PathBuf::from(&value.text.text));
    Ok((address, token))
}

/// `/run/tcprelay/tcprelay.pid` → `/run/tcprelay/tcprelay.pid.admin`: where a relay with that
/// pid file keeps its admin endpoint's address.
pub(crate) fn runtime_file_of(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".admin");
    PathBuf::from(name)
}

/// Whether `pid_file` names a running tcprelay. A relay killed by a signal (SIGTERM too: std
/// cannot catch it) leaves its runtime file behind, naming an address that any local user
/// may listen on once the relay is gone; the client would send the token there, though the
/// config file's `admin` line may since name another. Read without waiting on a FIFO.
fn relay_is_running(pid_file: &Path) -> bool {
    let Ok((file, _)) = open_regular_file(pid_file) else { return false };
    let mut text = String::new();
    if file.take(MAX_RUNTIME_FILE_BYTES).read_to_string(&mut text).is_err() {
        return false;
    }
    text.trim().parse().is_ok_and(crate::untrusted_paths::is_tcprelay)
}

/// The admin endpoint (and its token file) a running relay wrote to `runtime_file`, if the
/// file is there, can be trusted (see [`written_by_the_relay`]) and the endpoint takes a
/// connection: a relay that was killed leaves its file behind, naming an address nobody
/// listens on.
fn running_admin(runtime_file: &Path) -> Option<(Address, Option<PathBuf>)> {
    // Opened first, then checked: the path may change between a check and an open. Never
    // waiting: another user may plant a FIFO there.
    let (file, _) = open_regular_file(runtime_file).ok()?;
    if !written_by_the_relay(&file, runtime_file) {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_RUNTIME_FILE_BYTES).read_to_string(&mut text).ok()?;
    let (mut admin, mut token) = (None, None);
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("admin", value)) => admin = address::parse_listen_address(value).ok(),
            Some(("admin-token-file", value)) => token = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    let admin = admin?;
    connect(&admin, RUNTIME_PROBE_TIMEOUT).ok()?;
    Some((admin, token))
}

/// Whether the runtime file may be believed. The client sends the token to the address it
/// names, so a file planted by another user (a pid file in `/tmp`) would collect the token:
/// the file must be a regular file that only its owner may write, owned by root, by the
/// user running the client, or by the owner of its directory (the relay's user owns
/// `RuntimeDirectory=`), in a directory others may not write to unless it is sticky (where
/// they cannot replace a file they do not own). Elsewhere than Unix, never.
#[cfg(unix)]
fn written_by_the_relay(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    const STICKY: u32 = 0o1000;
    let (Ok(metadata), Some(directory)) = (file.metadata(), path.parent()) else {
        return false;
    };
    let directory = if directory.as_os_str().is_empty() { Path::new(".") } else { directory };
    let Ok(directory) = std::fs::metadata(directory) else { return false };
    // /proc/self belongs to the process's effective user (Linux).
    let me = std::fs::metadata("/proc/self").map(|own| own.uid()).ok();
    let owner = metadata.uid();
    let trusted_owner = owner == 0 || Some(owner) == me || owner == directory.uid();
    let only_owner_writes = metadata.mode() & 0o022 == 0;
    let directory_guarded = directory.mode() & 0o022 == 0 || directory.mode() & STICKY != 0;
    metadata.is_file() && trusted_owner && only_owner_writes && directory_guarded
}

#[cfg(not(unix))]
fn written_by_the_relay(_file: &std::fs::File, _path: &Path) -> bool {
    false
}

/// Sends the request and prints the answer; the exit code as the module docs say.
pub fn run(request: &AdminRequest) -> ExitCode {
    let word = request.action.word();
    let (status, body) = match ask(request) {
        Ok(answer) => answer,
        Err(Unanswered::Unreachable(error)) => {
            eprintln!(
                "tcprelay {word}: cannot reach the admin endpoint {}: {error}",
                request.admin
            );
            return ExitCode::FAILURE;
        }
        Err(Unanswered::NoAnswer(error)) => {
            eprintln!("{}", no_answer(request, &error));
            return ExitCode::FAILURE;
        }
    };
    if !(200..300).contains(&status) {
        eprint!("tcprelay {word}: the relay answered {status}: {body}");
        if !body.ends_with('\n') {
            eprintln!();
        }
        return ExitCode::FAILURE;
    }
    print!("{body}");
    if request.action == Action::Drain && request.wait {
        let timeout = drain_timeout_of(&body).unwrap_or(Duration::ZERO) + DRAIN_MARGIN;
        if !wait_until_stopped(&request.admin, timeout) {
            eprintln!(
                "tcprelay drain: the relay still answers after {}; it may still be draining",
                units::format_duration(timeout)
            );
            return ExitCode::FAILURE;
        }
        println!("drained: the relay has stopped");
    }
    ExitCode::SUCCESS
}

/// `draining, up to 30s` → 30 s, `draining after a grace of 5s, up to 30s` → 35 s: how
/// long the drain the relay answered `POST /drain` with may take.
fn drain_timeout_of(body: &str) -> Option<Duration> {
    let line = body.lines().next()?;
    let timeout = units::parse_duration(line.split("up to ").nth(1)?.trim()).ok()?;
    let grace = match line.split("grace of ").nth(1) {
        Some(after) => units::parse_duration(after.split(',').next()?.trim()).ok()?,
        None => Duration::ZERO,
    };
    Some(grace + timeout)
}

/// Whether the admin endpoint stops answering within `timeout`: the relay stops it after
/// its last route has drained, just before it exits.
fn wait_until_stopped(admin: &Address, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if connect(admin, POLL_EVERY).is_err() {
            return true;
        }
        thread::sleep(POLL_EVERY);
    }
    false
}

/// Why a request got no answer: it never reached the relay, or it did (and the relay may
/// have carried it out) but no answer came back.
#[derive(Debug)]
enum Unanswered {
    Unreachable(io::Error),
    NoAnswer(io::Error),
}

/// What to say when the request was sent but no answer came back: never a bare OS error
/// (a read timeout is `os error 11` on Linux), and never "cannot reach", since the relay
/// may well have done it.
fn no_answer(request: &AdminRequest, error: &io::Error) -> String {
    let (word, (method, path)) = (request.action.word(), request.action.request());
    let why = match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no answer came within {}", units::format_duration(ANSWER_TIMEOUT))
        }
        _ => format!("the answer was cut off ({error})"),
    };
    let look = match request.action {
        Action::Reload => ": look for `config reloaded` or `reload refused` in its log",
        Action::Drain => ": `tcprelay status` answers until the drain ends",
        Action::Status => "",
        Action::ReopenLogs => ": see whether new lines reach the new file",
    };
    format!(
        "tcprelay {word}: {method} {path} reached the admin endpoint {} but {why}; the relay \
         may still have done it{look}",
        request.admin
    )
}

/// One request, one answer: the status code and the body.
fn ask(request: &AdminRequest) -> Result<(u16, String), Unanswered> {
    let mut stream = connect(&request.admin, ANSWER_TIMEOUT).map_err(Unanswered::Unreachable)?;
    let (method, path) = request.action.request();
    let host = match &request.admin {
        Address::Tcp(addr) => reachable(*addr).to_string(),
        Address::Unix(_) => "localhost".to_string(),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcprelay/{}\r\n\
         Content-Length: 0\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = &request.token {
        head.push_str(&format!("Authorization: {}\r\n", token.bearer()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(Unanswered::Unreachable)?;
    stream.shutdown_write();
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer).map_err(Unanswered::NoAnswer)?;
    parse_answer(&answer).map_err(Unanswered::NoAnswer)
}

/// `HTTP/1.1 200 OK\r\n...\r\n\r\nBODY` → (200, BODY).
fn parse_answer(answer: &[u8]) -> io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let status_line = head.lines().next().ok_or_else(invalid)?;
    let mut words = status_line.split(' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().and_then(|code| code.parse().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => Ok((code, body.to_string())),
        _ => Err(invalid()),
    }
}

/// A connected admin socket, TCP or Unix, with `timeout` on connect, reads and writes.
enum Connection {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Connection {
    fn shutdown_write(&self) {
        let _ = match self {
            Connection::Tcp(stream) => stream.shutdown(Shutdown::Write),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => stream.read(buf),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => stream.write(buf),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connect(admin: &Address, timeout: Duration) -> io::Result<Connection> {
    match admin {
        Address::Tcp(addr) => {
            let stream = TcpStream::connect_timeout(&reachable(*addr), timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Connection::Tcp(stream))
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Connection::Unix(stream))
        }
        #[cfg(not(unix))]
        Address::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix domain sockets are not supported on this platform",
        )),
    }
}

/// An admin endpoint bound to a wildcard (`0.0.0.0`, `::`) is reached through loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_bad_ones_refused() {
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nok\n").unwrap(),
            (200, "ok\n".into())
        );
        assert_eq!(parse_answer(b"HTTP/1.0 409 Conflict\r\n\r\n").unwrap().0, 409);
        for bad in [&b""[..], b"HTTP/1.1 200 OK\r\n", b"SSH-2.0\r\n\r\n", b"HTTP/1.1 x OK\r\n\r\n"]
        {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reload_sent_but_unanswered_says_it_may_have_been_applied() {
        let request = AdminRequest {
            action: Action::Reload,
            admin: Address::Tcp("127.0.0.1:9090".parse().unwrap()),
            token: None,
            wait: true,
        };
        // What a read timeout is: EAGAIN (11 on Linux, 35 on macOS and the BSDs), and
        // WSAETIMEDOUT (10060) on Windows.
        let code = if cfg!(windows) {
            10060
        } else if cfg!(any(target_vendor = "apple", target_os = "freebsd")) {
            35
        } else {
            11
        };
        let timed_out = io::Error::from_raw_os_error(code);
        let message = no_answer(&request, &timed_out);
        assert!(message.contains("POST /reload reached the admin endpoint 127.0.0.1:9090"));
        assert!(message.contains("no answer came within 30s"), "{message}");
        assert!(message.contains("may still have done it"), "{message}");
        assert!(message.contains("config reloaded"), "{message}");
        assert!(!message.contains("os error") && !message.contains("cannot reach"), "{message}");
        let cut = no_answer(&request, &io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(cut.contains("the answer was cut off"), "{cut}");
    }

    #[test]
    fn the_drain_answer_names_its_timeout() {
        assert_eq!(drain_timeout_of("draining, up to 30s\n"), Some(Duration::from_secs(30)));
        assert_eq!(drain_timeout_of("draining, up to 250ms\n"), Some(Duration::from_millis(250)));
        assert_eq!(
            drain_timeout_of("draining after a grace of 5s, up to 30s\n"),
            Some(Duration::from_secs(35))
        );
        assert_eq!(drain_timeout_of("ok\n"), None);
    }

    fn args(words: &[&str]) -> impl Iterator<Item = Result<String, String>> {
        words.iter().map(|word| Ok(word.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn usage_mistakes_name_the_flag() {
        let cases: [(&[&str], &str); 6] = [
            (&[], "needs --admin ADDR or --config FILE"),
            (&["--admin"], "--admin needs a value"),
            (&["--admin", ":1", "--admin", ":2"], "--admin given twice"),
            (&["--admin", ":1", "--config", "x"], "not both"),
            (&["--admin", "nope"], "--admin: invalid address \"nope\""),
            (&["--frobnicate"], "unknown flag \"--frobnicate\" for tcprelay status"),
        ];
        for (words, expected) in cases {
            let error = parse(Action::Status, args(words)).unwrap_err();
            assert!(error.contains(expected), "{words:?}: {error}");
        }
        let error = parse(Action::Status, args(&["--admin", ":1", "--no-wait"])).unwrap_err();
        assert!(error.contains("unknown flag \"--no-wait\""), "{error}");
        let drain = parse(Action::Drain, args(&["--admin=:9090", "--no-wait"])).unwrap().unwrap();
        assert_eq!(drain.admin.to_string(), "127.0.0.1:9090");
        assert!(!drain.wait);
    }
}
