#!/usr/bin/env bash
# Mutation proofs for `lsp2p-sim check` (issue 20): each of the checker's invariants must fail when the core rule
# that keeps it is taken out. For each mutant the rule is edited out of a copy of the sources, `lsp2p-sim` is built
# in release, and a sweep must exit 1 naming that invariant (and the check of it that the rule keeps), with a replay
# line. About a minute a mutant on 2 cores after the first (a release build each); not part of `scripts/test.sh`.
# Exit 0: every mutant killed; 1: one survived; 2: a mutant could not be made (its rule moved, or it did not build).
#
#   scripts/mutants.sh              every mutant
#   scripts/mutants.sh loop caps    the ones named
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="${MUTANTS_DIR:-$root/.build-mutants}"
seeds="${MUTANTS_SEEDS:-1-20}"
peer=Sources/MeshCore/Mesh/MeshPeer.swift
all=(once parent caps loop liveness wakeup)

# The invariant each mutant must break, and words of the violation that say which of its checks.
invariant() {
    case "$1" in
        once) echo "delivered once, runs in order|twice" ;;
        parent) echo "played only from a parent|not a parent" ;;
        caps) echo "within its caps|units, its uplink bears" ;;
        loop) echo "no lasting parent loop| for " ;;
        liveness) echo "every live peer fed again|has had no parent" ;;
        wakeup) echo "within its caps|times within a second" ;;
    esac
}

# The edits that take its rule out: a line as written (found exactly once) and what it becomes.
edits() {
    case "$1" in
        once) # a chunk held already is played again
            mutate $peer 'guard chunk.epoch > epoch || store[chunk.seq] == nil else { return out }' 'guard true else { return out }' ;;
        parent) # a chunk from anyone is taken
            mutate $peer 'guard !config.isOrigin, parentSet[s] == from || asked else { return [] }' 'guard !config.isOrigin else { return [] }' ;;
        caps) # a subscribe is granted past the units the uplink bears
            mutate $peer '} else if !crowded, added + 1 + unservedSubstreams(besides: granted + [s]) <= residualUnits {' '} else if true {' ;;
        loop) # ancestry is ignored: in the choice of a parent, in a subscribe, and when news shows a loop. A loop
            # is fed nothing from the source, so its members also starve and leave it within the parent timeout
            # (2.4 s, under the 3 s a loop may stand): with ancestry alone ignored, 20 seeds pass. So the timeout goes
            # too (and with it the cut-offs measured in it: how far behind a peer may be and still offer a substream).
            timeout_edit
            mutate Sources/MeshCore/Mesh/ParentSelector.swift \
                'id != me && delay(in: substream) != nil && !(substream < ancestors.count && ancestors[substream].contains(me))' \
                'id != me && delay(in: substream) != nil'
            mutate $peer 'for s in valid where delay(of: s) != nil && !ancestors(of: s).contains(child) {' 'for s in valid where delay(of: s) != nil {'
            mutate $peer \
                'let looped = parentSet.substreams(from: peer).filter { s in s < info.ancestors.count && info.ancestors[s].contains(config.me) }' \
                'let looped: [Int] = []' ;;
        liveness) # a search that found no parent is never made again for the same substreams
            mutate Sources/MeshCore/Mesh/ParentSearch.swift 'return last.at + (last.version == version ? 1_000_000 : Self.spacing)' \
                'return .max / 2' ;;
        wakeup) # the pace's wait for a repair leaves out what is kept for live chunks (the bug the bound found)
            mutate Sources/MeshCore/Mesh/Egress.swift 'pacedUntil = now + bucket.wait(for: item.bytes, keep: keep, now: now)' \
                'pacedUntil = now + bucket.wait(for: item.bytes, now: now)' ;;
    esac
}

timeout_edit() {
    mutate $peer 'self.parentTimeout = max(2_000_000, 3 * Int64(plan.count) * chunkDuration)' 'self.parentTimeout = 600_000_000'
}

# Replaces the one place that holds the rule; fails if it is not there once (the rule moved: update `edits`).
mutate() {
    python3 -c '
import sys
path, old, new = sys.argv[1:4]
text = open(path, encoding="utf-8").read()
if text.count(old) != 1:
    sys.exit(f"{path}: the rule is not found once: {old}")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
' "$work/src/$1" "$2" "$3" || exit 2
}

names=("${@:-${all[@]}}")
for name in "${names[@]}"; do
    [ -n "$(invariant "$name")" ] || { echo "no mutant named $name (mutants: ${all[*]})" >&2; exit 2; }
done
failed=0
mkdir -p "$work"
for name in "${names[@]}"; do
    IFS='|' read -r want detail <<<"$(invariant "$name")"
    rm -rf "$work/src" && mkdir -p "$work/src"
    cp -r "$root/Package.swift" "$root/Sources" "$root/Tests" "$work/src/"
    [ ! -f "$root/Package.resolved" ] || cp "$root/Package.resolved" "$work/src/"
    edits "$name"
    echo "mutant $name: building" >&2
    if ! (cd "$work/src" && swift build -c release --product lsp2p-sim --scratch-path "$work/build" > "$work/build.log" 2>&1); then
        grep -E "error:" "$work/build.log" | head -5 >&2
        echo "mutant $name: did not build (the whole log: $work/build.log)" >&2
        exit 2
    fi
    set +e
    # Bounded: a mutant may also make the core wake itself every microsecond.
    out="$(timeout 600 "$work/build/release/lsp2p-sim" check --seeds "$seeds" --peers 100 --duration 45 -q 2>&1)"
    status=$?
    set -e
    found="$(grep -F "VIOLATION" <<<"$out" | grep -F "$want" | grep -F -- "$detail" | head -1)"
    if [ $status -eq 1 ] && [ -n "$found" ] && grep -q "replay: lsp2p-sim check --seeds" <<<"$out"; then
        echo "mutant $name: killed: $(cut -c1-200 <<<"$found")"
    else
        echo "mutant $name: SURVIVED (exit $status, wanted 1 with \"$want\" and \"$detail\"): $(tail -2 <<<"$out")"
        failed=1
    fi
done
exit $failed
