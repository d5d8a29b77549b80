import ArgumentParser
import ChunkMesh

/// `--uplink-dist`: each relay's upload, as a multiple of the stream's rate (`4x`, `2x-6x`) or in bits/s
/// (`8M`, `4M-16M`); a range is drawn uniformly from the seed.
public struct UplinkDistribution: ExpressibleByArgument, CustomStringConvertible, Sendable {
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

    /// One relay's uplink in bits/s.
    func draw(streamRate: Double, using rng: inout SplitMixRandom) -> Double {
        let v = low == high ? low : Double.random(in: low...high, using: &rng)
        return unit == .streams ? v * streamRate : v
    }
}

/// `--churn`: `off`, or a comma list of `relays:EVERY[:DOWN]` (a random relay is SIGKILLed every EVERY
/// seconds and a new one started DOWN seconds later) and `players:EVERY` (a random player leaves and a new
/// one joins). Times take an optional `s`.
public struct ChurnSpec: ExpressibleByArgument, CustomStringConvertible, Sendable {
    public var relayEvery: Double?
    public var relayDown: Double = 2
    public var playerEvery: Double?

    public init() {}

    public init?(argument: String) {
        guard argument != "off" else { return }
        func seconds(_ s: Substring) -> Double? {
            Double(s.hasSuffix("s") ? s.dropLast() : s).flatMap { $0 > 0 ? $0 : nil }
        }
        for item in argument.split(separator: ",") {
            let f = item.split(separator: ":")
            switch (f.first, f.count) {
            case ("relays", 2), ("relays", 3):
                guard let every = seconds(f[1]) else { return nil }
                relayEvery = every
                if f.count == 3 { guard let down = seconds(f[2]) else { return nil }; relayDown = down }
            case ("players", 2):
                guard let every = seconds(f[1]) else { return nil }
                playerEvery = every
            default:
                return nil
            }
        }
    }

    public var isOff: Bool { relayEvery == nil && playerEvery == nil }

    public var description: String {
        var parts: [String] = []
        if let relayEvery { parts.append("relays:\(relayEvery)s:\(relayDown)s") }
        if let playerEvery { parts.append("players:\(playerEvery)s") }
        return parts.isEmpty ? "off" : parts.joined(separator: ",")
    }
}
