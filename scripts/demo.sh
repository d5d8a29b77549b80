#!/usr/bin/env bash
# The local demo: a source on samples/sample.mp4 and two players on loopback, for about 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release
bin=$(swift build -c release --show-bin-path)
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"
rm -f "$out"/*
port=${DEMO_PORT:-7000}
"$bin/lsp2p-relay" keygen > "$out/channel.key"
"$bin/lsp2p-relay" source --input samples/sample.mp4 --listen "127.0.0.1:$port" --key-file "$out/channel.key" \
  --wait-receivers 2 --quiet 2> "$out/source.log" &
source_pid=$!
trap 'kill $source_pid 2>/dev/null || true' EXIT
url="lsp2p://127.0.0.1:$port"
for _ in $(seq 50); do grep -q "join:" "$out/source.log" 2>/dev/null && break; sleep 0.1; done
echo "demo: streaming samples/sample.mp4 to two players on loopback for about 10 s..." >&2
"$bin/lsp2p-play" "$url" --key-file "$out/channel.key" --output "$out/player1.mp4" --report "$out/player1.json" 2> "$out/player1.log" &
p1=$!
"$bin/lsp2p-play" "$url" --key-file "$out/channel.key" --output "$out/player2.ts" --report "$out/player2.json" 2> "$out/player2.log"
wait $p1
wait $source_pid
trap - EXIT
for name in player1 player2; do
  echo "$name: $(grep '^play ' "$out/$name.log" | tail -n 1)"
done
echo "playable output: $out/player1.mp4 and $out/player2.ts (reports: $out/player1.json, $out/player2.json; try: ffplay $out/player1.mp4)"
