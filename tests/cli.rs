//! The `tcprelay` binary: exit codes, messages, `--help`, the demo, and real forwarding.
#![forbid(unsafe_code)]

mod support;

use std::net::{Shutdown, TcpListener};
use std::process::Output;

use support::*;

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_name_the_culprit_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--frobnicate"], "unknown flag \"--frobnicate\""),
        (&["--listen"], "--listen needs a value"),
        (&["-l", "localhost:notaport", "-u", ":80"], "\"localhost:notaport\""),
        (&["-l", ":0", "-u", "[::1:80"], "\"[::1:80\""),
        (&["-l", ":0", "-u", ":80", "--connect-timeout", "soon"], "\"soon\""),
        (&["-l", ":0", "-u", ":80", "--log-level", "chatty"], "\"chatty\""),
        (&["-l", ":0"], "missing --upstream"),
        (&[], "missing --listen"),
    ];
    for (args, expected) in cases {
        let output = run_tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: no hint to --help: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_goes_to_stdout_and_lists_every_flag_with_defaults() {
    let output = run_tcprelay(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).expect("--help prints UTF-8");
    for flag in ["--listen", "--upstream", "--connect-timeout", "--log-level", "--version", "demo"]
    {
        assert!(help.contains(flag), "{flag} missing");
    }
    assert!(help.contains("[default: 5s]"));
}

/// Issue 22, item 17: SIGHUP (a logrotate `postrotate`, an operator used to rinetd or nginx)
/// ends the relay at once, since std cannot catch it. `--help` says so and names the
/// commands to use instead, and the operations guide's signals table it points to exists.
#[test]
fn help_says_signals_are_not_caught_and_names_reload_and_drain_instead() {
    let output = run_tcprelay(&["--help"]);
    let help = String::from_utf8(output.stdout).expect("--help prints UTF-8");
    for needed in ["catches none", "SIGHUP", "`tcprelay reload`", "`tcprelay drain`", "postrotate"]
    {
        assert!(help.contains(needed), "--help does not say {needed:?}:\n{help}");
    }
    assert!(help.contains("docs/operations.md, \"Signals\""), "{help}");
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("read docs/operations.md");
    let section = guide.split("\n### Signals\n").nth(1).expect("operations.md has ### Signals");
    for signal in ["SIGHUP", "SIGUSR1", "SIGQUIT", "SIGTERM", "SIGINT"] {
        assert!(section.contains(&format!("`{signal}`")), "the signals table lacks {signal}");
    }
    assert!(section.contains("postrotate"), "the signals section gives a logrotate line");
}

/// `--version` names the version (alone on the first line, for scripts), the commit when
/// the build was given one (`TCPRELAY_COMMIT`, as `.ci/run` does) and the target.
#[test]
fn version_prints_the_version_commit_and_target() {
    let output = run_tcprelay(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("--version prints UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("tcprelay {}", env!("CARGO_PKG_VERSION")), "{stdout}");
    let commit = option_env!("TCPRELAY_COMMIT").map(str::trim).filter(|c| !c.is_empty());
    let expected = commit.map_or("commit: unknown (".to_string(), |c| format!("commit: {c}"));
    assert!(lines[1].starts_with(&expected), "{stdout}");
    let target = format!("target: {}-{}", std::env::consts::ARCH, std::env::consts::OS);
    assert!(lines[2].starts_with(&target), "{stdout}");
}

#[test]
fn bind_failure_exits_1_naming_the_address() {
    let taken =
        TcpListener::bind("127.0.0.1:0").expect("the test binds a loopback port to hold it taken");
    let addr = taken.local_addr().expect("the held listener has a local address").to_string();
    let output = run_tcprelay(&["-l", &addr, "-u", ":80"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The OS's own words follow: "Address in use" on Unix; Windows says it otherwise.
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("in use") || cfg!(windows), "{stderr}");
}

#[test]
fn demo_passes_every_step() {
    let output = run_tcprelay(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr_of(&output));
    assert_eq!(stdout.matches("[ok]").count(), 3, "{stdout}");
    assert!(stdout.contains("all steps passed"), "{stdout}");
}

#[test]
fn binary_relays_and_logs_one_line_per_connection() {
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["--listen", "127.0.0.1:0", "--upstream", &upstream_arg]);

    let sent = pattern(9, 100_000);
    let client = connect(relay.addr);
    let received = exchange(&client, &sent);
    assert!(received == sent, "echo through the binary differs");

    let line = relay.log_line_with("connection closed");
    for field in [
        "level=info",
        "conn=1",
        &format!("upstream={upstream_arg}"),
        "bytes_to_upstream=100000",
        "bytes_to_client=100000",
        "reason=client_eof",
        "duration_ms=",
        "client=127.0.0.1:",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(line.starts_with("ts=20") && line.contains("Z level="), "{line}");
}

#[test]
fn binary_logs_connect_failures_with_the_upstream() {
    let dead = refusing_addr().to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &dead]);

    let client = connect(relay.addr);
    assert!(
        read_all(&client)
            .expect("with no upstream to dial, the relay closes the client cleanly")
            .is_empty()
    );
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("reason=connect_failed") && line.contains(&dead), "{line}");
}

/// `--explain` tells a connection's life in order, each event beside its Go line.
#[test]
fn explain_narrates_each_connection_with_the_go_lines() {
    // The upstream replies only after the client's EOF, so the events have one order.
    let upstream = Upstream::start(|stream| {
        assert_eq!(
            read_all(&stream)
                .expect("the upstream reads the client's line up to the EOF the relay passes on"),
            b"hi\n"
        );
        write_all(&stream, b"hello back")
            .expect("the upstream sends its reply after the client's half-close");
    });
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--explain"]);

    let client = connect(relay.addr);
    write_all(&client, b"hi\n").expect("the client sends its line");
    client.shutdown(Shutdown::Write).expect("the client half-closes after its line");
    assert_eq!(
        read_all(&client)
            .expect("the upstream's reply comes back after the client's half-close, then EOF"),
        b"hello back"
    );

    // The Go halves quote docs/go/correct/main.go verbatim (tests/go_programs.rs checks that).
    let expected = [
        ("accepted a client from 127.0.0.1:", "Go: conn, err := l.Accept()"),
        (
            &format!("dialled its own upstream {upstream_arg}"),
            "Go: c, err := net.Dial(\"tcp\", upstream)",
        ),
        ("a second thread starts, for client → upstream", "Go: go func() {"),
        ("first 3 bytes client → upstream", "Go: copyThenCloseWrite(up, conn)"),
        ("client sent EOF: shutdown(Write) to upstream", "Go: dst.CloseWrite()"),
        ("first 10 bytes upstream → client", "Go: copyThenCloseWrite(conn, up)"),
        ("upstream sent EOF: shutdown(Write) to client", "Go: dst.CloseWrite()"),
        ("both copies done, both sockets closed (client_eof)", "Go: wg.Wait()"),
    ];
    for (event, go) in expected {
        let line = relay.stdout_line();
        assert!(line.starts_with("conn 1 "), "{line}");
        assert!(
            line.contains(event) && line.contains(go),
            "expected {event:?} / {go:?}, got {line:?}"
        );
    }
}

/// The README's flags table lists every flag `--help` lists, with the same default.
#[test]
fn readme_flags_table_matches_help() {
    let output = run_tcprelay(&["--help"]);
    let help = String::from_utf8(output.stdout).expect("--help prints UTF-8");
    let readme = include_str!("../README.md");
    let options = help.split("Options:").nth(1).expect("an Options: section");
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in options.lines() {
        let starts_a_flag = line.starts_with("  -") || line.starts_with("      --");
        if starts_a_flag {
            let flag = line
                .split_whitespace()
                .find(|word| word.starts_with("--"))
                .unwrap_or_else(|| panic!("a --flag on the --help line {line:?}"));
            flags.push((flag.trim_end_matches(',').to_string(), None));
        }
        if let Some(default) = line.split("[default: ").nth(1) {
            let default =
                default.split(']').next().expect("split yields at least one piece").to_string();
            flags.last_mut().expect("a default after its flag").1 = Some(default);
        }
    }
    assert!(flags.len() >= 20, "too few flags parsed from --help: {flags:?}");
    for (flag, default) in flags {
        let row = readme
            .lines()
            .filter(|line| line.starts_with("| `"))
            .find(|line| {
                line.split(" | ")
                    .next()
                    .expect("split yields at least one piece")
                    .contains(&format!("`{flag}"))
            })
            .unwrap_or_else(|| panic!("README.md has no row for {flag}"));
        if let Some(default) = default {
            let column = row.split(" | ").nth(1).unwrap_or_default();
            assert!(column.contains(&default), "{flag}: README says {column:?}, --help {default}");
        }
    }
}

/// Values out of range are refused when read, exit 2, naming the flag and the value:
/// each of these once passed and then aborted, panicked or failed every client.
#[test]
fn out_of_range_values_are_refused_at_parse_time() {
    for (flag, value) in [
        ("--buffer-size", "64g"),
        ("--buffer-size", "18446744073709551615"),
        ("--stack-size", "1000g"),
        ("--connect-timeout", "0"),
        ("--max-connections", "+5"),
        ("--proxy-from", "10.0.0.300/8"),
        ("--proxy-from", "127.0.0.1/33"),
    ] {
        let output = run_tcprelay(&["--check", "-l", ":0", "-u", ":1", flag, value]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(&format!("{flag}: expected ")), "{stderr}");
        assert!(stderr.contains(&format!("found \"{value}\"")), "{stderr}");
    }
}

/// A flag that takes one value is an error when given twice; a list flag keeps both.
#[test]
fn a_single_value_flag_given_twice_is_an_error() {
    for args in [
        &["-l", ":8080", "-l", ":8081", "-u", ":1"][..],
        &["--listen", ":8080", "-u", ":1", "--listen=:8081"],
        &["-l", ":0", "-u", ":1", "--idle-timeout", "1m", "--idle-timeout", "2m"],
        &["-l", ":0", "-u", ":1", "--explain", "--explain"],
    ] {
        let output = run_tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("given twice (") && stderr.contains("give it once"), "{stderr}");
    }
    let stderr = stderr_of(&run_tcprelay(&["-l", ":8080", "-l", ":8081", "-u", ":1"]));
    assert!(
        stderr.contains(r#"--listen given twice (":8080", then ":8081"): give it once"#),
        "{stderr}"
    );
    let output = run_tcprelay(&[
        "--check",
        "-l",
        ":0",
        "-u",
        ":1",
        "-u",
        ":2",
        "--allow",
        "::1",
        "--allow",
        "10.0.0.0/8",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("-> 127.0.0.1:1 127.0.0.1:2 ")
            && stdout.contains("allow=::1/128,10.0.0.0/8"),
        "{stdout}"
    );
}

/// `-u 'A, B'` drops the spaces; a host name that can never resolve is refused when read,
/// and a control character in it is shown escaped.
#[test]
fn list_values_are_trimmed_and_impossible_hosts_refused() {
    let output = run_tcprelay(&["--check", "-l", ":0", "-u", "127.0.0.1:1, 127.0.0.1:2"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout.contains("-> 127.0.0.1:1 127.0.0.1:2 "), "{stdout}");
    for (args, culprit) in [
        (&["-l", ":0", "-u", "my host:80"][..], r#""my host:80""#),
        (&["-l", ":0", "-u", "a\tb:80"], r#""a\tb:80""#),
        (&["-l", "bad\u{1b}host:80", "-u", ":1"], r#""bad\u{1b}host:80""#),
        (&["-l", ":0", "-u", "a..b:80"], r#""a..b:80""#),
    ] {
        let output = run_tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(culprit) && stderr.contains("is not a host name"), "{stderr}");
        assert!(!stderr.contains('\u{1b}') && !stderr.contains('\t'), "{stderr}");
    }
}

/// A file in a directory of this test's own under the system's temporary directory, which
/// the caller removes.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tcprelay-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the test creates its scratch directory");
    dir
}

/// The mistakes of a first day, each named for what it is (issue 23, item 6): all the
/// address ones once got "write IPv6 addresses in brackets", the typos a bare "unknown".
#[test]
fn day_one_mistakes_are_named_with_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["-l", "localhost:80:90", "-u", ":1"], "did you mean -l localhost:80 -u :90?"),
        (&["-l", ":0", "-u", "8080:localhost:80"], "did you mean -l :8080 -u localhost:80?"),
        (&["-l", "tcp://127.0.0.1:80", "-u", ":1"], "no scheme (tcp:); write HOST:PORT"),
        (&["-l", ":0", "-u", "udp:127.0.0.1:53"], "write the listen address as udp:127.0.0.1:0"),
        (&["--lisen", ":0", "-u", ":1"], r#"unknown flag "--lisen" (did you mean "--listen"?)"#),
        (&["-l", ":0", "-u", ":1", "--idle-timout", "1m"], r#"(did you mean "--idle-timeout"?)"#),
        (&["relaod"], r#"unexpected argument "relaod" (did you mean "reload"?)"#),
        (&["stauts", "--admin", ":1"], r#"(did you mean "status"?)"#),
        (
            &["drain", "--adimn", ":1"],
            r#"unknown flag "--adimn" for tcprelay drain (did you mean "--admin"?)"#,
        ),
    ];
    for (args, expected) in cases {
        let output = run_tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("brackets"), "{args:?}: {stderr}");
    }
}

/// `--help` says a switch is "on or off": `--explain on` and `--accept-proxy off`, with the
/// value as a separate word, mean what they say (they were refused as "unexpected argument").
#[test]
fn a_switch_takes_on_or_off_as_the_next_word() {
    for (words, expected) in [
        (&["--explain", "on"][..], "explain=on accept-proxy=off"),
        (&["--explain", "off", "--accept-proxy", "on"], "explain=off accept-proxy=on"),
        (&["--accept-proxy", "off", "--explain"], "explain=on accept-proxy=off"),
        (&["--explain=off"], "explain=off"),
    ] {
        let mut args = vec!["--check", "-l", ":0", "-u", ":1"];
        args.extend(words);
        let output = run_tcprelay(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr_of(&output));
        assert!(stdout.contains(expected), "{args:?}: {stdout}");
    }
    // Any other word after a switch is still a stray argument.
    let stderr = stderr_of(&run_tcprelay(&["-l", ":0", "-u", ":1", "--explain", "yes"]));
    assert!(stderr.contains(r#"unexpected argument "yes""#), "{stderr}");
}

/// A config file's typos and the command line's comma list written in a file get the same
/// kind of message, at the file's line and column.
#[test]
fn config_file_mistakes_are_named_with_the_fix() {
    let dir = scratch_dir("mistakes");
    let file = dir.join("relay.conf");
    for (text, expected) in [
        (
            "route :0 -> :1,:2\n",
            r#"relay.conf:1:13: expected upstreams separated by spaces, found the comma list ":1,:2"; in a config file write "route :0 -> :1 :2""#,
        ),
        (
            "idle-timout 5m\nroute :0 -> :1\n",
            r#"found "idle-timout" (did you mean "idle-timeout"?)"#,
        ),
        ("route :0 -> :1 polcy=first\n", r#"found "polcy" (did you mean "policy"?)"#),
        ("rout :0 -> :1\n", r#"found "rout" (did you mean "route"?)"#),
    ] {
        std::fs::write(&file, text).expect("the test writes its config file");
        let output = run_tcprelay(&["--check", "--config", file.to_str().expect("a UTF-8 path")]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user without the capability binding a port below 1024 is told the three ways out, not
/// only "Permission denied". Run as `nobody` through `setpriv`, as a service account would.
#[test]
#[cfg_attr(windows, ignore = "setpriv, root and Linux's unprivileged-port sysctl")]
fn a_low_port_refused_to_a_user_names_the_capability_and_the_sysctl() {
    if !running_as_root("a_low_port_refused_to_a_user_names_the_capability_and_the_sysctl") {
        eprintln!("skipped: needs root, to run the relay as nobody with setpriv");
        return;
    }
    let first_free: u16 =
        std::fs::read_to_string(proc_file("/proc/sys/net/ipv4/ip_unprivileged_port_start".into()))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(1024);
    if first_free <= 1 {
        eprintln!("skipped: net.ipv4.ip_unprivileged_port_start is {first_free}: any port binds");
        return;
    }
    // Refused for the privilege alone, whether or not something listens there.
    let port = (first_free - 1).min(1023).to_string();
    let listen = format!("127.0.0.1:{port}");
    let output = std::process::Command::new("setpriv")
        // 65534: nobody's group, called nogroup on Debian and nobody on Fedora.
        .args(["--reuid=nobody", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["-l", &listen, "-u", ":1"])
        .output()
        .expect("setpriv runs (util-linux)");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needed in [
        format!("cannot listen on {listen}: Permission denied"),
        "CAP_NET_BIND_SERVICE".to_string(),
        "AmbientCapabilities=CAP_NET_BIND_SERVICE".to_string(),
        format!("sysctl net.ipv4.ip_unprivileged_port_start={port}"),
    ] {
        assert!(stderr.contains(&needed), "{needed:?} missing: {stderr}");
    }
}

/// One rule for every path in a config file: relative to the file's directory. A `unix:`
/// listen, upstream or admin path was relative to the working directory while `pid-file`
/// and `admin-token-file` were relative to the file.
#[test]
#[cfg_attr(windows, ignore = "names a Unix socket and a pid file the Unix way")]
fn every_relative_path_in_a_config_file_is_relative_to_the_file() {
    let dir = scratch_dir("relative");
    let file = dir.join("relay.conf");
    std::fs::write(
        &file,
        "admin unix:admin.sock\npid-file run/relay.pid\n\
         route unix:front.sock -> unix:back.sock unix:/abs/other.sock\n",
    )
    .expect("the test writes its config file");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tcprelay"))
        .args(["--check", "--config", file.to_str().expect("a UTF-8 path")])
        .current_dir("/")
        .output()
        .expect("the relay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let d = dir.display();
    for expected in [
        format!("admin unix:{d}/admin.sock\n"),
        format!("pid-file {d}/run/relay.pid\n"),
        format!("route unix:{d}/front.sock -> unix:{d}/back.sock unix:/abs/other.sock "),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} missing:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--admin-token-file` without `--admin` guards nothing: refused (it was accepted silently),
/// naming both settings, on the command line and in a config file.
#[test]
fn an_admin_token_without_an_admin_endpoint_is_refused() {
    let dir = scratch_dir("token");
    let token = dir.join("admin.token");
    std::fs::write(&token, "a-token-of-at-least-sixteen-characters").expect("the test writes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))
            .expect("the test makes its token private");
    }
    let token_arg = token.to_str().expect("a UTF-8 path");
    let file = dir.join("relay.conf");
    std::fs::write(&file, "admin-token-file admin.token\nroute :0 -> :1\n").expect("writes");
    let file_arg = file.to_str().expect("a UTF-8 path");
    for args in [
        &["--check", "-l", ":0", "-u", ":1", "--admin-token-file", token_arg][..],
        &["--check", "--config", file_arg],
    ] {
        let output = run_tcprelay(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("admin-token-file is set but admin is not")
                && stderr.contains("add --admin ADDR"),
            "{args:?}: {stderr}"
        );
    }
    let with_admin = run_tcprelay(&[
        "--check",
        "-l",
        ":0",
        "-u",
        ":1",
        "--admin",
        ":0",
        "--admin-token-file",
        token_arg,
    ]);
    assert_eq!(with_admin.status.code(), Some(0), "{}", stderr_of(&with_admin));
    let _ = std::fs::remove_dir_all(&dir);
}
