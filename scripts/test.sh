#!/usr/bin/env bash
# Sets up and runs every test: unit, FFmpeg and end-to-end over loopback with the real binaries.
# The end-to-end tests run the release binaries (what people run, and a tenth of the debug build's CPU:
# a soak of 16 debug processes starves a loaded 2-core machine); the test code itself builds in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
swift build -c release
swift build
LSP2P_BIN_DIR="$(swift build -c release --show-bin-path)" swift test "$@"
