import NIOCore

/// Accepting side to joiner after the handshake.
public struct Welcome: Equatable, Sendable {
    /// Its estimate of the origin's clock, µs (for deadlines across machines).
    public var originClock: Int64
    /// The stream's nominal rate in bits/s (0 if unknown), for sizing upload units.
    public var streamRate: Int64
    /// The origin's public key as this peer holds it: a joiner given none trusts its bootstrap's.
    public var originKey: OriginPublicKey?
    /// From the origin only: its signature over this link's handshake (`OriginSigningKey.proveLink`).
    public var originProof: [UInt8]?
    /// The origin's number of substreams (`source --substreams`): every peer cuts the stream the same way.
    public var substreams: Int

    public init(originClock: Int64, streamRate: Int64, originKey: OriginPublicKey? = nil, originProof: [UInt8]? = nil,
                substreams: Int = SubstreamPlan.defaultCount) {
        self.originClock = originClock
        self.streamRate = streamRate
        self.substreams = substreams
        self.originKey = originKey
        self.originProof = originProof
    }
}

/// What established links say to each other, inside sealed frames.
public enum Message: Equatable, Sendable {
    case welcome(Welcome)
    case chunk(Chunk)
    case ping(Int64)
    case pong(Int64)
    /// A peer leaves on purpose, with a reason for the log.
    case bye(String)
    /// Mesh control: membership, gossip, subscriptions, repair.
    case mesh(WireMeshMessage)

    private enum Tag: UInt8 {
        case welcome = 1, chunk = 2, ping = 3, pong = 4, bye = 5, mesh = 6
    }

    public func encode(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var out: ByteBuffer
        switch self {
        case .welcome(let welcome):
            out = allocator.buffer(capacity: 200)
            out.writeInteger(Tag.welcome.rawValue)
            out.writeInteger(welcome.originClock)
            out.writeInteger(welcome.streamRate)
            out.writeInteger(UInt8(welcome.originKey == nil ? 0 : 1))
            if let key = welcome.originKey { out.writeBytes(key.bytes) }
            let proof = welcome.originProof.flatMap { $0.count == 64 ? $0 : nil }
            out.writeInteger(UInt8(proof == nil ? 0 : 1))
            if let proof { out.writeBytes(proof) }
            out.writeInteger(UInt8(clamping: welcome.substreams))
        case .chunk(let chunk):
            out = allocator.buffer(capacity: 1 + Chunk.headerLength + chunk.payload.readableBytes)
            out.writeInteger(Tag.chunk.rawValue)
            chunk.write(to: &out)
        case .ping(let t), .pong(let t):
            out = allocator.buffer(capacity: 9)
            if case .ping = self { out.writeInteger(Tag.ping.rawValue) } else { out.writeInteger(Tag.pong.rawValue) }
            out.writeInteger(t)
        case .bye(let reason):
            let text = byeText(Array(reason.utf8))
            out = allocator.buffer(capacity: 1 + text.count)
            out.writeInteger(Tag.bye.rawValue)
            out.writeBytes(text)
        case .mesh(let message):
            out = allocator.buffer(capacity: 64)
            out.writeInteger(Tag.mesh.rawValue)
            message.write(to: &out)
        }
        return out
    }

    public static func decode(_ buffer: ByteBuffer) throws -> Message {
        let whole = buffer
        var buffer = buffer
        guard let raw = buffer.readInteger(as: UInt8.self) else { throw WireError.malformed("empty message") }
        guard let tag = Tag(rawValue: raw) else { throw WireError.malformed("unknown message type \(raw)") }
        switch tag {
        case .welcome:
            guard let clock = buffer.readInteger(as: Int64.self), let rate = buffer.readInteger(as: Int64.self),
                  let hasKey = buffer.readInteger(as: UInt8.self) else {
                throw WireError.malformed("welcome truncated")
            }
            // The clock is checked against ours by the node (a day at most); here only what needs no clock.
            guard clock >= 0, (0...WireLimits.maxStreamRate).contains(rate) else { throw WireError.malformed("welcome out of range") }
            var welcome = Welcome(originClock: clock, streamRate: rate)
            if hasKey != 0 {
                guard let bytes = buffer.readBytes(length: 32), let key = try? OriginPublicKey(bytes: bytes) else {
                    throw WireError.malformed("welcome's origin key")
                }
                welcome.originKey = key
            }
            guard let hasProof = buffer.readInteger(as: UInt8.self) else { throw WireError.malformed("welcome truncated") }
            if hasProof != 0 {
                guard let proof = buffer.readBytes(length: 64) else { throw WireError.malformed("welcome's origin proof") }
                welcome.originProof = proof
            }
            // 0: the sender does not know k yet (a relay before its own bootstrap's welcome).
            guard let k = buffer.readInteger(as: UInt8.self), (0...PeerRecord.maxSubstreams).contains(Int(k)) else {
                throw WireError.malformed("welcome's substreams")
            }
            welcome.substreams = Int(k)
            guard buffer.readableBytes == 0 else { throw WireError.malformed("trailing bytes after welcome") }
            return .welcome(welcome)
        case .chunk:
            var chunk = try Chunk.read(from: &buffer)
            // Kept as it came: a relay forwards these bytes, never decoding and re-encoding the chunk.
            chunk.wire = whole
            return .chunk(chunk)
        case .ping, .pong:
            guard let t = buffer.readInteger(as: Int64.self) else { throw WireError.malformed("ping truncated") }
            return tag == .ping ? .ping(t) : .pong(t)
        case .bye:
            return .bye(String(decoding: byeText(buffer.readBytes(length: buffer.readableBytes) ?? []), as: UTF8.self))
        case .mesh:
            let message = try WireMeshMessage.read(from: &buffer)
            guard buffer.readableBytes == 0 else { throw WireError.malformed("trailing bytes after mesh message") }
            return .mesh(message)
        }
    }
}

/// A goodbye's reason as it may reach a log: printable ASCII, 200 bytes at most.
private func byeText(_ bytes: [UInt8]) -> [UInt8] {
    Array(bytes.filter { (0x20...0x7E).contains($0) }.prefix(200))
}
