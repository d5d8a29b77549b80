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
    /// A move must lower the peer's delay by more than this, and by more than `relativeHysteresis` of it. At 1,000
    /// simulated peers, 12.5 % against 10 % cut parent changes from 1.7-2.0 to 1.3-1.9 a peer a minute, delays alike.
    public var hysteresis: Int64 = 2_000
    public var relativeHysteresis = 0.125
    /// A parent that sends nothing for this long is dropped (it may be alive but not forwarding).
    public var parentTimeout: Int64
    /// Gossip: how often a peer asks one linked peer for a sample of the peers it knows (jittered ±25 %).
    /// A peer's own news goes out when it changes, not on a clock.
    public var gossipPeriod: Int64 = 2_000_000
    /// Links a peer keeps (design §7): past this, a link with no role answers its ask for peers and closes.
    public var maxLinks = 32
    /// How far behind the newest chunk, in stream time, a missing one is still pulled from a parent.
    public var repairHorizon: Int64 = 6_400_000
    /// Chunks kept for children joining, switching or repairing: twice the repair horizon (nothing older is sent).
    public var windowChunks: Int { max(16, 2 * Int(repairHorizon / max(1, chunkDuration))) }
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
    /// This peer's upload, when it has a budget: its units and sched follow from it and the stream's rate (design
    /// §7: one configuration in the simulator and the relays). Nil keeps `capacityUnits` and `scheduleDelay`.
    public var uplink: BitRate?
    /// The stream's rate, once known (the origin's welcome tells joiners).
    public var streamRate: BitRate?
    /// Units and sched follow what the peer finds it can send (`UplinkEstimate`), `uplink` capping it (issue 19:
    /// found out, not declared). Off: `capacityUnits` and `scheduleDelay` as given, or as `uplink` says.
    public var findsUplink = false
    /// Where the estimate starts before anything is measured, bits/s (nil: what `capacityUnits` would carry).
    public var initialUplink: BitRate?
    /// Bytes a link's socket takes at once (the driver's send buffer): they leave at once, whatever the uplink.
    public var socketBytes = 0
    /// Units offered are this part of the estimate: framing, TCP, control messages and repairs take the rest.
    public var headroom = 0.8
    /// Children are let go once what they take passes this part of the estimate.
    public var overload = 0.95

    /// Units and sched from the uplink, the stream's rate, k and the chunk duration. Without an uplink, sched is
    /// what the units imply (units × rate / k of upload). With `findsUplink`, `MeshPeer` sizes from its estimate.
    public mutating func size() {
        guard !findsUplink, let streamRate, streamRate.bitsPerSecond > 0 else { return }
        let upload = uplink ?? BitRate(bitsPerSecond: Double(capacityUnits) * streamRate.bitsPerSecond / Double(plan.count))
        guard upload.bitsPerSecond > 0 else { return }
        if uplink != nil { capacityUnits = max(0, plan.units(uplink: upload, streamRate: streamRate)) }
        scheduleDelay = min(max(1, SubstreamPlan.scheduleDelay(streamRate: streamRate, chunkDuration: chunkDuration, uplink: upload)),
                            WireLimits.maxDelay - 1) // the longest is "retired"
    }

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
    /// The origin starts a new run of its stream (its sender came back): chunks from seq 0 again, stamped with
    /// this epoch. Children stay; they take the new run as they would a restarted origin's.
    case newRun(epoch: UInt64)
    /// The driver says `bytes` of the chunk it was handed for this peer have left (`Egress`): all of it, or a part.
    case sent(PeerID, bytes: Int)
    /// Upload no more (a budget spent): take no child, tell the children to move; they keep being fed until they
    /// have (make-before-break), or until `shedChildren`. Parents stay: the peer goes on as a leaf.
    case retire
    /// After `retire`: the children still here are let go (told as a refusal, so they look elsewhere at once).
    case shedChildren
    /// The upload capacity changed (the stream's rate became known, say).
    case setCapacity(Int)
    /// The stream as the origin's welcome tells it: its rate (bits/s, 0 if unknown) and k. A peer sizes its units and
    /// sched from its uplink; k is taken while it has no parent nor child yet.
    case stream(rate: Int64, substreams: Int)
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
    /// A retiring peer's children have all moved (or been let go): its hand-off is done.
    case handedOff
}

/// Why a substream's parent changed (counted in `MeshPeer.changeCauses`, named in logs and reports).
public enum ParentChange: String, CaseIterable, Sendable, Comparable {
    /// A parent chosen for a substream without one, or found by continuous improvement.
    case select, improve
    /// A parent that delivers late compared with the others, or is leaving or retiring: moved from before it goes.
    case late, leaving
    /// The parent went (`lost`), refused the substream, sent too little of it (`starved`, `lossy`), formed a loop
    /// through this peer, or plays an older run of the origin (`epoch`).
    case lost, refused, starved, lossy, loop, epoch

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Why a peer opened a link (`MeshPeer.dialCauses`).
public enum Dial: String, CaseIterable, Sendable, Comparable {
    /// To ask a parent for substreams, to probe a candidate's delay, to learn more peers, to reach its bootstrap.
    case parent, probe, explore, bootstrap

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// The Fast-Mesh peer (design §3) as a pure state machine: events and `now` in, actions out.
/// It never reads a clock, never touches a socket, and takes its randomness from the seed. Its state is in parts,
/// each with its own rules: who it knows (`Membership`), its parents (`ParentSet`), who failed it (`Penalties`),
/// its children (`ChildSet`) and the chunks it holds (`ChunkWindow`); this type runs the protocol between them.
public struct MeshPeer {
    public private(set) var config: MeshPeerConfig
    private var rng: SplitMixRandom
    private var members: Membership
    private var parentSet: ParentSet
    private var penalties = Penalties()
    private var childSet = ChildSet()
    private var store: ChunkWindow
    /// What leaves, in what order, and how fast this peer finds it can send.
    public private(set) var egress: Egress
    /// The origin run this peer plays; a newer one (a restarted origin) resets the stream state.
    public private(set) var epoch: UInt64
    public private(set) var parentChanges = 0
    /// Parent changes by cause (a parent lost, refused, starved...; a move found by improvement or selection).
    public private(set) var changeCauses: [ParentChange: Int] = [:]
    /// Units of children let go because the uplink could not carry them (`resize`).
    public private(set) var childrenShed = 0
    /// Units this peer may offer besides what its estimate allows (`findsUplink`, not at the origin): it starts at a
    /// stream's worth and grows a unit every `allowanceStep` while its units are in use and its live chunks leave in
    /// time; live chunks that wait too long in the egress (the uplink cannot keep up, whatever the estimate) bring it
    /// below the units in use, and a child goes. Probing up, backing off at once.
    private var allowance: Int?
    private var lateSeen = 0
    private var nextPressure: Int64 = 0
    private var nextAllowanceStep: Int64 = 0
    /// 2 s a unit left relays on loopback offering 9 of the 16 units they declared a minute in, with kills every 10 s:
    /// children refused for want of room went without a parent for seconds. After a back-off, it waits 4 s.
    static let allowanceStep: Int64 = 500_000
    static let allowancePause: Int64 = 4_000_000
    /// Links this peer opened, by why (to ask a parent, to probe, to explore, to reach its bootstrap).
    public private(set) var dialCauses: [Dial: Int] = [:]
    /// This peer leaving or retiring, and its parents doing so (make-before-break both ways).
    private var handOff = HandOff()
    public var leaving: Bool { handOff.leaving }
    /// Its upload is spent: a leaf from now on (`retire`).
    public var retired: Bool { handOff.retired }
    /// The time of the event being handled.
    private var lastNow: Int64 = 0
    /// When it handled its first event.
    private var startedAt: Int64?

    /// When to search, improve, probe and ask, and what the last searches found (`ParentSearch`).
    private var search: ParentSearch
    static let maxGossipBackoff: Int64 = 3
    private var nextGossip: Int64 = 0
    /// Forgetting old news and closing idle links: once a second is plenty.
    private var nextHousekeeping: Int64 = 0
    /// When this peer's news goes out, and to whom.
    private var announcer: Announcer
    /// Peers this one dialled whose links are not up yet, since when (a dial is answered within seconds).
    private var dialling: [PeerID: Int64] = [:]
    /// Linked peers with no parent, child or pending role, since when.
    private var idleSince: [PeerID: Int64] = [:]

    package static let maxKnown = Membership.maxHearsay
    package static let maxUnaskedPeers = Membership.maxUnaskedPeers
    /// Links to peers that are neither parent, child, being asked nor the bootstrap close after this long (after
    /// `crowdedIdleTimeout` past `maxLinks`), so links do not pile up over a long run.
    static let idleLinkTimeout: Int64 = 20_000_000
    static let crowdedIdleTimeout: Int64 = 1_000_000
    /// A link without a role this long is not a joiner still asking (it subscribes or probes within a second or
    /// two): past `maxLinks` idle links it goes before a newcomer. 32 links that announced and then did nothing kept
    /// every joiner out of the origin; a flash crowd's joiners, all young, are answered and let go as before.
    package static let idleGrace: Int64 = 5_000_000

    public init(config: MeshPeerConfig) {
        self.config = config
        rng = SplitMixRandom(seed: config.seed)
        epoch = config.epoch
        members = Membership(assumedLinkDelay: config.assumedLinkDelay)
        parentSet = ParentSet(count: config.plan.count)
        store = ChunkWindow(capacity: config.windowChunks, horizon: UInt64(config.repairHorizon / max(1, config.chunkDuration)))
        search = ParentSearch(improvementPeriod: config.improvementPeriod)
        announcer = Announcer(hysteresis: config.hysteresis)
        egress = Egress(uplink: UplinkEstimate(initial: Self.initialUplink(config) / 8, cap: config.uplink.map(\.bytesPerSecond),
                                               absorbed: config.socketBytes),
                        maxQueueDelay: max(1_000_000, 5 * config.chunkDuration))
    }

    /// Where a peer's estimate of its uplink starts, bits/s: as given, or what its units carry (1 Mbit/s a unit while
    /// the stream's rate is unknown).
    static func initialUplink(_ config: MeshPeerConfig) -> Double {
        if let given = config.initialUplink { return given.bitsPerSecond }
        let unit = config.streamRate.map { $0.bitsPerSecond / Double(config.plan.count) } ?? 1e6
        return max(unit, Double(config.capacityUnits) * unit / config.headroom)
    }

    // MARK: what the peer is

    public var parents: [Int: PeerID] { parentSet.parents }
    public var children: [PeerID: Set<Int>] { childSet.substreams }
    public var highestSeq: UInt64? { store.newest }
    public var usedUnits: Int { childSet.usedUnits }
    /// Units left to give; none once retired, whatever the uplink says (`size()` may run again).
    public var residualUnits: Int { retired ? 0 : max(0, config.capacityUnits - usedUnits) }
    public var hasAllParents: Bool { config.isOrigin || parentSet.isComplete }

    /// D_s(me): my delay from the source in one substream, nil while it has no parent.
    public func delay(of substream: Int) -> Int64? {
        if config.isOrigin { return 0 }
        // A parent that has lost that substream itself passes on no delay, however it says it is fed otherwise.
        guard let p = parentSet[substream], let k = members[p], k.info.epoch >= epoch,
              substream < k.info.delays.count, let d = k.info.delays[substream] else { return nil }
        // Nor does one that has had the other substreams and not this one for two parent timeouts: whatever its
        // parent says, it passes nothing on (under a mute, every peer has a parent there and nothing to give).
        if store.behind(in: substream) > UInt64(2 * config.parentTimeout / max(1, config.chunkDuration)) { return nil }
        // A retired parent's sched says "uploads nothing", not how late its chunks come: while it still feeds this
        // peer (its hand-off), its delay is what it was, or this peer's whole subtree would see 60 s and move too.
        let sched = k.info.scheduleDelay >= WireLimits.maxDelay ? 0 : k.info.scheduleDelay
        return d.saturatingAdd(k.linkDelay ?? members.typicalLinkDelay).saturatingAdd(sched)
    }

    /// D(me): the longest over my substreams, or nil without a full set of parents.
    public var delayFromSource: Int64? {
        let delays = config.plan.all.map { delay(of: $0) }
        guard delays.allSatisfy({ $0 != nil }) else { return nil }
        return delays.compactMap { $0 }.max()
    }

    /// Who is upstream of me in a substream's tree, for loop checks.
    public func ancestors(of substream: Int) -> [PeerID] {
        guard let p = parentSet[substream] else { return [] }
        guard let theirs = members[p]?.info.ancestors, substream < theirs.count else { return [p] }
        var up = [p]
        up.reserveCapacity(1 + theirs[substream].count)
        up += theirs[substream]
        return up
    }

    /// sched as others are told it: what this peer's uplink takes to push one chunk, whatever its fan-out, for it is
    /// what parents weigh when a stronger asker may take a weaker child's place, and what a parent sheds first.
    /// (Told multiplied by its busiest fan-out, a relay feeding three children a substream looked three times
    /// weaker than a peer feeding none, so joiners evicted relays with whole subtrees below them: at 300 simulated
    /// peers on 0.5x-4x uplinks, about a thousand evictions in 75 s, 45 parent changes a peer a minute, 78 % on time.)
    /// Retired, it uploads nothing: the longest there is, so any asker with room takes its units (a retired viewer
    /// held the origin's only unit of a substream and starved the whole mesh of it; lsp2p-sim check, seed 57).
    var advertisedSched: Int64 { retired ? WireLimits.maxDelay : config.scheduleDelay }

    /// `info` as told to a peer that is not a child (`PeerInfo.brief`), without the ancestry it would drop.
    var briefInfo: PeerInfo {
        PeerInfo(id: config.me, delays: config.plan.all.map { delay(of: $0) }, residualUnits: leaving ? 0 : residualUnits,
                 scheduleDelay: advertisedSched, ancestors: config.plan.all.map { parentSet[$0].map { [$0] } ?? [] }, epoch: epoch)
    }

    public var info: PeerInfo {
        PeerInfo(id: config.me, delays: config.plan.all.map { delay(of: $0) }, residualUnits: leaving ? 0 : residualUnits,
                 scheduleDelay: advertisedSched, ancestors: config.plan.all.map { ancestors(of: $0) }, epoch: epoch)
    }

    /// What this peer hears first hand: itself and every linked peer, brief (its answer to `viewRequest`). A child's
    /// record names this peer as its parent in the substreams it takes here, whatever the child told.
    public var view: [PeerInfo] {
        [info] + members.linked.sorted().compactMap { id in
            guard var record = members[id]?.info.brief else { return nil }
            for s in childSet.substreams[id] ?? [] where s < record.ancestors.count && record.ancestors[s].first != config.me {
                record.ancestors[s] = [config.me]
            }
            return record
        }
    }

    /// Peers whose news is kept (bounded: `maxKnown` hearsay and the links).
    package var knownCount: Int { members.count }
    /// Hearsay kept: news of peers not linked (bounded by `maxKnown`).
    package var hearsayCount: Int { members.hearsayCount }

    /// What the peer holds, for a failing test's message; peers named by `name`.
    public func debugState(_ name: (PeerID) -> String) -> String {
        let pending = parentSet.pending.sorted { $0.key < $1.key }.map { "\($0.key):\(name($0.value.peer))" }
        let known = members.news.values.map { "\(name($0.info.id)):\($0.info.residualUnits)" }.sorted()
        return "parents \(parents.sorted { $0.key < $1.key }.map { "\($0.key):\(name($0.value))" }) pending \(pending) known \(known) "
            + "connected \(members.linked.map(name).sorted()) avoid \(penalties.avoided.map(name))"
    }

    /// Every peer this core refers to, anywhere in its state: the driver keeps the names of these (`PeerNames`), and
    /// may forget the rest.
    public var referencedPeers: Set<PeerID> {
        var all: Set<PeerID> = [config.me]
        for id in [config.bootstrap, config.originID] { if let id { all.insert(id) } }
        all.formUnion(handOff.movingFrom)
        all.formUnion(dialling.keys)
        all.formUnion(idleSince.keys)
        announcer.collectPeers(into: &all)
        members.collectPeers(into: &all)
        parentSet.collectPeers(into: &all)
        penalties.collectPeers(into: &all)
        childSet.collectPeers(into: &all)
        egress.collectPeers(into: &all)
        return all
    }

    // MARK: events

    public mutating func handle(_ event: MeshEvent, now: Int64) -> [MeshAction] {
        lastNow = now
        if startedAt == nil { startedAt = now }
        defer { nextWakeup = wakeup() }
        switch event {
        // What changes this peer's own record is met where it happens (a parent's news, a chunk of a new run).
        case .chunk, .tick, .sent, .message(_, .announce), .message(_, .peers), .message(_, .repair): break
        case .linkDelay(let peer, _) where !parentSet.isParent(peer): break
        default: announcer.mayHaveChanged = true
        }
        var out: [MeshAction] = []
        switch event {
        case .start:
            search.nextRound(at: now + jittered(config.improvementPeriod))
            nextGossip = now + jittered(config.gossipPeriod)
            if let bootstrap = config.bootstrap, bootstrap != config.me {
                out.append(dial(bootstrap))
                _ = search.bootstrapRetry(now: now) // dialled now: again only if it has not answered in a while
            }
        case .connected(let peer):
            members.link(peer)
            // A bootstrap that answers again (a restarted origin) is a candidate again at once.
            if peer == config.bootstrap, penalties.forgive(peer) { members.touch() }
            // Asks for its neighbours, unless it dialled to ask for a substream or to measure a delay: a busy peer
            // answers an ask from a stranger and lets it go, and the subscribe behind it would be lost.
            // A link the other side opened asks nothing: the joiner or prober at its end has little to tell.
            let opened = dialling.removeValue(forKey: peer) != nil
            let dialledFor = parentSet.awaitingLink[peer] != nil || (members.probing.contains(peer) && !members.exploring.contains(peer))
            out.append(announceTo(peer, wantPeers: !config.isOrigin && opened && !dialledFor))
            if !hasAllParents { search.deferPeerAsk(now: now) }
            // What we wait for from it, asked again if a new link replaced one a subscribe may have been lost on.
            let wanted = parentSet.linkUp(peer)
            if !wanted.isEmpty {
                out.append(.send(peer, .subscribe(wanted.sorted(), fromSeq: store.resumeSeq(for: wanted))))
            }
        case .connectFailed(let peer):
            dialling.removeValue(forKey: peer)
            penalties.avoid(peer, until: now + 10_000_000)
            out += lose(peer, now: now)
        case .disconnected(let peer):
            out += lose(peer, now: now)
        case .misbehaved(let peer):
            punish(peer, now: now)
            out += lose(peer, now: now)
        case .linkDelay(let peer, let measuredDelay):
            members.measured(peer, delay: min(max(1, measuredDelay), WireLimits.maxDelay), now: now)
            // A probe was made because the peer looked like a move: the next round comes at the base pace.
            if hasAllParents, members.probing.contains(peer) {
                search.resumePace(soonest: now + jittered(config.improvementPeriod))
            }
        case .message(let peer, let message):
            out += receive(message, from: peer, now: now)
        case .chunk(let from, let chunk):
            out += receive(chunk, from: from, now: now)
        case .newRun(let new):
            guard config.isOrigin, new > epoch else { break }
            startRun(new)
        case .tick:
            out += tick(now: now)
        case .setCapacity(let units):
            if !retired { config.capacityUnits = max(0, units) }
        case .stream(let rate, let k):
            // The origin's k: taken while this peer has no parent nor child on the old plan.
            if !config.isOrigin, k != config.plan.count, k > 0, k <= PeerInfo.maxSubstreams, parentSet.isEmpty,
               parentSet.pending.isEmpty, childSet.isEmpty {
                // Without an uplink, the same upload in the new units.
                if config.uplink == nil { config.capacityUnits = config.capacityUnits * k / config.plan.count }
                config.plan = SubstreamPlan(count: k)
                config.parentTimeout = max(config.parentTimeout, 3 * Int64(k) * config.chunkDuration)
                parentSet = ParentSet(count: k)
                store.reset()
                search.forgetSearches()
            }
            if rate > 0, rate <= WireLimits.maxStreamRate {
                config.streamRate = BitRate(bitsPerSecond: Double(rate))
                config.size()
                egress.start(at: Self.initialUplink(config) / 8)
                out += resize(now: now)
            }
        case .sent(let peer, let bytes):
            if egress.sent(bytes, on: peer, now: now) { out += resize(now: now) }
        case .originIs(let peer):
            if members.isLinked(peer) { config.originID = peer }
        case .originKey(let key):
            if config.verifier == nil { config.verifier = key }
        case .renamed(let old, let new):
            rename(old, to: new)
        case .leave:
            handOff.leave()
            for child in childSet.ids.sorted() { out.append(.send(child, .leaving)) }
            for parent in parentSet.distinct { out.append(.send(parent, .unsubscribe(parentSet.substreams(from: parent)))) }
        case .retire:
            guard !config.isOrigin, handOff.retire() else { break }
            config.capacityUnits = 0
            for child in childSet.ids.sorted() { out.append(.send(child, .leaving)) }
            out += announceDownstream(now: now)
        case .shedChildren:
            guard retired else { break }
            for (child, substreams) in childSet.substreams.sorted(by: { $0.key < $1.key }) {
                out.append(.send(child, .refuse(substreams.sorted())))
                childSet.drop(child)
            }
        }
        return out + release(after: out, now: now)
    }

    /// What the egress lets go now, after `actions`; links they close are forgotten there first. A retiring peer
    /// whose last child has gone says its hand-off is done.
    private mutating func release(after actions: [MeshAction], now: Int64) -> [MeshAction] {
        for case .disconnect(let peer) in actions { egress.forget(peer, now: lastNow) }
        var out = egress.release(now: now) + relievePressure(now: now)
        if handOff.isDone(childless: childSet.ids.isEmpty) { out.append(.handedOff) }
        return out
    }

    /// Live chunks waited too long to leave (or were dropped): the uplink cannot carry what this peer took on, so it
    /// offers one unit less than it uses and lets the weakest child's unit go (once a second at most).
    private mutating func relievePressure(now: Int64) -> [MeshAction] {
        guard egress.lateLive > lateSeen else { return [] }
        lateSeen = egress.lateLive
        guard config.findsUplink, now >= nextPressure, childSet.usedUnits > (config.isOrigin ? config.plan.count : 0) else { return [] }
        nextPressure = now + 1_000_000
        nextAllowanceStep = now + Self.allowancePause
        allowance = childSet.usedUnits - 1
        return resize(now: now)
    }

    /// Once a step: a peer whose units are all in use, and whose chunks leave in time, may offer one more. (Doubling
    /// until the first back-off, as TCP's slow start does, put 150 simulated peers' max delay at 2.9 s instead of 2.1.)
    private mutating func growAllowance(now: Int64) -> [MeshAction] {
        // The origin starts without one (it offers what its estimate allows) and has one only after a back-off.
        guard config.findsUplink, !config.isOrigin || allowance != nil, now >= nextAllowanceStep else { return [] }
        nextAllowanceStep = now + Self.allowanceStep
        let current = allowance ?? config.plan.count
        guard childSet.usedUnits >= current else {
            if allowance == nil { allowance = current }
            return []
        }
        allowance = current + 1
        return resize(now: now)
    }

    private mutating func receive(_ message: MeshMessage, from peer: PeerID, now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        switch message {
        case .announce(let info, let wantPeers):
            guard info.id == peer else { return [] } // a peer speaks only for itself
            let changed = members.heard(info, now: now)
            // A newer run is believed from a chunk the origin signed, never from a peer's word.
            // A loop formed from moves made at once on stale news: leave that parent there, choose again.
            let looped = parentSet.substreams(from: peer).filter { s in s < info.ancestors.count && info.ancestors[s].contains(config.me) }
            if !looped.isEmpty {
                out.append(.send(peer, .unsubscribe(looped)))
                out += orphan(looped, now: now, cause: .loop)
            } else if changed, parentSet.isParent(peer) {
                out += announceDownstream(now: now)
            }
            if wantPeers {
                let sample = members.sample(for: peer, substreams: config.plan.count, now: now, rng: &rng)
                out.append(.send(peer, .peers(sample.map { $0.brief } + [briefInfo])))
            }
            // Past its bound of links without a role, a peer answers a stranger (a joiner, a prober) and lets it go:
            // any peer can bootstrap a joiner, and none gathers links (design §7). Parents and children do not count.
            // A link idle past `idleGrace` goes instead: it is not a joiner still asking.
            if shouldShed(peer) {
                guard let stale = staleIdleLink(besides: peer, now: now) else { return out + [.disconnect(peer)] + lose(peer, now: now) }
                idleSince.removeValue(forKey: stale)
                out += [.disconnect(stale)] + lose(stale, now: now)
            }
            out += selectParents(now: now)
        case .peers(let list):
            // Only an answer to our ask: a peer cannot flood us with hearsay.
            switch members.answer(from: peer) {
            case .unasked: return []
            case .tooManyUnasked:
                punish(peer, now: now)
                return [.disconnect(peer)] + lose(peer, now: now)
            case .owed:
                members.heard(hearsay: list, me: config.me, now: now)
            }
            out += selectParents(now: now)
        case .subscribe(let substreams, let fromSeq):
            guard members.isLinked(peer) else { return [] } // a link gone: nobody to feed
            out += subscribe(peer, to: substreams, fromSeq: fromSeq)
            // Refused, and this peer is crowded: the answer goes, then the link.
            if shouldShed(peer) { return out + [.disconnect(peer)] + lose(peer, now: now) }
        case .unsubscribe(let substreams):
            childSet.remove(peer, substreams)
        case .accept(let substreams):
            var changed = false
            for s in substreams {
                let (taken, old) = parentSet.accept(s, from: peer, now: now)
                guard taken else { continue }
                changed = true
                // Make-before-break: the old parent goes only once the new one has said yes.
                if let old { out.append(.send(old, .unsubscribe([s]))) }
            }
            if changed {
                parentChanges += 1
                changeCauses[search.cause, default: 0] += 1
                out.append(.parentsChanged(parents))
                out += announceDownstream(now: now)
            }
            // A yes that comes after we gave up asking: hand the units back, or they are lost to everyone.
            let stale = substreams.filter { parentSet[$0] != peer }
            if !stale.isEmpty { out.append(.send(peer, .unsubscribe(stale))) }
        case .refuse(let substreams):
            for s in substreams { parentSet.withdraw(s, from: peer) }
            members.refused(by: peer, substreams: substreams, now: now)
            // From the parent itself: it gave our unit to a stronger peer. Find another parent at once.
            let dropped = substreams.filter { parentSet[$0] == peer }
            if !dropped.isEmpty { out += orphan(dropped, now: now, cause: .refused) }
            out += selectParents(now: now)
            // A refused ask leaves a link with no role: past the bound it goes now, not at housekeeping (an orphan
            // asking round after round gathered more than the bound between two passes: check seed 19, 200 peers).
            if shouldShed(peer) { return out + [.disconnect(peer)] + lose(peer, now: now) }
        case .repair(let seq):
            // From the child's repair budget: a child that lost a chunk may ask again, not make us resend the window.
            // It waits in the egress behind every live chunk.
            // Only a child may ask, or one this link fed within the repair horizon (its move or our shed crossed its
            // ask): a peer merely linked would otherwise pull the stream through repairs.
            let lately = (store.newest ?? 0) &- min(store.newest ?? 0, repairHorizonChunks)
            if childSet.contains(peer) || childSet.carried(to: peer, since: lately), let chunk = store[seq],
               childSet.takeRepair(for: peer, now: now, chunkDuration: config.chunkDuration) {
                egress.enqueue(chunk, to: peer, live: false, now: now)
            }
        case .leaving:
            // Its substreams move elsewhere while it still feeds them; if it goes first, they are orphaned then.
            members.setRoom(of: peer, 0)
            if parentSet.isParent(peer) {
                handOff.parentLeaving(peer, now: now)
                out += moveAway(now: now)
            }
        case .viewRequest, .view:
            break // between an observer and its node, never between peers
        }
        return out
    }

    private mutating func subscribe(_ child: PeerID, to substreams: [Int], fromSeq: UInt64) -> [MeshAction] {
        let valid = substreams.filter { $0 >= 0 && $0 < config.plan.count }
        // A substream named twice would be weighed twice (a stranger's list of 64 copies evicted 63 children).
        guard !leaving, !retired, child != config.me, valid.count == substreams.count, !valid.isEmpty,
              Set(valid).count == valid.count else {
            return [.send(child, .refuse(substreams))]
        }
        // Each substream on its own: never one not received or received through the child (a loop), and never
        // more than the uplink allows. What fits is taken, the rest refused: news of residual units is a second
        // old, and many joiners ask the same peers at once.
        var granted: [Int] = []
        var added = 0
        var out: [MeshAction] = []
        for s in valid where delay(of: s) != nil && !ancestors(of: s).contains(child) {
            // Children of one substream get each chunk one after another: a fan-out past this peer's share in that
            // substream puts the last of them a burst behind (and its subtree with it).
            let crowded = childSet.fanOut(of: s) >= fanOutLimit
            if childSet.feeds(child, s) {
                granted.append(s)
            } else if !crowded, added + 1 + unservedSubstreams(besides: granted + [s]) <= residualUnits {
                granted.append(s)
                added += 1
            } else if let weaker = childSet.weaker(than: child, askerSched: uploadingSched(of: child), in: s, now: lastNow,
                                                   sameSubstreamOnly: crowded, keepingEach: config.isOrigin,
                                                   sched: { members[$0]?.info.scheduleDelay }) {
                // Full: a peer with a much stronger uplink takes the weakest child's place, so strong peers end up
                // near the source (the snowball of design §3). The weaker one is told and re-parents at once.
                let lost = childSet.preempt(weaker, for: child, in: s, now: lastNow, keepingEach: config.isOrigin,
                                            sched: { members[$0]?.info.scheduleDelay })
                out.append(.send(weaker, .refuse([lost])))
                granted.append(s)
                added += 1 // the unit just freed is this one's
            } else if config.isOrigin, childSet.fanOut(of: s) < 2, childSet.mayPreempt(for: child, now: lastNow),
                      let (weakest, spare) = childSet.weakest(keepingEach: true, sparing: childSet.fanOut(of: s) + 2, excluding: child,
                                                              now: lastNow, sched: { members[$0]?.info.scheduleDelay }) {
                // The origin feeds every substream, to two children where its units allow: a full origin asked for one
                // it feeds to nobody or one gives it a unit of a substream it feeds to two more (the weakest child's),
                // whoever asks, as a preemption is spaced: an asker once in `preemptSpacing`, a child evicted once in
                // `preemptProtection`. A sole holder may be a mute that passes nothing on: its substream then is
                // nowhere else, and the peers it starved ask here.
                childSet.preempt(weakest, for: child, in: spare, now: lastNow)
                out.append(.send(weakest, .refuse([spare])))
                granted.append(s)
                added += 1
            } else if config.isOrigin, childSet.fanOut(of: s) == 1, isStarved(child, resumingAt: fromSeq),
                      let holder = childSet.replaceSoleHolder(of: s, for: child, now: lastNow) {
                // Askers fed elsewhere that have had nothing of this substream for long keep coming for one the
                // origin feeds to one child: that child's subtree passes nothing on, and its unit goes to the asker.
                out.append(.send(holder, .refuse([s])))
                granted.append(s)
                added += 1
            }
        }
        let refused = valid.filter { !granted.contains($0) }
        guard !granted.isEmpty else { return out + [.send(child, .refuse(refused))] }
        // A new child learns this peer's whole ancestry first, for its loop checks (others hear only the parents).
        if !childSet.contains(child) { out.append(.send(child, .announce(info, wantPeers: false))) }
        childSet.add(child, granted)
        out.append(.send(child, .accept(granted)))
        if !refused.isEmpty { out.append(.send(child, .refuse(refused))) }
        // What the child missed: from `fromSeq`, or for a newcomer from the newest random-access chunk; never more
        // than the repair horizon back, and never what this link has carried already.
        let plan = config.plan
        for chunk in store.backlog(from: fromSeq, in: { granted.contains(plan.substream(of: $0)) }) {
            out += sendChunk(chunk, to: child)
        }
        return out
    }

    /// Whether an asker is fed (its news tells a delay in some substream) and asks to resume a substream it has had
    /// nothing of for two parent timeouts: it cannot find it anywhere (a peer the mesh feeds well asks for what it
    /// just lost, a newcomer for the newest chunks).
    private func isStarved(_ asker: PeerID, resumingAt fromSeq: UInt64) -> Bool {
        guard fromSeq > 0, let newest = store.newest, members[asker]?.info.delays.contains(where: { $0 != nil }) == true else { return false }
        let bound = UInt64(max(0, 2 * config.parentTimeout / max(1, config.chunkDuration)))
        return newest >= bound && fromSeq <= newest - bound
    }

    /// Children this peer takes in one substream: as many as its uplink sends a chunk to within `fanOutBudget` (they
    /// get it one after another), one at least. A slow uplink (a chunk in 200 ms or more) feeds one child a substream.
    private var fanOutLimit: Int {
        max(1, min(config.capacityUnits, Int(Self.fanOutBudget / max(1, config.scheduleDelay))))
    }
    static let fanOutBudget: Int64 = 300_000

    /// An asker's sched, if it has upload to give (room in its news): only a peer that will feed others takes a
    /// weaker child's unit, or a leaf would push out the relays.
    private func uploadingSched(of peer: PeerID) -> Int64? {
        guard let news = members[peer]?.info, news.residualUnits > 0 else { return nil }
        return news.scheduleDelay
    }

    /// A chunk to a peer, unless this link has carried it already: into the egress, which hands it out when the
    /// uplink has room (at the end of the event), the newest chunks before older ones.
    private mutating func sendChunk(_ chunk: Chunk, to peer: PeerID) -> [MeshAction] {
        guard childSet.markSent(chunk.seq, to: peer) else { return [] }
        let live = chunk.seq &+ UInt64(2 * config.plan.count) > (store.newest ?? 0)
        egress.enqueue(chunk, to: peer, live: live, now: lastNow)
        return []
    }

    /// Units and sched from what this peer finds it can send (`findsUplink`); past `overload` of it, the children
    /// it cannot feed are let go, the weakest uploaders and then the youngest first, before they miss deadlines.
    private mutating func resize(now: Int64) -> [MeshAction] {
        guard config.findsUplink, let stream = config.streamRate, stream.bitsPerSecond > 0 else { return [] }
        let bits = egress.uplink.rate * 8
        if allowance == nil, !config.isOrigin { allowance = config.plan.count }
        let units = retired ? 0 : unitsOfUplink(config.headroom)
        let sched = min(max(1, SubstreamPlan.scheduleDelay(streamRate: stream, chunkDuration: config.chunkDuration,
                                                            uplink: BitRate(bitsPerSecond: max(1, bits)))), WireLimits.maxDelay - 1)
        if units != config.capacityUnits || sched != config.scheduleDelay {
            config.capacityUnits = units
            config.scheduleDelay = sched
            announcer.mayHaveChanged = true
        }
        let bearable = bearableUnits
        var out: [MeshAction] = []
        while childSet.usedUnits > bearable,
              let (child, s) = childSet.toShed(isOrigin: config.isOrigin, sched: { members[$0]?.info.scheduleDelay }) {
            childSet.remove(child, [s])
            out.append(.send(child, .refuse([s])))
        }
        childrenShed += out.count
        return out
    }

    /// The units this peer keeps children for before it sheds one: `overload` of what it finds it can send (its
    /// offered units are `headroom` of it); without finding its uplink, its units.
    public var bearableUnits: Int {
        guard config.findsUplink, let stream = config.streamRate, stream.bitsPerSecond > 0 else { return config.capacityUnits }
        return unitsOfUplink(config.overload)
    }

    /// Whole units in `share` of what this peer finds it can send, within its allowance (k for a joiner until told);
    /// the origin's k at least: a substream that leaves it nowhere cannot be had at all. Needs the stream's rate.
    private func unitsOfUplink(_ share: Double) -> Int {
        let unit = config.streamRate!.bitsPerSecond / Double(config.plan.count)
        let floor = config.isOrigin ? config.plan.count : 0
        let allowance = self.allowance ?? (config.isOrigin ? nil : config.plan.count)
        return max(floor, min(SubstreamPlan.wholeUnits(egress.uplink.rate * 8 * share / unit), allowance ?? .max))
    }

    /// The origin keeps a unit for every substream nobody takes from it yet: a substream that leaves the origin
    /// nowhere cannot be had at all. Other peers keep none.
    private func unservedSubstreams(besides taken: [Int]) -> Int {
        guard config.isOrigin else { return 0 }
        return config.plan.all.filter { s in !taken.contains(s) && !childSet.serves(s) }.count
    }

    private var repairHorizonChunks: UInt64 { UInt64(config.repairHorizon / max(1, config.chunkDuration)) }

    private mutating func receive(_ chunk: Chunk, from: PeerID?, now: Int64) -> [MeshAction] {
        let s = config.plan.substream(of: chunk.seq)
        if let from {
            // Taken only from the parent of its substream, or from a parent asked to repair it (the end of the stream
            // comes from every parent). The origin takes none: it has the stream.
            let asked = (store.wasAsked(chunk.seq) || chunk.isEndOfStream) && parentSet.isParent(from)
            guard !config.isOrigin, parentSet[s] == from || asked else { return [] }
        }
        guard chunk.epoch >= epoch else { return [] } // the old run's leftovers
        // Within the window: not behind it, nor further ahead of the newest than a window's worth.
        // Far ahead is taken only when the origin's signature vouches for it (this peer slept, say); unsigned, not.
        if chunk.epoch == epoch, chunk.seq < store.low || (config.verifier == nil && store.isFarAhead(chunk.seq)) {
            return []
        }
        var out: [MeshAction] = []
        if let from, chunk.epoch == epoch, parentSet[s] == from, parentSet.tally(chunk.seq, substream: s) {
            // A parent that loses a good part of what it took on (it claimed an uplink it does not have) goes.
            out.append(.send(from, .unsubscribe([s])))
            if from != config.originID { punish(from, now: now) }
            out += orphan([s], now: now, cause: .lossy)
        }
        guard chunk.epoch > epoch || store[chunk.seq] == nil else { return out }
        if let from, let key = config.verifier, !key.verifies(chunk) {
            // Not what the origin signed: dropped, and so is the peer that sent it.
            punish(from, now: now)
            return out + [.disconnect(from)] + lose(from, now: now)
        }
        if chunk.epoch > epoch {
            // A restarted origin, proven by its signature: what is held of the old run goes.
            if let from { members.setEpoch(of: from, chunk.epoch) }
            out += newEpoch(chunk.epoch, firstSeq: chunk.seq, duration: chunk.duration, now: now)
        }
        if let from, parentSet[s] == from {
            parentSet.fed(s, now: now)
            // Its newest: how late it comes, against the other parents (a backlog's older chunks do not count).
            if chunk.seq >= store.last(of: s) ?? 0 { parentSet.noteLag(s, now.saturatingSubtract(chunk.ingestTime)) }
        }
        if store.insert(chunk, substream: s, substreams: config.plan.count, now: now) { childSet.forgetSent(below: store.low, window: store.capacity) }
        // Chunks' durations jitter around the target: only a change of more than a tenth is a new duration (sched,
        // the repair horizon and the parent timeout follow it; a jitter would re-announce the news every chunk).
        if chunk.duration > 0, abs(chunk.duration - config.chunkDuration) * 10 > config.chunkDuration {
            config.chunkDuration = chunk.duration
            announcer.mayHaveChanged = true
            config.parentTimeout = max(config.parentTimeout, 3 * Int64(config.plan.count) * chunk.duration)
            store.horizon = repairHorizonChunks
            store.capacity = config.windowChunks
            config.size()
        }
        out.append(.deliver(chunk))
        for child in childSet.receivers(of: s, endOfStream: chunk.isEndOfStream) where child != from {
            out += sendChunk(chunk, to: child)
        }
        if from != nil, search.lateMoveDue(now: now), let late = parentSet.late(margin: lateMargin) {
            search.movedLate(now: now)
            out += moveLate(late, now: now)
        }
        return out
    }

    /// A parent whose chunks come this much later than another parent's is late: its substream moves.
    private var lateMargin: Int64 { max(600_000, 3 * config.chunkDuration) }

    /// A substream whose parent delivers late against the others (it claims more uplink than it has, or one above it
    /// does) moves to the best other candidate, make-before-break; the late one is not asked again for a while.
    private mutating func moveLate(_ s: Int, now: Int64) -> [MeshAction] {
        guard let old = parentSet[s], parentSet.pending[s] == nil, !leaving else { return [] }
        members.refused(by: old, substreams: [s], now: now)
        guard let to = ParentSelector.select(needed: [s], from: candidates(), me: config.me)[s], to != old else { return [] }
        search.cause = .late
        return ask([s: to], now: now)
    }

    // MARK: timers

    private mutating func tick(now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        if now >= nextHousekeeping {
            nextHousekeeping = now + 1_000_000
            out += housekeeping(now: now)
        }
        out += gossip(now: now)
        if announcer.mustSend(now: now) { out += announceDownstream(now: now) }
        guard !config.isOrigin else { return out + announceIfChanged(now: now) }
        if search.probeDue(now: now) {
            // Short of parents, a probe a second; fed, one an improvement period, of a candidate that could be a move.
            search.probed(now: now, fed: hasAllParents)
            out += probe()
        }
        if !hasAllParents, let bootstrap = config.bootstrap, !members.isLinked(bootstrap), search.bootstrapRetry(now: now) {
            out.append(dial(bootstrap, for: .bootstrap))
        }
        // A substream whose parent stays connected but forwards nothing is as good as orphaned.
        let starved = parentSet.starved(now: now, timeout: config.parentTimeout)
        if !starved.isEmpty {
            // Blame needs a stream that flows elsewhere, or a parent that never delivered at all: when parents that
            // had delivered go quiet all at once, the source or this peer stalled, and they are not to blame.
            let flowing = parentSet.flowing(now: now, timeout: config.parentTimeout)
            for (parent, substreams) in Dictionary(grouping: starved, by: { parentSet[$0]! }).sorted(by: { $0.key < $1.key }) {
                out.append(.send(parent, .unsubscribe(substreams)))
                // It did not deliver: not a parent to take again for a while.
                if flowing || parentSet.neverFed(substreams) { punish(parent, now: now) }
            }
            out += orphan(starved, now: now, cause: .starved)
        }
        // A subscribe is answered within a round trip or two; past that (at least a second), try someone else.
        let overdue = parentSet.pending.filter { now >= pendingDeadline($0.value) }.map { ($0.key, $0.value.peer) }
        for (s, peer) in parentSet.expired(overdue) {
            members.setRoom(of: peer, 0)
            // Its yes may still be on the way: withdraw, so it does not keep units for us.
            if members.isLinked(peer) { out.append(.send(peer, .unsubscribe([s]))) }
        }
        out += selectParents(now: now)
        out += moveAway(now: now)
        if search.improvementDue(now: now) { out += improve(now: now) }
        // Short of parents, or moving off a leaving one: ask a linked peer for candidates more often than the gossip round does (the bootstrap
        // every other time), so a joiner walks the mesh until it finds room.
        if !hasAllParents || handOff.isMoving, !members.linked.isEmpty, let bootstrapsTurn = search.peerAsk(now: now) {
            let asked = config.bootstrap.flatMap { members.isLinked($0) && bootstrapsTurn ? $0 : nil }
                ?? members.linked[Int(rng.next() % UInt64(members.linked.count))]
            out.append(announceTo(asked, wantPeers: true))
        }
        out += announceIfChanged(now: now)
        out += repair(now: now)
        return out
    }

    /// Once a second: forgetting old news, pruning timers, closing idle links.
    private mutating func housekeeping(now: Int64) -> [MeshAction] {
        let typical = members.typicalLinkDelay
        defer { if members.typicalLinkDelay != typical { announcer.mayHaveChanged = true } } // a parent's delay may be that guess
        childSet.prune(now: now)
        if !dialling.isEmpty { dialling = dialling.filter { now - $0.value < 30_000_000 } }
        var out: [MeshAction] = []
        // A link whose chunk does not leave cannot drain (its peer does not read): it goes, the others never wait.
        for peer in egress.stalled(now: now) {
            out.append(.disconnect(peer))
            out += lose(peer, now: now)
        }
        penalties.prune(now: now) { members.knows($0) }
        members.prune(now: now)
        return out + growAllowance(now: now) + closeIdleLinks(now: now)
    }

    /// When a subscribe not answered is given up.
    private func pendingDeadline(_ p: (peer: PeerID, since: Int64)) -> Int64 {
        p.since + max(1_000_000, 4 * (members[p.peer]?.linkDelay ?? 0)) + 1
    }

    /// When this peer next has something to do (design §7: the driver wakes it then, with `.tick`, instead of
    /// ticking every peer on a clock). Events in between may make it sooner: read it after each event.
    public private(set) var nextWakeup: Int64 = 0

    private func wakeup() -> Int64 {
        var at = min(nextHousekeeping, nextGossip)
        if let paced = egress.nextWakeup { at = min(at, paced) }
        if let news = announcer.wakeup { at = min(at, news) }
        if !config.isOrigin {
            // Every wait has its own deadline, kept by the part that waits (no pace in busy states): a search, a
            // probe or an exploring link, the bootstrap, an ask for candidates, a repair, a subscribe's answer.
            if !hasAllParents {
                if !leaving, let searching = search.nextSearch(needed: parentSet.neededMask, version: members.version) {
                    at = min(at, searching)
                }
                if let bootstrap = config.bootstrap, !members.isLinked(bootstrap) { at = min(at, search.nextBootstrapTry) }
            }
            if !hasAllParents || handOff.isMoving, !members.linked.isEmpty { at = min(at, search.nextPeerAsk) }
            if !parentSet.isEmpty, let repair = store.repairWakeup { at = min(at, repair) }
            for p in parentSet.pending.values { at = min(at, pendingDeadline(p)) }
            // A probe round when there is a candidate to probe, or a peer to explore (short of parents).
            let mayProbe = members.hasProbeCandidates || (!hasAllParents && !leaving)
            if let searching = search.wakeup(fed: hasAllParents, mayProbe: mayProbe) { at = min(at, searching) }
            if let starving = parentSet.nextStarvation(timeout: config.parentTimeout) { at = min(at, starving) }
            if let moving = handOff.wakeup { at = min(at, moving) }
        }
        // Urgent news waits on its spacing: weighed last, and only when it would wake this peer sooner.
        if announcer.urgentWakeup < at, urgentNews { at = announcer.urgentWakeup }
        return max(at, lastNow + 1)
    }

    /// A link to open, and why (for the report's counts).
    private mutating func dial(_ peer: PeerID, for cause: Dial? = nil) -> MeshAction {
        if let cause { dialCauses[cause, default: 0] += 1 }
        dialling[peer] = lastNow
        return .connect(peer)
    }

    /// Design §3: candidates are probed. A link to the most powerful candidate not measured yet measures its delay
    /// (the driver pings every link), so choices and moves weigh real delays; the link closes when idle.
    private mutating func probe() -> [MeshAction] {
        guard !leaving, members.mayProbe(now: lastNow) else { return [] }
        // Only the newest news is weighed: a short list, not every peer heard of. A fed peer probes only a candidate
        // that could be a move: one that, over a link of no delay at all, would beat its worst substream by the margin.
        let worst = hasAllParents ? delayFromSource : nil
        let unmeasured = members.probeCandidates { parentSet.awaitingLink[$0] != nil }.compactMap { candidate($0) }.filter { c in
            guard let worst else { return true }
            return config.plan.all.contains { s in
                c.canFeed(s, to: config.me) && worst - (c.delayVia(s) - c.linkDelay)
                    > ParentSelector.gainNeeded(on: worst, margin: config.hysteresis, relativeMargin: config.relativeHysteresis)
            }
        }
        guard let best = unmeasured.max(by: { a, b in
            let (pa, pb) = (a.power(needing: config.plan.all, me: config.me), b.power(needing: config.plan.all, me: config.me))
            return pa != pb ? pa < pb : a.id > b.id
        }) else { return explore() }
        members.startProbe(best.id, now: lastNow)
        return [dial(best.id, for: .probe)]
    }

    /// Short of parents with no candidate to probe: a link to a peer heard of at random, whose answer to this peer's
    /// ask names its own neighbours. A joiner walks the mesh this way until it finds room.
    private mutating func explore() -> [MeshAction] {
        guard !hasAllParents, search.lastFoundNoOne else { return [] }
        let options = members.news.keys.filter { !members.isLinked($0) && !isAvoided($0) && parentSet.awaitingLink[$0] == nil }
        guard !options.isEmpty else { return [] }
        let id = options.sorted()[Int(rng.next() % UInt64(options.count))]
        members.startProbe(id, now: lastNow, explore: true)
        return [dial(id, for: .explore)]
    }

    /// A link to let go at once: no role, not this peer's own probe or needed bootstrap, and more such links than
    /// `maxLinks`.
    private func shouldShed(_ peer: PeerID) -> Bool {
        members.linked.count > config.maxLinks && !hasRole(peer) && !members.probing.contains(peer) && (hasAllParents || peer != config.bootstrap)
            && idleLinkCount > config.maxLinks
    }

    /// The link idle longest, if idle `idleGrace` or more (as housekeeping last saw it), other than `peer`: never
    /// this peer's own probe, nor its bootstrap while it is needed.
    private func staleIdleLink(besides peer: PeerID, now: Int64) -> PeerID? {
        idleSince.filter { id, since in
            id != peer && now - since >= Self.idleGrace && members.isLinked(id) && !hasRole(id) && !members.probing.contains(id)
                && (hasAllParents || id != config.bootstrap)
        }.min { ($0.value, $0.key) < ($1.value, $1.key) }?.key
    }

    /// Links with no role (joiners asking, probes, neighbours left over): these are what `maxLinks` bounds.
    private var idleLinkCount: Int { members.linked.count - linksWithARole }

    /// Links to parents, children and peers asked to be one: bounded by the uplink's units and k, not by `maxLinks`.
    /// Counted over the roles, not the links (the checker asks after every event).
    public var linksWithARole: Int {
        var others: [PeerID] = [] // a few: k parents and asks at most
        for peer in parentSet.involvedPeers where !childSet.contains(peer) && !others.contains(peer) && members.isLinked(peer) {
            others.append(peer)
        }
        return childSet.ids.reduce(0) { members.isLinked($1) ? $0 + 1 : $0 } + others.count
    }

    /// Peers linked for a reason: parents, children, and those asked to be one.
    private func hasRole(_ peer: PeerID) -> Bool { childSet.contains(peer) || parentSet.involves(peer) }

    private mutating func closeIdleLinks(now: Int64) -> [MeshAction] {
        let roles = parentSet.involved.union(childSet.ids)
        var busy = roles
        // The bootstrap is kept only while it is needed: a peer with its parents owes it nothing (design §7).
        if !hasAllParents, let bootstrap = config.bootstrap { busy.insert(bootstrap) }
        let idle = members.linked.reduce(0) { roles.contains($1) ? $0 : $0 + 1 }
        let timeout = idle > config.maxLinks ? Self.crowdedIdleTimeout : Self.idleLinkTimeout
        for peer in idleSince.keys where !members.isLinked(peer) || busy.contains(peer) { idleSince.removeValue(forKey: peer) }
        var out: [MeshAction] = []
        for peer in members.linked where !busy.contains(peer) {
            // A probe has done its job once the delay is measured; the news of the peer is kept.
            if members.probeDone(peer) {
                idleSince.removeValue(forKey: peer)
                members.closeProbe(peer)
                childSet.drop(peer)
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
    /// Over parents', children's and probes' links, so the view drifts through the neighbourhood. The origin too:
    /// the view it answers joiners from must reach past its own children.
    private mutating func gossip(now: Int64) -> [MeshAction] {
        guard now >= nextGossip else { return [] }
        // A peer that has settled (all its parents, its improvement rounds finding nothing and backing off) needs
        // fresh candidates less often: its gossip backs off with them, up to `maxGossipBackoff` periods.
        let settled = !config.isOrigin && hasAllParents ? min(Self.maxGossipBackoff, search.backoffPeriods) : 1
        nextGossip = now + jittered(config.gossipPeriod * max(1, settled))
        guard !members.linked.isEmpty else { return [] }
        return [announceTo(members.linked[Int(rng.next() % UInt64(members.linked.count))], wantPeers: true)]
    }

    /// This peer's news, to every link, when it changed since it last went out.
    private mutating func announceIfChanged(now: Int64) -> [MeshAction] {
        guard announcer.mayAnnounceChange(now: now, urgent: urgentNews) else { return [] }
        return announceDownstream(now: now)
    }

    /// Urgent news waits (`Announcer.isUrgent`): room that came or went, a substream gained or lost, a new run.
    private var urgentNews: Bool {
        announcer.urgent(hasRoom: !leaving && residualUnits > 0, epoch: epoch, substreams: config.plan.count) { delay(of: $0) != nil }
    }

    /// This peer's news to one peer; asking for its peers lets its answer in.
    private mutating func announceTo(_ peer: PeerID, wantPeers: Bool) -> MeshAction {
        if wantPeers { members.owe(peer) }
        return .send(peer, .announce(childSet.contains(peer) ? info : info.brief, wantPeers: wantPeers))
    }

    /// News goes out when it changed (design §7), at once, not on a clock (`Announcer`): children learn a new
    /// ancestry at once, every linked peer a new parent, room or a delay that moved by more than the hysteresis.
    private mutating func announceDownstream(now: Int64) -> [MeshAction] {
        guard !announcer.holdsBack(now: now) else { return [] }
        let me = info
        guard let (toKids, toAll) = announcer.decide(me, now: now) else { return [] }
        let brief = me.brief
        return members.linked.compactMap { id in
            if childSet.contains(id) { return toKids ? .send(id, .announce(me, wantPeers: false)) : nil }
            return toAll ? .send(id, .announce(brief, wantPeers: false)) : nil
        }
    }

    /// How long an asked repair is waited for before it is asked again (of the next parent): two chunks' time, and
    /// never less than a first ask waits (a chunk's duration comes from the source and may be tiny).
    private var repairRetry: Int64 { max(2 * config.chunkDuration, ChunkWindow.firstAskAfter) }

    /// Pulls chunks missing behind the newest ones from a parent, while they can still be on time.
    private mutating func repair(now: Int64) -> [MeshAction] {
        guard !parentSet.isEmpty else { return [] }
        // Worth pulling: the chunks of the last `repairHorizon` (past that a playout deadline has surely gone by).
        let due = store.repairsDue(now: now, substreams: config.plan.count, retryAfter: repairRetry)
        guard !due.isEmpty else { return [] }
        let sources = parentSet.distinct
        // Each try asks the next parent: the one asked first may be the one that lost it.
        return due.map { seq, tries in .send(sources[(Int(seq % UInt64(sources.count)) + tries - 1) % sources.count], .repair(seq)) }
    }

    // MARK: parents

    /// Gives every substream without a parent one, by power.
    private mutating func selectParents(now: Int64) -> [MeshAction] {
        guard !config.isOrigin, !leaving, !parentSet.isComplete else { return [] }
        let needed = parentSet.needed
        guard !needed.isEmpty else { return [] }
        // After a search that found no one: not again within a tick, and not before something new is heard (but
        // once a second anyway). A peer short of parents hears a lot; each search weighs every candidate.
        // The same bits the peer's wake-up is read from (`wakeup`): a search it is woken for is one it makes.
        let mask = parentSet.neededMask
        if search.rests(needed: mask, version: members.version, now: now) { return [] }
        var plan = ParentSelector.select(needed: needed, from: candidates(), me: config.me)
        // A substream no peer with room has fed for `ParentSearch.fullAskAfter` (the few that have it are full): ask the
        // nearest full one, which gives a weaker child's unit to a stronger asker (the snowball of design §3). Each
        // full peer at most once in `fullAskSpacing`. Not at once: after a loss, room usually turns up in a moment.
        let inVain = search.weighed(foundAny: !plan.isEmpty, now: now)
        for s in needed where plan[s] == nil && inVain {
            plan[s] = askFull(for: s, now: now)
        }
        // No full peer left to ask either: a peer avoided for one fault rather than none. A parent blamed for a loss
        // (maybe one above it: a leaf fed by a liar passes its gaps on) still feeds most; on a loaded machine a leaf
        // that had blamed every peer with room went 9 s without (CI, stop 30).
        let bare = needed.filter { plan[$0] == nil }
        if !bare.isEmpty, inVain {
            plan.merge(lastResort(for: bare), uniquingKeysWith: { chosen, _ in chosen })
        }
        search.searched(askedAny: !plan.isEmpty, needed: mask, version: members.version, now: now)
        return ask(plan, now: now)
    }

    /// The nearest full peer that could feed `s`, asked to give a weaker child's unit (each at most once in
    /// `fullAskSpacing`); nil if none.
    private mutating func askFull(for s: Int, now: Int64) -> PeerID? {
        let full = members.news.keys.filter { members.mayAskFull($0, now: now) }.sorted().compactMap { candidate($0) }
            .filter { $0.residualUnits <= 0 && $0.canFeed(s, to: config.me) }
        guard let nearest = full.min(by: { ($0.delayVia(s), $0.id) < ($1.delayVia(s), $1.id) }) else { return nil }
        members.askedFull(nearest.id, now: now)
        return nearest.id
    }

    /// Parents for `needed` among the avoided peers with room, those with the fewest offences, each taken back once
    /// an avoidance (a mute that starves it again is not retried) and none merely unreachable; empty if none.
    private mutating func lastResort(for needed: [Int]) -> [Int: PeerID] {
        let avoided = members.news.filter { $0.value.info.residualUnits > 0 && penalties.mayReprieve($0.key, now: lastNow) }
        guard let fewest = avoided.keys.map(penalties.offenses).min() else { return [:] }
        let pool = avoided.filter { penalties.offenses($0.key) == fewest }.sorted { $0.key < $1.key }
            .compactMap { candidate($0.key, $0.value, evenAvoided: true) }
        let plan = ParentSelector.select(needed: needed, from: pool, me: config.me)
        for peer in Set(plan.values) { penalties.reprieve(peer) }
        return plan
    }

    /// The substreams of a leaving parent, asked of others while it still feeds them: the new parent's yes
    /// unsubscribes the old one, as for an improvement. Tried again a few times a second until done; after a
    /// second without a peer with room, a full one is asked, as a search does (the hand-off has a few seconds).
    private mutating func moveAway(now: Int64) -> [MeshAction] {
        let parents = parentSet
        guard let mayAskFull = handOff.round(now: now, isParent: { parents.isParent($0) }) else { return [] }
        let needed = parentSet.parents.filter { handOff.isMovingFrom($0.value) && parentSet.pending[$0.key] == nil }.keys.sorted()
        guard !needed.isEmpty else { return [] }
        var plan = ParentSelector.select(needed: needed, from: candidates(), me: config.me)
        for s in needed where plan[s] == nil && mayAskFull {
            plan[s] = askFull(for: s, now: now)
        }
        search.cause = .leaving
        return ask(plan, now: now)
    }

    /// One move towards a lower delay, make-before-break. A round that finds none waits twice as long for the next
    /// (a peer at its local minimum stays put); a move brings the pace back.
    private mutating func improve(now: Int64) -> [MeshAction] {
        search.nextRound(at: now + jittered(search.improvementPeriod))
        guard hasAllParents, parentSet.pending.isEmpty else { return [] }
        search.backOff()
        // A parent taken as a last resort is avoided, and is weighed all the same: a better one may turn up.
        let current = Dictionary(uniqueKeysWithValues: parents.compactMap { s, p in candidate(p, evenAvoided: true).map { (s, $0) } })
        guard current.count == parents.count else { return [] }
        // Candidates with room, whose link delay was measured: a move is made on a known delay, not on a guess the
        // next ping undoes. Not full ones: asking them to evict a weaker child moved whole subtrees for a few
        // milliseconds (the simulator's delays got worse, not better); the snowball happens when a peer chooses.
        guard let move = ParentSelector.improvement(parents: current, candidates: candidates(measuredOnly: true), me: config.me,
                                                    margin: config.hysteresis, relativeMargin: config.relativeHysteresis)
        else { return [] }
        search.resumePace()
        search.cause = .improve
        return ask([move.substream: move.to], now: now)
    }

    private mutating func ask(_ plan: [Int: PeerID], now: Int64) -> [MeshAction] {
        var out: [MeshAction] = []
        var byPeer: [PeerID: [Int]] = [:]
        for (s, p) in plan { byPeer[p, default: []].append(s) }
        for (peer, substreams) in byPeer.sorted(by: { $0.key < $1.key }) {
            if let room = members[peer]?.info.residualUnits { members.setRoom(of: peer, room - substreams.count) }
            let linked = members.isLinked(peer)
            if parentSet.ask(peer, for: substreams, now: now, linked: linked) {
                out.append(dial(peer, for: .parent))
            }
            if linked { out.append(.send(peer, .subscribe(substreams.sorted(), fromSeq: store.resumeSeq(for: Set(substreams))))) }
        }
        return out
    }

    /// A link is gone: its news is forgotten (so it is not chosen again at once), its children go, and the
    /// substreams it fed are re-parented at once.
    private mutating func lose(_ peer: PeerID, now: Int64) -> [MeshAction] {
        idleSince.removeValue(forKey: peer)
        members.forget(peer)
        childSet.drop(peer)
        egress.forget(peer, now: lastNow)
        return orphan(parentSet.drop(peer), now: now, cause: .lost)
    }

    /// The peer dialled as `old` calls itself `new`: the link and what waits on it are the new name's. Its news
    /// comes again under the new name; the driver dials the old address to reach it again. Never into the origin's
    /// name (unless it is the origin's link), nor out of its penalties.
    private mutating func rename(_ old: PeerID, to new: PeerID) {
        guard old != new, members.isLinked(old), !members.isLinked(new), new != config.me,
              new != config.originID || old == config.originID, new != config.bootstrap else { return }
        penalties.rename(old, to: new)
        members.rename(old, to: new)
        if config.bootstrap == old { config.bootstrap = new }
        if config.originID == old { config.originID = new }
        parentSet.rename(old, to: new)
        childSet.rename(old, to: new)
        egress.rename(old, to: new)
        handOff.rename(old, to: new)
        idleSince.removeValue(forKey: old)
    }

    /// A peer failed us (stopped forwarding, lost chunks, broke the link's rules): not a parent for a while,
    /// twice as long each time it happens again. The origin too (a peer that relays the origin's proof is taken
    /// for it, and may starve its victim), but not for losing chunks: its uplink is the one way in, and a peer moves
    /// away from it then without shunning it (if every peer did, nothing would enter the mesh at all).
    /// A parent punished in one substream may go on feeding others: its delays there still count (were they dropped,
    /// its whole subtree here would lose its delays in them), and it is not taken again for a while.
    private mutating func punish(_ peer: PeerID, now: Int64) {
        penalties.punish(peer, now: now)
    }

    private func isAvoided(_ peer: PeerID) -> Bool { penalties.isAvoided(peer, now: lastNow) }

    /// A new run of the origin (at the origin, or as its chunks show it): what is held of the old one goes.
    private mutating func startRun(_ new: UInt64) {
        epoch = new
        announcer.mayHaveChanged = true
        store.reset()
        childSet.forgetSent()
    }

    /// A restarted origin: what is held of the old run is dropped, and so are parents still on it.
    private mutating func newEpoch(_ new: UInt64, firstSeq: UInt64, duration: Int64, now: Int64) -> [MeshAction] {
        guard !config.isOrigin, new > epoch else { return [] }
        // Peers that starved or failed in the outage were not to blame for it, nor were those that fed nothing before
        // the run began (a joiner early for the origin's start). A joiner that came into a run under way blamed them
        // rightly: a mute parent it dropped before its first chunk stays dropped (cleared, a leaf took it back in 3 s).
        let runAge = Double(firstSeq) * Double(max(1, duration > 0 ? duration : config.chunkDuration))
        if epoch != 0 || runAge < Double(now - (startedAt ?? now)) { penalties.clear() }
        startRun(new)
        // A joiner's first chunk starts its first run: its asks of peers already on that run stand (voiding them
        // turned their yeses away and lost the backlog they carried).
        parentSet.newRun(now: now, onNewRun: { (self.members[$0]?.info.epoch ?? 0) >= new })
        var out: [MeshAction] = []
        let stale = parents.filter { (members[$0.value]?.info.epoch ?? 0) < new }
        for (parent, substreams) in Dictionary(grouping: stale.keys, by: { stale[$0]! }).sorted(by: { $0.key < $1.key }) {
            out.append(.send(parent, .unsubscribe(substreams.sorted())))
        }
        return out + orphan(stale.keys.sorted(), now: now, cause: .epoch)
    }

    /// These substreams lost their parent: find new ones at once.
    private mutating func orphan(_ orphaned: [Int], now: Int64, cause: ParentChange) -> [MeshAction] {
        guard !orphaned.isEmpty else { return [] }
        changeCauses[cause, default: 0] += 1
        parentSet.orphan(orphaned)
        parentChanges += 1
        return [.parentsChanged(parents)] + announceDownstream(now: now) + selectParents(now: now)
    }

    // MARK: candidates

    private func candidate(_ id: PeerID, _ known: Membership.News? = nil, evenAvoided: Bool = false) -> CandidateParent? {
        guard evenAvoided || !isAvoided(id), !handOff.isMovingFrom(id), let news = known ?? members[id], news.info.epoch >= epoch else { return nil }
        let k = config.plan.count
        // What it refused lately is not asked of it again (it may feed the rest).
        let refused = members.refusedLately(id, now: lastNow)
        var delays = news.info.delays.count > k ? Array(news.info.delays.prefix(k)) : news.info.delays
        for s in refused where s < delays.count { delays[s] = nil }
        guard delays.contains(where: { $0 != nil }) else { return nil }
        var c = CandidateParent(id: id, delays: delays,
                                linkDelay: news.linkDelay ?? members.typicalLinkDelay, scheduleDelay: news.info.scheduleDelay,
                                residualUnits: news.info.residualUnits, ancestors: news.info.ancestors)
        // My own child in a substream is below me there, whatever its news says.
        for s in childSet.substreams[id] ?? [] where s < k {
            while c.ancestors.count <= s { c.ancestors.append([]) }
            c.ancestors[s].append(config.me)
        }
        return c
    }

    /// Candidates with a unit to spare: only those can take a substream. With `measuredOnly`, only those whose link
    /// delay is known.
    private func candidates(measuredOnly: Bool = false) -> [CandidateParent] {
        members.news.lazy.filter { _, k in k.info.residualUnits > 0 && (!measuredOnly || k.linkDelay != nil) }.sorted { $0.key < $1.key }.compactMap { id, k in
            candidate(id, k).map { var c = $0; c.residualUnits = max(1, c.residualUnits); return c }
        }
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
        return Self.mix(state)
    }

    /// SplitMix64's finalizer: every bit of the input reaches every bit of the output, in a few instructions.
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
