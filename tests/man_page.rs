//! The manual page, docs/tcprelay.1, rendered by `man` without a warning. That the file is
//! what the settings table writes is checked beside the writer, in src/settings/man_page.rs.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

fn page_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/tcprelay.1")
}

/// `man -l docs/tcprelay.1` shows the page, and groff with every warning on has nothing to
/// say about it.
#[test]
#[ignore = "needs groff and man: apt-get install groff-base man-db"]
fn the_man_page_renders_without_warnings() {
    let path = page_path();
    let groff = Command::new("groff")
        .args(["-ww", "-z", "-man"])
        .arg(&path)
        .output()
        .expect("groff runs (apt-get install groff-base)");
    let warnings = String::from_utf8_lossy(&groff.stderr);
    assert!(groff.status.success() && warnings.is_empty(), "groff -ww: {warnings}");

    let man = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        // A locale the machine lacks would add its own warning: C.UTF-8 is always there.
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man runs (apt-get install man-db)");
    let shown = String::from_utf8_lossy(&man.stdout);
    let warnings = String::from_utf8_lossy(&man.stderr);
    assert!(man.status.success() && warnings.is_empty(), "man -l: {warnings}");
    for expected in
        ["TCPRELAY(1)", "SYNOPSIS", "--listen ADDR", "--buffer-size BYTES", "EXIT STATUS"]
    {
        assert!(shown.contains(expected), "{expected:?} missing from man -l:\n{shown}");
    }
}
