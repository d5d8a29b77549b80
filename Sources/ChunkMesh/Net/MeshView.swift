import MeshCore
import NIOCore
import NIOPosix

/// Asks a mesh node (the origin) what it knows of the mesh: every peer it hears from first hand, with each
/// one's parents, delays and residual units. The link is sealed like any other; the node never takes it for a peer.
public enum MeshView {
    public struct Unanswered: Error, CustomStringConvertible {
        public var description: String { "the node closed the link without answering" }
        public init() {}
    }

    public static func fetch(from address: HostPort, key: ChannelKey, group: EventLoopGroup,
                             timeout: TimeAmount = .seconds(5)) -> EventLoopFuture<[PeerRecord]> {
        let loop = group.next()
        let answer = loop.makePromise(of: [PeerRecord].self)
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder()),
                        LinkSecurityHandler(.initiator(HandshakeInitiator(key: key, role: .observer, nonce: randomNonce()))),
                        ViewHandler(answer: answer),
                    ])
                }
            }
            .connect(host: address.host, port: address.port)
            .whenComplete { result in
                switch result {
                case .failure(let error): answer.fail(error)
                case .success(let channel):
                    let timer = loop.scheduleTask(in: timeout) { answer.fail(ChannelError.connectTimeout(timeout)) }
                    answer.futureResult.whenComplete { _ in
                        timer.cancel()
                        channel.close(promise: nil)
                    }
                }
            }
        return answer.futureResult
    }
}

private final class ViewHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Message
    typealias OutboundOut = EncodedMessage
    let answer: EventLoopPromise<[PeerRecord]>

    init(answer: EventLoopPromise<[PeerRecord]>) { self.answer = answer }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .established? = event as? LinkEvent {
            context.writeAndFlush(wrapOutboundOut(EncodedMessage(.mesh(.viewRequest))), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .mesh(.view(let peers)) = unwrapInboundIn(data) { answer.succeed(peers) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        answer.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) { answer.fail(MeshView.Unanswered()) }
}
