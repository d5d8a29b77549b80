import MeshCore
import NIOCore

/// A chunk's bytes for the links the core hands it to: as it came off a link (one copy per hop, each link's
/// cipher's), or, for the origin's own chunks, encoded once for every link. Only the latest chunk is kept: the core
/// hands one chunk to its links in a row.
struct ChunkEncoding {
    /// A forging node (tests): the payload is replaced, so nothing goes on as it came.
    let forgePayload: Bool
    private var latest: (seq: UInt64, epoch: UInt64, message: EncodedMessage)?

    init(forgePayload: Bool = false) { self.forgePayload = forgePayload }

    mutating func message(for chunk: Chunk) -> EncodedMessage {
        if let latest, latest.seq == chunk.seq, latest.epoch == chunk.epoch { return latest.message }
        let message: EncodedMessage
        if forgePayload, chunk.payload.readableBytes > 0 {
            var forged = chunk
            forged.payload = ByteBuffer(bytes: [UInt8](repeating: 0x47, count: chunk.payload.readableBytes))
            message = EncodedMessage(.chunk(forged))
        } else {
            message = chunk.wire.map(EncodedMessage.init(bytes:)) ?? EncodedMessage(.chunk(chunk))
        }
        latest = (chunk.seq, chunk.epoch, message)
        return message
    }
}
