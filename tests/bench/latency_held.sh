#!/usr/bin/env bash
# tests/bench/latency_held.sh: ping-pong latency through tcprelay while it holds N idle
# connections, for docs/benchmarks.md ("how each figure grows from 10 to 10,000").
#
# One relay, two routes: 127.0.0.2 → the load generator's quiet echo, where a small Python
# client holds N connections (each proven by one echo, then idle: two blocked threads each);
# 127.0.0.1 → the echo upstream, where `relay run --workload ping-pong` times one message in
# flight at a time. A fresh relay per count, so nothing carries over.
#
# Usage: tests/bench/latency_held.sh [N...]     (default: 0 10 1000 9800)
#   ROUNDS=3 SECS=3 in the environment change the rounds and the seconds per ping-pong run.
# Prints one line per run (candidate direct: the harness alone, no relay): candidate=… held=N p50_us=… p99_us=… p999_us=… round_trips=…
# Loopback only; every wait is bounded by timeout. Needs python3; 9,800 held needs
# RLIMIT_NOFILE ≥ 20,000 for the relay (the soft limit is raised to the hard one).
set -euo pipefail
cd "$(dirname "$0")/../.."
counts=("$@")
(( ${#counts[@]} )) || counts=(0 10 1000 9800)
ulimit -n "$(ulimit -Hn)"
source tests/bench/loadgen.sh
loadgen=$(build_relay_and_loadgen latency_held.sh)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$loadgen" serve --for 3600 > "$work/upstreams" &
for _ in $(seq 100); do [[ -s $work/upstreams ]] && break; sleep 0.05; done
echo_addr=$(grep -oE 'echo=[^ ]+' "$work/upstreams" | cut -d= -f2)
quiet_addr=$(grep -oE 'quiet=[^ ]+' "$work/upstreams" | cut -d= -f2)

# Holds argv[2] connections to argv[1], each proven by one echo (a batch of 100 sent, then
# read back: the quiet echo answers once per sweep), prints "held N", and keeps them open
# until its stdin closes.
cat > "$work/hold.py" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
count, held = int(sys.argv[2]), []
for first in range(0, count, 100):
    batch = range(first, min(first + 100, count))
    for i in batch:
        held.append(socket.create_connection((host, int(port)), timeout=30))
        held[i].sendall(b"%016d" % i)
    for i in batch:
        got = b""
        while len(got) < 16:
            chunk = held[i].recv(16 - len(got))
            if not chunk:
                sys.exit("connection %d closed before its echo" % i)
            got += chunk
        if got != b"%016d" % i:
            sys.exit("connection %d echoed %r" % (i, got))
print("held", len(held), flush=True)
sys.stdin.read()
PY

for round in $(seq "${ROUNDS:-3}"); do
  for candidate in direct tcprelay; do
    for n in "${counts[@]}"; do
        relay=""
        if [[ $candidate == direct ]]; then
            # The harness alone: the same held connections and ping-pong, without a relay.
            ping=$echo_addr held=$quiet_addr
        else
            target/release/tcprelay --route "127.0.0.1:0=$echo_addr" --route "127.0.0.2:0=$quiet_addr" \
                --max-connections 10000 --log-level info ${RELAY_FLAGS:-} 2> "$work/relay.log" &
            relay=$!
            for _ in $(seq 100); do grep -q 'listening on 127.0.0.2' "$work/relay.log" && break; sleep 0.05; done
            ping=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$work/relay.log" | head -1 | cut -d' ' -f3)
            held=$(grep -oE 'listening on 127\.0\.0\.2:[0-9]+' "$work/relay.log" | head -1 | cut -d' ' -f3)
        fi
        mkfifo "$work/hold_in"
        timeout 300 python3 "$work/hold.py" "$held" "$n" < "$work/hold_in" > "$work/held" &
        holder=$!
        exec {hold_fd}> "$work/hold_in"
        for _ in $(seq 1200); do [[ -s $work/held ]] && break; sleep 0.1; done
        [[ -s $work/held ]] || { echo "latency_held.sh: could not hold $n connections" >&2; exit 1; }
        line=$(timeout 120 "$loadgen" run --workload ping-pong --target "$ping" --secs "${SECS:-3}" \
            | grep -E '^bench-result')
        printf 'round=%s candidate=%s held=%s %s\n' "$round" "$candidate" "$n" \
            "$(grep -oE '(p50_us|p99_us|p999_us|round_trips|ok)=[^ ]+' <<< "$line" | tr '\n' ' ')"
        exec {hold_fd}>&-
        wait "$holder" || true
        if [[ -n $relay ]]; then kill "$relay"; wait "$relay" 2>/dev/null || true; fi
        rm -f "$work/hold_in" "$work/held"
    done
  done
done
