//! The `tcprelay` binary's operations flags: `--route`, `--config`, `--check`, `--admin`,
//! and a drain through `POST /drain` that ends the process with exit code 0.
#![forbid(unsafe_code)]

mod support;

use std::net::Shutdown;

use support::*;

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
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(stderr.contains("--listen cannot be combined with --config: the routes come from"));
    assert!(stderr.contains("add a route line there"), "{stderr}");
}

/// The command line and the file share one parser and one range per setting: the same
/// value is refused (or accepted) in both, each naming it.
#[test]
fn flags_and_config_keys_refuse_the_same_values() {
    for (key, value) in [
        ("connect-timeout", "0"),
        ("max-connections", "+5"),
        ("max-connections", "0"),
        ("buffer-size", "64g"),
        ("buffer-size", "18446744073709551615"),
        ("stack-size", "1000g"),
        ("idle-timeout", "25h"),
        ("thread-keep-alive", "2h"),
    ] {
        let flag = format!("--{key}");
        let by_flag = run_tcprelay(&["--check", "-l", ":0", "-u", ":1", &flag, value]);
        let file =
            ConfigFile::new(&format!("{key}.conf"), &format!("{key} {value}\nroute :0 -> :1\n"));
        let by_file = run_tcprelay(&["--check", "--config", file.arg()]);
        for (output, from) in [(by_flag, flag.clone()), (by_file, format!("{}:1:", file.arg()))] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{key} {value}: {stderr}");
            assert!(stderr.contains(&from), "{key} {value}: {stderr}");
            assert!(stderr.contains(&format!("found \"{value}\"")), "{key} {value}: {stderr}");
        }
    }
}

/// Every setting a flag sets can be set in the file, and a flag given next to `--config`
/// overrides the file's global value but not a route's own.
#[test]
fn config_file_takes_every_setting_and_flags_override_its_globals() {
    let file = ConfigFile::new(
        "all.conf",
        "buffer-size 64k\nstack-size 128k\nthread-keep-alive 0\nexplain on\nidle-timeout 5m\n\
         route 127.0.0.1:0 -> :1\nroute 127.0.0.1:0 -> :2 idle-timeout=1m\n",
    );
    let output = run_tcprelay(&["--check", "--config", file.arg(), "--idle-timeout", "2m"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let routes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("route ")).collect();
    assert_eq!(routes.len(), 2, "{stdout}");
    assert!(routes[0].contains(" idle-timeout=2m "), "the flag overrides the global: {stdout}");
    assert!(routes[1].contains(" idle-timeout=1m "), "the route's own wins: {stdout}");
    for route in &routes {
        for part in
            [" buffer-size=64k ", " stack-size=128k ", " thread-keep-alive=0 ", " explain=on"]
        {
            assert!(route.contains(part), "{part} missing: {route}");
        }
    }
    let refused = run_tcprelay(&["--check", "--config", file.arg(), "--allow", "10.0.0.0/8"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow cannot be combined with --config: it belongs to a route; write allow=10.0.0.0/8 on the route lines"), "{stderr}");
}

/// `--check`'s output is a config file: fed back, it checks to the same text, with the
/// command-line-only settings of the first run in it.
#[test]
#[cfg_attr(windows, ignore = "Unix socket routes: none on Windows")]
fn check_output_reads_back_as_a_config_file() {
    let first = run_tcprelay(&[
        "--check",
        "-l",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:1, 127.0.0.1:2",
        "--route",
        "unix:/tmp/tcprelay-check-a.sock=unix:/tmp/b.sock",
        "--buffer-size",
        "64k",
        "--stack-size",
        "128k",
        "--thread-keep-alive",
        "0",
        "--explain",
        "--allow",
        "10.0.0.0/8, ::1",
        "--proxy-protocol",
        "v1",
        "--admin",
        ":0",
        "--log-level",
        "warn",
        "--drain-timeout",
        "5s",
        "--max-connections",
        "7",
        "--policy",
        "round-robin",
    ]);
    let described = String::from_utf8(first.stdout).expect("--check prints UTF-8");
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(described.contains("route 127.0.0.1:0 -> 127.0.0.1:1 127.0.0.1:2 "), "{described}");
    assert!(described.contains(" explain=on ") && described.contains("allow=10.0.0.0/8,::1/128"));
    let file = ConfigFile::new("described.conf", &described);
    let again = run_tcprelay(&["--check", "--config", file.arg()]);
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8(again.stdout).expect("--check prints UTF-8"), described);
}

/// What `--check` passes must start: clashes that would fail at bind or loop at run time
/// are refused, naming both sides.
#[test]
fn check_refuses_clashing_and_looping_routes() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--route", ":7001=:1", "--route", "127.0.0.1:7001=:2"],
            "route 127.0.0.1:7001 and route 127.0.0.1:7001 (route 1) both listen on 127.0.0.1:7001",
        ),
        (
            &["--route", "0.0.0.0:7001=:1", "--route", "127.0.0.1:7001=:2"],
            "route 127.0.0.1:7001 and route 0.0.0.0:7001 (route 1)",
        ),
        (
            &["-l", ":7001", "-u", ":1", "--admin", "127.0.0.1:7001"],
            "admin 127.0.0.1:7001 and route 127.0.0.1:7001",
        ),
        (
            &["-l", ":7001", "-u", "127.0.0.1:7001"],
            "route 127.0.0.1:7001 forwards to its own listen address: upstream 127.0.0.1:7001",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        args.insert(0, "--check");
        let output = run_tcprelay(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let file = ConfigFile::new("clash.conf", "admin :7002\nroute 0.0.0.0:7002 -> :1\n");
    let output = run_tcprelay(&["--check", "--config", file.arg()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains(&format!("{}:2:7: admin 127.0.0.1:7002 and route 0.0.0.0:7002", file.arg())),
        "{stderr}"
    );
}

/// Config input is bounded: devices, FIFOs and oversized files are refused with exit 2
/// before anything is read; a FIFO with no writer would otherwise block forever.
#[test]
#[cfg_attr(windows, ignore = "/dev/zero: no such device on Windows")]
fn config_files_must_be_small_regular_files() {
    for (path, expected) in [
        ("/dev/zero", "expected a regular file, found a device"),
        ("/tmp", "expected a regular file, found a directory"),
    ] {
        let output = run_tcprelay(&["--check", "--config", path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains(&format!("{path}: {expected}")), "{stderr}");
    }
    let fifo = ConfigFile::new("fifo.conf", "");
    std::fs::remove_file(&fifo.path).unwrap_or_else(|e| {
        panic!("the test removes {} to put a FIFO there: {e}", fifo.path.display())
    });
    let made = std::process::Command::new("mkfifo").arg(&fifo.path).status().expect("run mkfifo");
    assert!(made.success());
    let output = run_tcprelay(&["--check", "--config", fifo.arg()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected a regular file, found a FIFO"), "{stderr}");
}

/// Error text: a non-UTF-8 file still gets FILE:LINE:COL, only ASCII space and tab
/// separate words (a no-break space is shown escaped), and a rinetd line gets its
/// translation and the migration section.
#[test]
fn config_file_error_text_is_exact_and_escaped() {
    let latin1 = ConfigFile::new("latin1.conf", "");
    std::fs::write(&latin1.path, b"# caf\xe9\nroute :0 -> :1\n")
        .unwrap_or_else(|e| panic!("the test writes {}: {e}", latin1.path.display()));
    let nbsp = ConfigFile::new("nbsp.conf", "idle-timeout\u{a0}5m\nroute :0 -> :1\n");
    let rinetd = ConfigFile::new("rinetd.conf", "0.0.0.0 8080 10.0.0.2 80\n");
    let control = ConfigFile::new("control.conf", "route :0 -> bad\u{1b}[31mhost:1\n");
    for (file, expected) in [
        (&latin1, ":1:6: expected UTF-8 text, found the byte 0xe9".to_string()),
        (&nbsp, r#":1:1: expected a global setting"#.to_string()),
        (&nbsp, r#"found "idle-timeout\u{a0}5m""#.to_string()),
        (&rinetd, r#":1:1: expected a global setting or "route", found a rinetd forwarding rule, written here as "route 0.0.0.0:8080 -> 10.0.0.2:80" (see "Migrating from rinetd" in docs/operations.md)"#.to_string()),
        (&control, r#"invalid address "bad\u{1b}[31mhost:1""#.to_string()),
    ] {
        let output = run_tcprelay(&["--check", "--config", file.arg()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&expected), "expected {expected:?} in {stderr}");
        assert!(!stderr.contains('\u{1b}') && !stderr.contains(';'), "raw control or stray ';': {stderr}");
    }
    assert!(include_str!("../docs/operations.md").contains("## Migrating from rinetd"));
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
    let stdout = String::from_utf8(output.stdout).expect("--check prints UTF-8");
    assert_eq!(
        stdout,
        "log-level info\nlog-format logfmt\nadmin 127.0.0.1:9090\ndrain-timeout 30s\ndrain-grace 0\nwatch-config 0\n\
         route 127.0.0.1:8080 -> a.internal:80 b.internal:80 name=web policy=round-robin health-check=0 \
         connect-timeout=5s first-bytes-timeout=5s idle-timeout=5m half-close-timeout=1m \
         max-connections=500 max-connections-per-client=auto buffer-size=1m stack-size=64k \
         thread-keep-alive=10s explain=off \
         proxy-protocol=v2 accept-proxy=off allow=10.0.0.0/8 deny=10.0.0.5/32\n\
         route [::1]:2222 -> [::1]:22 policy=first health-check=0 connect-timeout=5s \
         first-bytes-timeout=5s idle-timeout=5m half-close-timeout=1m max-connections=20 \
         max-connections-per-client=auto buffer-size=1m stack-size=64k thread-keep-alive=10s \
         explain=off accept-proxy=off\n"
    );

    // The command line form too, without binding anything.
    let output = run_tcprelay(&["--check", "-l", ":8080", "-u", ":80", "--route", ":8081=:81,:82"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("--check prints UTF-8");
    assert!(stdout.contains("route 127.0.0.1:8080 -> 127.0.0.1:80 policy=first"), "{stdout}");
    assert!(stdout.contains("route 127.0.0.1:8081 -> 127.0.0.1:81 127.0.0.1:82 "), "{stdout}");

    let output = run_tcprelay(&["--check", "--route", "unix:/run/a.sock=unix:/run/b.sock"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("--check prints UTF-8");
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
    write_all(&live, b"before").expect("the live client sends its first bytes");
    let admin = relay.admin.expect("the relay has an admin endpoint");
    assert!(eventually(|| {
        http_get(admin, "/metrics").1.contains("tcprelay_connections_active{route=\"third\"} 1")
    }));
    let (status, metrics) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tcprelay_connections_accepted_total{route=\"first\"} 1\n"));
    assert!(metrics.contains("tcprelay_connections_accepted_total{route=\"second\"} 1\n"));

    let (status, _) = http_post(admin, "/drain");
    assert_eq!(status, 200);
    write_all(&live, b" after").expect("a live connection still takes bytes during the drain");
    live.shutdown(Shutdown::Write).expect("the live client half-closes during the drain");
    assert_eq!(
        read_all(&live)
            .expect("the echo of everything sent comes back, then EOF, during the drain"),
        b"before after"
    );
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
    let example = doc
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/operations.md has a ```text example");
    let file = ConfigFile::new("documented.conf", example);
    let output = run_tcprelay(&["--check", "--config", file.arg()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("--check prints UTF-8");
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
