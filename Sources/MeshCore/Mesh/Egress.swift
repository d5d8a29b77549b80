/// A peer's uplink as a part of the core (issue 19): the chunks it sends wait here, not in sockets, where nothing
/// could put a live chunk before a repair or drop one too old to matter. A link holds one chunk at a time, and all
/// links together about `targetDelay` of the uplink; the rest waits, live chunks first, each until it is too old to
/// be of use. What the peer can send is found out as it sends (`UplinkEstimate`), and `--uplink` caps it. No clock,
/// no socket: the driver hands each chunk on and says when its bytes have left (`MeshEvent.sent`), so the simulator
/// runs the same policy over a modelled uplink.
public struct Egress: Sendable {
    struct Item: Sendable {
        let chunk: Chunk
        var to: PeerID
        let live: Bool
        let queuedAt: Int64
        let bytes: Int
        /// It waited on the uplink once: its link free and the window or pace full, or its link busy with a chunk
        /// that was leaving at the uplink's pace.
        var heldByUplink = false
    }

    /// A chunk handed to a link whose bytes have not all left.
    struct OnLink: Sendable {
        var left: Int
        let bytes: Int
        let since: Int64
    }

    public private(set) var uplink: UplinkEstimate
    private var queue: [Item] = []
    private var onLink: [PeerID: OnLink] = [:]
    /// When each link's last bytes left: how long its socket has had to drain.
    private var lastDone: [PeerID: Int64] = [:]
    /// Links whose last chunk was held up (`isHeldUp`) until it left: their peers read slowly.
    private var slowLinks: Set<PeerID> = []
    /// The latest hand-out known to have left: a chunk handed out well before it and still on its link is held up
    /// by its link (its peer reads slowly), not by the uplink.
    private var newestDone: Int64 = .min / 2
    /// `--uplink` as a pace, so a fast link does not send faster than it.
    private var pacer: TokenBucket?
    private var pacedUntil: Int64?
    /// Chunks never sent (too old to be of use, or their link went), and chunk bytes handed out.
    public private(set) var dropped = 0
    public private(set) var bytesSent = 0
    public private(set) var droppedLive = 0
    /// Live chunks the uplink held back that were handed out after waiting longer than `lateWait`, or dropped: the
    /// uplink does not keep up. A chunk for a slow link (its last chunk took longer than the uplink needs: a peer
    /// that reads slowly) is not counted: that link's child moves, or the link is closed as stalled, and the other
    /// children do not pay for it.
    public private(set) var lateLive = 0
    static let lateWait: Int64 = 400_000
    /// A chunk not handed out within this is dropped (a repair or a backlog too: its child asked for it).
    let maxQueueDelay: Int64
    /// A link whose chunk has not left within this cannot drain: it is closed (the others never wait for it).
    let stallTimeout: Int64
    /// All links together hold about this much of the uplink at once, besides what their sockets take: enough for
    /// two links to send at once on a fast uplink (each TCP link's pace is its socket's share over its round trip),
    /// one at a time on a slow one.
    static let targetDelay: Int64 = 100_000
    /// Chunks queued at most (each link's share is bounded by its substreams; this bounds the sum).
    static let maxQueued = 4_096

    public init(uplink: UplinkEstimate, maxQueueDelay: Int64 = 600_000, stallTimeout: Int64 = 4_000_000) {
        self.uplink = uplink
        self.maxQueueDelay = maxQueueDelay
        self.stallTimeout = stallTimeout
        // A quarter of a second's worth at once: a chunk goes to several children together where the link is faster
        // than the cap (the window, at about 100 ms of what the uplink is found to send, keeps sockets from filling
        // where it is not). 50 ms' worth serialised each hop's fan-out and put leaves 1.2-1.4 s from the source on
        // loopback.
        if let cap = uplink.cap { pacer = TokenBucket(bytesPerSecond: cap, burst: max(64 * 1024, cap / 4)) }
    }

    /// Where the uplink's estimate starts, while nothing is measured yet, bytes/s.
    mutating func start(at initial: Double) { uplink.start(at: initial) }

    /// Chunks waiting.
    public var queued: Int { queue.count }

    /// A chunk for a link; `live` ones go before the others (repairs, a joiner's backlog).
    package mutating func enqueue(_ chunk: Chunk, to peer: PeerID, live: Bool, now: Int64) {
        guard queue.count < Self.maxQueued else {
            dropped += 1
            return
        }
        queue.append(Item(chunk: chunk, to: peer, live: live, queuedAt: now, bytes: chunk.wireBytes))
    }

    /// The driver says `bytes` of the chunk on this link have left (all of it, or a part). True when the estimate
    /// of the uplink moved.
    package mutating func sent(_ bytes: Int, on peer: PeerID, now: Int64) -> Bool {
        guard var item = onLink[peer] else { return false }
        let done = min(max(0, bytes), item.left)
        item.left -= done
        if item.left == 0 {
            onLink.removeValue(forKey: peer)
            lastDone[peer] = now
            if isHeldUp(item, now: now) { slowLinks.insert(peer) } else { slowLinks.remove(peer) }
            newestDone = max(newestDone, item.since)
        } else {
            onLink[peer] = item
        }
        return uplink.drained(bytes: done, idle: !isSending(now: now), now: now)
    }

    /// Whether the uplink is at work: some link has bytes on their way that no slow peer holds up.
    private func isSending(now: Int64) -> Bool { onLink.values.contains { !isHeldUp($0, now: now) } }

    /// The link is gone: what waits for it, or is on its way, is not sent.
    mutating func forget(_ peer: PeerID, now: Int64) {
        if onLink.removeValue(forKey: peer) != nil, !isSending(now: now) { uplink.drained(bytes: 0, idle: true, now: now) }
        lastDone.removeValue(forKey: peer)
        slowLinks.remove(peer)
        let before = queue.count
        queue.removeAll { $0.to == peer }
        dropped += before - queue.count
    }

    mutating func rename(_ old: PeerID, to new: PeerID) {
        if let item = onLink.removeValue(forKey: old) { onLink[new] = item }
        if let done = lastDone.removeValue(forKey: old) { lastDone[new] = done }
        if slowLinks.remove(old) != nil { slowLinks.insert(new) }
        for i in queue.indices where queue[i].to == old { queue[i].to = new }
    }

    /// Hands out what may go now, live chunks first, in the order they came; drops what waited too long.
    package mutating func release(now: Int64) -> [MeshAction] {
        guard !queue.isEmpty else { return [] }
        let before = queue.count
        // Looked for before it is gathered: nothing is too old at most wake-ups.
        if queue.contains(where: { now - $0.queuedAt > maxQueueDelay }) {
            let tooOld = queue.filter { now - $0.queuedAt > maxQueueDelay }
            queue.removeAll { now - $0.queuedAt > maxQueueDelay }
            dropped += before - queue.count
            droppedLive += tooOld.filter(\.live).count
            lateLive += tooOld.filter { $0.live && $0.heldByUplink && !isSlow($0.to, now: now) }.count
        }
        // What waits to go, not counting what each link's socket has taken already (it leaves as fast as it can).
        let absorbed = uplink.absorbed
        var held = onLink.reduce(0) { $0 + (isHeldUp($1.value, now: now) ? 0 : max(0, $1.value.left - absorbed)) }
        let window = max(1.0, uplink.rate * Double(Self.targetDelay) / 1e6)
        var out: [MeshAction] = []
        var taken = Set<Int>()
        pacedUntil = nil
        var full = false
        pass: for live in [true, false] {
            for (i, item) in queue.enumerated() where item.live == live && onLink[item.to] == nil {
                let queued = max(0, item.bytes - absorbed)
                if held > 0, Double(held + queued) > window {
                    full = true
                    break pass
                }
                if var bucket = pacer {
                    let keep = live ? 0 : bucket.burst / 2
                    let ok = bucket.take(item.bytes, now: now, keep: keep)
                    pacer = bucket
                    guard ok else {
                        pacedUntil = now + bucket.wait(for: item.bytes, keep: keep, now: now)
                        full = true
                        break pass
                    }
                }
                if live, item.heldByUplink, !isSlow(item.to, now: now), now - item.queuedAt > Self.lateWait { lateLive += 1 }
                let idle = lastDone[item.to].map { now - $0 } ?? Int64.max / 2
                uplink.handedOut(bytes: item.bytes, linkIdleFor: idle, now: now)
                onLink[item.to] = OnLink(left: item.bytes, bytes: item.bytes, since: now)
                held += queued
                bytesSent += item.bytes
                taken.insert(i)
                out.append(.sendChunk(item.to, item.chunk))
            }
        }
        if !taken.isEmpty { queue = queue.enumerated().filter { !taken.contains($0.offset) }.map(\.element) }
        for i in queue.indices where queue[i].live && !queue[i].heldByUplink {
            if let busy = onLink[queue[i].to] { queue[i].heldByUplink = !isHeldUp(busy, now: now) } else { queue[i].heldByUplink = full }
        }
        return out
    }

    /// A chunk still on its link while one handed out well after it has left, or long past the time the uplink needs
    /// for it: that link is slow (its peer does not read fast enough), and the others do not wait for it.
    private func isHeldUp(_ item: OnLink, now: Int64) -> Bool {
        item.since < newestDone - 50_000 || now - item.since > 300_000 + Int64(4e6 * Double(item.bytes) / max(1, uplink.rate))
    }

    /// A link whose last chunk was held up, or whose chunk on its way is held up now (a peer that stopped reading).
    private func isSlow(_ peer: PeerID, now: Int64) -> Bool {
        slowLinks.contains(peer) || onLink[peer].map { isHeldUp($0, now: now) } == true
    }

    /// Links whose chunk has not left within `stallTimeout`.
    package func stalled(now: Int64) -> [PeerID] {
        onLink.filter { now - $0.value.since > stallTimeout }.keys.sorted()
    }

    /// When the pace lets the next chunk go, if it holds one back.
    package var nextWakeup: Int64? { queue.isEmpty ? nil : pacedUntil }

    /// Every peer named here (`MeshPeer.referencedPeers`).
    func collectPeers(into all: inout Set<PeerID>) {
        all.formUnion(onLink.keys)
        all.formUnion(lastDone.keys)
        all.formUnion(slowLinks)
        for item in queue { all.insert(item.to) }
    }
}

extension Chunk {
    /// Bytes it takes on a link: the chunk message sealed in its frame (`Frame`, `LinkCipher`).
    public var wireBytes: Int { wire.map { $0.readableBytes + 8 + 24 } ?? (Chunk.headerLength + payload.readableBytes + 1 + 8 + 8 + 24) }
}
