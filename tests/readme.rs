//! The README's commands run as pasted. A new user's first minutes are its set-up block and
//! its examples; each block is read out of README.md here and checked or run, so a block
//! that no longer works fails the suite instead of the user.
//!
//! - the set-up block is `cargo run --release -- demo`, then `cargo test`; the demo runs
//!   and says what "A first run" shows;
//! - every `sh` block is one this file knows how to check, and none uses a server it
//!   started in the background before waiting for it;
//! - the HTTP example runs (it needs `python3` and OpenBSD `nc`, so it is ignored by plain
//!   `cargo test`), with free ports in place of 8000 and 8080;
//! - the config file example passes `--check`;
//! - every test file with an ignored test is named in the README's list of them.
//!
//! The offline build block takes a release build's time, so `.ci/run` runs it (with an
//! empty `CARGO_HOME` and no network), and a test here checks that it does.
// The README's blocks run under sh, each in a process group (CommandExt): Unix only.
#![cfg(unix)]
#![forbid(unsafe_code)]
#![cfg(unix)]

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use support::{TIMEOUT, openbsd_nc, run_tcprelay, text};

const README: &str = include_str!("../README.md");

/// One fenced block of README.md: its info string (`sh`, `text`, ...), the heading it is
/// under, and its lines.
struct Block {
    lang: String,
    heading: String,
    lines: Vec<String>,
}

fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut open: Option<Block> = None;
    for line in README.lines() {
        match open.as_mut() {
            Some(_) if line.starts_with("```") => blocks.extend(open.take()),
            Some(block) => block.lines.push(line.to_string()),
            None if line.starts_with("```") => {
                let lang = line.trim_start_matches('`').to_string();
                open = Some(Block { lang, heading: heading.clone(), lines: Vec::new() });
            }
            None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().into(),
            None => {}
        }
    }
    assert!(open.is_none(), "README.md ends inside a code block");
    blocks
}

/// The one `sh` block under `heading`.
fn sh_block(heading: &str) -> Block {
    let mut found = blocks().into_iter().filter(|b| b.lang == "sh" && b.heading == heading);
    let block = found.next().unwrap_or_else(|| panic!("no sh block under {heading:?}"));
    assert!(found.next().is_none(), "more than one sh block under {heading:?}");
    block
}

/// A block's commands: its lines without comments and blank lines, with `\` continuations
/// joined.
fn commands(block: &Block) -> Vec<String> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in &block.lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => commands.push(std::mem::take(&mut pending) + line),
        }
    }
    commands
}

#[test]
fn setup_block_runs_the_demo_then_the_tests() {
    let setup = sh_block("Set up");
    assert_eq!(commands(&setup), ["cargo run --release -- demo", "cargo test"]);
}

/// The set-up block's first command, on the binary `cargo test` built: it passes, and
/// prints the lines "A first run" shows, numbers aside.
#[test]
fn the_demo_runs_and_prints_what_the_readme_shows() {
    let output = run_tcprelay(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tcprelay demo failed:\n{stdout}");
    let shown = blocks()
        .into_iter()
        .find(|b| b.lang == "console" && b.heading == "A first run")
        .expect("a console block under \"A first run\"");
    assert_eq!(shown.lines[0], "$ cargo run --release -- demo");
    let numbers_aside = |line: &str| {
        let mut shape = String::new();
        for c in line.chars() {
            if !c.is_ascii_digit() || !shape.ends_with('N') {
                shape.push(if c.is_ascii_digit() { 'N' } else { c });
            }
        }
        shape.replace("N.N", "N")
    };
    let expected: Vec<String> = shown.lines[1..].iter().map(|l| numbers_aside(l)).collect();
    let printed: Vec<String> = stdout.lines().map(numbers_aside).collect();
    assert_eq!(printed, expected, "the demo's output and README's \"A first run\" differ");
}

/// Every `sh` block is one this file checks, and a block that starts a server with `&`
/// waits for it (`timeout ... until`) before its next command: pasted, the lines run at
/// once, and a client started right after the server loses the race (the HTTP example
/// once did exactly that).
#[test]
fn every_sh_block_is_checked_and_waits_for_what_it_starts() {
    let checked = [
        "Set up",                                  // setup_block_runs_the_demo_then_the_tests
        "Tests that need more than Rust",          // readme_names_every_ignored_test
        "Building where crates.io is unreachable", // .ci/run, see ci_runs_the_offline_block
        "Usage with a real upstream",              // http_example_runs_as_pasted
    ];
    for block in blocks().iter().filter(|b| b.lang == "sh") {
        assert!(
            checked.contains(&block.heading.as_str()),
            "the sh block under {:?} is run by no test: add one to tests/readme.rs",
            block.heading
        );
        let commands = commands(block);
        // Each run of background commands is followed by as many waits, one per server.
        let mut i = 0;
        while i < commands.len() {
            let started = commands[i..].iter().take_while(|c| c.ends_with('&')).count();
            for (k, command) in commands[i..i + started].iter().enumerate() {
                let wait = commands.get(i + started + k).map(String::as_str).unwrap_or("");
                assert!(
                    wait.starts_with("timeout ") && wait.contains("until "),
                    "under {:?}, `{command}` starts something in the background, and \
                     `{wait}` in its place does not wait for it",
                    block.heading
                );
            }
            i += started.max(1);
        }
    }
    let tests = sh_block("Tests that need more than Rust");
    assert_eq!(commands(&tests), ["cargo test -- --include-ignored"]);
}

/// `.ci/run` runs the offline build block as the README has it, with an empty cargo home.
#[test]
fn ci_runs_the_offline_block() {
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect("read .ci/run");
    assert!(ci.contains("Building where crates.io is unreachable"), "{ci}");
    assert!(ci.contains("CARGO_HOME=\"$(mktemp -d)\""), "{ci}");
    let offline = commands(&sh_block("Building where crates.io is unreachable"));
    assert!(offline.iter().all(|c| !c.starts_with("cargo")), "no cargo: {offline:?}");
    assert_eq!(offline.last().map(String::as_str), Some("target/offline/tcprelay demo"));
}

/// README's list of tests that plain `cargo test` leaves out names every test file that
/// has an ignored test.
#[test]
fn readme_names_every_ignored_test() {
    let section = README
        .split("### Tests that need more than Rust")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("a \"Tests that need more than Rust\" section");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut with_ignored = Vec::new();
    for entry in std::fs::read_dir(&tests).expect("read tests/") {
        let path = entry.expect("a tests/ entry").path();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "rs") && source.contains("#[ignore") {
            with_ignored.push(format!(
                "tests/{}",
                path.file_name().expect("a file read from tests/ has a name").to_string_lossy()
            ));
        }
    }
    assert!(with_ignored.len() >= 4, "too few files with ignored tests: {with_ignored:?}");
    for file in with_ignored {
        assert!(section.contains(&format!("`{file}`")), "README does not list {file}");
    }
}

/// The config file example is valid: `tcprelay --check --config FILE` passes.
#[test]
fn config_file_example_passes_check() {
    let example = blocks()
        .into_iter()
        .find(|b| b.heading == "The config file")
        .expect("a block under \"The config file\"");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-relay.conf");
    std::fs::write(&file, example.lines.join("\n") + "\n").expect("write the example");
    let output = run_tcprelay(&["--check", "--config", file.to_str().expect("a UTF-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "--check refused README's config example:\n{stderr}");
}

/// The HTTP example, run as pasted by bash but for what a test must not share with the
/// machine: free ports for 8000 and 8080, a scratch directory for /tmp, the binary this
/// build made for `target/release/tcprelay` (so no second cargo build), and OpenBSD's nc.
#[test]
#[ignore = "needs python3 and OpenBSD nc: apt-get install python3 netcat-openbsd"]
fn http_example_runs_as_pasted() {
    let nc = openbsd_nc().to_str().expect("a UTF-8 path").to_string();
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-http");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("create the scratch directory");
    // Two free ports, both held until both are known so that they differ.
    let held = [TcpListener::bind("127.0.0.1:0"), TcpListener::bind("127.0.0.1:0")]
        .map(|listener| listener.expect("bind a free port"));
    let [web, relay] = held.each_ref().map(|l| l.local_addr().expect("its address").port());
    drop(held);
    let block = sh_block("Usage with a real upstream");
    assert_eq!(block.lines.first().map(String::as_str), Some("cargo build --release"));
    let script = block.lines[1..]
        .join("\n")
        .replace("8000", &web.to_string())
        .replace("8080", &relay.to_string())
        .replace("/tmp/", &format!("{}/", scratch.display()))
        .replace("target/release/tcprelay", env!("CARGO_BIN_EXE_tcprelay"))
        .replace("| nc ", &format!("| {nc} "));

    let child = Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(&scratch)
        .process_group(0) // one group: whatever the block leaves behind is killed with it
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let group = format!("-{}", child.id());
    let (output_tx, output_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = output_tx.send(child.wait_with_output());
    });
    // The block kills its servers itself; on a failure they are still running and hold
    // the output pipes open. Give it its bound, then kill whatever is left of its group.
    let bound = TIMEOUT + TIMEOUT;
    let in_time = output_rx.recv_timeout(bound);
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let finished = in_time.is_ok();
    let output =
        in_time.or_else(|_| output_rx.recv()).expect("the waiter sends").expect("bash ran");
    waiter.join().expect("the waiter does not panic");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let relay_log = std::fs::read_to_string(scratch.join("relay.log")).unwrap_or_default();
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}\nrelay log:\n{relay_log}");
    assert!(finished, "the block did not end within {:?}:\n{report}", bound);
    assert!(output.status.success(), "the block failed ({}):\n{report}", output.status);
    assert!(stdout.starts_with("HTTP/1.0 200 OK\r\n"), "{report}");
    assert!(stdout.contains("Directory listing for /"), "the whole body: {report}");
    assert!(relay_log.contains("listening on"), "{report}");
}
