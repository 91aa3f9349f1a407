#!/usr/bin/env python3
"""tests/bench/idle_memory.py: where an idle tcprelay connection's memory goes.

Starts target/release/tcprelay with the given flags in front of a holding upstream, opens N
connections through it, makes one 4-byte exchange each way on each (so every copy has read
once), then reads the relay's /proc: resident KiB per connection, and the resident size of
each thread stack (the mappings of exactly --stack-size bytes).

Usage: tests/bench/idle_memory.py [-n 1000] [-w SECONDS] [TCPRELAY FLAGS...]
  -w: how long the connections sit idle before /proc is read (default 1)
  e.g. tests/bench/idle_memory.py --buffer-size 64k
Loopback only; needs `cargo build --release` first. Python 3 standard library only.

TCPRELAY=PATH runs another build (tests/targets.sh: a cross-built one, started under qemu-user
by binfmt_misc). Then the process is also the emulator: "own" counts only the relay's own
anonymous, heap and stack mappings, and under qemu only those below qemu's image (qemu puts
the guest at guest base 0, in low memory; its own heap and code buffer are mapped high).
"""
import os
import collections
import re
import socket
import subprocess
import sys
import threading
import time

args = sys.argv[1:]
count = 1000
wait = 1.0
while args[:1] in (["-n"], ["-w"]):
    if args[0] == "-n":
        count = int(args[1])
    else:
        wait = float(args[1])
    args = args[2:]
stack_kib = 64
if "--stack-size" in args:
    stack_kib = int(args[args.index("--stack-size") + 1].rstrip("k"))

upstream = socket.socket()
upstream.bind(("127.0.0.1", 0))
upstream.listen(4096)
held = []
threading.Thread(target=lambda: [held.append(upstream.accept()[0]) for _ in range(count)], daemon=True).start()

relay = subprocess.Popen(
    [os.environ.get("TCPRELAY", "target/release/tcprelay"), "-l", "127.0.0.1:0", "-u", "127.0.0.1:%d" % upstream.getsockname()[1],
     "--log-level", "warn", "--max-connections", str(count + 10)] + args,
    stderr=subprocess.PIPE, text=True)
try:
    host, port = re.search(r"listening on ([\d.]+):(\d+)", relay.stderr.readline()).groups()

    def rss_kib():
        return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % relay.pid).read()).group(1))

    def own_kib():
        """(resident KiB, KiB of address space) of the relay's own anonymous mappings; the
        address space leaves out PROT_NONE ones (guard pages, qemu's reservation)."""
        exe = os.readlink("/proc/%d/exe" % relay.pid)
        mappings = []  # [start, end, perms, path, rss]
        for line in open("/proc/%d/smaps" % relay.pid):
            mapping = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)", line)
            if mapping:
                start, end, perms, path = mapping.groups()
                mappings.append([int(start, 16), int(end, 16), perms, path, 0])
            elif line.startswith("Rss:"):
                mappings[-1][4] = int(line.split()[1])
        limit = 1 << 64
        if os.path.basename(exe).startswith("qemu-"):
            limit = min(start for start, _, _, path, _ in mappings if path == exe)
        own = [m for m in mappings if m[0] < limit and m[3] in ("", "[heap]", "[stack]")]
        return (sum(m[4] for m in own),
                sum((m[1] - m[0]) // 1024 for m in own if m[2] != "---p"))

    def proc_count(what):
        if what == "fds":
            return len(os.listdir("/proc/%d/fd" % relay.pid))
        return int(re.search(r"Threads:\s+(\d+)", open("/proc/%d/status" % relay.pid).read()).group(1))

    time.sleep(0.3)
    before = rss_kib()
    own_before, fds_before, threads_before = own_kib(), proc_count("fds"), proc_count("threads")
    clients = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
    deadline = time.time() + 30
    while len(held) < count and time.time() < deadline:
        time.sleep(0.05)
    assert len(held) == count, "only %d of %d connections reached the upstream" % (len(held), count)
    for client in clients:
        client.sendall(b"ping")
    for server in held:
        server.settimeout(10)
        assert server.recv(4) == b"ping"
        server.sendall(b"pong")
    for client in clients:
        assert client.recv(4) == b"pong"
    time.sleep(wait)
    print("flags %s: %.1f KiB resident per connection (%d connections, %.1f s after the exchange)"
          % (" ".join(args) or "(defaults)", (rss_kib() - before) / count, count, wait))
    own_after = own_kib()
    print("own: %.1f KiB per connection resident in the relay's own mappings, %.1f KiB of address"
          " space, %.2f descriptors, %.2f threads"
          % ((own_after[0] - own_before[0]) / count, (own_after[1] - own_before[1]) / count,
             (proc_count("fds") - fds_before) / count,
             (proc_count("threads") - threads_before) / count))

    stacks = collections.Counter()
    size = None
    for line in open("/proc/%d/smaps" % relay.pid):
        mapping = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
        if mapping:
            size = (int(mapping.group(2), 16) - int(mapping.group(1), 16)) // 1024
        elif line.startswith("Rss:") and size == stack_kib:
            stacks[int(line.split()[1])] += 1
    print("thread stacks by resident KiB: %s" % ", ".join("%d KiB x %d" % kv for kv in sorted(stacks.items())))
finally:
    relay.kill()
