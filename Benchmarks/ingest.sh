#!/usr/bin/env bash
# Ingest remux of a 120 s H.264/AAC file to TS chunks, no pacing, against `ffmpeg -c copy -f mpegts`.
# Prints the median CPU time (user+sys) of each and whether the bytes match.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(swift build -c release --show-bin-path)
swift build -c release >/dev/null
work=${WORK:-$(mktemp -d)}
src="$work/long.mp4"
if [ ! -f "$src" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=120" \
    -f lavfi -i "sine=frequency=440:duration=120" -c:v libx264 -preset ultrafast -g 30 -b:v 4M -c:a aac -b:a 128k "$src"
fi
runs=${RUNS:-11}
cpu() { # median CPU seconds (user+sys) of a command over $runs runs
  for _ in $(seq "$runs"); do
    { TIMEFORMAT='%U %S'; time "$@" >/dev/null 2>&1; } 2>&1 | awk '{print $1 + $2}'
  done | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}
ff=$(cpu ffmpeg -hide_banner -loglevel error -y -i "$src" -c copy -f mpegts "$work/ref.ts")
ours=$(cpu "$bin/lsp2p-relay" chunk --input "$src" --output "$work/ours.ts")
same=$(cmp -s "$work/ref.ts" "$work/ours.ts" && echo "identical" || echo "DIFFERENT")
size=$(stat -c %s "$src")
start=$(cpu "$bin/lsp2p-relay" keygen)
echo "input: 120 s, $size bytes; median of $runs runs; lsp2p-relay start-up alone: ${start}s CPU"
echo "ffmpeg -c copy -f mpegts: ${ff}s CPU"
echo "lsp2p-relay chunk:        ${ours}s CPU (ratio $(awk -v a="$ours" -v b="$ff" 'BEGIN{printf "%.2f", a/b}'))"
echo "TS bytes: $same"
