import MeshCore
import Foundation
import Plots

/// The overlay comparison: `report.json` (snake_case), `report.md`, SVG plots, and the summary for the screen.
public struct OverlayReport: Encodable {
    public struct Scenario: Encodable {
        var peers: Int
        var rateBps: Double
        var k: Int
        var uplinks: String
        var originUplink: String
        var chunkMs: Double
        var deadlineMs: Double
        var churn: String
        var durationS: Double
        var warmupS: Double
        var seed: UInt64
        /// Kumar, Liu and Ross's bound, and what the report's rate ratios are against: min(rate, r_max).
        var rMaxBps: Double
        var targetRateBps: Double
        var meanUplinkStreams: Double
        var churnEvents: Int
    }

    public var scenario: Scenario
    public var algorithms: [String: OverlayResult]
    /// The order they ran in (JSON objects have none).
    var order: [OverlayAlgorithm]

    public init(world: OverlayWorld, results: [(OverlayAlgorithm, OverlayResult)]) {
        let sc = world.scenario
        scenario = Scenario(
            peers: sc.peers, rateBps: world.rate, k: sc.k, uplinks: sc.uplinks.description, originUplink: sc.originUplink.description,
            chunkMs: Double(sc.chunkDuration) / 1_000, deadlineMs: Double(sc.deadline) / 1_000, churn: sc.churn.description,
            durationS: Double(sc.duration) / 1e6, warmupS: Double(sc.warmup) / 1e6, seed: sc.seed, rMaxBps: world.maxRate,
            targetRateBps: min(world.rate, world.maxRate),
            meanUplinkStreams: world.uplink.dropFirst().prefix(sc.peers).reduce(0, +) / Double(max(1, sc.peers)) / world.rate,
            churnEvents: world.events.filter { $0.kind != .join }.count)
        algorithms = Dictionary(uniqueKeysWithValues: results.map { ($0.0.rawValue, $0.1) })
        order = results.map(\.0)
    }

    enum CodingKeys: String, CodingKey { case scenario, algorithms }

    private var rows: [(String, OverlayResult)] { order.map { ($0.rawValue, algorithms[$0.rawValue]!) } }

    /// One screen: the scenario and a line per algorithm.
    public var summary: String {
        let s = scenario
        var lines = [
            "\(s.peers) peers, \(BitRate(bitsPerSecond: s.rateBps)) in \(s.k) substreams, uplinks \(s.uplinks) (mean \(String(format: "%.2f", s.meanUplinkStreams))x), origin \(s.originUplink), churn \(s.churn), \(Int(s.durationS)) s, seed \(s.seed)",
            "r_max \(BitRate(bitsPerSecond: s.rMaxBps)); rates below are against \(BitRate(bitsPerSecond: s.targetRateBps))",
            "",
            "algorithm           max delay  mean delay  rate    on time   origin  parent changes  wall",
        ]
        for (name, r) in rows {
            guard r.peersMeasured > 0 else {
                lines.append(name.padding(toLength: 18, withPad: " ", startingAt: 0) + " no peer measured: none stayed a whole second past its first 5 s and the warm-up")
                continue
            }
            lines.append(name.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: " %8.0f ms %8.0f ms  %6.3f  %7.3f%%  %5.2f  %14d  %6.1f s",
                                r.maxDelayMs, r.meanDelayMs, r.rateRatio, r.onTime * 100, r.originLoad, r.parentChanges, r.wallSeconds))
        }
        if let f = algorithms["fastmesh"] {
            for other in OverlayAlgorithm.allCases.map(\.rawValue) where other != "fastmesh" {
                guard let o = algorithms[other], o.maxDelayMs > 0 else { continue }
                lines.append(String(format: "fastmesh max delay / %@: %.2f", other, f.maxDelayMs / o.maxDelayMs))
            }
            if f.loopsSeen > 0 { lines.append("fastmesh: a loop in \(f.loopsSeen) samples") }
            if let scale = f.scale { lines += [""] + scale.lines }
        }
        return lines.joined(separator: "\n")
    }

    var markdown: String {
        let s = scenario
        var md = [
            "# lsp2p-sim overlay", "",
            "\(s.peers) peers, stream \(BitRate(bitsPerSecond: s.rateBps)) in \(s.k) substreams of \(Int(s.chunkMs)) ms chunks, uplinks \(s.uplinks) (mean \(String(format: "%.2f", s.meanUplinkStreams))× the rate), origin \(s.originUplink), churn \(s.churn) (\(s.churnEvents) departures), \(Int(s.durationS)) s measured after \(Int(s.warmupS)) s, deadline \(Int(s.deadlineMs)) ms, seed \(s.seed).",
            "r_max = \(BitRate(bitsPerSecond: s.rMaxBps)) (design §4); rate ratios are against min(rate, r_max) = \(BitRate(bitsPerSecond: s.targetRateBps)).", "",
            "| algorithm | max delay ms | mean delay ms | rate ratio | on time | origin load (streams) | parent changes | p50 / p99 chunk delay ms | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (name, r) in rows {
            let p = { (q: Double) in r.delayCdfMs.first { $0[0] == q }?[1] ?? 0 }
            md.append("| \(name) | \(Int(r.maxDelayMs)) | \(Int(r.meanDelayMs)) | \(String(format: "%.3f", r.rateRatio)) | \(String(format: "%.3f", r.onTime * 100)) % | \(String(format: "%.2f", r.originLoad)) | \(r.parentChanges) | \(Int(p(50))) / \(Int(p(99))) | \(String(format: "%.1f", r.wallSeconds)) |")
        }
        if let scale = algorithms["fastmesh"]?.scale { md += ["", "## fastmesh at scale", ""] + scale.lines.map { "- " + $0 } }
        md += ["", "A peer's delay: the median over its measured seconds of that second's latest chunk (ingest to arrival).",
               "`fastmesh` is the real `MeshPeer` core on the simulated network; the others are built with full knowledge and repaired at once on churn.",
               "", "![delay CDF](delay-cdf.svg)", "![peer delays](peer-delays.svg)", "![max delay](max-delay.svg)", "![rate](rate.svg)", ""]
        return md.joined(separator: "\n")
    }

    public func write(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: dir.appendingPathComponent("report.json"))
        let cdf = rows.map { Plot.Series(name: $0.0, points: $0.1.delayCdfMs.map { (x: $0[1], y: $0[0] / 100) }) }
        let peers = rows.map { name, r in
            Plot.Series(name: name, points: r.peerDelaysMs.enumerated().map { (x: Double($0.offset) / Double(max(1, r.peerDelaysMs.count - 1)), y: $0.element) })
        }
        let files = [
            ("report.md", markdown),
            ("delay-cdf.svg", Plot.lines(title: "Chunk delay from the source", xLabel: "delay, ms", yLabel: "fraction of chunks", series: cdf, y: 0...1)),
            ("peer-delays.svg", Plot.lines(title: "Peer delays, lowest first", xLabel: "fraction of peers", yLabel: "delay, ms", series: peers)),
            ("max-delay.svg", Plot.bars(title: "Max delay from the source", xLabel: rows.map(\.0).joined(separator: ", "), yLabel: "ms",
                                        items: rows.map { ($0.0, $0.1.maxDelayMs) })),
            ("rate.svg", Plot.bars(title: "Achieved rate / min(rate, r_max)", xLabel: rows.map(\.0).joined(separator: ", "), yLabel: "ratio",
                                   items: rows.map { ($0.0, $0.1.rateRatio) })),
        ]
        for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
    }
}

extension ScaleFigures {
    /// The figures, a line each.
    var lines: [String] {
        func c(_ name: String, _ x: Control) -> String {
            String(format: "control %@: %.1f msg/s, %.0f B/s (%.2f %% of the stream)", name, x.messagesPerS, x.bytesPerS, x.shareOfStream * 100)
        }
        let held = maxLinksHolder.map { h in
            String(format: " (%@ at %.1f s: %d opened by it, %d by others; %d children, %d parents)",
                   h.isOrigin ? "the origin" : "a peer", Double(h.at) / 1e6, h.opened, h.byOthers, h.children, h.parents)
        } ?? ""
        return [
            c("at the origin", origin), c("median peer", medianPeer), c("busiest peer", busiestPeer),
            String(format: "join to first chunk (first joiners): p50 %.0f ms, p99 %.0f ms, max %.0f ms; %d without a chunk",
                   firstChunkP50Ms, firstChunkP99Ms, firstChunkMaxMs, withoutChunk),
            "most links at one node: \(maxLinks)\(held); mesh walked from the origin lists \(meshListed) of \(meshAlive) live peers",
            String(format: "wake-ups %.2f per peer per second; parent changes %.2f per peer per minute over the run, %.2f over the measured window",
                   wakeupsPerPeerSecond, parentChangesPerPeerMinute, parentChangesPerPeerMinuteMeasured),
            "parent changes by cause: " + parentChangeCauses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "links opened by cause: " + dialCauses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "messages per peer per second: " + messagesPerPeerSecond.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            String(format: "over the measured window: wake-ups %.2f per peer per second; messages ", wakeupsPerPeerSecondMeasured)
                + messagesPerPeerSecondMeasured.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
        ]
    }
}
