#!/usr/bin/env bash
# Fan-out: one source, N players on loopback, an 8 Mbit/s stream. Reports the source's CPU and the players' chunks on time.
set -euo pipefail
cd "$(dirname "$0")/.."
players=${PLAYERS:-50}
seconds=${SECONDS_RUN:-30}
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)
work=${WORK:-$(mktemp -d)}
src="$work/8mbit.mp4"
if [ ! -f "$src" ]; then
  # Noise keeps the encoder at its rate; 20 s looped.
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=20" \
    -f lavfi -i "sine=duration=20" -vf "noise=alls=30:allf=t" -c:v libx264 -preset ultrafast -g 25 \
    -b:v 7.8M -minrate 7.8M -maxrate 7.8M -bufsize 2M -x264-params nal-hrd=cbr -c:a aac -b:a 128k "$src"
fi
echo "stream: $(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$src") bit/s"
"$bin/lsp2p-relay" keygen > "$work/key"
"$bin/lsp2p-relay" source --input "$src" --loop --listen 127.0.0.1:0 --key-file "$work/key" \
  --wait-receivers "$players" --quiet 2> "$work/source.log" &
spid=$!
for _ in $(seq 100); do grep -q "join:" "$work/source.log" && break; sleep 0.1; done
url=$(grep -o "lsp2p://[^ ]*" "$work/source.log" | head -1)
for i in $(seq "$players"); do
  "$bin/lsp2p-play" "$url" --output /dev/null --duration "$seconds" --report "$work/p$i.json" --quiet ${PLAYER_ARGS:---no-upload} 2> "$work/p$i.log" &
done
# Source CPU over the run, from /proc (clock ticks).
ticks() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
for _ in $(seq 100); do grep -q "joined" "$work/source.log" && [ "$(grep -c joined "$work/source.log")" -ge "$players" ] && break; sleep 0.1; done
t0=$(ticks); s0=$(date +%s.%N)
sleep $((seconds - 2))
t1=$(ticks); s1=$(date +%s.%N)
wait $(jobs -p | grep -v "^$spid$") 2>/dev/null || true
kill -TERM $spid; wait $spid || true
hz=$(getconf CLK_TCK)
python3 - "$work" "$players" "$t0" "$t1" "$s0" "$s1" "$hz" <<'PY'
import json, sys
work, n, t0, t1, s0, s1, hz = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
cores = (t1 - t0) / hz / (s1 - s0)
reports = [json.load(open(f"{work}/p{i}.json")) for i in range(1, n + 1)]
exp = sum(r["chunks_expected"] for r in reports)
on = sum(r["chunks_on_time"] for r in reports)
miss = sum(r["chunks_missing"] for r in reports)
p99 = max(r["latency_ms"]["p99"] for r in reports)
mb = sum(r["bytes_received"] for r in reports) / 1e6
print(f"players: {n}, source CPU: {cores:.3f} cores over {s1 - s0:.1f} s")
print(f"chunks on time: {on}/{exp} ({100 * on / max(1, exp):.2f}%), missing {miss}, worst player p99 latency {p99} ms, {mb:.0f} MB delivered")
PY
