#!/usr/bin/env bash
# Regenerates samples/sample.mp4: 10 s of H.264 + AAC, 640x360 at 25 fps, a keyframe every second.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=10" \
  -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=10" \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -g 25 -keyint_min 25 -sc_threshold 0 -b:v 900k -maxrate 1M -bufsize 1M \
  -c:a aac -b:a 96k -ac 2 \
  -movflags +faststart -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  sample.mp4
ls -l sample.mp4
