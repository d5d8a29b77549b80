import Foundation
import LSP2PKit
import Plots

/// What a soak found: `report.json` (snake_case keys), `report.md`, and the SVG plots.
struct SoakResult: Encodable {
    struct Scenario: Encodable {
        var input: String
        var relays, players: Int
        var durationS: Double
        var chunkMs, deadlineMs: Int
        var uplinkDist, churn, budgetDist: String
        var seed: UInt64
        var streamRateBps: Double
        var originUplinkBps: Double
        var minOnTime: Double
        var lan: Bool
        var declared: String
        var warmupS: Double
    }

    struct Totals: Encodable {
        var chunksExpected = 0, chunksReceived = 0, chunksOnTime = 0, chunksLate = 0, chunksMissing = 0, bytesReceived = 0
        var onTimeRatio = 1.0
        /// The worst player's figure for each.
        var latencyMs = Report.Latency(p50: 0, p90: 0, p99: 0, max: 0)
    }

    struct Player: Encodable {
        var name: String
        var joinedS: Double
        var report: Report
    }

    struct Event: Encodable {
        var t: Double
        var kind: String
        var target: String
    }

    struct Sample: Encodable {
        var t: Double
        var onTime, expected: Int
        var p99Ms: Double
        var relaysUp, playersUp: Int
    }

    struct RSS: Encodable {
        var t: Double
        var mib: Double
    }

    /// After each relay kill, the time until every player it fed directly had new parents for all it took there
    /// (from the players' reports). Each kill is one of: timed (`count`), `unrecovered` (not by 60 s, or by the
    /// end), or `not_observed` (it fed no player directly: its subtree's players show in the on-time ratio).
    struct Recovery: Encodable {
        var count: Int
        var unrecovered: Int
        var notObserved: Int
        var p50Ms, p99Ms, maxMs: Double
        var allMs: [Double]
    }

    /// A process on an emulated LAN's host (`soak --lan`): its real uplink and what it was told, what it sent,
    /// the units of upload its children took from it (at the last walk of the mesh and at most), and for a player
    /// its on-time ratio.
    struct Host: Encodable {
        var name: String
        var role: String
        /// Origin, relays, players: the report's order.
        var order: Int
        var address: String
        var uplinkBps: Double
        var declaredBps: Double?
        /// Its real uplink in substream units.
        var unitsItCanSend: Int
        var bytesSent = 0
        /// Packets its shaped uplink dropped (its queue full) while it ran.
        var uplinkDrops = 0
        var seconds = 0.0
        /// Units it offered (held + residual), held, and the most held at any walk of the mesh.
        var unitsOffered = 0
        var unitsHeld = 0
        var unitsHeldMax = 0
        var children = 0
        var onTimeRatio: Double?

        /// Bits/s it sent while it ran.
        var sentBps: Double { seconds > 0 ? Double(bytesSent) * 8 / seconds : 0 }

        enum CodingKeys: String, CodingKey {
            case name, role, address, uplinkBps, declaredBps, unitsItCanSend, bytesSent, uplinkDrops, seconds, unitsOffered, unitsHeld, unitsHeldMax,
                 children, onTimeRatio
        }
    }

    struct OriginLoad: Encodable {
        var bytesSent: Int
        var bitsPerSecond: Double
        /// In streams' worth: what the mesh saves is players minus this.
        var streams: Double
    }

    var scenario: Scenario
    var elapsedS: Double
    var totals: Totals
    var players: [Player]
    var recovery: Recovery
    var originLoad: OriginLoad
    var relayRssMib: [RSS]
    var events: [Event]
    var samples: [Sample]
    var mesh: MeshMap?
    /// On an emulated LAN, each process and its host.
    var hosts: [Host]?

    init(service: SoakService, streamRate: Double, elapsed: Double, players: [Player], events: [Event], samples: [Sample],
         recoveries: [Double], unrecovered: Int, notObserved: Int, originBytes: Int, rss: [RSS], mesh: MeshMap?) {
        scenario = Scenario(input: service.input, relays: service.relays, players: service.players, durationS: service.duration,
                            chunkMs: service.chunkMs, deadlineMs: service.deadlineMs, uplinkDist: "\(service.uplinks)",
                            churn: "\(service.churn)", budgetDist: "\(service.budgets)", seed: service.seed, streamRateBps: streamRate, originUplinkBps: 2 * streamRate,
                            minOnTime: service.minOnTime, lan: service.lan, declared: "\(service.declared)", warmupS: service.warmup)
        elapsedS = (elapsed * 10).rounded() / 10
        var t = Totals()
        for p in players.map(\.report) {
            t.chunksExpected += p.chunksExpected
            t.chunksReceived += p.chunksReceived
            t.chunksOnTime += p.chunksOnTime
            t.chunksLate += p.chunksLate
            t.chunksMissing += p.chunksMissing
            t.bytesReceived += p.bytesReceived
            t.latencyMs = Report.Latency(p50: max(t.latencyMs.p50, p.latencyMs.p50), p90: max(t.latencyMs.p90, p.latencyMs.p90),
                                         p99: max(t.latencyMs.p99, p.latencyMs.p99), max: max(t.latencyMs.max, p.latencyMs.max))
        }
        t.onTimeRatio = t.chunksExpected == 0 ? 0 : Double(t.chunksOnTime) / Double(t.chunksExpected)
        totals = t
        self.players = players
        let sorted = recoveries.sorted()
        func pct(_ q: Double) -> Double { sorted.isEmpty ? 0 : (sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]).rounded() }
        recovery = Recovery(count: sorted.count, unrecovered: unrecovered, notObserved: notObserved, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: sorted.last ?? 0,
                            allMs: recoveries.map { $0.rounded() })
        let bps = elapsed > 0 ? Double(originBytes) * 8 / elapsed : 0
        originLoad = OriginLoad(bytesSent: originBytes, bitsPerSecond: bps.rounded(), streams: (bps / streamRate * 100).rounded() / 100)
        relayRssMib = rss
        self.events = events
        self.samples = samples
        self.mesh = mesh
    }

    func write(to dir: URL) throws {
        let encoder = JSONEncoder.reports
        try encoder.encode(self).write(to: dir.appendingPathComponent("report.json"))
        try markdown.write(to: dir.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
        for (name, svg) in plots { try svg.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
    }

    var summary: String {
        String(format: "soak: %d player runs, on time %.3f%% (%d of %d), latency p99 %.0f ms (worst player), recoveries %d (p99 %.0f ms, %d not recovered), origin %.2f streams",
               players.count, 100 * totals.onTimeRatio, totals.chunksOnTime, totals.chunksExpected, totals.latencyMs.p99,
               recovery.count, recovery.p99Ms, recovery.unrecovered, originLoad.streams)
    }

    var plots: [(String, String)] {
        let cdf = players.map { p in
            Plot.Series(name: p.name, points: p.report.latencyCdfMs.compactMap { $0.count == 2 ? (x: $0[1], y: $0[0] / 100) : nil })
        }
        // On time per second of the run, over the chunks that came due in that second across all players.
        var ratio: [(x: Double, y: Double)] = []
        for (a, b) in zip(samples, samples.dropFirst()) where b.expected > a.expected {
            ratio.append((b.t, Double(b.onTime - a.onTime) / Double(b.expected - a.expected)))
        }
        let churn = events.filter { $0.kind == "relay-kill" || $0.kind == "player-leave" }.map { (x: $0.t, label: "\($0.kind) \($0.target)") }
        let delays = (mesh?.peers.dropFirst().map { (label: $0.id, value: $0.delayMs ?? 0) } ?? []).sorted { $0.value < $1.value }
        return [
            ("latency-cdf.svg", Plot.lines(title: "Chunk latency, ingest to arrival", xLabel: "latency, ms", yLabel: "fraction of chunks",
                                           series: cdf, y: 0...1)),
            ("on-time.svg", Plot.lines(title: "On time per second (dashed: relay killed, player left)", xLabel: "time, s",
                                       yLabel: "on-time ratio", series: [.init(name: "all players", points: ratio)],
                                       y: min(0.9, ratio.map(\.y).min() ?? 1)...1, markers: churn,
                                       yFormat: { String(format: "%.3f", $0) })),
            ("delay.svg", Plot.bars(title: "Delay from the source per peer, at the end", yLabel: "delay, ms", items: delays)),
            ("mesh.svg", mesh.map { Plot.mesh($0) } ?? Plot.document([])),
        ]
    }

    var markdown: String {
        var md = ["# lsp2p soak report", ""]
        let s = scenario
        md += ["| scenario | |", "| --- | --- |",
               "| input | `\(s.input)` (\(String(format: "%.2f", s.streamRateBps / 1e6)) Mbit/s) |",
               "| relays, players | \(s.relays), \(s.players) |",
               "| duration | \(s.durationS) s (ran \(elapsedS) s) |",
               "| chunk, deadline | \(s.chunkMs) ms, \(s.deadlineMs) ms |",
               "| relay uplinks | \(s.uplinkDist); origin \(String(format: "%.2f", s.originUplinkBps / 1e6)) Mbit/s |",
               "| churn | \(s.churn) |", "| seed | \(s.seed) |",
               "| network | \(s.lan ? "emulated LAN (namespaces, tbf uplinks), declared uplinks: \(s.declared)" : "loopback") |", ""]
        md += ["## Result", "",
               String(format: "- **On time: %.3f%%** (%d of %d chunks; %d late, %d missing); goal %.3f%%",
                      100 * totals.onTimeRatio, totals.chunksOnTime, totals.chunksExpected, totals.chunksLate, totals.chunksMissing,
                      100 * s.minOnTime),
               String(format: "- Latency, worst player: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms",
                      totals.latencyMs.p50, totals.latencyMs.p90, totals.latencyMs.p99, totals.latencyMs.max),
               String(format: "- Recoveries after a relay kill (every peer has parents again, none of them the dead relay): %d, p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d not recovered",
                      recovery.count, recovery.p50Ms, recovery.p99Ms, recovery.maxMs, recovery.unrecovered),
               String(format: "- Origin upload: %.2f Mbit/s, %.2f streams' worth", originLoad.bitsPerSecond / 1e6, originLoad.streams)]
        if let first = relayRssMib.first, let last = relayRssMib.last {
            md.append(String(format: "- Relay 1 resident memory: %.1f MiB at %.0f s, %.1f MiB at %.0f s", first.mib, first.t, last.mib, last.t))
        }
        if let hosts {
            md += ["", "## Hosts on the emulated LAN", "",
                   "| process | address | real uplink | declared | sent | packets dropped | units it can send | offered | held (max) | children | on time |",
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            func mbps(_ bps: Double) -> String { String(format: "%.2f Mbit/s", bps / 1e6) }
            for h in hosts {
                md.append("| \(h.name) | \(h.address) | \(mbps(h.uplinkBps)) | \(h.declaredBps.map(mbps) ?? "none") | \(mbps(h.sentBps)) | \(h.uplinkDrops) | "
                          + "\(h.unitsItCanSend) | \(h.unitsOffered) | \(h.unitsHeld) (\(h.unitsHeldMax)) | \(h.children) | "
                          + (h.onTimeRatio.map { String(format: "%.2f%%", 100 * $0) } ?? "") + " |")
            }
        }
        md += ["", "## Players", "", "| player | joined at | expected | on time | late | missing | p50 | p99 | max | first chunk |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for p in players {
            let r = p.report
            md.append("| \(p.name) | \(p.joinedS) s | \(r.chunksExpected) | \(r.chunksOnTime) | \(r.chunksLate) | \(r.chunksMissing) | "
                      + String(format: "%.0f ms | %.0f ms | %.0f ms | %@ |", r.latencyMs.p50, r.latencyMs.p99, r.latencyMs.max,
                               r.firstChunkMs.map { String(format: "%.0f ms", $0) } ?? "-"))
        }
        md += ["", "## Plots", "", "![latency](latency-cdf.svg) ![on time](on-time.svg)", "", "![delay](delay.svg) ![mesh](mesh.svg)", ""]
        return md.joined(separator: "\n")
    }
}

extension Report {
    /// Chunks on time over chunks due.
    var onTimeRatio: Double {
        let due = chunksOnTime + chunksLate + chunksMissing
        return due == 0 ? 0 : Double(chunksOnTime) / Double(due)
    }
}
