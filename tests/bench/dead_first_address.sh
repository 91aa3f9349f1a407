#!/bin/sh
# What a blackholed first address costs each client (docs/operations.md, Happy
# Eyeballs).
#
# A host name that resolves to ::1 first and 127.0.0.1 second; ::1's port is blackholed (a
# listener whose backlog is full: SYNs are dropped), 127.0.0.1's port answers with a banner.
# The relay dials the name for every client; the script prints, for each of 5 clients in
# turn, the time from connect to the first byte through the relay.
#
# No name on a stock machine resolves that way, so the script runs itself in a private
# mount namespace with its own /etc/hosts (needs root and unshare(1)); the machine's hosts
# file is not touched.
#
# Usage: sudo tests/bench/dead_first_address.sh [path/to/tcprelay]   (default: target/release/tcprelay)
set -eu
relay=${1:-target/release/tcprelay}
if [ "${DEAD_FIRST_INSIDE:-}" != 1 ]; then
    hosts=$(mktemp)
    printf '::1 dual.test\n127.0.0.1 dual.test\n' >"$hosts"
    DEAD_FIRST_INSIDE=1 HOSTS_FILE="$hosts" exec unshare -m sh "$0" "$relay"
fi
mount --bind "$HOSTS_FILE" /etc/hosts
getent ahosts dual.test | awk '$2 == "STREAM" { print "dual.test resolves to", $1 }'
python3 - "$relay" <<'EOF'
import socket, subprocess, sys, threading, time

relay = sys.argv[1]

# One port number on both families: ::1 blackholed, 127.0.0.1 live.
while True:
    dead = socket.socket(socket.AF_INET6)
    dead.bind(("::1", 0))
    port = dead.getsockname()[1]
    live = socket.socket()
    try:
        live.bind(("127.0.0.1", port))
        break
    except OSError:
        dead.close(); live.close()
dead.listen(128)
queued = []
while True:  # fill the backlog until a connect goes unanswered
    s = socket.socket(socket.AF_INET6)
    s.settimeout(0.1)
    try:
        s.connect(("::1", port))
        queued.append(s)
    except socket.timeout:
        s.close()
        break
live.listen(128)

def serve():
    while True:
        conn, _ = live.accept()
        conn.sendall(b"hello\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()

proc = subprocess.Popen([relay, "-l", "127.0.0.1:0", "-u", f"dual.test:{port}", "--log-level", "warn"],
                        stderr=subprocess.PIPE, text=True)
line = proc.stderr.readline()
addr = line.split("listening on ")[1].split('"')[0]
host, relay_port = addr.rsplit(":", 1)
print(f"blackholed [::1]:{port} ({len(queued)} queued), live 127.0.0.1:{port}, relay {addr}")
for client in range(1, 6):
    start = time.monotonic()
    c = socket.create_connection((host, int(relay_port)), timeout=10)
    data = c.recv(16)
    took = time.monotonic() - start
    c.close()
    print(f"client {client}: first byte after {took * 1000:.0f} ms ({data!r})")
proc.terminate()
for line in proc.stderr:
    print("  relay:", line.rstrip()[:200])
EOF
