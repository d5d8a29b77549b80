import Logging
import NIOCore
import NIOPosix

/// What a joining peer hears from its link, on the link's event loop.
public enum JoinEvent: Sendable {
    case established(CipherSuite)
    case message(Message)
    /// The link failed: refused, wrong key, bad frame, bad tag. Followed by `.closed`.
    case failed(Error)
    case closed
}

/// Connects to a peer and runs the join handshake; every later event goes to `onEvent`.
public func join(_ address: HostPort, key: ChannelKey, role: PeerRole, group: EventLoopGroup,
                 connectTimeout: TimeAmount = .seconds(5),
                 onEvent: @escaping @Sendable (JoinEvent) -> Void) -> EventLoopFuture<Channel> {
    ClientBootstrap(group: group)
        .connectTimeout(connectTimeout)
        .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandlers([
                    ByteToMessageHandler(FrameDecoder()),
                    LinkSecurityHandler(.initiator(HandshakeInitiator(key: key, role: role, nonce: randomNonce()))),
                    JoinerHandler(onEvent: onEvent),
                ])
            }
        }
        .connect(host: address.host, port: address.port)
}

/// Turns pipeline traffic into `JoinEvent`s.
final class JoinerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Message
    private let onEvent: @Sendable (JoinEvent) -> Void

    init(onEvent: @escaping @Sendable (JoinEvent) -> Void) { self.onEvent = onEvent }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .established(let suite, _)? = event as? LinkEvent { onEvent(.established(suite)) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onEvent(.message(unwrapInboundIn(data)))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        onEvent(.failed(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onEvent(.closed)
    }
}
