/// A peer's parents, one per substream, the ones it asked and waits on, and how well each feeds it. A part of
/// `MeshPeer`.
struct ParentSet {
    let count: Int
    private(set) var parents: [Int: PeerID] = [:] {
        didSet {
            for s in bySubstream.indices { bySubstream[s] = nil }
            for (s, p) in parents where has(s) { bySubstream[s] = p }
        }
    }
    /// `parents` in an array by substream: read after every event, where a dictionary lookup each was most of this
    /// part's cost.
    private var bySubstream: [PeerID?]
    /// Substreams asked of a peer, not answered yet, since when.
    private(set) var pending: [Int: (peer: PeerID, since: Int64)] = [:]
    /// Substreams to ask a peer for once a link to it comes up.
    private(set) var awaitingLink: [PeerID: Set<Int>] = [:]
    // What follows is kept per substream, in arrays of `count` (read after every event: hashing substreams into
    // dictionaries was most of the time spent here).
    /// When each substream last brought a new chunk from its parent. A substream whose parent forwards nothing
    /// (a peer gone mute, or a loop cut off from the source) is re-parented; repairs do not count.
    private var lastFed: [Int64?]
    /// Substreams whose parent has delivered a chunk since it took them on.
    private var fedByParent: [Bool]
    /// Per substream, the newest seq its parent delivered, and whether each of its recent slots came: the last
    /// `count` (at most `fedLogLength`) slots, newest in the low bit, 1 for one that came.
    private var lastFromParent: [UInt64?]
    private var fedLog: [(bits: UInt16, count: Int)]
    /// A parent is lossy when more than `fedLogMisses` of the last `fedLogLength` slots of a substream never came
    /// (two in ten: an honest parent that re-parents sends its backlog in order, so it misses none).
    static let fedLogLength = 10
    static let fedLogMisses = 1
    /// Per substream, how late its parent's newest chunks come: arrival minus ingest, smoothed (the offset between
    /// this peer's clock and the origin's is the same in every substream, so only differences count), and how many
    /// were weighed since the parent took it on.
    private var lag: [(value: Double, count: Int)?]
    static let lagSamples = 4

    init(count: Int) {
        self.count = count
        bySubstream = Array(repeating: nil, count: count)
        lastFed = Array(repeating: nil, count: count)
        fedByParent = Array(repeating: false, count: count)
        lastFromParent = Array(repeating: nil, count: count)
        fedLog = Array(repeating: (0, 0), count: count)
        lag = Array(repeating: nil, count: count)
    }

    /// A substream of this plan (the per-substream arrays are read only with one).
    private func has(_ s: Int) -> Bool { s >= 0 && s < count }

    /// Its parent's slots and lateness start again.
    private mutating func resetTally(_ s: Int) {
        lastFromParent[s] = nil
        lag[s] = nil
        fedLog[s] = (0, 0)
    }

    var isComplete: Bool { parents.count == count }
    var isEmpty: Bool { parents.isEmpty }
    subscript(substream: Int) -> PeerID? { has(substream) ? bySubstream[substream] : nil }
    func isParent(_ peer: PeerID) -> Bool { bySubstream.contains(peer) }
    /// The substreams a peer feeds here.
    func substreams(from peer: PeerID) -> [Int] {
        bySubstream.indices.filter { bySubstream[$0] == peer }
    }
    /// Each parent once, by id.
    var distinct: [PeerID] { Set(parents.values).sorted() }
    /// Every peer named here (`MeshPeer.referencedPeers`).
    func collectPeers(into all: inout Set<PeerID>) {
        all.formUnion(parents.values)
        for p in pending.values { all.insert(p.peer) }
        all.formUnion(awaitingLink.keys)
    }

    /// Substreams with neither a parent nor an ask out.
    var needed: [Int] { (0..<count).filter { bySubstream[$0] == nil && pending[$0] == nil } }
    /// `needed` as bits (substream s is bit s; k is at most 64), made without an array: read after every event.
    /// (A substream can be parented and pending at once, during a move: the counts say nothing.)
    var neededMask: UInt64 {
        var mask: UInt64 = 0
        for s in 0..<min(count, 64) where bySubstream[s] == nil && pending[s] == nil { mask |= 1 << UInt64(s) }
        return mask
    }
    /// Peers this peer waits on or is fed by.
    var involved: Set<PeerID> { Set(parents.values).union(pending.values.map(\.peer)).union(awaitingLink.keys) }
    /// The peers `involved` names, some perhaps more than once, without hashing them into a set.
    var involvedPeers: [PeerID] { Array(parents.values) + pending.values.map(\.peer) + awaitingLink.keys }
    func involves(_ peer: PeerID) -> Bool {
        awaitingLink[peer] != nil || bySubstream.contains(peer) || pending.values.contains { $0.peer == peer }
    }

    /// Substreams asked of `peer`; true when a link to it must be opened first.
    mutating func ask(_ peer: PeerID, for substreams: [Int], now: Int64, linked: Bool) -> Bool {
        for s in substreams { pending[s] = (peer, now) }
        guard !linked else { return false }
        let dial = awaitingLink[peer] == nil
        awaitingLink[peer, default: []].formUnion(substreams)
        return dial
    }

    /// A link to `peer` is up: what to ask it for (again, if a new link replaced one a subscribe may be lost on).
    mutating func linkUp(_ peer: PeerID) -> Set<Int> {
        (awaitingLink.removeValue(forKey: peer) ?? []).union(pending.filter { $0.value.peer == peer }.keys)
    }

    /// `peer` said yes to `substream`: it is the parent now. Returns the parent it replaces, if another.
    mutating func accept(_ substream: Int, from peer: PeerID, now: Int64) -> (taken: Bool, old: PeerID?) {
        guard pending[substream]?.peer == peer else { return (false, nil) }
        pending.removeValue(forKey: substream)
        let old = parents[substream]
        parents[substream] = peer
        guard has(substream) else { return (true, old == peer ? nil : old) }
        lastFed[substream] = now
        fedByParent[substream] = false
        // Its slots count from the first chunk it sends: that is its newest (live chunks go before a backlog), and the
        // older ones it sends after are the backlog, not slots of its own.
        resetTally(substream)
        return (true, old == peer ? nil : old)
    }

    /// `peer` said no (or the ask is withdrawn).
    mutating func withdraw(_ substream: Int, from peer: PeerID) {
        guard pending[substream]?.peer == peer else { return }
        pending.removeValue(forKey: substream)
        awaitingLink[peer]?.remove(substream)
        if awaitingLink[peer]?.isEmpty == true { awaitingLink.removeValue(forKey: peer) }
    }

    /// These substreams have no parent any more.
    mutating func orphan(_ substreams: [Int]) {
        for s in substreams {
            parents.removeValue(forKey: s)
            guard has(s) else { continue }
            lastFed[s] = nil
            fedByParent[s] = false
            resetTally(s)
        }
    }

    /// The link to `peer` is gone: nothing is asked of it. Returns the substreams it fed.
    mutating func drop(_ peer: PeerID) -> [Int] {
        awaitingLink.removeValue(forKey: peer)
        for (s, p) in pending where p.peer == peer { pending.removeValue(forKey: s) }
        return substreams(from: peer)
    }

    mutating func rename(_ old: PeerID, to new: PeerID) {
        for (s, p) in pending where p.peer == old { pending[s] = (new, p.since) }
        for (s, p) in parents where p == old { parents[s] = new }
        if let waiting = awaitingLink.removeValue(forKey: old) { awaitingLink[new, default: []].formUnion(waiting) }
    }

    /// Its parent brought a new chunk of `substream`.
    mutating func fed(_ substream: Int, now: Int64) {
        guard has(substream) else { return }
        lastFed[substream] = now
        fedByParent[substream] = true
    }

    /// Substreams whose parent has sent nothing new for `timeout`.
    func starved(now: Int64, timeout: Int64) -> [Int] {
        bySubstream.indices.filter { bySubstream[$0] != nil && now - (lastFed[$0] ?? now) > timeout }
    }

    /// Some substream brought a chunk within `timeout`: the stream flows.
    func flowing(now: Int64, timeout: Int64) -> Bool { lastFed.contains { $0.map { now - $0 <= timeout } ?? false } }

    /// None of these substreams brought a chunk from its parent since it took them on.
    func neverFed(_ substreams: [Int]) -> Bool { !substreams.contains { has($0) && fedByParent[$0] } }

    /// When the next substream starves, if none brings a chunk.
    func nextStarvation(timeout: Int64) -> Int64? {
        var first: Int64?
        for (s, p) in bySubstream.enumerated() where p != nil {
            if let fed = lastFed[s], fed < first ?? .max { first = fed }
        }
        return first.map { $0 + timeout + 1 }
    }

    /// These asks are past their deadline: given up, in substream order.
    mutating func expired(_ overdue: [(substream: Int, peer: PeerID)]) -> [(substream: Int, peer: PeerID)] {
        let late = overdue.sorted { $0.substream < $1.substream }
        for (s, peer) in late { withdraw(s, from: peer) }
        return late
    }

    /// A new run: slots of the old one are void, and asks of peers not on the new one (`onNewRun`). Parents stay
    /// until their news shows the run.
    mutating func newRun(now: Int64, onNewRun: (PeerID) -> Bool) {
        for s in 0..<count { resetTally(s) }
        pending = pending.filter { onNewRun($0.value.peer) }
        for s in bySubstream.indices where bySubstream[s] != nil { lastFed[s] = now }
    }

    /// The newest chunk of a substream came from its parent `delay` after it was cut (on this peer's clock against
    /// the origin's).
    mutating func noteLag(_ substream: Int, _ delay: Int64) {
        guard has(substream) else { return }
        let d = Double(delay)
        let old = lag[substream] ?? (d, 0)
        lag[substream] = (old.value + (d - old.value) / 4, old.count + 1)
    }

    /// A substream whose parent's chunks come more than `margin` later than another parent's do (each weighed a
    /// few times since it took its substream): the latest such.
    func late(margin: Int64) -> Int? {
        // The latest, the lowest substream among equals.
        var weighed = 0
        var best = Double.infinity
        var worst: (s: Int, value: Double)?
        for (s, l) in lag.enumerated() {
            guard let l, l.count >= Self.lagSamples, bySubstream[s] != nil else { continue }
            weighed += 1
            best = min(best, l.value)
            if l.value > worst?.value ?? -.infinity { worst = (s, l.value) }
        }
        guard weighed >= 2, let worst, worst.value - best > Double(margin) else { return nil }
        return worst.s
    }

    /// Counts a chunk its parent sent in a substream, and the substream's slots it skipped since the last one.
    /// True when too many of the recent slots never came from the parent.
    mutating func tally(_ seq: UInt64, substream s: Int) -> Bool {
        let k = UInt64(count)
        guard has(s) else { return false }
        defer { lastFromParent[s] = max(lastFromParent[s] ?? seq, seq) }
        guard let last = lastFromParent[s] else { return false }
        guard seq > last else { return false } // a repair or a resend: not a slot of its own
        // The slots skipped since the last one that came never came; then this one did.
        let slots = max(1, Int(min((seq - last) / k, UInt64(Self.fedLogLength))))
        var log = fedLog[s]
        log.bits = UInt16(truncatingIfNeeded: (UInt32(log.bits) << slots) | 1) & (1 << Self.fedLogLength - 1)
        log.count = min(Self.fedLogLength, log.count + slots)
        fedLog[s] = log
        return log.count - log.bits.nonzeroBitCount > Self.fedLogMisses
    }
}

/// Peers that failed this one (did not connect, stopped forwarding, lost chunks, broke the link's rules): not
/// parents until a time, twice as long each time they do it again. A part of `MeshPeer`.
struct Penalties {
    private var until: [PeerID: Int64] = [:]
    private var offenses: [PeerID: Int] = [:]
    /// Avoided peers taken back as a last resort: once an avoidance.
    private var reprieved: Set<PeerID> = []

    func isAvoided(_ peer: PeerID, now: Int64) -> Bool { until[peer].map { $0 > now } ?? false }

    /// How many times it was punished (while remembered).
    func offenses(_ peer: PeerID) -> Int { offenses[peer] ?? 0 }

    /// Avoided for an offence (not merely unreachable) and not yet taken back during this avoidance.
    func mayReprieve(_ peer: PeerID, now: Int64) -> Bool {
        isAvoided(peer, now: now) && offenses[peer] != nil && !reprieved.contains(peer)
    }

    /// Taken back as a last resort: not again until its avoidance has ended (an offence meanwhile lengthens it).
    mutating func reprieve(_ peer: PeerID) { reprieved.insert(peer) }

    /// Not a parent for a while, without counting as an offence (a failed connect).
    mutating func avoid(_ peer: PeerID, until time: Int64) { until[peer] = time }

    /// An offence: avoided 30 s, doubling each time, up to 8 minutes.
    mutating func punish(_ peer: PeerID, now: Int64) {
        let count = offenses[peer, default: 0]
        offenses[peer] = count + 1
        until[peer] = now + 30_000_000 << min(count, 4)
    }

    /// Lifts the avoidance (a bootstrap that answers again). True if it was avoided.
    mutating func forgive(_ peer: PeerID) -> Bool { until.removeValue(forKey: peer) != nil }

    mutating func clear() {
        until.removeAll()
        offenses.removeAll()
        reprieved.removeAll()
    }

    /// Ended avoidances go; offences are remembered while a peer is avoided or still heard of, so memory stays
    /// bounded under churn.
    mutating func prune(now: Int64, heardOf: (PeerID) -> Bool) {
        if !until.isEmpty { until = until.filter { $0.value > now } }
        if !reprieved.isEmpty { reprieved = reprieved.filter { until[$0] != nil } }
        if offenses.count > until.count { offenses = offenses.filter { until[$0.key] != nil || heardOf($0.key) } }
    }

    /// Penalties follow a peer that renames itself.
    mutating func rename(_ old: PeerID, to new: PeerID) {
        if let time = until.removeValue(forKey: old) { until[new] = max(time, until[new] ?? time) }
        if let count = offenses.removeValue(forKey: old) { offenses[new, default: 0] += count }
        if reprieved.remove(old) != nil { reprieved.insert(new) }
    }

    var avoided: [PeerID] { until.keys.sorted() }

    func collectPeers(into all: inout Set<PeerID>) {
        all.formUnion(until.keys)
        all.formUnion(offenses.keys)
        all.formUnion(reprieved)
    }
}
