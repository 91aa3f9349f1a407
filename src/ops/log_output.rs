//! Where the log's lines go and in what shape: stderr (the default), an appended file
//! (`--log-file`), syslog (`--syslog`), as logfmt or JSON (`--log-format`).
//!
//! A router's init (BusyBox `start-stop-daemon -b`, procd without `stderr 1`) leaves stderr
//! on `/dev/null`, and routers have no journal: there the log must reach a file or the
//! system's `syslogd` itself, as rinetd's `logfile` and nginx's `error_log syslog:` do.
//!
//! Only the log's writer thread (`src/ops/log.rs`) writes here, so a sink that is slow costs
//! log lines (the writer's queue fills, lines are dropped and counted), never connections.
//! The syslog socket is non-blocking besides: a `syslogd` that does not read costs the
//! lines it misses, counted, and never holds up the writer.
//!
//! # The log file
//!
//! Opened for appending, created with mode 0640 (less the umask; Debian's rsyslog makes its
//! files 0640 for the `adm` group to read). A root relay must not be steered into
//! appending to another file by whoever can write to the log's directory, so it never
//! acts on what a path resolves to later than the moment it opens it:
//!
//! - a new file is created with `O_CREAT|O_EXCL`, which does not follow a symlink left at
//!   the path, and fails if anything is there;
//! - an existing one must be a regular file with one link (not a symlink, not a hard link
//!   to some other file), and the file opened (`O_NONBLOCK`, so a FIFO swapped in cannot
//!   hang the open) must be that same file (device and inode), else it is refused.
//!
//! Off Unix (Windows) std offers no mode bits, no `O_NONBLOCK` and no stable file identity:
//! the file is created with the directory's inherited permissions, and an existing path is
//! still refused if it is a symbolic link or not a regular file, but the file opened is not
//! compared with the one checked, nor its links counted (docs/targets.md).
//!
//! `tcprelay reopen-logs` (`POST /reopen-logs`) and every reload open the path again, so
//! logrotate can rename the file and have the relay write a new one, without signals
//! (std cannot catch SIGHUP or SIGUSR1).
//!
//! # Syslog
//!
//! RFC 3164 (the BSD format), one datagram per line, to a Unix datagram socket
//! (`unix:/dev/log`) or over UDP (`HOST:PORT`, resolved once at start). Not RFC 5424: BusyBox
//! `syslogd` and OpenWrt's `logd`, the daemons of the devices this is for, parse only the
//! BSD header, and rsyslog and syslog-ng read it too. Like glibc's `syslog(3)`, the datagram
//! to a local socket carries no host name (the daemon adds its own); over UDP it does, as
//! RFC 3164 asks. Facility `daemon`; the severity follows the line's level. The header's
//! time is UTC (std knows no time zone). The logfmt `ts=` field is left out of the message,
//! since the header carries the time (to the second; JSON lines keep their `ts`). Off Unix
//! there are no Unix datagram sockets: `unix:` is refused at start, UDP works.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
#[cfg(unix)]
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::SystemTime;

use crate::ops::log_time::BsdTime;
use crate::settings::logging::{LogOutput, SyslogAddress};
#[cfg(unix)]
use crate::untrusted_paths::O_NONBLOCK;

impl LogOutput {
    /// Whether the lines go somewhere other than stderr: a file, syslog or both.
    pub fn replaces_stderr(&self) -> bool {
        self.file.is_some() || self.syslog.is_some()
    }

    /// What to tell the operator at start about a sink that will lose every line until
    /// something changes: a `unix:` syslog path with no socket there (no `syslogd` running
    /// yet, or another path). Not refused: a daemon started later is found then, since every
    /// line is sent to the path anew.
    pub fn warning(&self) -> Option<String> {
        let Some(SyslogAddress::Unix(path)) = &self.syslog else {
            return None;
        };
        #[cfg(unix)]
        let is_socket = fs::metadata(path).is_ok_and(|found| found.file_type().is_socket());
        // Refused when the sinks open: no Unix datagram sockets here.
        #[cfg(not(unix))]
        let is_socket = true;
        (!is_socket).then(|| {
            format!(
                "--syslog unix:{}: no socket there (is syslogd running?): log lines are lost, \
                 and counted, until one listens there",
                path.display()
            )
        })
    }
}

/// The open sinks. Written only by the log's writer (or, without one, by one thread at a
/// time): see `src/ops/log.rs`.
#[derive(Debug)]
pub(crate) struct Sinks {
    /// Whether lines go to stderr: when no file and no syslog is named.
    stderr: bool,
    file: Option<File>,
    syslog: Option<Syslog>,
}

impl Sinks {
    /// Lines go to stderr only: the default.
    pub(crate) const fn stderr() -> Sinks {
        Sinks { stderr: true, file: None, syslog: None }
    }

    /// Opens the sinks `output` names.
    ///
    /// # Errors
    /// Why the file or the syslog address cannot be used, naming it.
    pub(crate) fn open(output: &LogOutput) -> io::Result<Sinks> {
        let file = output.file.as_deref().map(open_log_file).transpose()?;
        let syslog = output.syslog.as_ref().map(Syslog::open).transpose()?;
        Ok(Sinks { stderr: !output.replaces_stderr(), file, syslog })
    }

    /// Puts `file` in place of the log file (after a `reopen-logs`); the old one is closed.
    pub(crate) fn replace_file(&mut self, file: File) {
        self.file = Some(file);
    }

    /// Writes one line, newline included, to every sink; `severity` is its syslog
    /// severity (RFC 3164: 3 error, 4 warning, 6 info, 7 debug). Returns whether every
    /// sink took it: a line one of them refused counts as dropped.
    pub(crate) fn write(&mut self, severity: u8, line: &str) -> bool {
        let mut written = true;
        if self.stderr {
            written &= io::stderr().write_all(line.as_bytes()).is_ok();
        }
        if let Some(file) = &mut self.file {
            written &= file.write_all(line.as_bytes()).is_ok();
        }
        if let Some(syslog) = &self.syslog {
            written &= syslog.send(severity, line, SystemTime::now()).is_ok();
        }
        written
    }
}

/// Opens `path` for appending, creating it 0640, without following a symlink planted there
/// and without hanging on a FIFO (see the module docs).
///
/// # Errors
/// The reason, naming the path: it cannot be created or opened, it is not a regular file
/// with one link, or it changed while it was being opened.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    let named = |error: io::Error| {
        io::Error::new(error.kind(), format!("cannot open log file {}: {error}", path.display()))
    };
    let refused = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing log file {}: {why}", path.display()),
        )
    };
    let mut options = OpenOptions::new();
    options.append(true);
    #[cfg(unix)]
    options.mode(0o640).custom_flags(O_NONBLOCK);
    match options.clone().create_new(true).open(path) {
        Ok(file) => return Ok(file),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(named(error)),
    }
    let seen = fs::symlink_metadata(path).map_err(named)?;
    if seen.file_type().is_symlink() {
        return Err(refused("it is a symbolic link; name the file itself"));
    }
    if !seen.file_type().is_file() {
        return Err(refused("it is not a regular file"));
    }
    let file = options.open(path).map_err(named)?;
    let opened = file.metadata().map_err(named)?;
    #[cfg(unix)]
    if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
        return Err(refused("it was replaced while being opened"));
    }
    if !opened.is_file() {
        return Err(refused("it was replaced while being opened"));
    }
    #[cfg(unix)]
    if opened.nlink() != 1 {
        return Err(refused("it has other hard links, so it may be some other file"));
    }
    Ok(file)
}

/// A syslog daemon, reached by datagrams that never wait.
#[derive(Debug)]
struct Syslog {
    socket: SyslogSocket,
    /// `HOSTNAME ` for UDP (RFC 3164 puts it in the header), empty for a local socket.
    host: String,
    /// `tcprelay[PID]`: the header's tag.
    tag: String,
}

#[derive(Debug)]
enum SyslogSocket {
    /// Unbound, sending to the path each time: a restarted daemon's new socket is found.
    #[cfg(unix)]
    Unix(UnixDatagram, std::path::PathBuf),
    /// Connected to the daemon's address.
    Udp(UdpSocket),
}

/// RFC 3164's facility `daemon` (3), times 8, as the priority wants it.
const FACILITY_DAEMON: u8 = 3 * 8;

impl Syslog {
    fn open(address: &SyslogAddress) -> io::Result<Syslog> {
        let named = |error: io::Error| {
            io::Error::new(error.kind(), format!("cannot use syslog at {address}: {error}"))
        };
        let (socket, host) = match address {
            #[cfg(unix)]
            SyslogAddress::Unix(path) => {
                let socket = UnixDatagram::unbound().map_err(named)?;
                (SyslogSocket::Unix(socket, path.clone()), String::new())
            }
            #[cfg(not(unix))]
            SyslogAddress::Unix(_) => {
                let no_socket =
                    io::Error::new(io::ErrorKind::Unsupported, "no Unix domain sockets here");
                return Err(named(no_socket));
            }
            SyslogAddress::Udp(host_port) => {
                let daemon =
                    host_port.to_socket_addrs().map_err(named)?.next().ok_or_else(|| {
                        named(io::Error::new(io::ErrorKind::NotFound, "no address for it"))
                    })?;
                let any: std::net::SocketAddr = match daemon {
                    std::net::SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                    std::net::SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(any).map_err(named)?;
                socket.connect(daemon).map_err(named)?;
                (SyslogSocket::Udp(socket), format!("{} ", host_name()))
            }
        };
        match &socket {
            #[cfg(unix)]
            SyslogSocket::Unix(socket, _) => socket.set_nonblocking(true),
            SyslogSocket::Udp(socket) => socket.set_nonblocking(true),
        }
        .map_err(named)?;
        Ok(Syslog { socket, host, tag: format!("tcprelay[{}]", std::process::id()) })
    }

    /// Sends one line as one datagram; an error (the daemon's queue full: `WouldBlock`; no
    /// daemon) loses the line, and the caller counts it.
    fn send(&self, severity: u8, line: &str, now: SystemTime) -> io::Result<()> {
        let datagram = self.datagram(severity, line, now);
        match &self.socket {
            #[cfg(unix)]
            SyslogSocket::Unix(socket, path) => socket.send_to(datagram.as_bytes(), path),
            SyslogSocket::Udp(socket) => socket.send(datagram.as_bytes()),
        }
        .map(drop)
    }

    /// `<PRI>Mmm dd hh:mm:ss [HOST ]tcprelay[PID]: MESSAGE`, RFC 3164 section 4.1.
    fn datagram(&self, severity: u8, line: &str, now: SystemTime) -> String {
        let message = line.trim_end_matches('\n');
        // The header has the time: leave out logfmt's own `ts=` (JSON keeps its field).
        let message = message
            .strip_prefix("ts=")
            .and_then(|rest| rest.split_once(' '))
            .map_or(message, |(_, rest)| rest);
        let priority = FACILITY_DAEMON + severity.min(7);
        format!("<{priority}>{} {}{}: {message}", BsdTime(now), self.host, self.tag)
    }
}

/// This machine's name, for the header of syslog over UDP; `localhost` if unknown.
fn host_name() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match name.trim() {
        "" => "localhost".to_string(),
        name => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_syslog_datagram_has_the_bsd_header_and_no_second_timestamp() {
        let syslog = Syslog {
            // Any socket: only the datagram's text is looked at.
            socket: SyslogSocket::Udp(UdpSocket::bind("127.0.0.1:0").unwrap()),
            host: String::new(),
            tag: "tcprelay[42]".into(),
        };
        // 2026-12-07T07:05:09Z
        let at = UNIX_EPOCH + Duration::from_secs(1_796_627_109);
        let line = "ts=2026-12-07T07:05:09.000Z level=warn msg=\"upstream down\" upstream=b:1\n";
        assert_eq!(
            syslog.datagram(4, line, at),
            "<28>Dec  7 07:05:09 tcprelay[42]: level=warn msg=\"upstream down\" upstream=b:1"
        );
        let udp = Syslog { host: "router ".into(), ..syslog };
        assert_eq!(
            udp.datagram(6, "{\"msg\":\"x\"}\n", at),
            "<30>Dec  7 07:05:09 router tcprelay[42]: {\"msg\":\"x\"}"
        );
    }
}
