//! `--explain` off the happy path (docs/lab.md, step 4): a failed dial, an idle timeout and
//! an upstream reset are told as what they were, never as an EOF nobody sent; every line
//! fits 100 columns with the relay's real error texts; every Go quote is a line of
//! docs/go/correct/main.go, found by a search.
#![forbid(unsafe_code)]

mod support;

use std::net::Shutdown;

use support::{RelayProcess, connect, handing_upstream, read_all, refusing_addr, send};

/// The narration of connection 1, up to its last line (the one that says it is closed).
fn narration(relay: &RelayProcess) -> Vec<String> {
    relay.stdout_until("closed (")
}

/// Every line at most 100 columns; every `Go:` quotes one whole line of correct/main.go.
fn assert_projectable_and_verbatim(lines: &[String]) {
    let go_program = include_str!("../docs/go/correct/main.go");
    let go_lines: Vec<&str> = go_program.lines().map(|line| line.trim()).collect();
    for line in lines {
        assert!(line.chars().count() <= 100, "wider than 100 columns: {line:?}");
        if let Some((_, go)) = line.split_once("Go: ") {
            assert!(
                go_lines
                    .iter()
                    .any(|source| source == &go || source.starts_with(&format!("{go} //"))),
                "not a line of docs/go/correct/main.go: {go:?}"
            );
        }
    }
}

#[test]
fn a_failed_dial_is_told_as_gos_log_and_return_with_no_wg_wait() {
    let dead = refusing_addr().to_string();
    let relay =
        RelayProcess::start(&["-l", ":0", "-u", &dead, "--explain", "--log-level", "error"]);
    let client = connect(relay.addr);
    assert_eq!(read_all(&client).expect("the relay closes the client"), b"");

    let lines = narration(&relay);
    assert_projectable_and_verbatim(&lines);
    let told = lines.join("\n");
    assert!(told.contains("could not dial the upstream (cannot connect to"), "{told}");
    assert!(told.contains("Connection refused"), "the real error text: {told}");
    let go: Vec<&str> = lines.iter().filter_map(|l| l.split_once("Go: ")).map(|(_, g)| g).collect();
    assert_eq!(
        go,
        ["conn, err := l.Accept()", "log.Println(\"dial:\", err)", "return", "defer conn.Close()"],
        "{told}"
    );
    assert!(!told.contains("wg.Wait()") && !told.contains("copies done"), "{told}");
    // The warn line of the failed dial stays off the narration's terminal.
    let log = relay.kill_and_collect_log();
    assert!(log.iter().all(|line| !line.contains("level=warn")), "{log:#?}");
}

#[test]
fn an_idle_timeout_is_told_as_the_relays_close_not_as_an_eof() {
    let (upstream, accepted) = handing_upstream();
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&[
        "-l",
        ":0",
        "-u",
        &upstream_arg,
        "--explain",
        "--idle-timeout",
        "1s",
    ]);
    let client = connect(relay.addr);
    let upstream_side = accepted.next("the relay");
    // Nobody sends: after a second the relay closes both sockets itself.
    let lines = narration(&relay);
    assert_projectable_and_verbatim(&lines);
    let told = lines.join("\n");
    assert!(told.contains("idle_timeout: no byte moved in time, closing both"), "{told}");
    assert!(told.contains("ends: the relay closed both sockets (idle_timeout), no EOF"), "{told}");
    assert!(!told.contains("sent EOF"), "an EOF nobody sent: {told}");
    assert!(told.contains("both copies done, both sockets closed (idle_timeout)"), "{told}");
    drop((client, upstream_side));
}

#[test]
fn an_upstream_reset_is_told_with_its_error_and_no_eof_from_the_client() {
    let (upstream, accepted) = handing_upstream();
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--explain"]);
    let client = connect(relay.addr);
    send(&client, b"x");
    let upstream_side = accepted.next("the relay");
    let mut first = [0u8; 1];
    assert_eq!(upstream_side.peek(&mut first).expect("the client's byte arrives"), 1);
    drop(upstream_side); // closed with a byte unread: the kernel resets the connection

    let lines = narration(&relay);
    assert_projectable_and_verbatim(&lines);
    let told = lines.join("\n");
    assert!(told.contains("upstream → client failed (Connection reset by peer"), "{told}");
    let src = lines.iter().position(|l| l.ends_with("Go: src.Close()")).expect(&told);
    assert!(lines[src + 1].ends_with("Go: dst.Close()"), "two Go lines, quoted as two: {told}");
    assert!(
        told.contains("client → upstream ends: the relay closed both sockets (upstream_reset)"),
        "the client sent nothing; its copy was woken by the relay's close: {told}"
    );
    assert!(!told.contains("client sent EOF"), "an EOF the client never sent: {told}");
    let _ = client.shutdown(Shutdown::Both);
}
