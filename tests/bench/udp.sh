#!/usr/bin/env bash
# tests/bench/udp.sh: UDP through tcprelay against the relays a user would pick
# instead, on loopback, and the tables of docs/benchmarks.md ("UDP").
#
# Candidates: direct (no relay: the load generator's own echo, the limit),
# tcprelay with its defaults (`-l udp:…`), socat-recvfrom
# (`UDP4-RECVFROM:…,fork UDP4-SENDTO:…`, a process per datagram), socat-listen
# (`UDP4-LISTEN:…,fork,reuseaddr UDP4:…`, a process per client; without fork
# it serves its first client only), nginx `stream` (`listen … udp`).
# Workloads (tests/bench/udp_loadgen.rs): datagrams per second and loss for 1
# and 16 flows of 64 and 1,400 bytes, as fast as each relay goes (a window of
# 32 unanswered datagrams per flow) and at one offered rate for all; DNS
# round trips to dnsmasq (one socket, and a new socket per query like dig);
# memory per idle flow (1,000 flows).
#
# Method: every candidate is started fresh for every measurement and stopped
# afterwards; candidates are interleaved (their order rotates every round);
# each cell is the median of the rounds. The machine's 1-minute load average
# is recorded with every run and printed under each table.
#
# Usage: tests/bench/udp.sh [--quick] [--rounds N] [--secs S] [--rate PPS]
#            [--out FILE] [--candidates "tcprelay nginx ..."] [--no-install] [--keep]
#   --quick       smoke test: 1 round, 0.5 s floods, 300 DNS queries, 200 idle
#                 flows; the section is marked as a smoke test
#   --rounds N    rounds (default 3)
#   --secs S      seconds per flood (default 2)
#   --rate PPS    the offered rate of the loss table, all flows together
#                 (default 20000)
#   --out FILE    markdown file whose `udp.sh results` section is replaced
#                 (default docs/benchmarks.md)
#   --candidates  a subset, space-separated (default: all, in the order above)
#   --no-install  do not run apt-get (fail if a tool is missing)
#   --keep        keep the temporary directory (configs, logs, raw results)
#   TCPRELAY_BIN=path measures another tcprelay build; TCPRELAY_FLAGS adds
#   options to tcprelay's command line (later flags win).
#
# Run it at normal priority (it is a measurement); the machine's load is in
# the report. Needs root for apt-get. Every run is bounded by `timeout`; every
# peer is killed on exit. Only 127.0.0.1 is used.
set -euo pipefail

readonly ALL_CANDIDATES="direct tcprelay socat-recvfrom socat-listen nginx"
readonly PACKAGES=(socat nginx libnginx-mod-stream dnsmasq jq)

quick=0
rounds=3
secs=2
rate=20000
out=docs/benchmarks.md
candidates=$ALL_CANDIDATES
install=1
keep=0
command_line="tests/bench/udp.sh $*"

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1 ;;
        --rounds)
            [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "udp.sh: --rounds '${2:-}': expected 1 to 99" >&2; exit 2; }
            rounds=$2; shift ;;
        --secs)
            [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "udp.sh: --secs '${2:-}': expected seconds, e.g. 2 or 0.5" >&2; exit 2; }
            secs=$2; shift ;;
        --rate)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "udp.sh: --rate '${2:-}': expected datagrams per second, e.g. 20000" >&2; exit 2; }
            rate=$2; shift ;;
        --out)
            [[ -n ${2:-} ]] || { echo "udp.sh: --out needs a file" >&2; exit 2; }
            out=$2; shift ;;
        --candidates)
            [[ -n ${2:-} ]] || { echo "udp.sh: --candidates needs a list" >&2; exit 2; }
            for c in $2; do
                [[ " $ALL_CANDIDATES " == *" $c "* ]] || { echo "udp.sh: --candidates: unknown candidate '$c' (known: $ALL_CANDIDATES)" >&2; exit 2; }
            done
            candidates=$2; shift ;;
        --no-install) install=0 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "udp.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/../.."
source tests/bench/loadgen.sh

dns_queries=2000 dig_queries=1000 idle_flows=1000
if (( quick )); then
    rounds=1 secs=0.5 dns_queries=300 dig_queries=200 idle_flows=200
fi

log() { printf '[udp %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools ------------------------------------------------------------------

missing_tools() {
    local tool missing=""
    for tool in socat nginx dnsmasq jq; do
        command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || missing+=" $tool"
    done
    [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || missing+=" nginx-stream-module"
    echo "$missing"
}

if [[ -n $(missing_tools) ]]; then
    (( install )) || { echo "udp.sh: missing:$(missing_tools); run without --no-install" >&2; exit 1; }
    log "installing$(missing_tools) with apt-get"
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${PACKAGES[@]}" >&2
    [[ -z $(missing_tools) ]] || { echo "udp.sh: still missing:$(missing_tools)" >&2; exit 1; }
fi
PATH=$PATH:/usr/sbin

# Each flow is a socket on both sides; 1,000 idle flows need more than the usual 1,024.
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)

# --- work directory and cleanup -----------------------------------------------

work=$(mktemp -d /tmp/tcprelay-udp.XXXXXX)
results=$work/results.txt
: > "$results"
background_pids=()   # the echo and dnsmasq
candidate_pid=""

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

log "building tcprelay (release) and the UDP load generator"
gen=$(build_relay_and_loadgen udp.sh udp)
tcprelay_bin=${TCPRELAY_BIN:-$PWD/target/release/tcprelay}

# --- upstreams --------------------------------------------------------------------

setsid "$gen" echo --for 7200 > "$work/echo.out" 2> "$work/echo.err" < /dev/null &
background_pids+=($!)
for _ in $(seq 100); do [[ -s $work/echo.out ]] && break; sleep 0.05; done
echo_addr=$(sed -n 's/^udp-echo=//p' "$work/echo.out")
[[ -n $echo_addr ]] || { echo "udp.sh: the echo server did not start: $(cat "$work/echo.err")" >&2; exit 1; }

# dnsmasq answers bench.test from its own configuration: no resolver, no
# hosts file, no query leaves the machine. It drops root for nobody.
dns_addr=127.0.0.1:$("$gen" free-port)
setsid dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --bind-interfaces --listen-address=127.0.0.1 --port="${dns_addr##*:}" \
    --address=/bench.test/127.0.0.1 --pid-file="$work/dnsmasq.pid" \
    > "$work/dnsmasq.err" 2>&1 < /dev/null &
background_pids+=($!)
dns_ready() {  # ADDR: one query answered within about 10 s
    local i
    for (( i = 0; i < 100; i++ )); do
        # Refused (nothing listening yet) returns at once, a lost query after 1 s.
        "$gen" dns --target "$1" --queries 1 2> /dev/null | grep -q ' answered=1 ' && return 0
        sleep 0.1
    done
    return 1
}
dns_ready "$dns_addr" || { echo "udp.sh: dnsmasq did not answer: $(cat "$work/dnsmasq.err")" >&2; exit 1; }
log "upstreams: echo $echo_addr, dnsmasq $dns_addr"

# --- candidates -------------------------------------------------------------------

write_nginx_config() {  # FILE PORT UPSTREAM
    cat > "$1" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes auto;
worker_rlimit_nofile $fd_limit;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events {
    # Each UDP session holds two connections; the default of 512 would cap
    # the idle workload, not measure it.
    worker_connections 20000;
}
stream {
    server {
        listen 127.0.0.1:$2 udp;
        proxy_pass $3;
    }
}
EOF
}

# Starts candidate $1 in front of upstream $2; sets candidate_addr and
# candidate_pid (empty for direct). Returns 1 if it does not relay within 10 s.
start_candidate() {
    local name=$1 up=$2 port
    candidate_pid=""
    if [[ $name == direct ]]; then
        candidate_addr=$up
        return
    fi
    port=$("$gen" free-port)
    candidate_addr=127.0.0.1:$port
    local err=$work/$name.err
    case $name in
        tcprelay)
            # The defaults, as a user would run it (info level: a line per
            # flow, to a file), except the flow limit: its default of 500 would
            # turn the 1,000 idle flows (and dig's 1,000 sockets, each a flow
            # for udp-idle-timeout) into drops, not a measurement, so it gets
            # 4,000, as peers.sh raises --max-connections and nginx gets
            # worker_connections. TCPRELAY_FLAGS adds options.
            local extra=()
            read -r -a extra <<< "${TCPRELAY_FLAGS:-}"
            setsid "$tcprelay_bin" -l "udp:$candidate_addr" -u "$up" --max-flows 4000 "${extra[@]}" \
                2>> "$err" < /dev/null & ;;
        socat-recvfrom)
            setsid socat "UDP4-RECVFROM:$port,bind=127.0.0.1,fork" "UDP4-SENDTO:$up" \
                2>> "$err" < /dev/null & ;;
        socat-listen)
            setsid socat "UDP4-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UDP4:$up" \
                2>> "$err" < /dev/null & ;;
        nginx)
            write_nginx_config "$work/nginx.conf" "$port" "$up"
            setsid nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" \
                2>> "$err" < /dev/null & ;;
    esac
    candidate_pid=$!
    local ready
    if [[ $up == "$dns_addr" ]]; then
        dns_ready "$candidate_addr" && ready=1 || ready=0
    else
        "$gen" wait-ready --target "$candidate_addr" --timeout 10 2>> "$err" && ready=1 || ready=0
    fi
    if (( ! ready )); then
        log "$name did not relay within 10 s; its stderr ends:"
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

# --- measurements -------------------------------------------------------------------

# One spec per line: the upstream it needs, then the load generator's arguments.
specs=()
for flows in 1 16; do
    for size in 64 1400; do
        specs+=("echo flood --flows $flows --size $size --secs $secs")
    done
done
for flows in 1 16; do
    for size in 64 1400; do
        specs+=("echo flood --flows $flows --size $size --secs $secs --rate $rate")
    done
done
specs+=("dns dns --sockets one --queries $dns_queries")
specs+=("dns dns --sockets per-query --queries $dig_queries")
specs+=("echo idle --flows $idle_flows")

read -r -a candidate_list <<< "$candidates"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
for (( round = 1; round <= rounds; round++ )); do
    # Rotate the order every round, so no candidate always runs first or last.
    n=${#candidate_list[@]}
    order=()
    for (( i = 0; i < n; i++ )); do order+=("${candidate_list[(i + round - 1) % n]}"); done
    log "round $round of $rounds: ${order[*]}"
    for spec in "${specs[@]}"; do
        read -r upstream_kind args <<< "$spec"
        up=$echo_addr
        [[ $upstream_kind == dns ]] && up=$dns_addr
        for name in "${order[@]}"; do
            [[ $args == idle* && $name == direct ]] && continue  # no relay process to measure
            # The workload's shape as result fields, so a failed run lands in its row:
            # `flood --flows 16 --rate 20000` → `workload=flood flows=16 offered_pps=20000 mode=rate`.
            shape=$(sed -E 's/^([a-z]+)/workload=\1/; s/--rate/--offered_pps/; s/--([a-z_]+) ([^ ]+)/\1=\2/g' <<< "$args")
            if [[ $args == flood* ]]; then
                if [[ $args == *--rate* ]]; then shape+=" mode=rate"; else shape+=" mode=window"; fi
            fi
            prefix="round=$round candidate=$name"
            if ! start_candidate "$name" "$up"; then
                echo "$prefix bench-result $shape ok=false error=did not start" >> "$results"
                continue
            fi
            extra=()
            # The relay's process: idle reads its memory, a windowed flood its CPU and switches.
            [[ -n $candidate_pid && ($args == idle* || ($args == flood* && $args != *--rate*)) ]] \
                && extra=(--relay-pid "$candidate_pid")
            # shellcheck disable=SC2086 # $args is one word per argument
            line=$(timeout 120 "$gen" $args --target "$candidate_addr" "${extra[@]}" 2>> "$work/gen.err" \
                | grep bench-result || true)
            [[ -n $line ]] || line="bench-result $shape ok=false error=timed out or crashed"
            echo "$prefix load1=$(cut -d' ' -f1 /proc/loadavg) $line" >> "$results"
            stop_candidate
        done
    done
done
elapsed=$(( $(date +%s) - started ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
log "measured in ${elapsed}s"

# --- the report ------------------------------------------------------------------

tables=$("$gen" summarize "$results")
failures=$(grep -c 'ok=false' "$results" || true)
version() { "$@" 2>&1 | head -n 1; }
section=$work/section.md
{
    echo "<!-- udp.sh results: begin (generated by tests/bench/udp.sh; edit outside these markers) -->"
    if (( quick )); then
        echo "### UDP results: smoke test only (\`--quick\`)"
        echo
        echo "**Not a measurement**: one round of short runs."
    else
        echo "### UDP results"
    fi
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); measured in ${elapsed} s, ${rounds} round(s), ${secs} s per flood; $failures failed run(s)."
    echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), Linux $(uname -r); load average $load_before before, $load_after after: **shared with other builds**, see the load under each table."
    echo "- Command: \`$command_line\`"
    echo "- tcprelay $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo '+local changes') (release profile, defaults but \`--max-flows 4000\`${TCPRELAY_FLAGS:+, flags \`$TCPRELAY_FLAGS\`}), $(version rustc --version)"
    echo "- Peers: $(socat -V 2>&1 | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'), $(version nginx -v | sed 's/.*: //') (\`stream\`, \`worker_processes auto\`), $(version dnsmasq --version | cut -d' ' -f1-3) upstream for DNS."
    echo
    echo "$tables"
    echo
    echo "Each cell: the median over rounds (min–max where they differ). \`–\`: not applicable (no relay process to measure for direct)."
    echo "<!-- udp.sh results: end -->"
} > "$section"

replace_results_section "$out" udp.sh "$section" "$work/out.md"
log "wrote $out ($failures failed runs)$( (( keep )) && echo "; raw result lines in $results")"
echo "$tables"
