/// An uplink spread (`--uplink-dist`, `--uplinks`): each peer's upload, as a multiple of the stream's rate (`4x`, `2x-6x`) or in bits/s
/// (`8M`, `4M-16M`); a range is drawn uniformly from the seed.
public struct UplinkDistribution: CustomStringConvertible, Sendable {
    public enum Unit: Sendable { case streams, bitsPerSecond }
    public var low: Double
    public var high: Double
    public var unit: Unit

    public init?(argument: String) {
        let parts = argument.lowercased().split(separator: "-", maxSplits: 1).map(String.init)
        let multiples = parts.allSatisfy { $0.hasSuffix("x") }
        func value(_ s: String) -> Double? {
            if multiples { return Double(s.dropLast()) }
            return BitRate(s)?.bitsPerSecond
        }
        guard !parts.isEmpty, let low = value(parts[0]), let high = parts.count == 2 ? value(parts[1]) : low,
              low > 0, high >= low else { return nil }
        self.low = low
        self.high = high
        self.unit = multiples ? .streams : .bitsPerSecond
    }

    public var description: String {
        func show(_ v: Double) -> String { unit == .streams ? "\(v)x" : "\(BitRate(bitsPerSecond: v))" }
        return low == high ? show(low) : "\(show(low))-\(show(high))"
    }

    /// One peer's uplink in bits/s.
    public func draw(streamRate: Double, using rng: inout SplitMixRandom) -> Double {
        let v = low == high ? low : Double.random(in: low...high, using: &rng)
        return unit == .streams ? v * streamRate : v
    }
}
