#!/usr/bin/env bash
# Runs every command of the table "What each answer fails, as observed" in docs/lab/key.md
# (the lab's exercises against the key, the untouched stubs and each catalogued mistake)
# and fails unless exactly the tests that row lists fail, none is skipped, and the first
# line after `running N tests` says whose answer was tested. CI runs it (.ci/run).
# Writes docs/go/mine/ (a student's directory, ignored by git), so it refuses to run where
# one exists. Run from anywhere: bash tests/lab_exercises.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -e docs/go/mine ]; then
  echo "docs/go/mine exists (a student's work?): this script writes it; move it away first"
  exit 1
fi
trap 'rm -rf docs/go/mine' EXIT

rows=$(awk '/^<!-- tests\/lab_exercises.sh reads the rows below/ { t = 1; next }
  t && /^\| answer \|/ { next }  t && /^\|---/ { next }  t && /^\|/ { print; next }  t { exit }' \
  docs/lab/key.md)
[ -n "$rows" ] || { echo "docs/lab/key.md has no table of observed failures"; exit 1; }

failed_rows=0
while IFS= read -r row; do
  IFS='|' read -r _ answer command failing _ <<<"$row"
  answer=$(sed 's/^ *//; s/ *$//' <<<"$answer")
  command=$(sed 's/^ *`//; s/` *$//' <<<"$command")
  expected=$(grep -o '`[a-z_0-9]*`' <<<"$failing" | tr -d '`' | sort || true)
  printf '\n==> %s: %s\n' "$answer" "$command"
  mkdir -p docs/go/mine
  log=$(mktemp)
  bash -c "$command" >"$log" 2>&1 || true
  observed=$(sed -n 's/^test \([a-z_0-9]*\) \.\.\. FAILED$/\1/p' "$log" | sort)
  results=$(grep '^test result:' "$log" || true)
  first=$(grep -A1 '^running [0-9]* tests\?$' "$log" | sed -n 2p)
  problem=""
  if [ -z "$results" ]; then
    problem="no test results (did it build?)"
  elif grep -qv ' 0 ignored; .* 0 filtered out;' <<<"$results"; then
    problem="tests were skipped: $results"
  elif [ "$observed" != "$expected" ]; then
    problem="failed: [$(echo $observed)], docs/lab/key.md says: [$(echo $expected)]"
  elif [[ $command == LAB=key* ]] && [[ $first != *"THE TEACHER'S KEY"* ]]; then
    problem="the first line does not say the key was tested: $first"
  elif [[ $command != LAB=* ]] && [[ $first != *"testing YOUR"* ]]; then
    problem="the first line does not say the student's file was tested: $first"
  fi
  if [ -n "$problem" ]; then
    echo "MISMATCH: $problem"
    tail -n 40 "$log"
    failed_rows=$((failed_rows + 1))
  else
    echo "as the key says: ${expected:-none} ($first)" | tr '\n' ' '
    echo
  fi
  rm -f "$log"
  rm -rf docs/go/mine
done <<<"$rows"

if [ "$failed_rows" -gt 0 ]; then
  echo "FAILED: $failed_rows rows of docs/lab/key.md's table differ from what the tests do"
  exit 1
fi
echo "every row of docs/lab/key.md's table is what the tests do"
