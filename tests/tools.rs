//! The outside tools some tests drive, found the way a fresh machine needs: the lab's
//! commands need OpenBSD's `nc`, and another netcat on `PATH` must be refused by name
//! with the package to install, not discovered later as a confusing lab failure.
//!
//! Each scenario puts stand-in `nc` programs (shell scripts that print what the real
//! flavours print for `-h`) in a scratch directory and searches only that directory.
// Std has file modes (PermissionsExt) only on Unix; the tools run under sh.
#![cfg(unix)]
#![forbid(unsafe_code)]
#![cfg(unix)]

mod support;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::{NOT_OPENBSD_NC, find_openbsd_nc};

/// What each flavour prints first for `nc -h` (Debian packages, 2026).
const OPENBSD: &str = "OpenBSD netcat (Debian patchlevel 1.219-1)";
const NCAT: &str = "Ncat 7.94SVN ( https://nmap.org/ncat )";
const TRADITIONAL: &str = "[v1.10-47]";

#[test]
fn openbsd_nc_is_found_by_its_help_and_nc_openbsd_comes_first() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-nc");
    let _ = std::fs::remove_dir_all(&root);
    // Every script is written before any is run: a script still open for writing in this
    // process when another thread forks cannot be executed (ETXTBSY).
    let only_ncat = fake_programs(&root.join("only-ncat"), &[("nc", NCAT)]);
    let only_traditional = fake_programs(&root.join("traditional"), &[("nc", TRADITIONAL)]);
    let openbsd_as_nc = fake_programs(&root.join("openbsd-nc"), &[("nc", OPENBSD)]);
    let both = fake_programs(&root.join("both"), &[("nc", NCAT), ("nc.openbsd", OPENBSD)]);
    let none = fake_programs(&root.join("none"), &[]);
    let openbsd_named = fake_programs(&root.join("named"), &[("nc.openbsd", OPENBSD)]);
    // nc.openbsd in a later directory still wins over an ncat earlier on PATH.
    let split = std::env::join_paths([&only_ncat, &openbsd_named])
        .expect("the scratch directories make a valid PATH");

    let not_openbsd = Err(NOT_OPENBSD_NC.to_string());
    assert_eq!(find_openbsd_nc(only_ncat.as_os_str()), not_openbsd, "ncat is refused");
    assert_eq!(find_openbsd_nc(only_traditional.as_os_str()), not_openbsd, "nc.traditional");
    assert_eq!(find_openbsd_nc(none.as_os_str()), not_openbsd, "no nc at all");
    assert_eq!(
        find_openbsd_nc(openbsd_as_nc.as_os_str()),
        Ok(Path::new(&openbsd_as_nc).join("nc"))
    );
    assert_eq!(find_openbsd_nc(both.as_os_str()), Ok(Path::new(&both).join("nc.openbsd")));
    assert_eq!(find_openbsd_nc(&split), Ok(Path::new(&openbsd_named).join("nc.openbsd")));
    assert_eq!(NOT_OPENBSD_NC, "nc is not OpenBSD netcat: apt-get install netcat-openbsd");
}

/// A directory holding one executable script per `(name, first line of -h)`; returns it
/// as a one-directory `PATH` value.
fn fake_programs(dir: &Path, programs: &[(&str, &str)]) -> OsString {
    std::fs::create_dir_all(dir)
        .unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
    for (name, help) in programs {
        let path: PathBuf = dir.join(name);
        // The real ones print their help on stderr and exit 1.
        std::fs::write(&path, format!("#!/bin/sh\necho '{help}' >&2\nexit 1\n"))
            .unwrap_or_else(|e| panic!("the test writes the stand-in {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("the test makes {} executable: {e}", path.display()));
    }
    dir.as_os_str().to_owned()
}
