import ChunkMesh
import MeshCore

/// `--churn`: `off`, or a comma list of `relays:EVERY[:DOWN]` (a random relay is SIGKILLed every EVERY
/// seconds and a new one started DOWN seconds later) and `players:EVERY` (a random player leaves and a new
/// one joins). Times take an optional `s`.
public struct ChurnSpec: CustomStringConvertible, Sendable {
    public var relayEvery: Double?
    public var relayDown: Double = 2
    public var playerEvery: Double?

    public init() {}

    public init?(argument: String) {
        guard let items = ChurnList.parse(argument) else { return nil }
        for item in items {
            switch (item.kind, item.down) {
            case ("relays", let down):
                relayEvery = item.every
                if let down { relayDown = down }
            case ("players", nil):
                playerEvery = item.every
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

/// `--budget-dist`: `off`, or each relay's upload budget in bytes, `LOW[-HIGH]` (`50M`, `20M-200M`), drawn from the
/// seed, so relays run out at different times, hand their children over and exit (a new relay takes the slot).
public struct BudgetDistribution: CustomStringConvertible, Sendable {
    public var low: Double
    public var high: Double

    public static let off = BudgetDistribution(low: 0, high: 0)

    init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }

    public init?(argument: String) {
        if argument == "off" { self = .off; return }
        func bytes(_ s: Substring) -> Double? { BitRate.quantity(String(s)) }
        let parts = argument.split(separator: "-", maxSplits: 1)
        guard let low = parts.first.flatMap(bytes), let high = parts.count == 2 ? bytes(parts[1]) : low, low > 0, high >= low else {
            return nil
        }
        self.low = low
        self.high = high
    }

    public var isOff: Bool { low == 0 }

    public var description: String {
        isOff ? "off" : low == high ? "\(Int(low))" : "\(Int(low))-\(Int(high))"
    }

    /// One relay's budget in bytes, nil when off.
    public func draw(using rng: inout SplitMixRandom) -> Int? {
        guard !isOff else { return nil }
        return Int(low == high ? low : Double.random(in: low...high, using: &rng))
    }
}

/// `--declared`: what relays and players are told of their uplinks. `none`: nothing (as a newcomer runs it; the
/// node finds out what it can send); `honest`: its real uplink; `4x`: four times it (a claim it cannot keep).
public enum DeclaredUplink: CustomStringConvertible, Sendable, Equatable {
    case none
    case honest
    case times(Double)

    public init?(argument: String) {
        switch argument.lowercased() {
        case "none": self = .none
        case "honest": self = .honest
        case let text where text.hasSuffix("x"):
            guard let factor = Double(text.dropLast()), factor > 0, factor.isFinite, factor <= 1000 else { return nil }
            self = .times(factor)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .honest: "honest"
        case .times(let f): "\(f)x"
        }
    }

    /// The `--uplink` a node with this real uplink is given, bits/s; nil for none.
    public func declare(_ real: Double) -> Double? {
        switch self {
        case .none: nil
        case .honest: real
        case .times(let f): real * f
        }
    }
}
