/// The parent search's memory and pace (design §3). It says when: when a search that found no one may run again,
/// since when searches have come back empty (then a full peer is asked, then an avoided one), when improvement rounds
/// come (backing off while they find nothing), when to probe, to ask a linked peer for candidates, to dial the
/// bootstrap again, to move off a late parent; and why the parent change the next accept makes happens. `MeshPeer`
/// says whom.
struct ParentSearch {
    /// Why the next accepted ask changes a parent.
    var cause = ParentChange.select
    /// The improvement round's base period; a round that finds no move doubles the wait, up to `maxBackoff` of it.
    let basePeriod: Int64
    private(set) var improvementPeriod: Int64
    private(set) var nextImprovement: Int64 = 0
    private(set) var nextProbe: Int64 = 0
    /// The last search that found no one: what was heard by then (`Membership.version`), what it searched for
    /// (substream s is bit s), when.
    private var lastInVain: (version: Int, needed: UInt64, at: Int64)?
    /// Since when every search came back empty.
    private var inVainSince: Int64?
    private(set) var nextPeerAsk: Int64 = 0
    private var peerAsks = 0
    private(set) var nextBootstrapTry: Int64 = 0
    private var nextLateMove: Int64 = 0

    static let maxBackoff: Int64 = 6
    /// A search that found no one runs again after this long if something new was heard, after a second if not.
    static let spacing: Int64 = 100_000
    /// Past a playout deadline's worth a full ask comes too late to matter: after a mass kill (4 of 12 relays,
    /// the origin's children among them) a relay cut off from a substream asked the full origin 2 s in, and its
    /// subtree missed the chunks in between. Half a second leaves room for news of room to arrive first.
    static let fullAskAfter: Int64 = 500_000
    static let peerAskSpacing: Int64 = 300_000
    static let probePeriod: Int64 = 1_000_000
    static let bootstrapRetry: Int64 = 2_000_000
    /// A substream moves off a late parent at most this often (its lag is weighed afresh at the new one).
    static let lateMoveSpacing: Int64 = 2_000_000

    init(improvementPeriod: Int64) {
        basePeriod = improvementPeriod
        self.improvementPeriod = improvementPeriod
    }

    // MARK: searches for substreams without a parent

    /// Whether a search for `needed` (bits: `ParentSet.neededMask`) waits: the last found no one for the same substreams, under a
    /// tick ago, or under a second ago with nothing new heard since (`version` counts news).
    func rests(needed: UInt64, version: Int, now: Int64) -> Bool { now < nextSearch(needed: needed, version: version) ?? .min }

    /// When a search for `needed` may run: at once for substreams not searched for in vain (a search that asks
    /// someone makes what it asked for pending, so searches at once end), else a tick after the last if something
    /// new was heard, a second after it if not. Nil with nothing needed.
    func nextSearch(needed: UInt64, version: Int) -> Int64? {
        guard needed != 0 else { return nil }
        guard let last = lastInVain, last.needed == needed else { return .min / 2 }
        return last.at + (last.version == version ? 1_000_000 : Self.spacing)
    }

    /// A search weighed the peers with room: found some or not. Returns whether searches have found no one for
    /// `fullAskAfter`, so full peers, then avoided ones, are asked for what is left.
    mutating func weighed(foundAny: Bool, now: Int64) -> Bool {
        if foundAny { inVainSince = nil } else { inVainSince = inVainSince ?? now }
        return now - (inVainSince ?? now) >= Self.fullAskAfter
    }

    /// A search is over: it asked someone, or found no one at all (then it rests, `rests`).
    mutating func searched(askedAny: Bool, needed: UInt64, version: Int, now: Int64) {
        lastInVain = askedAny ? nil : (version, needed, now)
        cause = .select
    }

    /// The last search found no one: a peer short of parents explores.
    var lastFoundNoOne: Bool { lastInVain != nil }

    /// The substreams changed (the origin's k): what was searched for means nothing now.
    mutating func forgetSearches() { lastInVain = nil }

    // MARK: improvement rounds

    func improvementDue(now: Int64) -> Bool { now >= nextImprovement }

    /// The next round at `at` (a jittered period from now).
    mutating func nextRound(at: Int64) { nextImprovement = at }

    /// A round found no move: the next waits twice as long, up to `maxBackoff` periods.
    mutating func backOff() { improvementPeriod = min(2 * improvementPeriod, Self.maxBackoff * basePeriod) }

    /// A move was found, or a probe made because a peer looked like one came back: the base pace again, the
    /// next round no later than `soonest`.
    mutating func resumePace(soonest: Int64? = nil) {
        improvementPeriod = basePeriod
        if let soonest { nextImprovement = min(nextImprovement, soonest) }
    }

    /// How many periods rounds now wait (1 while they find moves): a settled peer's gossip backs off with them.
    var backoffPeriods: Int64 { improvementPeriod / basePeriod }

    // MARK: probes, asks for candidates, the bootstrap, late parents

    func probeDue(now: Int64) -> Bool { now >= nextProbe }

    /// A probe round ran: short of parents, the next in a second; fed, in an improvement period.
    mutating func probed(now: Int64, fed: Bool) { nextProbe = now + (fed ? basePeriod : Self.probePeriod) }

    /// Nil when no linked peer is to be asked for candidates now; else whether it is the bootstrap's turn (every
    /// other ask).
    mutating func peerAsk(now: Int64) -> Bool? {
        guard now >= nextPeerAsk else { return nil }
        nextPeerAsk = now + Self.peerAskSpacing
        defer { peerAsks += 1 }
        return peerAsks % 2 == 0
    }

    /// A link came up while short of parents: its answer is awaited before another peer is asked.
    mutating func deferPeerAsk(now: Int64) { nextPeerAsk = now + Self.peerAskSpacing }

    /// Whether the bootstrap is dialled again now (at most every `bootstrapRetry`).
    mutating func bootstrapRetry(now: Int64) -> Bool {
        guard now >= nextBootstrapTry else { return false }
        nextBootstrapTry = now + Self.bootstrapRetry
        return true
    }

    func lateMoveDue(now: Int64) -> Bool { now >= nextLateMove }
    mutating func movedLate(now: Int64) { nextLateMove = now + Self.lateMoveSpacing }

    /// When the search wants to be woken: the next improvement round once fed, the next probe round if one may
    /// do something (a candidate to probe, or a peer to explore).
    func wakeup(fed: Bool, mayProbe: Bool) -> Int64? {
        switch (fed, mayProbe) {
        case (true, true): min(nextImprovement, nextProbe)
        case (true, false): nextImprovement
        case (false, true): nextProbe
        case (false, false): nil
        }
    }
}
