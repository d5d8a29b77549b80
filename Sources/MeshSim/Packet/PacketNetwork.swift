import MeshCore

/// The packet-level model (the LSP2P paper's simulation side): nodes at random in a unit square, linked when
/// within `radius`; each node keeps distance-vector routes to the receivers; data items wander across the area
/// and the active node nearest each (within range) is a source for that step. A source floods its packet to all
/// its neighbours; each forwards it at once, without caching, to its next hop towards the nearest receiver
/// (duplicates dropped, so the copies merge on their way). Sending costs energy growing with distance, receiving a fixed amount;
/// a node goes inactive when it cannot pay for what it must do next, or after sending its share of packets.
/// Time goes in steps: a packet takes one step a hop, a routing update one step a hop.
public struct PacketScenario: Sendable {
    public var nodes = 1_000
    public var radius = 0.06
    /// Data items wandering across the area.
    public var sources = 3
    public var receivers = 1
    /// Each node's starting energy (a packet received costs 1, one sent 1 + (distance / radius)²).
    public var energy = 500.0
    /// Packets a node sends before it goes inactive (0: no limit).
    public var share = 300
    public var steps = 300
    /// How far a data item moves in a step.
    public var speed = 0.01
    /// Every node sends its routes to its neighbours this often, besides triggered updates.
    public var updatePeriod = 10
    public var seed: UInt64 = 1

    public init() {}

    static let receiveCost = 1.0
    static func sendCost(distance: Double, radius: Double) -> Double { 1 + (distance / radius) * (distance / radius) }
    /// "No route"; a route longer than `maxHops` counts as none (which ends counting to infinity).
    static let unreachable = 1 << 20
    static let maxHops = 128
}

/// One step's figures (a row of `performance.csv`).
public struct PacketStep: Sendable, Equatable {
    public var step: Int
    public var generated = 0
    /// Of the packets generated this step, those that reached a receiver, and their mean delay in hops (steps).
    public var delivered = 0
    public var delaySum = 0
    public var energyUsed = 0.0
    public var activeNodes = 0
    public var routingMessages = 0
    public var deliveryRatio: Double { generated == 0 ? 0 : Double(delivered) / Double(generated) }
    public var meanDelay: Double { delivered == 0 ? 0 : Double(delaySum) / Double(delivered) }
}

public final class PacketNetwork {
    public struct Node: Sendable {
        public var x: Double, y: Double
        public var energy: Double
        public var sent = 0
        public var active = true
        /// The step it went inactive, and why.
        public var inactiveAt: Int?
        public var inactiveReason: String?
    }

    /// A packet on its way: `from` sent it to `to`, arriving at `step`.
    private struct Hop {
        let packet: Int
        let from: Int
        let to: Int
    }

    private struct Packet {
        let born: Int
        var delivered = false
    }

    public let scenario: PacketScenario
    public private(set) var nodes: [Node] = []
    public private(set) var neighbours: [[Int]] = []
    public private(set) var receivers: [Int] = []
    /// dist[r][i]: node i's hop count to receiver r as its routing table says, and the neighbour it goes through.
    public private(set) var dist: [[Int]] = []
    public private(set) var nextHop: [[Int]] = []
    /// What each node last heard from each neighbour: heard[i][n][r] (index n into `neighbours[i]`).
    private var heard: [[[Int]]] = []
    private var changed: [Bool] = []
    public private(set) var items: [(x: Double, y: Double)] = []
    private var targets: [(x: Double, y: Double)] = []
    /// Where each data item was, step by step.
    public private(set) var trails: [[(x: Double, y: Double)]] = []
    private var inFlight: [Hop] = []
    private var seen: [Set<Int>]
    private var packets: [Packet] = []
    public private(set) var stepsDone: [PacketStep] = []
    /// How often each link carried a packet that got through... and any packet: [min(a,b), max(a,b)] → count.
    public private(set) var linkUse: [Int: Int] = [:]
    /// Every send: (step, sender). Tests check no inactive node ever sent.
    public private(set) var sends: [(step: Int, node: Int)] = []
    public var keepSendLog = false
    private var rng: SplitMixRandom
    public private(set) var step = 0

    public init(_ scenario: PacketScenario) {
        self.scenario = scenario
        rng = SplitMixRandom(seed: scenario.seed)
        for _ in 0..<scenario.nodes {
            nodes.append(Node(x: .random(in: 0..<1, using: &rng), y: .random(in: 0..<1, using: &rng), energy: scenario.energy))
        }
        seen = Array(repeating: [], count: scenario.nodes)
        neighbours = Self.links(nodes, radius: scenario.radius)
        var pool = Array(0..<scenario.nodes)
        for _ in 0..<min(scenario.receivers, scenario.nodes) {
            receivers.append(pool.remove(at: Int(rng.next() % UInt64(pool.count))))
        }
        let n = scenario.nodes
        dist = receivers.map { r in (0..<n).map { $0 == r ? 0 : PacketScenario.unreachable } }
        nextHop = receivers.map { _ in Array(repeating: -1, count: n) }
        heard = neighbours.map { $0.map { _ in Array(repeating: PacketScenario.unreachable, count: receivers.count) } }
        changed = Array(repeating: false, count: n)
        for r in receivers { changed[r] = true }
        for _ in 0..<scenario.sources {
            items.append((.random(in: 0..<1, using: &rng), .random(in: 0..<1, using: &rng)))
            targets.append((.random(in: 0..<1, using: &rng), .random(in: 0..<1, using: &rng)))
        }
        trails = items.map { [$0] }
    }

    /// Links between nodes within `radius`, found through a grid of radius-sized cells.
    static func links(_ nodes: [Node], radius: Double) -> [[Int]] {
        let cells = max(1, Int(1 / radius))
        func cell(_ v: Double) -> Int { min(cells - 1, Int(v * Double(cells))) }
        var grid = [[Int]](repeating: [], count: cells * cells)
        for (i, n) in nodes.enumerated() { grid[cell(n.y) * cells + cell(n.x)].append(i) }
        var out = [[Int]](repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() {
            let (cx, cy) = (cell(n.x), cell(n.y))
            for gy in max(0, cy - 1)...min(cells - 1, cy + 1) {
                for gx in max(0, cx - 1)...min(cells - 1, cx + 1) {
                    for j in grid[gy * cells + gx] where j != i && distance(n, nodes[j]) <= radius { out[i].append(j) }
                }
            }
            out[i].sort()
        }
        return out
    }

    static func distance(_ a: Node, _ b: Node) -> Double {
        ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)).squareRoot()
    }

    /// Runs every step; `progress` hears each step done.
    public func run(progress: (Int) -> Void = { _ in }) {
        while step < scenario.steps {
            advance()
            progress(step)
        }
        // Packets still under way when time is up are not delivered.
    }

    /// One step: routing updates, data items move and sources send, packets in flight hop once.
    public func advance() {
        stepsDone.append(PacketStep(step: step))
        stepsDone[step].routingMessages = exchangeRoutes()
        moveItems()
        let hops = inFlight
        inFlight.removeAll(keepingCapacity: true)
        // Sources: the active node nearest each item, if in range, sends a new packet to all its neighbours.
        for item in items {
            if let i = nearestActive(to: item) {
                let id = packets.count
                packets.append(Packet(born: step))
                stepsDone[step].generated += 1
                seen[i].insert(id)
                if receivers.contains(i) { deliver(id) } else { send(id, from: i, to: neighbours[i]) }
            }
        }
        for hop in hops {
            guard nodes[hop.to].active else { continue }
            guard spend(hop.to, PacketScenario.receiveCost) else { continue }
            let key = min(hop.from, hop.to) * scenario.nodes + max(hop.from, hop.to)
            linkUse[key, default: 0] += 1
            guard seen[hop.to].insert(hop.packet).inserted else { continue } // a duplicate
            if receivers.contains(hop.to) {
                deliver(hop.packet)
            } else {
                send(hop.packet, from: hop.to, to: downhill(hop.to))
            }
        }
        stepsDone[step].activeNodes = nodes.filter(\.active).count
        step += 1
    }

    private func deliver(_ packet: Int) {
        guard !packets[packet].delivered else { return }
        packets[packet].delivered = true
        let born = packets[packet].born
        stepsDone[born].delivered += 1
        stepsDone[born].delaySum += step - born
    }

    /// The next hop towards the nearest receiver, by the routing table (none without a route).
    private func downhill(_ i: Int) -> [Int] {
        guard let r = receivers.indices.min(by: { (dist[$0][i], $0) < (dist[$1][i], $1) }),
              dist[r][i] < PacketScenario.unreachable, nextHop[r][i] >= 0 else { return [] }
        return [nextHop[r][i]]
    }

    private func send(_ packet: Int, from i: Int, to targets: [Int]) {
        for j in targets where nodes[j].active {
            guard nodes[i].active else { return }
            let cost = PacketScenario.sendCost(distance: Self.distance(nodes[i], nodes[j]), radius: scenario.radius)
            guard spend(i, cost) else { return }
            nodes[i].sent += 1
            if keepSendLog { sends.append((step, i)) }
            inFlight.append(Hop(packet: packet, from: i, to: j))
            if scenario.share > 0, nodes[i].sent >= scenario.share { retire(i, reason: "share") }
        }
    }

    /// Pays for an operation, or goes inactive if the energy left cannot.
    private func spend(_ i: Int, _ cost: Double) -> Bool {
        guard nodes[i].active else { return false }
        guard nodes[i].energy >= cost else {
            retire(i, reason: "energy")
            return false
        }
        nodes[i].energy -= cost
        stepsDone[step].energyUsed += cost
        return true
    }

    /// Switches a node off now (as if its battery died): its neighbours notice at the next step.
    public func retire(_ i: Int, reason: String) {
        guard nodes[i].active else { return }
        nodes[i].active = false
        nodes[i].inactiveAt = step
        nodes[i].inactiveReason = reason
    }

    /// Distance-vector routing: a node whose routes changed (triggered) or whose period came sends its vector to
    /// its active neighbours, with poison reverse. Routes through a neighbour gone inactive are dropped at once.
    /// Returns the number of updates sent.
    private func exchangeRoutes() -> Int {
        let n = scenario.nodes
        let inf = PacketScenario.unreachable
        // A neighbour gone quiet: its routes are gone (the link layer noticed).
        for i in 0..<n where nodes[i].active {
            for (k, j) in neighbours[i].enumerated() where !nodes[j].active && heard[i][k].contains(where: { $0 < inf }) {
                heard[i][k] = Array(repeating: inf, count: receivers.count)
                changed[i] = recompute(i) || changed[i]
            }
        }
        let periodic = step % scenario.updatePeriod == 0
        let senders = (0..<n).filter { nodes[$0].active && (changed[$0] || periodic) }
        var messages = 0
        var updates: [(to: Int, slot: Int, vector: [Int])] = []
        for i in senders {
            changed[i] = false
            for j in neighbours[i] where nodes[j].active {
                // Poison reverse: routes through j are advertised to j as unreachable.
                let vector = receivers.indices.map { r in nextHop[r][i] == j ? inf : dist[r][i] }
                updates.append((j, neighbours[j].firstIndex(of: i)!, vector))
                messages += 1
            }
        }
        for u in updates where heard[u.to][u.slot] != u.vector {
            heard[u.to][u.slot] = u.vector
            if recompute(u.to) { changed[u.to] = true }
        }
        return messages
    }

    /// Bellman-Ford at one node from what its neighbours last said. True when a route changed.
    private func recompute(_ i: Int) -> Bool {
        var any = false
        for r in receivers.indices where receivers[r] != i {
            var best = PacketScenario.unreachable, via = -1
            for (k, j) in neighbours[i].enumerated() where nodes[j].active && heard[i][k][r] + 1 < best {
                best = heard[i][k][r] + 1
                via = j
            }
            if best > PacketScenario.maxHops { via = -1; best = PacketScenario.unreachable }
            if best != dist[r][i] || via != nextHop[r][i] {
                any = any || best != dist[r][i]
                dist[r][i] = best
                nextHop[r][i] = via
            }
        }
        return any
    }

    private func moveItems() {
        for i in items.indices {
            let (dx, dy) = (targets[i].x - items[i].x, targets[i].y - items[i].y)
            let d = (dx * dx + dy * dy).squareRoot()
            if d <= scenario.speed {
                items[i] = targets[i]
                targets[i] = (.random(in: 0..<1, using: &rng), .random(in: 0..<1, using: &rng))
            } else {
                items[i] = (items[i].x + dx / d * scenario.speed, items[i].y + dy / d * scenario.speed)
            }
            trails[i].append(items[i])
        }
    }

    private func nearestActive(to p: (x: Double, y: Double)) -> Int? {
        var best: Int?, bestD = scenario.radius * scenario.radius
        for i in nodes.indices where nodes[i].active {
            let (dx, dy) = (nodes[i].x - p.x, nodes[i].y - p.y)
            if dx * dx + dy * dy <= bestD { (best, bestD) = (i, dx * dx + dy * dy) }
        }
        return best
    }

    public var totalGenerated: Int { packets.count }
    public var totalDelivered: Int { packets.filter(\.delivered).count }
}
