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
    let mut fake_relay = as_nobody(fake.to_str().expect("a UTF-8 path"))
        .arg("30")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the fake");
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
    let racer = Racer::perl_as_nobody(&racer_script);
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
    drop(racer);
    println!("{handed_over} of {starts} starts changed the victim; {listened} listened");
    assert_eq!(
        handed_over, 0,
        "root's chown or chmod reached the victim in {handed_over} of {starts} starts"
    );
    assert!(listened > 0, "no start listened: the race was never run");
    std::fs::remove_dir_all(&dir).expect("the test removes its directory");
}

/// Issue 22, item 4: a user who can write to the config file's directory swaps the file for
/// a FIFO and back, in a loop, while the operator reloads. When the relay checked the path's
/// type and then opened it, an open that met the FIFO blocked the reload for ever, and
/// `/healthz` went 503 once reloads had taken every admin handler. Now the open does not
/// block and the opened file is checked: every reload answers, applied or refused naming
/// the FIFO, and `/healthz` still answers. A FIFO at start-up is refused with exit 2.
#[test]
fn a_config_file_swapped_for_a_fifo_never_hangs_a_reload() {
    if !running_as_root("a_config_file_swapped_for_a_fifo_never_hangs_a_reload") {
        return;
    }
    let dir = test_dir("config-fifo");
    give_to_nobody(&dir);
    let upstream = Upstream::echo();
    let conf = dir.join("relay.conf");
    let text = format!("admin 127.0.0.1:0\nroute 127.0.0.1:0 -> {}\n", upstream.addr);
    std::fs::write(&conf, &text).expect("the test writes the config file");
    let conf_arg = conf.to_str().expect("a UTF-8 temp path");
    let relay = RelayProcess::start_routes(&["--config", conf_arg], 1, true);
    let admin = relay.admin.expect("the relay has an admin endpoint");

    // nobody's racer: the config file becomes a FIFO, then a regular file again, in a loop.
    let (fifo, regular) = (dir.join("fifo"), dir.join("regular"));
    let racer_script = format!(
        "use POSIX; while (1) {{ POSIX::mkfifo({fifo:?}, 0644); rename({fifo:?}, {conf:?}); \
         open(my $f, '>', {regular:?}); print $f {text:?}; close($f); rename({regular:?}, {conf:?}) }}"
    );
    let racer = Racer::perl_as_nobody(&racer_script);
    let (mut applied, mut refused_fifo) = (0, 0);
    // At least 150 reloads, and on until the racer (perl, started by setpriv: it may still
    // be starting when the first 150 are done on a busy machine) has been met at least once;
    // bounded by the deadline.
    let deadline = std::time::Instant::now() + 3 * TIMEOUT;
    while applied + refused_fifo < 150
        || (refused_fifo == 0 && std::time::Instant::now() < deadline)
    {
        // Bounded: http_post gives up after TIMEOUT, and the test fails, if a reload hangs.
        match http_post(admin, "/reload") {
            (200, _) => applied += 1,
            (409, body) if body.contains("found a FIFO") => {
                assert!(body.contains(conf_arg), "the refusal names the file: {body}");
                refused_fifo += 1;
            }
            (status, body) => panic!("reload answered {status}: {body}"),
        }
    }
    drop(racer);
    let reloads = applied + refused_fifo;
    println!("{reloads} reloads: {applied} applied, {refused_fifo} refused a FIFO, none hung");
    assert!(refused_fifo > 0, "the racer never swapped in a FIFO: the race was not run");
    assert_eq!(http_get(admin, "/healthz").0, 200, "the admin endpoint still answers");
    drop(relay);

    // At start-up, a FIFO is refused at once: exit 2, naming the file.
    let _ = std::fs::remove_file(&conf);
    let made = Command::new("mkfifo").arg(&conf).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", conf.display());
    let output = run_tcprelay(&["--config", conf_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(conf_arg) && stderr.contains("found a FIFO"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("the test removes its directory");
}
