//! Files a test reads while the relay writes them: a scratch directory of its own, and the
//! lines of a log file as they appear.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::TIMEOUT;
use super::counters::eventually_within;

/// A directory of the test's own under Cargo's scratch directory for tests; removed, with
/// everything in it, when dropped.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    /// A new, empty directory whose name starts with `name`.
    pub fn new(name: &str) -> ScratchDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique =
            format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create the scratch directory {}: {e}", path.display()));
        ScratchDir { path }
    }

    /// The path of `name` inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The lines of the file at `path` (none if it does not exist yet).
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect()
}

/// Waits (bounded) until a line of the file at `path` contains `needle`, and returns it.
pub fn wait_for_file_line(path: &Path, needle: &str) -> String {
    wait_for_file_line_within(TIMEOUT, path, needle)
}

/// [`wait_for_file_line`] with a bound of its own (see [`eventually_within`]).
pub fn wait_for_file_line_within(bound: Duration, path: &Path, needle: &str) -> String {
    let mut found = None;
    let appeared = eventually_within(bound, || {
        found = file_lines(path).into_iter().find(|line| line.contains(needle));
        found.is_some()
    });
    assert!(appeared, "no line with {needle:?} in {}: {:#?}", path.display(), file_lines(path));
    found.unwrap_or_default()
}
