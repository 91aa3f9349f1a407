#!/usr/bin/env bash
# tests/bench/udp_new_flows.sh: what a new UDP flow costs, two tcprelay builds
# interleaved (docs/benchmarks.md, "UDP", "New-flow cost").
#
# Per round and build: a fresh relay (`-l udp:127.0.0.1:0 -u ECHO --max-flows
# 4000` plus FLAGS) in front of the load generator's echo, then 1,000 DNS-like
# queries each from a new socket (a new flow each, like dig: p50/p99 of the
# round trip), then 1,000 new clients at once (how many the first burst got
# answered, and the relay's threads after). The builds' order alternates every
# round; one line per run, with the 1-minute load average.
#
# Usage: tests/bench/udp_new_flows.sh ROUNDS BEFORE_BIN AFTER_BIN [FLAGS...]
#   e.g. tests/bench/udp_new_flows.sh 3 /tmp/u5-before target/release/tcprelay --udp-responses 1
# Run it at normal priority (it is a measurement). Only 127.0.0.1 is used.
set -euo pipefail
[[ $# -ge 3 && $1 =~ ^[1-9][0-9]?$ ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
rounds=$1 before=$2 after=$3
shift 3
for bin in "$before" "$after"; do
    [[ -x $bin ]] || { echo "udp_new_flows.sh: '$bin' is not an executable tcprelay" >&2; exit 2; }
done
cd "$(dirname "$0")/../.."
source tests/bench/loadgen.sh
gen=$(build_relay_and_loadgen udp_new_flows.sh udp)
ulimit -n "$(ulimit -Hn)" # 1,000 flows are 2,000 sockets

work=$(mktemp -d /tmp/tcprelay-udp-new-flows.XXXXXX)
setsid "$gen" echo --for 3600 > "$work/echo.out" 2> /dev/null < /dev/null &
echo_pid=$!
relay_pid=""
trap 'stop_group "$echo_pid"; [[ -n $relay_pid ]] && kill "$relay_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [[ -s $work/echo.out ]] && break; sleep 0.05; done
echo_addr=$(sed -n 's/^udp-echo=//p' "$work/echo.out")
[[ -n $echo_addr ]] || { echo "udp_new_flows.sh: the echo server did not start" >&2; exit 1; }

runs=0
run_one() {
    local label=$1 bin=$2 port="" field
    shift 2
    runs=$((runs + 1))
    local log=$work/relay.$runs.log # a file per run: never the last run's port
    "$bin" -l udp:127.0.0.1:0 -u "$echo_addr" --max-flows 4000 "$@" 2> "$log" &
    relay_pid=$!
    for _ in $(seq 250); do
        port=$(sed -n 's/.*listening on udp:127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)
        [[ -n $port ]] && break
        sleep 0.02
    done
    [[ -n $port ]] || { echo "udp_new_flows.sh: $bin did not start: $(cat "$log")" >&2; exit 1; }
    "$gen" wait-ready --target "127.0.0.1:$port" > /dev/null
    local dns idle line="$label load=$(cut -d' ' -f1 /proc/loadavg)"
    dns=$("$gen" dns --target "127.0.0.1:$port" --queries 1000 --sockets per-query)
    idle=$("$gen" idle --target "127.0.0.1:$port" --relay-pid "$relay_pid" --flows 1000)
    for field in p50_us p99_us lost; do line+=" $(grep -o "\b$field=[0-9.]*" <<< "$dns")"; done
    for field in burst_answered threads_after; do line+=" $(grep -o "\b$field=[0-9.]*" <<< "$idle")"; done
    echo "$line"
    kill "$relay_pid"
    wait "$relay_pid" 2> /dev/null || true
    relay_pid=""
}

for round in $(seq "$rounds"); do
    if (( round % 2 )); then
        run_one before "$before" "$@"; run_one after "$after" "$@"
    else
        run_one after "$after" "$@"; run_one before "$before" "$@"
    fi
done
