#!/usr/bin/env bash
# CPU and memory of one relay that forwards a stream to 4 players (the origin can feed only the relay).
#   Benchmarks/relay-cpu.sh BIN_DIR INPUT RATE_BPS [SECONDS]
# BIN_DIR holds release builds of lsp2p-relay and lsp2p-play; RATE_BPS is the input's rate (ffprobe's bit_rate).
# Prints the relay's CPU in % of one core over SECONDS (default 30) and its peak RSS.
set -euo pipefail
bin=$1 input=$2 rate=$3 seconds=${4:-30}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/lsp2p-relay" keygen > "$work/key" 2>/dev/null || "$bin/lsp2p-relay" keygen > "$work/key"
# Four units of the TS-wrapped rate (the source counts 10 % of TS overhead): the relay takes them all.
origin_uplink=$(( rate * 12 / 10 ))
"$bin/lsp2p-relay" source --input "$input" --loop --listen 127.0.0.1:0 --key-file "$work/key" --uplink "$origin_uplink" --quiet 2> "$work/source.log" &
for _ in $(seq 100); do grep -q "join:" "$work/source.log" && break; sleep 0.1; done
url=$(grep -o 'lsp2p://[^ ]*' "$work/source.log" | head -1)
"$bin/lsp2p-relay" relay "$url" --uplink $(( rate * 8 )) --quiet 2> "$work/relay.log" &
relay=$!
for _ in $(seq 100); do grep -q "joined" "$work/relay.log" && break; sleep 0.1; done
sleep 3
for i in 1 2 3 4; do
  "$bin/lsp2p-play" "$url" --output /dev/null --no-upload --quiet --report "$work/p$i.json" 2> "$work/p$i.log" &
done
sleep 10
ticks() { awk '{print $14 + $15}' "/proc/$relay/stat"; }
start=$(ticks)
sleep "$seconds"
end=$(ticks)
hz=$(getconf CLK_TCK)
children=$("$bin/lsp2p-relay" mesh "$url" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(1 for p in m["peers"] for s in p.get("substreams",[]) if s.get("parent") and s["parent"] not in (m["origin"],)))')
echo "relay cpu: $(python3 -c "print(f'{100*($end-$start)/$hz/$seconds:.2f}')") % of a core over $seconds s; rss $(awk '/VmHWM/{print $2}' /proc/$relay/status) kB; substreams fed by a relay: $children of 16"
