#!/usr/bin/env bash
# Lab step 5 (docs/lab.md), as the class does it, RUNS times (20 unless given): in a copy of
# the tree, `//` in front of Go's `dst.CloseWrite()` and of the relay's
# `let _ = dst.shutdown(Shutdown::Write);`, then the step's two commands. Fails unless every
# run fails exactly the tests the lab names, with the messages it quotes: a run where one of
# them passes by accident is a lab that lies to a class. CI runs it (.ci/run).
# Usage: bash tests/lab_step5.sh [RUNS [PARALLEL]]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$copy"
cd "$copy"

# The two edits of step 5, each on exactly one line, as a student types them.
sed -i 's|^\(\t*\)dst\.CloseWrite()$|\1// dst.CloseWrite()|' docs/go/correct/main.go
sed -i 's|^\( *\)let _ = dst\.shutdown(Shutdown::Write);$|\1// let _ = dst.shutdown(Shutdown::Write);|' \
  src/relay/copy.rs
for edited in 'docs/go/correct/main.go:// dst.CloseWrite()' \
  'src/relay/copy.rs:// let _ = dst.shutdown(Shutdown::Write);'; do
  count=$(grep -cF -- "${edited#*:}" "${edited%%:*}" || true)
  [ "$count" = 1 ] || { echo "${edited%%:*}: the step's line was found $count times, not once"; exit 1; }
done

export CARGO_TARGET_DIR="$copy/target"
cargo test --test relay --test go_programs --no-run -q 2>"$copy/build.log" || { cat "$copy/build.log"; exit 1; }
grep -q 'warning: unused import: `std::net::Shutdown`' "$copy/build.log" ||
  { echo "the compiler did not say 'unused import: std::net::Shutdown'"; cat "$copy/build.log"; exit 1; }

expect() { # LOG TEST MESSAGE: TEST failed in LOG, and MESSAGE is in LOG
  grep -qx "test $2 ... FAILED" "$1" || { echo "run $run: $2 did not fail"; return 1; }
  grep -qF -- "$3" "$1" || { echo "run $run: no \`$3\`"; return 1; }
}
# One run: both halves of the step at once, then what each printed against the lab's words.
one_run() {
  local run=$1 rust go ok=1
  rust=$(mktemp) go=$(mktemp)
  cargo test -q --test relay half_close -- --format=pretty >"$rust" 2>&1 &
  cargo test -q --test go_programs correct -- --include-ignored --format=pretty >"$go" 2>&1 &
  wait || true
  expect "$rust" client_half_close_reaches_upstream_and_reply_still_arrives \
    "no EOF reached the upstream after the client's shutdown(Write)" || ok=0
  expect "$rust" upstream_half_close_reaches_client_which_can_still_send \
    "no EOF reached the client after the upstream's shutdown(Write)" || ok=0
  expect "$rust" heap_buffer_path_relays_every_byte_and_passes_half_close_on \
    "no EOF reached the upstream, so the echo never ended its reply" || ok=0
  grep -q '^test result: FAILED. 0 passed; 3 failed; 0 ignored' "$rust" || { echo "run $run: rust"; ok=0; }
  expect "$go" correct_passes_the_half_close_on_and_delivers_the_reply "correct's upstream: no EOF" || ok=0
  expect "$go" correct_passes_a_half_close_from_the_upstream "correct's client: no EOF" || ok=0
  grep -q '^test result: FAILED. 2 passed; 2 failed; 0 ignored' "$go" || { echo "run $run: go"; ok=0; }
  if [ "$ok" = 0 ]; then
    tail -n 30 "$rust" "$go"
    rm -f "$rust" "$go"
    return 1
  fi
  echo "run $run of $runs: the 3 Rust and 2 Go tests the lab names failed, as it says"
  rm -f "$rust" "$go"
}

# Each run spends its time waiting for an EOF that never comes (the tests' 10 s bound), not
# computing: $parallel runs at a time (5 unless given) take a fifth of the time, as a room of
# students running the step at once does. Every run is still checked on its own.
parallel=${2:-5}
failed=0
for first in $(seq 1 "$parallel" "$runs"); do
  pids=()
  for run in $(seq "$first" $((first + parallel - 1))); do
    [ "$run" -le "$runs" ] || break
    one_run "$run" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
done
[ "$failed" = 0 ] || { echo "FAILED: a run of lab step 5 did not fail as docs/lab.md says"; exit 1; }
