#!/usr/bin/env bash
# Builds and checks tcprelay for the desktop and router platforms that are not Linux: Windows,
# macOS (Intel and Apple silicon) and FreeBSD, with Debian's packages only. For each:
# `cargo clippy --keep-going --all-targets -- -D warnings` (which type-checks all that
# `cargo check --all-targets` does, then lints); Windows is also linked and its test suite
# run under wine. Prints one line per target: size, test counts,
# time. docs/targets.md ("Other platforms") explains the table and what each platform lacks.
#
#   tests/platforms.sh                    every target (16 min on 2 cores the first time, 6 after)
#   tests/platforms.sh windows freebsd    some of them
#   tests/platforms.sh windows:check      clippy only, no link, no wine
#   tests/platforms.sh --list             the target names
#
# Targets: windows (x86_64-pc-windows-gnu, tested under wine), macos (x86_64-apple-darwin),
# macos-arm (aarch64-apple-darwin), freebsd (x86_64-unknown-freebsd). No macOS SDK or FreeBSD
# sysroot exists in Debian, so those three are type-checked and linted, not linked.
#
# std for these targets is built from Debian's source (rust-web-src) with
# `RUSTC_BOOTSTRAP=1 … -Zbuild-std`, a nightly feature unlocked on a stable compiler (see
# /work/shared/CROSS.md and docs/targets.md). That build is what takes minutes, so everything
# is built under $TCPRELAY_PLATFORMS_CACHE (default /var/cache/tcprelay-ci/platforms), outside
# the clone: CI's fresh clone pays for it once per machine. The wine prefix lives there too.
#
# Needs root for apt-get (the packages take about 1.5 GB on disk, wine and mingw most of it).
# Results: target/platforms/results.txt and target/platforms/<name>.log.
# Exits non-zero if any target failed to check, to lint, to link or a test.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(windows macos macos-arm freebsd)
DEFAULT_TARGETS=("${ALL_TARGETS[@]}")
OUT=target/platforms
CACHE=${TCPRELAY_PLATFORMS_CACHE:-/var/cache/tcprelay-ci/platforms}
# Debian's rustc-web 1.96 installs as /usr/bin/rustc; rustup's shims may come first on PATH.
RUST=/usr/bin
# wine64 from Debian: /usr/bin/wine is a wrapper that may look for wine32 (absent, or of the
# wrong architecture where armhf is enabled); the 64-bit loader itself always works.
WINE=/usr/lib/wine/wine64
# The machine is shared: builds and tests run at lower priority.
NICE=(nice -n 10)
MODE=:check
TABLE_FORMAT='%-24s %9s %6s %6s %6s %7s %7s %7s  %s'

# shellcheck source=tests/per_target.sh
. tests/per_target.sh

# Sets TRIPLE, PKGS (Debian packages beyond the Rust toolchain), LINKER ("" = not linked
# here: no SDK or sysroot in Debian) for target $1.
target_info() {
  LINKER="" PKGS=""
  case $1 in
    windows) TRIPLE=x86_64-pc-windows-gnu LINKER=x86_64-w64-mingw32-gcc PKGS="mingw-w64 wine64" ;;
    macos) TRIPLE=x86_64-apple-darwin ;;
    macos-arm) TRIPLE=aarch64-apple-darwin ;;
    freebsd) TRIPLE=x86_64-unknown-freebsd ;;
    *) die "unknown target '$1' (tests/platforms.sh --list)" ;;
  esac
}

# --- Installing --------------------------------------------------------------------------

# shellcheck source=tests/apt_install.sh
. tests/apt_install.sh

# A wine prefix in which Rust's std can start. std (1.78 and later) takes its random seed from
# `ProcessPrng` in bcryptprimitives.dll, which Wine 8.0 lacks: every program exits 53 at once.
# tests/platforms/process_prng.c is a one-function DLL forwarding it to `RtlGenRandom`,
# compiled with mingw's gcc into the prefix's system32 and preferred to wine's own. Test-only:
# a real Windows (10 and later) has the function.
wine_setup() {
  export WINEPREFIX=$CACHE/wine WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n,b"
  local dll=$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    say "creating the wine prefix $WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    "$WINE" wineboot --init >/dev/null 2>&1 || die "wineboot failed in $WINEPREFIX"
    /usr/lib/wine/wineserver64 -w 2>/dev/null || true
  fi
  # Rebuilt when its source changed (by content: a fresh clone's files are all new).
  local built_from=$WINEPREFIX/process_prng.c
  if [ ! -f "$dll" ] || ! cmp -s tests/platforms/process_prng.c "$built_from"; then
    say "building the ProcessPrng shim into $dll"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" tests/platforms/process_prng.c \
      tests/platforms/process_prng.def -ladvapi32
    cp tests/platforms/process_prng.c "$built_from"
  fi
}

# --- Checking, linking, testing ----------------------------------------------------------

# The environment cargo runs in for $TRIPLE: Debian's cargo, rustc and clippy, std from
# source, the build in the cache. A subshell applies it.
cargo_env() {
  local upper
  upper=$(printf '%s' "$TRIPLE" | tr 'a-z-' 'A-Z_')
  unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER CARGO_BUILD_TARGET RUSTFLAGS
  # Debian's cargo finds Debian's cargo-clippy first on PATH.
  export PATH=$RUST:$PATH RUSTC=$RUST/rustc RUSTDOC=$RUST/rustdoc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_DIR=$CACHE/target
  if [ -n "$LINKER" ]; then export "CARGO_TARGET_${upper}_LINKER=$LINKER"; fi
  if [ "$TRIPLE" = x86_64-pc-windows-gnu ]; then export "CARGO_TARGET_${upper}_RUNNER=$WINE"; fi
}

# Runs "$@", logs it, and prints how many seconds it took.
timed() {
  local started=$SECONDS
  printf '\n$ %s\n' "$*" >>"$LOG"
  local status=0
  "$@" >>"$LOG" 2>&1 || status=$?
  echo $((SECONDS - started))
  return $status
}

run_target() {
  local name=$1 check_only=$2
  LOG="$OUT/$1.log"
  target_info "$name"
  # shellcheck disable=SC2086
  apt_install rustc-web cargo-web rust-web-src rust-web-clippy $PKGS >&2
  [ -n "$LINKER" ] || check_only=1
  : >"$LOG"
  local started=$SECONDS status=ok clippy=- build=- tests=- size=-
  local passed=- failed=- ignored=-
  build_std=(-Zbuild-std=std,panic_unwind --target "$TRIPLE")
  (
    cargo_env
    echo "# $name: $TRIPLE, $("$RUSTC" --version), std from $("$RUSTC" --print sysroot)" >>"$LOG"
    # No `cargo check` first: clippy compiles every target as `check` does, and fails on the
    # same errors (--keep-going: all of them); a check before it type-checked the crate and
    # its 40 test files twice (Windows 28 s, macOS 15 s, 21 s, FreeBSD 17 s, warm).
    clippy=$(timed "${NICE[@]}" cargo clippy --keep-going --all-targets "${build_std[@]}" \
      -- -D warnings) || exit 1
    echo "times: clippy=$clippy" >>"$LOG"
    [ -n "$check_only" ] && exit 0
    wine_setup
    build=$(timed "${NICE[@]}" cargo build --release --bins "${build_std[@]}") || exit 1
    # The unit tests, every file of tests/ and the binary's; no doctests (rustdoc would need
    # -Zbuild-std and the linker again for ~40 examples that are the same on every platform).
    # --no-fail-fast: every test binary runs, so the counts are the whole suite's.
    tests_failed=""
    tests=$(timed "${NICE[@]}" cargo test --no-fail-fast --lib --bins --tests "${build_std[@]}") ||
      tests_failed=1
    echo "times: build=$build tests=$tests" >>"$LOG"
    [ -z "$tests_failed" ]
  ) || status=FAILED
  clippy=$(awk -F'[= ]' '/^times: clippy=/ { print $3 "s" }' "$LOG")
  build=$(awk -F'[= ]' '/^times: build=/ { print $3 "s" }' "$LOG")
  tests=$(awk -F'[= ]' '/^times: build=/ { print $5 "s" }' "$LOG")
  local binary=$CACHE/target/$TRIPLE/release/tcprelay.exe
  [ -z "$check_only" ] && [ -f "$binary" ] && size=$(stat -c %s "$binary")
  if [ -z "$check_only" ]; then
    # The sums of the unit tests' and each integration test's.
    read -r passed failed ignored < <(count_tests "$LOG")
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ] || status=FAILED
  fi
  table_row "$TRIPLE" "$size" "$passed" "$failed" "$ignored" "${clippy:--}" \
    "${build:--}" "${tests:--}" "$status$([ -n "$check_only" ] && echo ' (checked only)')"
  [ "$status" = ok ]
}

# --- Main --------------------------------------------------------------------------------

parse_targets "$@"
mkdir -p "$CACHE"
table_start "; cache $CACHE" target size passed failed ignored clippy release tests status
run_selected
if [ "$FAILURES" -gt 0 ]; then
  echo "platforms.sh: $FAILURES of ${#SELECTED[@]} targets failed" >&2
  exit 1
fi
