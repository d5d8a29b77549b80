#!/usr/bin/env python3
"""A pre-authentication flood against a real origin, with players already watching.

    Benchmarks/preauth-flood.py BIN_DIR INPUT [CONNECTIONS] [SECONDS]

Starts an origin on loopback and two players (reports to a temp folder), then opens CONNECTIONS (default 1000)
TCP connections to the origin, each sending a frame header that announces an 8 MiB hello and then one byte a
second, for SECONDS (default 20). Prints the origin's RSS before and at its peak, how many flood connections the
origin closed, and the players' on-time ratio. Traffic goes to 127.0.0.1 only."""
import json, os, re, signal, socket, struct, subprocess, sys, tempfile, time

bin_dir, source = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
work = tempfile.mkdtemp()
key = os.path.join(work, "key")
with open(key, "w") as f:
    f.write(subprocess.run([f"{bin_dir}/lsp2p-relay", "keygen"], capture_output=True, text=True, check=True).stdout)
log = open(os.path.join(work, "source.log"), "w+")
origin = subprocess.Popen([f"{bin_dir}/lsp2p-relay", "source", "--input", source, "--loop", "--listen", "127.0.0.1:0",
                           "--key-file", key, "--quiet"], stderr=log)
url = None
for _ in range(100):
    log.seek(0)
    m = re.search(r"(lsp2p://\S+)", log.read())
    if m:
        url = m.group(1)
        break
    time.sleep(0.1)
host, port = re.match(r"lsp2p://([^:]+):(\d+)", url).groups()

def rss(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))

players = [subprocess.Popen([f"{bin_dir}/lsp2p-play", url, "--output", "/dev/null", "--quiet", "--duration", str(seconds + 12),
                             "--report", os.path.join(work, f"p{i}.json")], stderr=subprocess.DEVNULL) for i in range(2)]
time.sleep(6)
before = rss(origin.pid)
flood = []
for i in range(count):
    s = socket.socket()
    try:
        s.connect((host, int(port)))
        s.sendall(b"L2" + bytes([1, 1]) + struct.pack(">I", 8 << 20) + b"\x02")
        flood.append(s)
    except OSError:
        s.close()
peak = before
for t in range(seconds):
    for s in flood:
        try:
            s.send(b"\x00")
        except OSError:
            pass
    peak = max(peak, rss(origin.pid))
    time.sleep(1)
closed = 0
for s in flood:
    try:
        s.setblocking(False)
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
    s.close()
for p in players:
    p.wait(timeout=60)
origin.send_signal(signal.SIGTERM)
origin.wait(timeout=30)
ratios = []
for i in range(2):
    r = json.load(open(os.path.join(work, f"p{i}.json")))
    ratios.append(r["chunks_on_time"] / max(1, r["chunks_expected"]))
print(f"flood: {len(flood)} connections; origin RSS {before / 1024:.1f} MiB before, {peak / 1024:.1f} MiB at peak "
      f"(+{(peak - before) / 1024:.1f} MiB); closed by the origin: {closed}; players on time: "
      + ", ".join(f"{100 * x:.3f} %" for x in ratios))
