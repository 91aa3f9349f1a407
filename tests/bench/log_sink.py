#!/usr/bin/env python3
# The log-sink measurements of docs/reliability.md, section 10 (a log sink that
# stalls or fills must never block the data path).
#   python3 tests/bench/log_sink.py target/release/tcprelay freeze 3000
#       sequential echo clients while the relay's stderr is a pipe nobody reads; prints how
#       many were relayed before one hung (2 s timeout). EXTRA="--max-connections 50" adds flags.
#   python3 tests/bench/log_sink.py target/release/tcprelay deny 20000
#       clients refused by --deny 127.0.0.2 (they connect from 127.0.0.2), then a drain; prints the bytes and lines of log.
# Loopback only, ephemeral ports.
import socket, subprocess, sys, time, threading, os, re
BIN = sys.argv[1]; mode = sys.argv[2]; LOG = "/tmp/tcprelay-deny-storm.log"
def echo_server():
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(512)
    def serve():
        while True:
            c, _ = srv.accept()
            def h(c):
                with c:
                    while True:
                        d = c.recv(65536)
                        if not d: break
                        c.sendall(d)
            threading.Thread(target=h, args=(c,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]
up = echo_server()
if mode == "freeze":
    p = subprocess.Popen([BIN, "-l", "127.0.0.1:0", "-u", f"127.0.0.1:{up}"] + os.environ.get("EXTRA","").split(), stderr=subprocess.PIPE)
    line = p.stderr.readline().decode(); port = int(re.search(r"listening on 127.0.0.1:(\d+)", line).group(1))
    n = 0
    for i in range(int(sys.argv[3])):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=2); c.settimeout(2)
            c.sendall(b"x" * 100); c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = c.recv(4096)
                if not d: break
                got += d
            c.close()
            assert got == b"x" * 100
            n += 1
        except Exception as e:
            print(f"client {i+1} failed: {e!r}"); break
    print(f"freeze: {n} clients relayed")
    p.kill(); rest = p.stderr.read(); print("stderr bytes after kill:", len(rest), "dropped lines:", rest.count(b"dropped"))
else:
    out = open(LOG, "wb")
    p = subprocess.Popen([BIN, "-l", "127.0.0.1:0", "-u", f"127.0.0.1:{up}", "--deny", "127.0.0.2", "--admin", "127.0.0.1:0"], stderr=subprocess.PIPE)
    line = p.stderr.readline().decode(); port = int(re.search(r"listening on 127.0.0.1:(\d+)", line).group(1))
    adm = p.stderr.readline().decode(); aport = int(re.search(r"http://127.0.0.1:(\d+)", adm).group(1))
    t = threading.Thread(target=lambda: out.write(p.stderr.read())); t.start()
    n = int(sys.argv[3]); t0 = time.time()
    for i in range(n):
        c = socket.socket(); c.bind(("127.0.0.2", 0)); c.connect(("127.0.0.1", port))
        try: c.recv(1)
        except Exception: pass
        c.close()
    el = time.time() - t0
    a = socket.create_connection(("127.0.0.1", aport)); a.sendall(b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"); a.recv(1000); a.close()
    p.wait(10); t.join(); out.close()
    data = open(LOG,"rb").read()
    sup = sum(int(m) for m in re.findall(rb"suppressed=(\d+)", data))
    print(f"deny storm: {n} clients in {el:.1f}s, log {len(data)} bytes, {data.count(b'reason=denied')} denied lines, suppressed sum {sup}")
