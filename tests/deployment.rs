//! Deployment recipes run as pasted, with the closest stand-in this machine has for each
//! environment: an `admin` line edited under systemd's `ExecReload=`/`ExecStop=`, the
//! Kubernetes manifest of docs/operations.md (its args checked, a kubelet-style `..data`
//! symlink swap, a probe to another loopback address, the drain timeline), and the systemd
//! unit (verified, and its token read as an unprivileged user from a credentials directory).
#![cfg(unix)]
#![forbid(unsafe_code)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use support::*;

/// A directory of its own under the temp dir for one test's files; removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("tcprelay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create the test directory {}: {e}", dir.display()));
        TestDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("a path under the temp dir is UTF-8")
}

#[test]
fn after_the_admin_line_is_edited_reload_and_drain_with_config_still_reach_the_relay() {
    let up = Upstream::echo();
    let dir = TestDir::new("admin-moves");
    let (old, new) = (dir.path("old.sock"), dir.path("new.sock"));
    let file = dir.path("relay.conf");
    let write = |admin: &Path| {
        let text = format!(
            "admin unix:{}\npid-file relay.pid\nroute 127.0.0.1:0 -> {}\n",
            arg(admin),
            up.addr
        );
        std::fs::write(&file, text).expect("write the config file");
    };
    write(&old);
    let mut relay = RelayProcess::start(&["--config", arg(&file)]);
    assert_eq!(echo_through(relay.addr, b"before"), b"before");

    // The operator edits the admin line, then `systemctl reload` runs ExecReload=.
    write(&new);
    let output = run_tcprelay(&["reload", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "reload: {}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(said.contains(&format!("admin endpoint moved to unix:{}", arg(&new))), "{said}");
    assert!(eventually(|| !old.exists()), "the old admin socket is still there");
    assert_eq!(echo_through(relay.addr, b"after"), b"after");

    // `systemctl stop` runs ExecStop=, which reads the edited file too.
    let output = run_tcprelay(&["drain", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "drain: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
    assert!(relay.log_line_with("admin endpoint moved").contains("from=unix:"));
    assert!(!dir.path("relay.pid.admin").exists(), "the runtime file outlived a clean exit");
}

#[test]
#[ignore = "needs root (to plant a file as another user)"]
fn a_runtime_file_planted_by_another_user_in_a_shared_directory_gets_no_token() {
    if !running_as_root(
        "a_runtime_file_planted_by_another_user_in_a_shared_directory_gets_no_token",
    ) {
        return;
    }
    let up = Upstream::echo();
    let dir = TestDir::new("admin-planted");
    set_mode(&dir.0, 0o1777); // like /tmp
    let (real, trap) = (dir.path("real.sock"), dir.path("trap.sock"));
    let secret = dir.path("token");
    std::fs::write(&secret, TOKEN).expect("write the token");
    set_mode(&secret, 0o600);
    let file = dir.path("relay.conf");
    let config = format!(
        "admin unix:{}\nadmin-token-file token\npid-file relay.pid\nroute 127.0.0.1:0 -> {}\n",
        arg(&real),
        up.addr
    );
    std::fs::write(&file, config).expect("write the config file");
    let mut relay = RelayProcess::start(&["--config", arg(&file)]);
    // Another user's socket, and a runtime file of theirs naming it: the relay has not
    // written its own yet, or was killed and left none.
    let trap_listener = std::os::unix::net::UnixListener::bind(&trap).expect("bind the trap");
    trap_listener.set_nonblocking(true).expect("a trap that never blocks");
    let planted = dir.path("relay.pid.admin");
    assert!(eventually(|| planted.exists()), "the relay wrote no runtime file");
    std::fs::remove_file(&planted).expect("remove the relay's runtime file");
    std::fs::write(&planted, format!("admin unix:{}\n", arg(&trap))).expect("plant");
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");

    let output = run_tcprelay(&["status", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "status: {}", text(&output.stderr));
    assert!(
        matches!(trap_listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client connected to the planted address"
    );
    let output = run_tcprelay(&["drain", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "drain: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
}

#[test]
fn a_runtime_file_left_by_a_killed_relay_sends_no_token_to_whoever_listens_there_now() {
    let dir = TestDir::new("admin-stale");
    let secret = dir.path("token");
    std::fs::write(&secret, TOKEN).expect("write the token");
    set_mode(&secret, 0o600);
    let file = dir.path("relay.conf");
    let config = |admin: &str| {
        format!(
            "admin {admin}\nadmin-token-file token\npid-file relay.pid\nroute 127.0.0.1:0 -> 127.0.0.1:9\n"
        )
    };
    std::fs::write(&file, config("127.0.0.1:0")).expect("write the config file");
    let relay = RelayProcess::start(&["--config", arg(&file)]);
    let runtime = dir.path("relay.pid.admin");
    assert!(eventually(|| runtime.exists()), "the relay wrote no runtime file");
    let written = std::fs::read_to_string(&runtime).expect("read the runtime file");
    let old_admin = written.lines().find_map(|line| line.strip_prefix("admin ")).expect("admin");
    // Killed, as SIGTERM kills it (std cannot catch it): its runtime file stays behind.
    relay.kill_and_collect_log();
    assert!(runtime.exists(), "a killed relay cannot remove its runtime file");
    // The operator moves the admin endpoint to a socket only they can reach; meanwhile any
    // local user may listen at the old address.
    let squatter = std::net::TcpListener::bind(old_admin).expect("listen at the old address");
    squatter.set_nonblocking(true).expect("a squatter that never blocks");
    std::fs::write(&file, config(&format!("unix:{}", arg(&dir.path("admin.sock")))))
        .expect("edit the config file");

    let output = run_tcprelay(&["status", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(1), "no relay runs: {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("admin.sock"), "{}", text(&output.stderr));
    assert!(
        matches!(squatter.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client connected to the dead relay's old admin address"
    );
}

#[test]
fn a_fifo_planted_as_the_runtime_file_does_not_hang_the_client() {
    let up = Upstream::echo();
    let dir = TestDir::new("admin-fifo");
    set_mode(&dir.0, 0o1777); // like /tmp, where any user may make a FIFO
    let file = dir.path("relay.conf");
    let config = format!(
        "admin unix:{}\npid-file relay.pid\nroute 127.0.0.1:0 -> {}\n",
        arg(&dir.path("admin.sock")),
        up.addr
    );
    std::fs::write(&file, config).expect("write the config file");
    let mut relay = RelayProcess::start(&["--config", arg(&file)]);
    let planted = dir.path("relay.pid.admin");
    assert!(eventually(|| planted.exists()), "the relay wrote no runtime file");
    std::fs::remove_file(&planted).expect("remove the relay's runtime file");
    // Another user's FIFO when this runs as root (as CI does), else this user's: opening a
    // FIFO to read waits for a writer either way.
    let mut mkfifo = std::process::Command::new("setpriv");
    if running_as_root("a_fifo_planted_as_the_runtime_file_does_not_hang_the_client") {
        mkfifo.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    }
    let made = mkfifo.arg("mkfifo").arg(&planted).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", planted.display());

    let mut status = std::process::Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["status", "--config", arg(&file)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tcprelay status");
    let ended = eventually(|| matches!(status.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = status.kill();
    }
    let code = status.wait().expect("reap tcprelay status").code();
    assert!(ended, "tcprelay status --config waited on the planted FIFO");
    assert_eq!(code, Some(0), "status fell back on the config file's admin line");
    let output = run_tcprelay(&["drain", "--config", arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "drain: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
}

#[test]
fn a_new_admin_address_that_cannot_be_bound_refuses_the_reload_and_keeps_the_old_one() {
    let up = Upstream::echo();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let taken_addr = taken.local_addr().expect("the held port's address");
    let dir = TestDir::new("admin-refused");
    let (old, file) = (dir.path("old.sock"), dir.path("relay.conf"));
    let config = |admin: &str| format!("admin {admin}\nroute 127.0.0.1:0 -> {}\n", up.addr);
    std::fs::write(&file, config(&format!("unix:{}", arg(&old)))).expect("write the config");
    let mut relay = RelayProcess::start(&["--config", arg(&file)]);

    std::fs::write(&file, config(&taken_addr.to_string())).expect("edit the config");
    let output = run_tcprelay(&["reload", "--admin", &format!("unix:{}", arg(&old))]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let said = text(&output.stderr);
    assert!(said.contains(&format!("cannot listen on {taken_addr} (admin)")), "{said}");
    assert!(said.contains("the admin endpoint stays where it is"), "{said}");

    // The old endpoint still answers, and drains the relay.
    let output = run_tcprelay(&["drain", "--admin", &format!("unix:{}", arg(&old))]);
    assert_eq!(output.status.code(), Some(0), "drain: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
}

const OPERATIONS: &str = include_str!("../docs/operations.md");

/// The first ```LANG block of docs/operations.md whose first line is "# FIRST_LINE", without
/// its fences, as pasted.
fn doc_block(lang: &str, first_line: &str) -> String {
    support::docs::blocks_opening_with(OPERATIONS, lang, &format!("# {first_line}")).remove(0)
}

/// The Kubernetes manifest of docs/operations.md, as pasted.
fn manifest() -> String {
    doc_block("yaml", "tcprelay.yaml: kubectl apply -f tcprelay.yaml")
}

/// The ConfigMap's `relay.conf`, dedented.
fn manifest_config() -> String {
    let manifest = manifest();
    let mut lines = manifest.lines().skip_while(|line| !line.ends_with("relay.conf: |")).skip(1);
    let mut config = String::new();
    for line in lines.by_ref().take_while(|line| line.starts_with("    ")) {
        config.push_str(&line[4..]);
        config.push('\n');
    }
    config
}

/// The strings of a `KEY: ["a", "b"]` line of the manifest (`args:`, `command:`).
fn manifest_list(key: &str) -> Vec<String> {
    let manifest = manifest();
    let line = manifest
        .lines()
        .find(|line| line.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("the manifest has a {key} line"));
    let list = line.split_once('[').and_then(|(_, rest)| rest.rsplit_once(']')).expect("a list");
    list.0.split(',').map(|word| word.trim().trim_matches('"').to_string()).collect()
}

/// A Kubernetes volume laid out as the kubelet does: `DIR/..TIMESTAMP/NAME` files, a `..data`
/// symlink to that directory, and `DIR/NAME -> ..data/NAME`.
struct KubeletVolume {
    dir: PathBuf,
    generation: usize,
}

impl KubeletVolume {
    fn new(dir: PathBuf, files: &[(&str, &str, u32)]) -> KubeletVolume {
        std::fs::create_dir_all(&dir).expect("create the volume directory");
        let mut volume = KubeletVolume { dir, generation: 0 };
        volume.update(files);
        for (name, _, _) in files {
            let link = volume.dir.join(name);
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .unwrap_or_else(|e| panic!("link {}: {e}", link.display()));
        }
        volume
    }

    /// Writes a new timestamped directory and swaps `..data` to it atomically (a symlink
    /// made beside it, renamed over it), then removes the old one: the kubelet's update.
    fn update(&mut self, files: &[(&str, &str, u32)]) {
        use std::os::unix::fs::PermissionsExt;
        self.generation += 1;
        let generation = format!("..2026_12_07_00_00_0{}.{}", self.generation, std::process::id());
        let target = self.dir.join(&generation);
        std::fs::create_dir(&target).expect("create the volume's new generation");
        for (name, text, mode) in files {
            let file = target.join(name);
            std::fs::write(&file, text).expect("write a volume file");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
                .expect("set the volume file's mode");
        }
        let staged = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &staged).expect("stage the ..data symlink");
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&staged, self.dir.join("..data")).expect("swap ..data");
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).expect("remove the old generation");
        }
    }
}

/// Replaces the value of the global line `key` in a config file's text.
fn with_global(config: &str, key: &str, value: &str) -> String {
    let line = |line: &str| match line.split_whitespace().next() {
        Some(word) if word == key => format!("{key} {value}\n"),
        _ => format!("{line}\n"),
    };
    config.lines().map(line).collect()
}

/// A token as `openssl rand -hex 32` makes one.
const TOKEN: &str = "5d41402abc4b2a76b9719d911017c592aa5d41402abc4b2a76b9719d911017c5";

#[test]
fn the_kubernetes_manifest_checks_as_pasted_and_the_secret_mode_it_states_is_accepted() {
    let root = TestDir::new("k8s-check");
    let config = manifest_config();
    assert!(config.contains("admin 0.0.0.0:9090"), "{config}");
    let _config_volume =
        KubeletVolume::new(root.path("config"), &[("relay.conf", config.as_str(), 0o644)]);
    let manifest = manifest();
    let mode = manifest.split("defaultMode: ").nth(1).expect("the Secret states its defaultMode");
    let mode = u32::from_str_radix(mode.split([' ', '}']).next().expect("a mode"), 8)
        .expect("the defaultMode is octal");
    let mut secret = KubeletVolume::new(root.path("secret"), &[("token", TOKEN, mode)]);
    // The manifest's paths, under this test's directory instead of /etc/tcprelay.
    let local = |text: &str| text.replace("/etc/tcprelay/", &format!("{}/", root.0.display()));
    std::fs::write(root.path("config/..data/relay.conf"), local(&config))
        .expect("point the config at the test's secret");

    let mut args: Vec<String> = manifest_list("args:").iter().map(|a| local(a)).collect();
    args.push("--check".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_tcprelay(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("drain-grace 10s"));

    // A Secret volume's default mode, 0644, is what the manifest's defaultMode avoids.
    secret.update(&[("token", TOKEN, 0o644)]);
    let output = run_tcprelay(&args);
    assert_eq!(output.status.code(), Some(2), "a token every user can read was accepted");
    assert!(text(&output.stderr).contains("token"), "{}", text(&output.stderr));
}

#[test]
fn the_manifest_runs_probes_reach_healthz_a_configmap_swap_reloads_and_prestop_drains() {
    let (one, two) = (Upstream::banner("one"), Upstream::banner("two"));
    let root = TestDir::new("k8s-run");
    let local = |text: &str| text.replace("/etc/tcprelay/", &format!("{}/", root.0.display()));
    // The kubelet probes the pod IP; 127.0.0.2 stands in for it (tests stay on loopback), so
    // the admin endpoint listens there instead of 0.0.0.0. Its port must be fixed in the
    // file, since the preStop hook reads it there: one the kernel just handed out.
    let pod_ip = std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.2");
    // The manifest's config with that admin address, a loopback route on an ephemeral port,
    // a fast watch and no grace.
    let config = |upstream: SocketAddr| {
        let config = local(&manifest_config());
        let config = with_global(&config, "admin", &pod_ip.to_string());
        let config = with_global(&config, "watch-config", "100ms");
        let config = with_global(&config, "drain-grace", "0");
        let route = config.lines().find(|line| line.starts_with("route ")).expect("a route");
        config.replace(route, &format!("route 127.0.0.1:0 -> {upstream} name=db"))
    };
    let first = config(one.addr);
    let mut volume = KubeletVolume::new(root.path("config"), &[("relay.conf", &first, 0o644)]);
    let _secret = KubeletVolume::new(root.path("secret"), &[("token", TOKEN, 0o440)]);
    let args: Vec<String> = manifest_list("args:").iter().map(|a| local(a)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut relay = RelayProcess::start_routes(&args, 1, true);
    assert_eq!(relay.admin, Some(pod_ip));
    assert_eq!(served_by(relay.addr), "one");

    assert_eq!(http_get(pod_ip, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(pod_ip, "/metrics").0, 401, "the metrics need the token");

    // A ConfigMap update: the kubelet swaps ..data; the relay reloads by itself.
    volume.update(&[("relay.conf", &config(two.addr), 0o644)]);
    let reloaded = relay.log_line_with("config reloaded");
    assert!(reloaded.contains("changed=db("), "{reloaded}");
    assert_eq!(served_by(relay.addr), "two");
    // A version that does not parse is refused, as `tcprelay reload` would refuse it, once.
    volume.update(&[("relay.conf", "drain-timeout soon\n", 0o644)]);
    let refused = relay.log_line_with("reload refused");
    assert!(refused.contains("relay.conf:1:"), "{refused}");
    assert_eq!(served_by(relay.addr), "two");
    volume.update(&[("relay.conf", &config(one.addr), 0o644)]);
    relay.log_line_with("config reloaded");
    assert_eq!(served_by(relay.addr), "one");
    assert_eq!(relay.log_count("reload refused"), 1, "a refused version was tried again");

    // The preStop hook, as written in the manifest.
    let mut command: Vec<String> = manifest_list("command:").iter().map(|a| local(a)).collect();
    // The image the page builds has the binary where its ENTRYPOINT says (a preStop command
    // not found there fails, and SIGTERM to PID 1 does nothing: the pod is killed at the end
    // of its grace period).
    let entrypoint = include_str!("../docs/operations.md")
        .split("\nENTRYPOINT [\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the Dockerfile's ENTRYPOINT");
    assert_eq!(command[0], entrypoint, "the preStop hook's binary is not the image's");
    command.remove(0);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let output = run_tcprelay(&command);
    assert_eq!(output.status.code(), Some(0), "preStop: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
}

/// One client of the loop: connects, sends `id`, half-closes, and reads the echo. `None`
/// once the relay no longer takes clients (refused, or reset from the closed listener's
/// backlog).
fn one_client(relay: SocketAddr, id: u64) -> Option<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&relay, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let sent = id.to_string();
    stream.write_all(sent.as_bytes()).ok()?;
    stream.shutdown(std::net::Shutdown::Write).ok()?;
    let mut echoed = String::new();
    stream.read_to_string(&mut echoed).ok()?;
    assert!(echoed.is_empty() || echoed == sent, "client {id} got {echoed:?} back");
    (echoed == sent).then_some(())
}

#[test]
fn a_drain_with_a_grace_serves_new_clients_with_healthz_503_then_closes_then_times_out() {
    let up = Upstream::echo();
    let dir = TestDir::new("drain-grace");
    let file = dir.path("relay.conf");
    let config = format!(
        "admin 127.0.0.1:0\ndrain-grace 4s\ndrain-timeout 1s\nroute 127.0.0.1:0 -> {}\n",
        up.addr
    );
    std::fs::write(&file, config).expect("write the config file");
    let mut relay = RelayProcess::start_routes(&["--config", arg(&file)], 1, true);
    let admin = relay.admin.expect("the relay has an admin endpoint");
    let live = connect(relay.addr);
    assert_eq!(round_trip(&live, b"live"), b"live");
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));

    // The preStop hook: `tcprelay drain`, which waits until the relay has stopped.
    let admin_arg = admin.to_string();
    let drain = std::thread::spawn(move || run_tcprelay(&["drain", "--admin", &admin_arg]));
    relay.log_line_with("drain requested");
    // The grace: unready (the line is written just before the drain begins), and still
    // serving new clients.
    assert!(eventually(|| http_get(admin, "/healthz").0 == 503), "/healthz never turned 503");
    assert_eq!(http_get(admin, "/healthz"), (503, "draining\n".to_string()));
    assert_eq!(echo_through(relay.addr, b"during the grace"), b"during the grace");
    // A client loop until the listener closes: every client it got in was served in full.
    let relay_addr = relay.addr;
    let clients = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + 2 * TIMEOUT;
        let mut served = 0;
        while one_client(relay_addr, served).is_some() {
            served += 1;
            // Pacing, not synchronisation: a client every few ms is a loop, not a flood.
            std::thread::sleep(std::time::Duration::from_millis(10));
            assert!(std::time::Instant::now() < deadline, "the listeners never closed");
        }
        served
    });
    let served = clients.join().expect("the client loop ends without panicking");
    eprintln!("{served} clients of the loop served during the grace");
    assert!(served > 0, "no client was served during the grace");
    assert!(eventually(|| std::net::TcpStream::connect_timeout(&relay.addr, TIMEOUT).is_err()));

    // The live connection, silent all along, is closed by drain-timeout.
    match read_all(&live) {
        Ok(rest) => assert_eq!(rest, b"", "the live connection got bytes nobody sent"),
        Err(error) => assert!(
            !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the live connection was not closed by drain-timeout: {error}"
        ),
    }
    let output = drain.join().expect("the drain thread ends without panicking");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "draining after a grace of 4s, up to 1s\ndrained: the relay has stopped\n"
    );
    assert_eq!(relay.wait_for_exit(), Some(0));
}

/// The systemd units of docs/operations.md, as (file name, text).
fn units() -> [(&'static str, String); 3] {
    let unit = |name| (name, doc_block("ini", &format!("/etc/systemd/system/{name}")));
    // The socket-activated service is the last block with the service's first line.
    let services = support::docs::blocks_opening_with(
        OPERATIONS,
        "ini",
        "# /etc/systemd/system/tcprelay.service",
    );
    let socket_activated = services.last().expect("a block").clone();
    [
        unit("tcprelay.service"),
        unit("tcprelay.socket"),
        ("socket-activated/tcprelay.service", socket_activated),
    ]
}

/// A unit's text with the binary where this build put it.
fn with_this_binary(unit: &str) -> String {
    unit.replace("/usr/local/bin/tcprelay", env!("CARGO_BIN_EXE_tcprelay"))
}

#[test]
#[ignore = "needs systemd-analyze: apt-get install systemd"]
fn the_systemd_units_pass_systemd_analyze_verify_without_a_warning() {
    let dir = TestDir::new("systemd-verify");
    std::fs::create_dir_all(dir.path("socket-activated")).expect("create a directory");
    let [(_, own), _, (_, socket_activated)] = units();
    assert_ne!(own, socket_activated, "the two services are different blocks");
    for unit in [&own, &socket_activated] {
        for needed in ["DynamicUser=yes", "LoadCredential=token:", "RuntimeDirectory=tcprelay"] {
            assert!(unit.contains(needed), "a unit lacks {needed}:\n{unit}");
        }
    }
    assert!(own.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
    for (name, unit) in units() {
        std::fs::write(dir.path(name), with_this_binary(&unit)).expect("write the unit");
    }
    // The socket-activated service beside its socket unit, the other on its own.
    let socket_dir = dir.path("socket-activated");
    std::fs::copy(dir.path("tcprelay.socket"), socket_dir.join("tcprelay.socket"))
        .expect("copy the socket unit");
    for units in [
        vec![dir.path("tcprelay.service")],
        vec![socket_dir.join("tcprelay.service"), socket_dir.join("tcprelay.socket")],
    ] {
        let output = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .args(&units)
            .output()
            .expect("run systemd-analyze (apt-get install systemd)");
        let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{units:?}: {said}");
        // verify exits 0 on an unknown key or a bad value, and only says so.
        assert_eq!(said.trim(), "", "{units:?}");
    }
}

/// The uid and gid the dynamic user stands in for here: `nobody`.
const NOBODY: u32 = 65534;

/// Runs one `Exec…=` line of the unit as `nobody`, as systemd would run it as the dynamic
/// user, with `${CREDENTIALS_DIRECTORY}` and the config path replaced.
fn exec_line(unit: &str, key: &str, replace: &dyn Fn(&str) -> String) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has {key}="));
    let mut words = vec![
        "--reuid".to_string(),
        NOBODY.to_string(),
        "--regid".to_string(),
        NOBODY.to_string(),
        "--clear-groups".to_string(),
    ];
    words.extend(with_this_binary(&replace(line)).split_whitespace().map(str::to_string));
    words
}

fn setpriv(args: &[String]) -> std::process::Output {
    std::process::Command::new("setpriv").args(args).output().expect("run setpriv (util-linux)")
}

/// What systemd makes for the unit, under a test directory: a credentials directory
/// (`/run/credentials/tcprelay.service`, 0500, the service's user) holding the token 0400, a
/// runtime directory (`/run/tcprelay`, `RuntimeDirectoryMode=0750`, the service's user), and
/// the page's config file with its paths there and `route_line` for its route.
struct SystemdStandIn {
    dir: TestDir,
    credentials: PathBuf,
    runtime: PathBuf,
    config: PathBuf,
    config_text: String,
}

impl SystemdStandIn {
    /// `None`, saying why, when not root: running as `nobody` needs root (CI runs as root).
    fn new(name: &str, route_line: &str) -> Option<SystemdStandIn> {
        if !running_as_root(name) {
            return None;
        }
        let dir = TestDir::new(name);
        set_mode(&dir.0, 0o755);
        let (credentials, runtime) = (dir.path("credentials"), dir.path("run"));
        for (path, mode) in [(&credentials, 0o500), (&runtime, 0o750)] {
            std::fs::create_dir(path).expect("create a directory");
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
            set_mode(path, mode);
        }
        let token = credentials.join("token");
        std::fs::write(&token, TOKEN).expect("write the token");
        std::os::unix::fs::chown(&token, Some(NOBODY), Some(NOBODY)).expect("chown the token");
        set_mode(&token, 0o400);
        let config_text = doc_block("conf", "/etc/tcprelay.conf")
            .replace("/run/tcprelay/", &format!("{}/", runtime.display()));
        let route = config_text.lines().find(|line| line.starts_with("route ")).expect("a route");
        let config_text = config_text.replace(route, route_line);
        let config = dir.path("tcprelay.conf");
        std::fs::write(&config, &config_text).expect("write the config");
        Some(SystemdStandIn { dir, credentials, runtime, config, config_text })
    }

    /// A line of the unit with `${CREDENTIALS_DIRECTORY}` and the config path made local.
    fn local(&self, line: &str) -> String {
        line.replace("${CREDENTIALS_DIRECTORY}", arg(&self.credentials))
            .replace("/etc/tcprelay.conf", arg(&self.config))
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

#[test]
#[ignore = "needs setpriv and root: apt-get install util-linux"]
fn the_unit_runs_as_an_unprivileged_user_with_its_token_from_a_credentials_directory() {
    let up = Upstream::echo();
    let route = format!("route 127.0.0.1:0 -> {} name=web", up.addr);
    let Some(stand_in) = SystemdStandIn::new("systemd-run", &route) else { return };
    let SystemdStandIn { dir, runtime, config, config_text, .. } = &stand_in;
    let token = stand_in.credentials.join("token");
    let replace = |line: &str| stand_in.local(line);
    let unit = &units()[0].1;

    // The recipe this replaces: the dynamic user reading root:root 0640 /etc's token itself.
    let in_etc = dir.path("admin.token");
    std::fs::write(&in_etc, TOKEN).expect("write the token in the old place");
    set_mode(&in_etc, 0o640);
    let old = |line: &str| replace(line).replace(&token.display().to_string(), arg(&in_etc));
    let output = setpriv(&exec_line(unit, "ExecStartPre", &old));
    assert_eq!(output.status.code(), Some(2), "the dynamic user read a 0640 root file");
    assert!(text(&output.stderr).contains("Permission denied"), "{}", text(&output.stderr));

    let output = setpriv(&exec_line(unit, "ExecStartPre", &replace));
    assert_eq!(output.status.code(), Some(0), "ExecStartPre: {}", text(&output.stderr));
    let start = exec_line(unit, "ExecStart", &replace);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let mut relay = RelayProcess::start_program(Path::new("setpriv"), &start);
    assert_eq!(echo_through(relay.addr, b"as nobody"), b"as nobody");

    // `systemctl reload` after an edit of the admin line, then `systemctl stop`.
    let moved = runtime.join("moved.sock");
    let admin = config_text.lines().find(|line| line.starts_with("admin ")).expect("an admin line");
    std::fs::write(config, config_text.replace(admin, &format!("admin unix:{}", arg(&moved))))
        .expect("edit the admin line");
    let output = setpriv(&exec_line(unit, "ExecReload", &replace));
    assert_eq!(output.status.code(), Some(0), "ExecReload: {}", text(&output.stderr));
    assert!(moved.exists(), "the admin endpoint did not move");
    let output = setpriv(&exec_line(unit, "ExecStop", &replace));
    assert_eq!(output.status.code(), Some(0), "ExecStop: {}", text(&output.stderr));
    assert_eq!(relay.wait_for_exit(), Some(0));
}

#[test]
fn a_stop_cuts_a_drain_grace_short_and_the_library_reports_draining_during_it() {
    let up = Upstream::echo();
    let server = TestServer::start(tcprelay::ServerConfig {
        routes: vec![tcprelay::Config { upstream: up.addr.to_string(), ..quiet_config() }],
        drain_grace: std::time::Duration::from_secs(600),
        ..tcprelay::ServerConfig::default()
    });
    assert_eq!(server.handle.drain_grace(), std::time::Duration::from_secs(600));
    server.handle.drain();
    assert!(server.handle.is_draining());
    assert_eq!(echo_through(server.addrs[0], b"in the grace"), b"in the grace");
    server.handle.drain(); // a second drain changes nothing
    server.handle.stop();
    server.finish().expect("serve returns once stopped, grace or not");
}

#[test]
#[ignore = "needs systemd-socket-activate, setpriv and root: apt-get install systemd util-linux"]
fn the_socket_activated_unit_serves_the_socket_systemd_hands_it_as_an_unprivileged_user() {
    let up = Upstream::echo();
    let route = format!("route stdin -> {} name=web", up.addr);
    let Some(stand_in) = SystemdStandIn::new("systemd-socket", &route) else { return };
    let unit = &units()[2].1;
    let output = setpriv(&exec_line(unit, "ExecStartPre", &|line| stand_in.local(line)));
    assert_eq!(output.status.code(), Some(0), "ExecStartPre: {}", text(&output.stderr));
    // systemd-socket-activate binds the address it is given: one the kernel just handed out.
    let socket = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    // `--inetd` without `--accept` hands the listening socket over as fd 0, as
    // `StandardInput=socket` with `Accept=no` does; it runs the service at the first client.
    let mut activated = std::process::Command::new("systemd-socket-activate")
        .args(["--inetd", "-l", &socket.to_string(), "setpriv"])
        .args(exec_line(unit, "ExecStart", &|line| stand_in.local(line)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run systemd-socket-activate (apt-get install systemd)");
    let mut first = None;
    assert!(eventually(|| {
        first = std::net::TcpStream::connect(socket).ok();
        first.is_some()
    }));
    let first = first.expect("connected");
    first.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
    assert_eq!(exchange(&first, b"the first client"), b"the first client");
    assert_eq!(echo_through(socket, b"the second"), b"the second");

    let output = setpriv(&exec_line(unit, "ExecStop", &|line| stand_in.local(line)));
    assert_eq!(output.status.code(), Some(0), "ExecStop: {}", text(&output.stderr));
    let exited = eventually(|| matches!(activated.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = activated.kill();
    }
    let status = activated.wait().expect("reap the relay");
    assert!(exited && status.success(), "the relay did not exit 0 after ExecStop: {status:?}");
}
