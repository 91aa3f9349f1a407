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

/// Starts the relay with `args` and waits (bounded) until it listens or exits, then stops
/// it. Whether it listened.
fn start_and_stop(args: &[&str]) -> bool {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcprelay");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (send, listened) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = send.send(());
            }
        }
    });
    let outcome = listened.recv_timeout(TIMEOUT);
    let _ = child.kill();
    child.wait().expect("reap tcprelay");
    reader.join().expect("the stderr reader ends at EOF");
    outcome.is_ok()
}

/// The attack of issue 22, item 1: a root relay gives its socket file to `nobody`
/// (`--socket-owner nobody --socket-mode 0666`) in a directory `nobody` owns, while
/// `nobody` swaps every socket that appears there for a symbolic link to a root 0600 file.
/// When the relay set the mode and owner by path after `bind`, its `chmod` and `chown`
/// landed on the victim in most starts. Now the socket gets them in a private directory and
/// is renamed into place: across every start, the victim's owner, mode and content hold.
#[test]
fn a_racer_swapping_the_socket_path_never_gets_roots_chown_or_chmod() {
    if !running_as_root("a_racer_swapping_the_socket_path_never_gets_roots_chown_or_chmod") {
        return;
    }
    let dir = test_dir("socket-race");
    let victim = victim(&dir);
    let before = state_of(&victim);
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).expect("the test makes nobody's directory");
    give_to_nobody(&shared);
    let socket = shared.join("relay.sock");
    // nobody's racer: whenever a socket is at the path, move it away and put a link to the
    // victim in its place (a failed rename, while there is none, is one quick system call).
    let moved = shared.join("moved");
    let racer_script = format!(
        "while (1) {{ if (rename({socket:?}, {moved:?})) {{ symlink({victim:?}, {socket:?}) }} }}",
    );
    let mut racer = as_nobody("perl").args(["-e", &racer_script]).spawn().expect("start the racer");
    let upstream = Upstream::echo();
    let listen = format!("unix:{}", socket.display());
    let upstream_arg = upstream.addr.to_string();
    let args = ["-l", &listen, "-u", &upstream_arg, "--socket-owner", "nobody"];
    let args = [&args[..], &["--socket-mode", "0666"]].concat();
    let (mut starts, mut listened, mut handed_over) = (0, 0, 0);
    let started = std::time::Instant::now();
    while starts < 300 && started.elapsed() < std::time::Duration::from_secs(8) {
        let _ = std::fs::remove_file(&socket); // the link the racer left, for a fresh start
        starts += 1;
        listened += usize::from(start_and_stop(&args));
        if state_of(&victim) != before {
            handed_over += 1;
            std::os::unix::fs::chown(&victim, Some(0), Some(0)).expect("give the victim back");
            std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600))
                .expect("make the victim 0600 again");
        }
    }
    let _ = racer.kill();
    let _ = racer.wait();
    println!("{handed_over} of {starts} starts changed the victim; {listened} listened");
    assert_eq!(
        handed_over, 0,
        "root's chown or chmod reached the victim in {handed_over} of {starts} starts"
    );
    assert!(listened > 0, "no start listened: the race was never run");
    std::fs::remove_dir_all(&dir).expect("the test removes its directory");
}
