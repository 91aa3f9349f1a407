#!/usr/bin/env bash
# tests/bench/wakeups.sh: context switches and CPU per request, tcprelay vs HAProxy, with
# redis-benchmark's keep-alive PING (50 clients) through each, for docs/benchmarks.md.
#
# A thread blocked in read is woken once per message; an event loop (HAProxy) handles every
# ready socket per wake-up. This shows what that costs per request.
# Usage: tests/bench/wakeups.sh [-k 0] [REQUESTS]   (default 300000, with -k 0 30000; needs
# redis-server, redis-benchmark and haproxy: apt-get install redis-server redis-tools haproxy)
#   -k 0   a new connection per request (redis-benchmark -k 0): switches per connection.
#          Threads that exit take their counts with them; tcprelay parks finished threads
#          for 10 s, so after the warm-up round nearly all of them are counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
keepalive=1
if [[ ${1:-} == -k ]]; then keepalive=${2:?-k needs 0 or 1}; shift 2; fi
requests=${1:-$(( keepalive ? 300000 : 30000 ))}
cargo build --release --bin tcprelay >&2
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Context switches (voluntary + involuntary) over every thread of a process.
switches() { { cat /proc/"$1"/task/*/status 2>/dev/null || true; } | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > /dev/null &
timeout 10 bash -c "until redis-cli -p $redis_port ping > /dev/null 2>&1; do sleep 0.1; done"

for candidate in tcprelay haproxy tcprelay haproxy; do
    port=$(free_port)
    if [[ $candidate == tcprelay ]]; then
        target/release/tcprelay -l "127.0.0.1:$port" -u "127.0.0.1:$redis_port" --log-level warn 2> /dev/null &
    else
        printf 'global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten relay\n  bind 127.0.0.1:%s\n  server redis 127.0.0.1:%s\n' \
            "$port" "$redis_port" > "$work/haproxy.cfg"
        "$(command -v haproxy || echo /usr/sbin/haproxy)" -f "$work/haproxy.cfg" -db > /dev/null 2>&1 &
    fi
    pid=$!
    timeout 10 bash -c "until redis-cli -p $port ping > /dev/null 2>&1; do sleep 0.1; done"
    # A short warm-up, so that pooled threads exist before counting.
    redis-benchmark -p "$port" -t ping -c 50 -n 2000 -k "$keepalive" -q > /dev/null 2>&1
    switches_before=$(switches "$pid"); ticks_before=$(cpu_ticks "$pid")
    rate=$(timeout 120 redis-benchmark -p "$port" -t ping -c 50 -n "$requests" -k "$keepalive" -q 2> /dev/null \
        | tr '\r' '\n' | grep -oE 'PING_MBULK: [0-9.]+' | tail -1)
    switches_after=$(switches "$pid"); ticks_after=$(cpu_ticks "$pid")
    # redis-benchmark -t ping runs PING_INLINE and PING_MBULK: 2 × requests in all.
    awk -v c="$candidate" -v r="$rate" -v s=$((switches_after - switches_before)) \
        -v t=$((ticks_after - ticks_before)) -v n=$((2 * requests)) \
        'BEGIN { printf "%-9s %s req/s; %.2f context switches and %.1f µs of relay CPU per request\n", c, r, s / n, t * 10000 / n }'
    kill "$pid"; wait "$pid" 2> /dev/null || true
done
