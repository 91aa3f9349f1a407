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
