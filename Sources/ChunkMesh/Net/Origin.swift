import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The origin: accepts joiners, and sends each the stream from the newest random-access chunk on,
/// sealed under that link's own keys. Its uplink, if set, bounds what it sends in all.
public final class Origin: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var listen: HostPort
        public var key: ChannelKey
        public var suite: CipherSuite
        public var uplink: BitRate?
        /// A link whose socket stays full this long is closed as too slow.
        public var slowLinkTimeout: TimeAmount = .seconds(10)
        public var maxFramePayload = Frame.defaultMaxPayload

        public init(listen: HostPort, key: ChannelKey, suite: CipherSuite = .rc4HmacSHA256, uplink: BitRate? = nil) {
            self.listen = listen
            self.key = key
            self.suite = suite
            self.uplink = uplink
        }
    }

    public struct Stats: Sendable {
        public var receivers = 0
        public var joined = 0
        public var chunksPublished = 0
        public var bytesSent = 0
        /// Chunks not sent to a link: its socket was full or the uplink was spent.
        public var chunksDropped = 0
        public var linksFailed = 0
    }

    private struct State {
        var links: [ObjectIdentifier: OriginLinkHandler] = [:]
        var history = ChunkHistory(maxBytes: 32 << 20)
        var stats = Stats()
        var bucket: TokenBucket?
    }

    public let configuration: Configuration
    private let group: EventLoopGroup
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private var serverChannel: Channel?

    public init(configuration: Configuration, group: EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        var initial = State()
        if let uplink = configuration.uplink {
            initial.bucket = TokenBucket(bytesPerSecond: uplink.bytesPerSecond, burst: max(uplink.bytesPerSecond / 2, Double(1 << 20)))
        }
        state = NIOLockedValueBox(initial)
    }

    /// Binds and starts accepting; returns the bound address (port 0 picks one).
    public func start() throws -> SocketAddress {
        let config = configuration
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: 2 << 20))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maxPayload: config.maxFramePayload)),
                        LinkSecurityHandler(.responder(key: config.key, suite: config.suite)),
                        OriginLinkHandler(origin: self, eventLoop: channel.eventLoop, logger: logger,
                                          slowLinkTimeout: config.slowLinkTimeout),
                    ])
                }
            }
            .bind(host: config.listen.host, port: config.listen.port)
            .wait()
        serverChannel = channel
        return channel.localAddress!
    }

    public var stats: Stats { state.withLockedValue { $0.stats } }

    /// Sends a chunk to every established link. Safe from any thread.
    public func publish(_ chunk: Chunk) {
        let message = EncodedMessage(.chunk(chunk))
        let links = state.withLockedValue { state -> [OriginLinkHandler] in
            state.history.append(chunk, encoded: message)
            state.stats.chunksPublished += 1
            return Array(state.links.values)
        }
        for link in links { link.enqueue(message, isEndOfStream: chunk.isEndOfStream) }
    }

    /// Waits up to `timeout` for every receiver to take the end of stream and leave, then closes the rest.
    public func finish(timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline, state.withLockedValue({ !$0.links.isEmpty }) {
            usleep(20_000)
        }
        shutdown()
    }

    /// Waits until `count` receivers are established, or `timeout` passes. Returns whether they came.
    public func waitForReceivers(_ count: Int, timeout: TimeAmount) -> Bool {
        let deadline = NIODeadline.now() + timeout
        while state.withLockedValue({ $0.links.count }) < count {
            if NIODeadline.now() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    public func shutdown() {
        let links = state.withLockedValue { Array($0.links.values) }
        for link in links { link.close() }
        try? serverChannel?.close().wait()
    }

    // MARK: called by links on their event loop

    func register(_ link: OriginLinkHandler) -> [(EncodedMessage, Bool)] {
        state.withLockedValue { state in
            state.links[ObjectIdentifier(link)] = link
            state.stats.receivers = state.links.count
            state.stats.joined += 1
            return state.history.sinceNewestRandomAccess()
        }
    }

    func unregister(_ link: OriginLinkHandler, failed: Bool) {
        state.withLockedValue { state in
            if state.links.removeValue(forKey: ObjectIdentifier(link)) != nil, failed { state.stats.linksFailed += 1 }
            state.stats.receivers = state.links.count
        }
    }

    /// Whether the uplink allows `bytes` more now; counts what it allows or drops.
    func admit(_ bytes: Int, force: Bool) -> Bool {
        state.withLockedValue { state in
            let ok = state.bucket?.take(bytes, now: monotonicMicros()) ?? true
            if ok || force { state.stats.bytesSent += bytes } else { state.stats.chunksDropped += 1 }
            return ok || force
        }
    }

    func countDropped() {
        state.withLockedValue { $0.stats.chunksDropped += 1 }
    }
}

/// The recent stream the origin keeps for joiners: everything since the newest random-access chunk.
struct ChunkHistory {
    let maxBytes: Int
    private var chunks: [(EncodedMessage, Bool)] = []
    private var bytes = 0

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    mutating func append(_ chunk: Chunk, encoded: EncodedMessage) {
        if chunk.isRandomAccess {
            chunks.removeAll(keepingCapacity: true)
            bytes = 0
        }
        guard !chunks.isEmpty || chunk.isRandomAccess || chunk.isEndOfStream else { return }
        chunks.append((encoded, chunk.isEndOfStream))
        bytes += encoded.bytes.readableBytes
        if bytes > maxBytes {
            // Too long without a random-access point: a joiner waits for the next one.
            chunks.removeAll(keepingCapacity: true)
            bytes = 0
        }
    }

    func sinceNewestRandomAccess() -> [(EncodedMessage, Bool)] { chunks }
}

/// One receiver of the origin.
final class OriginLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Message

    private weak var origin: Origin?
    /// The link's loop: everything but `enqueue` and `close` runs on it.
    private let eventLoop: EventLoop
    private let logger: Logger
    private let slowLinkTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var peer = "unknown"
    private var established = false
    private var fullSince: NIODeadline?
    private var failed = false

    init(origin: Origin, eventLoop: EventLoop, logger: Logger, slowLinkTimeout: TimeAmount) {
        self.origin = origin
        self.eventLoop = eventLoop
        self.logger = logger
        self.slowLinkTimeout = slowLinkTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.remoteAddress.map(describe) ?? "unknown"
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .established(let suite, let role)? = event as? LinkEvent, let origin else {
            return context.fireUserInboundEventTriggered(event)
        }
        established = true
        logger.info("joined", metadata: ["peer": "\(peer)", "role": "\(role)", "cipher": "\(suite)"])
        context.write(wrapOutbound(.welcome(originClock: wallClockMicros())), promise: nil)
        for (message, eos) in origin.register(self) { send(message, isEndOfStream: eos) }
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .ping(let t): context.writeAndFlush(wrapOutbound(.pong(t)), promise: nil)
        case .bye(let reason):
            logger.info("left", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
            context.close(promise: nil)
        default: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed = true
        logger.warning("closing link: \(error)", metadata: ["peer": "\(peer)"])
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if established {
            origin?.unregister(self, failed: failed)
            logger.info("link closed", metadata: ["peer": "\(peer)"])
        } else if !failed {
            logger.notice("join abandoned during the handshake", metadata: ["peer": "\(peer)"])
        }
        self.context = nil
    }

    /// From any thread: queue a chunk for this link.
    func enqueue(_ message: EncodedMessage, isEndOfStream: Bool) {
        eventLoop.execute { [self] in
            send(message, isEndOfStream: isEndOfStream)
            context?.flush()
        }
    }

    func close() {
        eventLoop.execute { [self] in
            guard let context else { return }
            context.writeAndFlush(wrapOutbound(.bye("origin closing")), promise: nil)
            context.close(promise: nil)
        }
    }

    private func send(_ message: EncodedMessage, isEndOfStream: Bool) {
        guard let context, let origin else { return }
        if !context.channel.isWritable && !isEndOfStream {
            // Live: a receiver that cannot keep up loses chunks, never the others their stream.
            let now = NIODeadline.now()
            if let since = fullSince, now - since > slowLinkTimeout {
                failed = true
                logger.warning("closing link: receiver too slow (socket full for \(slowLinkTimeout.nanoseconds / 1_000_000_000) s)", metadata: ["peer": "\(peer)"])
                context.close(promise: nil)
            }
            fullSince = fullSince ?? now
            origin.countDropped()
            return
        }
        fullSince = nil
        guard origin.admit(message.bytes.readableBytes, force: isEndOfStream) else { return }
        context.write(NIOAny(message), promise: nil)
    }

    private func wrapOutbound(_ message: Message) -> NIOAny { NIOAny(EncodedMessage(message)) }
}
