import Foundation

/// Small SVG charts for the soak report: lines, bars and the mesh. Plain SVG 1.1, no scripts.
enum Plot {
    static let width = 720.0, height = 400.0
    static let left = 64.0, right = 24.0, top = 40.0, bottom = 52.0
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    struct Frame {
        var x: ClosedRange<Double>
        var y: ClosedRange<Double>
        func px(_ v: Double) -> Double { left + (v - x.lowerBound) / max(1e-9, x.upperBound - x.lowerBound) * (width - left - right) }
        func py(_ v: Double) -> Double { height - bottom - (v - y.lowerBound) / max(1e-9, y.upperBound - y.lowerBound) * (height - top - bottom) }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    /// The frame, axes with five ticks each, the title and axis labels.
    static func axes(_ f: Frame, title: String, xLabel: String, yLabel: String, yFormat: (Double) -> String = { String(format: "%g", $0) }) -> [String] {
        var out = [
            "<rect width=\"\(width)\" height=\"\(height)\" fill=\"white\"/>",
            "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>",
            "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>",
            "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>",
            "<text x=\"\(width / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\" font-size=\"12\">\(escape(xLabel))</text>",
            "<text x=\"16\" y=\"\(height / 2)\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 16 \(height / 2))\">\(escape(yLabel))</text>",
        ]
        for i in 0...4 {
            let xv = f.x.lowerBound + Double(i) / 4 * (f.x.upperBound - f.x.lowerBound)
            let yv = f.y.lowerBound + Double(i) / 4 * (f.y.upperBound - f.y.lowerBound)
            out.append("<text x=\"\(fmt(f.px(xv)))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\" font-size=\"11\">\(String(format: "%g", (xv * 10).rounded() / 10))</text>")
            out.append("<text x=\"\(left - 6)\" y=\"\(fmt(f.py(yv) + 4))\" text-anchor=\"end\" font-size=\"11\">\(escape(yFormat(yv)))</text>")
            out.append("<line x1=\"\(left)\" y1=\"\(fmt(f.py(yv)))\" x2=\"\(width - right)\" y2=\"\(fmt(f.py(yv)))\" stroke=\"#eee\"/>")
        }
        return out
    }

    static func document(_ body: [String]) -> String {
        (["<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\">"]
            + body + ["</svg>", ""]).joined(separator: "\n")
    }

    /// Lines over x, with labelled vertical markers (churn events).
    static func lines(title: String, xLabel: String, yLabel: String, series: [Series], y: ClosedRange<Double>? = nil,
                      markers: [(x: Double, label: String)] = [], yFormat: (Double) -> String = { String(format: "%g", $0) }) -> String {
        let xs = series.flatMap { $0.points.map(\.x) } + markers.map(\.x)
        let ys = series.flatMap { $0.points.map(\.y) }
        let xRange = (xs.min() ?? 0)...max((xs.max() ?? 1), (xs.min() ?? 0) + 1e-6)
        let yRange = y ?? ((ys.min() ?? 0)...max(ys.max() ?? 1, (ys.min() ?? 0) + 1e-6))
        let f = Frame(x: xRange, y: yRange)
        var body = axes(f, title: title, xLabel: xLabel, yLabel: yLabel, yFormat: yFormat)
        for m in markers {
            body.append("<line x1=\"\(fmt(f.px(m.x)))\" y1=\"\(top)\" x2=\"\(fmt(f.px(m.x)))\" y2=\"\(height - bottom)\" stroke=\"#d62728\" stroke-dasharray=\"3,3\" stroke-opacity=\"0.6\"><title>\(escape(m.label))</title></line>")
        }
        for (i, s) in series.enumerated() where !s.points.isEmpty {
            let color = palette[i % palette.count]
            let path = s.points.map { "\(fmt(f.px($0.x))),\(fmt(f.py(min(max($0.y, yRange.lowerBound), yRange.upperBound))))" }.joined(separator: " ")
            body.append("<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(path)\"><title>\(escape(s.name))</title></polyline>")
            if series.count <= 10 {
                body.append("<text x=\"\(width - right - 4)\" y=\"\(top + 14 * Double(i + 1))\" text-anchor=\"end\" font-size=\"11\" fill=\"\(color)\">\(escape(s.name))</text>")
            }
        }
        return document(body)
    }

    /// One bar per item, in the given order.
    static func bars(title: String, yLabel: String, items: [(label: String, value: Double)]) -> String {
        let f = Frame(x: 0...Double(max(1, items.count)), y: 0...max(items.map(\.value).max() ?? 1, 1e-6))
        var body = axes(f, title: title, xLabel: "peers, nearest to the source first", yLabel: yLabel)
        let w = (width - left - right) / Double(max(1, items.count))
        for (i, item) in items.enumerated() {
            let x = f.px(Double(i)), y = f.py(item.value)
            body.append("<rect x=\"\(fmt(x + w * 0.1))\" y=\"\(fmt(y))\" width=\"\(fmt(w * 0.8))\" height=\"\(fmt(height - bottom - y))\" fill=\"\(palette[0])\"><title>\(escape(item.label)): \(String(format: "%.1f", item.value))</title></rect>")
        }
        return document(body)
    }

    /// The mesh: peers placed left to right by delay from the source, an arrow per parent → child edge.
    static func mesh(_ map: MeshMap) -> String {
        let f = Frame(x: 0...max(map.peers.compactMap(\.delayMs).max() ?? 1, 1e-3), y: 0...Double(max(1, map.peers.count)))
        var body = axes(f, title: "the mesh at the end (\(map.peers.count - 1) peers)", xLabel: "delay from the source, ms", yLabel: "peers")
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
