/// When a peer's news goes out, and to whom (design §7: on change, not on a clock). A part of `MeshPeer`: it keeps
/// what was last told to children (the whole ancestry: stale ancestry is how loops form) and to the other links
/// (brief: each substream's parent, for peers weighing this one as a candidate), and when. The peer says when
/// something may have changed its record, hands over the record when asked, and sends what is decided.
struct Announcer {
    /// News goes out at most this often; a change inside the spacing goes out at the next wake-up.
    static let downstreamSpacing: Int64 = 20_000
    /// News that is not ancestry (room, a delay) goes out at most this often; urgent news (`isUrgent`) at most
    /// every `urgentSpacing` (a child that flips this peer's room by subscribing and leaving cannot make it announce
    /// to every link fifty times a second).
    static let changeSpacing: Int64 = 500_000
    static let urgentSpacing: Int64 = 100_000
    /// Peers that are not children weigh this one as a candidate: a drift of its delays or room (beyond the
    /// hysteresis) reaches them at most this often; room coming or going, a substream gained or lost, at once.
    static let briefSpacing: Int64 = 2_000_000

    /// Delays that differ by no more than this (or 2 %) are the same news.
    let hysteresis: Int64
    /// What this peer last told its links of itself, and its children: news goes out again only when it changed.
    private(set) var announced: PeerInfo?
    private(set) var toChildren: PeerInfo?
    private var lastDownstream: Int64 = .min / 2
    /// News held back by `downstreamSpacing`, waiting for the next wake-up.
    private(set) var isDue = false
    /// When news last went to the peers that are not children, and whether news held back from them waits.
    private var lastBrief: Int64 = .min / 2
    private var briefDue = false
    /// Something happened since the news was last weighed that may have changed it (a chunk or a wake-up seldom
    /// does): only then is this peer's record computed again.
    var mayHaveChanged = true

    init(hysteresis: Int64) { self.hysteresis = hysteresis }

    /// Whether a wake-up sends what waits: news held back by the spacing, or a drift held back from non-children.
    func mustSend(now: Int64) -> Bool { isDue || (briefDue && now - lastBrief >= Self.briefSpacing) }

    /// Whether news that may have changed can be weighed now (`urgent`: it is urgent news, read only when needed).
    func mayAnnounceChange(now: Int64, urgent: @autoclosure () -> Bool) -> Bool {
        mayHaveChanged && !isDue && now - lastDownstream >= (urgent() ? Self.urgentSpacing : Self.changeSpacing)
    }

    /// Whether the record now (room or not, its run, which substreams it has) is urgent news against the one last
    /// told: room that came or went, a substream gained or lost, a new run. After a mass kill an origin's freed room
    /// went out with its next housekeeping, up to a second later, while every orphan asked peers as orphaned as itself.
    func urgent(hasRoom: Bool, epoch: UInt64, substreams: Int, has: (Int) -> Bool) -> Bool {
        guard mayHaveChanged, let last = announced else { return false }
        return hasRoom != (last.residualUnits > 0) || epoch != last.epoch || last.delays.count != substreams
            || (0..<substreams).contains { has($0) != (last.delays[$0] != nil) }
    }

    /// When a wake-up is wanted for news held back, if one is.
    var wakeup: Int64? {
        var at: Int64?
        func take(_ t: Int64) { at = min(at ?? t, t) }
        if isDue { take(lastDownstream + Self.downstreamSpacing) }
        if briefDue { take(max(lastBrief + Self.briefSpacing, lastDownstream + Self.downstreamSpacing)) }
        return at
    }

    /// When urgent news (`urgent`) may go out: the peer asks whether it has some only when that is sooner than its
    /// other wake-ups (weighing it after every event was a tenth of a core's time in the checker).
    var urgentWakeup: Int64 { lastDownstream + Self.urgentSpacing }

    /// Whether `downstreamSpacing` holds news back now (it is then due at the next wake-up): ask before computing
    /// the record for `decide`.
    mutating func holdsBack(now: Int64) -> Bool {
        guard now - lastDownstream >= Self.downstreamSpacing else {
            isDue = true
            return true
        }
        return false
    }

    /// What of the record `me` goes out now: to the children (when it changed for them, ancestry included), to
    /// every other link (when it changed beyond the hysteresis: urgent news at once, a drift at most every
    /// `briefSpacing`). Nil when it goes nowhere.
    mutating func decide(_ me: PeerInfo, now: Int64) -> (toChildren: Bool, toAll: Bool)? {
        isDue = false
        mayHaveChanged = false
        let toKids = toChildren.map { !sameNews(me, $0) || me.ancestors != $0.ancestors } ?? true
        var toAll = announced.map { !sameNews(me, $0) } ?? true
        briefDue = false
        if toAll, let last = announced, !Self.isUrgent(me, after: last), now - lastBrief < Self.briefSpacing {
            toAll = false
            briefDue = true
        }
        guard toAll || toKids else { return nil }
        lastDownstream = now
        if toKids { toChildren = me }
        if toAll {
            announced = me
            lastBrief = now
        }
        return (toKids, toAll)
    }

    /// News a peer choosing parents must have at once: room where there was none (or none left), a substream this
    /// peer now has or lost, a new run.
    static func isUrgent(_ now: PeerInfo, after before: PeerInfo) -> Bool {
        (now.residualUnits > 0) != (before.residualUnits > 0) || now.epoch != before.epoch || now.delays.count != before.delays.count
            || zip(now.delays, before.delays).contains { ($0 == nil) != ($1 == nil) }
    }

    /// Whether two records of this peer say the same to a peer choosing parents: same parents and room, delays
    /// within the hysteresis (or 2 %).
    func sameNews(_ a: PeerInfo, _ b: PeerInfo) -> Bool {
        guard a.residualUnits == b.residualUnits, a.epoch == b.epoch, a.delays.count == b.delays.count,
              a.ancestors.count == b.ancestors.count,
              zip(a.ancestors, b.ancestors).allSatisfy({ $0.first == $1.first }) else { return false }
        let close = { (x: Int64, y: Int64) in abs(x - y) <= max(self.hysteresis, min(x, y) / 50) }
        return close(a.scheduleDelay, b.scheduleDelay) && zip(a.delays, b.delays).allSatisfy { x, y in
            switch (x, y) {
            case (nil, nil): true
            case let (x?, y?): close(x, y)
            default: false
            }
        }
    }

    /// Every peer named here (`MeshPeer.referencedPeers`).
    func collectPeers(into all: inout Set<PeerID>) {
        for record in [announced, toChildren] { if let record { record.collectPeers(into: &all) } }
    }
}
