#!/usr/bin/env bash
# Origin load against audience: bytes the origin sends to N players (who upload to each other), with an
# --uplink of two streams' worth, against the same origin without one (every player fed by the origin).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)
work=${WORK:-$(mktemp -d)}
seconds=${SECONDS_RUN:-15}
"$bin/lsp2p-relay" keygen > "$work/key"
run() { # players, extra source args...
  local n=$1; shift
  "$bin/lsp2p-relay" source --input samples/sample.mp4 --loop --listen 127.0.0.1:0 --key-file "$work/key" \
    --wait-receivers "$n" --quiet "$@" 2> "$work/source.log" &
  local spid=$!
  for _ in $(seq 100); do grep -q "join:" "$work/source.log" && break; sleep 0.1; done
  local url
  url=$(grep -o "lsp2p://[^ ]*" "$work/source.log" | head -1)
  local pids=()
  for i in $(seq "$n"); do
    "$bin/lsp2p-play" "$url" --output /dev/null --duration "$seconds" --report "$work/p$i.json" --quiet 2> /dev/null &
    pids+=($!)
    sleep 0.05
  done
  wait "${pids[@]}" || true
  kill -TERM $spid; wait $spid || true
  local sent missing expected
  sent=$(grep -o "chunks, [0-9]* bytes" "$work/source.log" | grep -o "[0-9]* bytes" | grep -o "[0-9]*")
  missing=$(cat "$work"/p*.json | grep -o '"chunks_missing" : [0-9]*' | grep -o "[0-9]*$" | paste -sd+ | bc)
  expected=$(cat "$work"/p*.json | grep -o '"chunks_expected" : [0-9]*' | grep -o "[0-9]*$" | paste -sd+ | bc)
  rm -f "$work"/p*.json
  printf "%3d players %-14s origin sent %6.1f MB (%5.2f Mbit/s), missing %d of %d\n" "$n" "${1:-(no uplink)}${2:+ $2}" \
    "$(echo "$sent / 1000000" | bc -l)" "$(echo "$sent * 8 / $seconds / 1000000" | bc -l)" "$missing" "$expected"
}
for n in ${COUNTS:-4 16 64}; do
  run "$n"
  run "$n" --uplink 2.2M
done
