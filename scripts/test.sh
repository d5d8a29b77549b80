#!/usr/bin/env bash
# Sets up and runs every test: unit, FFmpeg and end-to-end over loopback with the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
swift build
swift test "$@"
