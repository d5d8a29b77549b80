import MeshCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What a node tells its owner, on the node's loop.
public enum MeshNodeEvent: Sendable {
    case linkUp(PeerName, outbound: Bool, suite: CipherSuite)
    /// A link failed: refused, wrong key, bad frame, bad tag. `peer` is nil for an inbound link not yet named.
    case linkFailed(PeerName?, Error)
    case linkDown(PeerName)
    /// The other side's welcome: its origin-clock estimate and the stream rate; `rtt` from handshake to welcome.
    case welcome(PeerName, originClock: Int64, streamRate: Int64, receivedAt: Int64, rtt: Int64)
    case parentsChanged([Int: PeerName])
}

/// How a node can be made to misbehave (tests only).
struct Faults: Sendable {
    /// Takes children but never forwards a chunk.
    var mute = false
    /// Sends at most this rate whatever the units it announces (it claims capacity it does not have).
    var realUplink: BitRate?
    /// Flips a bit in every frame at least this large once its link is up: chunks arrive with bad tags.
    var corruptFramesFrom: Int?
    /// Changes a byte of every chunk's payload it forwards, behind a valid link tag: only the origin's
    /// signature tells.
    var forgePayload = false

    var handlers: [ChannelHandler] { corruptFramesFrom.map { [FrameCorrupter(minimum: $0)] } ?? [] }
}

/// Flips the last bit of every large outgoing write, after the handshake has gone through untouched.
final class FrameCorrupter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let minimum: Int
    init(minimum: Int) { self.minimum = minimum }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = unwrapOutboundIn(data)
        if buffer.readableBytes >= minimum, let last = buffer.getInteger(at: buffer.writerIndex - 1, as: UInt8.self) {
            buffer.setInteger(last ^ 1, at: buffer.writerIndex - 1)
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}

/// The NIO driver of a `MeshPeer`: it turns socket reads, link changes and timer fires into events, and
/// executes the core's actions. All of it runs on one event loop, so the core needs no lock.
public final class MeshNode: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var listen: HostPort
        public var key: ChannelKey
        public var suite: CipherSuite = .rc4HmacSHA256
        public var isOrigin: Bool
        public var bootstrap: HostPort?
        public var capacityUnits: Int
        public var scheduleDelay: Int64
        public var seed: UInt64
        /// The upload budget; nil for none. Chunks beyond it are dropped (a child repairs them). A joiner turns it
        /// into substream units once its bootstrap's welcome tells the stream rate.
        public var uplink: BitRate?
        /// The host others reach this node at, when `listen` is a wildcard.
        public var advertise: String?
        /// Each link's socket send buffer (`SO_SNDBUF`): small, so chunks wait in the core's egress, where live ones go
        /// first and stale ones are dropped, and so a write's completion tells when its bytes left (issue 19). The
        /// kernel doubles it; about `socketBytes` of payload fit.
        public var socketSendBuffer = 8_192
        /// Where the uplink estimate starts before anything is measured; nil: what `capacityUnits` carry.
        public var initialUplink: BitRate?
        /// The origin's signing key: the origin signs every chunk it publishes and proves itself on every link.
        /// An origin given none makes one.
        public var originSigner: OriginSigningKey?
        /// The origin's public key, which every chunk is checked against. Nil at a joiner: it trusts the key its
        /// bootstrap's welcome names (and says so in its log).
        public var originKey: OriginPublicKey?
        /// Most links kept; past it a new inbound link is closed.
        public var maxLinks = 1024
        /// Handshakes under way at once, in all and from one address; the rest are closed as they connect.
        public var maxPendingHandshakes = 64
        public var maxPendingPerAddress = 8
        /// `lsp2p-relay mesh` clients at once.
        public var maxObservers = 4
        /// k: at the origin, how the stream is cut (told to joiners in the welcome); a joiner takes the origin's.
        public var substreams = SubstreamPlan.defaultCount
        /// Chunks' duration until they tell their own, µs.
        public var chunkDuration: Int64 = 200_000
        /// Misbehaviour to put on, for tests of how the others route around a bad peer.
        var faults = Faults()

        public init(listen: HostPort, key: ChannelKey, isOrigin: Bool, bootstrap: HostPort?, capacityUnits: Int,
                    scheduleDelay: Int64, seed: UInt64, uplink: BitRate? = nil) {
            self.listen = listen
            self.key = key
            self.isOrigin = isOrigin
            self.bootstrap = bootstrap
            self.capacityUnits = capacityUnits
            self.scheduleDelay = scheduleDelay
            self.seed = seed
            self.uplink = uplink
        }
    }

    public let configuration: Configuration
    public let loop: EventLoop
    private let group: EventLoopGroup
    private let logger: Logger
    private let onDeliver: @Sendable (Chunk) -> Void
    private let onEvent: @Sendable (MeshNodeEvent) -> Void
    private let metrics = NodeMetrics()

    public struct Stats: Sendable {
        public var links = 0
        public var joined = 0
        public var bytesSent = 0
        /// Chunks not sent: they waited past their use for an uplink that could not carry them, or their link went.
        public var chunksDropped = 0
        /// What this node finds it can send (its estimate of its uplink), bits/s.
        public var uplinkEstimate = 0.0
        /// Units it offers, and children's units it let go because its uplink could not carry them.
        public var units = 0
        public var shed = 0
        /// Live chunks dropped unsent, and live chunks that left late (waited past `Egress.lateWait`) or were dropped.
        public var liveDropped = 0
        public var liveLate = 0
        public var linksFailed = 0
    }

    private let statsBox = NIOLockedValueBox(Stats())
    public var stats: Stats { statsBox.withLockedValue { $0 } }
    private let rateBox = NIOLockedValueBox<Int64>(0)
    /// The stream's nominal rate, bits/s, told to joiners in the welcome (the origin sets it).
    public var streamRate: Int64 {
        get { rateBox.withLockedValue { $0 } }
        set { rateBox.withLockedValue { $0 = newValue } }
    }
    private let clockOffsetBox = NIOLockedValueBox<Int64>(0)
    /// This node's estimate of (origin clock − wall clock), µs; 0 at the origin.
    public var clockOffset: Int64 {
        get { clockOffsetBox.withLockedValue { $0 } }
        set { clockOffsetBox.withLockedValue { $0 = newValue } }
    }
    private var peer: MeshPeer!
    /// The peers' numbers in the core (design §7), kept to what the core still refers to.
    private var names = PeerNames(key: .random(in: .min ... .max))
    /// Past this many names, the ones the core no longer refers to are forgotten.
    private var namesBound = MeshNode.minNamesBound
    static let minNamesBound = 4_096
    private var links: LinkTable<Channel>
    private var serverChannel: Channel?
    private var tasks: [RepeatedTask] = []
    /// A lying node's real uplink (tests): what passes it is dropped, whatever the core hands out.
    private var faultBucket: TokenBucket?
    private var encoding: ChunkEncoding
    public private(set) var id: PeerName = ""
    private var wakeTask: Scheduled<Void>?
    /// k is known: this is the origin, or its bootstrap's welcome told it.
    private var streamKnown = false
    private var wakeAt: Int64 = .max
    /// The origin's run, stamped on every chunk it publishes (its start time, µs); 0 at a joiner.
    public var epoch: UInt64 { stamper.withLockedValue { $0.epoch } }
    /// At the origin, what gives each published chunk its run, seq and signature.
    private let stamper: NIOLockedValueBox<OriginStamper>
    private var stopped = false
    /// The origin's key as this node holds it (given, or named by its bootstrap); chunks wait for it.
    private var originKey: OriginPublicKey?
    /// What the origin signs with.
    private let signer: OriginSigningKey?
    /// Handshakes under way and observers: what strangers hold before they have proved anything.
    private var admission: Admission
    /// The core's parent-change causes as last logged.
    private var loggedCauses: [ParentChange: Int] = [:]
    /// A hand-off under way (`retire`): completed by the core's `.handedOff`, or at its deadline.
    private var handOffDone: EventLoopPromise<Int>?

    public init(configuration: Configuration, group: EventLoopGroup, logger: Logger,
                onEvent: @escaping @Sendable (MeshNodeEvent) -> Void = { _ in },
                onDeliver: @escaping @Sendable (Chunk) -> Void = { _ in }) {
        self.configuration = configuration
        self.group = group
        self.loop = group.next()
        self.logger = logger
        self.onEvent = onEvent
        self.onDeliver = onDeliver
        let signer = configuration.isOrigin ? configuration.originSigner ?? OriginSigningKey() : nil
        self.signer = signer
        self.stamper = NIOLockedValueBox(OriginStamper(epoch: configuration.isOrigin ? UInt64(wallClockMicros()) : 0, signer: signer))
        self.originKey = configuration.originKey ?? signer?.publicKey
        encoding = ChunkEncoding(forgePayload: configuration.faults.forgePayload)
        links = LinkTable(maxLinks: configuration.maxLinks, bootstrap: configuration.bootstrap?.description)
        admission = Admission(maxPending: configuration.maxPendingHandshakes, maxPendingPerAddress: configuration.maxPendingPerAddress,
                              maxObservers: configuration.maxObservers)
        if let real = configuration.faults.realUplink {
            faultBucket = TokenBucket(bytesPerSecond: real.bytesPerSecond, burst: real.bytesPerSecond)
        }
    }

    /// Binds, starts the core, and returns this node's id (its advertised `HOST:PORT`).
    @discardableResult
    public func start() throws -> PeerName {
        let config = configuration
        let server = try ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(config.socketSendBuffer))
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: 2 << 20))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(linkHandlers(.responder(key: config.key, suite: config.suite), peer: nil))
                }
            }
            .bind(host: config.listen.host, port: config.listen.port).wait()
        serverChannel = server
        let id = HostPort(host: config.advertise ?? config.listen.host, port: server.localAddress?.port ?? config.listen.port).description
        try loop.submit { [self] in
            self.id = id
            links.me = id
            var core = MeshPeerConfig(me: names.id(id), isOrigin: config.isOrigin, bootstrap: config.bootstrap.map { names.id($0.description) },
                                      capacityUnits: config.capacityUnits, scheduleDelay: config.scheduleDelay, seed: config.seed,
                                      plan: SubstreamPlan(count: config.substreams), chunkDuration: config.chunkDuration)
            core.uplink = config.uplink
            core.findsUplink = true
            core.initialUplink = config.initialUplink
            core.socketBytes = Self.socketBytes(config.socketSendBuffer)
            core.epoch = epoch
            core.verifier = originKey
            peer = MeshPeer(config: core)
            handle(.start)
            // The origin knows the stream's rate: it sizes itself from its uplink as joiners do after the welcome.
            if config.isOrigin, streamRate > 0 { handle(.stream(rate: streamRate, substreams: config.substreams)) }
            tasks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
                for channel in links.all { channel.writeAndFlush(EncodedMessage(.ping(monotonicMicros())), promise: nil) }
                updateGauges()
            })
        }.wait()
        return id
    }

    /// The origin's source starts again (a sender that came back): what is published next is a new run, from seq
    /// 0, and players start over at its first keyframe. Safe from any thread; call between two `publish`es.
    public func startNewRun() {
        let new = stamper.withLockedValue { stamper in
            stamper.newRun(startedAt: UInt64(wallClockMicros()))
            return stamper.epoch
        }
        loop.execute { [self] in handle(.newRun(epoch: new)) }
    }

    /// The origin's input: a chunk from the local source (its seq and epoch are not looked at), published as the
    /// run's next. Returns it as the mesh gets it: stamped and signed; nil after the end of stream or at a joiner.
    /// Safe from any thread.
    @discardableResult
    public func publish(_ cut: Chunk) -> Chunk? { publish { $0.stamp(cut) } }

    /// Ends the run's stream: the marker after the last chunk published. Returns how many chunks the run had.
    @discardableResult
    public func endStream() -> UInt64 {
        publish { $0.endOfStream(ingestTime: wallClockMicros()) }
        return stamper.withLockedValue { $0.nextSeq }
    }

    /// What the stamper makes, into the mesh. Signed on the caller's thread, not the loop's.
    @discardableResult
    private func publish(_ stamp: (inout OriginStamper) -> Chunk?) -> Chunk? {
        guard configuration.isOrigin, let chunk = stamper.withLockedValue(stamp) else { return nil }
        loop.execute { [self] in handle(.chunk(from: nil, chunk)) }
        return chunk
    }

    /// Leaves: children are told, then every link closes.
    public func stop(gracefully: Bool = true) {
        try? loop.submit { [self] in
            if gracefully, !stopped { handle(.leave) }
            stopped = true
            for task in tasks { task.cancel() }
            wakeTask?.cancel()
            for channel in links.removeAll() { channel.close(promise: nil) }
        }.wait()
        try? serverChannel?.close().wait()
    }

    /// Uploads no more (a budget spent): takes no child, tells its children to move and feeds them until they have
    /// (make-before-break), for at most `handOff`; then lets the rest go. Its parents stay: it goes on as a leaf.
    /// Completes with how many children were still here at the end.
    public func retire(handOff: TimeAmount = .seconds(5)) -> EventLoopFuture<Int> {
        let promise = loop.makePromise(of: Int.self)
        loop.execute { [self] in
            guard !configuration.isOrigin, peer != nil, handOffDone == nil else { return promise.succeed(0) }
            // The core says when the last child has gone (`.handedOff`); the deadline lets the rest go.
            handOffDone = promise
            let deadline = loop.scheduleTask(in: handOff) { [self] in
                guard let done = handOffDone else { return }
                handOffDone = nil
                let left = peer.children.count
                if left > 0, !stopped { handle(.shedChildren) }
                done.succeed(left)
            }
            // A loop shut down meanwhile (the process is stopping) cancels the task: the promise fails with it.
            deadline.futureResult.whenFailure { [self] error in
                guard let done = handOffDone else { return } // cancelled: the hand-off was done before it
                handOffDone = nil
                done.fail(error)
            }
            promise.futureResult.whenSuccess { _ in deadline.cancel() }
            handle(.retire)
        }
        return promise.futureResult
    }

    /// Sets the upload capacity in units (the stream's rate became known).
    public func setCapacity(_ units: Int) {
        loop.execute { [self] in handle(.setCapacity(units)) }
    }

    var debugState: String { (try? loop.submit { [self] in "\(peer.changeCauses) est \(Int(peer.egress.uplink.rate * 8)) samples \(peer.egress.uplink.samples) q \(peer.egress.queued) drop \(peer.egress.dropped)/\(peer.egress.droppedLive) sent \(peer.egress.bytesSent) " + peer.debugState(names.describe) }.wait()) ?? "" }
    var linkNames: Set<PeerName> { (try? loop.submit { [self] in links.names }.wait()) ?? [] }
    var hearsayCount: Int { (try? loop.submit { [self] in peer.hearsayCount }.wait()) ?? 0 }
    /// Names this node keeps for its core's numbers.
    var nameCount: Int { (try? loop.submit { [self] in names.count }.wait()) ?? 0 }

    /// The core's view, read on its loop.
    public func snapshot() -> (parents: [Int: PeerName], children: [PeerName: Set<Int>], delay: Int64?, changes: Int) {
        (try? loop.submit { [self] in (named(peer.parents), named(peer.children), peer.delayFromSource, peer.parentChanges) }.wait())
            ?? ([:], [:], nil, 0)
    }

    private func named(_ parents: [Int: PeerID]) -> [Int: PeerName] { parents.mapValues(names.describe) }
    private func named(_ children: [PeerID: Set<Int>]) -> [PeerName: Set<Int>] {
        Dictionary(children.map { (names.describe($0.key), $0.value) }, uniquingKeysWith: { $0.union($1) })
    }

    /// What a status page shows of this node, read on its loop.
    public struct Status: Sendable {
        public struct Substream: Sendable {
            public var substream: Int
            public var parent: PeerName?
            /// D_s: this node's delay from the source in it, µs.
            public var delay: Int64?
        }
        public var id: PeerName
        public var isOrigin: Bool
        public var substreams: [Substream]
        public var children: [PeerName: Set<Int>]
        public var delay: Int64?
        public var units: Int
        public var usedUnits: Int
        public var retired: Bool
        public var stats: Stats
    }

    public func status() -> Status? {
        try? loop.submit { [self] () -> Status? in
            guard peer != nil else { return nil } // not started
            return Status(id: id, isOrigin: configuration.isOrigin,
                   substreams: peer.config.plan.all.map {
                       Status.Substream(substream: $0, parent: peer.parents[$0].map(names.describe), delay: peer.delay(of: $0))
                   },
                   children: named(peer.children), delay: peer.delayFromSource, units: peer.config.capacityUnits, usedUnits: peer.usedUnits,
                   retired: peer.retired, stats: stats)
        }.wait() ?? nil
    }

    // MARK: on the loop

    func handle(_ event: MeshEvent) {
        guard !stopped || event == .leave else { return }
        for action in peer.handle(event, now: monotonicMicros()) { execute(action) }
        scheduleWakeup()
        // Names come from the wire: past the bound, those the core holds no more go (and the bound follows what is
        // kept, so this runs now and then, not every event).
        if names.count > namesBound {
            names.keep(only: peer.referencedPeers)
            namesBound = max(Self.minNamesBound, 2 * names.count)
        }
    }

    /// An event about the peer of this name.
    func handle(_ name: PeerName, _ event: (PeerID) -> MeshEvent) { handle(event(names.id(name))) }

    /// A mesh message from the peer of this name, its peers numbered.
    func receive(_ message: WireMeshMessage, from name: PeerName) {
        let from = names.id(name)
        handle(.message(from: from, message.renamed { names.id($0) }))
    }

    /// The core is woken when it asks (design §7), not on a clock: after each event its next wake-up may be sooner.
    private func scheduleWakeup() {
        let at = peer.nextWakeup
        guard !stopped, at < wakeAt else { return }
        wakeTask?.cancel()
        wakeAt = at
        wakeTask = loop.scheduleTask(in: .microseconds(max(1_000, at - monotonicMicros()))) { [self] in
            wakeAt = .max
            handle(.tick)
        }
    }

    private func execute(_ action: MeshAction) {
        switch action {
        case .connect(let number):
            guard let id = names.name(number) else { return handle(.connectFailed(number)) }
            guard let address = HostPort(links.dialAddress(of: id)) else { return handle(.connectFailed(number)) }
            let node = self
            ClientBootstrap(group: loop)
                .connectTimeout(.seconds(3))
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(configuration.socketSendBuffer))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(node.linkHandlers(
                            .initiator(HandshakeInitiator(key: node.configuration.key, role: .relay, nonce: randomNonce())), peer: id))
                    }
                }
                .connect(host: address.host, port: address.port)
                .whenFailure { [self] error in
                    logger.debug("cannot connect to \(id): \(error)")
                    onEvent(.linkFailed(id, error))
                    metrics.connectFailed()
                    handle(.connectFailed(number))
                }
        case .disconnect(let number):
            guard let id = names.name(number) else { return }
            // The core has let it go already; its link closes without a word.
            links.remove(id)?.close(promise: nil)
            statsBox.withLockedValue { $0.links = links.count }
        case .send(let number, let message):
            guard let id = names.name(number), let channel = links[id] else { return }
            // An answer a peer can ask for at will waits for nobody: a peer that does not read gets no more of them.
            if case .peers = message, !channel.isWritable { return }
            guard let wire = try? message.renamed({ try names.named($0) }) else {
                return logger.debug("not sent to \(id): it names a peer forgotten")
            }
            // Who asked whom for what, and the answers (MESH_LOG=1): how a stuck peer got stuck. Not the news,
            // gossip or repairs, which come many times a second.
            switch message {
            case .subscribe, .unsubscribe, .accept, .refuse, .leaving: logger.debug("to \(id): \(wire)")
            case .announce, .peers, .repair, .viewRequest, .view: break
            }
            channel.writeAndFlush(EncodedMessage(.mesh(wire)), promise: nil)
        case .sendChunk(let number, let chunk):
            guard let id = names.name(number) else { return reportSent(chunk.wireBytes, on: number) }
            guard let channel = links[id] else { return reportSent(chunk.wireBytes, on: number) }
            if configuration.faults.mute { return reportSent(chunk.wireBytes, on: number) }
            let message = encoding.message(for: chunk)
            if var bucket = faultBucket {
                let ok = bucket.take(message.bytes.readableBytes, now: monotonicMicros())
                faultBucket = bucket
                guard ok || chunk.isEndOfStream else { return reportSent(chunk.wireBytes, on: number) }
            }
            statsBox.withLockedValue { $0.bytesSent += message.bytes.readableBytes }
            metrics.chunksOut.increment()
            metrics.bytesOut.increment(by: message.bytes.readableBytes)
            // The core hands a link one chunk at a time and learns its uplink from when each has left: the socket's
            // small buffer takes the rest as the first bytes go.
            let bytes = chunk.wireBytes
            channel.writeAndFlush(message).whenComplete { [self] _ in
                guard let name = links.name(of: channel) else { return }
                handle(name) { .sent($0, bytes: bytes) }
            }
        case .deliver(let chunk):
            metrics.chunksIn.increment()
            metrics.bytesIn.increment(by: chunk.payload.readableBytes)
            onDeliver(chunk)
        case .handedOff:
            handOffDone?.succeed(0)
            handOffDone = nil
        case .parentsChanged(let numbers):
            let parents = named(numbers)
            metrics.parentChanges.increment()
            if logger.logLevel <= .debug {
                // Why, from the core's counts of causes since the last change.
                let causes = peer.changeCauses.filter { loggedCauses[$0.key] != $0.value }.keys.sorted()
                loggedCauses = peer.changeCauses
                logger.debug("parents \(parents.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }) (\(causes.map(\.rawValue).joined(separator: ", ")))")
            }
            onEvent(.parentsChanged(parents))
        }
    }

    /// The handlers of one link: frames capped to a handshake's size until the other side proves the channel key,
    /// and inbound handshakes counted against the caps (the gate sits where it sees the link come up).
    func linkHandlers(_ side: LinkSecurityHandler.Side, peer: PeerName?) -> [ChannelHandler] {
        let limit = FrameLimit(WireLimits.handshakeFrame)
        var gate: [ChannelHandler] = []
        if case .responder = side { gate = [HandshakeGate(node: self)] }
        return configuration.faults.handlers + [
            ByteToMessageHandler(FrameDecoder(limit: limit)),
            LinkSecurityHandler(side, frameLimit: limit),
        ] + gate + [MeshLinkHandler(node: self, peer: peer)]
    }

    /// The name an inbound link goes by: the id it claims, but on the host it connects from. A peer cannot pass for
    /// one on another host; one behind a NAT is known by the address the NAT shows.
    static func boundName(claimed: PeerName, remote: SocketAddress?) -> PeerName? {
        guard let claim = HostPort(claimed) else { return nil }
        guard var host = remote?.ipAddress else { return claimed }
        if host.hasPrefix("::ffff:"), !claim.host.contains(":") { host.removeFirst("::ffff:".count) } // IPv4 on a dual-stack socket
        return host == claim.host ? claimed : HostPort(host: host, port: claim.port).description
    }

    /// A link finished its handshake (outbound), or an inbound one named itself in its first announce.
    /// False when the link must close: an inbound claim never replaces a link, never names the origin (which dials
    /// no one) or this node, and finds no room past `maxLinks`.
    func linkUp(_ channel: Channel, as id: PeerName, outbound: Bool, suite: CipherSuite) -> Bool {
        switch links.add(channel, as: id, outbound: outbound, now: monotonicMicros()) {
        case .refused: return false
        case .replaced(let old): old.close(promise: nil)
        case .added: break
        }
        statsBox.withLockedValue {
            $0.links = links.count
            $0.joined += 1
        }
        onEvent(.linkUp(id, outbound: outbound, suite: suite))
        handle(id) { .connected($0) }
        return true
    }

    /// Payload a socket with this `SO_SNDBUF` takes at once (measured on Linux 6: about 10 KB of 8 KiB's doubled
    /// buffer, the rest is its packets' overhead).
    static func socketBytes(_ sendBuffer: Int) -> Int { sendBuffer * 5 / 4 }

    /// The peer dialled as `old` calls itself `new` (a port forward, a NAT): the link is the new name's, and the
    /// old address is where to dial it again. False when this node is linked to `new` already: this link goes.
    func rename(_ channel: Channel, from old: PeerName, to new: PeerName) -> Bool {
        guard links.rename(channel, from: old, to: new) else { return false }
        logger.info("\(old) is \(new)")
        handle(.renamed(from: names.id(old), to: names.id(new)))
        return true
    }

    /// A chunk from a linked peer. Until the origin's key is known none is taken: nothing unsigned gets through.
    func receiveChunk(_ chunk: Chunk, from id: PeerName) {
        guard originKey != nil else { return }
        handle(id) { .chunk(from: $0, chunk) }
    }

    /// Whether a new inbound connection may start a handshake: few at once, fewer from one address.
    func admitHandshake(from host: String) -> Bool { admission.admitHandshake(from: host) }
    func handshakeEnded(from host: String) { admission.handshakeEnded(from: host) }
    /// Whether one more observer may look in; `observerLeft` gives its place back.
    func admitObserver() -> Bool { admission.admitObserver() }
    func observerLeft() { admission.observerLeft() }

    func linkFailed(_ id: PeerName?, _ error: Error) {
        statsBox.withLockedValue { $0.linksFailed += 1 }
        metrics.failed(error)
        logger.warning("closing link: \(error)", metadata: ["peer": "\(id ?? "unnamed")"])
        onEvent(.linkFailed(id, error))
        // A peer whose frames fail their tags or do not parse is not taken as a parent again soon. A handshake that
        // fails (a timeout, a busy node) is a failed connect, not an offence: a wrong key is one.
        guard let id else { return }
        if error is LinkCipherError || error is WireError || error as? HandshakeError == .wrongKey {
            handle(id) { .misbehaved($0) }
        } else if error is HandshakeError {
            handle(id) { .connectFailed($0) }
        }
    }

    /// The core's chunk for a link it cannot have (gone, or a test's fault): its bytes are as good as gone, later
    /// on the loop.
    private func reportSent(_ bytes: Int, on number: PeerID) {
        loop.execute { [self] in handle(.sent(number, bytes: bytes)) }
    }

    private func updateGauges() {
        statsBox.withLockedValue {
            $0.chunksDropped = peer.egress.dropped
            $0.uplinkEstimate = peer.egress.uplink.rate * 8
            $0.units = peer.config.capacityUnits
            $0.shed = peer.childrenShed
            $0.liveDropped = peer.egress.droppedLive
            $0.liveLate = peer.egress.lateLive
        }
        metrics.residualUnits.record(peer.residualUnits)
        metrics.delayFromSource.record(Double(peer.delayFromSource ?? 0) / 1e6)
        metrics.linksUp.record(links.count)
        metrics.children.record(peer.children.count)
        metrics.parents.record(Set(peer.parents.values).count)
    }

    /// What this node knows of the mesh first hand, for an observer.
    var view: [PeerRecord] { peer.view.compactMap { try? $0.renamed { try names.named($0) } } }

    func linkDown(_ channel: Channel, id: PeerName?) {
        guard links.down(channel, id: id), let id else { return }
        statsBox.withLockedValue { $0.links = links.count }
        onEvent(.linkDown(id))
        handle(id) { .disconnected($0) }
    }

    /// A welcome: from the origin, its proof of who it is; from the bootstrap, the origin clock, this node's units
    /// from the stream rate and, if none was given, the origin's key.
    func welcome(from id: PeerName, _ welcome: Welcome, binding: [UInt8], rtt: Int64) {
        let receivedAt = wallClockMicros()
        let fromBootstrap = links.dialAddress(of: id) == configuration.bootstrap?.description
        if fromBootstrap, originKey == nil, let key = welcome.originKey {
            logger.notice("checking chunks against \(key) as named by \(id) (no origin key given)")
            originKey = key
            handle(.originKey(key))
        }
        if let key = originKey, let proof = welcome.originProof, key.verifiesLink(binding, proof: proof) {
            links.originPeer = id
            handle(id) { .originIs($0) }
        }
        if fromBootstrap {
            guard abs(welcome.originClock - receivedAt) <= WireLimits.maxClockSkew else {
                logger.warning("ignoring \(id)'s clock: more than a day from ours")
                return
            }
            // Half the handshake-to-welcome round trip is the best guess of the one-way delay.
            clockOffset = welcome.originClock + rtt / 2 - receivedAt
            handle(.stream(rate: welcome.streamRate, substreams: welcome.substreams))
            // Told on to this node's own joiners.
            if welcome.substreams > 0 { streamKnown = true }
            if streamRate == 0 { streamRate = welcome.streamRate }
        }
        onEvent(.welcome(id, originClock: welcome.originClock, streamRate: welcome.streamRate, receivedAt: receivedAt, rtt: rtt))
    }

    /// What this node tells a joiner first: its origin-clock estimate, the stream rate, the origin's key and, at
    /// the origin, its signature over this link.
    func welcomeMessage(binding: [UInt8]) -> EncodedMessage {
        EncodedMessage(.welcome(Welcome(originClock: wallClockMicros() + clockOffset, streamRate: streamRate, originKey: originKey,
                                        originProof: signer?.proveLink(binding),
                                        substreams: configuration.isOrigin || streamKnown ? peer.config.plan.count : 0)))
    }
}

/// Counts an inbound connection against the node's caps from its accept until it names itself in its first
/// announce (an observer: until its handshake is through), and closes it at once when they are full, or when it has
/// not named itself within `nameTimeout`: a connection that completes the handshake and then says nothing holds a
/// place for that long, no longer (1,100 such held every descriptor of a source before).
final class HandshakeGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    private let node: MeshNode
    private var host: String?
    private var deadline: Scheduled<Void>?
    static let nameTimeout = TimeAmount.seconds(5)

    /// Fired down the pipeline when an inbound link has named itself and is counted among the links.
    struct Named {}

    init(node: MeshNode) { self.node = node }

    func channelActive(context: ChannelHandlerContext) {
        let host = context.remoteAddress?.ipAddress ?? "unknown"
        guard node.admitHandshake(from: host) else {
            context.close(promise: nil)
            return
        }
        self.host = host
        deadline = context.eventLoop.scheduleTask(in: Self.nameTimeout) { [weak self] in
            guard self?.host != nil else { return }
            context.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Named { return release() }
        if case .established(_, .observer, _)? = event as? LinkEvent { release() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    private func release() {
        deadline?.cancel()
        if let host { node.handshakeEnded(from: host) }
        host = nil
    }
}

/// One link of a mesh node.
final class MeshLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Message
    private let node: MeshNode
    private var peer: PeerName?
    /// The id an inbound peer claims, where it differs from the name it is bound to (`MeshNode.boundName`).
    private var claimed: PeerName?
    /// An outbound link takes the name its peer gives once, at most.
    private var renamedOnce = false
    private let outbound: Bool
    private var suite = CipherSuite.rc4HmacSHA256
    private var binding: [UInt8] = []
    private var establishedAt: Int64 = 0
    private var failed = false
    /// A `lsp2p-relay mesh` client: it may ask for the view (once a second), is never a peer, and goes when idle.
    private var observer = false
    private var lastViewAt: Int64 = .min / 2
    private var idleCheck: RepeatedTask?
    static let observerIdle: Int64 = 10_000_000
    /// Control messages a peer may send: an honest one sends a few a second, a flood loses its link.
    private var controlBudget = TokenBucket(bytesPerSecond: Double(MeshLinkHandler.controlRate), burst: Double(MeshLinkHandler.controlBurst))
    /// An honest peer's worst: 80 repairs and 50 announces a second while it re-parents, and a few more.
    static let controlRate = 300
    static let controlBurst = 1_000

    init(node: MeshNode, peer: PeerName?) {
        self.node = node
        self.peer = peer
        self.outbound = peer != nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .established(let suite, let role, let binding)? = event as? LinkEvent {
            self.suite = suite
            self.binding = binding
            establishedAt = monotonicMicros()
            if role == .observer, !outbound {
                guard node.admitObserver() else { return context.close(promise: nil) }
                observer = true
                lastViewAt = establishedAt
                let channel = context.channel
                idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
                    if monotonicMicros() - lastViewAt > Self.observerIdle { channel.close(promise: nil) }
                }
            } else if outbound, let peer {
                if !node.linkUp(context.channel, as: peer, outbound: true, suite: suite) {
                    self.peer = nil
                    context.close(promise: nil)
                }
            } else {
                context.writeAndFlush(NIOAny(node.welcomeMessage(binding: binding)), promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        if observer {
            let now = monotonicMicros()
            if case .mesh(.viewRequest) = message, now - lastViewAt >= 1_000_000 || lastViewAt == establishedAt, context.channel.isWritable {
                lastViewAt = now
                context.writeAndFlush(NIOAny(EncodedMessage(.mesh(.view(node.view)))), promise: nil)
            }
            return
        }
        switch message {
        case .mesh, .ping, .pong, .welcome, .bye:
            guard controlBudget.take(1, now: monotonicMicros()) else {
                return errorCaught(context: context, error: WireError.malformed("more than \(Self.controlRate) control messages a second"))
            }
        case .chunk:
            break
        }
        switch message {
        case .mesh(var message):
            if case .announce(var info, let wantPeers) = message {
                if peer == nil {
                    guard let name = MeshNode.boundName(claimed: info.id, remote: context.channel.remoteAddress),
                          node.linkUp(context.channel, as: name, outbound: false, suite: suite) else { return context.close(promise: nil) }
                    if name != info.id { claimed = info.id }
                    peer = name
                    context.channel.pipeline.fireUserInboundEventTriggered(HandshakeGate.Named())
                }
                // It speaks for itself under the name it is bound to.
                if let claimed, info.id == claimed, let peer {
                    info.id = peer
                    message = .announce(info, wantPeers: wantPeers)
                }
                if outbound, !renamedOnce, let dialled = peer, info.id != dialled {
                    renamedOnce = true
                    // Reached at another address than its own: still one peer, with one link.
                    guard node.rename(context.channel, from: dialled, to: info.id) else { return context.close(promise: nil) }
                    peer = info.id
                }
            }
            guard let peer else { return }
            node.receive(message, from: peer)
        case .chunk(let chunk):
            guard let peer else { return }
            node.receiveChunk(chunk, from: peer)
        case .ping(let t):
            if context.channel.isWritable { context.writeAndFlush(NIOAny(EncodedMessage(.pong(t))), promise: nil) }
        case .pong(let t):
            // Our own ping's time back: anything else (from the future, or older than a minute) is not a measurement.
            let rtt = monotonicMicros().saturatingSubtract(t)
            if let peer, (0...WireLimits.maxDelay).contains(rtt) { node.handle(peer) { .linkDelay($0, max(1, rtt / 2)) } }
        case .welcome(let welcome):
            if let peer, outbound { node.welcome(from: peer, welcome, binding: binding, rtt: monotonicMicros() - establishedAt) }
        case .bye:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !failed {
            failed = true
            node.linkFailed(peer, error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if observer {
            idleCheck?.cancel()
            node.observerLeft()
        }
        node.linkDown(context.channel, id: peer)
    }
}
