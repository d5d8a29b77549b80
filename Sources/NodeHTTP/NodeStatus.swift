import ChunkMesh
import MeshCore
import Foundation
import NIOConcurrencyHelpers

/// `/status.json`, and what the status page shows (snake_case keys).
public struct NodeStatus: Codable, Sendable, Equatable {
    public struct Parent: Codable, Sendable, Equatable {
        public var substream: Int
        public var peer: String?
        public var delayMs: Double?
    }
    public struct Child: Codable, Sendable, Equatable {
        public var peer: String
        public var substreams: [Int]
    }
    public struct Upload: Codable, Sendable, Equatable {
        /// Sent over the last few seconds, bits/s.
        public var usedBps: Double
        /// `--uplink`, if any.
        public var allowedBps: Double?
        public var units: Int
        public var unitsUsed: Int
        public var bytesSent: Int
        /// `--upload-budget`, if any.
        public var budgetBytes: Int?
        /// The budget is spent (or `--until` came): a leaf now.
        public var retired: Bool
    }
    public struct Playback: Codable, Sendable, Equatable {
        public var received, onTime, late, missing: Int
        public var latencyP50Ms, latencyP99Ms: Double
        /// The worst latency of each of the last seconds, oldest first.
        public var sparklineMs: [Double]

        public init(received: Int, onTime: Int, late: Int, missing: Int, latencyP50Ms: Double, latencyP99Ms: Double, sparklineMs: [Double]) {
            (self.received, self.onTime, self.late, self.missing) = (received, onTime, late, missing)
            (self.latencyP50Ms, self.latencyP99Ms, self.sparklineMs) = (latencyP50Ms, latencyP99Ms, sparklineMs)
        }
    }
    public struct Serve: Codable, Sendable, Equatable {
        public var url: String
        public var clients, served, dropped: Int

        public init(url: String, clients: Int, served: Int, dropped: Int) {
            (self.url, self.clients, self.served, self.dropped) = (url, clients, served, dropped)
        }
    }

    public var role: String
    public var id: String
    public var uptimeS: Double
    public var streamRateBps: Double?
    public var substreams: Int
    /// D: the longest of its delays from the source, ms.
    public var delayMs: Double?
    public var links: Int
    public var linkFailures: Int
    public var chunksDropped: Int
    public var parents: [Parent]
    public var children: [Child]
    public var upload: Upload
    public var playback: Playback?
    public var serve: Serve?
    /// `/mesh.svg` is there (the origin).
    public var meshSvg: Bool

    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }

    public static func decode(_ bytes: Data) throws -> NodeStatus {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(NodeStatus.self, from: bytes)
    }
}

/// Builds a node's `NodeStatus` when asked, and its HTTP routes: `/` (the page), `/status.json`, `/metrics`.
public final class StatusBoard: Sendable {
    public let role: String
    private let node: MeshNode
    private let started = monotonicMicros()
    private let allowed: BitRate?
    private let budget: Int?
    /// What the service adds: playback figures, the served stream.
    private let extras: @Sendable (inout NodeStatus) -> Void
    private let meshSvg: Bool
    /// The last two samples of bytes sent, for the upload rate.
    private let samples = NIOLockedValueBox<[(at: Int64, bytes: Int)]>([])

    public init(role: String, node: MeshNode, uplink: BitRate?, budget: Int? = nil, meshSvg: Bool = false,
                extras: @escaping @Sendable (inout NodeStatus) -> Void = { _ in }) {
        self.role = role
        self.node = node
        self.allowed = uplink
        self.budget = budget
        self.meshSvg = meshSvg
        self.extras = extras
    }

    public func status() -> NodeStatus {
        let now = monotonicMicros()
        let s = node.status()
        let sent = s?.stats.bytesSent ?? 0
        // Rate over a window of 2-5 s: samples are kept a second apart at least.
        let used: Double = samples.withLockedValue { samples in
            if samples.last.map({ now - $0.at >= 1_000_000 }) ?? true { samples.append((now, sent)) }
            samples.removeAll { now - $0.at > 5_000_000 }
            // Asked once only so far: the mean since the start.
            guard let first = samples.first, now - first.at >= 500_000 else {
                return now > started ? Double(sent) * 8 / (Double(now - started) / 1e6) : 0
            }
            return Double(sent - first.bytes) * 8 / (Double(now - first.at) / 1e6)
        }
        func ms(_ us: Int64?) -> Double? { us.map { (Double($0) / 100).rounded() / 10 } }
        var status = NodeStatus(
            role: role, id: s?.id ?? "", uptimeS: (Double(now - started) / 1e5).rounded() / 10,
            streamRateBps: node.streamRate > 0 ? Double(node.streamRate) : nil, substreams: s?.substreams.count ?? 0,
            delayMs: ms(s?.delay), links: s?.stats.links ?? 0, linkFailures: s?.stats.linksFailed ?? 0,
            chunksDropped: s?.stats.chunksDropped ?? 0,
            parents: (s?.substreams ?? []).map { .init(substream: $0.substream, peer: $0.parent, delayMs: ms($0.delay)) },
            children: (s?.children ?? [:]).sorted { $0.key < $1.key }.map { .init(peer: $0.key, substreams: $0.value.sorted()) },
            upload: .init(usedBps: used.rounded(), allowedBps: allowed?.bitsPerSecond, units: s?.units ?? 0, unitsUsed: s?.usedUnits ?? 0,
                          bytesSent: sent, budgetBytes: budget, retired: s?.retired ?? false),
            playback: nil, serve: nil, meshSvg: meshSvg)
        extras(&status)
        return status
    }

    /// `/`, `/status.json` and `/metrics`.
    public var routes: Routes {
        var routes = Routes()
        routes.page("/") { [self] in Page("text/html; charset=utf-8", StatusPage.html(status())) }
        routes.page("/status.json") { [self] in Page("application/json", status().json()) }
        routes.page("/metrics") { PrometheusExport.page }
        return routes
    }
}
