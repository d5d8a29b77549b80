import MeshCore
import NIOCore

/// The node that held the most links, at the moment it did: what those links were for.
public struct LinksHeld: Codable, Sendable {
    /// Its name (`p1234`, or the origin's).
    public var peer: String
    public var isOrigin: Bool
    /// Simulated time, µs.
    public var at: Int64
    /// Links it opened, and links others opened to it.
    public var opened: Int
    public var byOthers: Int
    /// Its children and distinct parents then.
    public var children: Int
    public var parents: Int
}

/// One simulated peer: its core, when it asked to be woken, and what it sent and heard.
final class SimulatedPeer {
    var core: MeshPeer
    var wakeAt: Int64 = .max
    var wakeups = 0
    var traffic = ControlTraffic()
    var links = 0
    /// Of `links`, those the other side opened.
    var linksIn = 0
    var firstChunkAt: Int64?
    let joinedAt: Int64
    /// Its modelled uplink, bytes/s: what it hands its links leaves one chunk after another at this pace.
    let uplink: Double
    /// The chunk its uplink is sending, to whom (and its number, as its end is booked), and what waits for the
    /// uplink after it, in turn.
    var sending: (to: PeerID, chunk: Chunk, number: Int)?
    var transmissions = 0
    var waiting: [(to: PeerID, chunk: Chunk)] = []

    init(_ core: MeshPeer, at now: Int64, uplink: Double) {
        self.core = core
        joinedAt = now
        self.uplink = uplink
    }
}

/// Control messages and their wire bytes (frame headers aside), one way or the other.
public struct ControlTraffic: Sendable, Equatable {
    public var messagesOut = 0, messagesIn = 0, bytesOut = 0, bytesIn = 0
    public var messages: Int { messagesOut + messagesIn }
    public var bytes: Int { bytesOut + bytesIn }
}

/// The simulated peers' cores, read by id or by name.
public struct SimulatedPeers: Sequence {
    fileprivate let boxes: [PeerID: SimulatedPeer]
    fileprivate let names: PeerNames
    public subscript(id: PeerID) -> MeshPeer? { boxes[id]?.core }
    public subscript(name: PeerName) -> MeshPeer? { names.existing(name).flatMap { boxes[$0]?.core } }
    public var count: Int { boxes.count }
    public func makeIterator() -> AnyIterator<(key: PeerID, value: MeshPeer)> {
        var inner = boxes.makeIterator()
        return AnyIterator { inner.next().map { (key: $0.key, value: $0.value.core) } }
    }
}

/// A simulated network for `MeshPeer`s, the same core the relays run: per-link delay, seeded loss, time stepped
/// to the next event. (After quinn-proto's test `Pair` and str0m's netem: loss is a closure editing the traffic.)
/// Each peer has an uplink of its own: the chunks its core's egress hands out leave one after another at its pace
/// (the core hears `.sent` when each has), and arrive `oneWayDelay` after that. Each peer is woken
/// when its core asks (`MeshPeer.nextWakeup`), as `MeshNode` does. Every core numbers peers from one table
/// (`names`), so messages go from core to core as they are, never through names.
public final class SimulatedMesh {
    private struct Delivery {
        let target: PeerID
        /// Nil: the target's uplink is done with the chunk it was sending, the `transmission`th.
        let event: MeshEvent?
        var transmission = 0
    }

    /// A link between two peers, either way round. Hashed as `PeerID` is (its numbers mixed with the table's seed,
    /// no SipHash): looked up for every message, it was 2 % of a checker's run.
    private struct Link: Hashable {
        let a: PeerID, b: PeerID
        init(_ x: PeerID, _ y: PeerID) { (a, b) = x < y ? (x, y) : (y, x) }
        func _rawHashValue(seed: Int) -> Int {
            Int(truncatingIfNeeded: SplitMixRandom.mix(SplitMixRandom.mix(a.number ^ UInt64(truncatingIfNeeded: seed)) ^ b.number))
        }
    }

    public private(set) var now: Int64 = 0
    private var boxes: [PeerID: SimulatedPeer] = [:]
    public var peers: SimulatedPeers { SimulatedPeers(boxes: boxes, names: names) }
    /// `read` on a live peer's core in place (`peers[id]` copies it, and so does a borrow of it: a checker reading
    /// it after every event spent a quarter of its time copying cores). Inout only to pass it by address.
    func withCore<R>(_ id: PeerID, _ read: (inout MeshPeer) -> R) -> R? {
        guard let box = boxes[id] else { return nil }
        return read(&box.core)
    }
    /// The peers' names, one table for all the cores.
    public private(set) var names = PeerNames()
    /// Bytes a peer's name takes on the wire, as the simulator names them (`p1234`); a real `HOST:PORT` is 10 or so
    /// more (`192.168.1.20:7000`).
    public static let nameBytes = 6
    public private(set) var alive: Set<PeerID> = []
    /// Live peers in the order they joined.
    private var tickOrder: [PeerID] = []
    private var queue = EventQueue<Delivery>()
    /// Open links, with the peer that opened each.
    private var links: [Link: PeerID] = [:]
    /// Who closed each link that went down lately, and when (a peer drops what comes after it closed); kept a few
    /// seconds, longer than anything is on its way.
    private var closedBy: [Link: (by: PeerID, at: Int64)] = [:]
    private var nextClosedPrune: Int64 = 0
    /// The origin's chunks get their run and seq here, as at a real origin (unsigned: no peer checks).
    private var stamper = OriginStamper(epoch: 1)
    private var nextChunkAt: Int64 = 0
    /// The most links any peer held at once, over the whole run, and who held them then.
    public private(set) var maxLinks = 0
    public private(set) var maxLinksHolder: LinksHeld?
    /// Wake-ups handled (the core's own timers).
    public private(set) var wakeups = 0
    /// Times a peer's core was woken (its own ticks), for as long as it lived.
    public func wakeups(of name: PeerName) -> Int { boxes[id(name)]?.wakeups ?? 0 }
    /// Arrival time of each chunk at each peer, when `recordDeliveries` (small runs and tests).
    public private(set) var delivered: [PeerID: [UInt64: Int64]] = [:]
    public var recordDeliveries = true
    /// Called with every event a core handles and the actions it answered (replays with debug traces).
    public var trace: ((Int64, PeerID, MeshEvent, [MeshAction]) -> Void)?

    /// Prints what each core decides, one line an event (time in ms, peer, event, actions; chunks, write completions
    /// and wake-ups that decide nothing left out), peers by name: `MESH_LOG=1` in the tests that take it.
    public func logDecisions(_ print: @escaping (String) -> Void = { Swift.print($0) }) {
        trace = { [unowned self] now, id, event, actions in
            let said = actions.filter {
                switch $0 {
                case .sendChunk, .deliver: false
                default: true
                }
            }
            switch event {
            case .chunk, .sent, .tick, .linkDelay: if said.isEmpty { return }
            default: break
            }
            print("\(now / 1000) \(self.name(id)) <- \(self.named("\(event)")) => \(self.named("\(said)"))")
        }
    }

    /// A core's value as text, each `#number` as the peer's name and without module prefixes.
    private func named(_ text: String) -> String {
        var out = ""
        var rest = Substring(text.replacingOccurrences(of: "ChunkMesh.", with: "").replacingOccurrences(of: "MeshMessageOf<PeerID>.", with: "")
            .replacingOccurrences(of: "MeshAction.", with: "").replacingOccurrences(of: "PeerInfoOf<PeerID>", with: "Info"))
        while let hash = rest.firstIndex(of: "#") {
            out += rest[..<hash]
            let digits = rest[rest.index(after: hash)...].prefix { $0.isNumber }
            if let number = UInt64(digits) { out += names.describe(PeerID(number)) } else { out += "#" + digits }
            rest = rest[rest.index(hash, offsetBy: 1 + digits.count)...]
        }
        return out + rest
    }
    /// Called for each chunk a peer gets for the first time, with the time it arrived.
    public var onDeliver: ((PeerID, Chunk, Int64) -> Void)?
    public var oneWayDelay: (PeerID, PeerID) -> Int64 = { _, _ in 5_000 }
    /// Return true to drop a chunk on its way from one peer to another.
    public var dropChunk: (PeerID, PeerID, UInt64) -> Bool = { _, _, _ in false }
    /// Hostile peers that pass for the origin: each relays the origin's proof to every peer it links with, which
    /// then takes it for the origin (`.originIs` after the link is up), as a real node does on a relayed welcome.
    public var passesForTheOrigin: Set<PeerID> = []
    /// The origin publishes nothing before this time (a source that starts after its viewers came), then from seq 0.
    public var publishFrom: Int64 = 0
    public let origin: PeerID
    public let chunkDuration: Int64
    /// The stream's rate: chunks carry its bytes, which the peers' uplinks must carry.
    public let streamRate: BitRate
    private let originUnits: Int
    private let originUplink: BitRate?
    private let originScheduleDelay: Int64
    private let payload: ByteBuffer
    /// The origin's run: a restart starts a new one, from seq 0.
    public var epoch: UInt64 { stamper.epoch }

    public let plan: SubstreamPlan

    /// `originUplink`: the origin's uplink, which it declares and sizes itself from as relays do (`originUnits` and
    /// `originScheduleDelay` are then where it starts); nil: `originUnits` as given, on an uplink of one chunk per
    /// `originScheduleDelay`.
    public init(originUnits: Int, originScheduleDelay: Int64 = 1_000, chunkDuration: Int64 = 200_000, substreams: Int = 4,
                streamRate: BitRate = BitRate(bitsPerSecond: 1_000_000), originUplink: BitRate? = nil) {
        self.originUnits = originUnits
        self.originUplink = originUplink
        self.plan = SubstreamPlan(count: substreams)
        self.originScheduleDelay = originScheduleDelay
        self.chunkDuration = chunkDuration
        self.streamRate = streamRate
        // One buffer for every chunk (copies share it): a chunk's worth of the stream in whole TS packets.
        let packets = max(1, Int(streamRate.bytesPerSecond * Double(chunkDuration) / 1e6 / 188))
        payload = ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188 * packets))
        origin = names.id("origin")
        startOrigin()
    }

    /// The number of a peer's name (given now if the name is new): the same number a `PeerID` made from that name
    /// with key 0 has, unless two names clash.
    public func id(_ name: PeerName) -> PeerID { names.id(name) }

    /// The name of a peer's number.
    public func name(_ id: PeerID) -> PeerName { names.describe(id) }

    /// Wire bytes of a message, its names counted at `nameBytes`.
    private func wireSize(_ message: MeshMessage) -> Int { message.wireSize { _ in Self.nameBytes } }

    private func startOrigin() {
        var config = MeshPeerConfig(me: origin, isOrigin: true, bootstrap: nil, capacityUnits: originUnits,
                                    scheduleDelay: originScheduleDelay, seed: epoch, plan: plan, chunkDuration: chunkDuration)
        config.epoch = epoch
        config.streamRate = streamRate
        if let originUplink {
            config.uplink = originUplink
            config.findsUplink = true
        }
        add(config, uplink: originUplink)
        if originUplink != nil { schedule(origin, .stream(rate: Int64(streamRate.bitsPerSecond), substreams: plan.count), after: 0) }
    }

    /// The origin dies, stays down for `downtime`, and comes back on the same address with a new run.
    /// `delivered` then holds the new run's chunks only.
    public func restartOrigin(after downtime: Int64) {
        kill(origin)
        run(for: downtime)
        stamper.newRun(startedAt: 0)
        delivered.removeAll()
        startOrigin()
    }

    /// Bytes a chunk takes on a link.
    public var chunkBytes: Int { Chunk(seq: 0, ingestTime: 0, pts: 0, duration: 0, flags: [], payload: payload).wireBytes }

    /// A peer on an uplink of `uplink` bits/s; nil: what its sched says (one chunk in `scheduleDelay`).
    public func add(_ config: MeshPeerConfig, uplink: BitRate? = nil) {
        let rate = uplink?.bytesPerSecond ?? Double(chunkBytes) / (Double(max(1, config.scheduleDelay)) / 1e6)
        boxes[config.me] = SimulatedPeer(MeshPeer(config: config), at: now, uplink: rate)
        if alive.insert(config.me).inserted { tickOrder.append(config.me) }
        schedule(config.me, .start, after: 0)
    }

    /// A peer joins through `bootstrap` (the origin unless told: any peer can bootstrap a joiner).
    @discardableResult
    public func join(_ name: PeerName, units: Int, sched: Int64 = 2_000, seed: UInt64, bootstrap: PeerName? = nil) -> PeerID {
        let me = id(name)
        add(MeshPeerConfig(me: me, isOrigin: false, bootstrap: bootstrap.map(id) ?? origin, capacityUnits: units, scheduleDelay: sched,
                           seed: seed, plan: plan, chunkDuration: chunkDuration))
        return me
    }

    /// A peer joins as a relay does, on an uplink of `uplink`: told of it (`declares`: a cap on what it finds it can
    /// send) or not, it finds out what it can send as it sends, and sizes its units and sched from that once the
    /// stream's rate and k are known (at a relay, from its bootstrap's welcome; here, at once). `initial` is where
    /// its estimate starts (a relay's default: two streams' worth, or the uplink it declares).
    @discardableResult
    public func join(_ name: PeerName, uplink: BitRate, streamRate: BitRate, seed: UInt64, bootstrap: PeerID? = nil,
                     declares: Bool = true, initial: BitRate? = nil, headroom: Double = 0.8) -> PeerID {
        let id = id(name)
        var config = MeshPeerConfig(me: id, isOrigin: false, bootstrap: bootstrap ?? origin, capacityUnits: 2 * plan.count, scheduleDelay: 1,
                                    seed: seed, plan: plan, chunkDuration: chunkDuration)
        config.uplink = declares ? uplink : nil
        config.findsUplink = true
        config.initialUplink = initial
        config.headroom = headroom
        config.streamRate = streamRate
        add(config, uplink: uplink)
        schedule(id, .stream(rate: Int64(streamRate.bitsPerSecond), substreams: plan.count), after: 0)
        return id
    }

    /// A live peer at random (for a joiner's bootstrap), drawn with `draw` in 0..<count.
    public func livePeer(_ draw: UInt64) -> PeerID {
        tickOrder.isEmpty ? origin : tickOrder[Int(draw % UInt64(tickOrder.count))]
    }

    /// What a peer sent and heard of control messages so far.
    public func traffic(of id: PeerID) -> ControlTraffic { boxes[id]?.traffic ?? ControlTraffic() }
    /// Join to first chunk, µs, of a peer that got one.
    public func firstChunkDelay(of id: PeerID) -> Int64? { boxes[id].flatMap { b in b.firstChunkAt.map { $0 - b.joinedAt } } }
    /// Links a peer holds now.
    public func linkCount(of id: PeerID) -> Int { boxes[id]?.links ?? 0 }
    /// Every live peer's count of links, and of those the other side opened, as the open links say (a check for
    /// tests: the counts are kept by hand on every link and unlink).
    public var linkCountsAgree: Bool {
        var held: [PeerID: (all: Int, byOthers: Int)] = [:]
        for (link, dialer) in links {
            held[link.a, default: (0, 0)].all += 1
            held[link.b, default: (0, 0)].all += 1
            held[link.a == dialer ? link.b : link.a, default: (0, 0)].byOthers += 1
        }
        return boxes.allSatisfy { id, box in
            let h = held[id] ?? (0, 0)
            return box.links == h.all && box.linksIn == h.byOthers
        }
    }

    /// SIGKILL: gone without a word; its neighbours see the link drop.
    public func kill(_ id: PeerID) {
        guard alive.remove(id) != nil else { return }
        tickOrder.removeAll { $0 == id }
        for link in links.keys.filter({ $0.a == id || $0.b == id }).sorted(by: { ($0.a, $0.b) < ($1.a, $1.b) }) {
            unlink(link)
            let other = link.a == id ? link.b : link.a
            schedule(other, .disconnected(id), after: oneWayDelay(id, other))
        }
    }

    public func kill(_ name: PeerName) { names.existing(name).map { kill($0) } }

    /// Hands a live peer an event now (`.retire`, `.shedChildren`, ...).
    public func send(_ id: PeerID, _ event: MeshEvent) {
        guard alive.contains(id) else { return }
        handle(id, event)
    }

    public func send(_ name: PeerName, _ event: MeshEvent) { names.existing(name).map { send($0, event) } }

    /// When a retiring peer's core said its hand-off was done (`.handedOff`).
    public private(set) var handedOffAt: [PeerID: Int64] = [:]
    public func handedOffAt(_ name: PeerName) -> Int64? { names.existing(name).flatMap { handedOffAt[$0] } }

    /// Leaves on purpose: its children hear first, then its links close.
    public func leave(_ id: PeerID) {
        guard alive.contains(id) else { return }
        handle(id, .leave)
        kill(id)
    }

    public func leave(_ name: PeerName) { names.existing(name).map { leave($0) } }

    private func schedule(_ target: PeerID, _ event: MeshEvent, after delay: Int64) {
        queue.push(Delivery(target: target, event: event), at: now + delay)
    }

    /// Events handled in one `run`; a run stops (and says so) past `maxEvents`, so a message storm cannot hang a test.
    public private(set) var events = 0
    public var maxEvents = 2_000_000
    public private(set) var overran = false
    /// Messages sent, by kind, over the whole simulation.
    public var messageCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (i, n) in kindCounts.enumerated() where n > 0 { counts[MeshMessage.kinds[i]] = n }
        if connects > 0 { counts["(connect)"] = connects }
        return counts
    }
    private var kindCounts = [Int](repeating: 0, count: MeshMessage.kinds.count)
    private var connects = 0
    public private(set) var chunksSent = 0

    /// Runs the world for `duration` µs: the origin cuts a chunk every `chunkDuration`, every peer wakes when its
    /// core asks. `progress` is called once per simulated second.
    public func run(for duration: Int64, progress: ((Int64) -> Void)? = nil) {
        let end = now + duration
        var nextProgress = (now / 1_000_000 + 1) * 1_000_000
        events = 0
        while !overran {
            events += 1
            if events > maxEvents { overran = true }
            let t = min(queue.nextTime ?? .max, nextChunkAt)
            guard t <= end else { break }
            now = t
            if let progress, now >= nextProgress {
                progress(now)
                nextProgress += 1_000_000
            }
            if t == nextChunkAt {
                nextChunkAt += chunkDuration
                guard alive.contains(origin), now >= publishFrom else { continue }
                let cut = Chunk(seq: 0, ingestTime: now, pts: 0, duration: chunkDuration,
                                flags: stamper.nextSeq % 5 == 0 ? .randomAccess : [], payload: payload)
                guard let chunk = stamper.stamp(cut) else { continue }
                handle(origin, .chunk(from: nil, chunk))
            } else if let e = queue.pop() {
                guard alive.contains(e.target), let box = boxes[e.target] else { continue }
                guard let event = e.event else {
                    uplinkDone(e.target, box, transmission: e.transmission)
                    continue
                }
                // As on TCP: what reaches a peer after it closed the link itself is lost (what the other side sent
                // before it closed still arrives).
                switch event {
                case .message(let from, _), .chunk(let from?, _):
                    let link = Link(from, e.target)
                    guard links[link] != nil || closedBy[link]?.by != e.target else { continue }
                default: break
                }
                if event == .tick {
                    // Only the wake-up the core asked for last; earlier asks it moved are stale.
                    guard box.wakeAt == now else { continue }
                    box.wakeAt = .max
                    wakeups += 1
                    box.wakeups += 1
                }
                handle(e.target, event, box)
            }
        }
        now = end
    }

    /// One event into a peer's core: its actions go out, and its next wake-up is booked.
    private func handle(_ id: PeerID, _ event: MeshEvent, _ known: SimulatedPeer? = nil) {
        guard let box = known ?? boxes[id] else { return }
        let actions = box.core.handle(event, now: now)
        trace?(now, id, event, actions)
        apply(actions, from: id, box)
        let wake = box.core.nextWakeup
        if wake < box.wakeAt {
            box.wakeAt = wake
            queue.push(Delivery(target: id, event: .tick), at: wake)
        }
    }

    private func link(from dialer: PeerID, to other: PeerID) {
        let link = Link(dialer, other)
        guard links[link] == nil else { return }
        links[link] = dialer
        boxes[dialer]?.links += 1
        boxes[other]?.linksIn += 1
        boxes[other]?.links += 1
        for end in [dialer, other] {
            guard let box = boxes[end], box.links > maxLinks else { continue }
            maxLinks = box.links
            maxLinksHolder = LinksHeld(peer: names.describe(end), isOrigin: end == origin, at: now, opened: box.links - box.linksIn,
                                       byOthers: box.linksIn, children: box.core.children.count,
                                       parents: Set(box.core.parents.values).count)
        }
    }

    private func unlink(_ link: Link) {
        guard let dialer = links.removeValue(forKey: link) else { return }
        abortSending(link.a, to: link.b)
        abortSending(link.b, to: link.a)
        boxes[link.a]?.links -= 1
        boxes[link.b]?.links -= 1
        boxes[link.a == dialer ? link.b : link.a]?.linksIn -= 1
    }

    private func apply(_ actions: [MeshAction], from id: PeerID, _ box: SimulatedPeer) {
        for action in actions {
            switch action {
            case .connect(let other):
                connects += 1
                let d = oneWayDelay(id, other)
                if alive.contains(other) {
                    link(from: id, to: other)
                    closedBy.removeValue(forKey: Link(id, other))
                    schedule(id, .connected(other), after: 2 * d)
                    schedule(other, .connected(id), after: d)
                    schedule(id, .linkDelay(other, d), after: 2 * d)
                    schedule(other, .linkDelay(id, d), after: 2 * d)
                    if passesForTheOrigin.contains(other) { schedule(id, .originIs(other), after: 3 * d) }
                    if passesForTheOrigin.contains(id) { schedule(other, .originIs(id), after: 3 * d) }
                } else {
                    schedule(id, .connectFailed(other), after: 2 * d)
                }
            case .disconnect(let other):
                unlink(Link(id, other))
                closedBy[Link(id, other)] = (id, now)
                if now >= nextClosedPrune {
                    nextClosedPrune = now + 5_000_000
                    closedBy = closedBy.filter { now - $0.value.at < 5_000_000 }
                }
                schedule(other, .disconnected(id), after: oneWayDelay(id, other))
            case .send(let other, let message):
                guard links[Link(id, other)] != nil else { continue }
                kindCounts[message.kindIndex] += 1
                let size = wireSize(message) + Self.frameOverhead
                box.traffic.messagesOut += 1
                box.traffic.bytesOut += size
                if let to = boxes[other] {
                    to.traffic.messagesIn += 1
                    to.traffic.bytesIn += size
                }
                schedule(other, .message(from: id, message), after: oneWayDelay(id, other))
            case .sendChunk(let other, let chunk):
                // The uplink sends what it is handed in turn; the core hears when each chunk has left.
                box.waiting.append((other, chunk))
                if box.sending == nil { sendNext(id, box) }
            case .deliver(let chunk):
                guard chunk.epoch == epoch else { continue }
                if recordDeliveries { delivered[id, default: [:]][chunk.seq] = now }
                if box.firstChunkAt == nil { box.firstChunkAt = now }
                onDeliver?(id, chunk, now)
            case .handedOff:
                handedOffAt[id] = now
            case .parentsChanged:
                break
            }
        }
    }

    /// The uplink takes the next chunk that waits for it. One whose link closed meanwhile never leaves (a closed
    /// socket's unsent bytes are dropped): its write fails at once, as the driver's does.
    private func sendNext(_ id: PeerID, _ box: SimulatedPeer) {
        while !box.waiting.isEmpty {
            let next = box.waiting.removeFirst()
            guard links[Link(id, next.to)] != nil else {
                schedule(id, .sent(next.to, bytes: next.chunk.wireBytes), after: 0)
                continue
            }
            box.transmissions += 1
            box.sending = (next.to, next.chunk, box.transmissions)
            let bytes = next.chunk.wireBytes
            queue.push(Delivery(target: id, event: nil, transmission: box.transmissions),
                       at: now + Int64((Double(bytes) / max(1, box.uplink) * 1e6).rounded(.up)))
            return
        }
        box.sending = nil
    }

    /// A link closed: what its end was sending stops there, and the uplink goes on with the next chunk.
    private func abortSending(_ id: PeerID, to other: PeerID) {
        guard let box = boxes[id], let sending = box.sending, sending.to == other else { return }
        box.sending = nil
        sendNext(id, box)
    }

    /// A chunk has left a peer's uplink: its core hears so, the chunk is on its way, and the next one goes.
    private func uplinkDone(_ id: PeerID, _ box: SimulatedPeer, transmission: Int) {
        guard let (other, chunk, number) = box.sending, number == transmission else { return }
        box.sending = nil
        if links[Link(id, other)] != nil, !dropChunk(id, other, chunk.seq) {
            chunksSent += 1
            schedule(other, .chunk(from: id, chunk), after: oneWayDelay(id, other))
        }
        handle(id, .sent(other, bytes: chunk.wireBytes), box)
        if box.sending == nil { sendNext(id, box) }
    }

    /// What a message costs on a real link besides its body: the sealed frame's header and tag, the inner
    /// frame's header and the message type (`LinkCipher`, `Frame`).
    static let frameOverhead = 8 + 16 + 8 + 1

    public var producedSeqs: UInt64 { stamper.nextSeq }

    /// A cycle in some substream's parent graph among live peers, if any: the walk up that closed it, its last peer
    /// the one it came back to. (Live peers by their place in `tickOrder`, marked unseen, on this walk or clear: a
    /// set a walk made this a tenth of the checker's run.)
    public func loop() -> [PeerID]? {
        var place: [PeerID: Int] = [:]
        place.reserveCapacity(tickOrder.count)
        for (i, id) in tickOrder.enumerated() { place[id] = i }
        let parents = tickOrder.map { boxes[$0]?.core.parents ?? [:] }
        var up = [Int](repeating: -1, count: tickOrder.count)
        var mark = [UInt8](repeating: 0, count: tickOrder.count)
        var walk: [Int] = []
        for s in plan.all {
            for i in up.indices { up[i] = parents[i][s].flatMap { place[$0] } ?? -1 }
            for i in mark.indices { mark[i] = 0 }
            for start in up.indices where mark[start] == 0 {
                walk.removeAll(keepingCapacity: true)
                var at = start
                while at >= 0, mark[at] == 0 {
                    mark[at] = 1
                    walk.append(at)
                    at = up[at]
                }
                if at >= 0, mark[at] == 1 { return (walk + [at]).map { tickOrder[$0] } }
                for i in walk { mark[i] = 2 }
            }
        }
        return nil
    }
}

extension MeshMessage {
    /// The kinds of message, for counts.
    static let kinds = ["announce", "peers", "subscribe", "unsubscribe", "accept", "refuse", "repair", "leaving", "viewRequest", "view"]

    /// The message's kind, an index in `kinds`.
    var kindIndex: Int {
        switch self {
        case .announce: 0
        case .peers: 1
        case .subscribe: 2
        case .unsubscribe: 3
        case .accept: 4
        case .refuse: 5
        case .repair: 6
        case .leaving: 7
        case .viewRequest: 8
        case .view: 9
        }
    }
}
