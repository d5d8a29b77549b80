#!/usr/bin/env bash
# libFuzzer targets (with AddressSanitizer) for the wire and the mesh core.
#   scripts/fuzz.sh                  lists the targets, one a line
#   scripts/fuzz.sh TARGET SECONDS   builds and runs one for that long; exit non-zero on a crash
# Seeds are in Fuzz/Corpus/TARGET; what the run finds goes to a scratch corpus ($FUZZ_WORK, default /tmp), and a
# crashing input to $FUZZ_WORK/crash-TARGET-*, to become a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(FuzzFrames FuzzMessages FuzzPeer)
if (($# == 0)); then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
if (($# != 2)) || [[ ! " ${targets[*]} " == *" $1 "* ]] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [TARGET SECONDS]   (targets: ${targets[*]})" >&2
  exit 2
fi
target=$1 seconds=$2
work=${FUZZ_WORK:-/tmp}/lsp2p-fuzz-$target
mkdir -p "$work/corpus"
swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld --product "$target" >&2
bin=$(swift build --package-path Fuzz -c release --show-bin-path)/$target
echo "fuzz: $target for $seconds s (corpus $work/corpus)" >&2
# Leak checks are off: EmbeddedChannel pipelines the harness leaves open are not the product's leaks.
ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$bin" -max_total_time="$seconds" -print_final_stats=1 -detect_leaks=0 -rss_limit_mb=8192 -artifact_prefix="$work/crash-$target-" \
  "$work/corpus" "Fuzz/Corpus/$target"
