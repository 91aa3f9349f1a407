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
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--listen", "--upstream", "--connect-timeout", "--log-level", "--version", "demo"]
    {
        assert!(help.contains(flag), "{flag} missing");
    }
    assert!(help.contains("[default: 5s]"));
}

#[test]
fn version_prints_the_package_version() {
    let output = run_tcprelay(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("tcprelay {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bind_failure_exits_1_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run_tcprelay(&["-l", &addr, "-u", ":80"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
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
    assert!(read_all(&client).unwrap().is_empty());
    let line = relay.log_line_with("connection closed");
    assert!(line.contains("reason=connect_failed") && line.contains(&dead), "{line}");
}

/// `--explain` tells a connection's life in order, each event beside its Go line.
#[test]
fn explain_narrates_each_connection_with_the_go_lines() {
    // The upstream replies only after the client's EOF, so the events have one order.
    let upstream = Upstream::start(|stream| {
        assert_eq!(read_all(&stream).unwrap(), b"hi\n");
        write_all(&stream, b"hello back").unwrap();
    });
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--explain"]);

    let client = connect(relay.addr);
    write_all(&client, b"hi\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&client).unwrap(), b"hello back");

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
    let help = String::from_utf8(output.stdout).unwrap();
    let readme = include_str!("../README.md");
    let options = help.split("Options:").nth(1).expect("an Options: section");
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in options.lines() {
        let starts_a_flag = line.starts_with("  -") || line.starts_with("      --");
        if starts_a_flag {
            let flag = line.split_whitespace().find(|word| word.starts_with("--")).unwrap();
            flags.push((flag.trim_end_matches(',').to_string(), None));
        }
        if let Some(default) = line.split("[default: ").nth(1) {
            let default = default.split(']').next().unwrap().to_string();
            flags.last_mut().expect("a default after its flag").1 = Some(default);
        }
    }
    assert!(flags.len() >= 20, "too few flags parsed from --help: {flags:?}");
    for (flag, default) in flags {
        let row = readme
            .lines()
            .filter(|line| line.starts_with("| `"))
            .find(|line| line.split(" | ").next().unwrap().contains(&format!("`{flag}")))
            .unwrap_or_else(|| panic!("README.md has no row for {flag}"));
        if let Some(default) = default {
            let column = row.split(" | ").nth(1).unwrap_or_default();
            assert!(column.contains(&default), "{flag}: README says {column:?}, --help {default}");
        }
    }
}
