//! The `tcprelay` binary's operations flags: `--route`, `--config`, `--check`, `--admin`,
//! and a drain through `POST /drain` that ends the process with exit code 0.
#![forbid(unsafe_code)]

mod support;

use std::net::Shutdown;
use std::path::PathBuf;

use support::*;

/// A config file with `text`, in a directory of its own under the system's temp dir;
/// removed when dropped.
struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    fn new(name: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("tcprelay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        ConfigFile { path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn config_file_errors_name_file_line_and_column_and_exit_2() {
    let cases = [
        ("unknown-key.conf", "idle-timeout 5m\nfrobnicate 3\n", ":2:1: ", "\"frobnicate\""),
        ("duration.conf", "connect-timeout 5x\n", ":1:17: ", "\"5x\""),
        ("cidr.conf", "route :0 -> :1 allow=10.0.0.1/8\n", ":1:22: ", "\"10.0.0.1/8\""),
        ("option.conf", "route :0 -> :1\n    polcy=first\n", ":2:5: ", "\"polcy\""),
        ("listen.conf", "route nowhere:x -> :1\n", ":1:7: ", "\"nowhere:x\""),
        ("upstream.conf", "route :0 -> :1 host:0\n", ":1:16: ", "\"host:0\""),
        ("admin.conf", "admin [::1\nroute :0 -> :1\n", ":1:7: ", "\"[::1\""),
        ("late-global.conf", "route :0 -> :1\nadmin :9\n", ":2:1: ", "\"admin\""),
        ("no-route.conf", "idle-timeout 5m\n", ": ", "at least one route"),
    ];
    for (name, text, position, culprit) in cases {
        let file = ConfigFile::new(name, text);
        let output = run_tcprelay(&["--config", file.arg()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        let expected = format!("{}{position}", file.arg());
        assert!(stderr.contains(&expected), "{name}: expected {expected:?} in {stderr}");
        assert!(stderr.contains(culprit), "{name}: expected {culprit:?} in {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }

    let missing = run_tcprelay(&["--config", "/nonexistent/tcprelay.conf"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/tcprelay.conf"));

    let file = ConfigFile::new("mixed.conf", "route :0 -> :1\n");
    let mixed = run_tcprelay(&["--config", file.arg(), "--listen", ":0"]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("--listen cannot be combined"));
}

#[test]
fn check_prints_what_would_run_and_exits_0() {
    let file = ConfigFile::new(
        "check.conf",
        "idle-timeout 5m\nadmin :9090\n\
         route 127.0.0.1:8080 -> a.internal:80 b.internal:80\n    \
         name=web policy=round-robin proxy-protocol=v2 allow=10.0.0.0/8 deny=10.0.0.5\n\
         route [::1]:2222 -> [::1]:22 max-connections=20\n",
    );
    let output = run_tcprelay(&["--check", "--config", file.arg()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        "log-level info\nadmin 127.0.0.1:9090\ndrain-timeout 30s\n\
         route 127.0.0.1:8080 -> a.internal:80 b.internal:80 name=web policy=round-robin \
         health-check=0 connect-timeout=5s idle-timeout=5m half-close-timeout=1m max-connections=500 \
         proxy-protocol=v2 allow=10.0.0.0/8 deny=10.0.0.5/32\n\
         route [::1]:2222 -> [::1]:22 policy=first health-check=0 connect-timeout=5s \
         idle-timeout=5m half-close-timeout=1m max-connections=20\n"
    );

    // The command line form too, without binding anything.
    let output = run_tcprelay(&["--check", "-l", ":8080", "-u", ":80", "--route", ":8081=:81,:82"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("route 127.0.0.1:8080 -> 127.0.0.1:80 policy=first"), "{stdout}");
    assert!(stdout.contains("route 127.0.0.1:8081 -> 127.0.0.1:81 127.0.0.1:82 "), "{stdout}");

    let output = run_tcprelay(&["--check", "--route", "unix:/run/a.sock=unix:/run/b.sock"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("route unix:/run/a.sock -> unix:/run/b.sock policy=first"), "{stdout}");
}

#[test]
fn route_flag_errors_exit_2() {
    for (args, culprit) in [
        (&["--route", "127.0.0.1:0"][..], "\"127.0.0.1:0\""),
        (&["--route", "nope=:1"][..], "\"nope\""),
        (&["--route", ":0=:1,"][..], "\"\""),
        (&["--route", ":0=:1", "--admin", "x"][..], "\"x\""),
        (&["--route", ":0=:1", "--drain-timeout", "1d"][..], "\"1d\""),
    ] {
        let output = run_tcprelay(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(culprit), "{args:?}: {stderr}");
    }
}

#[test]
fn several_routes_metrics_and_drain_through_the_binary() {
    let (one, two, three) = (Upstream::banner("one"), Upstream::banner("two"), Upstream::echo());
    let file = ConfigFile::new(
        "multi.conf",
        &format!(
            "admin 127.0.0.1:0\ndrain-timeout 10s\nlog-level warn\n\
             route 127.0.0.1:0 -> {} name=first\n\
             route 127.0.0.1:0 -> {} name=second\n\
             route [::1]:0 -> {} name=third\n",
            one.addr, two.addr, three.addr
        ),
    );
    let mut relay = RelayProcess::start_routes(&["--config", file.arg()], 3, true);
    assert_eq!(served_by(relay.routes[0]), "one");
    assert_eq!(served_by(relay.routes[1]), "two");

    // A live connection on the third route, open across the drain.
    let live = connect(relay.routes[2]);
    write_all(&live, b"before").unwrap();
    let admin = relay.admin.unwrap();
    assert!(eventually(|| {
        http_get(admin, "/metrics").1.contains("tcprelay_connections_active{route=\"third\"} 1")
    }));
    let (status, metrics) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tcprelay_connections_accepted_total{route=\"first\"} 1\n"));
    assert!(metrics.contains("tcprelay_connections_accepted_total{route=\"second\"} 1\n"));

    let (status, _) = http(admin, b"POST /drain HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status, 200);
    write_all(&live, b" after").unwrap(); // still relayed during the drain
    live.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&live).unwrap(), b"before after");
    assert_eq!(relay.wait_for_exit(), Some(0));
    // Nothing at warn level or above was logged on the way.
    for line in relay.kill_and_collect_log() {
        assert!(!line.contains("level=warn") && !line.contains("level=error"), "{line}");
    }
}

#[test]
fn route_flags_run_several_listeners() {
    let (one, two) = (Upstream::banner("one"), Upstream::banner("two"));
    let (a, b) = (one.addr.to_string(), two.addr.to_string());
    let route = format!("127.0.0.1:0={b}");
    let relay = RelayProcess::start_routes(
        &["-l", ":0", "-u", &a, "--route", &route, "--log-level", "error"],
        2,
        false,
    );
    assert_eq!(served_by(relay.routes[0]), "one");
    assert_eq!(served_by(relay.routes[1]), "two");
}

/// The example at the top of docs/operations.md is valid, and `--check` prints what the
/// docs say it prints.
#[test]
fn the_documented_example_checks_as_documented() {
    let doc = include_str!("../docs/operations.md");
    let example = doc.split("```text\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let file = ConfigFile::new("documented.conf", example);
    let output = run_tcprelay(&["--check", "--config", file.arg()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let documented = doc
        .lines()
        .find(|line| {
            line.starts_with("route 0.0.0.0:443 -> app1.internal:443 app2.internal:443 name=")
        })
        .expect("the --check sample in the docs");
    assert!(stdout.lines().any(|line| line == documented), "{stdout}");
    assert_eq!(stdout.lines().filter(|line| line.starts_with("route ")).count(), 3);
}

#[test]
fn a_denied_client_is_logged_with_reason_denied() {
    let upstream = Upstream::echo();
    let up = upstream.addr.to_string();
    let relay =
        RelayProcess::start_routes(&["-l", ":0", "-u", &up, "--deny", "127.0.0.0/8"], 1, false);
    let client = connect(relay.routes[0]);
    assert!(matches!(read_all(&client).as_deref(), Ok(b"") | Err(_)), "closed at once");
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("reason=denied") && line.contains("upstream=-"), "{line}");
    assert_eq!(upstream.accepted(), 0);
}

#[test]
fn health_checks_log_each_change_once_and_show_in_metrics() {
    let live = Upstream::echo();
    let upstreams = format!("{},{}", dead_addr(), live.addr);
    let args = ["-l", ":0", "-u", &upstreams, "--health-check", "20ms", "--admin", ":0"];
    let relay = RelayProcess::start_routes(&args, 1, true);

    let down = relay.log_line_with("upstream down");
    assert!(down.contains("upstream=127.0.0.1:1 checks=3 error="), "{down}");
    // A client is relayed by the live upstream without trying the dead one.
    assert_eq!(echo_through(relay.addr, b"checked"), b"checked");
    let (_, metrics) = http_get(relay.admin.expect("an admin endpoint"), "/metrics");
    let route = format!("route=\"{}\"", relay.addr);
    for expected in [
        format!("tcprelay_upstream_up{{{route},upstream=\"127.0.0.1:1\"}} 0"),
        format!("tcprelay_upstream_up{{{route},upstream=\"{}\"}} 1", live.addr),
        format!("tcprelay_upstream_connections_total{{{route},upstream=\"{}\"}} 1", live.addr),
        format!("tcprelay_upstream_connect_failures_total{{{route}}} 0"),
    ] {
        assert!(metrics.lines().any(|line| line == expected), "no {expected:?} in\n{metrics}");
    }
    let log = relay.kill_and_collect_log();
    let count = |needle: &str| log.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(count("upstream down"), 1, "logged once, not once per check: {log:#?}");
    assert_eq!(count("upstream up"), 0, "{log:#?}");
}
