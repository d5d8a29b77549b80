import ChunkMesh
import NIOCore

/// A simulated network for `MeshPeer`s, the same core the relays run: per-link delay, seeded loss, time stepped
/// to the next event. (After quinn-proto's test `Pair` and str0m's netem: loss is a closure editing the traffic.)
/// A chunk leaves a peer as soon as it is in, and arrives `oneWayDelay + sched(sender)` later.
public final class SimulatedMesh {
    private struct Delivery {
        let target: PeerID
        let event: MeshEvent
    }

    /// A link between two peers, either way round.
    private struct Link: Hashable {
        let a: PeerID, b: PeerID
        init(_ x: PeerID, _ y: PeerID) { (a, b) = x < y ? (x, y) : (y, x) }
    }

    public private(set) var now: Int64 = 0
    public private(set) var peers: [PeerID: MeshPeer] = [:]
    public private(set) var alive: Set<PeerID> = []
    /// Each peer's sched, read on every chunk sent (reading it from the peer would copy the peer).
    private var sched: [PeerID: Int64] = [:]
    /// Live peers in the order they joined: the order they tick in.
    private var tickOrder: [PeerID] = []
    private var queue = EventQueue<Delivery>()
    private var links: Set<Link> = []
    private var nextSeq: UInt64 = 0
    private var nextChunkAt: Int64 = 0
    private var nextTickAt: Int64 = 0
    /// Arrival time of each chunk at each peer, when `recordDeliveries` (small runs and tests).
    public private(set) var delivered: [PeerID: [UInt64: Int64]] = [:]
    public var recordDeliveries = true
    /// Called for each chunk a peer gets for the first time, with the time it arrived.
    public var onDeliver: ((PeerID, Chunk, Int64) -> Void)?
    public var oneWayDelay: (PeerID, PeerID) -> Int64 = { _, _ in 5_000 }
    /// Return true to drop a chunk on its way from one peer to another.
    public var dropChunk: (PeerID, PeerID, UInt64) -> Bool = { _, _, _ in false }
    public let origin: PeerID = "origin"
    public let chunkDuration: Int64
    /// How often every peer ticks, as `MeshNode` does.
    public let tickPeriod: Int64 = 100_000
    private let originUnits: Int
    private let originScheduleDelay: Int64
    private let payload: ByteBuffer
    /// The origin's run: a restart starts a new one, from seq 0.
    public private(set) var epoch: UInt64 = 1

    public let plan: SubstreamPlan

    public init(originUnits: Int, originScheduleDelay: Int64 = 1_000, chunkDuration: Int64 = 200_000, substreams: Int = 4) {
        self.originUnits = originUnits
        self.plan = SubstreamPlan(count: substreams)
        self.originScheduleDelay = originScheduleDelay
        self.chunkDuration = chunkDuration
        payload = ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188))
        startOrigin()
    }

    private func startOrigin() {
        var config = MeshPeerConfig(me: origin, isOrigin: true, bootstrap: nil, capacityUnits: originUnits,
                                    scheduleDelay: originScheduleDelay, seed: epoch, plan: plan, chunkDuration: chunkDuration)
        config.epoch = epoch
        add(config)
    }

    /// The origin dies, stays down for `downtime`, and comes back on the same address with a new run.
    /// `delivered` then holds the new run's chunks only.
    public func restartOrigin(after downtime: Int64) {
        kill(origin)
        run(for: downtime)
        epoch += 1
        nextSeq = 0
        delivered.removeAll()
        startOrigin()
    }

    public func add(_ config: MeshPeerConfig) {
        peers[config.me] = MeshPeer(config: config)
        sched[config.me] = config.scheduleDelay
        if alive.insert(config.me).inserted { tickOrder.append(config.me) }
        schedule(config.me, .start, after: 0)
    }

    public func join(_ id: PeerID, units: Int, sched: Int64 = 2_000, seed: UInt64) {
        add(MeshPeerConfig(me: id, isOrigin: false, bootstrap: origin, capacityUnits: units, scheduleDelay: sched, seed: seed,
                           plan: plan, chunkDuration: chunkDuration))
    }

    /// SIGKILL: gone without a word; its neighbours see the link drop.
    public func kill(_ id: PeerID) {
        guard alive.remove(id) != nil else { return }
        tickOrder.removeAll { $0 == id }
        for link in links.filter({ $0.a == id || $0.b == id }).sorted(by: { ($0.a, $0.b) < ($1.a, $1.b) }) {
            links.remove(link)
            let other = link.a == id ? link.b : link.a
            schedule(other, .disconnected(id), after: oneWayDelay(id, other))
        }
    }

    /// Leaves on purpose: its children hear first, then its links close.
    public func leave(_ id: PeerID) {
        guard alive.contains(id) else { return }
        apply(peers[id]!.handle(.leave, now: now), from: id)
        kill(id)
    }

    private func schedule(_ target: PeerID, _ event: MeshEvent, after delay: Int64) {
        queue.push(Delivery(target: target, event: event), at: now + delay)
    }

    /// Events handled in one `run`; a run stops (and says so) past `maxEvents`, so a message storm cannot hang a test.
    public private(set) var events = 0
    public var maxEvents = 2_000_000
    public private(set) var overran = false
    /// Messages sent, by kind, over the whole simulation.
    public private(set) var messageCounts: [String: Int] = [:]
    public private(set) var chunksSent = 0

    /// Runs the world for `duration` µs: the origin cuts a chunk every `chunkDuration`, every peer ticks every
    /// `tickPeriod`. `progress` is called once per simulated second.
    public func run(for duration: Int64, progress: ((Int64) -> Void)? = nil) {
        let end = now + duration
        var nextProgress = (now / 1_000_000 + 1) * 1_000_000
        events = 0
        while !overran {
            events += 1
            if events > maxEvents { overran = true }
            let t = min(queue.nextTime ?? .max, nextChunkAt, nextTickAt)
            guard t <= end else { break }
            now = t
            if let progress, now >= nextProgress {
                progress(now)
                nextProgress += 1_000_000
            }
            if t == nextChunkAt {
                nextChunkAt += chunkDuration
                guard alive.contains(origin) else { continue }
                let chunk = Chunk(seq: nextSeq, epoch: epoch, ingestTime: now, pts: 0, duration: chunkDuration,
                                  flags: nextSeq % 5 == 0 ? .randomAccess : [], payload: payload)
                nextSeq += 1
                apply(peers[origin]!.handle(.chunk(from: nil, chunk), now: now), from: origin)
            } else if t == nextTickAt {
                nextTickAt += tickPeriod
                for id in tickOrder { apply(peers[id]!.handle(.tick, now: now), from: id) }
            } else if let e = queue.pop()?.event {
                guard alive.contains(e.target) else { continue }
                apply(peers[e.target]!.handle(e.event, now: now), from: e.target)
            }
        }
        now = end
    }

    private func apply(_ actions: [MeshAction], from id: PeerID) {
        for action in actions {
            switch action {
            case .connect(let other):
                let d = oneWayDelay(id, other)
                if alive.contains(other) {
                    links.insert(Link(id, other))
                    schedule(id, .connected(other), after: 2 * d)
                    schedule(other, .connected(id), after: d)
                    schedule(id, .linkDelay(other, d), after: 2 * d)
                    schedule(other, .linkDelay(id, d), after: 2 * d)
                } else {
                    schedule(id, .connectFailed(other), after: 2 * d)
                }
            case .disconnect(let other):
                links.remove(Link(id, other))
                schedule(other, .disconnected(id), after: oneWayDelay(id, other))
            case .send(let other, let message):
                guard links.contains(Link(id, other)) else { continue }
                messageCounts[message.kind, default: 0] += 1
                schedule(other, .message(from: id, message), after: oneWayDelay(id, other))
            case .sendChunk(let other, let chunk):
                guard links.contains(Link(id, other)), !dropChunk(id, other, chunk.seq) else { continue }
                chunksSent += 1
                schedule(other, .chunk(from: id, chunk), after: oneWayDelay(id, other) + sched[id, default: 0])
            case .deliver(let chunk):
                guard chunk.epoch == epoch else { continue }
                if recordDeliveries { delivered[id, default: [:]][chunk.seq] = now }
                onDeliver?(id, chunk, now)
            case .parentsChanged:
                break
            }
        }
    }

    public var producedSeqs: UInt64 { nextSeq }

    /// A cycle in some substream's parent graph among live peers, if any.
    public func loop() -> [PeerID]? {
        for s in plan.all {
            var clear: Set<PeerID> = [] // peers whose path up is known to end without a cycle
            for start in tickOrder {
                var path: [PeerID] = [start]
                var onPath: Set<PeerID> = [start]
                var at = start
                while let p = peers[at]?.parents[s], alive.contains(p), !clear.contains(p) {
                    if onPath.contains(p) { return path + [p] }
                    path.append(p)
                    onPath.insert(p)
                    at = p
                }
                clear.formUnion(path)
            }
        }
        return nil
    }
}

extension MeshMessage {
    /// The message's kind, for counts.
    var kind: String {
        switch self {
        case .announce: "announce"
        case .peers: "peers"
        case .subscribe: "subscribe"
        case .unsubscribe: "unsubscribe"
        case .accept: "accept"
        case .refuse: "refuse"
        case .repair: "repair"
        case .leaving: "leaving"
        case .viewRequest: "viewRequest"
        case .view: "view"
        }
    }
}
