/// An uplink spread (`--uplink-dist`, `--uplinks`): each peer's upload, as a multiple of the stream's rate (`4x`, `2x-6x`) or in bits/s
/// (`8M`, `4M-16M`); a range is drawn uniformly from the seed. A comma list (`0.5x,4x,4x`) gives the peers their uplinks
/// in turn, in the order they are drawn, and starts again past its end.
public struct UplinkDistribution: CustomStringConvertible, Sendable {
    public enum Unit: Sendable { case streams, bitsPerSecond }
    public var low: Double
    public var high: Double
    public var unit: Unit
    /// The list's values, in turn; nil for a range.
    public var list: [Double]?
    private var next = 0

    public init?(argument: String) {
        let text = argument.lowercased()
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let multiples = text.hasSuffix("x")
        func value(_ s: String) -> Double? {
            if multiples {
                guard s.hasSuffix("x"), let v = Double(s.dropLast()), v.isFinite, v <= 10_000 else { return nil }
                return v
            }
            return BitRate(s).flatMap { $0.bitsPerSecond <= BitRate.maxArgument ? $0.bitsPerSecond : nil }
        }
        unit = multiples ? .streams : .bitsPerSecond
        if items.count > 1 {
            let values = items.map(value)
            guard values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
            list = values.map { $0! }
            low = list!.min()!
            high = list!.max()!
            return
        }
        let parts = text.split(separator: "-", maxSplits: 1).map(String.init)
        guard !parts.isEmpty, let low = value(parts[0]), let high = parts.count == 2 ? value(parts[1]) : low,
              low > 0, high >= low else { return nil }
        self.low = low
        self.high = high
    }

    public var description: String {
        func show(_ v: Double) -> String { unit == .streams ? "\(v)x" : "\(BitRate(bitsPerSecond: v))" }
        if let list { return list.map(show).joined(separator: ",") }
        return low == high ? show(low) : "\(show(low))-\(show(high))"
    }

    /// One peer's uplink in bits/s: the list's next, or a draw from the range.
    public mutating func draw(streamRate: Double, using rng: inout SplitMixRandom) -> Double {
        let v: Double
        if let list {
            v = list[next % list.count]
            next += 1
        } else {
            v = low == high ? low : Double.random(in: low...high, using: &rng)
        }
        return unit == .streams ? v * streamRate : v
    }
}
