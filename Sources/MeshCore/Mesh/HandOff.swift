/// Make-before-break, both ways (design §3). This peer leaving or retiring: its children are told to move, and a
/// retiring one says `.handedOff` once the last has gone. This peer's parents leaving or retiring: their substreams
/// are asked of others while they still feed them, a few times a second, a full peer asked after a second.
struct HandOff {
    /// Leaving the mesh: it offers nothing from now on.
    private(set) var leaving = false
    /// Its upload is spent: a leaf from now on.
    private(set) var retired = false
    /// Retired with children not yet gone.
    private var handingOff = false
    /// Parents that are leaving or retiring.
    private(set) var movingFrom: Set<PeerID> = []
    private var nextTry: Int64 = 0
    /// Since when some parent has been moved from.
    private var since: Int64?

    static let spacing: Int64 = 250_000
    static let fullAskAfter: Int64 = 1_000_000

    var isMoving: Bool { !movingFrom.isEmpty }
    func isMovingFrom(_ peer: PeerID) -> Bool { movingFrom.contains(peer) }
    /// When the next round of moving is due.
    var wakeup: Int64? { movingFrom.isEmpty ? nil : nextTry }

    mutating func leave() { leaving = true }

    /// Retires; false if it had already.
    mutating func retire() -> Bool {
        guard !retired else { return false }
        retired = true
        handingOff = true
        return true
    }

    /// Whether a retiring peer's hand-off is done now, its last child gone: true once.
    mutating func isDone(childless: Bool) -> Bool {
        guard handingOff, childless else { return false }
        handingOff = false
        return true
    }

    /// A parent says it is leaving: its substreams move, from now on.
    mutating func parentLeaving(_ peer: PeerID, now: Int64) {
        movingFrom.insert(peer)
        since = since ?? now
        nextTry = now
    }

    /// A round of moving, if one is due: the parents moved from that are parents no more are forgotten first.
    /// Nil when none is due; else whether a full peer may be asked (the hand-off has gone on for a second).
    mutating func round(now: Int64, isParent: (PeerID) -> Bool) -> Bool? {
        movingFrom = movingFrom.filter(isParent)
        if movingFrom.isEmpty { since = nil }
        guard !movingFrom.isEmpty, now >= nextTry else { return nil }
        nextTry = now + Self.spacing
        return now - (since ?? now) >= Self.fullAskAfter
    }

    mutating func rename(_ old: PeerID, to new: PeerID) {
        if movingFrom.remove(old) != nil { movingFrom.insert(new) }
    }
}
