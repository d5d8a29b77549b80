import ChunkMesh
import FuzzDriver
import NIOCore
import NIOEmbedded

/// The channel key every fuzzed link uses: the fuzzer cannot guess it, so this explores what a stranger reaches.
let key = try! ChannelKey(hex: String(repeating: "5a", count: 32))

/// First byte: which side of the handshake the node plays (even: it accepts, odd: it joins) and how the rest is cut
/// into reads. The rest arrives as the bytes a peer sends.
func fuzzFrames(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let first = bytes.first else { return 0 }
    let limit = FrameLimit(WireLimits.handshakeFrame)
    let side: LinkSecurityHandler.Side = first & 1 == 0
        ? .responder(key: key, suite: .rc4HmacSHA256)
        : .initiator(HandshakeInitiator(key: key, role: .relay, nonce: [UInt8](repeating: 1, count: handshakeNonceLength)))
    let channel = EmbeddedChannel()
    try! channel.pipeline.syncOperations.addHandlers([
        ByteToMessageHandler(FrameDecoder(limit: limit)),
        LinkSecurityHandler(side, frameLimit: limit),
    ])
    _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7000)).wait()
    let step = max(1, Int(first >> 1))
    var rest = bytes.dropFirst()
    while !rest.isEmpty, channel.isActive {
        let read = rest.prefix(step)
        rest = rest.dropFirst(read.count)
        do { try channel.writeInbound(ByteBuffer(bytes: read)) } catch { break }
        while (try? channel.readInbound(as: Message.self)) != nil {}
    }
    // The handshake's timeout fires, and the link closes, as it would on a real loop.
    channel.embeddedEventLoop.advanceTime(by: .seconds(10))
    _ = try? channel.close().wait()
    _ = try? channel.finish()
    return 0
}

runFuzzer { fuzzFrames($0, $1) }
