#!/usr/bin/python3
"""Browsers at one relay (issue 21's benchmarks), on loopback with the release binaries:

1. start-up: /watch opened N times in headless Chromium (scripts/watch-check.py --loads N), over /stream.mp4 and
   over HLS: time from navigation to the first frame, p50/p99; and how far behind the newest data the page plays;
2. load: HLS_CLIENTS clients polling /live.m3u8 and fetching each new segment (as a player does) plus MP4_CLIENTS
   reading /stream.mp4, for SECONDS: the relay's CPU (share of one core) and RSS, against the same relay with none.

  scripts/bench-browsers.py [--bin .build/release] [--loads 20] [--hls 50] [--mp4 10] [--seconds 60]

Prints a table; exits 1 if a step fails. Builds nothing: run `swift build -c release` first.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(cmd, log):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def wait_line(log, pattern, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        text = open(log).read()
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.05)
    sys.exit(f"bench-browsers: no '{pattern}' in {log}:\n{open(log).read()}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    return rss / 1024, hwm / 1024


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def connection(base, source):
    """A keep-alive connection from its own loopback address, as each viewer is a host of its own (the server
    takes at most 32 connections from one address)."""
    host, port = urllib.parse.urlparse(base).netloc.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))


def get(conn, path):
    conn.request("GET", path)
    return conn.getresponse().read()


def hls_client(base, source, stop, counts):
    seen = set()
    conn = connection(base, source)
    while not stop.is_set():
        try:
            playlist = get(conn, "/live.m3u8").decode()
            for name in [line for line in playlist.splitlines() if line.startswith("live/")]:
                if name not in seen:
                    seen.add(name)
                    counts["hls_bytes"] += len(get(conn, "/" + name))
        except Exception:
            counts["hls_errors"] += 1
            conn.close()
            conn = connection(base, source)
        stop.wait(1)  # a player asks again every target duration (1 s)


def mp4_client(base, source, stop, counts):
    try:
        conn = connection(base, source)
        conn.request("GET", "/stream.mp4")
        response = conn.getresponse()
        while not stop.is_set():
            data = response.read(64 << 10)
            if not data:
                break
            counts["mp4_bytes"] += len(data)
    except Exception:
        counts["mp4_errors"] += 1


def measure(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100 * (c1 - c0) / (t1 - t0), rss_mib(pid)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build/release"))
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--hls", type=int, default=50)
    parser.add_argument("--mp4", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-browsers-")
    procs = []
    try:
        source = start([f"{args.bin}/lsp2p-relay", "source", "--input", os.path.join(ROOT, "samples/sample.mp4"), "--loop",
                        "--listen", "127.0.0.1:0", "--quiet"], f"{work}/source.log")
        procs.append(source)
        url = wait_line(f"{work}/source.log", r"join: (lsp2p://\S+)").group(1)
        relay = start([f"{args.bin}/lsp2p-relay", "relay", url, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--quiet"],
                      f"{work}/relay.log")
        procs.append(relay)
        base = wait_line(f"{work}/relay.log", r"(http://127\.0\.0\.1:\d+)").group(1)
        # The relay's HLS window fills (three segments) before anything is measured.
        while urllib.request.urlopen(base + "/live.m3u8").read().decode().count("#EXTINF") < 4:
            time.sleep(0.2)
        print(f"relay {base} (pid {relay.pid}), binaries {args.bin}")

        for via in ("mp4", "hls"):
            out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts/watch-check.py"), f"{base}/watch?via={via}",
                                  "--loads", str(args.loads), "--advance", "3", "--timeout", "30"], capture_output=True, text=True)
            loads = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode != 0 or len(loads) != args.loads:
                sys.exit(f"bench-browsers: watch-check over {via} failed: {out.stderr}")
            first = [load["first_frame_ms"] for load in loads]
            behind = [load["behind_s"] for load in loads if load.get("behind_s") is not None]
            print(f"start-up over {via}: first frame p50 {percentile(first, 50):.0f} ms, p99 {percentile(first, 99):.0f} ms, "
                  f"max {max(first):.0f} ms ({len(first)} loads); plays {statistics.median(behind):.2f} s behind the newest "
                  f"data it holds (median)")

        idle_cpu, (idle_rss, _) = measure(relay.pid, args.seconds)
        print(f"relay, no browser: {idle_cpu:.2f} % of a core, RSS {idle_rss:.1f} MiB ({args.seconds} s)")
        stop = threading.Event()
        counts = {"hls_bytes": 0, "hls_errors": 0, "mp4_bytes": 0, "mp4_errors": 0}
        threads = [threading.Thread(target=hls_client, args=(base, f"127.0.1.{i + 1}", stop, counts), daemon=True) for i in range(args.hls)]
        threads += [threading.Thread(target=mp4_client, args=(base, f"127.0.2.{i + 1}", stop, counts), daemon=True) for i in range(args.mp4)]
        for thread in threads:
            thread.start()
        time.sleep(5)
        busy_cpu, (busy_rss, hwm) = measure(relay.pid, args.seconds)
        stop.set()
        status = json.load(urllib.request.urlopen(base + "/status.json"))
        print(f"relay, {args.hls} HLS + {args.mp4} MP4 clients: {busy_cpu:.2f} % of a core, RSS {busy_rss:.1f} MiB (peak {hwm:.1f}), "
              f"served {counts['hls_bytes'] / 1e6:.1f} MB HLS + {counts['mp4_bytes'] / 1e6:.1f} MB MP4, "
              f"errors {counts['hls_errors']} HLS, {counts['mp4_errors']} MP4; stream rate {status.get('stream_rate_bps', 0) / 1e6:.2f} Mbit/s")
        return 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
