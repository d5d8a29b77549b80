import MeshCore
import Foundation

/// What one algorithm achieved on a scenario, over the measured window (after the warm-up, to a deadline before
/// the end). A peer counts from 5 s after it joined to a deadline before it went.
public struct OverlayResult: Codable, Sendable {
    /// The longest and the mean of the peers' delays; a peer's delay is the median over its seconds of the
    /// latest chunk of that second (ingest to arrival: the slowest substream).
    public var maxDelayMs: Double
    public var meanDelayMs: Double
    /// Chunks received over chunks due, times the stream's rate, against `min(rate, r_max)`.
    public var rateRatio: Double
    public var achievedRateBps: Double
    /// Chunks received within the deadline over chunks due.
    public var onTime: Double
    /// Streams' worth the origin sends (units in use over k), mean over the window.
    public var originLoad: Double
    public var parentChanges: Int
    /// [percentile, ms] of every chunk's delay.
    public var delayCdfMs: [[Double]]
    /// Every measured peer's delay, ms, sorted (about 500, evenly picked, the largest always in).
    public var peerDelaysMs: [Double]
    /// Samples (each second, each 10 s past 2,000 peers) where some substream's parents formed a cycle.
    public var loopsSeen: Int
    public var peersMeasured: Int
    public var wallSeconds: Double
    /// Fast-Mesh only: what the real core costs and how it behaves at scale.
    public var scale: ScaleFigures?
}

/// What running the real core at scale shows (design §7), over the measured window unless said.
public struct ScaleFigures: Codable, Sendable {
    public struct Control: Codable, Sendable {
        public var messagesPerS: Double
        public var bytesPerS: Double
        /// Control bytes over the stream's bytes.
        public var shareOfStream: Double
    }

    /// Control traffic (sent and heard) of the origin, the median peer and the busiest, by bytes.
    public var origin: Control
    public var medianPeer: Control
    public var busiestPeer: Control
    /// Join to first chunk of the peers that joined in the first spread (the flash crowd), ms.
    public var firstChunkP50Ms: Double
    public var firstChunkP99Ms: Double
    public var firstChunkMaxMs: Double
    /// Of those, peers that never got a chunk.
    public var withoutChunk: Int
    /// The most links any node held at once, the origin's now, over the run.
    public var maxLinks: Int
    /// Who held them, when, and what for.
    public var maxLinksHolder: LinksHeld?
    /// `mesh` walked from the origin at the end: peers listed, of those alive.
    public var meshListed: Int
    public var meshAlive: Int
    /// Wake-ups the cores asked for, per peer and second, over the run.
    public var wakeupsPerPeerSecond: Double
    public var parentChangesPerPeerMinute: Double
    /// The same over the measured window, of the peers there all of it (joining's first choices left out).
    public var parentChangesPerPeerMinuteMeasured = 0.0
    /// Parent changes of the peers alive at the end, by cause.
    public var parentChangeCauses: [String: Int]
    /// Links opened by the peers alive at the end, by why.
    public var dialCauses: [String: Int]
    /// Control messages sent over the run, by kind, per peer and second.
    public var messagesPerPeerSecond: [String: Double]
    /// The same over the measured window, and wake-ups there.
    public var messagesPerPeerSecondMeasured: [String: Double] = [:]
    public var wakeupsPerPeerSecondMeasured = 0.0
}

/// Chunk arrivals of the measured window, by peer and second.
struct DeliveryTally {
    let world: OverlayWorld
    let firstSecond: Int
    let seconds: Int
    private let from: [Int64]
    private let to: [Int64]
    private var received: [UInt16]
    private var onTime: [UInt16]
    private var latest: [Int32]
    /// Chunk delays in ms buckets; the last bucket holds everything later.
    private var histogram = [Int](repeating: 0, count: 60_001)
    static let grace: Int64 = 5_000_000

    init(world: OverlayWorld) {
        self.world = world
        let sc = world.scenario
        firstSecond = Int((sc.warmup + 999_999) / 1_000_000)
        let lastSecond = Int((sc.duration - sc.deadline) / 1_000_000)
        seconds = max(0, lastSecond - firstSecond)
        var leaves = [Int64](repeating: .max, count: world.count)
        for e in world.events where e.kind != .join { leaves[e.peer] = min(leaves[e.peer], e.at) }
        from = (0..<world.count).map { world.joinAt[$0] + Self.grace }
        to = (0..<world.count).map { leaves[$0] == .max ? .max : leaves[$0] - sc.deadline }
        received = Array(repeating: 0, count: world.count * seconds)
        onTime = received
        latest = Array(repeating: -1, count: world.count * seconds)
    }

    /// The slot of a peer's second, if the peer is measured then.
    private func slot(_ peer: Int, _ second: Int) -> Int? {
        let j = second - firstSecond
        guard peer > 0, j >= 0, j < seconds, Int64(second) * 1_000_000 >= from[peer],
              Int64(second + 1) * 1_000_000 <= to[peer] else { return nil }
        return peer * seconds + j
    }

    mutating func record(peer: Int, ingest: Int64, delay: Int64) {
        guard let i = slot(peer, Int(ingest / 1_000_000)) else { return }
        received[i] &+= 1
        if delay <= world.scenario.deadline { onTime[i] &+= 1 }
        let ms = Int32(min(delay / 1_000, Int64(Int32.max)))
        latest[i] = max(latest[i], ms)
        histogram[min(Int(ms), histogram.count - 1)] += 1
    }

    /// Chunks cut in a second: ingest times are multiples of the chunk duration.
    func chunks(in second: Int) -> Range<Int64> {
        let cd = world.scenario.chunkDuration
        let first = (Int64(second) * 1_000_000 + cd - 1) / cd
        let end = (Int64(second + 1) * 1_000_000 + cd - 1) / cd
        return first..<end
    }

    func result(originLoad: Double, parentChanges: Int, loopsSeen: Int, wall: Double) -> OverlayResult {
        var due = 0, got = 0, inTime = 0
        var peerDelays: [Double] = []
        for peer in 1..<world.count {
            var worst: [Int32] = []
            for second in firstSecond..<(firstSecond + seconds) {
                guard let i = slot(peer, second) else { continue }
                due += chunks(in: second).count
                got += Int(received[i])
                inTime += Int(onTime[i])
                if latest[i] >= 0 { worst.append(latest[i]) }
            }
            if !worst.isEmpty { peerDelays.append(Double(worst.sorted()[worst.count / 2])) }
        }
        peerDelays.sort()
        let ratio = due == 0 ? 0 : Double(got) / Double(due)
        let target = min(world.rate, world.maxRate)
        let total = histogram.reduce(0, +)
        var cdf: [[Double]] = []
        var seen = 0, bucket = 0
        for p in [0.0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.9, 100] where total > 0 {
            let rank = max(1, Int((p / 100 * Double(total)).rounded(.up)))
            while seen < rank, bucket < histogram.count { seen += histogram[bucket]; bucket += 1 }
            cdf.append([p, Double(max(0, bucket - 1))])
        }
        let step = max(1, peerDelays.count / 500)
        return OverlayResult(
            maxDelayMs: peerDelays.last ?? 0,
            meanDelayMs: peerDelays.isEmpty ? 0 : peerDelays.reduce(0, +) / Double(peerDelays.count),
            rateRatio: ratio * world.rate / target, achievedRateBps: ratio * world.rate,
            onTime: due == 0 ? 0 : Double(inTime) / Double(due), originLoad: originLoad, parentChanges: parentChanges,
            delayCdfMs: cdf, peerDelaysMs: (Array(stride(from: 0, to: peerDelays.count - 1, by: step)) + (peerDelays.isEmpty ? [] : [peerDelays.count - 1])).map { peerDelays[$0] },
            loopsSeen: loopsSeen, peersMeasured: peerDelays.count, wallSeconds: wall)
    }
}

/// Runs one algorithm on a world. `progress` hears the simulated time (µs) once a second of it.
public enum OverlaySimulation {
    public static func run(_ algorithm: OverlayAlgorithm, world: OverlayWorld,
                           progress: (Int64) -> Void = { _ in }) -> OverlayResult {
        let started = Date()
        return algorithm == .fastmesh
            ? runFastMesh(world, started: started, progress: progress)
            : runStatic(algorithm, world, started: started, progress: progress)
    }

    /// The baselines: built whole at the start, repaired at once on churn, sampled once a second.
    /// `centralized-queued` times the centralized mesh's chunks through each peer's uplink: a peer sends every copy
    /// it forwards one after another, whatever the substream, at sched apiece (the others read a chunk's delay off
    /// the tree, as if its substream had the uplink to itself).
    private static func runStatic(_ algorithm: OverlayAlgorithm, _ world: OverlayWorld, started: Date,
                                  progress: (Int64) -> Void) -> OverlayResult {
        let sc = world.scenario
        var mesh = StaticMesh(algorithm, world: world)
        var tally = DeliveryTally(world: world)
        var events = world.events[...]
        var load = 0.0
        enum Step { case cut(Int64), arrival(peer: Int, chunk: Int64) }
        var queue = EventQueue<Step>()
        /// When each peer's uplink has sent all it was handed (`centralized-queued`).
        var busyUntil = [Int64](repeating: 0, count: world.count)
        func forward(_ chunk: Int64, from p: Int, at now: Int64) {
            for child in mesh.children(of: p, Int(chunk % Int64(sc.k))) {
                busyUntil[p] = max(busyUntil[p], now) + world.sched[p]
                queue.push(.arrival(peer: child, chunk: chunk), at: busyUntil[p] + world.network.delay(p, child))
            }
        }
        if algorithm == .centralizedQueued { queue.push(.cut(0), at: 0) }
        for second in 0..<Int(sc.duration / 1_000_000) {
            let end = Int64(second + 1) * 1_000_000
            while let e = events.first, e.at < end {
                events = events.dropFirst()
                if e.kind == .join { mesh.insert(e.peer) } else { mesh.remove(e.peer) }
            }
            while let at = queue.nextTime, at < end, let step = queue.pop() {
                switch step {
                case .cut(let n):
                    queue.push(.cut(n + 1), at: (n + 1) * sc.chunkDuration)
                    forward(n, from: 0, at: at)
                case .arrival(let peer, let n):
                    guard mesh.alive[peer] else { continue }
                    tally.record(peer: peer, ingest: n * sc.chunkDuration, delay: at - n * sc.chunkDuration)
                    forward(n, from: peer, at: at)
                }
            }
            progress(end)
            guard second >= tally.firstSecond, second < tally.firstSecond + tally.seconds else { continue }
            load += Double(mesh.used[0]) / Double(sc.k)
            guard algorithm != .centralizedQueued else { continue }
            for peer in 1..<world.count where mesh.alive[peer] {
                for n in tally.chunks(in: second) {
                    let d = mesh.delay[Int(n % Int64(sc.k))][peer]
                    if d >= 0 { tally.record(peer: peer, ingest: n * sc.chunkDuration, delay: d) }
                }
            }
        }
        return tally.result(originLoad: load / Double(max(1, tally.seconds)), parentChanges: mesh.parentChanges,
                            loopsSeen: 0, wall: Date().timeIntervalSince(started))
    }

    /// Fast-Mesh: every peer a real `MeshPeer`, on the simulated wide-area network.
    private static func runFastMesh(_ world: OverlayWorld, started: Date, progress: (Int64) -> Void) -> OverlayResult {
        let sc = world.scenario
        let sim = SimulatedMesh(originUnits: world.units[0], originScheduleDelay: world.sched[0],
                                chunkDuration: sc.chunkDuration, substreams: sc.k, streamRate: sc.rate,
                                originUplink: BitRate(bitsPerSecond: world.uplink[0]))
        sim.recordDeliveries = false
        sim.maxEvents = .max
        let ids = [sim.origin] + (1..<world.count).map { sim.id("p\($0)") }
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        var bootstraps = SplitMixRandom(seed: sc.seed ^ 0xB007)
        var atWarmup: [PeerID: ControlTraffic] = [:]
        var changesAtWarmup: [PeerID: Int] = [:]
        let network = world.network
        sim.oneWayDelay = { a, b in network.delay(index[a]!, index[b]!) }
        var tally = DeliveryTally(world: world)
        sim.onDeliver = { id, chunk, now in
            tally.record(peer: index[id]!, ingest: chunk.ingestTime, delay: now - chunk.ingestTime)
        }
        // The first peers join within the spread; churn follows the script.
        var script = (0..<sc.peers).map { $0 + 1 }.map { OverlayWorld.Event(at: world.joinAt[$0], kind: .join, peer: $0) } + world.events
        script.sort { ($0.at, $0.peer) < ($1.at, $1.peer) }
        var next = script[...]
        var load = 0.0, loops = 0, departedChanges = 0
        var messagesAtWarmup: [String: Int] = [:], wakeupsAtWarmup = 0
        for second in 0..<Int(sc.duration / 1_000_000) {
            let end = Int64(second + 1) * 1_000_000
            while let e = next.first, e.at < end {
                next = next.dropFirst()
                sim.run(for: e.at - sim.now)
                let id = ids[e.peer]
                switch e.kind {
                case .join:
                    // Any live peer bootstraps a joiner (design §7): a join URL may name any of them.
                    sim.join(sim.name(id), uplink: BitRate(bitsPerSecond: world.uplink[e.peer]), streamRate: sc.rate,
                             seed: sc.seed &* 1_000_003 &+ UInt64(e.peer), bootstrap: sc.bootstrap == .origin ? sim.origin : sim.livePeer(bootstraps.next()))
                case .fail:
                    departedChanges += sim.peers[id]?.parentChanges ?? 0
                    sim.kill(id)
                case .leave:
                    departedChanges += sim.peers[id]?.parentChanges ?? 0
                    sim.leave(id)
                }
            }
            sim.run(for: end - sim.now)
            if second + 1 == tally.firstSecond {
                (messagesAtWarmup, wakeupsAtWarmup) = (sim.messageCounts, sim.wakeups)
                for id in sim.alive {
                    atWarmup[id] = sim.traffic(of: id)
                    changesAtWarmup[id] = sim.peers[id]?.parentChanges
                }
            }
            if second >= tally.firstSecond, second < tally.firstSecond + tally.seconds {
                load += Double(sim.peers[sim.origin]!.usedUnits) / Double(sc.k)
                // A loop check walks every peer's parents: each second on small meshes, each 10 s on large ones.
                if second % (world.count > 2_000 ? 10 : 1) == 0, sim.loop() != nil { loops += 1 }
            }
            progress(end)
        }
        let changes = departedChanges + sim.alive.filter { $0 != sim.origin }.map { sim.peers[$0]!.parentChanges }.reduce(0, +)
        var result = tally.result(originLoad: load / Double(max(1, tally.seconds)), parentChanges: changes, loopsSeen: loops,
                                  wall: Date().timeIntervalSince(started))
        result.scale = scaleFigures(sim, world, atWarmup: atWarmup, ids: ids, changes: changes)
        // Steady state: the changes of peers there the whole measured window, over it.
        let stayed = changesAtWarmup.filter { sim.alive.contains($0.key) && $0.key != sim.origin }
        let window = Double(sc.duration - sc.warmup) / 60e6
        result.scale?.parentChangesPerPeerMinuteMeasured = stayed.isEmpty ? 0
            : Double(stayed.map { sim.peers[$0.key]!.parentChanges - $0.value }.reduce(0, +)) / Double(stayed.count) / window
        let peerSeconds = max(1, Double(sim.alive.count) * Double(sc.duration - sc.warmup) / 1e6)
        result.scale?.messagesPerPeerSecondMeasured = sim.messageCounts.reduce(into: [:]) { all, kind in
            all[kind.key] = (Double(kind.value - (messagesAtWarmup[kind.key] ?? 0)) / peerSeconds * 100).rounded() / 100
        }
        result.scale?.wakeupsPerPeerSecondMeasured = Double(sim.wakeups - wakeupsAtWarmup) / peerSeconds
        return result
    }

    private static func scaleFigures(_ sim: SimulatedMesh, _ world: OverlayWorld, atWarmup: [PeerID: ControlTraffic],
                                     ids: [PeerID], changes: Int) -> ScaleFigures {
        let sc = world.scenario
        let window = Double(sc.duration - sc.warmup) / 1e6
        func control(_ id: PeerID) -> ScaleFigures.Control {
            let (a, b) = (atWarmup[id] ?? ControlTraffic(), sim.traffic(of: id))
            let bytes = Double(b.bytes - a.bytes) / window
            return .init(messagesPerS: Double(b.messages - a.messages) / window, bytesPerS: bytes, shareOfStream: bytes * 8 / world.rate)
        }
        // Peers there the whole window, by control bytes.
        let peers = atWarmup.keys.filter { $0 != sim.origin && sim.alive.contains($0) }.map(control).sorted { $0.bytesPerS < $1.bytesPerS }
        let none = ScaleFigures.Control(messagesPerS: 0, bytesPerS: 0, shareOfStream: 0)
        let crowd = (1...max(1, sc.peers)).filter { $0 < ids.count && sim.alive.contains(ids[$0]) }
        let firsts = crowd.compactMap { sim.firstChunkDelay(of: ids[$0]) }.map { Double($0) / 1_000 }.sorted()
        func pct(_ q: Double) -> Double { firsts.isEmpty ? 0 : firsts[min(firsts.count - 1, Int(q * Double(firsts.count)))] }
        var walk = MeshCrawl(start: sim.origin)
        while let id = walk.next() {
            if sim.alive.contains(id), let core = sim.peers[id] { walk.answer(from: id, view: core.view) } else { walk.failure(id) }
        }
        let listed = walk.listing.filter { sim.alive.contains($0.id) }.count
        let peerSeconds = Double(sim.alive.count) * Double(sc.duration) / 1e6
        return ScaleFigures(origin: control(sim.origin), medianPeer: peers.isEmpty ? none : peers[peers.count / 2],
                            busiestPeer: peers.last ?? none, firstChunkP50Ms: pct(0.5), firstChunkP99Ms: pct(0.99),
                            firstChunkMaxMs: firsts.last ?? 0, withoutChunk: crowd.count - firsts.count, maxLinks: sim.maxLinks,
                            maxLinksHolder: sim.maxLinksHolder,
                            meshListed: listed, meshAlive: sim.alive.count,
                            wakeupsPerPeerSecond: Double(sim.wakeups) / max(1, peerSeconds),
                            parentChangesPerPeerMinute: Double(changes) / max(1, peerSeconds) * 60,
                            parentChangeCauses: sim.alive.reduce(into: [:]) { all, id in
                                for (cause, n) in sim.peers[id]?.changeCauses ?? [:] { all[cause.rawValue, default: 0] += n }
                            },
                            dialCauses: sim.alive.reduce(into: [:]) { all, id in
                                for (cause, n) in sim.peers[id]?.dialCauses ?? [:] { all[cause.rawValue, default: 0] += n }
                            },
                            messagesPerPeerSecond: sim.messageCounts.mapValues { (Double($0) / max(1, peerSeconds) * 100).rounded() / 100 })
    }
}
