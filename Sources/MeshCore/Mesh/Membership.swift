/// Who a peer knows (design §7): its links (the active view, in the order they came up) and a bounded partial
/// view of news, first hand from linked peers and hearsay from their answers, refreshed by gossip. Link delays
/// measured, probes under way, answers owed, and the room handed out in samples. A part of `MeshPeer`.
struct Membership {
    /// What is known of one peer. Never changed in place, only replaced: copies of the core (the view is a value)
    /// share the records, and a record is read where it is kept, never copied out with its arrays.
    final class News: Sendable {
        let info: PeerInfo
        let linkDelay: Int64?

        init(info: PeerInfo, linkDelay: Int64?) {
            self.info = info
            self.linkDelay = linkDelay
        }

        func with(linkDelay: Int64?) -> News { News(info: info, linkDelay: linkDelay) }
        func with(_ change: (inout PeerInfo) -> Void) -> News {
            var info = info
            change(&info)
            return News(info: info, linkDelay: linkDelay)
        }
    }

    /// Most peers whose hearsay is kept; past it, the stalest quarter makes way. Linked peers' own news is kept
    /// besides (links are bounded by `MeshPeerConfig.maxLinks`).
    static let maxHearsay = 64
    /// Peers named in a `peers` answer.
    static let sampleSize = 8
    /// Hearsay of a peer not linked to us is forgotten after this long without a refresh.
    static let forgetAfter: Int64 = 15_000_000
    static let rememberMeasurement: Int64 = 60_000_000
    /// Peers that said no are not asked again on hearsay for this long.
    static let refusalMemory: Int64 = 3_000_000
    /// A full peer is asked for a weaker child's unit at most this often.
    static let fullAskSpacing: Int64 = 10_000_000
    /// Room handed out in a sample is taken to be used this long.
    static let handOutMemory: Int64 = 2_000_000
    static let maxProbeQueue = 16
    /// Hearsay young enough to be passed on in a sample.
    static let freshHearsay: Int64 = 5_000_000
    static let maxProbes = 4
    static let maxUnaskedPeers = 8

    private(set) var news: [PeerID: News] = [:]
    /// When each peer's news last came (apart from the news: looking at ages copies no record).
    private var heardAt: [PeerID: Int64] = [:]
    /// Linked peers in the order their links came up: an order that needs no sorting.
    private(set) var linked: [PeerID] = []
    private var connected: Set<PeerID> = []
    /// Link delays measured, kept a while after the link closes: a probe's result outlives the probe.
    private var measured: [PeerID: (delay: Int64, at: Int64)] = [:]
    /// What an unmeasured candidate's link is taken to be: the median of those measured. Not a made-up small
    /// number, or every peer would flock to the same unmeasured candidates.
    private(set) var typicalLinkDelay: Int64
    private let assumedLinkDelay: Int64
    /// Peers heard of lately with room and no measured delay, newest last (at most `maxProbeQueue`).
    private var toProbe: [PeerID] = []
    /// Links opened to measure a candidate (or to ask it for its neighbours), and when.
    private(set) var probing: Set<PeerID> = []
    /// Probes opened to ask a peer for its neighbours rather than to measure it.
    private(set) var exploring: Set<PeerID> = []
    private var probeStarted: [PeerID: Int64] = [:]
    /// Linked peers' room handed out in samples lately: to which askers, when (each asker may take k units).
    private var handedOut: [PeerID: [PeerID: Int64]] = [:]
    private var refusedAt: [PeerID: (at: Int64, substreams: Set<Int>)] = [:]
    /// Full peers asked for a weaker child's unit, and when.
    private var askedFull: [PeerID: Int64] = [:]
    /// Answers each peer owes us (asked for, not yet come): an answer nobody asked for is dropped, and a peer that
    /// keeps sending them loses its link.
    private var peersAsked: [PeerID: Int] = [:]
    private var unaskedPeers: [PeerID: Int] = [:]
    /// Bumped when news of a peer could make it a better candidate than before.
    private(set) var version = 0
    private var nextForget: Int64 = 0

    init(assumedLinkDelay: Int64) {
        self.assumedLinkDelay = assumedLinkDelay
        typicalLinkDelay = assumedLinkDelay
    }

    subscript(id: PeerID) -> News? { news[id] }

    func knows(_ peer: PeerID) -> Bool { news.index(forKey: peer) != nil }
    var count: Int { news.count }
    /// News of peers not linked: all news but the linked peers' (a walk over the links, not the view).
    var hearsayCount: Int { news.count - linked.reduce(0) { knows($1) ? $0 + 1 : $0 } }

    // MARK: links

    func isLinked(_ peer: PeerID) -> Bool { connected.contains(peer) }

    mutating func link(_ peer: PeerID) {
        if connected.insert(peer).inserted { linked.append(peer) }
    }

    /// The link is closed, its news kept as hearsay (a probe's): within the view's bound.
    mutating func unlink(_ peer: PeerID) {
        guard connected.remove(peer) != nil else { return }
        linked.removeAll { $0 == peer }
        if news.count > Self.maxHearsay, hearsayCount > Self.maxHearsay { trim(to: Self.maxHearsay, before: .max) }
    }

    /// The link and its news are gone (it is not chosen again at once); what it owed us is void.
    mutating func forget(_ peer: PeerID) {
        drop(peer)
        unlink(peer)
        peersAsked.removeValue(forKey: peer)
        unaskedPeers.removeValue(forKey: peer)
        // Room held for an asker that left is free again.
        if !handedOut.isEmpty { handedOut = handedOut.mapValues { $0.filter { $0.key != peer } }.filter { !$0.value.isEmpty } }
    }

    /// The peer dialled as `old` calls itself `new`. Its news comes again under the new name.
    mutating func rename(_ old: PeerID, to new: PeerID) {
        if let count = unaskedPeers.removeValue(forKey: old) { unaskedPeers[new, default: 0] += count }
        unlink(old)
        link(new)
        drop(old)
        if let d = measured.removeValue(forKey: old) { measured[new] = d }
        if let owed = peersAsked.removeValue(forKey: old) { peersAsked[new] = owed }
        probing.remove(old)
    }

    // MARK: news

    /// What a linked peer says of itself. True when it differs from what was known.
    @discardableResult
    mutating func heard(_ info: PeerInfo, now: Int64) -> Bool {
        let old = news[info.id]
        let changed = old?.info != info
        if changed { version += 1 }
        let linkDelay = old?.linkDelay ?? measured[info.id]?.delay
        // The same news again (most announces: a peer's news goes to every link when any of them needs it) keeps
        // its record.
        if changed || old?.linkDelay != linkDelay { news[info.id] = News(info: info, linkDelay: linkDelay) }
        heardAt[info.id] = now
        if !handedOut.isEmpty { handedOut.removeValue(forKey: info.id) }
        if info.residualUnits > 0, !refusedAt.isEmpty { refusedAt.removeValue(forKey: info.id) }
        return changed
    }

    /// A linked peer's answer: news of its neighbours. What a linked peer says of itself beats hearsay; past the
    /// view's bound the stalest hearsay makes way.
    /// Only the first `sampleSize + 1` records of an answer are taken (an honest one has no more): one answer cannot
    /// fill the view with peers a liar made up.
    mutating func heard(hearsay list: [PeerInfo], me: PeerID, now: Int64) {
        for info in list.prefix(Self.sampleSize + 1) where info.id != me && !connected.contains(info.id) {
            let old = news[info.id]
            if old == nil, !makeRoom(now: now) { continue }
            if old?.info != info { version += 1 }
            let delay = old?.linkDelay ?? measured[info.id]?.delay
            news[info.id] = News(info: info, linkDelay: delay)
            heardAt[info.id] = now
            if info.residualUnits > 0, delay == nil, !toProbe.contains(info.id) {
                toProbe.append(info.id)
                if toProbe.count > Self.maxProbeQueue { toProbe.removeFirst() }
            }
        }
    }

    /// Room for one more hearsay record: when the view is full, its stalest quarter (heard before now) goes.
    private mutating func makeRoom(now: Int64) -> Bool {
        // Hearsay is at most all news: counting it (a walk) is needed only when the news could be past the bound.
        guard news.count >= Self.maxHearsay, hearsayCount >= Self.maxHearsay else { return true }
        return trim(to: Self.maxHearsay - Self.maxHearsay / 4, before: now)
    }

    /// The stalest hearsay heard before `before` goes until `count` are left; true if some went.
    @discardableResult
    private mutating func trim(to count: Int, before: Int64) -> Bool {
        let hearsay = heardAt.filter { !connected.contains($0.key) && $0.value < before }.map { ($0.key, $0.value) }
        let excess = hearsayCount - count
        guard excess > 0 else { return false }
        let stale = hearsay.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(excess)
        for (id, _) in stale { drop(id) }
        return !stale.isEmpty
    }

    private mutating func drop(_ peer: PeerID) {
        news.removeValue(forKey: peer)
        heardAt.removeValue(forKey: peer)
    }

    mutating func measured(_ peer: PeerID, delay: Int64, now: Int64) {
        news[peer] = news[peer]?.with(linkDelay: delay)
        measured[peer] = (delay, now)
        version += 1
    }

    /// Its room as this peer now takes it to be (it said no, or was asked for `units`).
    mutating func setRoom(of peer: PeerID, _ units: Int) {
        if let old = news[peer], old.info.residualUnits != units { news[peer] = old.with { $0.residualUnits = units } }
    }

    mutating func setEpoch(of peer: PeerID, _ epoch: UInt64) {
        if let old = news[peer], old.info.epoch != epoch { news[peer] = old.with { $0.epoch = epoch } }
    }

    /// News changed that may make a candidate better (a bootstrap back, say).
    mutating func touch() { version += 1 }

    /// A peer said no to these substreams: not asked for them again for `refusalMemory`, or until it tells of room
    /// again. Its other substreams may still be asked for (a peer refuses one whose fan-out is full, and has room).
    mutating func refused(by peer: PeerID, substreams: [Int], now: Int64) {
        let earlier = refusedAt[peer].flatMap { now - $0.at < Self.refusalMemory ? $0.substreams : nil } ?? []
        refusedAt[peer] = (now, earlier.union(substreams))
    }

    /// The substreams a peer refused lately.
    func refusedLately(_ peer: PeerID, now: Int64) -> Set<Int> {
        refusedAt[peer].flatMap { now - $0.at < Self.refusalMemory ? $0.substreams : nil } ?? []
    }
    mutating func askedFull(_ peer: PeerID, now: Int64) { askedFull[peer] = now }
    func mayAskFull(_ peer: PeerID, now: Int64) -> Bool { askedFull[peer].map { now - $0 >= Self.fullAskSpacing } ?? true }

    // MARK: answers owed

    /// One more answer owed by `peer` (a few at most: an ask unanswered for long is not waited for forever).
    mutating func owe(_ peer: PeerID) { peersAsked[peer] = min(8, peersAsked[peer, default: 0] + 1) }

    enum Answer { case owed, unasked, tooManyUnasked }

    /// A `peers` list came from `peer`: owed, or not (and past `maxUnaskedPeers` of those, it is cut off).
    mutating func answer(from peer: PeerID) -> Answer {
        guard let owed = peersAsked[peer] else {
            unaskedPeers[peer, default: 0] += 1
            return unaskedPeers[peer]! > Self.maxUnaskedPeers ? .tooManyUnasked : .unasked
        }
        peersAsked[peer] = owed > 1 ? owed - 1 : nil
        // An answer more than the asks we counted (they are capped) is not held against an honest peer for long.
        unaskedPeers.removeValue(forKey: peer)
        return .owed
    }

    // MARK: samples

    /// Up to `sampleSize` linked peers that receive the stream, for a peer looking for parents: those with room
    /// first. Only first-hand news (linked peers), so the dead drop out of everyone's lists. Drawn at random.
    mutating func sample(for asker: PeerID, substreams k: Int, now: Int64, rng: inout SplitMixRandom) -> [PeerInfo] {
        var picked: [PeerInfo] = []
        var seen: Set<PeerID> = [asker]
        let draws = linked.count <= 32 ? linked.shuffled(using: &rng)
            : (0..<64).map { _ in linked[Int(rng.next() % UInt64(linked.count))] }
        for id in draws where seen.insert(id).inserted {
            guard var info = news[id]?.info, info.delays.contains(where: { $0 != nil }) else { continue }
            // The room handed out lately is taken to be used: the next asker is sent elsewhere, instead of a crowd
            // of joiners all asking the same peers. It is given back after `handOutMemory` (news of a peer whose
            // room did not change does not come again).
            var others = 0
            for (to, at) in handedOut[id] ?? [:] where to != asker && now - at < Self.handOutMemory { others += 1 }
            info.residualUnits = max(0, info.residualUnits - others * k)
            picked.append(info)
        }
        var withRoom = picked.filter { $0.residualUnits > 0 }
        // Too few linked peers with room (a busy origin's links are its full children): fresh hearsay with room
        // fills the sample, news heard within `freshHearsay` (the dead drop out of it as fast).
        if withRoom.count < Self.sampleSize {
            var fresh: [PeerID] = []
            for (id, at) in heardAt where now - at < Self.freshHearsay && !connected.contains(id) && !seen.contains(id) { fresh.append(id) }
            fresh.sort()
            for id in fresh.shuffled(using: &rng) where withRoom.count < Self.sampleSize {
                if let info = news[id]?.info, info.residualUnits > 0, info.delays.contains(where: { $0 != nil }) { withRoom.append(info) }
            }
        }
        let sample = Array((withRoom + picked.filter { $0.residualUnits == 0 }).prefix(Self.sampleSize))
        // Only for an asker short of parents: gossip between fed peers reserves nothing.
        let searching = news[asker].map { $0.info.delays.contains(nil) } ?? true
        for info in sample where searching && info.residualUnits > 0 { handedOut[info.id, default: [:]][asker] = now }
        return sample
    }

    // MARK: probes

    /// Peers worth a probe: heard of lately with room, link delay not measured, not linked.
    mutating func probeCandidates(excluding busy: (PeerID) -> Bool) -> [PeerID] {
        toProbe = toProbe.filter { news[$0].map { $0.linkDelay == nil } == true && !connected.contains($0) && !busy($0) }
        return toProbe.filter { news[$0]?.info.residualUnits ?? 0 > 0 }
    }

    var hasProbeCandidates: Bool { !toProbe.isEmpty }

    /// Probes whose link closed or never came up within 5 s are over; true when another may start.
    mutating func mayProbe(now: Int64) -> Bool {
        probing = probing.filter { connected.contains($0) || now - (probeStarted[$0] ?? 0) < 5_000_000 }
        if !exploring.isEmpty { exploring.formIntersection(probing) }
        if probeStarted.count > probing.count { probeStarted = probeStarted.filter { probing.contains($0.key) } }
        return probing.count < Self.maxProbes
    }

    mutating func startProbe(_ peer: PeerID, now: Int64, explore: Bool = false) {
        toProbe.removeAll { $0 == peer }
        probing.insert(peer)
        if explore { exploring.insert(peer) }
        probeStarted[peer] = now
    }

    /// A probe's link is closed by this peer: its news stays, what it owed goes.
    mutating func closeProbe(_ peer: PeerID) {
        unlink(peer)
        peersAsked.removeValue(forKey: peer)
        unaskedPeers.removeValue(forKey: peer)
    }

    /// A probe has done its job once the delay is measured; the news of the peer is kept.
    mutating func probeDone(_ peer: PeerID) -> Bool {
        guard probing.contains(peer), news[peer]?.linkDelay != nil else { return false }
        probing.remove(peer)
        exploring.remove(peer)
        probeStarted.removeValue(forKey: peer)
        return true
    }

    /// Every peer named anywhere here (`MeshPeer.referencedPeers`).
    func collectPeers(into all: inout Set<PeerID>) {
        for (id, k) in news {
            all.insert(id)
            k.info.collectPeers(into: &all)
        }
        all.formUnion(heardAt.keys)
        all.formUnion(connected)
        all.formUnion(measured.keys)
        all.formUnion(toProbe)
        all.formUnion(probing)
        all.formUnion(probeStarted.keys)
        for (id, askers) in handedOut {
            all.insert(id)
            all.formUnion(askers.keys)
        }
        all.formUnion(refusedAt.keys)
        all.formUnion(askedFull.keys)
        all.formUnion(peersAsked.keys)
        all.formUnion(unaskedPeers.keys)
    }

    // MARK: housekeeping

    /// Forgets stale hearsay and old measurements (every few seconds), and ended timers.
    mutating func prune(now: Int64) {
        if now >= nextForget {
            // Removed in place, since copying news is not free.
            nextForget = now + 5_000_000
            for (id, at) in heardAt where !connected.contains(id) && now - at >= Self.forgetAfter { drop(id) }
            measured = measured.filter { now - $0.value.at < Self.rememberMeasurement }
            let delays = measured.values.map(\.delay).sorted()
            typicalLinkDelay = delays.isEmpty ? assumedLinkDelay : delays[delays.count / 2]
        }
        if !refusedAt.isEmpty { refusedAt = refusedAt.filter { now - $0.value.at < Self.refusalMemory } }
        if !askedFull.isEmpty { askedFull = askedFull.filter { now - $0.value < Self.fullAskSpacing } }
        if !handedOut.isEmpty {
            handedOut = handedOut.mapValues { $0.filter { now - $0.value < Self.handOutMemory } }.filter { !$0.value.isEmpty }
        }
    }
}
