/// A peer's name in the mesh: the address it listens on, `HOST:PORT`.
public typealias PeerID = String

/// What a peer knows of a candidate parent (design §3).
public struct CandidateParent: Equatable, Sendable {
    public var id: PeerID
    /// D(p): the candidate's own delay from the source, µs. 0 for the origin.
    public var delayFromSource: Int64
    /// link(p→me): measured one-way delay (RTT/2), µs.
    public var linkDelay: Int64
    /// sched(p): the time p needs to push one chunk of one substream at its uplink, µs.
    public var scheduleDelay: Int64
    /// Units p can still serve.
    public var residualUnits: Int
    /// Peers upstream of p. A peer never takes a parent that has it upstream.
    public var ancestors: Set<PeerID>

    public init(id: PeerID, delayFromSource: Int64, linkDelay: Int64, scheduleDelay: Int64, residualUnits: Int,
                ancestors: Set<PeerID> = []) {
        self.id = id
        self.delayFromSource = delayFromSource
        self.linkDelay = linkDelay
        self.scheduleDelay = scheduleDelay
        self.residualUnits = residualUnits
        self.ancestors = ancestors
    }

    /// My delay from the source through this parent: `D(p) + link(p→me) + sched(p)`.
    public var delayVia: Int64 { delayFromSource + linkDelay + scheduleDelay }

    /// `power(p) = min(residual(p), n) / (D(p) + link(p→me) + sched(p))` for a peer that still needs `n` units.
    public func power(needing n: Int) -> Double {
        Double(min(residualUnits, n)) / Double(max(1, delayVia))
    }
}

/// Parent choice by power, as Fast-Mesh makes it. Pure functions: the peer core calls them with what it knows.
public enum ParentSelector {
    /// Assigns each substream in `needed` a parent, greedily by power: the most powerful candidate takes as
    /// many substreams as it has residual units, then power is recomputed for what is left.
    /// Candidates that are `me`, have `me` upstream, or have no residual units are never taken.
    /// Substreams left out of the result found no parent.
    public static func select(needed: [Int], from candidates: [CandidateParent], me: PeerID) -> [Int: PeerID] {
        var pool = candidates.filter { $0.id != me && !$0.ancestors.contains(me) && $0.residualUnits > 0 }
        var left = needed.sorted()
        var plan: [Int: PeerID] = [:]
        while !left.isEmpty, !pool.isEmpty {
            let n = left.count
            let best = pool.indices.max { a, b in
                let (pa, pb) = (pool[a].power(needing: n), pool[b].power(needing: n))
                return pa != pb ? pa < pb : pool[a].id > pool[b].id // ties: the smaller id wins, for determinism
            }!
            let take = min(pool[best].residualUnits, n)
            for substream in left.prefix(take) { plan[substream] = pool[best].id }
            left.removeFirst(take)
            pool.remove(at: best)
        }
        return plan
    }

    /// A peer's delay from the source: the longest over its parents, since it needs every substream.
    public static func delay(parents: [Int: CandidateParent]) -> Int64 {
        parents.values.map(\.delayVia).max() ?? 0
    }

    /// One move of continuous improvement: the substream behind the peer's delay moves to the candidate that
    /// lowers that delay most, if it lowers it by more than `margin`. Nil at a local minimum.
    public static func improvement(parents: [Int: CandidateParent], candidates: [CandidateParent], me: PeerID,
                                   margin: Int64) -> (substream: Int, to: PeerID)? {
        guard let (worst, worstParent) = parents.max(by: { a, b in
            a.value.delayVia != b.value.delayVia ? a.value.delayVia < b.value.delayVia : a.key > b.key
        }) else { return nil }
        let others = parents.filter { $0.key != worst }.values.map(\.delayVia).max() ?? 0
        let current = worstParent.delayVia
        let options = candidates.filter {
            $0.id != me && $0.id != worstParent.id && !$0.ancestors.contains(me) && $0.residualUnits > 0
                && max(others, $0.delayVia) < current - margin
        }
        guard let best = options.min(by: { a, b in a.delayVia != b.delayVia ? a.delayVia < b.delayVia : a.id < b.id }) else {
            return nil
        }
        return (worst, best.id)
    }
}

/// The substream plan: the stream split `seq mod k` (design §1). A substream is the unit of upload capacity.
public struct SubstreamPlan: Equatable, Sendable {
    public let count: Int

    public init(count: Int = 4) {
        precondition(count > 0)
        self.count = count
    }

    public func substream(of seq: UInt64) -> Int { Int(seq % UInt64(count)) }

    public var all: [Int] { Array(0..<count) }

    /// Units a node with `uplink` can serve for a stream of `rate`: `floor(U / (rate / k))`.
    public func units(uplink: BitRate, streamRate: BitRate) -> Int {
        Int((uplink.bitsPerSecond / (streamRate.bitsPerSecond / Double(count))).rounded(.down))
    }

    /// sched: the time to push one chunk of one substream at `uplink`, for chunks of `chunkBytes`, µs.
    public static func scheduleDelay(chunkBytes: Int, uplink: BitRate) -> Int64 {
        Int64((Double(chunkBytes * 8) / uplink.bitsPerSecond * 1e6).rounded())
    }
}
