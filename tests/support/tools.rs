//! The programs some tests drive, found the way those tests need them: OpenBSD's `nc`, and
//! `unshare` where namespaces may be made.

use std::process::{Command, Stdio};

/// What a test that needs OpenBSD's `nc` says when it finds none. ncat, GNU and traditional
/// netcat and busybox all answer to `nc`, but their flags differ (`-N`, `-d`, what `-v -l`
/// prints), so the lab's commands would fail in ways that do not say why.
pub const NOT_OPENBSD_NC: &str = "nc is not OpenBSD netcat: apt-get install netcat-openbsd";

/// OpenBSD's `nc`, looked up once on `PATH` (see [`find_openbsd_nc`]); panics with
/// [`NOT_OPENBSD_NC`] when there is none.
pub fn openbsd_nc() -> &'static std::path::Path {
    static FOUND: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    let found =
        FOUND.get_or_init(|| find_openbsd_nc(&std::env::var_os("PATH").unwrap_or_default()));
    found.as_deref().unwrap_or_else(|message| panic!("{message}"))
}

/// The first OpenBSD netcat in the directories of `path` (a `PATH` value): `nc.openbsd`
/// first, Debian's own name for it, which is there whatever `nc` the alternatives system
/// points at; then `nc`. A program counts as OpenBSD's when its `-h` output says
/// "OpenBSD netcat" (`OpenBSD netcat (Debian patchlevel 1.219-1)`). Otherwise the error is
/// [`NOT_OPENBSD_NC`].
pub fn find_openbsd_nc(path: &std::ffi::OsStr) -> Result<std::path::PathBuf, String> {
    let says_openbsd = |program: &std::path::Path| {
        Command::new(program)
            .arg("-h")
            .stdin(Stdio::null())
            .output()
            .map(|out| [out.stdout, out.stderr].concat())
            .is_ok_and(|help| String::from_utf8_lossy(&help).contains("OpenBSD netcat"))
    };
    ["nc.openbsd", "nc"]
        .into_iter()
        .filter_map(|name| {
            std::env::split_paths(path).map(|dir| dir.join(name)).find(|p| p.is_file())
        })
        .find(|program| says_openbsd(program))
        .ok_or_else(|| NOT_OPENBSD_NC.to_string())
}

/// Whether `unshare NAMESPACE_FLAGS true` works here: making PID or mount namespaces takes
/// root (or the capability) and a kernel and container that allow it. Prints why not, for
/// the test that then returns (CI runs as root).
pub fn unshare_allowed(namespace_flags: &[&str]) -> bool {
    let probe =
        Command::new("unshare").args(namespace_flags).arg("true").stderr(Stdio::piped()).output();
    match probe {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            let why = String::from_utf8_lossy(&output.stderr);
            eprintln!(
                "skipped: `unshare {}` is not permitted here: {why}",
                namespace_flags.join(" ")
            );
            false
        }
        Err(error) => {
            eprintln!("skipped: cannot run unshare (util-linux): {error}");
            false
        }
    }
}

/// Connects to `to` from the loopback address `source` (`127.0.0.2`: std cannot choose a
/// client's source address, OpenBSD netcat's `-s` can), sends `bytes`, half-closes, and
/// returns what came back before the relay or the upstream closed (at most 5 s of quiet).
pub fn exchange_from(source: &str, to: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let port = to.port().to_string();
    let mut child = Command::new(openbsd_nc())
        .args(["-N", "-w", "5", "-s", source, &to.ip().to_string(), &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run OpenBSD nc");
    {
        let mut stdin = child.stdin.take().expect("nc's stdin is piped");
        // nc may already have exited (the relay closed at once): what it read says so.
        let _ = stdin.write_all(bytes);
    } // closing stdin: nc -N half-closes
    child.wait_with_output().expect("nc finished").stdout
}
