import ChunkMesh
import NIOConcurrencyHelpers
import NodeHTTP
import Plots

extension Plot {
    /// The mesh: peers placed left to right by delay from the source, an arrow per parent → child edge.
    public static func mesh(_ map: MeshMap, title: String = "the mesh at the end") -> String {
        let f = Frame(x: 0...max(map.peers.compactMap(\.delayMs).max() ?? 1, 1e-3), y: 0...Double(max(1, map.peers.count)))
        var body = axes(f, title: "\(title) (\(map.peers.count - 1) peers)", xLabel: "delay from the source, ms", yLabel: "peers")
        var position: [String: (Double, Double)] = [:]
        let ordered = [map.peers[0]] + map.peers.dropFirst().sorted { ($0.delayMs ?? .infinity, $0.id) < ($1.delayMs ?? .infinity, $1.id) }
        for (i, peer) in ordered.enumerated() {
            position[peer.id] = (f.px(peer.delayMs ?? f.x.upperBound), f.py(Double(i) + 0.5))
        }
        body.append("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"5\" markerHeight=\"5\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#999\"/></marker></defs>")
        for peer in map.peers {
            for parent in Set(peer.substreams.compactMap(\.parent)).sorted() {
                guard let from = position[parent], let to = position[peer.id] else { continue }
                body.append("<line x1=\"\(fmt(from.0))\" y1=\"\(fmt(from.1))\" x2=\"\(fmt(to.0))\" y2=\"\(fmt(to.1))\" stroke=\"#999\" marker-end=\"url(#arrow)\"/>")
            }
        }
        for peer in map.peers {
            guard let p = position[peer.id] else { continue }
            let color = peer.id == map.origin ? palette[3] : peer.delayMs == nil ? palette[7] : palette[0]
            body.append("<circle cx=\"\(fmt(p.0))\" cy=\"\(fmt(p.1))\" r=\"5\" fill=\"\(color)\"><title>\(escape(peer.id))</title></circle>")
        }
        return document(body)
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
