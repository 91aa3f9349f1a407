#!/usr/bin/env python3
"""How long does `GET /metrics` take while N slowloris clients hold the admin endpoint?

Usage: tests/bench/admin_slowloris.py BINARY N
Starts BINARY with a route and `--admin 127.0.0.1:0` (loopback only), opens N connections
to the admin endpoint that each send one byte of a request head every 0.5 s and never finish
it, then times one complete `GET /metrics` on a fresh connection. Prints the seconds it took
(or "refused" with the status when the endpoint answered 503). Measurement only: the test
suite asserts behaviour (tests/admin_security.rs), never time.
"""
import socket, subprocess, sys, threading, time

binary, n = sys.argv[1], int(sys.argv[2])
relay = subprocess.Popen([binary, "-l", "127.0.0.1:0", "-u", "127.0.0.1:9", "--admin", "127.0.0.1:0"],
                         stderr=subprocess.PIPE, text=True)
admin = None
for line in relay.stderr:
    if "admin endpoint on http://" in line:
        admin = line.split("http://", 1)[1].split()[0].strip("\"")
        break
host, port = admin.rsplit(":", 1)
addr = (host, int(port))
stop = threading.Event()
clients = []
for _ in range(n):
    s = socket.create_connection(addr)
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    clients.append(s)

def trickle():
    while not stop.wait(0.5):
        for s in clients:
            try:
                s.sendall(b"X")
            except OSError:
                pass
threading.Thread(target=trickle, daemon=True).start()
time.sleep(0.2)
start = time.monotonic()
s = socket.create_connection(addr)
s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n".encode())
response = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    response += chunk
took = time.monotonic() - start
status = response.split(b" ", 2)[1].decode() if response else "none"
print(f"clients={n} status={status} seconds={took:.3f}")
stop.set()
relay.kill()
