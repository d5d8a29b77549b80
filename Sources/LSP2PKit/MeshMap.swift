import ChunkMesh
import MeshCore
import Foundation
import NIOCore
import NIOPosix

/// The mesh as `lsp2p-relay mesh` finds it, walking from the origin: each peer, its parent and delay per
/// substream, its residual units and its children. The origin is the first peer.
public struct MeshMap: Codable, Equatable {
    public struct Substream: Codable, Equatable {
        public var substream: Int
        public var parent: String?
        public var delayMs: Double?
    }

    public struct Peer: Codable, Equatable {
        public var id: String
        /// D(peer): the longest delay from the source over its substreams; nil while one has no parent.
        public var delayMs: Double?
        public var residualUnits: Int
        public var substreams: [Substream]
        public var children: [String]
    }

    public var origin: String
    public var epoch: UInt64
    public var peers: [Peer]

    public init(_ infos: [PeerRecord]) {
        func ms(_ us: Int64?) -> Double? { us.map { (Double($0) / 100).rounded() / 10 } }
        var children: [String: Set<String>] = [:]
        for info in infos {
            for parent in info.ancestors.compactMap(\.first) { children[parent, default: []].insert(info.id) }
        }
        origin = infos.first?.id ?? ""
        epoch = infos.first?.epoch ?? 0
        peers = infos.enumerated().map { i, info in
            let substreams = info.delays.indices.map { s in
                Substream(substream: s, parent: i == 0 ? nil : info.ancestors[safe: s]?.first, delayMs: ms(info.delays[s]))
            }
            let delays = info.delays.compactMap { $0 }
            return Peer(id: info.id, delayMs: delays.count == info.delays.count ? ms(delays.max() ?? 0) : nil,
                        residualUnits: info.residualUnits, substreams: substreams, children: (children[info.id] ?? []).sorted())
        }
    }

    public func json() throws -> String {
        let encoder = JSONEncoder.reports
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Graphviz: parent → child, labelled with the substreams that edge carries.
    public func dot() -> String {
        var lines = ["digraph lsp2p {", "  rankdir=LR;", "  node [shape=ellipse, fontsize=10];"]
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        for peer in peers {
            let delay = peer.delayMs.map { String(format: "%.1f ms", $0) } ?? "no full set of parents"
            let shape = peer.id == origin ? ", shape=box, style=bold" : ""
            lines.append("  \(quoted(peer.id)) [label=\(quoted("\(peer.id)\\n\(delay), \(peer.residualUnits) free"))\(shape)];")
        }
        for peer in peers {
            let byParent = Dictionary(grouping: peer.substreams.filter { $0.parent != nil }, by: { $0.parent! })
            for (parent, subs) in byParent.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(quoted(parent)) -> \(quoted(peer.id)) [label=\(quoted(subs.map { "\($0.substream)" }.joined(separator: ",")))];")
            }
        }
        return (lines + ["}"]).joined(separator: "\n")
    }

    /// One line a peer, for a person at a terminal.
    public func text() -> String {
        var lines = ["origin \(origin), \(peers.count - 1) peer(s) reporting"]
        for peer in peers.dropFirst() {
            let parents = peer.substreams.map { "\($0.substream):\($0.parent ?? "-")" }.joined(separator: " ")
            lines.append(String(format: "%@  delay %@  residual %d  parents %@  children %d", peer.id,
                                peer.delayMs.map { String(format: "%.1f ms", $0) } ?? "-", peer.residualUnits, parents, peer.children.count))
        }
        return lines.joined(separator: "\n")
    }

    /// Walks the mesh from the node at `address` (the origin): asks it for its view, then every peer named in an
    /// answer, up to `limit` nodes, `parallel` at a time (design §7: no node hears every peer). Without `crawl`,
    /// only that node's view: itself and the peers linked to it.
    public static func fetch(from address: HostPort, key: ChannelKey, timeout: Int64 = 5, group: EventLoopGroup? = nil,
                             crawl: Bool = true, limit: Int = 100_000, parallel: Int = 16, within: Int64 = 300) throws -> MeshMap {
        let own = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        defer { try? own?.syncShutdownGracefully() }
        let group = group ?? own!
        let first: [PeerRecord]
        do {
            first = try MeshView.fetch(from: address, key: key, group: group, timeout: .seconds(timeout)).wait()
        } catch {
            if isWrongKey(error) { throw RuntimeFailure("wrong key: \(address) does not hold the channel key (\(key))") }
            throw RuntimeFailure("cannot ask \(address) for the mesh: \(describeConnectError(error))")
        }
        guard crawl, let start = first.first?.id else { return MeshMap(first) }
        var walk = MeshCrawl(start: start, limit: limit)
        _ = walk.next()
        walk.answer(from: start, view: first)
        // The walk stops after `within` seconds whatever is left: a mesh full of dead addresses must not hang it.
        let end = monotonicMicros() + within * 1_000_000
        while monotonicMicros() < end {
            var round: [(PeerName, EventLoopFuture<[PeerRecord]>)] = []
            while round.count < parallel, let id = walk.next() {
                guard let hostPort = HostPort(id) else { walk.failure(id); continue }
                round.append((id, MeshView.fetch(from: hostPort, key: key, group: group, timeout: .seconds(min(timeout, 2)))))
            }
            guard !round.isEmpty else { break }
            for (id, answer) in round {
                if let view = try? answer.wait() { walk.answer(from: id, view: view) } else { walk.failure(id) }
            }
        }
        return MeshMap(walk.listing)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
