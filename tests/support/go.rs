//! Go, as the tests that build the Go programs under `docs/go` run it: offline, with its
//! caches in this run's scratch directory, so a build never reaches the network or $HOME.

use std::path::Path;
use std::process::Command;

use super::text;

/// `go` with everything that could reach the network or $HOME turned off.
pub fn go_command() -> Command {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut command = Command::new("go");
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GOTOOLCHAIN", "local") // Go ≥ 1.21 would otherwise fetch the toolchain go.mod names
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off") // standard library only: nothing to download
        .env("GOCACHE", scratch.join("go-cache"))
        .env("GOPATH", scratch.join("go-path"));
    command
}

/// Builds the program `docs/go/PACKAGE` into `binary`: `cd docs/go && go build -o BINARY
/// ./PACKAGE`. The error is go's own output, or why `go` could not be run.
pub fn build_go_program(package: &str, binary: &Path) -> Result<(), String> {
    let mut go = go_command();
    go.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/go"));
    go.args(["build", "-o"]).arg(binary).arg(format!("./{package}"));
    match go.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("go build ./{package} failed:\n{}", text(&output.stderr))),
        Err(e) => {
            Err(format!("cannot run `go` ({e}): install Go with `apt-get install golang-go`"))
        }
    }
}
