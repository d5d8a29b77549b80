import MeshCore

/// The baselines (`centralized`, `random`, `tree`): meshes built with full knowledge of every peer, repaired at
/// once when a peer goes (an upper bound on what they could do: no detection time, no lost chunks).
/// Peers are indices into an `OverlayWorld`; 0 is the origin.
struct StaticMesh {
    let algorithm: OverlayAlgorithm
    let world: OverlayWorld
    let k: Int
    /// parent[s][i]: peer i's parent in substream s, or -1.
    private(set) var parent: [[Int]]
    /// D_s(i): peer i's delay from the source in substream s, µs, or -1 without a path to the source.
    private(set) var delay: [[Int64]]
    private var children: [[[Int]]]
    private(set) var used: [Int]
    private(set) var alive: [Bool]
    private(set) var parentChanges = 0
    private var rng: SplitMixRandom
    /// Peers in the mesh with a unit to spare.
    private var withRoom: [Int] = []

    init(_ algorithm: OverlayAlgorithm, world: OverlayWorld) {
        precondition(algorithm != .fastmesh)
        self.algorithm = algorithm
        self.world = world
        k = world.scenario.k
        parent = Array(repeating: Array(repeating: -1, count: world.count), count: k)
        delay = Array(repeating: Array(repeating: -1, count: world.count), count: k)
        children = Array(repeating: Array(repeating: [], count: world.count), count: k)
        used = Array(repeating: 0, count: world.count)
        alive = Array(repeating: false, count: world.count)
        rng = SplitMixRandom(seed: world.scenario.seed ^ 0xBA5E)
        alive[0] = true
        for s in 0..<k { delay[s][0] = 0 }
        if world.units[0] > 0 { withRoom = [0] }
        // The centralized heuristic inserts high uplinks first (a snowball: they end up near the source);
        // the others take peers in the order they join.
        let initial = (0..<world.scenario.peers).map { $0 + 1 }
        let order = algorithm == .centralized || algorithm == .centralizedQueued
            ? initial.sorted { (world.uplink[$0], $1) > (world.uplink[$1], $0) }
            : initial.sorted { (world.joinAt[$0], $0) < (world.joinAt[$1], $1) }
        for peer in order { insert(peer) }
    }

    func residual(_ p: Int) -> Int { world.units[p] - used[p] }

    /// p's children in `s`, in the order its uplink sends them a chunk.
    func children(of p: Int, _ s: Int) -> [Int] { children[s][p] }

    /// A peer joins: it takes parents for every substream.
    mutating func insert(_ peer: Int) {
        alive[peer] = true
        if residual(peer) > 0 { withRoom.append(peer) }
        attach(peer, substreams: Array(0..<k))
    }

    /// A peer goes: its children in each substream are re-attached at once, by the algorithm's own rule.
    mutating func remove(_ peer: Int) {
        alive[peer] = false
        withRoom.removeAll { $0 == peer }
        var orphans: [Int: [Int]] = [:]
        for s in 0..<k {
            if parent[s][peer] >= 0 { unlink(peer, s) }
            delay[s][peer] = -1
            for child in children[s][peer] {
                parent[s][child] = -1
                setDelays(below: child, s, to: nil)
                orphans[child, default: []].append(s)
            }
            children[s][peer] = []
        }
        used[peer] = 0
        for (child, substreams) in orphans.sorted(by: { $0.key < $1.key }) { attach(child, substreams: substreams) }
    }

    private mutating func unlink(_ child: Int, _ s: Int) {
        let p = parent[s][child]
        children[s][p].removeAll { $0 == child }
        // The siblings after it move up a place.
        if delay[s][p] >= 0 { for c in children[s][p] { setDelays(below: c, s, to: via(p, c, s)) } }
        if residual(p) == 0, alive[p] { withRoom.append(p) }
        used[p] -= 1
        parent[s][child] = -1
    }

    private mutating func link(_ child: Int, to p: Int, _ s: Int) {
        parent[s][child] = p
        children[s][p].append(child)
        used[p] += 1
        if residual(p) == 0 { withRoom.removeAll { $0 == p } }
        setDelays(below: child, s, to: via(p, child, s))
    }

    /// Sets a peer's delay in `s` and its whole subtree's after it (nil: cut off from the source).
    private mutating func setDelays(below top: Int, _ s: Int, to d: Int64?) {
        delay[s][top] = d ?? -1
        var stack = [top]
        while let p = stack.popLast() {
            for c in children[s][p] {
                delay[s][c] = delay[s][p] < 0 ? -1 : via(p, c, s)
                stack.append(c)
            }
        }
    }

    /// My delay in `s` through p: D_s(p) + link(p→me) + sched(p) for each child p sends a chunk of `s` to before
    /// me and for me (its uplink sends one copy after another, as the egress does): a newcomer comes last.
    private func via(_ p: Int, _ me: Int, _ s: Int) -> Int64 {
        let place = (children[s][p].firstIndex(of: me) ?? children[s][p].count) + 1
        return delay[s][p] + world.network.delay(p, me) + Int64(place) * world.sched[p]
    }

    /// Whether p may feed `child` in `s`: alive, reaching the source in `s`, and not below `child` there.
    private func canFeed(_ p: Int, _ child: Int, _ s: Int) -> Bool {
        guard p != child, alive[p], delay[s][p] >= 0 else { return false }
        guard !children[s][child].isEmpty else { return true } // a leaf has nobody below it
        var at = p
        while at != 0 {
            at = parent[s][at]
            if at == child || at < 0 { return false }
        }
        return true
    }

    private mutating func attach(_ peer: Int, substreams: [Int]) {
        parentChanges += 1
        switch algorithm {
        case .centralized, .centralizedQueued: attachByPower(peer, substreams)
        case .random: attachAtRandom(peer, substreams)
        case .tree: attachToOne(peer, substreams)
        case .fastmesh: break
        }
    }

    /// Design §3's power over every peer with room: the most powerful takes what it can, then the next.
    private mutating func attachByPower(_ peer: Int, _ substreams: [Int]) {
        var left = substreams
        while !left.isEmpty {
            var best = -1, bestPower = 0.0
            for p in withRoom {
                var n = 0
                var worst: Int64 = 0
                for s in left where canFeed(p, peer, s) {
                    n += 1
                    worst = max(worst, via(p, peer, s))
                }
                guard n > 0 else { continue }
                let power = Double(min(residual(p), n)) / Double(max(1, worst))
                if power > bestPower || (power == bestPower && p < best) { (best, bestPower) = (p, power) }
            }
            guard best >= 0 else { return }
            let take = left.filter { canFeed(best, peer, $0) }
                .sorted { (via(best, peer, $0), $0) < (via(best, peer, $1), $1) }
                .prefix(residual(best))
            for s in take { link(peer, to: best, s) }
            left.removeAll { take.contains($0) }
        }
    }

    private mutating func attachAtRandom(_ peer: Int, _ substreams: [Int]) {
        for s in substreams {
            // A few draws find one almost always; the scan is for a nearly full mesh.
            var choice: Int?
            for _ in 0..<32 where !withRoom.isEmpty {
                let p = withRoom[Int(rng.next() % UInt64(withRoom.count))]
                if canFeed(p, peer, s) { choice = p; break }
            }
            if choice == nil { choice = withRoom.first { canFeed($0, peer, s) } }
            if let choice { link(peer, to: choice, s) }
        }
    }

    private mutating func attachToOne(_ peer: Int, _ substreams: [Int]) {
        var best = -1
        var bestDelay = Int64.max
        for p in withRoom where residual(p) >= substreams.count && substreams.allSatisfy({ canFeed(p, peer, $0) }) {
            let d = substreams.map { via(p, peer, $0) }.max()!
            if d < bestDelay { (best, bestDelay) = (p, d) }
        }
        guard best >= 0 else { return }
        for s in substreams { link(peer, to: best, s) }
    }
}
