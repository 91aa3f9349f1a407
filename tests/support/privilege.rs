//! Another local user, for tests that race the relay the way a less-privileged user would:
//! `nobody`, reached with `setpriv` (util-linux). Such tests need root, as CI has; run
//! without it, they say why and return.

use std::process::Command;

/// `nobody`'s uid and gid on Debian (`nobody:nogroup`).
pub const NOBODY: u32 = 65534;

/// Whether this test can act as another user: it runs as root (the effective uid in
/// /proc/self/status is 0) and `nobody` exists in its user namespace (/proc/self/uid_map
/// maps 65534). tests/targets.sh runs a foreign target's tests in a user namespace that maps
/// root alone, where `setpriv` and `chown` to nobody fail with EINVAL. When it cannot,
/// prints why `test` is skipped, for the test to return.
pub fn running_as_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        println!("{test}: skipped, it needs root to act as another user (CI runs as root)");
        return false;
    }
    if !nobody_is_mapped() {
        println!("{test}: skipped, this user namespace maps no uid {NOBODY} (nobody) to act as");
        return false;
    }
    true
}

/// Whether uid [`NOBODY`] exists in this process's user namespace: some line of
/// /proc/self/uid_map (`INSIDE OUTSIDE COUNT`) covers it.
fn nobody_is_mapped() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.lines().any(|line| {
        let numbers: Vec<u64> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        matches!(numbers[..], [inside, _, count] if (inside..inside + count).contains(&u64::from(NOBODY)))
    })
}

/// `program` to be run as `nobody:nogroup` with no supplementary groups.
pub fn as_nobody(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", program]);
    command
}

/// Gives `path` to `nobody:nogroup` (a symbolic link itself, never what it points to).
#[cfg(unix)]
pub fn give_to_nobody(path: &std::path::Path) {
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
