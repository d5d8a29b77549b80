import ArgumentParser
import ChunkMesh
import Foundation
import CommandSupport
import LSP2PKit
import Soak

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Soak-test chunk deadlines: an origin, relays and players as real processes on loopback, with churn.",
        discussion: """
        Progress goes to stderr each second; at the end --out holds report.json, report.md, the SVG plots \
        (latency-cdf, on-time, delay, mesh), each player's report and every process's log. Exits 1 when the \
        on-time ratio ends below --min-on-time. The origin gets twice the stream's rate of upload. Example:
          lsp2p-relay soak --relays 12 --players 4 --duration 60 --churn relays:10s,players:20s --out /tmp/soak
        """
    )

    @Option(name: .shortAndLong, help: "Input, played as live and looped.")
    var input = defaultSample

    @Option(help: "Relays.")
    var relays = 12

    @Option(help: "Players.")
    var players = 4

    @Option(help: "Seconds to run.")
    var duration: Double = 60

    @Option(help: "Target chunk duration in milliseconds.")
    var chunkMs = 200

    @Option(help: "Playout deadline in milliseconds after a chunk is cut.")
    var deadlineMs = 2000

    @Option(help: "Relay uplinks: a multiple of the stream's rate (4x, 2x-6x) or bits/s (8M, 4M-16M); ranges drawn from the seed.")
    var uplinkDist = UplinkDistribution(argument: "4x")!

    @Option(help: "Churn: off, or relays:EVERY[:DOWN] and/or players:EVERY in seconds, e.g. relays:10s:2s,players:20s.")
    var churn = ChurnSpec(argument: "relays:10s,players:20s")!

    @Option(help: "Relays' upload budgets in bytes: off, or LOW[-HIGH] (50M, 20M-200M) drawn from the seed. A relay that spends its budget hands its children over and exits; a new one takes its place.")
    var budgetDist = BudgetDistribution.off

    @Option(help: "Seed for uplinks, budgets and churn.")
    var seed: UInt64 = 1

    @Option(help: "Folder for the report, plots and logs.")
    var out = "soak-out"

    @Option(help: "Fail (exit 1) when the on-time ratio ends below this.")
    var minOnTime = 0.99

    @OptionGroup var common: CommonOptions

    /// The repository's sample, when run from a checkout.
    static var defaultSample: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // .build/<config>/lsp2p-relay → the package root.
        let root = exe.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sample = root.appendingPathComponent("samples/sample.mp4").path
        return FileManager.default.fileExists(atPath: sample) ? sample : "samples/sample.mp4"
    }

    func validate() throws {
        guard relays >= 1, relays <= 500 else { throw ValidationError("--relays must be 1 to 500") }
        guard players >= 1, players <= 200 else { throw ValidationError("--players must be 1 to 200") }
        guard duration >= 5 else { throw ValidationError("--duration must be at least 5 seconds") }
        guard (20...10_000).contains(chunkMs) else { throw ValidationError("--chunk-ms must be 20 to 10000") }
        guard deadlineMs > 0 else { throw ValidationError("--deadline-ms must be positive") }
        guard (0...1).contains(minOnTime) else { throw ValidationError("--min-on-time must be 0 to 1") }
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.soak")
        var service = SoakService(input: input, relays: relays, players: players, duration: duration, chunkMs: chunkMs,
                                  deadlineMs: deadlineMs, uplinks: uplinkDist, churn: churn, seed: seed, out: out,
                                  minOnTime: minOnTime, quiet: common.quiet)
        service.budgets = budgetDist
        try exitingOnFailure("lsp2p-relay") { try service.run(logger: logger) }
    }
}

extension ChurnSpec: ExpressibleByArgument {}
extension BudgetDistribution: ExpressibleByArgument {}
