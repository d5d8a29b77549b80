/// The chunks a peer holds of one origin run, for its children and its repairs: the newest `capacity` seqs, and
/// which missing ones it asked a parent for. A part of `MeshPeer`: no clock, no links.
struct ChunkWindow {
    /// Seqs kept; it follows the repair horizon, which follows the chunks' duration.
    var capacity: Int
    private var chunks: [SeqKey: Chunk] = [:]
    /// Nothing below this seq is held any more.
    private(set) var low: UInt64 = 0
    private(set) var newest: UInt64?
    /// The first chunk of this run received: nothing older is worth a repair (playback starts after it).
    private(set) var first: UInt64?
    private var lastOf: [Int: UInt64] = [:]
    /// When each missing chunk was last asked for, and how many times.
    private var asked: [SeqKey: (at: Int64, tries: Int)] = [:]
    /// Where the next repair scan starts: every chunk before it is held (or out of reach).
    private var scanFrom: UInt64 = 0
    /// How far behind the newest a missing chunk is still worth a repair, in chunks.
    var horizon: UInt64
    /// When `repairsDue` next has something to ask for (or may: it is never later than that): a chunk that went
    /// missing is asked for `firstAskAfter` after, an asked one when its retry is due. Nil without a gap.
    private(set) var repairWakeup: Int64?
    /// A chunk missing behind its substream's newest is often on its way still (a move's backlog, another
    /// parent's lag): the first ask waits this long. The 100 ms pace asked at the next tick, 50 ms on average; a
    /// full 100 ms gave 5 % more delay at 1,000 simulated peers (6 seeds), 50 ms the pace's.
    static let firstAskAfter: Int64 = 50_000

    init(capacity: Int, horizon: UInt64 = .max) {
        self.capacity = capacity
        self.horizon = horizon
    }

    subscript(seq: UInt64) -> Chunk? { chunks[SeqKey(seq)] }

    /// Whether this peer asked a parent to repair that seq (its answer is taken from any parent).
    func wasAsked(_ seq: UInt64) -> Bool { asked[SeqKey(seq)] != nil }

    /// The newest seq held of a substream.
    func last(of substream: Int) -> UInt64? { lastOf[substream] }

    /// How many seqs the newest chunk held is past the newest of `substream` (past the first chunk, for a substream
    /// never had): how long this peer has had the others and not this one. 0 before any chunk.
    func behind(in substream: Int) -> UInt64 {
        guard let newest, let first else { return 0 }
        return newest - max(first, lastOf[substream] ?? first)
    }

    /// Too far ahead to be taken unsigned: more than a window past the newest.
    func isFarAhead(_ seq: UInt64) -> Bool { newest.map { seq > $0 &+ UInt64(capacity) } ?? false }

    /// Keeps a chunk; the oldest go past `capacity`. True when the window's low end moved.
    @discardableResult
    mutating func insert(_ chunk: Chunk, substream: Int, substreams k: Int = 1, now: Int64 = 0) -> Bool {
        chunks[SeqKey(chunk.seq)] = chunk
        asked.removeValue(forKey: SeqKey(chunk.seq))
        let before = newest
        newest = max(newest ?? chunk.seq, chunk.seq)
        // The seqs this chunk put behind their substream's newest: one missing is a gap to ask for soon.
        if let before, let high = newest, high > before, high >= UInt64(k) {
            let from = max(before >= UInt64(k) ? before - UInt64(k) + 1 : 0, high - UInt64(k) >= 64 ? high - UInt64(k) - 63 : 0,
                           first ?? 0, low)
            if from <= high - UInt64(k), (from...(high - UInt64(k))).contains(where: { chunks[SeqKey($0)] == nil && asked[SeqKey($0)] == nil }) {
                repairWakeup = min(repairWakeup ?? .max, now + Self.firstAskAfter)
            }
        }
        first = min(first ?? chunk.seq, chunk.seq)
        lastOf[substream] = max(lastOf[substream] ?? chunk.seq, chunk.seq)
        defer { advanceScan() }
        guard chunks.count > capacity, let high = newest else { return false }
        let newLow = high >= UInt64(capacity) ? high - UInt64(capacity) + 1 : 0
        if newLow - low < UInt64(chunks.count) {
            for seq in low..<newLow { chunks.removeValue(forKey: SeqKey(seq)) }
        } else {
            chunks = chunks.filter { $0.key.seq >= newLow }
        }
        low = newLow
        if !asked.isEmpty { asked = asked.filter { $0.key.seq >= low } }
        return true
    }

    /// Moves the scan's start past what is held, from the first chunk worth a repair.
    private mutating func advanceScan() {
        let reach = newest.map { $0 > horizon ? $0 - horizon : 0 } ?? 0
        scanFrom = max(scanFrom, low, first ?? 0, reach)
        while chunks[SeqKey(scanFrom)] != nil { scanFrom += 1 }
    }

    /// A new run: nothing held is of use.
    mutating func reset() { self = ChunkWindow(capacity: capacity, horizon: horizon) }

    /// Where a (re)subscription to these substreams should start: just after what is held of them, a substream never
    /// had just after the first chunk of the run (0 for a newcomer). A parent sends no more than its horizon back, and
    /// the origin reads how long the asker has gone without (`behind(in:)`).
    func resumeSeq(for substreams: Set<Int>) -> UInt64 {
        guard let newest, let first else { return 0 }
        return substreams.map { max(first, lastOf[$0] ?? first) }.min().map { $0 + 1 } ?? newest + 1
    }

    /// What a new child is sent first, in seq order: from `fromSeq`, or for a newcomer (0) from the newest
    /// random-access chunk; never more than `horizon` chunks back.
    func backlog(from fromSeq: UInt64, in substream: (UInt64) -> Bool) -> [Chunk] {
        let newestRandomAccess = chunks.values.filter(\.isRandomAccess).map(\.seq).max() ?? .max
        let floor = (newest ?? 0) > horizon ? newest! - horizon : 0
        let start = fromSeq > 0 ? max(fromSeq, floor) : newestRandomAccess
        return chunks.keys.filter { $0.seq >= start && substream($0.seq) }.sorted().map { chunks[$0]! }
    }

    /// A chunk missing behind the newest of its substream (`k` substreams): the repair scan has work.
    func hasGap(substreams k: Int) -> Bool {
        // Everything from the first chunk up to `scanFrom` is held, and `scanFrom` itself is not.
        guard let high = newest else { return false }
        return scanFrom + UInt64(k) <= high
    }

    /// Missing chunks to ask for now (at most `limit`), with how often each was asked before: those behind the
    /// newest of their substream, within `horizon` chunks of the newest, not asked within `retryAfter`.
    mutating func repairsDue(now: Int64, substreams k: Int, retryAfter: Int64, limit: Int = 8) -> [(seq: UInt64, tries: Int)] {
        repairWakeup = nil
        guard let high = newest, high > UInt64(k) else { return [] }
        var due: [(seq: UInt64, tries: Int)] = []
        // The soonest a gap seen on this scan comes due again; one past the limit is asked at the next first-ask.
        var soonest: Int64 = .max
        var seq = max(low, first ?? 0, high > horizon ? high - horizon : 0, scanFrom)
        // Everything before the first gap is held: the next scan starts there.
        var complete = true
        while seq + UInt64(k) <= high, due.count < limit {
            if chunks[SeqKey(seq)] != nil {
                if complete { scanFrom = seq + 1 }
            } else {
                complete = false
                if asked[SeqKey(seq)].map({ now - $0.at > retryAfter }) ?? true {
                    let tries = (asked[SeqKey(seq)]?.tries ?? 0) + 1
                    asked[SeqKey(seq)] = (now, tries)
                    due.append((seq, tries))
                    soonest = min(soonest, now + retryAfter + 1)
                } else if let at = asked[SeqKey(seq)]?.at {
                    soonest = min(soonest, at + retryAfter + 1)
                }
            }
            seq += 1
        }
        if seq + UInt64(k) <= high { soonest = min(soonest, now + Self.firstAskAfter) } // the limit cut the scan short
        repairWakeup = soonest == .max ? nil : soonest
        return due
    }
}
