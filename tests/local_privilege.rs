//! A local user who can write to a directory the relay uses (issue 22, "Local privilege"):
//! the socket files, the pid file and the config file the relay handles there. Each test
//! acts as that user would, racing or planting with `nobody`'s rights (`setpriv`), against
//! a relay running as root; docs/reliability.md's threat model names them.
//!
//! They need root, and `setpriv`/`unshare` (util-linux) and `mkfifo` (coreutils): CI runs
//! them as root; run without root, each says why and returns.
#![forbid(unsafe_code)]
#![cfg(target_os = "linux")]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// A directory of its own for each test, in the system's temp dir, made afresh.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcprelay-local-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("the test makes {}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("the test opens {} to other users: {e}", dir.display()));
    dir
}

/// A root-owned 0600 file, the kind a swapped path must never reach: its owner, mode and
/// content are checked after the attack.
fn victim(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    std::fs::write(&victim, "root's secret\n").expect("the test writes the victim file");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600))
        .expect("the test makes the victim 0600");
    victim
}

/// The victim's owner, group, mode and content, to compare before and after.
fn state_of(victim: &Path) -> (u32, u32, u32, String) {
    let metadata = std::fs::metadata(victim).expect("the victim file is still there");
    let content = std::fs::read_to_string(victim).expect("the victim file is readable");
    (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777, content)
}

/// The pid file's temporary file once was `PATH.<pid>.tmp`, written with `fs::write`: a
/// user who planted `PATH.<pid>.tmp -> victim` for the likely pid had root truncate the
/// victim. Here the relay is PID 1 of a fresh PID namespace (`unshare --pid --fork`), so
/// the old name was certain: the links are planted for pids 1 and 2. The victim is intact,
/// and the pid file is a regular file holding the relay's pid.
#[test]
fn the_pid_file_is_never_written_through_a_planted_symlink() {
    if !running_as_root("the_pid_file_is_never_written_through_a_planted_symlink") {
        return;
    }
    let dir = test_dir("pid-symlink");
    let victim = victim(&dir);
    let before = state_of(&victim);
    let pid_path = dir.join("tcprelay.pid");
    for pid in [1, 2] {
        let planted = dir.join(format!("tcprelay.pid.{pid}.tmp"));
        symlink(&victim, &planted).expect("the test plants a link");
        std::os::unix::fs::lchown(&planted, Some(NOBODY), Some(NOBODY)).expect("nobody's link");
    }
    let upstream = Upstream::echo();
    let relay = RelayProcess::start_program(
        Path::new("unshare"),
        &[
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            env!("CARGO_BIN_EXE_tcprelay"),
            "-l",
            "127.0.0.1:0",
            "-u",
            &upstream.addr.to_string(),
            "--pid-file",
            pid_path.to_str().expect("a UTF-8 temp path"),
        ],
    );
    assert!(eventually(|| pid_path.exists()), "the relay wrote no pid file");
    let pid_file = std::fs::symlink_metadata(&pid_path).expect("the pid file");
    assert!(pid_file.is_file(), "the pid file is a regular file, not a link");
    assert_eq!(std::fs::read_to_string(&pid_path).expect("read the pid file"), "1\n");
    assert_eq!(state_of(&victim), before, "the victim was written through a planted link");
    drop(relay);
    std::fs::remove_dir_all(&dir).expect("the test removes its directory");
}

/// A pid file is respected only when root or the relay's own user owns it. Another user's
/// pid file naming that user's own process called `tcprelay` (a copy of `sleep`) used to make
/// a root relay refuse to start; a FIFO planted at the path used to block its start for ever.
/// Both are now stale: the relay starts and replaces them with its own pid file.
#[test]
fn a_pid_file_planted_by_another_user_does_not_stop_a_root_relay() {
    if !running_as_root("a_pid_file_planted_by_another_user_does_not_stop_a_root_relay") {
        return;
    }
    let dir = test_dir("pid-planted");
    let fake = dir.join("tcprelay");
    std::fs::copy("/bin/sleep", &fake).expect("the test copies sleep as a fake tcprelay");
    let mut fake_relay =
        as_nobody(fake.to_str().expect("a UTF-8 path")).arg("30").spawn().expect("run the fake");
    let pid_path = dir.join("tcprelay.pid");
    std::fs::write(&pid_path, format!("{}\n", fake_relay.id())).expect("plant the pid file");
    give_to_nobody(&pid_path);
    let upstream = Upstream::echo();
    let pid_arg = pid_path.to_str().expect("a UTF-8 temp path");
    let args = ["-l", "127.0.0.1:0", "-u", &upstream.addr.to_string(), "--pid-file", pid_arg];
    assert!(eventually(|| std::fs::read_to_string(format!("/proc/{}/comm", fake_relay.id()))
        .is_ok_and(|comm| comm.trim() == "tcprelay")));
    let relay = RelayProcess::start(&args);
    assert!(eventually(|| std::fs::read_to_string(&pid_path)
        .is_ok_and(|text| text == format!("{}\n", relay.pid()))));
    drop(relay);
    let _ = fake_relay.kill();
    let _ = fake_relay.wait();

    // A FIFO at the path, with no writer: reading it would block the start for ever.
    let _ = std::fs::remove_file(&pid_path);
    let made = Command::new("mkfifo").arg(&pid_path).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", pid_path.display());
    let relay = RelayProcess::start(&args);
    assert!(eventually(|| std::fs::read_to_string(&pid_path)
        .is_ok_and(|text| text == format!("{}\n", relay.pid()))));
    drop(relay);
    std::fs::remove_dir_all(&dir).expect("the test removes its directory");
}
