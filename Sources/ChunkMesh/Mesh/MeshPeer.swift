/// How a mesh peer behaves. Times in µs.
public struct MeshPeerConfig: Sendable {
    public var me: PeerID
    /// The origin is the root of every substream's tree and never takes parents.
    public var isOrigin: Bool
    /// Where a joiner first asks for candidates (the origin, or any peer).
    public var bootstrap: PeerID?
    public var plan = SubstreamPlan()
    /// Substream units this peer can serve in all (its uplink over one unit's rate).
    public var capacityUnits: Int
    /// sched: time to push one chunk of one substream at this peer's uplink.
    public var scheduleDelay: Int64
    /// Until chunks tell their own duration.
    public var chunkDuration: Int64 = 200_000
    /// Continuous improvement: how often a peer looks for a better parent (jittered ±25 %).
    public var improvementPeriod: Int64 = 5_000_000
    /// A move must lower the peer's delay by more than this, and by more than `relativeHysteresis` of it.
    public var hysteresis: Int64 = 2_000
    public var relativeHysteresis = 0.05
    /// A parent that sends nothing for this long is dropped (it may be alive but not forwarding).
    public var parentTimeout: Int64
    /// Gossip: how often a peer asks one linked peer for a sample of the peers it knows (jittered ±25 %).
    /// A peer's own news goes out when it changes, not on a clock.
    public var gossipPeriod: Int64 = 2_000_000
    /// Links a peer keeps (design §7): past this, a link with no role answers its ask for peers and closes.
    public var maxLinks = 32
    /// Chunks kept for children joining, switching or repairing.
    public var windowChunks = 256
    /// How far behind the newest chunk, in stream time, a missing one is still pulled from a parent.
    public var repairHorizon: Int64 = 6_400_000
    /// Link delay assumed for a candidate not yet measured, until some link is (then: the median measured).
    public var assumedLinkDelay: Int64 = 1_000
    public var seed: UInt64
    /// The origin's run (stamped on its chunks); joiners learn it from the mesh.
    public var epoch: UInt64 = 0
    /// The origin, as the driver found it proven by the origin's key (`MeshEvent.originIs`), or set up front.
    public var originID: PeerID?
    /// Checks each chunk a peer sends against the origin's key before it is stored, forwarded or delivered.
    /// Nil checks nothing (the simulator, where every chunk is the origin's).
    public var verifier: OriginPublicKey?

    public init(me: PeerID, isOrigin: Bool, bootstrap: PeerID?, capacityUnits: Int, scheduleDelay: Int64, seed: UInt64,
                plan: SubstreamPlan = SubstreamPlan(), chunkDuration: Int64 = 200_000) {
        self.me = me
        self.isOrigin = isOrigin
        self.bootstrap = bootstrap
        self.capacityUnits = capacityUnits
        self.scheduleDelay = scheduleDelay
        self.seed = seed
        self.plan = plan
        self.chunkDuration = chunkDuration
        self.parentTimeout = max(2_000_000, 3 * Int64(plan.count) * chunkDuration)
    }
}

/// What happens to a peer.
public enum MeshEvent: Equatable, Sendable {
    case start
    /// A link to this peer is up (we connected, or it announced itself on a link it opened).
    case connected(PeerID)
    case connectFailed(PeerID)
    case disconnected(PeerID)
    case message(from: PeerID, MeshMessage)
    /// A chunk from a peer, or from the local source when `from` is nil (the origin).
    case chunk(from: PeerID?, Chunk)
    /// Measured one-way delay to a linked peer (RTT/2).
    case linkDelay(PeerID, Int64)
    case tick
    /// The link to a peer broke its rules (a bad tag, a malformed frame): it is dropped and avoided.
    case misbehaved(PeerID)
    /// Leave on purpose: children are told first.
    case leave
    /// The upload capacity changed (the stream's rate became known, say).
    case setCapacity(Int)
    /// This linked peer proved it holds the origin's key.
    case originIs(PeerID)
    /// The origin's public key became known (a joiner given none takes its bootstrap's).
    case originKey(OriginPublicKey)
    /// The peer dialled at one address calls itself by another (a port forward, a NAT): one peer, one link.
    case renamed(from: PeerID, to: PeerID)
}

/// What a peer asks its driver to do.
public enum MeshAction: Equatable, Sendable {
    case connect(PeerID)
    case disconnect(PeerID)
    case send(PeerID, MeshMessage)
    case sendChunk(PeerID, Chunk)
    /// A chunk seen for the first time: to the local player, if any.
    case deliver(Chunk)
    /// The parent of each substream changed (for reports and logs).
    case parentsChanged([Int: PeerID])
}

/// The Fast-Mesh peer (design §3) as a pure state machine: events and `now` in, actions out.
/// It never reads a clock, never touches a socket, and takes its randomness from the seed.
public struct MeshPeer {
    private struct Known {
        var info: PeerInfo
        var linkDelay: Int64?
        var heardAt: Int64
    }

    /// News of a peer not linked to us is forgotten after this long without a refresh.
    static let forgetAfter: Int64 = 15_000_000

    public private(set) var config: MeshPeerConfig
    private var rng: SplitMixRandom
    private var known: [PeerID: Known] = [:]
    private var connected: Set<PeerID> = []
    /// Linked peers in the order their links came up: an order that needs no sorting (the origin has thousands).
    private var linked: [PeerID] = []
    public private(set) var parents: [Int: PeerID] = [:]
    private var pending: [Int: (peer: PeerID, since: Int64)] = [:]
    /// Substreams to ask for once a link comes up.
    private var awaitingLink: [PeerID: Set<Int>] = [:]
    public private(set) var children: [PeerID: Set<Int>] = [:]
    /// When each substream last brought a new chunk from its parent. A substream whose parent forwards nothing
    /// (a peer gone mute, or a loop cut off from the source) is re-parented; repairs do not count.
    private var lastFed: [Int: Int64] = [:]
    private var window: [UInt64: Chunk] = [:]
    private var windowLow: UInt64 = 0
    private var lastSeqOf: [Int: UInt64] = [:]
    /// When each missing chunk was last asked for, and how many times.
    private var repairTried: [UInt64: (at: Int64, tries: Int)] = [:]
    /// Where the next repair scan starts: every chunk before it is held (or out of reach).
    private var repairFrom: UInt64 = 0
    public private(set) var highestSeq: UInt64?
    /// The first chunk of this run received: nothing older is worth a repair (playback starts after it).
    private var firstSeq: UInt64?
    private var nextImprovement: Int64 = 0
    private var improvementPeriod: Int64
    static let maxImprovementBackoff: Int64 = 6
    private var nextGossip: Int64 = 0
    /// What this peer last told its links of itself: its news goes out again only when it differs.
    private var announced: PeerInfo?
    /// What this peer last told its children (its whole ancestry).
    private var toChildren: PeerInfo?
    private var nextBootstrapTry: Int64 = 0
    /// Forgetting old news and closing idle links: once a second is plenty.
    private var nextHousekeeping: Int64 = 0
    /// Link delays measured, kept a while after the link closes: a probe's result outlives the probe.
    private var measured: [PeerID: (delay: Int64, at: Int64)] = [:]
    /// What an unmeasured candidate's link is taken to be: the median of those measured. Not a made-up small
    /// number, or every peer would flock to the same unmeasured candidates.
    private var typicalLinkDelay: Int64
    private var nextProbe: Int64 = 0
    /// Links opened to measure a candidate, and when.
    private var probing: Set<PeerID> = []
    private var probeStarted: [PeerID: Int64] = [:]
    /// Peers heard of lately with room and no measured delay, newest last (at most `maxProbeQueue`).
    private var toProbe: [PeerID] = []
    static let maxProbeQueue = 16
    /// Linked peers' room handed out in samples lately: to which askers, when (each asker may take k units).
    private var handedOut: [PeerID: [PeerID: Int64]] = [:]
    static let handOutMemory: Int64 = 2_000_000
    /// Full peers asked for a weaker child's unit, and when.
    private var askedFull: [PeerID: Int64] = [:]
    static let fullAskSpacing: Int64 = 10_000_000
    /// Peers that said no, and when: not asked again on hearsay for `refusalMemory`.
    private var refusedAt: [PeerID: Int64] = [:]
    /// Bumped when news of a peer could make it a better candidate than before.
    private var newsVersion = 0
    private var fruitlessSearch: (version: Int, needed: [Int], at: Int64)?
    private var nextForget: Int64 = 0
    /// The time of the event being handled.
    private var lastNow: Int64 = 0
    /// Peers not to take as parents until a time: they failed to connect, or stopped forwarding.
    private var avoid: [PeerID: Int64] = [:]
    /// How often each peer was caught failing us: each time it is avoided twice as long.
    private var offenses: [PeerID: Int] = [:]
    /// Substreams whose parent has delivered a chunk since it took them on.
    private var fedByParent: Set<Int> = []
    /// Per substream, the newest seq its parent delivered, and whether each of its recent slots came.
    private var lastFromParent: [Int: UInt64] = [:]
    private var fedLog: [Int: [Bool]] = [:]
    /// The origin run this peer plays; a newer one (a restarted origin) resets the stream state.
    public private(set) var epoch: UInt64
    /// Linked peers with no parent, child or pending role, since when.
    private var idleSince: [PeerID: Int64] = [:]
    private var lastDownstreamAnnounce: Int64 = .min / 2
    private var downstreamAnnounceDue = false
    private var nextPeerAsk: Int64 = 0
    private var peerAsks = 0
    public private(set) var parentChanges = 0
    /// Parent changes by cause (a parent lost, refused, starved...; a move found by improvement or selection).
    public private(set) var changeCauses: [String: Int] = [:]
    private var pendingCause = "select"
    public private(set) var leaving = false
    /// Answers each peer owes us (asked for, not yet come): an answer nobody asked for is dropped, and a peer that
    /// keeps sending them loses its link.
    private var peersAsked: [PeerID: Int] = [:]
    private var unaskedPeers: [PeerID: Int] = [:]
    static let maxUnaskedPeers = 8
    /// Chunks sent on each link (a resubscription's backlog skips them), and each child's repair budget: a chunk
    /// duration's worth of repairs refills one, up to `repairBurst`. No request of a child makes this peer send more
    /// than the stream again in repairs, and a repair the driver had to drop can be asked for again.
    private var sentTo: [PeerID: Set<UInt64>] = [:]
    private var repairBudget: [PeerID: TokenBucket] = [:]
    static let repairBurst = 8
    /// When each child last lost a unit to a stronger asker, and when each asker last took one: a peer that lies
    /// about its uplink can evict a given child once in `preemptProtection`, and evict once in `preemptSpacing`.
    private var preemptedAt: [PeerID: Int64] = [:]
    private var preemptedBy: [PeerID: Int64] = [:]
    static let preemptProtection: Int64 = 10_000_000
    static let preemptSpacing: Int64 = 3_000_000
    /// The partial view (design §7): most peers whose hearsay is kept; past it, fresher hearsay replaces the
    /// stalest. Linked peers' own news is kept besides, and links are bounded by `maxLinks`.
    static let maxKnown = 64
    /// Peers named in a `peers` answer.
    static let sampleSize = 8
    /// How far ahead of the newest seq a chunk is taken: a window's worth.
    var maxAhead: UInt64 { UInt64(config.windowChunks) }

    public init(config: MeshPeerConfig) {
        self.config = config
        self.rng = SplitMixRandom(seed: config.seed)
        self.epoch = config.epoch
        self.typicalLinkDelay = config.assumedLinkDelay
        self.improvementPeriod = config.improvementPeriod
    }

    // MARK: what the peer is

    public var usedUnits: Int { children.values.reduce(0) { $0 + $1.count } }
    public var residualUnits: Int { max(0, config.capacityUnits - usedUnits) }
    public var hasAllParents: Bool { config.isOrigin || parents.count == config.plan.count }

    /// D_s(me): my delay from the source in one substream, nil while it has no parent.
    public func delay(of substream: Int) -> Int64? {
        if config.isOrigin { return 0 }
        // A parent that has lost that substream itself passes on no delay, however it says it is fed otherwise.
        guard let p = parents[substream], let k = known[p], !isAvoided(p), k.info.epoch >= epoch,
              substream < k.info.delays.count, let d = k.info.delays[substream] else { return nil }
        return d.saturatingAdd(k.linkDelay ?? typicalLinkDelay).saturatingAdd(k.info.scheduleDelay)
    }

    /// D(me): the longest over my substreams, or nil without a full set of parents.
    public var delayFromSource: Int64? {
        let delays = config.plan.all.map { delay(of: $0) }
        guard delays.allSatisfy({ $0 != nil }) else { return nil }
        return delays.compactMap { $0 }.max()
    }

    /// Who is upstream of me in a substream's tree, for loop checks.
    public func ancestors(of substream: Int) -> [PeerID] {
        guard let p = parents[substream] else { return [] }
        let theirs = known[p]?.info.ancestors
        return [p] + (theirs.flatMap { substream < $0.count ? $0[substream] : nil } ?? [])
    }

    public var info: PeerInfo {
        PeerInfo(id: config.me, delays: config.plan.all.map { delay(of: $0) }, residualUnits: leaving ? 0 : residualUnits,
                 scheduleDelay: config.scheduleDelay, ancestors: config.plan.all.map { ancestors(of: $0) }, epoch: epoch)
    }

    /// What this peer hears first hand: itself and every linked peer (the origin's answer to `viewRequest`).
    public var view: [PeerInfo] {
        [info] + connected.sorted().compactMap { known[$0]?.info }
    }

    /// Peers whose news is kept (bounded: `maxKnown` and the links).
    var knownCount: Int { known.count }
    /// Hearsay kept: news of peers not linked (bounded by `maxKnown`).
    var hearsayCount: Int { known.keys.filter { !connected.contains($0) }.count }

    public var debugState: String {
        "parents \(parents) pending \(pending.mapValues(\.peer)) known \(known.values.map { "\($0.info.id):\($0.info.residualUnits)" }.sorted()) connected \(connected.sorted()) avoid \(avoid.keys.sorted())"
    }


    // MARK: events

    public mutating func handle(_ event: MeshEvent, now: Int64) -> [MeshAction] {
        lastNow = now
        var out: [MeshAction] = []
        switch event {
        case .start:
            nextImprovement = now + jittered(config.improvementPeriod)
            if let bootstrap = config.bootstrap, bootstrap != config.me { out.append(.connect(bootstrap)) }
        case .connected(let peer):
            if connected.insert(peer).inserted { linked.append(peer) }
            // A bootstrap that answers again (a restarted origin) is a candidate again at once.
            if peer == config.bootstrap, avoid.removeValue(forKey: peer) != nil { newsVersion += 1 }
            out.append(announceTo(peer, wantPeers: !config.isOrigin))
            if !hasAllParents { nextPeerAsk = now + Self.peerAskSpacing }
            // What we wait for from it, asked again if a new link replaced one a subscribe may have been lost on.
            let wanted = (awaitingLink.removeValue(forKey: peer) ?? []).union(pending.filter { $0.value.peer == peer }.keys)
            if !wanted.isEmpty {
                out.append(.send(peer, .subscribe(wanted.sorted(), fromSeq: resumeSeq(for: wanted))))
            }
        case .connectFailed(let peer):
            avoid[peer] = now + 10_000_000
            out += lose(peer, now: now)
        case .disconnected(let peer):
            out += lose(peer, now: now)
        case .misbehaved(let peer):
            punish(peer, now: now)
            out += lose(peer, now: now)
        case .linkDelay(let peer, let measuredDelay):
            let delay = min(max(1, measuredDelay), WireLimits.maxDelay)
            known[peer]?.linkDelay = delay
            measured[peer] = (delay, now)
            newsVersion += 1
        case .message(let peer, let message):
            out += receive(message, from: peer, now: now)
        case .chunk(let from, let chunk):
            out += receive(chunk, from: from, now: now)
        case .tick:
            out += tick(now: now)
        case .setCapacity(let units):
            config.capacityUnits = max(0, units)
        case .originIs(let peer):
            if connected.contains(peer) { config.originID = peer }
        case .originKey(let key):
            if config.verifier == nil { config.verifier = key }
        case .renamed(let old, let new):
            rename(old, to: new)
        case .leave:
            leaving = true
            for child in children.keys.sorted() { out.append(.send(child, .leaving)) }
            for parent in Set(parents.values).sorted() { out.append(.send(parent, .unsubscribe(parents.filter { $0.value == parent }.map(\.key).sorted()))) }
        }
        return out
    }

    private mutating func receive(_ message: MeshMessage, from peer: PeerID, now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        switch message {
        case .announce(let info, let wantPeers):
            guard info.id == peer else { return [] } // a peer speaks only for itself
            let delay = known[peer]?.linkDelay ?? measured[peer]?.delay
            let isParent = parents.values.contains(peer)
            if known[peer]?.info != info { newsVersion += 1 }
            known[peer] = Known(info: info, linkDelay: delay, heardAt: now)
            handedOut.removeValue(forKey: peer)
            if info.residualUnits > 0 { refusedAt.removeValue(forKey: peer) }
            // A newer run is believed from a chunk the origin signed, never from a peer's word.
            // A loop formed from moves made at once on stale news: leave that parent there, choose again.
            let looped = parents.filter { s, p in p == peer && s < info.ancestors.count && info.ancestors[s].contains(config.me) }
                .map(\.key).sorted()
            if !looped.isEmpty {
                out.append(.send(peer, .unsubscribe(looped)))
                out += orphan(looped, now: now, cause: "loop")
            } else if isParent {
                out += announceDownstream(now: now)
            }
            if wantPeers {
                // Only first-hand news: peers linked to us, so the dead drop out of everyone's lists.
                out.append(.send(peer, .peers((candidateSample(for: peer) + [self.info]).map(\.brief))))
                // Past its links' bound, a peer answers a stranger (a joiner, a probe) and lets it go: any peer
                // can bootstrap a joiner, and none gathers links (design §7).
                if linked.count > config.maxLinks, !roles.contains(peer), !probing.contains(peer) {
                    return out + [.disconnect(peer)] + lose(peer, now: now)
                }
            }
            out += selectParents(now: now)
        case .peers(let list):
            // Only an answer to our ask: a peer cannot flood us with hearsay.
            guard let owed = peersAsked[peer] else {
                unaskedPeers[peer, default: 0] += 1
                guard unaskedPeers[peer]! > Self.maxUnaskedPeers else { return [] }
                punish(peer, now: now)
                return [.disconnect(peer)] + lose(peer, now: now)
            }
            peersAsked[peer] = owed > 1 ? owed - 1 : nil
            // An answer more than the asks we counted (they are capped) is not held against an honest peer for long.
            unaskedPeers.removeValue(forKey: peer)
            for info in list where info.id != config.me && !connected.contains(info.id)
                && (known[info.id] != nil || makeRoomInView(now: now)) {
                // What a linked peer says of itself beats hearsay; hearsay refreshes the rest.
                if known[info.id]?.info != info { newsVersion += 1 }
                known[info.id] = Known(info: info, linkDelay: known[info.id]?.linkDelay ?? measured[info.id]?.delay, heardAt: now)
                if info.residualUnits > 0, known[info.id]!.linkDelay == nil, !toProbe.contains(info.id) {
                    toProbe.append(info.id)
                    if toProbe.count > Self.maxProbeQueue { toProbe.removeFirst() }
                }
            }
            out += selectParents(now: now)
        case .subscribe(let substreams, let fromSeq):
            out += subscribe(peer, to: substreams, fromSeq: fromSeq)
        case .unsubscribe(let substreams):
            children[peer]?.subtract(substreams)
            if children[peer]?.isEmpty == true { children.removeValue(forKey: peer) }
        case .accept(let substreams):
            var changed = false
            for s in substreams where pending[s]?.peer == peer {
                pending.removeValue(forKey: s)
                let old = parents[s]
                parents[s] = peer
                lastFed[s] = now
                fedByParent.remove(s)
                // Its slots count from what is held already; older chunks it sends are repairs.
                lastFromParent[s] = lastSeqOf[s]
                fedLog.removeValue(forKey: s)
                changed = true
                // Make-before-break: the old parent goes only once the new one has said yes.
                if let old, old != peer { out.append(.send(old, .unsubscribe([s]))) }
            }
            if changed {
                parentChanges += 1
                changeCauses[pendingCause, default: 0] += 1
                out.append(.parentsChanged(parents))
                out += announceDownstream(now: now)
            }
            // A yes that comes after we gave up asking: hand the units back, or they are lost to everyone.
            let stale = substreams.filter { parents[$0] != peer }
            if !stale.isEmpty { out.append(.send(peer, .unsubscribe(stale))) }
        case .refuse(let substreams):
            for s in substreams where pending[s]?.peer == peer { pending.removeValue(forKey: s) }
            known[peer]?.info.residualUnits = 0
            // Hearsay of its room is older than this answer: only its own next word counts.
            refusedAt[peer] = now
            // From the parent itself: it gave our unit to a stronger peer. Find another parent at once.
            let dropped = substreams.filter { parents[$0] == peer }
            if !dropped.isEmpty { out += orphan(dropped, now: now, cause: "refused") }
            out += selectParents(now: now)
        case .repair(let seq):
            // From the child's repair budget: a child that lost a chunk may ask again, not make us resend the window.
            var budget = repairBudget[peer] ?? TokenBucket(bytesPerSecond: 1e6 / Double(max(1, config.chunkDuration)),
                                                           burst: Double(Self.repairBurst))
            if let chunk = window[seq], budget.take(1, now: now) {
                out.append(.sendChunk(peer, chunk))
            }
            repairBudget[peer] = budget
        case .leaving:
            out += orphan(parents.filter { $0.value == peer }.map(\.key), now: now, cause: "leaving")
            known[peer]?.info.residualUnits = 0
        case .viewRequest, .view:
            break // between an observer and its node, never between peers
        }
        return out
    }

    private mutating func subscribe(_ child: PeerID, to substreams: [Int], fromSeq: UInt64) -> [MeshAction] {
        let valid = substreams.filter { $0 >= 0 && $0 < config.plan.count }
        guard !leaving, child != config.me, valid.count == substreams.count, !valid.isEmpty else {
            return [.send(child, .refuse(substreams))]
        }
        // Each substream on its own: never one not received or received through the child (a loop), and never
        // more than the uplink allows. What fits is taken, the rest refused: news of residual units is a second
        // old, and many joiners ask the same peers at once.
        var granted: [Int] = []
        var added = 0
        var out: [MeshAction] = []
        for s in valid where delay(of: s) != nil && !ancestors(of: s).contains(child) {
            if children[child]?.contains(s) == true {
                granted.append(s)
            } else if added + 1 + unservedSubstreams(besides: granted + [s]) <= residualUnits {
                granted.append(s)
                added += 1
            } else if let weaker = weakerChild(than: child, in: s) {
                // Full: a peer with a much stronger uplink takes the weakest child's place, so strong peers end up
                // near the source (the snowball of design §3). The weaker one is told and re-parents at once.
                children[weaker]?.remove(s)
                if children[weaker]?.isEmpty == true { children.removeValue(forKey: weaker) }
                preemptedAt[weaker] = lastNow
                preemptedBy[child] = lastNow
                out.append(.send(weaker, .refuse([s])))
                granted.append(s)
                added += 1 // the unit just freed is this one's
            }
        }
        let refused = valid.filter { !granted.contains($0) }
        guard !granted.isEmpty else { return out + [.send(child, .refuse(refused))] }
        // A new child learns this peer's whole ancestry first, for its loop checks (others hear only the parents).
        if children[child] == nil { out.append(.send(child, .announce(info, wantPeers: false))) }
        children[child, default: []].formUnion(granted)
        out.append(.send(child, .accept(granted)))
        if !refused.isEmpty { out.append(.send(child, .refuse(refused))) }
        // What the child missed: from `fromSeq`, or for a newcomer from the newest random-access chunk; never more
        // than the repair horizon back, and never what this link has carried already.
        let newest = window.values.filter(\.isRandomAccess).map(\.seq).max() ?? UInt64.max
        let horizon = UInt64(config.repairHorizon / max(1, config.chunkDuration))
        let start = fromSeq > 0 ? max(fromSeq, (highestSeq ?? 0) > horizon ? highestSeq! - horizon : 0) : newest
        for seq in window.keys.sorted() where seq >= start && granted.contains(config.plan.substream(of: seq)) {
            out += sendChunk(window[seq]!, to: child)
        }
        return out
    }

    /// A chunk to a peer, unless this link has carried it already.
    private mutating func sendChunk(_ chunk: Chunk, to peer: PeerID) -> [MeshAction] {
        guard sentTo[peer, default: []].insert(chunk.seq).inserted else { return [] }
        return [.sendChunk(peer, chunk)]
    }

    /// A child fed `s` here whose uplink is far weaker than the asker's (its sched at least `preemptRatio` times as
    /// long), the weakest first; nil when the asker is not that much stronger than any.
    private func weakerChild(than asker: PeerID, in s: Int) -> PeerID? {
        guard let strength = known[asker]?.info.scheduleDelay,
              preemptedBy[asker].map({ lastNow - $0 >= Self.preemptSpacing }) ?? true else { return nil }
        let weakest = children.filter { c in
            c.key != asker && c.value.contains(s) && preemptedAt[c.key].map { lastNow - $0 >= Self.preemptProtection } ?? true
        }.keys
            .compactMap { id in known[id].map { (id, $0.info.scheduleDelay) } }
            .max { ($0.1, $1.0) < ($1.1, $0.0) }
        guard let weakest, Double(weakest.1) >= Double(strength) * Self.preemptRatio else { return nil }
        return weakest.0
    }

    static let preemptRatio = 1.5

    /// The origin keeps a unit for every substream nobody takes from it yet: a substream that leaves the origin
    /// nowhere cannot be had at all. Other peers keep none.
    private func unservedSubstreams(besides taken: [Int]) -> Int {
        guard config.isOrigin else { return 0 }
        return config.plan.all.filter { s in !taken.contains(s) && !children.values.contains { $0.contains(s) } }.count
    }

    private mutating func receive(_ chunk: Chunk, from: PeerID?, now: Int64) -> [MeshAction] {
        let s = config.plan.substream(of: chunk.seq)
        if let from {
            // Taken only from the parent of its substream, or from a parent asked to repair it (the end of the stream
            // comes from every parent). The origin takes none: it has the stream.
            let asked = (repairTried[chunk.seq] != nil || chunk.isEndOfStream) && parents.values.contains(from)
            guard !config.isOrigin, parents[s] == from || asked else { return [] }
        }
        guard chunk.epoch >= epoch else { return [] } // the old run's leftovers
        // Within the window: not behind it, nor further ahead of the newest than a window's worth.
        // Far ahead is taken only when the origin's signature vouches for it (this peer slept, say); unsigned, not.
        if chunk.epoch == epoch, chunk.seq < windowLow || (config.verifier == nil && highestSeq.map({ chunk.seq > $0 &+ maxAhead }) == true) {
            return []
        }
        var out: [MeshAction] = []
        if let from, chunk.epoch == epoch, parents[s] == from, tally(chunk.seq, substream: s) {
            // A parent that loses a good part of what it took on (it claimed an uplink it does not have) goes.
            out.append(.send(from, .unsubscribe([s])))
            punish(from, now: now)
            out += orphan([s], now: now, cause: "lossy")
        }
        guard chunk.epoch > epoch || window[chunk.seq] == nil else { return out }
        if let from, let key = config.verifier, !key.verifies(chunk) {
            // Not what the origin signed: dropped, and so is the peer that sent it.
            punish(from, now: now)
            return out + [.disconnect(from)] + lose(from, now: now)
        }
        if chunk.epoch > epoch {
            // A restarted origin, proven by its signature: what is held of the old run goes.
            if let from { known[from]?.info.epoch = chunk.epoch }
            out += newEpoch(chunk.epoch, now: now)
        }
        if let from, parents[s] == from {
            lastFed[s] = now
            fedByParent.insert(s)
        }
        window[chunk.seq] = chunk
        repairTried.removeValue(forKey: chunk.seq)
        highestSeq = max(highestSeq ?? chunk.seq, chunk.seq)
        if chunk.duration > 0 { config.chunkDuration = chunk.duration }
        firstSeq = min(firstSeq ?? chunk.seq, chunk.seq)
        lastSeqOf[s] = max(lastSeqOf[s] ?? chunk.seq, chunk.seq)
        if window.count > config.windowChunks, let high = highestSeq {
            let low = high >= UInt64(config.windowChunks) ? high - UInt64(config.windowChunks) + 1 : 0
            if low - windowLow < UInt64(window.count) {
                for seq in windowLow..<low { window.removeValue(forKey: seq) }
            } else {
                window = window.filter { $0.key >= low }
            }
            windowLow = low
            if !repairTried.isEmpty { repairTried = repairTried.filter { $0.key >= windowLow } }
            for (peer, seqs) in sentTo where seqs.count > 2 * config.windowChunks { sentTo[peer] = seqs.filter { $0 >= low } }
        }
        out.append(.deliver(chunk))
        for (child, subs) in children.sorted(by: { $0.key < $1.key }) where child != from && (subs.contains(s) || chunk.isEndOfStream) {
            out += sendChunk(chunk, to: child)
        }
        return out
    }

    private mutating func tick(now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        if now >= nextHousekeeping {
            nextHousekeeping = now + 1_000_000
            out += housekeeping(now: now)
        }
        out += gossip(now: now)
        guard !config.isOrigin else { return out + announceIfChanged(now: now) }
        if now >= nextProbe {
            nextProbe = now + Self.probePeriod
            out += probe()
        }
        if !hasAllParents, let bootstrap = config.bootstrap, !connected.contains(bootstrap), now >= nextBootstrapTry {
            nextBootstrapTry = now + 2_000_000
            out.append(.connect(bootstrap))
        }
        // A substream whose parent stays connected but forwards nothing is as good as orphaned.
        let starved = parents.filter { s, _ in now - (lastFed[s] ?? now) > config.parentTimeout }.map(\.key).sorted()
        if !starved.isEmpty {
            var byParent: [PeerID: [Int]] = [:]
            for s in starved { byParent[parents[s]!, default: []].append(s) }
            // Blame needs a stream that flows elsewhere, or a parent that never delivered at all: when parents that
            // had delivered go quiet all at once, the source or this peer stalled, and they are not to blame.
            let flowing = lastFed.values.contains { now - $0 <= config.parentTimeout }
            for (parent, substreams) in byParent.sorted(by: { $0.key < $1.key }) {
                out.append(.send(parent, .unsubscribe(substreams)))
                // It did not deliver: not a parent to take again for a while.
                if flowing || fedByParent.isDisjoint(with: substreams) { punish(parent, now: now) }
            }
            out += orphan(starved, now: now, cause: "starved")
        }
        // A subscribe is answered within a round trip or two; past that (at least a second), try someone else.
        for (s, p) in pending.sorted(by: { $0.key < $1.key }) where now >= pendingDeadline(p) {
            pending.removeValue(forKey: s)
            known[p.peer]?.info.residualUnits = 0
            awaitingLink[p.peer]?.remove(s)
            // Its yes may still be on the way: withdraw, so it does not keep units for us.
            if connected.contains(p.peer) { out.append(.send(p.peer, .unsubscribe([s]))) }
        }
        awaitingLink = awaitingLink.filter { !$0.value.isEmpty }
        out += selectParents(now: now)
        if now >= nextImprovement {
            out += improve(now: now)
        }
        if downstreamAnnounceDue { out += announceDownstream(now: now) }
        // Short of parents: ask a linked peer for candidates more often than the gossip round does (the bootstrap
        // first), so a joiner walks the mesh until it finds room.
        if !hasAllParents, !linked.isEmpty, now >= nextPeerAsk {
            nextPeerAsk = now + Self.peerAskSpacing
            let asked = config.bootstrap.flatMap { connected.contains($0) && peerAsks % 2 == 0 ? $0 : nil }
                ?? linked[Int(rng.next() % UInt64(linked.count))]
            peerAsks += 1
            out.append(announceTo(asked, wantPeers: true))
        }
        out += announceIfChanged(now: now)
        out += repair(now: now)
        return out
    }

    /// Once a second: forgetting old news, pruning timers, closing idle links.
    private mutating func housekeeping(now: Int64) -> [MeshAction] {
        if !preemptedAt.isEmpty || !preemptedBy.isEmpty {
            preemptedAt = preemptedAt.filter { now - $0.value < Self.preemptProtection }
            preemptedBy = preemptedBy.filter { now - $0.value < Self.preemptSpacing }
        }
        if !avoid.isEmpty { avoid = avoid.filter { $0.value > now } }
        // Offences are remembered while a peer is avoided or still heard of: memory stays bounded under churn.
        if offenses.count > avoid.count { offenses = offenses.filter { avoid[$0.key] != nil || known[$0.key] != nil } }
        if now >= nextForget {
            // Stale hearsay goes every few seconds; removed in place, since copying news is not free.
            nextForget = now + 5_000_000
            for id in known.compactMap({ !connected.contains($0.key) && now - $0.value.heardAt >= Self.forgetAfter ? $0.key : nil }) {
                known.removeValue(forKey: id)
            }
            measured = measured.filter { now - $0.value.at < Self.rememberMeasurement }
            let delays = measured.values.map(\.delay).sorted()
            typicalLinkDelay = delays.isEmpty ? config.assumedLinkDelay : delays[delays.count / 2]
        }
        if !refusedAt.isEmpty { refusedAt = refusedAt.filter { now - $0.value < Self.refusalMemory } }
        if !askedFull.isEmpty { askedFull = askedFull.filter { now - $0.value < Self.fullAskSpacing } }
        if !handedOut.isEmpty {
            handedOut = handedOut.mapValues { $0.filter { now - $0.value < Self.handOutMemory } }.filter { !$0.value.isEmpty }
        }
        return closeIdleLinks(now: now)
    }

    /// When a subscribe not answered is given up.
    private func pendingDeadline(_ p: (peer: PeerID, since: Int64)) -> Int64 {
        p.since + max(1_000_000, 4 * (known[p.peer]?.linkDelay ?? 0)) + 1
    }

    /// When this peer next has something to do (design §7: the driver wakes it then, with `.tick`, instead of
    /// ticking every peer on a clock). Events in between may make it sooner: read it after each event.
    public var nextWakeup: Int64 {
        var at = min(nextHousekeeping, nextGossip)
        if config.isOrigin {
            if downstreamAnnounceDue || announced == nil { at = min(at, lastDownstreamAnnounce + Self.downstreamSpacing) }
            return max(at, lastNow + 1)
        }
        // Short of parents, searching, waiting on a subscribe or missing chunks: the old pace, ten times a second.
        if !hasAllParents || !pending.isEmpty || hasGap { at = min(at, lastNow + 100_000) }
        for p in pending.values { at = min(at, pendingDeadline(p)) }
        if hasAllParents { at = min(at, nextImprovement) }
        if !toProbe.isEmpty { at = min(at, nextProbe) }
        for s in parents.keys { at = min(at, (lastFed[s] ?? lastNow) + config.parentTimeout + 1) }
        if downstreamAnnounceDue { at = min(at, lastDownstreamAnnounce + Self.downstreamSpacing) }
        return max(at, lastNow + 1)
    }

    /// A chunk is missing behind the newest of its substream: the repair scan has work.
    private var hasGap: Bool {
        guard let high = highestSeq else { return false }
        let k = UInt64(config.plan.count)
        var seq = max(repairFrom, windowLow, firstSeq ?? 0)
        while seq + k <= high {
            if window[seq] == nil { return true }
            seq += 1
        }
        return false
    }

    static let refusalMemory: Int64 = 3_000_000
    static let peerAskSpacing: Int64 = 300_000
    static let probePeriod: Int64 = 1_000_000
    static let maxProbes = 4
    static let rememberMeasurement: Int64 = 60_000_000

    /// Design §3: candidates are probed. A link to the most powerful candidate not measured yet measures its delay
    /// (the driver pings every link), so choices and moves weigh real delays; the link closes when idle.
    private mutating func probe() -> [MeshAction] {
        probing = probing.filter { connected.contains($0) || awaitingProbe(since: $0) }
        if probeStarted.count > probing.count { probeStarted = probeStarted.filter { probing.contains($0.key) } }
        guard !leaving, probing.count < Self.maxProbes else { return [] }
        // Only the newest news is weighed: a short list, not every peer heard of.
        toProbe = toProbe.filter { known[$0].map { $0.linkDelay == nil } == true && !connected.contains($0) && awaitingLink[$0] == nil }
        let unmeasured = toProbe.compactMap { known[$0]?.info.residualUnits ?? 0 > 0 ? candidate($0) : nil }
        guard let best = unmeasured.max(by: { a, b in
            let (pa, pb) = (a.power(needing: config.plan.all, me: config.me), b.power(needing: config.plan.all, me: config.me))
            return pa != pb ? pa < pb : a.id > b.id
        }) else { return explore() }
        toProbe.removeAll { $0 == best.id }
        probing.insert(best.id)
        probeStarted[best.id] = lastNow
        return [.connect(best.id)]
    }

    /// Short of parents with no candidate to probe: a link to a peer heard of at random, whose answer to this peer's
    /// ask names its own neighbours. A joiner walks the mesh this way until it finds room.
    private mutating func explore() -> [MeshAction] {
        guard !hasAllParents, fruitlessSearch != nil else { return [] }
        let options = known.keys.filter { !connected.contains($0) && !isAvoided($0) && awaitingLink[$0] == nil }
        guard !options.isEmpty else { return [] }
        let id = options.sorted()[Int(rng.next() % UInt64(options.count))]
        probing.insert(id)
        probeStarted[id] = lastNow
        return [.connect(id)]
    }

    /// A probe's link not up yet (a connect is given a few seconds).
    private func awaitingProbe(since peer: PeerID) -> Bool { lastNow - (probeStarted[peer] ?? 0) < 5_000_000 }

    /// Links to peers that are neither parent, child, being asked nor the bootstrap close after this long, so
    /// links do not pile up over a long run (each costs pings and announces).
    static let idleLinkTimeout: Int64 = 20_000_000
    static let crowdedIdleTimeout: Int64 = 1_000_000

    /// Peers linked for a reason: parents, children, and those asked to be one.
    private var roles: Set<PeerID> {
        Set(parents.values).union(children.keys).union(pending.values.map(\.peer)).union(awaitingLink.keys)
    }

    private mutating func closeIdleLinks(now: Int64) -> [MeshAction] {
        var busy = roles
        // The bootstrap is kept only while it is needed: a peer with its parents owes it nothing (design §7).
        if !hasAllParents, let bootstrap = config.bootstrap { busy.insert(bootstrap) }
        let timeout = linked.count > config.maxLinks ? Self.crowdedIdleTimeout : Self.idleLinkTimeout
        idleSince = idleSince.filter { connected.contains($0.key) && !busy.contains($0.key) }
        var out: [MeshAction] = []
        for peer in linked where !busy.contains(peer) {
            // A probe has done its job once the delay is measured; the news of the peer is kept.
            if probing.contains(peer), known[peer]?.linkDelay != nil {
                probing.remove(peer)
                probeStarted.removeValue(forKey: peer)
                idleSince.removeValue(forKey: peer)
                unlink(peer)
                out.append(.disconnect(peer))
                continue
            }
            let since = idleSince[peer] ?? now
            idleSince[peer] = since
            if now - since > timeout {
                idleSince.removeValue(forKey: peer)
                out.append(.disconnect(peer))
                out += lose(peer, now: now)
            }
        }
        return out
    }

    /// Gossip (design §7): one linked peer a round is asked for a sample of its neighbours, with this peer's news.
    /// Over parents', children's and probes' links, so the view drifts through the neighbourhood; the origin
    /// asks nobody.
    private mutating func gossip(now: Int64) -> [MeshAction] {
        guard now >= nextGossip else { return [] }
        nextGossip = now + jittered(config.gossipPeriod)
        guard !config.isOrigin, !linked.isEmpty else { return [] }
        return [announceTo(linked[Int(rng.next() % UInt64(linked.count))], wantPeers: true)]
    }

    /// This peer's news, to every link, when it changed since it last went out.
    private mutating func announceIfChanged(now: Int64) -> [MeshAction] {
        guard !downstreamAnnounceDue, now - lastDownstreamAnnounce >= Self.changeSpacing else { return [] }
        return announceDownstream(now: now)
    }

    /// News that is not ancestry (room, a delay) goes out at most this often.
    static let changeSpacing: Int64 = 500_000

    /// This peer's news to one peer; asking for its peers lets its answer in.
    private mutating func announceTo(_ peer: PeerID, wantPeers: Bool) -> MeshAction {
        if wantPeers { owePeers(peer) }
        return .send(peer, .announce(children[peer] == nil ? info.brief : info, wantPeers: wantPeers))
    }

    /// One more answer owed by `peer` (a few at most: an ask unanswered for long is not waited for forever).
    private mutating func owePeers(_ peer: PeerID) {
        peersAsked[peer] = min(8, peersAsked[peer, default: 0] + 1)
    }

    /// Pulls chunks missing behind the newest ones from a parent, while they can still be on time.
    private mutating func repair(now: Int64) -> [MeshAction] {
        guard let high = highestSeq, !parents.isEmpty else { return [] }
        let k = UInt64(config.plan.count)
        guard high > k else { return [] }
        // Worth pulling: the chunks of the last `repairHorizon` (past that a playout deadline has surely gone by).
        let horizon = UInt64(config.repairHorizon / max(1, config.chunkDuration))
        let low = max(windowLow, firstSeq ?? 0, high > horizon ? high - horizon : 0)
        var out: [MeshAction] = []
        var sources: [PeerID] = []
        var seq = max(low, repairFrom)
        // Everything before the first gap is held: the next scan starts there.
        var complete = true
        while seq + k <= high, out.count < 8 {
            if window[seq] != nil {
                if complete { repairFrom = seq + 1 }
            } else {
                complete = false
            }
            if window[seq] == nil, repairTried[seq].map({ now - $0.at > 2 * config.chunkDuration }) ?? true {
                if sources.isEmpty { sources = Set(parents.values).sorted() }
                // Each try asks the next parent: the one asked first may be the one that lost it.
                let tries = (repairTried[seq]?.tries ?? 0) + 1
                repairTried[seq] = (now, tries)
                out.append(.send(sources[(Int(seq % UInt64(sources.count)) + tries - 1) % sources.count], .repair(seq)))
            }
            seq += 1
        }
        return out
    }

    /// Gives every substream without a parent one, by power.
    private mutating func selectParents(now: Int64) -> [MeshAction] {
        guard !config.isOrigin, !leaving, parents.count < config.plan.count else { return [] }
        let needed = config.plan.all.filter { parents[$0] == nil && pending[$0] == nil }
        guard !needed.isEmpty else { return [] }
        // After a search that found no one: not again within a tick, and not before something new is heard (but
        // once a second anyway). A peer short of parents hears a lot; each search weighs every candidate.
        if let last = fruitlessSearch, last.needed == needed,
           now - last.at < Self.searchSpacing || (last.version == newsVersion && now - last.at < 1_000_000) { return [] }
        let plan = ParentSelector.select(needed: needed, from: candidates(), me: config.me)
        pendingCause = "select"
        fruitlessSearch = plan.isEmpty ? (newsVersion, needed, now) : nil
        return ask(plan, now: now)
    }

    /// One move towards a lower delay, make-before-break.
    /// A round that finds no move waits twice as long for the next (up to `maxImprovementBackoff` periods): a peer
    /// at its local minimum stays put. A move, or a lost parent, brings the pace back.
    private mutating func improve(now: Int64) -> [MeshAction] {
        nextImprovement = now + jittered(improvementPeriod)
        guard hasAllParents, pending.isEmpty else { return [] }
        improvementPeriod = min(2 * improvementPeriod, Self.maxImprovementBackoff * config.improvementPeriod)
        let current = Dictionary(uniqueKeysWithValues: parents.compactMap { s, p in candidate(p).map { (s, $0) } })
        guard current.count == parents.count else { return [] }
        // Candidates with room first; else full ones, which may give a weaker child's unit to this peer.
        guard let move = ParentSelector.improvement(parents: current, candidates: candidates(measuredOnly: true), me: config.me, margin: config.hysteresis,
                                                    relativeMargin: config.relativeHysteresis)
            ?? ParentSelector.improvement(parents: current, candidates: candidates(includingFull: true, measuredOnly: true), me: config.me,
                                          margin: config.hysteresis, relativeMargin: config.relativeHysteresis) else { return [] }
        // A full peer is asked at most once in `fullAskSpacing`: the next rounds try the next best.
        if known[move.to]?.info.residualUnits ?? 0 <= 0 { askedFull[move.to] = now }
        improvementPeriod = config.improvementPeriod
        pendingCause = known[move.to]?.info.residualUnits ?? 0 <= 0 ? "improve-full" : "improve"
        return ask([move.substream: move.to], now: now)
    }

    private mutating func ask(_ plan: [Int: PeerID], now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        var byPeer: [PeerID: [Int]] = [:]
        for (s, p) in plan { byPeer[p, default: []].append(s) }
        for (peer, substreams) in byPeer.sorted(by: { $0.key < $1.key }) {
            for s in substreams { pending[s] = (peer, now) }
            known[peer]?.info.residualUnits -= substreams.count
            if connected.contains(peer) {
                out.append(.send(peer, .subscribe(substreams.sorted(), fromSeq: resumeSeq(for: Set(substreams)))))
            } else {
                if awaitingLink[peer] == nil { out.append(.connect(peer)) }
                awaitingLink[peer, default: []].formUnion(substreams)
            }
        }
        return out
    }

    /// Where a (re)subscription should start: just after what we hold of those substreams, or 0 for a newcomer.
    private func resumeSeq(for substreams: Set<Int>) -> UInt64 {
        let last = substreams.compactMap { lastSeqOf[$0] }
        guard last.count == substreams.count, let low = last.min() else { return highestSeq.map { $0 + 1 } ?? 0 }
        return low + 1
    }

    /// A link is gone: its news is forgotten (so it is not chosen again at once), its children go, and the
    /// substreams it fed are re-parented at once.
    private mutating func lose(_ peer: PeerID, now: Int64) -> [MeshAction] {
        unlink(peer)
        known.removeValue(forKey: peer)
        children.removeValue(forKey: peer)
        sentTo.removeValue(forKey: peer)
        repairBudget.removeValue(forKey: peer)
        peersAsked.removeValue(forKey: peer)
        unaskedPeers.removeValue(forKey: peer)
        awaitingLink.removeValue(forKey: peer)
        for (s, p) in pending where p.peer == peer { pending.removeValue(forKey: s) }
        return orphan(parents.filter { $0.value == peer }.map(\.key), now: now, cause: "lost")
    }

    /// The peer dialled as `old` calls itself `new`: the link and what waits on it are the new name's. Its news
    /// comes again under the new name; the driver dials the old address to reach it again. Never into the origin's
    /// name (unless it is the origin's link), nor out of its penalties.
    private mutating func rename(_ old: PeerID, to new: PeerID) {
        guard old != new, connected.contains(old), !connected.contains(new), new != config.me,
              new != config.originID || old == config.originID, new != config.bootstrap else { return }
        if let until = avoid.removeValue(forKey: old) { avoid[new] = max(until, avoid[new] ?? until) }
        if let count = offenses.removeValue(forKey: old) { offenses[new, default: 0] += count }
        if let count = unaskedPeers.removeValue(forKey: old) { unaskedPeers[new, default: 0] += count }
        unlink(old)
        if connected.insert(new).inserted { linked.append(new) }
        known.removeValue(forKey: old)
        if config.bootstrap == old { config.bootstrap = new }
        if config.originID == old { config.originID = new }
        for (s, p) in pending where p.peer == old { pending[s] = (new, p.since) }
        for (s, p) in parents where p == old { parents[s] = new }
        if let waiting = awaitingLink.removeValue(forKey: old) { awaitingLink[new, default: []].formUnion(waiting) }
        if let subs = children.removeValue(forKey: old) { children[new, default: []].formUnion(subs) }
        if let d = measured.removeValue(forKey: old) { measured[new] = d }
        if let owed = peersAsked.removeValue(forKey: old) { peersAsked[new] = owed }
        if let seqs = sentTo.removeValue(forKey: old) { sentTo[new] = seqs }
        if let budget = repairBudget.removeValue(forKey: old) { repairBudget[new] = budget }
        probing.remove(old)
        idleSince.removeValue(forKey: old)
    }

    /// The link to a peer is no longer counted as up.
    private mutating func unlink(_ peer: PeerID) {
        if connected.remove(peer) != nil { linked.removeAll { $0 == peer } }
    }

    /// Counts a chunk its parent sent in a substream, and the substream's slots it skipped since the last one.
    /// True when too many of the recent slots never came from the parent.
    private mutating func tally(_ seq: UInt64, substream s: Int) -> Bool {
        let k = UInt64(config.plan.count)
        defer { lastFromParent[s] = max(lastFromParent[s] ?? seq, seq) }
        guard let last = lastFromParent[s] else { return false }
        guard seq > last else { return false } // a repair or a resend: not a slot of its own
        var log = fedLog[s] ?? []
        log += Array(repeating: false, count: max(0, Int(min((seq - last) / k, UInt64(Self.fedLogLength))) - 1)) + [true]
        log = Array(log.suffix(Self.fedLogLength))
        fedLog[s] = log
        return log.filter { !$0 }.count > Self.fedLogMisses
    }

    /// A parent is lossy when more than `fedLogMisses` of the last `fedLogLength` slots of a substream never came
    /// (two in ten: an honest parent that re-parents sends its backlog in order, so it misses none).
    static let fedLogLength = 10
    static let fedLogMisses = 1

    /// A peer failed us (stopped forwarding, lost chunks, broke the link's rules): not a parent for a while,
    /// twice as long each time it happens again.
    private mutating func punish(_ peer: PeerID, now: Int64) {
        // The origin is the one source there is: a peer moves away from it when it loses chunks, but never
        // shuns it (if every peer did, nothing would enter the mesh at all).
        guard !isOrigin(peer) else { return }
        let count = offenses[peer, default: 0]
        offenses[peer] = count + 1
        avoid[peer] = now + 30_000_000 << min(count, 4)
    }

    /// The origin as a peer knows it: by its key, proven on the link (never by its word or a delay of 0).
    private func isOrigin(_ peer: PeerID) -> Bool { peer == config.originID }

    /// A restarted origin: what is held of the old run is dropped, and so are parents still on it.
    private mutating func newEpoch(_ new: UInt64, now: Int64) -> [MeshAction] {
        guard !config.isOrigin, new > epoch else { return [] }
        epoch = new
        window.removeAll()
        windowLow = 0
        repairFrom = 0
        lastSeqOf.removeAll()
        repairTried.removeAll()
        highestSeq = nil
        firstSeq = nil
        lastFromParent.removeAll()
        fedLog.removeAll()
        pending.removeAll()
        sentTo.removeAll()
        // Peers that starved or failed in the outage were not to blame for it.
        avoid.removeAll()
        offenses.removeAll()
        var out: [MeshAction] = []
        let stale = parents.filter { (known[$0.value]?.info.epoch ?? 0) < new }
        for (parent, substreams) in Dictionary(grouping: stale.keys, by: { stale[$0]! }).sorted(by: { $0.key < $1.key }) {
            out.append(.send(parent, .unsubscribe(substreams.sorted())))
        }
        for s in parents.keys where stale[s] == nil { lastFed[s] = now }
        return out + orphan(stale.keys.sorted(), now: now, cause: "epoch")
    }

    /// These substreams lost their parent: find new ones at once.
    private mutating func orphan(_ orphaned: [Int], now: Int64, cause: String) -> [MeshAction] {
        guard !orphaned.isEmpty else { return [] }
        changeCauses[cause, default: 0] += 1
        for s in orphaned {
            parents.removeValue(forKey: s)
            lastFed.removeValue(forKey: s)
            fedByParent.remove(s)
            lastFromParent.removeValue(forKey: s)
            fedLog.removeValue(forKey: s)
        }
        parentChanges += 1
        return [.parentsChanged(parents)] + announceDownstream(now: now) + selectParents(now: now)
    }

    /// News goes out when it changed (design §7), at once, not on a clock. Children learn a new ancestry at once:
    /// stale ancestry is how loops form. Every linked peer learns a new parent, room or a delay that moved by more
    /// than the hysteresis, so joiners and neighbours weigh this peer on fresh news; smaller drifts are not news.
    /// At most once per `downstreamSpacing`; a change inside that spacing goes out at the next wake-up.
    private mutating func announceDownstream(now: Int64) -> [MeshAction] {
        guard now - lastDownstreamAnnounce >= Self.downstreamSpacing else {
            downstreamAnnounceDue = true
            return []
        }
        downstreamAnnounceDue = false
        let me = info
        let toAll = announced.map { !sameNews(me, $0) } ?? true
        guard toAll || me.ancestors != toChildren?.ancestors else { return [] }
        lastDownstreamAnnounce = now
        toChildren = me
        if toAll { announced = me }
        let brief = me.brief
        return linked.compactMap { id in
            children[id] != nil ? .send(id, .announce(me, wantPeers: false)) : toAll ? .send(id, .announce(brief, wantPeers: false)) : nil
        }
    }

    /// Whether two records of this peer say the same to a peer choosing parents: same parents and room, delays
    /// within the hysteresis (or 2 %).
    private func sameNews(_ a: PeerInfo, _ b: PeerInfo) -> Bool {
        guard a.residualUnits == b.residualUnits, a.epoch == b.epoch, a.scheduleDelay == b.scheduleDelay,
              a.delays.count == b.delays.count, a.ancestors.map(\.first) == b.ancestors.map(\.first) else { return false }
        return zip(a.delays, b.delays).allSatisfy { x, y in
            switch (x, y) {
            case (nil, nil): true
            case let (x?, y?): abs(x - y) <= max(config.hysteresis, min(x, y) / 50)
            default: false
            }
        }
    }

    static let downstreamSpacing: Int64 = 20_000
    static let searchSpacing: Int64 = 100_000

    private func candidate(_ id: PeerID) -> CandidateParent? {
        guard let k = known[id], !isAvoided(id), k.info.epoch >= epoch,
              refusedAt[id].map({ lastNow - $0 >= Self.refusalMemory }) ?? true else { return nil }
        var delays: [Int: Int64] = [:]
        var ancestors: [Int: [PeerID]] = [:]
        let mine = children[id]
        for s in config.plan.all {
            if s < k.info.delays.count, let d = k.info.delays[s] { delays[s] = d }
            var up = s < k.info.ancestors.count ? k.info.ancestors[s] : []
            // My own child in a substream is below me there, whatever its news says.
            if mine?.contains(s) == true { up.append(config.me) }
            ancestors[s] = up
        }
        guard !delays.isEmpty else { return nil }
        return CandidateParent(id: id, delays: delays, linkDelay: k.linkDelay ?? typicalLinkDelay,
                               scheduleDelay: k.info.scheduleDelay, residualUnits: k.info.residualUnits, ancestors: ancestors)
    }

    /// Avoided until a time; the list itself is pruned once a second.
    private func isAvoided(_ peer: PeerID) -> Bool { avoid[peer] != nil && avoid[peer]! > lastNow }

    /// Candidates with a unit to spare: only those can take a substream. With `includingFull`, full ones too,
    /// with a unit they might free for a stronger peer.
    /// With `measuredOnly`, only those whose link delay was measured: a move is made on a known delay, not on a
    /// guess that the next measurement undoes.
    private func candidates(includingFull: Bool = false, measuredOnly: Bool = false) -> [CandidateParent] {
        known.filter { k in
            (k.value.info.residualUnits > 0 || (includingFull && askedFull[k.key].map { lastNow - $0 >= Self.fullAskSpacing } ?? true))
                && (!measuredOnly || k.value.linkDelay != nil)
        }.keys.sorted().compactMap { id in
            candidate(id).map { var c = $0; c.residualUnits = max(1, c.residualUnits); return c }
        }
    }

    /// Hearsay that may go: the stalest news of a peer not linked to us, when the view is full.
    private mutating func makeRoomInView(now: Int64) -> Bool {
        guard known.count - connected.count >= Self.maxKnown else { return true }
        var stalest: (id: PeerID, at: Int64)?
        for (id, k) in known where !connected.contains(id) && k.heardAt < (stalest?.at ?? .max) { stalest = (id, k.heardAt) }
        guard let stalest, stalest.at < now else { return false }
        known.removeValue(forKey: stalest.id)
        return true
    }

    /// Up to `sampleSize` linked peers that receive the stream, for a peer looking for parents: those with room first.
    /// Drawn at random, so the origin of a large mesh does not send everyone the same few.
    private mutating func candidateSample(for asker: PeerID) -> [PeerInfo] {
        var picked: [PeerInfo] = []
        var seen: Set<PeerID> = [asker]
        let draws = linked.count <= 32 ? linked.shuffled(using: &rng)
            : (0..<64).map { _ in linked[Int(rng.next() % UInt64(linked.count))] }
        for id in draws where seen.insert(id).inserted {
            guard var info = known[id]?.info, info.delays.contains(where: { $0 != nil }) else { continue }
            // The room handed out lately is taken to be used: the next asker is sent elsewhere, instead of a crowd
            // of joiners all asking the same peers. It is given back after `handOutMemory` (news of a peer whose
            // room did not change does not come again).
            let others = handedOut[id]?.filter { $0.key != asker && lastNow - $0.value < Self.handOutMemory }.count ?? 0
            info.residualUnits = max(0, info.residualUnits - others * config.plan.count)
            picked.append(info)
        }
        let withRoom = picked.filter { $0.residualUnits > 0 }
        let sample = Array((withRoom + picked.filter { $0.residualUnits == 0 }).prefix(Self.sampleSize))
        // Only for an asker short of parents: gossip between fed peers reserves nothing.
        let searching = known[asker].map { $0.info.delays.contains(nil) } ?? true
        for info in sample where searching && info.residualUnits > 0 {
            handedOut[info.id, default: [:]][asker] = lastNow
        }
        return sample
    }

    private mutating func jittered(_ period: Int64) -> Int64 {
        period * 3 / 4 + Int64(rng.next() % UInt64(max(1, period / 2)))
    }
}

/// SplitMix64: small, seeded, the same on every platform.
public struct SplitMixRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
