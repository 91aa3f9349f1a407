//! Another local user, for tests that race the relay the way a less-privileged user would:
//! `nobody`, reached with `setpriv` (util-linux). Such tests need root, as CI has; run
//! without it, they say why and return.

use std::path::Path;
use std::process::Command;

/// `nobody`'s uid and gid on Debian (`nobody:nogroup`).
pub const NOBODY: u32 = 65534;

/// Whether this test runs as root (the effective uid in /proc/self/status is 0). When it
/// does not, prints that `test` needs root and why, for the test to return.
pub fn running_as_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(str::to_owned));
    let root = euid.as_deref() == Some("0");
    if !root {
        println!("{test}: skipped, it needs root to act as another user (CI runs as root)");
    }
    root
}

/// `program` to be run as `nobody:nogroup` with no supplementary groups.
pub fn as_nobody(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", program]);
    command
}

/// Gives `path` to `nobody:nogroup` (a symbolic link itself, never what it points to).
pub fn give_to_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|e| panic!("the test gives {} to nobody: {e}", path.display()));
}

/// A process of another user's racing the relay; killed and reaped when dropped, also when
/// the test fails (else it would spin on, holding the test's output pipes open).
pub struct Racer(std::process::Child);

impl Racer {
    /// Runs the Perl `script` as `nobody` (Perl is in every Debian system: `perl-base`).
    pub fn perl_as_nobody(script: &str) -> Racer {
        let child = as_nobody("perl")
            .args(["-e", script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the racer");
        Racer(child)
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
