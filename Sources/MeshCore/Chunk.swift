import NIOCore

/// A slice of the live MPEG-TS stream: the unit the mesh moves, orders and deadlines.
public struct Chunk: Equatable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Starts with PAT/PMT and a keyframe: a receiver can start here.
        public static let randomAccess = Flags(rawValue: 1 << 0)
        /// Timestamps jump here (a loop, a restarted input).
        public static let discontinuity = Flags(rawValue: 1 << 1)
        /// No chunk follows; the payload is empty.
        public static let endOfStream = Flags(rawValue: 1 << 2)
    }

    /// Gap-free sequence number from the origin, from 0 in each epoch.
    public var seq: UInt64
    /// Which run of the origin cut it (its start time, µs): a restarted origin starts a new epoch, and peers
    /// drop what they hold of the old one.
    public var epoch: UInt64
    /// Origin wall clock when the chunk was cut, in microseconds since the Unix epoch.
    public var ingestTime: Int64
    /// PTS of its first PES, 90 kHz.
    public var pts: Int64
    /// Stream time it covers, in microseconds.
    public var duration: Int64
    public var flags: Flags
    /// A whole number of 188-byte TS packets.
    public var payload: ByteBuffer
    /// The origin's Ed25519 signature over the rest (`OriginSigningKey.sign`); empty until signed.
    public var signature: [UInt8] = []
    /// The `Message.chunk` bytes this chunk was decoded from, if it came off a link: what a relay sends on (one
    /// copy per hop, the link's cipher's). Not part of what the chunk is (`==` ignores it).
    public internal(set) var wire: ByteBuffer?

    public init(seq: UInt64, epoch: UInt64 = 0, ingestTime: Int64, pts: Int64, duration: Int64, flags: Flags, payload: ByteBuffer) {
        self.seq = seq
        self.epoch = epoch
        self.ingestTime = ingestTime
        self.pts = pts
        self.duration = duration
        self.flags = flags
        self.payload = payload
    }

    public static func == (a: Chunk, b: Chunk) -> Bool {
        (a.seq, a.epoch, a.ingestTime, a.pts, a.duration, a.flags.rawValue) == (b.seq, b.epoch, b.ingestTime, b.pts, b.duration, b.flags.rawValue)
            && a.signature == b.signature && a.payload == b.payload
    }

    public var isRandomAccess: Bool { flags.contains(.randomAccess) }
    public var isEndOfStream: Bool { flags.contains(.endOfStream) }

    /// The marker that closes a stream.
    public static func endOfStream(seq: UInt64, ingestTime: Int64) -> Chunk {
        Chunk(seq: seq, ingestTime: ingestTime, pts: 0, duration: 0, flags: .endOfStream, payload: ByteBuffer())
    }

    static let signatureLength = 64
    static let headerLength = 8 + 8 + 8 + 8 + 8 + 1 + signatureLength

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(seq)
        buffer.writeInteger(epoch)
        buffer.writeInteger(ingestTime)
        buffer.writeInteger(pts)
        buffer.writeInteger(duration)
        buffer.writeInteger(flags.rawValue)
        if signature.count == Self.signatureLength {
            buffer.writeBytes(signature)
        } else {
            buffer.writeRepeatingByte(0, count: Self.signatureLength)
        }
        buffer.writeImmutableBuffer(payload)
    }

    static func read(from buffer: inout ByteBuffer) throws -> Chunk {
        guard let seq = buffer.readInteger(as: UInt64.self),
              let epoch = buffer.readInteger(as: UInt64.self),
              let ingestTime = buffer.readInteger(as: Int64.self),
              let pts = buffer.readInteger(as: Int64.self),
              let duration = buffer.readInteger(as: Int64.self),
              let flags = buffer.readInteger(as: UInt8.self),
              let signature = buffer.readBytes(length: signatureLength)
        else { throw WireError.malformed("chunk header truncated") }
        let payload = buffer.readSlice(length: buffer.readableBytes)!
        guard payload.readableBytes % 188 == 0 else {
            throw WireError.malformed("chunk payload of \(payload.readableBytes) bytes is not whole TS packets")
        }
        // Half of UInt64's range is more chunks than any run has: the rest cannot overflow a `seq + k`.
        guard ingestTime >= 0, (0...WireLimits.maxDelay).contains(duration), seq <= WireLimits.maxSeq else {
            throw WireError.malformed("chunk times out of range")
        }
        var chunk = Chunk(seq: seq, epoch: epoch, ingestTime: ingestTime, pts: pts, duration: duration,
                          flags: Flags(rawValue: flags), payload: payload)
        chunk.signature = signature
        return chunk
    }
}
