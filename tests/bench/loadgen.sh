# Sourced by the bench scripts (ab.sh, connection_switches.sh, latency_held.sh, peers.sh):
# builds the release relay and the load generator (tests/bench/relay.rs), and prints the
# load generator's path. $1 names the calling script in the error.
build_relay_and_loadgen() {
    cargo build --release --bin tcprelay >&2
    local path
    path=$(cargo bench --bench relay --no-run --message-format=json \
        | jq -r 'select(.reason == "compiler-artifact" and .target.name == "relay"
                        and (.target.kind | index("bench")) and .executable != null) | .executable' \
        | tail -n 1)
    [[ -x $path ]] || { echo "$1: could not find the load generator" >&2; return 1; }
    echo "$path"
}
