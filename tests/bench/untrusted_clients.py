#!/usr/bin/env python3
"""Forged PROXY headers, silent clients and one address's pool: what a relay lets through.

Usage: tests/bench/untrusted_clients.py BINARY [new]
Loopback only, ephemeral ports, an echo upstream in this process. Prints six figures
(issue 22, items 5-7), each the figure docs/reliability.md section 4b quotes:
- a listener of 8 slots (sni= or accept-proxy), first-bytes-timeout 10s: 127.0.0.1 opens
  40 silent connections (5x the slots), then three clients from 127.0.0.2 send their first
  bytes at once: how many are served within 12 s;
- an sni= listener of 8 (then 500), first-bytes-timeout 10s: 127.0.0.2 opens 40 (438)
  silent connections, 127.0.0.1 one (62) more, then a client from 127.0.0.3 sends its
  ClientHello: how long until it is served, and how many silent ones are still open;
- 40 PROXY headers from 127.0.0.2, each naming an allowed address (allow=10.0.0.0/8,
  max-connections-per-client 2): how many are served (`new`: with proxy-from 127.0.0.1/32,
  a setting older binaries do not have);
- 80 connections at once from one address (192.0.2.1, named by a local balancer's header)
  on an idle relay with the default per-client limit: how many are served.
Measurement only: tests/untrusted_clients.rs asserts the behaviour, never time.
"""
import socket, ssl, subprocess, sys, threading, time, re

BIN = sys.argv[1]

def echo_server():
    ls = socket.socket(); ls.bind(('127.0.0.1', 0)); ls.listen(512)
    def serve(c):
        with c:
            while True:
                try: b = c.recv(65536)
                except OSError: return
                if not b: return
                c.sendall(b)
    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]

def relay(args):
    log = open('/tmp/tcprelay-untrusted-clients.log', 'w+')
    p = subprocess.Popen([BIN, '-l', '127.0.0.1:0', *args], stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(500):
        time.sleep(0.01)
        m = re.search(r'listening on 127\.0\.0\.1:(\d+)', open('/tmp/tcprelay-untrusted-clients.log').read())
        if m: return p, int(m.group(1))
    raise SystemExit('no listening line: ' + open('/tmp/tcprelay-untrusted-clients.log').read())

def hello():
    ctx = ssl.create_default_context(); i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(i, o, server_hostname='app.test')
    try: obj.do_handshake()
    except ssl.SSLWantReadError: pass
    return o.read()

def client(src, port, data, want, deadline):
    s = socket.socket(); s.bind((src, 0)); s.settimeout(deadline)
    start = time.monotonic()
    try:
        s.connect(('127.0.0.1', port)); s.sendall(data)
        got = b''
        while len(got) < len(want):
            b = s.recv(65536)
            if not b: break
            got += b
        return (got == want, time.monotonic() - start, s)
    except OSError:
        return (False, time.monotonic() - start, s)

def silent_flood(kind):
    up = echo_server()
    extra = ['--sni', 'app.test'] if kind == 'sni' else ['--accept-proxy']
    p, port = relay(['-u', f'127.0.0.1:{up}', '--max-connections', '8', '--first-bytes-timeout', '10s', *extra])
    silent = [socket.create_connection(('127.0.0.1', port)) for _ in range(40)]
    data = hello() if kind == 'sni' else b'PROXY TCP4 192.0.2.9 198.51.100.1 5000 443\r\nhello'
    want = data if kind == 'sni' else b'hello'
    results = [None] * 3
    def one(n): results[n] = client('127.0.0.2', port, data, want, 12)
    ts = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    [t.start() for t in ts]; [t.join() for t in ts]
    p.kill(); p.wait()
    served = [r for r in results if r[0]]
    times = sorted(r[1] for r in results)
    print(f'silent flood on {kind}: {len(served)}/3 served within 12 s, times {[round(t, 2) for t in times]}')

def two_address_flood(places, from_2, from_1):
    up = echo_server()
    p, port = relay(['-u', f'127.0.0.1:{up}', '--sni', 'app.test', '--max-connections', str(places),
                     '--first-bytes-timeout', '10s'])
    silent = []
    for src, n in (('127.0.0.2', from_2), ('127.0.0.1', from_1)):
        for _ in range(n):
            s = socket.socket(); s.bind((src, 0)); s.connect(('127.0.0.1', port)); silent.append(s)
    time.sleep(0.5)  # measurement only: let the relay take them
    data = hello()
    ok, took, _ = client('127.0.0.3', port, data, data, 15)
    still_open = 0
    for s in silent:
        s.setblocking(False)
        try: still_open += s.recv(1) != b''
        except BlockingIOError: still_open += 1
        except OSError: pass
    p.kill(); p.wait()
    verdict = 'served' if ok else 'not served'
    print(f'{from_2} + {from_1} silent from two addresses, {places} places: 127.0.0.3 {verdict} after '
          f'{took:.2f} s, {still_open} silent still open')

def forged(newer):
    up = echo_server()
    args = ['-u', f'127.0.0.1:{up}', '--accept-proxy', '--allow', '10.0.0.0/8', '--max-connections-per-client', '2']
    if newer: args += ['--proxy-from', '127.0.0.1/32']
    p, port = relay(args)
    held, served = [], 0
    for n in range(40):
        ok, _, s = client('127.0.0.2', port, f'PROXY TCP4 10.6.6.{n} 198.51.100.1 4000 443\r\nhi'.encode(), b'hi', 5)
        served += ok; held.append(s)
    p.kill(); p.wait()
    print(f'forged headers from 127.0.0.2 (allow=10.0.0.0/8, per-client 2): {served}/40 served')

def pool():
    up = echo_server()
    p, port = relay(['-u', f'127.0.0.1:{up}', '--accept-proxy'])
    held, served = [], 0
    for n in range(80):
        ok, _, s = client('127.0.0.1', port, b'PROXY TCP4 192.0.2.1 198.51.100.1 4000 443\r\nhi', b'hi', 5)
        served += ok; held.append(s)
    p.kill(); p.wait()
    print(f'a pool of 80 from one address (192.0.2.1 via a local balancer, auto limit) on an idle relay: {served}/80 served')

silent_flood('sni'); silent_flood('accept-proxy')
two_address_flood(8, 40, 1); two_address_flood(500, 438, 62)
forged(len(sys.argv) > 2); pool()
