import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import CommandSupport
import MeshSim

extension OverlayAlgorithm: ExpressibleByArgument {}
extension OverlayChurn: ExpressibleByArgument {}
extension OverlayBootstrap: ExpressibleByArgument {}

struct OverlayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay",
        abstract: "Compare Fast-Mesh (the real mesh core) with centralized, random and tree meshes on one simulated network.",
        discussion: """
        Peers sit at random on a seeded wide-area network (a plane crossed in 60 ms plus 1-15 ms access delays). \
        Every algorithm sees the same peers, uplinks and churn. Writes report.json, report.md and SVG plots to --out. \
        Fast-Mesh runs every peer's core: 1,000 peers for 120 s take about 15 s of a release build, 10,000 about 2.5 minutes. Example:
          lsp2p-sim overlay --peers 10000 --algo fastmesh --duration 120 --out sim-out/10k
        """
    )

    @Option(help: "Peers besides the origin.")
    var peers = 1_000

    @Option(help: "Stream rate, bits/s (K/M/G suffixes).")
    var rate = BitRate(bitsPerSecond: 1_000_000)

    @Option(help: "Substreams: the mesh is k trees.")
    var k = 4

    @Option(help: "Peers' uplinks: a multiple of the rate (4x, 0.5x-4x) or bits/s (8M, 2M-16M), drawn from the seed.")
    var uplinks = UplinkDistribution(argument: "0.5x-4x")!

    @Option(help: "The origin's uplink, as --uplinks.")
    var originUplink = UplinkDistribution(argument: "2x")!

    @Option(help: "Algorithms, comma-separated: \(OverlayAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")).")
    var algo = "fastmesh,centralized,random,tree"

    @Option(help: "Churn: off, or fail:EVERY[:DOWN] and/or leave:EVERY[:DOWN] (seconds; a new peer joins DOWN s later).")
    var churn = OverlayChurn()

    @Option(help: "Simulated stream time, seconds (a quarter of it is warm-up, not measured).")
    var duration = 120.0

    @Option(help: "Chunk duration, milliseconds.")
    var chunkMs = 200

    @Option(help: "A chunk is on time within this of its ingest, milliseconds.")
    var deadlineMs = 3_000

    @Option(help: "Seed: the same seed gives the same numbers.")
    var seed: UInt64 = 1

    @Option(help: "Where fastmesh joiners bootstrap: any (a live peer at random) or origin.")
    var bootstrap: OverlayBootstrap = .any

    @Option(help: "Directory for report.json, report.md and the plots.")
    var out = "sim-out/overlay"

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    var algorithms: [OverlayAlgorithm] {
        algo.split(separator: ",").compactMap { OverlayAlgorithm(rawValue: String($0)) }
    }

    func validate() throws {
        guard algo.split(separator: ",").allSatisfy({ OverlayAlgorithm(rawValue: String($0)) != nil }), !algorithms.isEmpty else {
            throw ValidationError("--algo: a comma list of \(OverlayAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...1_000_000).contains(peers) else { throw ValidationError("--peers must be 1 to 1000000") }
        guard (1...64).contains(k) else { throw ValidationError("--k must be 1 to 64") }
        guard (10...86_400).contains(duration) else { throw ValidationError("--duration must be 10 to 86400 s") }
        guard (20...10_000).contains(chunkMs) else { throw ValidationError("--chunk-ms must be 20 to 10000") }
        guard deadlineMs > 0, Double(deadlineMs) < duration * 500 else { throw ValidationError("--deadline-ms must be positive and under half the duration") }
    }

    func run() throws {
        var scenario = OverlayScenario()
        scenario.peers = peers
        scenario.rate = rate
        scenario.k = k
        scenario.uplinks = uplinks
        scenario.originUplink = originUplink
        scenario.churn = churn
        scenario.duration = Int64(duration * 1e6)
        scenario.chunkDuration = Int64(chunkMs) * 1_000
        scenario.deadline = Int64(deadlineMs) * 1_000
        scenario.seed = seed
        scenario.bootstrap = bootstrap
        scenario.joinSpread = min(10_000_000, scenario.duration / 10)
        let world = OverlayWorld(scenario)
        var results: [(OverlayAlgorithm, OverlayResult)] = []
        for algorithm in algorithms {
            let progress = Progress(enabled: !quiet, label: algorithm.rawValue, total: duration)
            results.append((algorithm, OverlaySimulation.run(algorithm, world: world) { progress.show(simulated: Double($0) / 1e6) }))
            progress.finish()
        }
        let report = OverlayReport(world: world, results: results)
        try writeOutput(to: out, report.write)
        print(report.summary)
        print("report: \(out)/report.md")
    }
}

/// Progress on stderr: one line redrawn a few times a second on a terminal, else a line each tenth of the way.
final class Progress {
    let enabled: Bool
    let label: String
    let total: Double
    let unit: String
    let started = Date()
    private let terminal = isatty(STDERR_FILENO) == 1
    private var last = Date.distantPast
    private var lastTenth = 0

    init(enabled: Bool, label: String, total: Double, unit: String = "s simulated") {
        self.enabled = enabled
        self.label = label
        self.total = total
        self.unit = unit
    }

    func show(simulated: Double) {
        guard enabled else { return }
        let wall = Date().timeIntervalSince(started)
        let line = String(format: "%@: %.0f/%.0f %@, %.1f s wall", label, simulated, total, unit, wall)
        if terminal {
            guard Date().timeIntervalSince(last) > 0.25 else { return }
            last = Date()
            write("\r\(line)\u{1B}[K")
        } else {
            let tenth = Int(simulated / max(1e-9, total) * 10)
            guard tenth > lastTenth else { return }
            lastTenth = tenth
            write(line + "\n")
        }
    }

    func finish() {
        guard enabled, terminal else { return }
        write("\r\u{1B}[K")
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
