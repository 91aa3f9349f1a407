//! Deployment recipes run as pasted, with the closest stand-in this machine has for each
//! environment: an `admin` line edited under systemd's `ExecReload=`/`ExecStop=`, the
//! Kubernetes manifest of docs/operations.md (its args checked, a kubelet-style `..data`
//! symlink swap, a probe to another loopback address, the drain timeline), and the systemd
//! unit (verified, and its token read as an unprivileged user from a credentials directory).
#![cfg(unix)]
#![forbid(unsafe_code)]

mod support;

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
