#!/usr/bin/env bash
# lsp2p-sim benchmarks (issue 5): wall time and peak memory of the packet model and the overlay comparison.
# Usage: Benchmarks/sim.sh [OUT_DIR]   (release build; one core each; PEERS_LARGE=100000 for the large run)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-sim-out/bench}
mkdir -p "$out"
swift build -c release --product lsp2p-sim >/dev/null
sim="$(swift build -c release --show-bin-path)/lsp2p-sim"
run() {
  local name=$1; shift
  echo "== $name: lsp2p-sim $*"
  /usr/bin/time -f "$name: %e s wall, %U s user, %M KiB peak RSS" taskset -c 0 "$sim" "$@" --out "$out/$name" -q
}
run packet-1000 packet --nodes 1000
run overlay-1000 overlay --peers 1000
run overlay-1000-churn overlay --peers 1000 --churn fail:2s,leave:5s
run overlay-10000 overlay --peers 10000
if [ -n "${PEERS_LARGE:-}" ]; then run "overlay-$PEERS_LARGE" overlay --peers "$PEERS_LARGE" --algo fastmesh; fi
