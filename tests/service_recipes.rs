//! The init recipes of docs/operations.md ("Stopping without cutting transfers"), taken
//! from the doc by the test and run as pasted: BusyBox init's `start-stop-daemon` functions
//! with the log going to BusyBox `syslogd` through a private `/dev/log`, and as much of
//! OpenWrt's procd script as runs without procd.
//!
//! The only changes to a block: `/usr/bin/tcprelay` becomes the binary under test and
//! `/etc/tcprelay.conf` a config file of the test's. Unix-only: the recipes are shell scripts.
#![cfg(unix)]
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use support::*;

const OPERATIONS: &str = include_str!("../docs/operations.md");

/// The first ```sh block after `marker` in docs/operations.md, without the indentation of
/// the list item it sits in.
fn doc_block(marker: &str) -> String {
    support::docs::block(OPERATIONS, marker, "sh")
}

/// A block with the binary and the config file replaced by the test's.
fn as_pasted_with(block: &str, config: &Path) -> String {
    let config = config.to_str().expect("a UTF-8 path");
    block
        .replace("/usr/bin/tcprelay", env!("CARGO_BIN_EXE_tcprelay"))
        .replace("/etc/tcprelay.conf", config)
}

/// A shell in a mount namespace of its own, fed commands line by line; its stdout lines
/// arrive on a channel. Killed when dropped.
struct PrivateShell {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PrivateShell {
    fn start() -> PrivateShell {
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a shell in a mount namespace");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        PrivateShell { child, stdin, stdout: lines, reader: Some(reader) }
    }

    /// Runs `commands`, then waits (bounded) for the line `done` prints and returns it.
    fn run(&mut self, commands: &str, done: &str) -> String {
        writeln!(self.stdin, "{commands}").expect("write to the shell");
        self.stdin.flush().expect("flush the shell's stdin");
        loop {
            match self.stdout.recv_timeout(TIMEOUT) {
                Ok(line) if line.starts_with(done) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {done:?} line within {TIMEOUT:?} after:\n{commands}"),
            }
        }
    }
}

impl Drop for PrivateShell {
    /// Asks the shell to end what it started (after a failed assertion, the relay and
    /// `syslogd` may still run) and to exit, then kills it if it has not.
    fn drop(&mut self) {
        let cleanup = "kill $SYSLOGD 2>/dev/null; \
                       [ -e /run/tcprelay.pid ] && kill $(cat /run/tcprelay.pid) 2>/dev/null; exit";
        let _ = writeln!(self.stdin, "{cleanup}");
        let _ = self.stdin.flush();
        eventually(|| !matches!(self.child.try_wait(), Ok(None)));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The BusyBox recipe, as pasted: `start` starts the relay in the background (while another
/// tcprelay runs, which `-p` keeps from counting as "already running"); its lines reach
/// BusyBox `syslogd` through `/dev/log`, from `listening on` through a relayed client's
/// `connection closed` and a reload to the drain's `stopped`; `stop` drains it.
#[test]
#[ignore = "needs busybox and start-stop-daemon"]
fn the_busybox_recipe_runs_as_pasted_and_its_log_reaches_syslogd() {
    if !unshare_allowed(&["--mount"]) {
        return;
    }
    let dir = ScratchDir::new("busybox-recipe");
    let upstream = Upstream::echo();
    let config = dir.join("tcprelay.conf");
    let config_text =
        format!("admin unix:/run/tcprelay-admin.sock\nroute 127.0.0.1:0 -> {}\n", upstream.addr);
    std::fs::write(&config, config_text).expect("write the config file");
    // Another relay, which `start-stop-daemon -S` without `-p` took for this one.
    let _other = RelayProcess::start(&["-l", "127.0.0.1:0", "-u", "127.0.0.1:9"]);
    let messages = dir.join("messages");
    let dev = dir.join("dev");
    std::fs::create_dir(&dev).expect("create the private /dev's mount point");

    let recipe = as_pasted_with(&doc_block("- **BusyBox init / start-stop-daemon**"), &config);
    assert!(recipe.contains("start-stop-daemon -S -b -m -p "), "{recipe}");
    let mut shell = PrivateShell::start();
    // A /dev of our own, with the devices a shell and start-stop-daemon use, and a /run.
    let setup = format!(
        "mount -t tmpfs tmpfs {dev} && \
         for name in null zero full random urandom; do \
           touch {dev}/$name && mount --bind /dev/$name {dev}/$name; done && \
         mount --bind {dev} /dev && mount -t tmpfs tmpfs /run && echo setup-rc=$?",
        dev = dev.display()
    );
    assert_eq!(shell.run(&setup, "setup-rc="), "setup-rc=0");
    let syslogd = format!(
        "busybox syslogd -n -O {} >/dev/null 2>&1 & SYSLOGD=$!; \
         for i in $(seq 1000); do [ -S /dev/log ] && break; sleep 0.01; done; \
         [ -S /dev/log ]; echo syslogd-rc=$?",
        messages.display()
    );
    assert_eq!(shell.run(&syslogd, "syslogd-rc="), "syslogd-rc=0");

    assert_eq!(shell.run(&format!("{recipe}\nstart; echo start-rc=$?"), "start-rc="), "start-rc=0");
    let listening = wait_for_file_line(&messages, "msg=\"listening on ");
    assert!(listening.contains("daemon.info tcprelay["), "{listening}");
    let route: std::net::SocketAddr = listening
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening}"));
    let sent = pattern(11, 3000);
    assert_eq!(echo_through(route, &sent), sent);
    let closed = wait_for_file_line(&messages, "msg=\"connection closed\"");
    assert!(closed.contains("bytes_to_client=3000"), "{closed}");

    assert_eq!(shell.run("reload; echo reload-rc=$?", "reload-rc="), "reload-rc=0");
    wait_for_file_line(&messages, "msg=\"config reloaded\"");
    assert_eq!(shell.run("stop; echo stop-rc=$?", "stop-rc="), "stop-rc=0");
    wait_for_file_line(&messages, "msg=stopped");
    let pid_left = shell.run("[ -e /run/tcprelay.pid ]; echo pid-file-rc=$?", "pid-file-rc=");
    assert_eq!(pid_left, "pid-file-rc=1", "stop leaves no pid file");
    shell.run("kill $SYSLOGD; wait $SYSLOGD; echo syslogd-stopped", "syslogd-stopped");

    let lines = file_lines(&messages);
    let ours: Vec<&String> = lines.iter().filter(|line| line.contains(" tcprelay[")).collect();
    println!("{} of the relay's lines in the syslog file:\n{ours:#?}", ours.len());
    assert!(ours.len() >= 6, "{lines:#?}");
}

/// The procd recipe: procd cannot run off OpenWrt, so the script is sourced with stand-ins
/// for `procd_open_instance`, `procd_set_param` and `procd_close_instance`; `start_service`
/// must ask for stdout, stderr and the syslog sink, and the command it sets passes
/// `--check` with a config file.
#[test]
fn the_procd_recipe_sets_stdout_stderr_and_syslog_and_its_command_passes_check() {
    let dir = ScratchDir::new("procd-recipe");
    let config = dir.join("tcprelay.conf");
    std::fs::write(&config, "admin 127.0.0.1:9090\nroute 127.0.0.1:8080 -> 127.0.0.1:80\n")
        .expect("write the config file");
    let script = as_pasted_with(&doc_block("- **procd (OpenWrt)**"), &config);
    assert!(script.starts_with("#!/bin/sh /etc/rc.common\n"), "{script}");
    let stand_ins = "procd_open_instance() { :; }\n\
                     procd_set_param() { echo \"param $*\"; }\n\
                     procd_close_instance() { :; }\n";
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{stand_ins}{script}\nstart_service"))
        .output()
        .expect("run sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let params = String::from_utf8(output.stdout).expect("UTF-8");
    let params: Vec<&str> = params.lines().collect();
    for wanted in ["param stdout 1", "param stderr 1", "param respawn"] {
        assert!(params.contains(&wanted), "{wanted:?} in {params:#?}");
    }
    let command = params
        .iter()
        .find_map(|line| line.strip_prefix("param command "))
        .unwrap_or_else(|| panic!("no command in {params:#?}"));
    let words: Vec<&str> = command.split(' ').collect();
    assert!(command.contains("--syslog unix:/dev/log"), "{command}");
    let checked = Command::new(words[0]).args(&words[1..]).arg("--check").output().expect("run it");
    let described = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(0), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(described.contains("syslog unix:/dev/log"), "{described}");
}
