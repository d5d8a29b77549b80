import NIOCore

/// What went wrong on the wire. Each closes the one link it happened on.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case badMagic
    case unsupportedVersion(UInt8)
    case frameTooLarge(length: Int, limit: Int)
    case unknownFrameType(UInt8)
    case malformed(String)

    public var description: String {
        switch self {
        case .badMagic: return "not an lsp2p peer (bad frame magic)"
        case .unsupportedVersion(let v): return "unsupported protocol version \(v)"
        case .frameTooLarge(let length, let limit): return "frame of \(length) bytes exceeds the \(limit)-byte limit"
        case .unknownFrameType(let t): return "unknown frame type 0x\(String(t, radix: 16))"
        case .malformed(let why): return "malformed frame: \(why)"
        }
    }
}

/// The ranges every value from the wire is checked against where it is decoded (design §6): a core fed only
/// values inside them cannot overflow a sum of a few of them.
public enum WireLimits {
    /// Delays, schedule delays and durations: 0 to 60 s, in µs.
    public static let maxDelay: Int64 = 60_000_000
    /// How far a peer's clock may be from ours: a day, in µs.
    public static let maxClockSkew: Int64 = 86_400_000_000
    /// A stream's rate: up to 10 Gbit/s.
    public static let maxStreamRate: Int64 = 10_000_000_000
    /// Entries in one `peers` answer.
    public static let maxPeers = 64
    /// Ancestors named in one peer record, over all its substreams (a record stays within a few tens of KiB).
    public static let maxAncestorNames = 256
    /// Largest chunk seq: half the range, so that no sum of a seq and a count overflows.
    public static let maxSeq = UInt64.max / 2
    /// Frames before the handshake is through: a hello, a challenge, a proof are well under this.
    public static let handshakeFrame = 1024
}

/// The kinds of frame. Handshake frames travel in clear; every other frame is sealed by the link cipher.
public enum FrameType: UInt8, Sendable {
    case hello = 0x01
    case challenge = 0x02
    case proof = 0x03
    case reject = 0x04
    case sealed = 0x10
}

/// One length-prefixed frame: `"L2" version type length(u32) payload`.
public struct Frame: Equatable, Sendable {
    public static let magic: UInt16 = 0x4C32 // "L2"
    /// 2: the welcome carries k (issue 11). 3: the handshake carries X25519 keys (issue 20). Nodes of another version
    /// refuse each other's frames plainly.
    public static let version: UInt8 = 3
    public static let headerLength = 8
    /// Largest payload accepted by default: a few seconds of a high-rate stream in one chunk.
    public static let defaultMaxPayload = 8 << 20

    public var type: FrameType
    public var payload: ByteBuffer

    public init(type: FrameType, payload: ByteBuffer) {
        self.type = type
        self.payload = payload
    }

    /// The header bytes of a frame with this type and payload length (what a MAC covers).
    public static func header(type: FrameType, length: Int) -> [UInt8] {
        let l = UInt32(length)
        return [0x4C, 0x32, version, type.rawValue,
                UInt8(l >> 24), UInt8((l >> 16) & 0xFF), UInt8((l >> 8) & 0xFF), UInt8(l & 0xFF)]
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeBytes(Frame.header(type: type, length: payload.readableBytes))
        buffer.writeImmutableBuffer(payload)
    }
}

/// A frame size cap shared by a link's decoder and its security handler: small until the peer has proven the
/// channel key, so a stranger cannot make a node buffer megabytes. Used on one event loop only.
public final class FrameLimit: @unchecked Sendable {
    public var value: Int
    public init(_ value: Int) { self.value = value }
}

/// Cuts a byte stream into frames; checks the size cap before it buffers a payload.
/// Runs inside a NIO pipeline (`ByteToMessageHandler`) and outside one (`NIOSingleStepByteToMessageProcessor`).
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder, ByteToMessageDecoder {
    public typealias InboundOut = Frame

    private enum State {
        case waitingForHeader
        case waitingForPayload(type: FrameType, length: Int)
    }

    private var state = State.waitingForHeader
    private let limit: FrameLimit
    /// Largest payload accepted now.
    public var maxPayload: Int { limit.value }

    public init(maxPayload: Int = Frame.defaultMaxPayload) {
        self.limit = FrameLimit(maxPayload)
    }

    /// A decoder whose cap its link raises once the handshake is through (`LinkSecurityHandler`).
    public init(limit: FrameLimit) {
        self.limit = limit
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        if case .waitingForHeader = state {
            guard buffer.readableBytes >= Frame.headerLength else { return nil }
            let magic = buffer.readInteger(as: UInt16.self)!
            let version = buffer.readInteger(as: UInt8.self)!
            let rawType = buffer.readInteger(as: UInt8.self)!
            let length = Int(buffer.readInteger(as: UInt32.self)!)
            guard magic == Frame.magic else { throw WireError.badMagic }
            guard version == Frame.version else { throw WireError.unsupportedVersion(version) }
            guard let type = FrameType(rawValue: rawType) else { throw WireError.unknownFrameType(rawType) }
            guard length <= maxPayload else { throw WireError.frameTooLarge(length: length, limit: maxPayload) }
            state = .waitingForPayload(type: type, length: length)
        }
        guard case .waitingForPayload(let type, let length) = state,
              let payload = buffer.readSlice(length: length) else { return nil }
        state = .waitingForHeader
        return Frame(type: type, payload: payload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        try decode(buffer: &buffer)
    }

    // ByteToMessageDecoder, so the same parser drops into a pipeline.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try decode(buffer: &buffer) else { return .needMoreData }
        context.fireChannelRead(NIOAny(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
