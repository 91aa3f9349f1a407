#!/usr/bin/env bash
# tests/bench/ab.sh: A/B one workload across tcprelay flag sets (and the Go program),
# interleaved, for the decisions in docs/benchmarks.md.
#
# Usage: tests/bench/ab.sh WORKLOAD CANDIDATE...
#   WORKLOAD   bulk-up, bulk-down, ping-pong, keep-alive, connection-rate, idle
#   CANDIDATE  `go` (docs/go/correct), or `tcprelay` followed by flags joined with `:`,
#              e.g. tcprelay  tcprelay:--buffer-size:64k  tcprelay:--thread-keep-alive:0,
#              or the absolute path of another tcprelay build, with flags the same way
#              (/tmp/tcprelay-before:--buffer-size:8k), or `probe:handoff` / `probe:followers`
#              (tests/bench/accept_probe.rs, built to target/accept_probe first)
#   ROUNDS=3 SECS=3 in the environment change the rounds and the seconds per run.
#   TCPRELAY_BIN=path runs another tcprelay binary (e.g. a variant build).
# Prints one `bench-result` line per run. Loopback only; every run is bounded by timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $# -ge 2 ]] || { sed -n 2,12p "$0" >&2; exit 2; }
workload=$1; shift
source tests/bench/loadgen.sh
loadgen=$(build_relay_and_loadgen ab.sh)
tcprelay=${TCPRELAY_BIN:-target/release/tcprelay}
if [[ " $* " == *" go "* ]]; then
    (cd docs/go && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o ../../target/release/goproxy ./correct)
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$loadgen" serve --for 3600 > "$work/upstreams" &
for _ in $(seq 100); do [[ -s $work/upstreams ]] && break; sleep 0.05; done
kind=$("$loadgen" upstream-for "$workload")
upstream=$(grep -oE "$kind=[^ ]+" "$work/upstreams" | cut -d= -f2)
for round in $(seq "${ROUNDS:-3}"); do
    for candidate in "$@"; do
        : > "$work/err"
        case $candidate in
            go) target/release/goproxy -listen 127.0.0.1:0 -upstream "$upstream" 2> "$work/err" & ;;
            probe:*) target/accept_probe "${candidate#probe:}" "$upstream" 2> "$work/err" & ;;
            tcprelay*|/*)
                # `/path/to/binary:flags` runs another build (e.g. before and after a change).
                binary=$tcprelay
                [[ $candidate == /* ]] && binary=${candidate%%:*}
                flags=${candidate#tcprelay}
                [[ $candidate == /* ]] && { flags=${candidate#"$binary"}; }
                read -r -a flags <<< "${flags//:/ }"
                "$binary" -l 127.0.0.1:0 -u "$upstream" --log-level warn --max-connections 9000 \
                    "${flags[@]}" 2> "$work/err" & ;;
            *) echo "ab.sh: unknown candidate $candidate" >&2; exit 2 ;;
        esac
        pid=$!
        for _ in $(seq 100); do grep -q "listening on" "$work/err" && break; sleep 0.05; done
        addr=$(grep -oE "listening on [0-9.:]+" "$work/err" | awk '{print $3}')
        result=$(timeout 120 "$loadgen" run --workload "$workload" --target "$addr" \
            --secs "${SECS:-3}" --relay-pid "$pid" | grep bench-result || echo "bench-result ok=false")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        echo "round=$round candidate=$candidate ${result#bench-result }"
    done
done
