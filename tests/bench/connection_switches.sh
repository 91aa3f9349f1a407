#!/usr/bin/env bash
# tests/bench/connection_switches.sh: connections per second and context switches per
# connection in the load generator's connection-rate workload (16 workers: connect, one
# 32-byte exchange, close), for tcprelay, the Go program and the two accept shapes of
# tests/bench/accept_probe.rs, interleaved. For docs/benchmarks.md.
#
# Usage: tests/bench/connection_switches.sh [CANDIDATE...]
#   CANDIDATE  tcprelay, go, probe:handoff, probe:followers (default: all four)
#   ROUNDS=3 SECS=3 in the environment change the rounds and the seconds per run.
# Switches are summed over the relay's threads (/proc/PID/task/*/status) around the timed
# run, after a 1 s warm-up so that pooled threads already exist. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
candidates=("$@")
(( ${#candidates[@]} )) || candidates=(tcprelay go probe:handoff probe:followers)
source tests/bench/loadgen.sh
loadgen=$(build_relay_and_loadgen connection_switches.sh)
rustc -O --edition 2024 tests/bench/accept_probe.rs -o target/accept_probe
(cd docs/go && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o ../../target/release/goproxy ./correct)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$loadgen" serve --for 3600 > "$work/upstreams" &
for _ in $(seq 100); do [[ -s $work/upstreams ]] && break; sleep 0.05; done
echo_addr=$(grep -oE "echo=[^ ]+" "$work/upstreams" | cut -d= -f2)
switches() { { cat /proc/"$1"/task/*/status 2>/dev/null || true; } | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
for round in $(seq "${ROUNDS:-3}"); do
    for candidate in "${candidates[@]}"; do
        : > "$work/err"
        case $candidate in
            tcprelay) target/release/tcprelay -l 127.0.0.1:0 -u "$echo_addr" --log-level warn 2> "$work/err" & ;;
            go) target/release/goproxy -listen 127.0.0.1:0 -upstream "$echo_addr" 2> "$work/err" & ;;
            probe:*) target/accept_probe "${candidate#probe:}" "$echo_addr" 2> "$work/err" & ;;
            *) echo "connection_switches.sh: unknown candidate $candidate" >&2; exit 2 ;;
        esac
        pid=$!
        for _ in $(seq 100); do grep -q "listening on" "$work/err" && break; sleep 0.05; done
        addr=$(grep -oE "listening on [0-9.:]+" "$work/err" | awk '{print $3}')
        timeout 60 "$loadgen" run --workload connection-rate --target "$addr" --secs 1 > /dev/null
        before=$(switches "$pid")
        line=$(timeout 120 "$loadgen" run --workload connection-rate --target "$addr" \
            --secs "${SECS:-3}" | grep bench-result || echo "bench-result ok=false")
        after=$(switches "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        completed=$(grep -oE 'completed=[0-9]+' <<< "$line" | cut -d= -f2)
        awk -v r="$round" -v c="$candidate" -v l="$line" -v s=$((after - before)) -v n="${completed:-0}" \
            'BEGIN { match(l, /conn_s=[0-9.]+/); printf "round=%s %-16s %s switches_per_conn=%.2f\n", r, c, substr(l, RSTART, RLENGTH), n ? s / n : 0 }'
    done
done
