#!/usr/bin/env bash
# tests/bench/peers.sh: benchmark tcprelay against the relays a user would pick
# instead, on loopback, and write the table into docs/benchmarks.md.
#
# Candidates: direct (no relay: the physical limit), tcprelay, the corrected Go
# proxy of the seed article, socat, HAProxy `mode tcp` (and with
# `option splice-auto`), nginx `stream`. Workloads: those of the load generator
# (tests/bench/relay.rs: bulk, ping-pong, keep-alive, connection rate, idle
# connections, CPU per GiB) plus the real clients iperf3 and redis-benchmark.
#
# Method: every candidate is started fresh for every measurement, pointed at
# the upstream that workload needs, and stopped afterwards; candidates are
# interleaved (their order rotates every round) and each figure is the median
# of the rounds with the min–max range.
#
# Usage: tests/bench/peers.sh [--quick] [--rounds N] [--out FILE]
#            [--candidates "tcprelay socat ..."] [--workloads REGEX]
#            [--idle "1000 10000"] [--no-install] [--keep]
#   --quick       smoke test: 1 round, short runs, 1,000 idle connections only;
#                 the table is marked as a smoke test
#   --rounds N    rounds of the full run (default 3)
#   --out FILE    markdown file whose results section is replaced
#                 (default docs/benchmarks.md)
#   --candidates  a subset, space-separated, in the order above (default: all
#                 but tcprelay-8k, tcprelay with --buffer-size 8k)
#   --workloads   only the workload specs matching this bash regex, e.g.
#                 '^(bulk|iperf3)' (specs: bulk-up --streams 1, ping-pong,
#                 keep-alive, connection-rate, idle, idle-after-bulk,
#                 iperf3-*, redis-*)
#   --idle        idle connection counts (default "10 1000 10000", quick "1000");
#                 idle-after-bulk always holds 2,000, a quarter of them first
#                 moving 4 MiB each way
#   --no-install  do not run apt-get (fail if a tool is missing)
#   --keep        keep the temporary directory (configs, logs, raw results)
#
# Needs root for apt-get. Every run is bounded by `timeout`; every peer is
# killed on exit. Only 127.0.0.1 is used.
set -euo pipefail

readonly ALL_CANDIDATES="direct tcprelay tcprelay-8k go socat haproxy haproxy-splice nginx"
# tcprelay-8k (the copy buffer never grows: the old default, a plain io::copy) only on request.
readonly DEFAULT_CANDIDATES="direct tcprelay go socat haproxy haproxy-splice nginx"
readonly PACKAGES=(socat haproxy nginx libnginx-mod-stream golang-go iperf3 redis-server redis-tools jq)

quick=0
rounds=3
out=docs/benchmarks.md
candidates=$DEFAULT_CANDIDATES
workload_filter=""
idle_override=""
install=1
keep=0
command_line="tests/bench/peers.sh $*"

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1 ;;
        --rounds)
            [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "peers.sh: --rounds ${2:-}: expected 1 to 99" >&2; exit 2; }
            rounds=$2; shift ;;
        --out)
            [[ -n ${2:-} ]] || { echo "peers.sh: --out needs a file" >&2; exit 2; }
            out=$2; shift ;;
        --candidates)
            for c in ${2:-}; do
                [[ " $ALL_CANDIDATES " == *" $c "* ]] || { echo "peers.sh: --candidates: unknown candidate '$c' (known: $ALL_CANDIDATES)" >&2; exit 2; }
            done
            [[ -n ${2:-} ]] || { echo "peers.sh: --candidates needs a list" >&2; exit 2; }
            candidates=$2; shift ;;
        --workloads)
            [[ -n ${2:-} ]] || { echo "peers.sh: --workloads needs a regex" >&2; exit 2; }
            workload_filter=$2; shift ;;
        --idle)
            [[ ${2:-} =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] || { echo "peers.sh: --idle '${2:-}': expected counts like \"1000 10000\"" >&2; exit 2; }
            idle_override=$2; shift ;;
        --no-install) install=0 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "peers.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/../.."
repo=$PWD

if (( quick )); then
    rounds=1
    secs=1              # measured window of each timed workload
    redis_n=5000        # requests per redis-benchmark run
    idle_counts="1000"
else
    secs=2
    redis_n=50000
    idle_counts="10 1000 10000"
fi
[[ -n $idle_override ]] && idle_counts=$idle_override

log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools ------------------------------------------------------------------

missing_tools() {
    local tool missing=""
    for tool in socat haproxy nginx go iperf3 redis-server redis-benchmark jq; do
        command -v "$tool" >/dev/null || missing+=" $tool"
    done
    [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || missing+=" nginx-stream-module"
    echo "$missing"
}

if [[ -n $(missing_tools) ]]; then
    (( install )) || { echo "peers.sh: missing:$(missing_tools); run without --no-install" >&2; exit 1; }
    log "installing$(missing_tools) with apt-get"
    # Other processes may hold the apt lock for a while: wait rather than fail.
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${PACKAGES[@]}" >&2
    [[ -z $(missing_tools) ]] || { echo "peers.sh: still missing:$(missing_tools)" >&2; exit 1; }
fi

# --- descriptors ----------------------------------------------------------------
# A relay holds two descriptors per connection (client side and upstream side).
# Raise the soft limit to the hard one; the hard limit needs CAP_SYS_RESOURCE to
# raise, so when it is below ~20,100 the largest idle count shrinks to fit and
# the table says so (the row shows the real count).
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
if [[ $fd_limit != unlimited ]]; then
    fit=$(( (fd_limit - 300) / 2 ))  # room for listeners, logs, pipes
    new_counts=""
    for n in $idle_counts; do
        if (( n > fit )); then
            log "RLIMIT_NOFILE is $fd_limit: idle $n becomes $fit (two descriptors per relayed connection)"
            n=$fit
        fi
        new_counts+="$n "
    done
    idle_counts=${new_counts% }
fi

# --- memory maps ----------------------------------------------------------------
# Each tcprelay connection costs about 8 memory maps (two thread stacks and std's
# two signal stacks, each with a guard page); at the default vm.max_map_count of
# 65,530 tcprelay caps itself at 7,058 connections rather than let std abort.
# Raise the limit for the largest idle count, as we raise RLIMIT_NOFILE above
# (root only; without it the idle row shows what the cap allowed).
if [[ $(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0) -lt 262144 ]]; then
    if sysctl -q -w vm.max_map_count=262144 2>/dev/null; then
        log "raised vm.max_map_count to 262144 for the idle workload"
    else
        log "cannot raise vm.max_map_count: tcprelay holds at most ~7,000 connections"
    fi
fi

# --- work directory and cleanup -----------------------------------------------

work=$(mktemp -d /tmp/tcprelay-peers.XXXXXX)
results=$work/results.txt
: > "$results"
background_pids=()   # long-lived helpers: upstreams, iperf3, redis
candidate_pid=""

# stop_group (tests/bench/loadgen.sh) stops each peer: it runs in its own session.
source tests/bench/loadgen.sh

cleanup() {
    local status=$?
    [[ -n $candidate_pid ]] && stop_group "$candidate_pid"
    local pid
    for pid in "${background_pids[@]}"; do stop_group "$pid"; done
    if (( keep )); then log "kept $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ------------------------------------------------------------------------

log "building tcprelay (release) and the load generator"
bench_bin=$(build_relay_and_loadgen peers.sh)
tcprelay_bin=$repo/target/release/tcprelay

go_bin=$work/go-correct
go_source=docs/go/correct/main.go
(cd docs/go && go build -o "$go_bin" ./correct)
log "Go program: $go_source"

# --- upstreams --------------------------------------------------------------------

start_background() {  # NAME COMMAND...: run in its own session, remember it
    local name=$1; shift
    setsid "$@" > "$work/$name.out" 2> "$work/$name.err" < /dev/null &
    background_pids+=("$!")
}

start_background upstreams "$bench_bin" serve --for 7200
for (( i = 0; i < 100; i++ )); do
    grep -q '^upstreams ' "$work/upstreams.out" 2>/dev/null && break
    sleep 0.1
done
upstream_line=$(grep '^upstreams ' "$work/upstreams.out") \
    || { echo "peers.sh: the upstreams did not start: $(cat "$work/upstreams.err")" >&2; exit 1; }
declare -A upstream
for field in ${upstream_line#upstreams }; do
    upstream[${field%%=*}]=${field#*=}
done

iperf_port=$("$bench_bin" free-port)
start_background iperf3 iperf3 --server --bind 127.0.0.1 --port "$iperf_port"
"$bench_bin" wait-listening --port "$iperf_port"
upstream[iperf3]=127.0.0.1:$iperf_port

redis_port=$("$bench_bin" free-port)
start_background redis redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
    --appendonly no --daemonize no --dir "$work" --maxclients 20000
"$bench_bin" wait-listening --port "$redis_port"
upstream[redis]=127.0.0.1:$redis_port

# --- candidates -----------------------------------------------------------------

write_haproxy_config() {  # FILE PORT UPSTREAM SPLICE(0|1)
    # HAProxy sizes itself from maxconn: two descriptors per connection, plus
    # two per splice pipe. It refuses to start when that exceeds
    # RLIMIT_NOFILE, so maxconn is what the limit allows, and splicing gets a
    # small pool of pipes (they are only held while data is moving).
    local pipes=0
    (( $4 )) && pipes=64
    local maxconn=$(( (fd_limit - 100) / 2 - pipes ))
    {
        echo "global"
        echo "    maxconn $maxconn"
        (( $4 )) && echo "    maxpipes $pipes"
        echo "defaults"
        echo "    mode tcp"
        echo "    maxconn $maxconn"
        echo "    timeout connect 5s"
        echo "    timeout client 1h"
        echo "    timeout server 1h"
        (( $4 )) && echo "    option splice-auto"
        echo "frontend relay"
        echo "    bind 127.0.0.1:$2"
        echo "    default_backend upstream"
        echo "backend upstream"
        echo "    server upstream $3"
    } > "$1"
}

write_nginx_config() {  # FILE PORT UPSTREAM
    cat > "$1" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes auto;
worker_rlimit_nofile $fd_limit;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events {
    worker_connections 20000;
}
stream {
    server {
        listen 127.0.0.1:$2;
        proxy_pass $3;
        proxy_timeout 1h;
        # Off by default: nginx then closes both directions at the first EOF,
        # and a client that half-closes never gets its reply (the upload
        # workload fails). On is what a relay must do; measure that.
        proxy_half_close on;
    }
}
EOF
}

# Starts candidate $1 in front of upstream address $2; sets candidate_addr and
# candidate_pid (empty for direct).
start_candidate() {
    local name=$1 up=$2 port
    if [[ $name == direct ]]; then
        candidate_addr=$up
        candidate_pid=""
        return
    fi
    port=$("$bench_bin" free-port)
    candidate_addr=127.0.0.1:$port
    local err=$work/$name.err
    case $name in
        tcprelay|tcprelay-8k)
            # tcprelay-8k: the same with --buffer-size 8k, a copy buffer that
            # never grows (the old default, a plain io::copy), for before/after runs.
            # Default settings, as a user would run it (info level: a log line
            # per connection, to a file), except the connection limit: its
            # default of 500 would keep idle clients waiting in the backlog, so
            # it gets what the descriptor limit allows, like HAProxy's maxconn.
            # TCPRELAY_FLAGS adds options (later flags win).
            local flags=()
            [[ $name == tcprelay-8k ]] && flags+=(--buffer-size 8k)
            local extra=()
            read -r -a extra <<< "${TCPRELAY_FLAGS:-}"
            flags+=("${extra[@]}")
            setsid "$tcprelay_bin" --listen "$candidate_addr" --upstream "$up" \
                --max-connections $(( (fd_limit - 100) / 2 )) \
                "${flags[@]}" 2>> "$err" < /dev/null & ;;
        go)
            setsid "$go_bin" -listen "$candidate_addr" -upstream "$up" 2>> "$err" < /dev/null & ;;
        socat)
            # fork: a process per connection, the classic one-liner. backlog:
            # socat's default of 5 would drop SYNs under the connection-rate load.
            setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr,backlog=4096" \
                "TCP:$up" 2>> "$err" < /dev/null & ;;
        haproxy|haproxy-splice)
            local config=$work/$name.cfg splice=0
            [[ $name == haproxy-splice ]] && splice=1
            write_haproxy_config "$config" "$port" "$up" "$splice"
            setsid haproxy -db -f "$config" 2>> "$err" < /dev/null & ;;
        nginx)
            local config=$work/nginx.conf
            write_nginx_config "$config" "$port" "$up"
            setsid nginx -p "$work" -c "$config" -e "$work/nginx-error.log" 2>> "$err" < /dev/null & ;;
    esac
    candidate_pid=$!
    if ! "$bench_bin" wait-listening --port "$port" --timeout 10; then
        echo "peers.sh: $name did not start; its stderr:" >&2
        tail -n 5 "$err" >&2
        stop_candidate
        return 1
    fi
}

stop_candidate() {
    if [[ -n $candidate_pid ]]; then
        stop_group "$candidate_pid"
        candidate_pid=""
    fi
}

# --- one measurement --------------------------------------------------------------

record() {  # CANDIDATE ROUND LINE
    echo "candidate=$1 round=$2 $3" >> "$results"
    printf '  %-15s %s\n' "$1" "${3#bench-result }" >&2
}

# A workload spec is its name and its arguments, e.g. "bulk-up --streams 4".
# Load-generator workloads need the upstream `upstream-for` names; iperf3 and
# redis-benchmark workloads use those servers.
measure() {  # CANDIDATE ROUND SPEC...
    local cand=$1 round=$2 workload=$3
    shift 3
    local kind up line status
    case $workload in
        iperf3-*) kind=iperf3 ;;
        redis-*) kind=redis ;;
        *) kind=$("$bench_bin" upstream-for "$workload") ;;
    esac
    up=${upstream[$kind]}
    # Shape fields, so a failure lands in the right row of the table.
    local shape="" redis_args=()
    [[ $# -ge 2 ]] && shape="${1#--}=$2"
    case $workload in
        redis-ping) redis_args=(-c 1 -n $(( redis_n / 5 ))); shape="clients=1" ;;
        redis-keep-alive) redis_args=(-c 50 -n "$redis_n"); shape="clients=50" ;;
        redis-connection-rate) redis_args=(-c 50 -k 0 -n $(( redis_n / 5 ))); shape="clients=50" ;;
    esac
    if ! start_candidate "$cand" "$up"; then
        record "$cand" "$round" "bench-result workload=$workload $shape ok=false error=did not start"
        return
    fi
    status=0
    case $workload in
        iperf3-up|iperf3-down)
            local reverse=""
            [[ $workload == iperf3-down ]] && reverse=--reverse
            local json=$work/iperf3.json
            timeout $(( secs + 30 )) iperf3 --client 127.0.0.1 --port "${candidate_addr##*:}" \
                --time "$secs" $reverse --json > "$json" 2>&1 || status=$?
            local bps
            bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$json" 2>/dev/null || true)
            if (( status == 0 )) && [[ -n $bps ]]; then
                line="bench-result workload=$workload gbit_s=$(awk -v b="$bps" 'BEGIN{printf "%.3f", b/1e9}') ok=true"
            else
                line="bench-result workload=$workload ok=false error=iperf3 exit $status: $(jq -r '.error // empty' "$json" 2>/dev/null | head -c 200)"
            fi ;;
        redis-*)
            local csv=$work/redis.csv
            timeout 120 redis-benchmark -h 127.0.0.1 -p "${candidate_addr##*:}" "${redis_args[@]}" \
                -t ping --csv > "$csv" 2> "$work/redis.err" || status=$?
            # --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
            # "p95_latency_ms","p99_latency_ms","max_latency_ms"; PING_MBULK is the
            # ordinary (multi-bulk) PING.
            local row
            row=$(grep '^"PING_MBULK"' "$csv" | tr -d '"' || true)
            if (( status == 0 )) && [[ -n $row ]]; then
                IFS=, read -r _ rps _ _ p50 _ p99 _ <<< "$row"
                line="bench-result workload=$workload $shape rps=$rps p50_ms=$p50 p99_ms=$p99 ok=true"
            else
                line="bench-result workload=$workload $shape ok=false error=redis-benchmark exit $status: $(head -c 200 "$work/redis.err" | tr '\n' ' ')"
            fi ;;
        *)
            line=$(timeout $(( secs + 120 )) "$bench_bin" run --workload "$workload" \
                --target "$candidate_addr" --secs "$secs" "$@" \
                ${candidate_pid:+--relay-pid "$candidate_pid"} 2>> "$work/run.err") || status=$?
            line=$(grep '^bench-result' <<< "$line" || true)
            [[ -n $line ]] || line="bench-result workload=$workload $shape ok=false error=timed out or crashed (exit $status)" ;;
    esac
    stop_candidate
    record "$cand" "$round" "$line"
    if [[ $line == *ok=false* && $cand != direct && -f $work/$cand.err ]]; then
        # The relay's last words (not its per-connection info lines) say why.
        grep -v 'level=info' "$work/$cand.err" | tail -n 3 | sed 's/^/      /' >&2 || true
    fi
}

workload_specs=(
    "bulk-up --streams 1"
    "bulk-up --streams 4"
    "bulk-down --streams 1"
    "bulk-down --streams 4"
    "ping-pong"
    "keep-alive --connections 50"
    "connection-rate --workers 16"
)
for n in $idle_counts; do workload_specs+=("idle --connections $n"); done
workload_specs+=("idle-after-bulk --connections 2000")
workload_specs+=(iperf3-up iperf3-down redis-ping redis-keep-alive redis-connection-rate)
if [[ -n $workload_filter ]]; then
    selected=()
    for spec in "${workload_specs[@]}"; do
        [[ $spec =~ $workload_filter ]] && selected+=("$spec")
    done
    (( ${#selected[@]} )) || { echo "peers.sh: --workloads '$workload_filter' matches no workload" >&2; exit 2; }
    workload_specs=("${selected[@]}")
fi

read -r -a candidate_list <<< "$candidates"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
for (( round = 1; round <= rounds; round++ )); do
    # Rotate the order each round so no candidate always runs first or last.
    shift_by=$(( (round - 1) % ${#candidate_list[@]} ))
    order=("${candidate_list[@]:shift_by}" "${candidate_list[@]:0:shift_by}")
    for spec in "${workload_specs[@]}"; do
        log "round $round/$rounds: $spec"
        for cand in "${order[@]}"; do
            # Idle connections through no relay have no relay memory, but the
            # kernel's share for the endpoints' own sockets is the baseline of
            # the system-memory rows; 10,000 direct ones would need 20,000
            # descriptors in the load generator, so only the smaller counts.
            [[ $cand == direct && $spec == idle* && ${spec##* } -gt 2000 ]] && continue
            # shellcheck disable=SC2086 # the spec is words on purpose
            measure "$cand" "$round" $spec
        done
    done
done
elapsed=$(( $(date +%s) - started ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
log "measured in ${elapsed}s"

# --- the report ------------------------------------------------------------------

table=$("$bench_bin" summarize "$results")
failures=$(grep -c 'ok=false' "$results" || true)
version() { "$@" 2>&1 | head -n 1; }
section=$work/section.md
{
    echo "<!-- peers.sh results: begin (generated by tests/bench/peers.sh; edit outside these markers) -->"
    if (( quick )); then
        echo "## Results: smoke test only (\`--quick\`)"
        echo
        echo "**Not a measurement**: one round of 1-second runs, taken while the machine may be busy. Run the full script on a quiet machine for numbers."
    else
        echo "## Results"
    fi
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); measured in ${elapsed} s, ${rounds} round(s), ${secs} s per timed run; $failures failed run(s)."
    echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB, Linux $(uname -r); load average $load_before before, $load_after after."
    echo "- Command: \`$command_line\`"
    echo "- tcprelay $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo '+local changes') (release profile${TCPRELAY_FLAGS:+, flags \`$TCPRELAY_FLAGS\`}), $(version rustc --version)"
    echo "- Peers: Go program from \`$go_source\` ($(version go version | cut -d' ' -f3)), $(socat -V 2>&1 | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'), $(version haproxy -v | cut -d' ' -f1-3), $(version nginx -v | sed 's/.*: //'), $(version iperf3 --version | cut -d' ' -f1-2), $(version redis-benchmark --version)"
    echo "- File-descriptor limit: $fd_limit; idle counts: $idle_counts."
    echo
    echo "$table"
    echo
    echo "Each cell: median over rounds (min–max); **bold** is the best relay (direct is the no-relay baseline)."
    echo "\`–\`: not applicable (no relay process to measure for direct)."
    echo "<!-- peers.sh results: end -->"
} > "$section"

replace_results_section "$out" peers.sh "$section" "$work/out.md"
if (( keep )); then
    log "wrote $out ($failures failed runs); raw result lines in $results"
else
    log "wrote $out ($failures failed runs); --keep keeps the raw result lines"
fi
echo "$table"
