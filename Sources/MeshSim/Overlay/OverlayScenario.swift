import MeshCore

/// The overlay algorithms compared (issue 5): the real Fast-Mesh core, and three baselines built with full knowledge.
public enum OverlayAlgorithm: String, CaseIterable, Codable, Sendable {
    /// The distributed protocol: `MeshPeer`, the core the relays run, on the simulated network.
    case fastmesh
    /// Design §3's heuristic: peers inserted by decreasing uplink, each taking parents by power over all peers.
    case centralized
    /// The centralized mesh with its chunks sent through each peer's uplink one after another, as the simulator sends
    /// fastmesh's: a parent's substreams queue behind each other (`centralized` counts only its children of one).
    case centralizedQueued = "centralized-queued"
    /// Each substream's parent drawn at random among peers with a unit to spare.
    case random
    /// One parent for all substreams: the one with room that gives the least delay.
    case tree
}

/// Where a fastmesh joiner first asks for candidates.
public enum OverlayBootstrap: String, CaseIterable, Codable, Sendable {
    /// A live peer drawn at random: any peer can bootstrap a joiner (design §7).
    case any
    case origin
}

/// Peers failing or leaving while the stream runs: `off`, or a comma list of `fail:EVERY[:DOWN]` (a random
/// peer vanishes every EVERY seconds) and `leave:EVERY[:DOWN]` (it says goodbye first); a new peer joins DOWN
/// seconds later (2 s unless given). Times take an optional `s`.
public struct OverlayChurn: CustomStringConvertible, Sendable, Equatable {
    public var failEvery: Double?
    public var leaveEvery: Double?
    public var down: Double = 2

    public init() {}

    public init?(argument: String) {
        guard let items = ChurnList.parse(argument) else { return nil }
        for item in items {
            if let down = item.down { self.down = down }
            switch item.kind {
            case "fail": failEvery = item.every
            case "leave": leaveEvery = item.every
            default: return nil
            }
        }
    }

    public var isOff: Bool { failEvery == nil && leaveEvery == nil }

    public var description: String {
        var parts: [String] = []
        if let failEvery { parts.append("fail:\(failEvery)s:\(down)s") }
        if let leaveEvery { parts.append("leave:\(leaveEvery)s:\(down)s") }
        return parts.isEmpty ? "off" : parts.joined(separator: ",")
    }
}

/// One overlay experiment: the same peers, uplinks, network and churn for every algorithm.
public struct OverlayScenario: Sendable {
    public var peers = 1_000
    public var rate = BitRate(bitsPerSecond: 1_000_000)
    /// Substreams (units of upload).
    public var k = 4
    public var uplinks = UplinkDistribution(argument: "0.5x-4x")!
    /// The origin's uplink.
    public var originUplink = UplinkDistribution(argument: "2x")!
    public var chunkDuration: Int64 = 200_000
    /// A chunk is on time when it arrives within this of its ingest.
    public var deadline: Int64 = 3_000_000
    public var churn = OverlayChurn()
    public var duration: Int64 = 120_000_000
    public var seed: UInt64 = 1
    /// Peers join over this long at the start (`fastmesh`; the baselines are built whole).
    public var joinSpread: Int64 = 10_000_000
    public var bootstrap = OverlayBootstrap.any

    public init() {}

    /// Measurements start here, once the mesh has formed: a quarter of the run.
    public var warmup: Int64 { duration / 4 }
}

/// Everything drawn from the seed, shared by all algorithms: each peer's host and uplink, when it joins, and
/// the churn script. Peer 0 is the origin; peers that join to replace others come after the first `peers`.
public struct OverlayWorld: Sendable {
    public struct Event: Sendable, Equatable {
        public enum Kind: String, Sendable { case fail, leave, join }
        public var at: Int64
        public var kind: Kind
        public var peer: Int
    }

    public let scenario: OverlayScenario
    public private(set) var network: WideAreaNetwork
    /// Bits per second, by peer index.
    public private(set) var uplink: [Double] = []
    /// When each peer joins (µs); the first `peers` join within `joinSpread`.
    public private(set) var joinAt: [Int64] = []
    /// Churn events, in time order.
    public private(set) var events: [Event] = []
    /// Units of upload each peer can serve: floor(U / (rate / k)).
    public private(set) var units: [Int] = []
    /// sched(p) of each peer: the time to push one chunk at its uplink, µs.
    public private(set) var sched: [Int64] = []

    public init(_ scenario: OverlayScenario) {
        self.scenario = scenario
        network = WideAreaNetwork(seed: scenario.seed)
        var rng = SplitMixRandom(seed: scenario.seed)
        let rate = scenario.rate.bitsPerSecond
        var origins = scenario.originUplink, uplinks = scenario.uplinks
        network.addHost()
        uplink.append(origins.draw(streamRate: rate, using: &rng))
        joinAt.append(0)
        for _ in 0..<scenario.peers {
            network.addHost()
            uplink.append(uplinks.draw(streamRate: rate, using: &rng))
            joinAt.append(Int64.random(in: 0...max(0, scenario.joinSpread), using: &rng))
        }
        // The churn script: who goes when, and the newcomer that replaces it.
        var up = (0..<scenario.peers).map { $0 + 1 }
        var timeline: [(at: Int64, kind: Event.Kind)] = []
        for (every, kind) in [(scenario.churn.failEvery, Event.Kind.fail), (scenario.churn.leaveEvery, .leave)] {
            guard let every else { continue }
            var t = scenario.joinSpread + Int64(every * 1e6)
            while t < scenario.duration {
                timeline.append((t, kind))
                t += Int64(every * 1e6)
            }
        }
        var pending: [Event] = []
        for (at, kind) in timeline.sorted(by: { ($0.at, $0.kind.rawValue) < ($1.at, $1.kind.rawValue) }) {
            // Newcomers due by now are up before the next victim is chosen.
            for e in pending where e.at <= at { up.append(e.peer) }
            events += pending.filter { $0.at <= at }
            pending.removeAll { $0.at <= at }
            guard up.count > 1 else { continue }
            let victim = up.remove(at: Int(rng.next() % UInt64(up.count)))
            events.append(Event(at: at, kind: kind, peer: victim))
            network.addHost()
            uplink.append(uplinks.draw(streamRate: rate, using: &rng))
            let newcomer = uplink.count - 1
            let joins = at + Int64(scenario.churn.down * 1e6)
            joinAt.append(joins)
            pending.append(Event(at: joins, kind: .join, peer: newcomer))
        }
        events += pending.filter { $0.at < scenario.duration }
        events.sort { ($0.at, $0.peer) < ($1.at, $1.peer) }
        let plan = SubstreamPlan(count: scenario.k)
        // As every peer sizes itself (`MeshPeerConfig.size`): the baselines see the same units and sched.
        units = uplink.map { plan.units(uplink: BitRate(bitsPerSecond: $0), streamRate: scenario.rate) }
        sched = uplink.map { SubstreamPlan.scheduleDelay(streamRate: scenario.rate, chunkDuration: scenario.chunkDuration,
                                                          uplink: BitRate(bitsPerSecond: $0)) }
    }

    /// All peers ever, the origin included.
    public var count: Int { uplink.count }
    public var rate: Double { scenario.rate.bitsPerSecond }

    /// Kumar, Liu and Ross's bound (design §4): r_max = min(u_s, (u_s + Σ u_i) / n), for the first `peers`.
    public var maxRate: Double {
        let n = Double(max(1, scenario.peers))
        return min(uplink[0], (uplink[0] + uplink.dropFirst().prefix(scenario.peers).reduce(0, +)) / n)
    }

    /// When a peer leaves for good (fails or leaves), or nil if it stays to the end.
    public func leavesAt(_ peer: Int) -> Int64? {
        events.first { $0.peer == peer && $0.kind != .join }?.at
    }
}
