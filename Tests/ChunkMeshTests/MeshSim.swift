import ChunkMesh
import NIOCore

/// A simulated network for `MeshPeer`s: per-link delay, seeded loss, time stepped to the next event.
/// (After quinn-proto's test `Pair` and str0m's netem: loss is a test editing the queue.)
final class MeshSim {
    struct Pending {
        let at: Int64
        let order: Int
        let target: PeerID
        let event: MeshEvent
    }

    private(set) var now: Int64 = 0
    private(set) var peers: [PeerID: MeshPeer] = [:]
    private(set) var alive: Set<PeerID> = []
    private var queue: [Pending] = []
    private var order = 0
    private var links: Set<[PeerID]> = []
    private var nextSeq: UInt64 = 0
    private var nextChunkAt: Int64 = 0
    private var nextTickAt: Int64 = 0
    /// Arrival time of each chunk at each peer.
    private(set) var delivered: [PeerID: [UInt64: Int64]] = [:]
    var oneWayDelay: (PeerID, PeerID) -> Int64 = { _, _ in 5_000 }
    /// Return true to drop a chunk on its way from one peer to another.
    var dropChunk: (PeerID, PeerID, UInt64) -> Bool = { _, _, _ in false }
    let origin: PeerID = "origin"
    let chunkDuration: Int64 = 200_000
    private let originUnits: Int
    /// The origin's run: a restart starts a new one, from seq 0.
    private(set) var epoch: UInt64 = 1

    init(originUnits: Int) {
        self.originUnits = originUnits
        startOrigin()
    }

    private func startOrigin() {
        var config = MeshPeerConfig(me: origin, isOrigin: true, bootstrap: nil, capacityUnits: originUnits, scheduleDelay: 1_000, seed: epoch)
        config.epoch = epoch
        add(config)
    }

    /// The origin dies, stays down for `downtime`, and comes back on the same address with a new run.
    /// `delivered` then holds the new run's chunks only.
    func restartOrigin(after downtime: Int64) {
        kill(origin)
        run(for: downtime)
        epoch += 1
        nextSeq = 0
        delivered.removeAll()
        startOrigin()
    }

    func add(_ config: MeshPeerConfig) {
        peers[config.me] = MeshPeer(config: config)
        alive.insert(config.me)
        schedule(config.me, .start, after: 0)
    }

    func join(_ id: PeerID, units: Int, sched: Int64 = 2_000, seed: UInt64) {
        add(MeshPeerConfig(me: id, isOrigin: false, bootstrap: origin, capacityUnits: units, scheduleDelay: sched, seed: seed))
    }

    /// SIGKILL: gone without a word; its neighbours see the link drop.
    func kill(_ id: PeerID) {
        alive.remove(id)
        for link in links.sorted(by: { $0.joined() < $1.joined() }) where link.contains(id) {
            links.remove(link)
            let other = link[0] == id ? link[1] : link[0]
            schedule(other, .disconnected(id), after: oneWayDelay(id, other))
        }
    }

    func leave(_ id: PeerID) {
        apply(peers[id]!.handle(.leave, now: now), from: id)
        schedule(id, .tick, after: 100_000) // lets the goodbyes go out
        kill(id)
    }

    /// Kept sorted latest first, so the next event is popped from the end.
    private func schedule(_ target: PeerID, _ event: MeshEvent, after delay: Int64) {
        order += 1
        let item = Pending(at: now + delay, order: order, target: target, event: event)
        var lo = 0, hi = queue.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if (queue[mid].at, queue[mid].order) > (item.at, item.order) { lo = mid + 1 } else { hi = mid }
        }
        queue.insert(item, at: lo)
    }

    /// Events handled in one `run`; a run stops (and says so) past `maxEvents`, so a message storm cannot hang a test.
    private(set) var events = 0
    let maxEvents = 2_000_000
    private(set) var overran = false
    var messageCounts: [String: Int] = [:]

    /// Runs the world for `duration` µs: the origin cuts a chunk every `chunkDuration`, every peer ticks every 100 ms.
    func run(for duration: Int64) {
        let end = now + duration
        events = 0
        while !overran {
            events += 1
            if events > maxEvents { overran = true }
            let nextEvent = queue.last
            let t = min(nextEvent?.at ?? .max, nextChunkAt, nextTickAt)
            guard t <= end else { break }
            now = t
            if t == nextChunkAt {
                nextChunkAt += chunkDuration
                guard alive.contains(origin) else { continue }
                let chunk = Chunk(seq: nextSeq, epoch: epoch, ingestTime: now, pts: 0, duration: chunkDuration,
                                  flags: nextSeq % 5 == 0 ? .randomAccess : [], payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188)))
                nextSeq += 1
                apply(peers[origin]!.handle(.chunk(from: nil, chunk), now: now), from: origin)
            } else if t == nextTickAt {
                nextTickAt += 100_000
                for id in alive.sorted() { apply(peers[id]!.handle(.tick, now: now), from: id) }
            } else if let e = nextEvent {
                queue.removeLast()
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
                    links.insert([id, other].sorted())
                    schedule(id, .connected(other), after: 2 * d)
                    schedule(other, .connected(id), after: d)
                    schedule(id, .linkDelay(other, d), after: 2 * d)
                    schedule(other, .linkDelay(id, d), after: 2 * d)
                } else {
                    schedule(id, .connectFailed(other), after: 2 * d)
                }
            case .disconnect(let other):
                links.remove([id, other].sorted())
                schedule(other, .disconnected(id), after: oneWayDelay(id, other))
            case .send(let other, let message):
                guard links.contains([id, other].sorted()) else { continue }
                messageCounts[String(describing: message).prefix(12).description, default: 0] += 1
                schedule(other, .message(from: id, message), after: oneWayDelay(id, other))
            case .sendChunk(let other, let chunk):
                guard links.contains([id, other].sorted()), !dropChunk(id, other, chunk.seq) else { continue }
                schedule(other, .chunk(from: id, chunk), after: oneWayDelay(id, other) + peers[id]!.config.scheduleDelay)
            case .deliver(let chunk):
                if chunk.epoch == epoch { delivered[id, default: [:]][chunk.seq] = now }
            case .parentsChanged:
                break
            }
        }
    }

    var producedSeqs: UInt64 { nextSeq }

    /// A cycle in some substream's parent graph among live peers, if any.
    func loop() -> [PeerID]? {
        for s in 0..<SubstreamPlan().count {
            for start in alive.sorted() {
                var path: [PeerID] = [start]
                var at = start
                while let p = peers[at]?.parents[s], alive.contains(p) {
                    if path.contains(p) { return path + [p] }
                    path.append(p)
                    at = p
                }
            }
        }
        return nil
    }
}
