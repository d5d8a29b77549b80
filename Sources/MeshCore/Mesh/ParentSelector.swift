/// What a peer knows of a candidate parent (design §3). The mesh is `k` trees, one per substream, so delay
/// and ancestry are per substream.
public struct CandidateParent: Equatable, Sendable {
    public var id: PeerID
    /// D_s(p) by substream: the candidate's delay from the source in each substream it receives, µs (nil where it
    /// does not). The origin has 0 in all.
    public var delays: [Int64?]
    /// link(p→me): measured one-way delay (RTT/2), µs.
    public var linkDelay: Int64
    /// sched(p): the time p needs to push one chunk of one substream at its uplink, µs.
    public var scheduleDelay: Int64
    /// Units p can still serve.
    public var residualUnits: Int
    /// Peers upstream of p in each substream's tree. A peer never takes a parent that has it upstream.
    public var ancestors: [[PeerID]]

    public init(id: PeerID, delays: [Int64?], linkDelay: Int64, scheduleDelay: Int64, residualUnits: Int, ancestors: [[PeerID]] = []) {
        self.id = id
        self.delays = delays
        self.linkDelay = linkDelay
        self.scheduleDelay = scheduleDelay
        self.residualUnits = residualUnits
        self.ancestors = ancestors
    }

    /// The same from maps of the substreams it receives (k is one past the highest given).
    public init(id: PeerID, delays: [Int: Int64], linkDelay: Int64, scheduleDelay: Int64, residualUnits: Int,
                ancestors: [Int: [PeerID]] = [:]) {
        let k = (delays.keys.max() ?? -1) + 1
        self.init(id: id, delays: (0..<k).map { delays[$0] }, linkDelay: linkDelay, scheduleDelay: scheduleDelay,
                  residualUnits: residualUnits, ancestors: (0..<max(k, (ancestors.keys.max() ?? -1) + 1)).map { ancestors[$0] ?? [] })
    }

    /// D_s(p), nil where p does not receive that substream.
    public func delay(in substream: Int) -> Int64? { substream < delays.count ? delays[substream] : nil }

    /// Whether `me` may take this candidate as parent of `substream`: it receives it, and not through `me`.
    public func canFeed(_ substream: Int, to me: PeerID) -> Bool {
        id != me && delay(in: substream) != nil && !(substream < ancestors.count && ancestors[substream].contains(me))
    }

    /// My delay in `substream` through this parent: `D_s(p) + link(p→me) + sched(p)`. The terms come from peers:
    /// the sum saturates instead of trapping.
    public func delayVia(_ substream: Int) -> Int64 {
        (delay(in: substream) ?? .max / 4).saturatingAdd(linkDelay).saturatingAdd(scheduleDelay)
    }

    /// `power(p) = min(residual(p), n) / delay` for a peer that still needs the substreams `needed`:
    /// n counts those p can feed, and the delay is the longest through p among them.
    public func power(needing needed: [Int], me: PeerID) -> Double {
        guard residualUnits > 0 else { return 0 }
        var feedable = 0
        var delay: Int64 = 0
        for s in needed where canFeed(s, to: me) {
            feedable += 1
            delay = max(delay, delayVia(s))
        }
        guard feedable > 0 else { return 0 }
        return Double(min(residualUnits, feedable)) / Double(max(1, delay))
    }
}

/// Parent choice by power, as Fast-Mesh makes it. Pure functions: the peer core calls them with what it knows.
public enum ParentSelector {
    /// Assigns each substream in `needed` a parent, greedily by power: the most powerful candidate takes as many
    /// substreams as it has residual units (those it can feed, fastest first), then power is recomputed for
    /// what is left. Substreams left out of the result found no parent.
    public static func select(needed: [Int], from candidates: [CandidateParent], me: PeerID) -> [Int: PeerID] {
        var pool = candidates.filter { $0.id != me && $0.residualUnits > 0 }
        var left = needed.sorted()
        var plan: [Int: PeerID] = [:]
        while !left.isEmpty {
            let scored = pool.indices.map { ($0, pool[$0].power(needing: left, me: me)) }.filter { $0.1 > 0 }
            guard let (best, _) = scored.max(by: { a, b in
                a.1 != b.1 ? a.1 < b.1 : pool[a.0].id > pool[b.0].id // ties: the smaller id wins, for determinism
            }) else { break }
            let chosen = pool[best]
            let take = left.filter { chosen.canFeed($0, to: me) }
                .sorted { (chosen.delayVia($0), $0) < (chosen.delayVia($1), $1) }
                .prefix(chosen.residualUnits)
            for substream in take { plan[substream] = chosen.id }
            left.removeAll { take.contains($0) }
            pool.remove(at: best)
        }
        return plan
    }

    /// A peer's delay from the source: the longest over its substreams, since it needs every one.
    public static func delay(parents: [Int: CandidateParent]) -> Int64 {
        parents.map { $0.value.delayVia($0.key) }.max() ?? 0
    }

    /// What a move must gain on a delay: `margin`, or `relativeMargin` of the delay if that is more.
    public static func gainNeeded(on delay: Int64, margin: Int64, relativeMargin: Double) -> Int64 {
        max(margin, Int64(Double(delay) * relativeMargin))
    }

    /// One move of continuous improvement: the substream with the longest delay moves to the candidate that
    /// lowers that substream's delay most, if by more than `margin` and by more than `relativeMargin` of it: small
    /// gains are not worth a move, which shifts the delays of everything below. Moves repeat until the peer's
    /// delay, the longest over its substreams, sits at a local minimum. Nil when no move helps.
    public static func improvement(parents: [Int: CandidateParent], candidates: [CandidateParent], me: PeerID,
                                   margin: Int64, relativeMargin: Double = 0) -> (substream: Int, to: PeerID)? {
        guard let (worst, worstParent) = parents.max(by: { a, b in
            let (da, db) = (a.value.delayVia(a.key), b.value.delayVia(b.key))
            return da != db ? da < db : a.key > b.key
        }) else { return nil }
        let current = worstParent.delayVia(worst)
        let needed = gainNeeded(on: current, margin: margin, relativeMargin: relativeMargin)
        let options = candidates.filter {
            $0.id != worstParent.id && $0.residualUnits > 0 && $0.canFeed(worst, to: me)
                && current - $0.delayVia(worst) > needed
        }
        guard let best = options.min(by: { a, b in
            (a.delayVia(worst), a.id) < (b.delayVia(worst), b.id)
        }) else { return nil }
        return (worst, best.id)
    }
}

/// The substream plan: the stream split `seq mod k` (design §1). A substream is the unit of upload capacity.
public struct SubstreamPlan: Equatable, Sendable {
    public let count: Int
    /// k when the origin is not told otherwise.
    public static let defaultCount = 4

    public init(count: Int = defaultCount) {
        precondition(count > 0)
        self.count = count
    }

    public func substream(of seq: UInt64) -> Int { Int(seq % UInt64(count)) }

    public var all: [Int] { Array(0..<count) }

    /// Units a node with `uplink` can serve for a stream of `rate`: `floor(U / (rate / k))`, 0 to `maxUnits`
    /// whatever the rates (a welcome's rate is a stranger's word).
    public func units(uplink: BitRate, streamRate: BitRate) -> Int {
        Self.wholeUnits(uplink.bitsPerSecond / (streamRate.bitsPerSecond / Double(count)))
    }
    public static let maxUnits = 1 << 20

    /// A count of units rounded down to a whole one, 0 to `maxUnits`: never trapping, whatever it was made of.
    public static func wholeUnits(_ units: Double) -> Int {
        units.isNaN ? 0 : Int(min(max(units.rounded(.down), 0), Double(maxUnits)))
    }

    /// sched for a stream of `streamRate` cut in chunks of `chunkDuration` µs: one chunk's bits over the uplink;
    /// 0 to `WireLimits.maxDelay`.
    public static func scheduleDelay(streamRate: BitRate, chunkDuration: Int64, uplink: BitRate) -> Int64 {
        let delay = (streamRate.bitsPerSecond * Double(chunkDuration) / max(1, uplink.bitsPerSecond)).rounded()
        guard delay.isFinite else { return WireLimits.maxDelay }
        return Int64(min(max(delay, 0), Double(WireLimits.maxDelay)))
    }
}
