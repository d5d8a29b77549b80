import ArgumentParser
import ChunkMesh

extension UplinkDistribution: ExpressibleByArgument {}

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
