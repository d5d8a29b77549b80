import Foundation
import Plots

/// What `lsp2p-sim packet` writes: the maps, the performance plot and table, and the summary.
public struct PacketReport {
    public let network: PacketNetwork
    static let side = 600.0

    public init(_ network: PacketNetwork) { self.network = network }

    public var csv: String {
        var lines = ["step,generated,delivered,delivery_ratio,mean_delay_steps,energy_used,energy_used_total,active_nodes,routing_messages"]
        var total = 0.0
        for r in network.stepsDone {
            total += r.energyUsed
            lines.append("\(r.step),\(r.generated),\(r.delivered),\(String(format: "%.4f", r.deliveryRatio)),\(String(format: "%.3f", r.meanDelay)),\(String(format: "%.2f", r.energyUsed)),\(String(format: "%.2f", total)),\(r.activeNodes),\(r.routingMessages)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public var summary: String {
        let sc = network.scenario
        let generated = network.totalGenerated, delivered = network.totalDelivered
        let steps = network.stepsDone
        let delays = steps.reduce(0) { $0 + $1.delaySum }
        let energy = steps.reduce(0) { $0 + $1.energyUsed }
        let inactive = network.nodes.filter { !$0.active }
        let firstDeath = inactive.compactMap(\.inactiveAt).min()
        let degree = Double(network.neighbours.reduce(0) { $0 + $1.count }) / Double(max(1, sc.nodes))
        return [
            "\(sc.nodes) nodes, radius \(sc.radius) (mean degree \(String(format: "%.1f", degree))), \(sc.sources) data items, \(network.receivers.count) receiver(s), energy \(sc.energy), share \(sc.share), \(sc.steps) steps, seed \(sc.seed)",
            "packets: \(generated) generated, \(delivered) delivered (\(String(format: "%.1f", 100 * Double(delivered) / Double(max(1, generated))))%), mean delay \(String(format: "%.2f", Double(delays) / Double(max(1, delivered)))) hops",
            "energy used: \(String(format: "%.0f", energy)) of \(String(format: "%.0f", sc.energy * Double(sc.nodes))); routing updates: \(steps.reduce(0) { $0 + $1.routingMessages })",
            "inactive at the end: \(inactive.count) (\(inactive.filter { $0.inactiveReason == "energy" }.count) spent, \(inactive.filter { $0.inactiveReason == "share" }.count) after their share)" + (firstDeath.map { ", first at step \($0)" } ?? ""),
        ].joined(separator: "\n")
    }

    public func write(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let files = [("performance.csv", csv), ("topology.svg", topology), ("flow.svg", flow), ("inactive.svg", inactive),
                     ("performance.svg", performance)]
        for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
    }

    // MARK: maps of the unit square

    private func px(_ v: Double) -> String { Plot.fmt(20 + v * (Self.side - 40)) }
    private func py(_ v: Double) -> String { Plot.fmt(40 + (1 - v) * (Self.side - 40)) }

    private func map(_ title: String, _ body: [String]) -> String {
        Plot.document(["<rect width=\"\(Self.side)\" height=\"\(Self.side + 20)\" fill=\"white\"/>",
                       "<text x=\"\(Self.side / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(Plot.escape(title))</text>"] + body,
                      width: Self.side, height: Self.side + 20)
    }

    private func nodeDots(color: (Int) -> String) -> [String] {
        network.nodes.indices.map { i in
            let n = network.nodes[i]
            return "<circle cx=\"\(px(n.x))\" cy=\"\(py(n.y))\" r=\"2\" fill=\"\(color(i))\"><title>node \(i)</title></circle>"
        } + network.receivers.map { r in
            let n = network.nodes[r]
            return "<rect x=\"\(Plot.fmt(20 + n.x * (Self.side - 40) - 5))\" y=\"\(Plot.fmt(40 + (1 - n.y) * (Self.side - 40) - 5))\" width=\"10\" height=\"10\" fill=\"\(Plot.palette[3])\"><title>receiver \(r)</title></rect>"
        }
    }

    private func edge(_ a: Int, _ b: Int, _ style: String) -> String {
        let (p, q) = (network.nodes[a], network.nodes[b])
        return "<line x1=\"\(px(p.x))\" y1=\"\(py(p.y))\" x2=\"\(px(q.x))\" y2=\"\(py(q.y))\" \(style)/>"
    }

    var topology: String {
        let r = network.scenario.radius * (Self.side - 40)
        var body = network.nodes.map { "<circle cx=\"\(px($0.x))\" cy=\"\(py($0.y))\" r=\"\(Plot.fmt(r))\" fill=\"\(Plot.palette[0])\" fill-opacity=\"0.025\"/>" }
        for (i, list) in network.neighbours.enumerated() {
            for j in list where j > i { body.append(edge(i, j, "stroke=\"#bbb\" stroke-width=\"0.5\"")) }
        }
        body += nodeDots { _ in Plot.palette[0] }
        return map("Topology: \(network.nodes.count) nodes, links within \(network.scenario.radius) (shaded: ranges; red: receivers)", body)
    }

    var flow: String {
        let busiest = Double(network.linkUse.values.max() ?? 1)
        var body: [String] = []
        for (key, uses) in network.linkUse.sorted(by: { $0.key < $1.key }) {
            let (a, b) = (key / network.nodes.count, key % network.nodes.count)
            let w = 0.3 + 3 * Double(uses) / busiest
            body.append(edge(a, b, "stroke=\"\(Plot.palette[1])\" stroke-width=\"\(Plot.fmt(w))\" stroke-opacity=\"0.7\""))
        }
        for (i, trail) in network.trails.enumerated() {
            let points = trail.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
            body.append("<polyline fill=\"none\" stroke=\"\(Plot.palette[(i + 4) % Plot.palette.count])\" stroke-dasharray=\"4,3\" points=\"\(points)\"><title>data item \(i)</title></polyline>")
        }
        body += nodeDots { _ in "#666" }
        return map("Flow: links that carried packets (width: use); dashed: data items", body)
    }

    var inactive: String {
        let steps = Double(max(1, network.scenario.steps))
        let body = nodeDots { i in
            guard let at = network.nodes[i].inactiveAt else { return "#ccc" }
            // Early deaths dark red, late ones yellow.
            let f = Double(at) / steps
            return "rgb(\(Int(180 + 75 * f)),\(Int(30 + 190 * f)),30)"
        }
        let dead = network.nodes.filter { !$0.active }.count
        return map("Inactive nodes: \(dead) (dark red early, yellow late; grey: still active)", body)
    }

    var performance: String {
        let rows = network.stepsDone
        let nodes = Double(max(1, network.nodes.count))
        let maxDelay = max(1, rows.map(\.meanDelay).max() ?? 1)
        let maxEnergy = max(1e-9, rows.map(\.energyUsed).max() ?? 1)
        let series = [
            Plot.Series(name: "delivery ratio", points: rows.map { (Double($0.step), $0.deliveryRatio) }),
            Plot.Series(name: "mean delay / \(Plot.fmt(maxDelay)) hops", points: rows.map { (Double($0.step), $0.meanDelay / maxDelay) }),
            Plot.Series(name: "energy used / \(Plot.fmt(maxEnergy)) per step", points: rows.map { (Double($0.step), $0.energyUsed / maxEnergy) }),
            Plot.Series(name: "active nodes / \(Int(nodes))", points: rows.map { (Double($0.step), Double($0.activeNodes) / nodes) }),
        ]
        return Plot.lines(title: "Per step (each line scaled to its maximum)", xLabel: "step", yLabel: "fraction", series: series, y: 0...1)
    }
}
