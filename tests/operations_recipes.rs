//! The smaller recipes of docs/operations.md, taken from the doc by the test: the first
//! commands a reader pastes (`--check` of a config file, the command-line example), the
//! config lines of "Receiving the PROXY protocol", "Routing by TLS server name" and
//! "Migrating from rinetd", and the admin-token commands of "Admin security" (`install`,
//! `openssl rand`, `curl` with the token) against a relay.
//!
//! What a block may change here is said at each test: the binary under test for `tcprelay`,
//! files of the test's for `/etc/...` paths, and the relay's ephemeral admin address for
//! `127.0.0.1:9090`. Blocks that listen on `0.0.0.0:443` or name hosts that are not here
//! are run with `--check`, which binds and resolves nothing.
#![forbid(unsafe_code)]

mod support;

use std::process::Command;

use support::*;

const OPERATIONS: &str = include_str!("../docs/operations.md");

/// The first ```LANG block after `marker` in docs/operations.md, as pasted.
fn doc_block(marker: &str, lang: &str) -> String {
    support::docs::block(OPERATIONS, marker, lang)
}

/// Runs `script` with `sh -c` and returns its exit code, stdout and stderr.
fn sh(script: &str) -> (Option<i32>, String, String) {
    let output = Command::new("sh").args(["-c", script]).output().expect("run sh");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const BINARY: &str = env!("CARGO_BIN_EXE_tcprelay");

/// "A config file at a glance": its `--check` line, as pasted but for the binary and the
/// file (the example above it). The second line would listen on 0.0.0.0:443, so it is not
/// run; `tests/operations_cli.rs` checks what `--check` prints for the example.
#[test]
#[cfg_attr(windows, ignore = "runs the guide's shell lines with sh")]
fn the_check_line_of_the_first_example_exits_0() {
    let example = doc_block("## A config file at a glance", "text");
    let config = ConfigFile::new("at-a-glance.conf", &example);
    let commands = doc_block("Check it without starting anything", "sh");
    let check = commands.lines().next().expect("a first line");
    assert!(check.starts_with("tcprelay --check --config /etc/tcprelay.conf"), "{check}");
    let check = check.replacen("tcprelay", BINARY, 1).replace("/etc/tcprelay.conf", config.arg());
    let (code, stdout, stderr) = sh(&check);
    assert_eq!(code, Some(0), "{check}\n{stderr}");
    assert!(stdout.contains("route 0.0.0.0:443 -> app1.internal:443"), "{stdout}");
}

/// The command-line example, with `--check` added after `tcprelay`: it listens on
/// 0.0.0.0:443 and names hosts that are not here, so it is checked, not started.
#[test]
#[cfg_attr(windows, ignore = "runs the guide's shell lines with sh")]
fn the_command_line_example_checks_as_pasted() {
    let block = doc_block("The same can be said on the command line", "sh");
    assert!(block.starts_with("tcprelay --listen"), "{block}");
    let command = block.replacen("tcprelay", &format!("{BINARY} --check"), 1);
    let (code, stdout, stderr) = sh(&command);
    assert_eq!(code, Some(0), "{command}\n{stderr}");
    let routes: Vec<&str> = stdout.lines().filter(|line| line.starts_with("route ")).collect();
    assert_eq!(routes.len(), 2, "{stdout}");
    assert!(routes[0].starts_with("route 0.0.0.0:443 -> app1.internal:443 app2.internal:443 "));
    assert!(routes[0].contains(" policy=round-robin") && routes[0].contains(" proxy-protocol=v2"));
    assert!(routes[1].starts_with("route 127.0.0.1:5432 -> unix:/run/postgresql/.s.PGSQL.5432 "));
    assert!(routes.iter().all(|route| route.contains(" allow=10.0.0.0/8")), "{stdout}");
    assert!(stdout.lines().any(|line| line == "admin 127.0.0.1:9090"), "{stdout}");
}

/// The config lines of three sections pass `--check` as pasted, and the `--check` output
/// the TLS section shows is what `--check` prints.
#[test]
fn the_config_lines_of_the_guide_check_and_the_sni_output_is_current() {
    for (marker, name) in [
        ("### Receiving the PROXY protocol", "proxy"),
        ("## Routing by TLS server name", "sni"),
        ("becomes:\n", "rinetd"),
    ] {
        let block = doc_block(marker, "text");
        let config = ConfigFile::new(&format!("guide-{name}.conf"), &block);
        let output = run_tcprelay(&["--check", "--config", config.arg()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{marker}:\n{block}\n{stderr}");
        if name == "sni" {
            let documented = doc_block("`tcprelay --check` of the file above prints:", "text");
            let printed = String::from_utf8_lossy(&output.stdout);
            assert_eq!(printed, documented, "docs/operations.md shows a stale --check output");
        }
    }
}

/// "Admin security": the three commands that make a token file and read `/metrics` with
/// it. Changed: the file's path (a scratch file for `/etc/tcprelay/admin.token`), the group
/// (this process's own for `prometheus`, a group this machine need not have) and the admin
/// address (the relay's ephemeral one for `127.0.0.1:9090`). The relay starts between the
/// second command and the third, with `--admin-token-file` on the file the first two made.
#[test]
#[ignore = "needs openssl and curl"]
fn the_admin_token_commands_make_a_file_the_relay_accepts_and_curl_reads_metrics() {
    let dir = ScratchDir::new("admin-token-recipe");
    let token = dir.join("admin.token");
    let token_arg = token.to_str().expect("a UTF-8 path");
    let block = doc_block("**A token from a Kubernetes Secret.**", "sh");
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 3, "{block}");
    let gid = sh("id -g").1.trim().to_string();
    let make = format!("{}\n{}", lines[0], lines[1])
        .replace("/etc/tcprelay/admin.token", token_arg)
        .replace("-g prometheus", &format!("-g {gid}"));
    let (code, _, stderr) = sh(&make);
    assert_eq!(code, Some(0), "{make}\n{stderr}");

    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let args = ["-l", "127.0.0.1:0", "-u", &upstream_arg, "--admin", "127.0.0.1:0"];
    let relay = RelayProcess::start_routes(
        &[&args[..], &["--admin-token-file", token_arg]].concat(),
        1,
        true,
    );
    let admin = relay.admin.expect("the admin endpoint's address").to_string();

    let read =
        lines[2].replace("/etc/tcprelay/admin.token", token_arg).replace("127.0.0.1:9090", &admin);
    let (code, metrics, stderr) = sh(&read);
    assert_eq!(code, Some(0), "{read}\n{stderr}");
    assert!(metrics.contains("tcprelay_"), "{metrics}");
    // The token is what let curl in: without the header, curl -f fails on the 401.
    let (code, _, _) = sh(&format!("curl -fsS http://{admin}/metrics"));
    assert_eq!(code, Some(22), "curl -f without the token");
}
