//! The relay as a container's first process: PID 1 of its own PID namespace, made with
//! `unshare --pid --fork --mount-proc` as `docker run` makes it. The kernel gives a
//! namespace's init no signal whose action is the default, and tcprelay cannot install a
//! handler (std), so SIGTERM does nothing there: the relay says so at start, and the ways
//! docs/operations.md gives ("A container image") stop it: `tcprelay drain`, or running
//! under `tini` (what `docker run --init` runs), which forwards SIGTERM.
#![forbid(unsafe_code)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::*;

/// Runs `command` as PID 1 of a new PID namespace, as `docker run` does, and waits for its
/// first `listening on` line. `--kill-child`: when the test kills `unshare` (a failed
/// assertion drops the process), the kernel kills the namespace's init too; without it the
/// relay would outlive `unshare` and hold the stderr pipe the test's reader joins.
fn in_pid_namespace(command: &[&str]) -> RelayProcess {
    let args = [&["--pid", "--fork", "--mount-proc", "--kill-child"], command].concat();
    RelayProcess::start_program(Path::new("unshare"), &args)
}

/// The pid, in this namespace, of the one child of `parent` (`unshare --fork`'s child).
fn only_child(parent: u32) -> u32 {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let mut child = None;
    let found = eventually(|| {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        child = text.split_whitespace().next().and_then(|pid| pid.parse().ok());
        child.is_some()
    });
    assert!(found, "{parent} has no child in {path}");
    child.unwrap_or_default()
}

fn send_sigterm(pid: u32) {
    let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
}

/// The admin endpoint's address from its start-up line.
fn admin_of(relay: &RelayProcess) -> std::net::SocketAddr {
    let line = relay.log_line_with("admin endpoint on http://");
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split('"').next());
    addr.and_then(|addr| addr.parse().ok()).unwrap_or_else(|| panic!("no address in {line}"))
}

/// As PID 1 the relay warns, once, that SIGTERM is ignored and how to stop it; SIGTERM
/// indeed leaves it serving; `tcprelay drain --admin`, as documented, stops it (exit 0)
/// well before `docker stop` would have killed it (10 s).
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "a Linux PID namespace (`unshare`)")]
fn as_pid_1_it_warns_ignores_sigterm_and_stops_on_drain() {
    if let Some(emulator) = emulator() {
        // Under qemu-user PID 1 is the emulator, whose signal handling is not the relay's.
        println!("skipped: under {emulator}, PID 1 would be the emulator, not the relay");
        return;
    }
    if !unshare_allowed(&["--pid", "--fork", "--mount-proc"]) {
        return;
    }
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let mut relay = in_pid_namespace(&[
        env!("CARGO_BIN_EXE_tcprelay"),
        "-l",
        "127.0.0.1:0",
        "-u",
        &upstream_arg,
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = admin_of(&relay);
    let warning = relay.log_line_with("running as PID 1");
    assert!(warning.contains("level=warn") && warning.contains("tcprelay drain"), "{warning}");
    assert!(warning.contains("--init") && warning.contains("tini"), "{warning}");

    // The kernel drops the signal when it is sent (the init has no handler), so the relay
    // is still there to relay the next client.
    send_sigterm(only_child(relay.pid()));
    let sent = pattern(7, 5000);
    assert_eq!(echo_through(relay.addr, &sent), sent, "relayed after SIGTERM");
    assert!(relay.is_running(), "SIGTERM ended PID 1: the warning would be wrong");

    let started = Instant::now();
    let drained = Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["drain", "--admin", &admin.to_string()])
        .output()
        .expect("run tcprelay drain");
    assert_eq!(drained.status.code(), Some(0), "{}", String::from_utf8_lossy(&drained.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0), "unshare passes on the relay's exit code");
    println!("drained and exited as PID 1 in {:?}", started.elapsed());
    assert_eq!(relay.log_count("running as PID 1"), 1, "warned once");
}

/// Under `tini` (what `docker run --init` runs as PID 1) the relay is PID 2: no warning,
/// and the SIGTERM that `docker stop` sends to PID 1 is forwarded and ends it.
#[test]
#[ignore = "needs tini"]
fn under_tini_sigterm_stops_it_and_there_is_no_warning() {
    if !unshare_allowed(&["--pid", "--fork", "--mount-proc"]) {
        return;
    }
    let mut relay = in_pid_namespace(&[
        "tini",
        "--",
        env!("CARGO_BIN_EXE_tcprelay"),
        "-l",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:9",
    ]);
    send_sigterm(only_child(relay.pid()));
    let code = relay.wait_for_exit();
    // tini exits with 128 + the signal that ended its child: SIGTERM is 15.
    assert_eq!(code, Some(143), "tini's exit code");
    assert_eq!(relay.log_count("running as PID 1"), 0, "{:#?}", relay.log_lines());
}

/// The `Dockerfile` of docs/operations.md ("A container image").
fn dockerfile() -> &'static str {
    include_str!("../docs/operations.md")
        .split("```dockerfile\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```dockerfile block in docs/operations.md")
}

/// The image recipe of docs/operations.md cannot be built here (no Docker), so what can be
/// checked is: it is `FROM scratch` with the static musl binary docs/targets.md builds, and
/// the command its `ENTRYPOINT` and `CMD` make passes `--check` (with a config file of the
/// test's for `/etc/tcprelay.conf`).
#[test]
fn the_dockerfile_copies_the_static_binary_into_scratch_and_its_command_passes_check() {
    let recipe = dockerfile();
    let target = "x86_64-unknown-linux-musl";
    assert!(include_str!("../docs/targets.md").contains(target), "targets.md builds {target}");
    assert!(recipe.contains(&format!("--target {target}")), "{recipe}");
    assert!(recipe.contains("\nFROM scratch\n"), "{recipe}");
    assert!(recipe.contains(&format!("/{target}/release/tcprelay /tcprelay")), "{recipe}");
    // `["/tcprelay", "--config", ...]` → its words.
    let words = |instruction: &str| -> Vec<String> {
        let line = recipe
            .lines()
            .find_map(|line| line.strip_prefix(instruction))
            .unwrap_or_else(|| panic!("no {instruction} in {recipe}"));
        let list = line.trim().trim_start_matches('[').trim_end_matches(']');
        list.split(',').map(|word| word.trim().trim_matches('"').to_string()).collect()
    };
    assert_eq!(words("ENTRYPOINT "), ["/tcprelay"]);
    let dir = ScratchDir::new("dockerfile");
    let config = dir.join("tcprelay.conf");
    std::fs::write(&config, "admin 127.0.0.1:9090\nroute 0.0.0.0:8080 -> 127.0.0.1:80\n")
        .expect("write the config file");
    let config_arg = config.to_str().expect("a UTF-8 path");
    let args: Vec<String> = words("CMD ")
        .into_iter()
        .map(|word| word.replace("/etc/tcprelay.conf", config_arg))
        .collect();
    let checked =
        Command::new(env!("CARGO_BIN_EXE_tcprelay")).args(&args).arg("--check").output().unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", String::from_utf8_lossy(&checked.stderr));
}

/// The build stage sees only what its `COPY` lines copy (the build context is the checkout,
/// as the recipe says). So the crate is checked (`cargo check`, which reads every file the
/// build includes, as `include_str!`) in a directory holding exactly those files, laid out
/// as under its `WORKDIR`: a file the sources need but the recipe leaves out fails here as
/// `docker build` would (it did: lib.rs includes docs/go-to-rust.md).
#[test]
#[cfg_attr(windows, ignore = "runs cargo, a Linux program on the wine test machine")]
fn the_dockerfile_build_stage_copies_every_file_the_build_reads() {
    let build_stage = dockerfile().split("\nFROM scratch\n").next().expect("a build stage");
    assert!(build_stage.contains("\nWORKDIR /src\n"), "{build_stage}");
    let dir = ScratchDir::new("docker-build-context");
    let context = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in build_stage.lines().filter(|line| line.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (destination, sources) = words.split_last().expect("COPY SOURCE... DEST");
        for source in sources {
            let into = if destination.ends_with('/') {
                dir.join(destination).join(source)
            } else {
                dir.join(destination)
            };
            copy_tree(&context.join(source), &into);
        }
    }
    let checked = Command::new(env!("CARGO"))
        .args(["check", "--offline", "--quiet"])
        .current_dir(&dir.path)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("run cargo check");
    assert!(
        checked.status.success(),
        "the build stage's files do not build:\n{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// Copies the file or directory `from` to `to`, as `COPY` does.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create a directory");
        for entry in std::fs::read_dir(from).expect("read a directory") {
            let entry = entry.expect("a directory entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("create a directory");
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}
