import ArgumentParser
import CommandSupport
import Foundation
import LSP2PKit
import MeshSim

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Hunt bugs in the real mesh core: seeded scenarios with faults, invariants checked after every event.",
        discussion: """
        Each seed draws a scenario: --peers peers with uneven uplinks (some claim four times what they send) joining \
        in waves, then (from a quarter to half the run) kills, graceful leaves, budget exits, sometimes an origin \
        restart, delay spikes and loss on links; then quiet. After every event a core handles: chunks played once and \
        runs in order, only from a parent; units within what each uplink bears; at most 2 x maxLinks links; no parent \
        loop lasting past \(MeshCheck.loopBound / 1_000_000) s; from \(MeshCheck.livenessBound / 1_000_000) s after the \
        last fault no live peer without a parent in a substream for \(MeshCheck.orphanBound / 1_000_000) s, and at the \
        end every live peer has had a chunk in the last 5 s. A violation prints the seed, event, invariant and a \
        command that replays it with every core's decisions; exit 1. Examples:
          lsp2p-sim check --seeds 1-200 --peers 200 --duration 60
          lsp2p-sim check --seeds 17 --peers 200 --duration 60 --trace > seed17.log
        """
    )

    @Option(help: "Seeds to run: N or A-B.")
    var seeds = "1-20"

    @Option(help: "Peers in each scenario.")
    var peers = 200

    @Option(help: "Simulated seconds of each scenario (at least 40: joins, faults, then quiet).")
    var duration = 60

    @Option(help: "Seeds whose violations are open findings (comma list): reported, not failed; exit 1 once one passes, so the list is kept true.")
    var known = ""

    @Flag(help: "Liveness asks for a chunk of every substream lately, not of any (a mute holding the origin's only unit of one starves it everywhere: an open finding).")
    var everySubstream = false

    @Flag(help: "Print every core's decisions (one line an event) to stdout: for replaying one seed.")
    var trace = false

    @Flag(name: .shortAndLong, help: "No line per seed.")
    var quiet = false

    var range: ClosedRange<UInt64>? {
        let parts = seeds.split(separator: "-", omittingEmptySubsequences: false).map { UInt64($0) }
        guard let first = parts.first ?? nil else { return nil }
        if parts.count == 1 { return first...first }
        guard parts.count == 2, let last = parts[1], first <= last else { return nil }
        return first...last
    }

    var knownSeeds: Set<UInt64>? {
        let parts = known.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        return parts.contains(nil) ? nil : Set(parts.compactMap { $0 })
    }

    func validate() throws {
        guard let range, range.upperBound - range.lowerBound < 1_000_000 else { throw ValidationError("--seeds must be N or A-B (A <= B, at most a million seeds)") }
        guard (2...20_000).contains(peers) else { throw ValidationError("--peers must be 2 to 20000") }
        guard (40...3_600).contains(duration) else { throw ValidationError("--duration must be 40 to 3600 s") }
        if trace, range.lowerBound != range.upperBound { throw ValidationError("--trace replays one seed: give --seeds N") }
        guard knownSeeds != nil else { throw ValidationError("--known must be a comma list of seeds") }
    }

    func run() throws {
        var check = MeshCheck()
        check.peers = peers
        check.duration = duration
        check.everySubstream = everySubstream
        if trace { check.trace = { print($0) } }
        let started = Date()
        var (runs, events, checks) = (0, 0, 0)
        var violations: [MeshCheck.Violation] = []
        var stillOpen = 0
        var fixed: [UInt64] = []
        let known = knownSeeds!
        for seed in range! {
            let outcome = check.run(seed: seed)
            runs += 1
            events += outcome.events
            checks += outcome.checks
            if let violation = outcome.violation {
                if known.contains(seed) { stillOpen += 1 } else { violations.append(violation) }
                printErr("\(known.contains(seed) ? "KNOWN (open finding)" : "VIOLATION") \(violation)")
                printErr("  replay: lsp2p-sim check --seeds \(seed) --peers \(peers) --duration \(duration)\(everySubstream ? " --every-substream" : "") --trace")
            } else if known.contains(seed) {
                fixed.append(seed)
                printErr("seed \(seed) is listed in --known but holds every invariant now: take it off the list")
            } else if !quiet {
                printErr(String(format: "seed %llu: ok, %d events, %d checks (%.1f s wall so far)", seed, outcome.events, outcome.checks,
                                Date().timeIntervalSince(started)))
            }
        }
        let summary = String(format: "%d seeds, %d events, %d invariant checks, %d violations (%d more known), %.1f s", runs, events, checks,
                             violations.count, stillOpen, Date().timeIntervalSince(started))
        if trace { printErr(summary) } else { print(summary) }
        if !violations.isEmpty || !fixed.isEmpty { throw ExitCode.failure }
    }
}
