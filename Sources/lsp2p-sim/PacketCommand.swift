import ArgumentParser
import Foundation
import CommandSupport
import MeshSim

struct PacketCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packet",
        abstract: "The packet-level model: random nodes, distance-vector routes, wandering data items, energy.",
        discussion: """
        Nodes sit at random in a unit square, linked within --radius. Data items wander across it; the active node nearest one (within range) \
        within range of one sends a packet to its neighbours, and each forwards it at once to its next hop towards \
        the nearest receiver (distance-vector, periodic and triggered updates). Each packet received costs 1 energy, \
        each sent 1 + (distance/radius)². Writes topology.svg, flow.svg, inactive.svg, performance.svg and \
        performance.csv to --out. Example:
          lsp2p-sim packet --nodes 1000 --radius 0.06 --sources 3 --energy 500 --out sim-out/packet
        """
    )

    @Option(help: "Nodes in the unit square.")
    var nodes = 1_000

    @Option(help: "Radio range: nodes this close are linked.")
    var radius = 0.06

    @Option(help: "Data items wandering across the area (the nodes near one are its sources).")
    var sources = 3

    @Option(help: "Receivers (sinks), chosen at random.")
    var receivers = 1

    @Option(help: "Starting energy of every node.")
    var energy = 500.0

    @Option(help: "Packets a node sends before it retires (0: no limit).")
    var share = 300

    @Option(help: "Time steps to run (a packet hop takes one).")
    var steps = 300

    @Option(help: "Steps between periodic routing updates.")
    var updatePeriod = 10

    @Option(help: "Seed: the same seed gives the same numbers.")
    var seed: UInt64 = 1

    @Option(help: "Directory for the plots and performance.csv.")
    var out = "sim-out/packet"

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    func validate() throws {
        guard (2...200_000).contains(nodes) else { throw ValidationError("--nodes must be 2 to 200000") }
        guard radius > 0, radius <= 1.5 else { throw ValidationError("--radius must be in (0, 1.5]") }
        guard sources >= 1, receivers >= 1, receivers <= nodes else { throw ValidationError("--sources and --receivers must be at least 1 (receivers at most --nodes)") }
        guard sources <= 10_000, receivers <= 10_000, steps <= 1_000_000 else {
            throw ValidationError("--sources and --receivers at most 10000, --steps at most 1000000")
        }
        guard energy > 0, share >= 0, steps >= 1, updatePeriod >= 1 else {
            throw ValidationError("--energy, --steps and --update-period must be positive, --share not negative")
        }
    }

    func run() throws {
        var scenario = PacketScenario()
        scenario.nodes = nodes
        scenario.radius = radius
        scenario.sources = sources
        scenario.receivers = receivers
        scenario.energy = energy
        scenario.share = share
        scenario.steps = steps
        scenario.updatePeriod = updatePeriod
        scenario.seed = seed
        let progress = Progress(enabled: !quiet, label: "packet", total: Double(steps), unit: "steps")
        let network = PacketNetwork(scenario)
        network.run { progress.show(simulated: Double($0)) }
        progress.finish()
        let report = PacketReport(network)
        try writeOutput(to: out, report.write)
        print(report.summary)
        print("wrote \(out)/performance.csv and 4 plots, in \(String(format: "%.1f", Date().timeIntervalSince(progress.started))) s")
    }
}
