import Foundation

/// Small SVG charts for the reports (soak, simulator): lines, bars, points. Plain SVG 1.1, no scripts.
public enum Plot {
    public static let width = 720.0, height = 400.0
    public static let left = 64.0, right = 24.0, top = 40.0, bottom = 52.0
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public struct Frame {
        public var x: ClosedRange<Double>
        public var y: ClosedRange<Double>
        public init(x: ClosedRange<Double>, y: ClosedRange<Double>) {
            self.x = x
            self.y = y
        }
        public func px(_ v: Double) -> Double { left + (v - x.lowerBound) / max(1e-9, x.upperBound - x.lowerBound) * (width - left - right) }
        public func py(_ v: Double) -> Double { height - bottom - (v - y.lowerBound) / max(1e-9, y.upperBound - y.lowerBound) * (height - top - bottom) }
    }

    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    public static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    /// The frame, axes with five ticks each, the title and axis labels.
    public static func axes(_ f: Frame, title: String, xLabel: String, yLabel: String, yFormat: (Double) -> String = { String(format: "%g", $0) }) -> [String] {
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

    public static func document(_ body: [String], width: Double = width, height: Double = height) -> String {
        (["<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\">"]
            + body + ["</svg>", ""]).joined(separator: "\n")
    }

    /// Lines over x, with labelled vertical markers (churn events).
    public static func lines(title: String, xLabel: String, yLabel: String, series: [Series], y: ClosedRange<Double>? = nil,
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
    public static func bars(title: String, xLabel: String = "peers, nearest to the source first", yLabel: String,
                            items: [(label: String, value: Double)]) -> String {
        let f = Frame(x: 0...Double(max(1, items.count)), y: 0...max(items.map(\.value).max() ?? 1, 1e-6))
        var body = axes(f, title: title, xLabel: xLabel, yLabel: yLabel)
        let w = (width - left - right) / Double(max(1, items.count))
        for (i, item) in items.enumerated() {
            let x = f.px(Double(i)), y = f.py(item.value)
            body.append("<rect x=\"\(fmt(x + w * 0.1))\" y=\"\(fmt(y))\" width=\"\(fmt(w * 0.8))\" height=\"\(fmt(height - bottom - y))\" fill=\"\(palette[0])\"><title>\(escape(item.label)): \(String(format: "%.1f", item.value))</title></rect>")
        }
        return document(body)
    }
}
