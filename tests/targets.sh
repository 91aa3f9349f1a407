#!/usr/bin/env bash
# Builds tcprelay's release binary for the CPUs routers and boards use, and runs the whole
# test suite on each (under qemu-user where the CPU is not this machine's), with Debian's
# packages only. Prints one line per target: toolchain, binary size, test counts, time.
# docs/targets.md explains the targets, the table and how to do the same on a laptop.
#
#   tests/targets.sh                      every default target (30-40 min on 2 cores, 15 once built)
#   tests/targets.sh i686 armv7 s390x     some of them
#   tests/targets.sh mipsel:build         only the release binary
#   tests/targets.sh --jobs=2 i686 armv7  2 targets at once (on 2 cores, two emulated suites
#                                         at once fail timing tests: docs/targets.md, CI)
#   tests/targets.sh --list               the target names
#
# Targets: aarch64 armv7 i686 s390x ppc64le mips64el mipsel musl (the default set), and
# armel (ARMv5, no 64-bit atomics), msrv (x86_64 with the declared MSRV, rustc 1.85),
# static-arm (a static aarch64 binary, built only).
#
# Needs root for apt-get (the first run downloads about 1 GB) and Linux >= 6.7 for the
# private binfmt_misc (see with_binfmt). Everything it builds goes under target/; the
# unpacked rustc 1.85 under $TCPRELAY_TOOLCHAINS (default /opt/tcprelay-toolchains).
# Results: target/targets/results.txt (the table) and target/targets/<name>.log.
# Exits non-zero if any target failed to build or failed a test.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_TARGETS=(aarch64 armv7 i686 s390x ppc64le mips64el mipsel musl)
ALL_TARGETS=("${DEFAULT_TARGETS[@]}" armel msrv static-arm)
OUT=target/targets
TOOLCHAINS=${TCPRELAY_TOOLCHAINS:-/opt/tcprelay-toolchains}
# Debian bookworm's toolchains: rustc-web 1.96 (bookworm-security) installs as /usr/bin/rustc;
# 1.85 (bookworm main, the declared rust-version) cannot be installed beside it, so its .debs
# are unpacked into a directory of their own.
RUST_NEW=/usr/bin
RUST_85_VERSION=1.85.0+dfsg3-1~deb12u3
RUST_85=$TOOLCHAINS/rust-1.85/usr/bin
# The machine is shared: builds and emulated tests run at lower priority.
NICE=(nice -n 10)
MODE=:build
JOBS=1 # --jobs=N: each target builds in a directory of its own (target_info)
TABLE_FORMAT='%-41s %-5s %9s %6s %6s %7s %8s %8s %6s  %s'

# shellcheck source=tests/per_target.sh
. tests/per_target.sh

# What each target needs. Sets: TRIPLE, TOOLCHAIN (1.96|1.85), STD (deb:ARCH = Debian's
# prebuilt std for ARCH | src = built from rust-web-src with -Zbuild-std), PKGS (Debian
# packages), QEMU (qemu-user binary, "" = runs natively), LD_PREFIX (the target's libc for
# qemu, where no real libc of that architecture is installed), MAGIC/MASK (the ELF header
# binfmt_misc matches; the standard qemu-binfmt ones), GCC (the cross gcc's prefix: the
# linker), RUSTFLAGS_EXTRA, BUILD_ONLY.
target_info() {
  TOOLCHAIN=1.96 STD=src QEMU="" LD_PREFIX="" MAGIC="" MASK="" RUSTFLAGS_EXTRA="" BUILD_ONLY=""
  # A build directory per target, so that targets can build at once (run_selected).
  TARGET_DIR=target/cross/$1 SUFFIX="" GCC=""
  local elf32='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00'
  local elf64='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00'
  local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  case $1 in
    aarch64)
      GCC=aarch64-linux-gnu
      TRIPLE=aarch64-unknown-linux-gnu STD=deb:arm64 QEMU=qemu-aarch64
      PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
      MAGIC="${elf64}\xb7\x00" MASK=$mask ;;
    armv7)
      GCC=arm-linux-gnueabihf
      TRIPLE=armv7-unknown-linux-gnueabihf STD=deb:armhf QEMU=qemu-arm
      PKGS="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
      MAGIC="${elf32}\x28\x00" MASK=$mask ;;
    armel)
      GCC=arm-linux-gnueabi
      TRIPLE=armv5te-unknown-linux-gnueabi QEMU=qemu-arm LD_PREFIX=/usr/arm-linux-gnueabi
      PKGS="gcc-arm-linux-gnueabi libc6-dev-armel-cross"
      MAGIC="${elf32}\x28\x00" MASK=$mask ;;
    i686)
      GCC=i686-linux-gnu
      TRIPLE=i686-unknown-linux-gnu STD=deb:i386
      PKGS="gcc-i686-linux-gnu libc6-dev-i386-cross" ;;
    s390x)
      GCC=s390x-linux-gnu
      # Debian has s390x's std only as 1.85, which only rustc 1.85 can use.
      TRIPLE=s390x-unknown-linux-gnu TOOLCHAIN=1.85 STD=deb:s390x QEMU=qemu-s390x
      LD_PREFIX=/usr/s390x-linux-gnu PKGS="gcc-s390x-linux-gnu libc6-dev-s390x-cross"
      MAGIC='\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16'
      MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff' ;;
    ppc64le)
      GCC=powerpc64le-linux-gnu
      TRIPLE=powerpc64le-unknown-linux-gnu STD=deb:ppc64el QEMU=qemu-ppc64le
      PKGS="gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross"
      MAGIC="${elf64}\x15\x00"
      MASK='\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00' ;;
    mips64el)
      GCC=mips64el-linux-gnuabi64
      TRIPLE=mips64el-unknown-linux-gnuabi64 QEMU=qemu-mips64el
      LD_PREFIX=/usr/mips64el-linux-gnuabi64
      PKGS="gcc-mips64el-linux-gnuabi64 libc6-dev-mips64el-cross"
      MAGIC="${elf64}\x08\x00" MASK=$mask ;;
    mipsel)
      GCC=mipsel-linux-gnu
      TRIPLE=mipsel-unknown-linux-gnu QEMU=qemu-mipsel LD_PREFIX=/usr/mipsel-linux-gnu
      PKGS="gcc-mipsel-linux-gnu libc6-dev-mipsel-cross"
      MAGIC="${elf32}\x08\x00" MASK=$mask ;;
    musl)
      # Fully static: see musl_setup.
      TRIPLE=x86_64-unknown-linux-musl PKGS="musl-tools libunwind-16-dev" SUFFIX=" (static)" ;;
    msrv)
      TRIPLE=x86_64-unknown-linux-gnu TOOLCHAIN=1.85 STD=host PKGS="" SUFFIX=" (MSRV)" ;;
    static-arm)
      GCC=aarch64-linux-gnu
      # glibc's static libc.a for aarch64, with Debian's prebuilt std: no musl needed.
      TRIPLE=aarch64-unknown-linux-gnu STD=deb:arm64 BUILD_ONLY=1 SUFFIX=" (static)"
      PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
      RUSTFLAGS_EXTRA="-C target-feature=+crt-static" ;;
    *) die "unknown target '$1' (known: ${ALL_TARGETS[*]})" ;;
  esac
  if [ -n "$QEMU" ]; then PKGS="$PKGS qemu-user"; fi
}

# --- Installing --------------------------------------------------------------------------

# shellcheck source=tests/apt_install.sh
. tests/apt_install.sh

add_architecture() {
  local known # not a pipe into grep -q: with pipefail, dpkg's SIGPIPE would read as "absent"
  known=$(dpkg --print-architecture; dpkg --print-foreign-architectures)
  if ! grep -qx "$1" <<<"$known"; then
    say "dpkg --add-architecture $1"
    dpkg --add-architecture "$1"
    APT_UPDATED="" # the new architecture's package lists are needed
  fi
}

# rustc, cargo and the host's std at 1.85, and s390x's std, unpacked into $TOOLCHAINS/rust-1.85.
rust_185_setup() {
  local dir=$TOOLCHAINS/rust-1.85
  apt_install libllvm19 libpcre3 libhttp-parser2.9 libcurl4 libssh2-1 libsqlite3-0
  if [ ! -x "$dir/usr/bin/rustc" ] || [ ! -d "$dir/usr/lib/rustlib/s390x-unknown-linux-gnu" ]; then
    add_architecture s390x
    [ -n "$APT_UPDATED" ] || { say "apt-get update"; apt-get update -qq; APT_UPDATED=1; }
    say "unpacking rustc-web $RUST_85_VERSION into $dir"
    local debs
    debs=$(mktemp -d)
    chmod 755 "$debs" # apt-get download fetches as the _apt user
    (cd "$debs" && apt-get download -qq \
      "rustc-web=$RUST_85_VERSION" "cargo-web=$RUST_85_VERSION" \
      "libstd-rust-web-1.85=$RUST_85_VERSION" "libstd-rust-web-dev=$RUST_85_VERSION" \
      "libstd-rust-web-1.85:s390x=$RUST_85_VERSION" "libstd-rust-web-dev:s390x=$RUST_85_VERSION")
    rm -rf "$dir"
    mkdir -p "$dir"
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$dir"; done
    rm -rf "$debs"
  fi
}

# A static libunwind.a for musl (std built from source links it): LLVM's, plus the one
# glibc symbol it calls that musl lacks (__fprintf_chk, from _FORTIFY_SOURCE).
musl_setup() {
  local dir=$OUT/musl-native
  if [ ! -f "$dir/libunwind.a" ]; then
    mkdir -p "$dir"
    cat >"$dir/fprintf_chk.c" <<'EOF'
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *stream, int flag, const char *format, ...) {
    (void)flag;
    va_list args;
    va_start(args, format);
    int written = vfprintf(stream, format, args);
    va_end(args);
    return written;
}
EOF
    musl-gcc -O2 -c "$dir/fprintf_chk.c" -o "$dir/fprintf_chk.o"
    cp /usr/lib/llvm-16/lib/libunwind.a "$dir/libunwind.a"
    ar rs "$dir/libunwind.a" "$dir/fprintf_chk.o" 2>/dev/null
  fi
  MUSL_NATIVE=$(realpath "$dir")
}

install_for() {
  target_info "$1"
  local pkgs="$PKGS"
  case $STD in
    deb:*) if [ "$TOOLCHAIN" = 1.96 ]; then
             add_architecture "${STD#deb:}"
             pkgs="$pkgs libstd-rust-web-dev:${STD#deb:}"
           fi ;;
    src) pkgs="$pkgs rust-web-src" ;;
  esac
  # shellcheck disable=SC2086
  apt_install rustc-web cargo-web python3 $pkgs
  if [ "$TOOLCHAIN" = 1.85 ]; then rust_185_setup; fi
  if [ "$1" = musl ]; then musl_setup; fi
}

# --- Building and testing ----------------------------------------------------------------

# The environment cargo runs in for target $1 (after target_info): Debian's cargo and rustc,
# the target's linker, runner and flags. A subshell applies it.
cargo_env() {
  local upper
  upper=$(printf '%s' "$TRIPLE" | tr 'a-z-' 'A-Z_')
  unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER CARGO_BUILD_TARGET
  if [ "$TOOLCHAIN" = 1.85 ]; then
    BIN=$RUST_85
    export LD_LIBRARY_PATH=$TOOLCHAINS/rust-1.85/usr/lib/x86_64-linux-gnu:$TOOLCHAINS/rust-1.85/usr/lib
  else
    BIN=$RUST_NEW
  fi
  export CARGO_TARGET_DIR=$TARGET_DIR
  export RUSTC=$BIN/rustc RUSTDOC=$BIN/rustdoc
  CARGO=$BIN/cargo
  ZFLAGS=()
  case $STD in
    src) export RUSTC_BOOTSTRAP=1; ZFLAGS=(-Zbuild-std=std,panic_unwind) ;;
    deb:*) if [ "$TOOLCHAIN" = 1.85 ]; then
             # cargo 1.85 skips doctests for a cross target unless asked (stable from 1.89).
             export RUSTC_BOOTSTRAP=1; ZFLAGS=(-Zdoctest-xcompile)
           fi ;;
  esac
  case $TRIPLE in
    x86_64-unknown-linux-gnu) ;;
    x86_64-unknown-linux-musl)
      export "CARGO_TARGET_${upper}_LINKER=musl-gcc"
      # Static and not position-independent (else it asks for /lib/ld-musl-x86_64.so.1),
      # our libunwind.a instead of the self-contained one rustup would ship. The doctests
      # need the same flags (else: cannot find rcrt1.o).
      RUSTFLAGS_EXTRA="-C target-feature=+crt-static -C relocation-model=static"
      RUSTFLAGS_EXTRA+=" -C link-self-contained=no -L native=$MUSL_NATIVE"
      export RUSTDOCFLAGS="$RUSTFLAGS_EXTRA" ;;
    *) export "CARGO_TARGET_${upper}_LINKER=$GCC-gcc" ;;
  esac
  if [ -n "$QEMU" ]; then export "CARGO_TARGET_${upper}_RUNNER=$QEMU"; fi
  # Where no libc of the target's architecture is installed, qemu takes the cross one.
  # (Not for arm64/armhf/ppc64el: their real libc came with libstd-rust-web-dev, and mixing
  # it with the cross loader hangs or crashes threads: docs/targets.md.)
  if [ -n "$LD_PREFIX" ]; then export QEMU_LD_PREFIX=$LD_PREFIX; fi
  if [ -n "$RUSTFLAGS_EXTRA" ]; then export "CARGO_TARGET_${upper}_RUSTFLAGS=$RUSTFLAGS_EXTRA"; fi
}

# Runs "$@" where the kernel can start the target's binaries: the tests spawn
# target/<triple>/debug/tcprelay themselves. A user and mount namespace gets its own
# binfmt_misc instance (Linux >= 6.7) with qemu registered for this one ELF machine;
# nothing is registered outside it.
with_binfmt() {
  if [ -z "$QEMU" ]; then "$@"; return; fi
  unshare --user --map-root-user --mount --fork bash -c '
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 125
    printf "%s" "$1" >/proc/sys/fs/binfmt_misc/register || exit 125
    shift
    exec "$@"' _ ":$QEMU:M::$MAGIC:$MASK:$(command -v "$QEMU"):" "$@"
}

# Test files that check the host, not the target: each reads text (src/, docs/), drives
# host programs (rustc, go, nc, man, logrotate) or has only tests `cargo test` ignores.
# The host's `cargo test` runs them (CI: .ci/run); here each would only be compiled and
# linked again per target. docs/targets.md ("Where each test runs in CI") says why each.
HOST_ONLY_TESTS=(chapter go_programs logrotate_recipes man_page module_graph tools)

# Prints the `cargo test` arguments that select the suite less HOST_ONLY_TESTS: the unit
# tests, the binary's, and each test target `cargo test` runs (not the `test = false`
# ones). Fails if HOST_ONLY_TESTS names no test target, so a renamed file is not missed.
suite_without_host_only() {
  "$CARGO" metadata --no-deps --format-version 1 | python3 -c '
import json, sys
host_only = set(sys.argv[1:])
targets = json.load(sys.stdin)["packages"][0]["targets"]
tests = [t["name"] for t in targets if t["kind"] == ["test"] and t["test"]]
for name in sorted(host_only - set(tests)):
    sys.exit(f"HOST_ONLY_TESTS in tests/targets.sh names {name}, which is no test target")
print("--lib --bins", *(f"--test {name}" for name in tests if name not in host_only))
' "${HOST_ONLY_TESTS[@]}"
}

run_target() {
  local name=$1 build_only=$2 log="$OUT/$1.log"
  target_info "$name"
  [ -n "$BUILD_ONLY" ] && build_only=1
  local started=$SECONDS status=ok passed=- failed=- ignored=- size=-
  (
    cargo_env
    echo "# $name: $TRIPLE, $("$RUSTC" --version), std: $STD, runner: ${QEMU:-native}"
    target=(--target "$TRIPLE")
    [ "$name" = msrv ] && target=()
    # || exit: errexit is off in a subshell whose status is tested; before, a failed build of a
    # build-only target (CI's mipsel) ended the subshell with the skipped `if`'s 0: "ok".
    "${NICE[@]}" "$CARGO" build --release "${ZFLAGS[@]}" "${target[@]}" --bins || exit 1
    [ -n "$build_only" ] && exit 0
    local suite
    suite=$(suite_without_host_only) || exit 1
    # --no-fail-fast: every test binary runs, so the counts are the whole suite's. The
    # doctests after them (cargo takes --doc alone), whatever the others did.
    # shellcheck disable=SC2086 # one word per argument
    with_binfmt "${NICE[@]}" "$CARGO" test --no-fail-fast "${ZFLAGS[@]}" "${target[@]}" $suite
    local tests_status=$?
    with_binfmt "${NICE[@]}" "$CARGO" test --doc "${ZFLAGS[@]}" "${target[@]}" || exit 1
    exit $tests_status
  ) >"$log" 2>&1 || status=FAILED
  target_info "$name"
  local binary=$TARGET_DIR/$TRIPLE/release/tcprelay
  [ "$name" = msrv ] && binary=$TARGET_DIR/release/tcprelay
  [ -f "$binary" ] && size=$(stat -c %s "$binary")
  if [ "$name" = musl ] || [ "$name" = static-arm ]; then
    if [ -f "$binary" ] && [[ $(file "$binary") == *"statically linked"* ]]; then
      size="$size*"
    else
      status=FAILED
      echo "not a static binary: $(file "$binary" 2>&1)" >>"$log"
    fi
  fi
  local kib=- va=-
  if [ -z "$build_only" ] && [ "$status" = ok ]; then
    # Memory per idle connection of the release binary: resident, and address space.
    (
      cargo_env
      with_binfmt env TCPRELAY="$binary" python3 tests/bench/idle_memory.py -n 100
    ) >"$OUT/$name.footprint" 2>&1 || status=FAILED
    read -r kib va < <(awk '/^own:/ { print $2, $12 }' "$OUT/$name.footprint")
    : "${kib:=-}" "${va:=-}"
  fi
  if [ -z "$build_only" ]; then
    read -r passed failed ignored < <(count_tests "$log")
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ] || status=FAILED
  fi
  table_row "$TRIPLE$SUFFIX" "$TOOLCHAIN" "$size" "$passed" "$failed" "$ignored" "$kib" "$va" \
    "$((SECONDS - started))s" \
    "$status${build_only:+ (build only)}"
  [ "$status" = ok ]
}

# --- Main --------------------------------------------------------------------------------

parse_targets "$@"
table_start "" target rustc size passed failed ignored KiB/conn VA/conn time status
# Installing is apt-get's, one at a time, before any target runs.
for arg in "${SELECTED[@]}"; do install_for "${arg%"$MODE"}" >&2; done
run_selected
# The tests of every target together, in the closing line test runners print.
logs=()
for arg in "${SELECTED[@]}"; do logs+=("$OUT/${arg%"$MODE"}.log"); done
read -r passed failed _ < <(count_tests "${logs[@]}")
echo "targets: $passed passed, $failed failed"
if [ "$FAILURES" -gt 0 ]; then
  echo "targets.sh: $FAILURES of ${#SELECTED[@]} targets failed" >&2
  exit 1
fi
