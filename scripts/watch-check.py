#!/usr/bin/python3
"""Opens a node's /watch page in headless Chromium and reads back, through the DevTools protocol, what the
<video> does: how long the first frame took, whether its time advances, its width, any media error.

  scripts/watch-check.py http://127.0.0.1:8080/watch [--advance 3] [--timeout 40] [--screenshot F] [--loads N]

Prints one JSON line per load (first_frame_ms: from navigation to the first frame; behind_s: how far behind the
newest data it holds the video plays), then exits 0 when in every load the video showed a frame and its time
advanced by --advance seconds with no media error; 1 otherwise, with the reason on stderr; 2 on bad usage.
Needs Debian's chromium and python3-websocket (scripts/setup.sh --tests installs them).
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


class Browser:
    def __init__(self):
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            sys.exit("watch-check: chromium is not installed (scripts/setup.sh --tests installs it)")
        self.profile = tempfile.mkdtemp(prefix="watch-check-")
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio", "--no-first-run",
             "--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                sys.exit("watch-check: chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = open(port_file).read().split()[0]
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p.get("type") == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self):
        if getattr(self, "process", None) and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


STATE = """(() => {
  const v = document.querySelector('video'), w = window.lsp2pWatch || {};
  const behind = v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : null;
  return {time: v ? v.currentTime : null, behind_s: behind, width: v ? v.videoWidth : 0, error: v && v.error ? v.error.code + ' ' + v.error.message : (w.error || null),
          first_frame_ms: w.firstFrameMs === undefined ? null : w.firstFrameMs, via: w.via || null, reloads: w.reloads || 0,
          status: (document.getElementById('status') || {}).textContent || ''};
})()"""


def load(browser, url, advance, timeout):
    """One load: waits for the first frame, then (advance > 0) for the time to move on by `advance` seconds."""
    browser.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    state, start = {}, None
    while time.monotonic() < deadline:
        state = browser.evaluate(STATE) or {}
        if state.get("error"):
            return state, f"media error {state['error']}"
        if state.get("first_frame_ms") is not None and state.get("width", 0) > 0 and state.get("time") is not None:
            if start is None:
                start = state["time"]
            state["advanced_s"] = round(state["time"] - start, 2)
            if state["advanced_s"] >= advance:
                return state, None
        time.sleep(0.1)
    if start is None:
        return state, f"no frame within {timeout} s"
    return state, f"the video's time advanced {state.get('advanced_s')} s of {advance} within {timeout} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--advance", type=float, default=3, help="seconds the video's time must advance in each load")
    parser.add_argument("--timeout", type=float, default=40, help="seconds allowed per load")
    parser.add_argument("--screenshot", help="write a PNG of the page here once the video has advanced")
    parser.add_argument("--loads", type=int, default=1, help="load the page this many times (start-up figures)")
    args = parser.parse_args()
    if args.loads < 1 or args.timeout <= 0:
        parser.error("--loads and --timeout must be positive")
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.call("Runtime.enable")
        failed = None
        for n in range(args.loads):
            state, failure = load(browser, args.url, args.advance, args.timeout)
            if n == 0 and args.screenshot and failure is None:
                shot = browser.call("Page.captureScreenshot", format="png")
                with open(args.screenshot, "wb") as out:
                    out.write(base64.b64decode(shot["data"]))
                state["screenshot"] = args.screenshot
            state["load"] = n + 1
            state["ok"] = failure is None
            print(json.dumps(state), flush=True)
            if failure:
                failed = failure
                break
        if failed:
            print(f"watch-check: {args.url}: {failed}", file=sys.stderr)
            return 1
        return 0
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
