import NIOCore

/// What established links say to each other, inside sealed frames.
public enum Message: Equatable, Sendable {
    /// Accepting side to joiner after the handshake: its estimate of the origin's clock (for deadlines across
    /// machines) and the stream's nominal rate in bits/s (0 if unknown), for sizing upload units.
    case welcome(originClock: Int64, streamRate: Int64)
    case chunk(Chunk)
    case ping(Int64)
    case pong(Int64)
    /// A peer leaves on purpose, with a reason for the log.
    case bye(String)
    /// Mesh control: membership, gossip, subscriptions, repair.
    case mesh(MeshMessage)

    private enum Tag: UInt8 {
        case welcome = 1, chunk = 2, ping = 3, pong = 4, bye = 5, mesh = 6
    }

    public func encode(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var out: ByteBuffer
        switch self {
        case .welcome(let clock, let rate):
            out = allocator.buffer(capacity: 17)
            out.writeInteger(Tag.welcome.rawValue)
            out.writeInteger(clock)
            out.writeInteger(rate)
        case .chunk(let chunk):
            out = allocator.buffer(capacity: 1 + Chunk.headerLength + chunk.payload.readableBytes)
            out.writeInteger(Tag.chunk.rawValue)
            chunk.write(to: &out)
        case .ping(let t), .pong(let t):
            out = allocator.buffer(capacity: 9)
            if case .ping = self { out.writeInteger(Tag.ping.rawValue) } else { out.writeInteger(Tag.pong.rawValue) }
            out.writeInteger(t)
        case .bye(let reason):
            out = allocator.buffer(capacity: 1 + reason.utf8.count)
            out.writeInteger(Tag.bye.rawValue)
            out.writeString(reason)
        case .mesh(let message):
            out = allocator.buffer(capacity: 64)
            out.writeInteger(Tag.mesh.rawValue)
            message.write(to: &out)
        }
        return out
    }

    public static func decode(_ buffer: ByteBuffer) throws -> Message {
        var buffer = buffer
        guard let raw = buffer.readInteger(as: UInt8.self) else { throw WireError.malformed("empty message") }
        guard let tag = Tag(rawValue: raw) else { throw WireError.malformed("unknown message type \(raw)") }
        switch tag {
        case .welcome:
            guard let clock = buffer.readInteger(as: Int64.self), let rate = buffer.readInteger(as: Int64.self) else {
                throw WireError.malformed("welcome truncated")
            }
            return .welcome(originClock: clock, streamRate: rate)
        case .chunk:
            return .chunk(try Chunk.read(from: &buffer))
        case .ping, .pong:
            guard let t = buffer.readInteger(as: Int64.self) else { throw WireError.malformed("ping truncated") }
            return tag == .ping ? .ping(t) : .pong(t)
        case .bye:
            return .bye(buffer.readString(length: buffer.readableBytes) ?? "")
        case .mesh:
            let message = try MeshMessage.read(from: &buffer)
            guard buffer.readableBytes == 0 else { throw WireError.malformed("trailing bytes after mesh message") }
            return .mesh(message)
        }
    }
}
