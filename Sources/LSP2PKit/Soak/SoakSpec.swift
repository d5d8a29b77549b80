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
