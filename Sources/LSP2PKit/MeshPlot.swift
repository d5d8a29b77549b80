import ChunkMesh
import MeshCore
import Foundation
import NIOConcurrencyHelpers
import NodeHTTP
import Plots

/// Where a walk of the mesh puts each peer: its layer is its hop count from the origin over its deepest substream
/// (the origin is layer 0); peers short of a parent in some substream, or on a chain that does not reach the
/// origin, are "looking".
struct MeshLayers {
    var layers: [[MeshMap.Peer]] = []
    var looking: [MeshMap.Peer] = []
    /// Layer by peer id (looking peers have none).
    var layerOf: [String: Int] = [:]

    init(_ map: MeshMap) {
        guard let origin = map.peers.first else { return }
        let byID = Dictionary(map.peers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        // Hops to the origin over each substream's parents, each peer's counted once a substream (a chain that
        // loops or leaves the walk is nil): a walk of N peers costs N x k steps, however its chains are laid.
        let k = map.peers.map { $0.substreams.count }.max() ?? 0
        var depth = [[String: Int?]](repeating: [origin.id: 0], count: k)
        func hops(_ peer: MeshMap.Peer, _ s: Int) -> Int? {
            var path: [String] = []
            var onPath: Set<String> = []
            var at = peer
            var end: Int?  // hops of the first peer off the path: known, or nil for a loop or a break
            while true {
                if let known = depth[s][at.id] { end = known; break }
                guard onPath.insert(at.id).inserted, let parent = at.substreams.first(where: { $0.substream == s })?.parent,
                      let next = byID[parent] else { end = nil; break }
                path.append(at.id)
                at = next
            }
            for id in path.reversed() {
                end = end.map { $0 + 1 }
                depth[s][id] = .some(end)
            }
            return depth[s][peer.id] ?? nil
        }
        func hops(_ peer: MeshMap.Peer) -> Int? {
            var worst = 0
            for s in peer.substreams where s.substream >= 0 && s.substream < k {
                guard let h = hops(peer, s.substream) else { return nil }
                worst = max(worst, h)
            }
            return worst
        }
        for peer in map.peers.dropFirst() {
            if let layer = hops(peer), layer > 0 { layerOf[peer.id] = layer } else { looking.append(peer) }
        }
        layerOf[origin.id] = 0
        layers = Array(repeating: [], count: (layerOf.values.max() ?? 0) + 1)
        layers[0] = [origin]
        for peer in map.peers.dropFirst() { if let l = layerOf[peer.id] { layers[l].append(peer) } }
    }
}

extension Plot {
    /// The mesh as people read it: who feeds whom, left to right by hops from the origin, each peer a circle sized
    /// by its children (their count beside it), an edge per parent link coloured by substream. Each layer is
    /// labelled with its delay from the source. Past `detailUpTo` peers, a summary: a bar a layer (its peers,
    /// delays and children) and an arc between layers as wide as the log of the parent links it carries.
    /// A layout of our own (no Graphviz): the layers are the mesh's own structure, and the origin's `/mesh.svg`
    /// then needs nothing installed.
    public static func mesh(_ map: MeshMap, title: String = "the mesh at the end", detailUpTo: Int = 500) -> String {
        guard !map.peers.isEmpty else { return document([]) }
        let layers = MeshLayers(map)
        let k = map.peers.map(\.substreams.count).max() ?? 1
        return map.peers.count - 1 > detailUpTo ? meshSummary(map, layers, k: k, title: title) : meshDetail(map, layers, k: k, title: title)
    }

    /// A layer's heading, two lines: which hop and how many peers, then their delays from the source.
    private static func layerLabel(_ hop: Int, _ peers: [MeshMap.Peer], x: Double, y: Double) -> String {
        let delays = peers.compactMap(\.delayMs)
        let first = hop == 0 ? "origin" : "hop \(hop): \(peers.count)"
        let second = hop == 0 || delays.isEmpty ? "" : String(format: "%.0f–%.0f ms", delays.min()!, delays.max()!)
        return "<text x=\"\(fmt(x))\" y=\"\(fmt(y))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">\(escape(first))"
            + "<tspan x=\"\(fmt(x))\" dy=\"13\">\(escape(second))</tspan></text>"
    }

    private static func legend(k: Int, x: Double, y: Double) -> [String] {
        var out = ["<text x=\"\(fmt(x))\" y=\"\(fmt(y))\" font-size=\"11\">substream</text>"]
        for s in 0..<k {
            let lx = x + 64 + Double(s) * 34
            out.append("<line x1=\"\(fmt(lx))\" y1=\"\(fmt(y - 4))\" x2=\"\(fmt(lx + 14))\" y2=\"\(fmt(y - 4))\" stroke=\"\(palette[s % palette.count])\" stroke-width=\"3\"/>")
            out.append("<text x=\"\(fmt(lx + 17))\" y=\"\(fmt(y))\" font-size=\"11\">\(s)</text>")
        }
        return out
    }

    private static func meshDetail(_ map: MeshMap, _ layers: MeshLayers, k: Int, title: String) -> String {
        let rowsPerColumn = 40, row = 22.0, subColumn = 34.0, gap = 120.0
        let columns = layers.layers + (layers.looking.isEmpty ? [] : [layers.looking])
        // Within a layer, peers sit near their parents (the mean row of their parents, one sweep): fewer crossings.
        var y: [String: Double] = [:]
        var x: [String: Double] = [:]
        var cursor = left
        var tallest = 1
        var bands: [(x: Double, width: Double, hop: Int, peers: [MeshMap.Peer], looking: Bool)] = []
        for (c, column) in columns.enumerated() {
            let ordered = column.map { peer -> (Double, String, MeshMap.Peer) in
                let parents = peer.substreams.compactMap(\.parent).compactMap { y[$0] }
                return (parents.isEmpty ? 0 : parents.reduce(0, +) / Double(parents.count), peer.id, peer)
            }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2)
            let subColumns = max(1, (ordered.count + rowsPerColumn - 1) / rowsPerColumn)
            tallest = max(tallest, min(ordered.count, rowsPerColumn))
            for (i, peer) in ordered.enumerated() {
                x[peer.id] = cursor + Double(i / rowsPerColumn) * subColumn
                y[peer.id] = Double(i % rowsPerColumn)
            }
            let isLooking = !layers.looking.isEmpty && c == columns.count - 1
            bands.append((cursor, Double(subColumns - 1) * subColumn, c, column, isLooking))
            cursor += Double(subColumns - 1) * subColumn + gap
        }
        let width = max(Plot.width, cursor - gap + 2 * right + 40)
        let height = top + 40 + Double(tallest) * row + bottom + 16
        func py(_ id: String) -> Double { top + 40 + (y[id]! + 0.5) * row }
        var body = ["<rect width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\"/>",
                    "<text x=\"\(fmt(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape("\(title) (\(map.peers.count - 1) peers)"))</text>"]
        for band in bands {
            let x = band.x + band.width / 2
            body.append(band.looking ? "<text x=\"\(fmt(x))\" y=\"\(fmt(top + 8))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">looking: \(band.peers.count)</text>"
                                     : layerLabel(band.hop, band.peers, x: x, y: top + 8))
        }
        // Edges under the peers: one per substream, bowed apart so that parallel ones show.
        for peer in map.peers {
            guard let tx = x[peer.id] else { continue }
            for s in peer.substreams {
                guard let parent = s.parent, let fx = x[parent] else { continue }
                let (fy, ty) = (py(parent), py(peer.id))
                let bow = (Double(s.substream) - Double(k - 1) / 2) * 6 + (tx <= fx ? 40 : 0)
                let (mx, my) = ((fx + tx) / 2, (fy + ty) / 2 + bow)
                body.append("<path d=\"M\(fmt(fx)),\(fmt(fy)) Q\(fmt(mx)),\(fmt(my)) \(fmt(tx)),\(fmt(ty))\" fill=\"none\" stroke=\"\(palette[s.substream % palette.count])\" stroke-opacity=\"0.7\" stroke-width=\"1.3\"><title>\(escape("\(parent) → \(peer.id), substream \(s.substream)"))</title></path>")
            }
        }
        let labels = map.peers.count <= 60
        // A peer is named by its port, or by its host where every peer listens on the same port (a LAN).
        let ports = Set(map.peers.map { $0.id.split(separator: ":").last.map(String.init) ?? $0.id })
        func name(_ id: String) -> String {
            guard let colon = id.lastIndex(of: ":") else { return id }
            return ports.count < map.peers.count / 2 ? String(id[..<colon]).trimmingCharacters(in: ["[", "]"]) : String(id[id.index(after: colon)...])
        }
        for peer in map.peers {
            guard let px = x[peer.id] else { continue }
            let cy = py(peer.id)
            let r = 4 + min(6, Double(peer.children.count))
            let color = peer.id == map.origin ? palette[3] : layers.layerOf[peer.id] == nil ? palette[7] : palette[0]
            let delay = peer.delayMs.map { String(format: "%.1f ms", $0) } ?? "looking for parents"
            body.append("<circle cx=\"\(fmt(px))\" cy=\"\(fmt(cy))\" r=\"\(fmt(r))\" fill=\"\(color)\" stroke=\"white\"><title>\(escape("\(peer.id): \(delay), \(peer.children.count) children, \(peer.residualUnits) units free"))</title></circle>")
            if !peer.children.isEmpty {
                body.append("<text x=\"\(fmt(px + r + 2))\" y=\"\(fmt(cy - 3))\" font-size=\"9\" fill=\"#333\">\(peer.children.count)</text>")
            }
            if labels {
                body.append("<text x=\"\(fmt(px))\" y=\"\(fmt(cy + r + 9))\" text-anchor=\"middle\" font-size=\"8\" fill=\"#777\">\(escape(name(peer.id)))</text>")
            }
        }
        body += legend(k: k, x: left, y: height - 34)
        body.append("<text x=\"\(fmt(left))\" y=\"\(fmt(height - 12))\" font-size=\"10\" fill=\"#777\">circle: a peer, sized and numbered by its children; red: the origin, grey: looking for parents</text>")
        return document(body, width: width, height: height)
    }

    private static func meshSummary(_ map: MeshMap, _ layers: MeshLayers, k: Int, title: String) -> String {
        let columns = layers.layers + (layers.looking.isEmpty ? [] : [layers.looking])
        let gap = 150.0, barWidth = 26.0, maxBar = 300.0
        let width = max(Plot.width, left + Double(columns.count) * gap + right)
        let height = top + 60 + maxBar + bottom + 20 + 2 * 28 * Double(columns.count)
        let most = Double(columns.map(\.count).max() ?? 1)
        func cx(_ c: Int) -> Double { left + 40 + Double(c) * gap }
        let base = top + 50 + 28 * Double(columns.count)
        var body = ["<rect width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\"/>",
                    "<text x=\"\(fmt(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape("\(title) (\(map.peers.count - 1) peers, by layer)"))</text>"]
        // Links between layers (all substreams together; one in a hundred at least): an arc as wide as the log of
        // their count, over the bars for links forward, higher the more layers they skip; under them backward.
        var links: [Int: [Int: Int]] = [:] // from layer → to layer → links
        let lookingColumn = layers.looking.isEmpty ? nil : columns.count - 1
        let column = Dictionary(uniqueKeysWithValues: layers.layerOf.map { ($0.key, $0.value) } + layers.looking.map { ($0.id, lookingColumn!) })
        var total = 0
        for peer in map.peers {
            guard let to = column[peer.id] else { continue }
            for s in peer.substreams {
                guard let parent = s.parent, let from = column[parent] else { continue }
                links[from, default: [:]][to, default: 0] += 1
                total += 1
            }
        }
        for (from, tos) in links.sorted(by: { $0.key < $1.key }) {
            for (to, count) in tos.sorted(by: { $0.key < $1.key }) where count * 100 >= total || to == from + 1 {
                let (x1, x2) = (cx(from), cx(to))
                let yy = base + maxBar / 2
                let bow = to > from ? -Double(to - from) * 28 : Double(from - to + 1) * 28
                body.append("<path d=\"M\(fmt(x1)),\(fmt(yy)) Q\(fmt((x1 + x2) / 2)),\(fmt(yy + 2 * bow)) \(fmt(x2)),\(fmt(yy))\" fill=\"none\" stroke=\"#888\" stroke-opacity=\"0.5\" stroke-width=\"\(fmt(1 + 2 * log2(Double(count))))\"><title>\(escape("\(count) parent links, layer \(from) → \(to)"))</title></path>")
            }
        }
        for (c, peers) in columns.enumerated() {
            let h = max(2, Double(peers.count) / most * maxBar)
            let isLooking = c == lookingColumn
            let children = peers.map(\.children.count)
            body.append("<rect x=\"\(fmt(cx(c) - barWidth / 2))\" y=\"\(fmt(base + (maxBar - h) / 2))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(h))\" fill=\"\(c == 0 ? palette[3] : isLooking ? palette[7] : palette[0])\"><title>\(peers.count) peers</title></rect>")
            body.append(isLooking ? "<text x=\"\(fmt(cx(c)))\" y=\"\(fmt(top + 8))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">looking: \(peers.count)</text>"
                                  : layerLabel(c, peers, x: cx(c), y: top + 8))
            let mean = children.isEmpty ? 0 : Double(children.reduce(0, +)) / Double(children.count)
            body.append("<text x=\"\(fmt(cx(c)))\" y=\"\(fmt(base + maxBar + 16))\" text-anchor=\"middle\" font-size=\"10\" fill=\"#555\">\(escape(String(format: "children %.1f avg, %d max", mean, children.max() ?? 0)))</text>")
        }
        body.append("<text x=\"\(fmt(left))\" y=\"\(fmt(height - 14))\" font-size=\"10\" fill=\"#777\">bar: a layer's peers; arc: parent links between layers (all substreams), as wide as the log of their count</text>")
        return document(body, width: width, height: height)
    }
}

/// `/mesh.svg` at the origin: the walk of the mesh drawn as the soak report draws it, made at most every 10 s.
public final class MeshPicture: Sendable {
    private let address: HostPort
    private let key: ChannelKey
    /// The last picture (or failure) and when it was made; whether a walk is under way.
    private let state = NIOLockedValueBox<(cached: (at: Int64, page: Page)?, walking: Bool)>((nil, false))
    private let limit: Int

    public init(address: HostPort, key: ChannelKey, limit: Int = 2_000) {
        self.address = address
        self.key = key
        self.limit = limit
    }

    /// Blocks for the walk: call it off any event loop (`Routes.page` does). One walk at a time, whoever asks: the
    /// others get the last picture, or a 503 while the first is made. A failure is kept as long as a picture.
    public func page() -> Page {
        let now = monotonicMicros()
        let fresh: Page? = state.withLockedValue { state in
            if let cached = state.cached, now - cached.at < 10_000_000 || state.walking { return cached.page }
            if state.walking { return Page("text/plain", "walking the mesh: try again in a moment\n", status: .serviceUnavailable) }
            state.walking = true
            return nil
        }
        if let fresh { return fresh }
        let page: Page
        do {
            let map = try MeshMap.fetch(from: address, key: key, timeout: 2, limit: limit, within: 10)
            page = Page("image/svg+xml", Plot.mesh(map, title: "the mesh"))
        } catch {
            page = Page("text/plain", "cannot walk the mesh: \(error)\n", status: .serviceUnavailable)
        }
        state.withLockedValue { $0 = ((now, page), false) }
        return page
    }
}
