import MeshCore
import Logging
import NIOCore

/// A message already encoded once, so a chunk fanned out to many links is encoded once and sealed per link.
public struct EncodedMessage: Sendable {
    public var bytes: ByteBuffer
    public init(_ message: Message) { bytes = message.encode() }
    /// A message's bytes as they came off another link (a chunk a relay forwards).
    public init(bytes: ByteBuffer) { self.bytes = bytes }
}

/// What the link tells the handler above it.
public enum LinkEvent: Sendable {
    /// The handshake succeeded: from now on messages flow, sealed with `suite`. `binding` names this link alone
    /// (both sides hold it alike): the origin signs it to prove who it is.
    case established(suite: CipherSuite, role: PeerRole, binding: [UInt8])
}

/// Runs the join handshake, then seals every outgoing message and opens every incoming frame.
///
/// Inbound `Frame` → `Message`; outbound `EncodedMessage` → bytes. A bad frame, a failed tag or a
/// wrong key fires the error up the pipeline and closes this link only.
public final class LinkSecurityHandler: ChannelDuplexHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = Message
    public typealias OutboundIn = EncodedMessage
    public typealias OutboundOut = ByteBuffer

    public enum Side {
        case initiator(HandshakeInitiator)
        case responder(key: ChannelKey, suite: CipherSuite)
    }

    private enum State {
        case initiating(HandshakeInitiator)
        case awaitingHello(key: ChannelKey, suite: CipherSuite)
        case awaitingProof(HandshakeResponder)
        case established(LinkCipher)
        case failed
    }

    private var state: State
    private let handshakeTimeout: TimeAmount
    private var timeout: Scheduled<Void>?
    private let frameLimit: FrameLimit?

    /// `frameLimit`, shared with the link's `FrameDecoder`, is raised to `Frame.defaultMaxPayload` once the other
    /// side has proven the channel key; until then it stays as small as a handshake frame.
    public init(_ side: Side, handshakeTimeout: TimeAmount = .seconds(3), frameLimit: FrameLimit? = nil) {
        switch side {
        case .initiator(let initiator): state = .initiating(initiator)
        case .responder(let key, let suite): state = .awaitingHello(key: key, suite: suite)
        }
        self.handshakeTimeout = handshakeTimeout
        self.frameLimit = frameLimit
    }

    public func channelActive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: handshakeTimeout) {
            let (handler, context) = loopBound.value
            handler.fail(context: context, HandshakeError.malformed("no handshake within \(handler.handshakeTimeout.nanoseconds / 1_000_000_000) s"))
        }
        if case .initiating(var initiator) = state {
            let hello = initiator.hello()
            state = .initiating(initiator)
            writeFrame(context: context, hello, promise: nil)
            context.flush()
        }
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Frames already buffered when the link was closed (a flood, say) are not worth opening.
        guard context.channel.isActive else { return }
        do {
            switch state {
            case .established(var cipher):
                guard frame.type == .sealed else { throw HandshakeError.unexpected(frame.type) }
                let plain = try cipher.open(frame.payload)
                state = .established(cipher)
                context.fireChannelRead(wrapInboundOut(try Message.decode(plain)))
            case .initiating(let initiator):
                let (proof, cipher, suite, binding) = try initiator.receive(frame)
                writeFrame(context: context, proof, promise: nil)
                context.flush()
                establish(context: context, cipher: cipher, suite: suite, role: initiator.role, binding: binding)
            case .awaitingHello(let key, let suite):
                var responder = HandshakeResponder(key: key, suite: suite, nonce: randomNonce(),
                                                   clientAddress: context.remoteAddress.map(describe) ?? "unknown")
                let challenge = try responder.receiveHello(frame)
                state = .awaitingProof(responder)
                writeFrame(context: context, challenge, promise: nil)
                context.flush()
            case .awaitingProof(let responder):
                let cipher = try responder.receiveProof(frame)
                establish(context: context, cipher: cipher, suite: cipher.suite, role: responder.role ?? .player, binding: responder.binding)
            case .failed:
                return
            }
        } catch {
            // Tell the other side why, so both logs name the key.
            switch state {
            case .awaitingProof, .initiating:
                if error as? HandshakeError == .wrongKey {
                    writeFrame(context: context, HandshakeResponder.reject("wrong key"), promise: nil)
                    context.flush()
                }
            default: break
            }
            fail(context: context, error)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .established(var cipher) = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let frame = cipher.seal(unwrapOutboundIn(data).bytes, allocator: context.channel.allocator)
        state = .established(cipher)
        writeFrame(context: context, frame, promise: promise)
    }

    private func establish(context: ChannelHandlerContext, cipher: LinkCipher, suite: CipherSuite, role: PeerRole, binding: [UInt8]) {
        timeout?.cancel()
        state = .established(cipher)
        frameLimit?.value = Frame.defaultMaxPayload
        context.fireUserInboundEventTriggered(LinkEvent.established(suite: suite, role: role, binding: binding))
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        if case .failed = state { return }
        state = .failed
        timeout?.cancel()
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func writeFrame(context: ChannelHandlerContext, _ frame: Frame, promise: EventLoopPromise<Void>?) {
        var header = context.channel.allocator.buffer(capacity: Frame.headerLength)
        header.writeBytes(Frame.header(type: frame.type, length: frame.payload.readableBytes))
        context.write(wrapOutboundOut(header), promise: nil)
        context.write(wrapOutboundOut(frame.payload), promise: promise)
    }
}

/// `HOST:PORT` of a socket address, IPv6 in brackets.
public func describe(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return HostPort(host: ip, port: port).description
}

extension LinkSecurityHandler: @unchecked Sendable {}
