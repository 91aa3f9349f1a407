//! Claims of the classroom chapter (`docs/go-to-rust.md`) that `cargo test --doc` cannot
//! check on its own.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

/// The chapter's ` ```rust,compile_fail,E0382 ` block: the Go fix's early `conn.Close()`,
/// written in Rust. Stable rustdoc checks only that the block fails to compile, whatever the
/// error; this compiles it with `rustc` and checks the error is the one the prose explains
/// (moved into the thread, then used), and that it is the only one.
#[test]
#[cfg_attr(windows, ignore = "runs rustc, which is not on the wine test machine's PATH")]
fn the_early_close_block_fails_with_e0382_and_nothing_else() {
    let chapter = include_str!("../docs/go-to-rust.md");
    let fence = "```rust,compile_fail,E0382\n";
    let start = chapter.find(fence).expect("the chapter has a compile_fail,E0382 block");
    let code = &chapter[start + fence.len()..];
    let code = &code[..code.find("```").expect("the block ends")];

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chapter");
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    let source = dir.join("early_close.rs");
    std::fs::write(&source, code).expect("write the block");
    let output = Command::new("rustc")
        .args(["--edition", "2024", "--crate-type", "lib", "--emit", "metadata", "-o"])
        .arg(dir.join("early_close.rmeta"))
        .arg(&source)
        .output()
        .expect("run rustc (it comes with cargo)");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success(), "the block compiled:\n{code}");
    assert!(stderr.contains("error[E0382]: borrow of moved value: `client`"), "{stderr}");
    assert!(stderr.contains("value moved into closure here"), "{stderr}");
    assert!(stderr.contains("value borrowed here after move"), "{stderr}");
    let errors = stderr.lines().filter(|line| line.starts_with("error[")).count();
    assert_eq!(errors, 1, "one error, E0382, and no other:\n{stderr}");
}

// ---------------------------------------------------------------------------
// Part 3: the minimal relay, tests/classroom/minimal.rs (`cargo run --example minimal`).
// ---------------------------------------------------------------------------

mod support;

use std::net::Shutdown;
use std::sync::OnceLock;

use support::{
    RelayProcess, connect, handing_upstream, pattern, read_exactly, read_to_eof, refusing_addr,
    send, text,
};

/// The chapter shows the minimal relay whole, in a ` ```rust,no_run ` block: the same bytes
/// as the file that `cargo run --example minimal` builds, so the two cannot drift.
#[test]
fn the_minimal_relay_block_is_the_file() {
    let chapter = include_str!("../docs/go-to-rust.md");
    let file = include_str!("classroom/minimal.rs");
    let fence = "```rust,no_run\n";
    let start = chapter.find(fence).expect("the chapter has a rust,no_run block") + fence.len();
    let block = &chapter[start..];
    let block = &block[..block.find("```").expect("the block ends")];
    assert!(block == file, "docs/go-to-rust.md part 3 differs from tests/classroom/minimal.rs");

    let manifest = include_str!("../Cargo.toml");
    assert!(
        manifest.contains("[[example]]\nname = \"minimal\"\npath = \"tests/classroom/minimal.rs\""),
        "Cargo.toml names tests/classroom/minimal.rs as the example `minimal`"
    );
}

/// The minimal relay, built as the lab builds it (`rustc -O`; `cargo run --example minimal`
/// compiles the same file) and started on port 0: `minimal 127.0.0.1:0 UPSTREAM`.
fn minimal_relay(upstream: &str) -> RelayProcess {
    static BUILT: OnceLock<Result<std::path::PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chapter");
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let binary = dir.join("minimal");
        let output = Command::new("rustc")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-O", "--edition", "2024", "tests/classroom/minimal.rs", "-o"])
            .arg(&binary)
            .output()
            .map_err(|e| format!("run rustc (it comes with cargo): {e}"))?;
        match output.status.success() {
            true => Ok(binary),
            false => Err(format!("rustc minimal.rs failed:\n{}", text(&output.stderr))),
        }
    });
    let binary = built.as_ref().unwrap_or_else(|e| panic!("{e}"));
    RelayProcess::start_program(binary, &["127.0.0.1:0", upstream])
}

#[test]
#[cfg_attr(windows, ignore = "runs rustc, not on the wine test machine's PATH")]
fn minimal_relays_every_byte_and_passes_the_clients_eof_on() {
    // The test is the upstream, so no upstream timer of its own can end the exchange and
    // pass for the relay's EOF: only the relay's shutdown(Write) ends `read_to_eof`.
    let (upstream, accepted) = handing_upstream();
    let relay = minimal_relay(&upstream.addr.to_string());
    let sent = pattern(3, 2 * 1024 * 1024);

    let client = connect(relay.addr);
    let upstream_side = accepted.next("the minimal relay");
    std::thread::scope(|s| {
        s.spawn(|| {
            send(&client, &sent);
            client.shutdown(Shutdown::Write).expect("half-close the client");
        });
        let request = read_to_eof(&upstream_side, "the upstream, waiting for the client's EOF");
        assert_eq!(request.len(), sent.len(), "every byte arrived, then the EOF");
        assert!(request == sent, "the bytes arrived changed or out of order");
    });
    // Like `wc -c`: the reply comes only after the request's EOF, through the open direction.
    send(&upstream_side, b"2097152\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    assert_eq!(text(&read_to_eof(&client, "the client")), "2097152\n");
}

#[test]
#[cfg_attr(windows, ignore = "runs rustc, not on the wine test machine's PATH")]
fn minimal_passes_the_upstreams_eof_on_and_keeps_the_client_talking() {
    let (upstream, accepted) = handing_upstream();
    let relay = minimal_relay(&upstream.addr.to_string());

    let client = connect(relay.addr);
    let upstream_side = accepted.next("the minimal relay");
    send(&upstream_side, b"banner\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    assert_eq!(text(&read_to_eof(&client, "the client")), "banner\n");

    send(&client, b"still here\n"); // the other direction stays open after that EOF
    assert_eq!(text(&read_exactly(&upstream_side, 11, "the upstream")), "still here\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    assert_eq!(read_to_eof(&upstream_side, "the upstream"), b"", "then the client's EOF");
}

#[test]
#[cfg_attr(windows, ignore = "runs rustc, not on the wine test machine's PATH")]
fn minimal_says_dial_when_the_upstream_is_down() {
    let relay = minimal_relay(&refusing_addr().to_string());
    let client = connect(relay.addr);
    assert_eq!(read_to_eof(&client, "the client of a relay with no upstream"), b"");
    let line = relay.log_line_with("dial: ");
    assert!(
        line.starts_with("dial: Connection refused"),
        "Go's log.Println(\"dial:\", err): {line}"
    );
}

#[test]
#[cfg_attr(windows, ignore = "runs rustc, not on the wine test machine's PATH")]
fn minimal_refuses_a_missing_argument_with_exit_code_2() {
    let relay = minimal_relay("127.0.0.1:1"); // builds it; the run below has no upstream
    drop(relay);
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chapter").join("minimal");
    let output = Command::new(binary).arg("127.0.0.1:0").output().expect("run minimal");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(text(&output.stderr).starts_with("usage: minimal LISTEN UPSTREAM"), "{output:?}");
}

/// The teacher's key answers every "Ask why" of the lab.
#[test]
fn every_ask_why_of_the_lab_has_an_answer_in_the_key() {
    let lab = include_str!("../docs/lab.md");
    let key = include_str!("../docs/lab/key.md");
    let questions: Vec<&str> =
        lab.split("Ask why").skip(1).filter_map(|rest| rest.split(['(', ')']).nth(1)).collect();
    assert!(questions.len() >= 7, "the lab's questions: {questions:?}");
    for question in questions {
        assert!(question.starts_with('Q'), "`Ask why` without its (Qn): {question:?}");
        assert!(key.contains(&format!("### {question}:")), "docs/lab/key.md has no {question}");
    }
}

/// Every file and every test the classroom docs name in backticks exists: a renamed test or
/// a moved file makes the doc fail here, not in front of a class.
#[test]
fn the_files_and_tests_the_classroom_docs_cite_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    let mut folders = vec![root.join("src"), root.join("tests"), root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).expect("read a source file"));
            }
        }
    }
    let docs = [
        ("docs/lab.md", include_str!("../docs/lab.md")),
        ("docs/go-to-rust.md", include_str!("../docs/go-to-rust.md")),
        ("docs/lab/key.md", include_str!("../docs/lab/key.md")),
    ];
    let mut missing = Vec::new();
    let mut checked = 0;
    for (doc, text) in docs {
        for quoted in text.split('`').skip(1).step_by(2) {
            let quoted = quoted.trim_end_matches([':', ',', '.']);
            let is_path = ["docs/", "tests/", "src/"].iter().any(|top| quoted.starts_with(top))
                && !quoted.contains([' ', '$', '*'])
                && !quoted.starts_with("docs/go/mine"); // the student makes it
            let is_test_name =
                quoted.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    && quoted.matches('_').count() >= 3;
            if is_path {
                checked += 1;
                if !root.join(quoted).exists() {
                    missing.push(format!("{doc}: the file `{quoted}`"));
                }
            } else if is_test_name {
                checked += 1;
                if !sources.contains(&format!("fn {quoted}(")) {
                    missing.push(format!("{doc}: the function `{quoted}`"));
                }
            }
        }
    }
    assert!(checked >= 60, "only {checked} names found: is the pattern still right?");
    assert!(missing.is_empty(), "cited but not found:\n{}", missing.join("\n"));
}
