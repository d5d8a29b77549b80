import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import CommandSupport
import LSP2PKit
import Soak
import Logging

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Soak-test chunk deadlines: an origin, relays and players as real processes, with churn, on loopback or an emulated LAN.",
        discussion: """
        Progress goes to stderr each second; at the end --out holds report.json, report.md, the SVG plots \
        (latency-cdf, on-time, delay, mesh), each player's report and every process's log. Exits 1 when the \
        on-time ratio ends below --min-on-time. The origin gets twice the stream's rate of upload.
        With --lan (root only) every host runs in a network namespace of its own on one bridge, its uplink shaped \
        with tc tbf to what --uplink-dist draws for it (players too; downlinks unshaped), addresses from \
        198.18.0.0/15; the report adds each host's real and declared uplink, what it sent and the units its children \
        held. Everything is torn down at exit, on a signal, and by a watchdog if the soak itself dies. Examples:
          lsp2p-relay soak --relays 12 --players 4 --duration 60 --churn relays:10s,players:20s --out /tmp/soak
          sudo lsp2p-relay soak --lan --relays 30 --players 8 --uplink-dist 0.5x-6x --declared none --duration 600
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

    @Flag(help: "Run each host in its own network namespace on one bridge, its uplink shaped with tc tbf (needs root).")
    var lan = false

    @Option(help: "What relays and players are told of their uplinks: none (the default with --lan: they find out), honest (the default on loopback), or Nx (N times the real one).")
    var declared: DeclaredUplink?

    @Option(help: "Players join this many seconds after the relays.")
    var warmup: Double = 0

    @Option(help: "Log level of the relays and players (their logs go to --out/logs; debug says why each changed parents).")
    var nodeLogLevel: Logger.Level = .info

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
        guard duration >= 5, duration <= Duration.maxArgumentSeconds else { throw ValidationError("--duration must be at least 5 seconds (and at most ten years)") }
        guard (20...10_000).contains(chunkMs) else { throw ValidationError("--chunk-ms must be 20 to 10000") }
        guard (1...3_600_000).contains(deadlineMs) else { throw ValidationError("--deadline-ms must be 1 to 3600000 (an hour)") }
        guard (0...1).contains(minOnTime) else { throw ValidationError("--min-on-time must be 0 to 1") }
        guard warmup >= 0, warmup < duration else { throw ValidationError("--warmup must be 0 or more, and less than --duration") }
        if !lan, declared == DeclaredUplink.none { throw ValidationError("--declared none needs --lan: on loopback nothing limits what a node sends") }
        if lan, !EmulatedLAN.isPermitted { throw ValidationError("--lan needs root (network namespaces and tc); run it as root or through sudo") }
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.soak")
        var service = SoakService(input: input, relays: relays, players: players, duration: duration, chunkMs: chunkMs,
                                  deadlineMs: deadlineMs, uplinks: uplinkDist, churn: churn, seed: seed, out: out,
                                  minOnTime: minOnTime, quiet: common.quiet)
        service.budgets = budgetDist
        service.lan = lan
        service.declared = declared ?? (lan ? .none : .honest)
        service.warmup = warmup
        service.nodeLogLevel = nodeLogLevel.rawValue
        try exitingOnFailure("lsp2p-relay") { try service.run(logger: logger) }
    }
}

extension ChurnSpec: ExpressibleByArgument {}
extension BudgetDistribution: ExpressibleByArgument {}
extension DeclaredUplink: ExpressibleByArgument {}
