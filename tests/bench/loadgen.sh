# Sourced by the bench scripts (ab.sh, connection_switches.sh, latency_held.sh, peers.sh,
# udp.sh): the helpers they share.

# Builds the release relay and a load generator (the bench target $2, default `relay`:
# tests/bench/relay.rs; `udp`: tests/bench/udp_loadgen.rs), and prints the load
# generator's path. $1 names the calling script in the error.
build_relay_and_loadgen() {
    local bench=${2:-relay}
    cargo build --release --bin tcprelay >&2
    local path
    path=$(cargo bench --bench "$bench" --no-run --message-format=json \
        | jq -r --arg bench "$bench" \
            'select(.reason == "compiler-artifact" and .target.name == $bench
                    and (.target.kind | index("bench")) and .executable != null) | .executable' \
        | tail -n 1)
    [[ -x $path ]] || { echo "$1: could not find the load generator" >&2; return 1; }
    echo "$path"
}

# Stops a peer started with setsid: its process group holds it and everything it
# forked (socat's per-connection children, nginx's workers). TERM first, KILL what
# is left after 5 s.
stop_group() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for (( i = 0; i < 50; i++ )); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Puts the markdown in file $3 into file $1 between the lines containing
# `<!-- $2 results: begin` and `<!-- $2 results: end` (the section itself starts
# and ends with those lines), keeping everything around it; appends it if the
# markers are not there yet. $4 is a scratch file.
replace_results_section() {
    local out=$1 name=$2 section=$3 scratch=$4
    mkdir -p "$(dirname "$out")"
    if [[ -f $out ]] && grep -q "<!-- $name results: begin" "$out"; then
        awk -v section="$section" -v begin="<!-- $name results: begin" -v end="<!-- $name results: end" '
            index($0, begin) { while ((getline line < section) > 0) print line; skipping = 1; next }
            index($0, end) { skipping = 0; next }
            !skipping { print }
        ' "$out" > "$scratch"
    else
        { [[ -f $out ]] && { cat "$out"; echo; }; cat "$section"; } > "$scratch"
    fi
    cat "$scratch" > "$out"
}
