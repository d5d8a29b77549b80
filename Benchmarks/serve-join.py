#!/usr/bin/env python3
"""Join to first byte, 20 joins each way, against a running origin on loopback:
  serve-cold: start `lsp2p-play URL --serve`, send GET /stream.ts as soon as it listens, time to the first TS packet;
  serve-warm: a new HTTP client on a player already serving: GET to the first TS packet;
  output:     start `lsp2p-play URL --output -`, time to the first byte on stdout.
Usage: Benchmarks/serve-join.py BIN_DIR [JOINS]"""
import os, re, socket, statistics, subprocess, sys, time

bin_dir = sys.argv[1]
joins = int(sys.argv[2]) if len(sys.argv) > 2 else 20
sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "sample.mp4")

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def first_ts_byte(port, deadline):
    """GET /stream.ts; returns when the first 0x47 sync byte of the body arrives."""
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline: raise
            time.sleep(0.002)
    s.sendall(b"GET /stream.ts HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data: data += s.recv(65536)
    body = data.split(b"\r\n\r\n", 1)[1]
    while b"\x47" not in body: body += s.recv(65536)
    s.close()

source = subprocess.Popen([f"{bin_dir}/lsp2p-relay", "source", "--input", sample, "--loop", "--listen", "127.0.0.1:0", "--quiet"],
                          stderr=subprocess.PIPE, text=True)
url = None
for line in source.stderr:
    m = re.search(r"(lsp2p://\S+)", line)
    if m: url = m.group(1); break
time.sleep(3)
results = {"serve-cold": [], "serve-warm": [], "output": []}
try:
    for i in range(joins):
        port = free_port()
        t0 = time.monotonic()
        p = subprocess.Popen([f"{bin_dir}/lsp2p-play", url, "--serve", f"127.0.0.1:{port}", "--quiet"], stderr=subprocess.DEVNULL)
        first_ts_byte(port, t0 + 20)
        results["serve-cold"].append((time.monotonic() - t0) * 1000)
        t1 = time.monotonic()
        first_ts_byte(port, t1 + 20)
        results["serve-warm"].append((time.monotonic() - t1) * 1000)
        p.terminate(); p.wait()

        t0 = time.monotonic()
        p = subprocess.Popen([f"{bin_dir}/lsp2p-play", url, "--output", "-", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.read(1)
        results["output"].append((time.monotonic() - t0) * 1000)
        p.stdout.close()  # a full pipe nobody reads would hold its last writes
        p.terminate(); p.wait()
finally:
    source.terminate(); source.wait()
for name, values in results.items():
    print(f"{name:10s} joins {len(values)}  p50 {pct(values, 50):7.1f} ms  p99 {pct(values, 99):7.1f} ms  max {max(values):7.1f} ms")
