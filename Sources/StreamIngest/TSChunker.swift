import ChunkMesh
import MeshCore
import NIOCore

/// Cuts an MPEG-TS byte stream into chunks, by reading the TS itself: PAT/PMT for the video PID,
/// the random-access indicator for keyframes, PES headers for time.
///
/// A keyframe always starts a chunk, taking the PAT/PMT that precede it along, so such a chunk is
/// random-access. Between keyframes a chunk is cut at the first PES start past the target duration.
/// With no video, chunks are cut by time at a PAT and are all random-access.
public struct TSChunker {
    /// A cut chunk before the origin gives it a seq and an ingest time.
    public struct Cut: Equatable {
        public var payload: ByteBuffer
        public var pts: Int64
        public var duration: Int64
        public var randomAccess: Bool
    }

    public static let packetSize = 188
    public let targetDuration: Int64 // µs

    private var partial: [UInt8] = []
    private var current = ByteBuffer()
    private var currentPTS: Int64?
    private var currentDTS: Int64?
    private var currentRandomAccess = false
    /// Offset in `current` where a run of PSI packets (PAT, PMT, SDT) began, with nothing after it yet.
    private var psiRunStart: Int?
    private var pmtPID: Int?
    private var videoPID: Int?
    private var lastDTS: Int64?
    public private(set) var packetsSkipped = 0

    public init(targetDuration: Int64) {
        self.targetDuration = targetDuration
    }

    /// Adds bytes as the muxer writes them (any alignment); returns the chunks completed by them.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [Cut] {
        var cuts: [Cut] = []
        var offset = 0
        if !partial.isEmpty {
            let need = Self.packetSize - partial.count
            let take = min(need, bytes.count)
            partial += bytes[0..<take]
            offset = take
            guard partial.count == Self.packetSize else { return [] }
            let packet = partial
            partial = []
            packet.withUnsafeBytes {
                handle(packet: $0, cuts: &cuts)
                flushStaged()
            }
        }
        while bytes.count - offset >= Self.packetSize {
            handle(packet: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Self.packetSize]), cuts: &cuts)
            offset += Self.packetSize
        }
        flushStaged()
        if offset < bytes.count { partial += bytes[offset...] }
        return cuts
    }

    /// Packets handled but not yet copied into `current`: consecutive packets of the caller's buffer,
    /// copied in one go at a cut or at the end of `feed` (never kept past it).
    private var staged = UnsafeRawBufferPointer(start: nil, count: 0)

    private mutating func stage(_ packet: UnsafeRawBufferPointer) {
        if let base = staged.baseAddress, base + staged.count == packet.baseAddress {
            staged = UnsafeRawBufferPointer(start: base, count: staged.count + packet.count)
        } else {
            flushStaged()
            staged = packet
        }
    }

    private mutating func flushStaged() {
        if staged.count > 0 { current.writeBytes(staged) }
        staged = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Where the next packet will sit in `current`.
    private var position: Int { current.writerIndex + staged.count }

    public mutating func feed(_ bytes: [UInt8]) -> [Cut] {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// The last chunk, at the end of the stream.
    public mutating func flush() -> [Cut] {
        guard current.readableBytes > 0 else { return [] }
        let start = currentDTS ?? 0
        let cut = Cut(payload: current, pts: currentPTS ?? 0,
                      duration: max(0, ptsDelta(lastDTS ?? start, start)) * 1_000_000 / 90_000, randomAccess: currentRandomAccess)
        current = ByteBuffer()
        currentPTS = nil
        currentDTS = nil
        psiRunStart = nil
        return [cut]
    }

    private mutating func handle(packet p: UnsafeRawBufferPointer, cuts: inout [Cut]) {
        guard p[0] == 0x47 else {
            packetsSkipped += 1
            return
        }
        let pid = Int(p[1] & 0x1F) << 8 | Int(p[2])
        let unitStart = p[1] & 0x40 != 0
        let adaptation = p[3] & 0x20 != 0
        let hasPayload = p[3] & 0x10 != 0
        var payloadStart = 4
        var randomAccessIndicator = false
        if adaptation {
            let length = Int(p[4])
            if length > 0 { randomAccessIndicator = p[5] & 0x40 != 0 }
            payloadStart = 5 + length
        }
        guard payloadStart <= Self.packetSize else {
            packetsSkipped += 1
            return
        }
        let payload = hasPayload ? UnsafeRawBufferPointer(rebasing: p[payloadStart...]) : UnsafeRawBufferPointer(rebasing: p[0..<0])

        let isPSI = pid == 0 || pid == 0x11 || pid == pmtPID
        if unitStart, pid == 0 { parsePAT(payload) }
        if unitStart, pid == pmtPID { parsePMT(payload) }

        if isPSI {
            if psiRunStart == nil { psiRunStart = position }
        } else {
            if unitStart, let (pts, dts) = pesTimes(payload) {
                let keyframe = pid == videoPID && randomAccessIndicator
                let timed = videoPID == nil || pid == videoPID
                if let start = currentDTS {
                    // Decode time: with B-frames the PTS jumps back and forth.
                    let due = timed && ptsDelta(dts, start) * 1_000_000 / 90_000 >= targetDuration
                    if keyframe || due {
                        let startsWithPSI = psiRunStart != nil
                        cut(at: dts, pts: pts, cuts: &cuts)
                        currentRandomAccess = startsWithPSI && (keyframe || videoPID == nil)
                    }
                } else {
                    currentRandomAccess = psiRunStart == 0 && (keyframe || videoPID == nil)
                    currentDTS = dts
                    currentPTS = pts
                }
                lastDTS = timed ? dts : (lastDTS ?? dts)
            }
            psiRunStart = nil
        }
        stage(p)
    }

    /// Ends the current chunk before the PSI run (if any) that leads up to this packet.
    private mutating func cut(at dts: Int64, pts: Int64, cuts: inout [Cut]) {
        flushStaged()
        let split = psiRunStart ?? current.writerIndex
        let payload = current.getSlice(at: 0, length: split)!
        let carried = current.getSlice(at: split, length: current.writerIndex - split)!
        cuts.append(Cut(payload: payload, pts: currentPTS!, duration: max(0, ptsDelta(dts, currentDTS!)) * 1_000_000 / 90_000,
                        randomAccess: currentRandomAccess))
        current = ByteBuffer()
        current.reserveCapacity(payload.readableBytes + 4096)
        current.writeImmutableBuffer(carried)
        psiRunStart = carried.readableBytes > 0 ? 0 : nil
        currentDTS = dts
        currentPTS = pts
    }

    private mutating func parsePAT(_ payload: UnsafeRawBufferPointer) {
        guard let section = psiSection(payload, tableID: 0x00) else { return }
        var i = 8
        while i + 4 <= section.count - 4 {
            let program = Int(section[i]) << 8 | Int(section[i + 1])
            let pid = Int(section[i + 2] & 0x1F) << 8 | Int(section[i + 3])
            if program != 0 {
                pmtPID = pid
                return
            }
            i += 4
        }
    }

    private mutating func parsePMT(_ payload: UnsafeRawBufferPointer) {
        guard let section = psiSection(payload, tableID: 0x02), section.count >= 12 else { return }
        let programInfoLength = Int(section[10] & 0x0F) << 8 | Int(section[11])
        var i = 12 + programInfoLength
        var video: Int?
        while i + 5 <= section.count - 4 {
            let streamType = section[i]
            let pid = Int(section[i + 1] & 0x1F) << 8 | Int(section[i + 2])
            let infoLength = Int(section[i + 3] & 0x0F) << 8 | Int(section[i + 4])
            if video == nil, Self.videoStreamTypes.contains(streamType) { video = pid }
            i += 5 + infoLength
        }
        videoPID = video
    }

    /// MPEG-1/2 video, MPEG-4 part 2, H.264, HEVC, VVC, CAVS, VC-1, Dirac.
    static let videoStreamTypes: Set<UInt8> = [0x01, 0x02, 0x10, 0x1B, 0x24, 0x33, 0x42, 0xEA, 0xD1]

    /// The section of a PSI packet that starts one (pointer field honoured), bounded by its length.
    private func psiSection(_ payload: UnsafeRawBufferPointer, tableID: UInt8) -> [UInt8]? {
        guard payload.count > 1 else { return nil }
        let start = 1 + Int(payload[0])
        guard start + 3 <= payload.count, payload[start] == tableID else { return nil }
        let length = Int(payload[start + 1] & 0x0F) << 8 | Int(payload[start + 2])
        let end = min(payload.count, start + 3 + length)
        return Array(payload[start..<end])
    }

    /// PTS and DTS (the PTS when absent) of a PES that starts in this payload, if it has them.
    private func pesTimes(_ b: UnsafeRawBufferPointer) -> (pts: Int64, dts: Int64)? {
        guard b.count >= 14, b[0] == 0, b[1] == 0, b[2] == 1, b[7] & 0x80 != 0 else { return nil }
        func timestamp(_ i: Int) -> Int64 {
            Int64(b[i] & 0x0E) << 29 | Int64(b[i + 1]) << 22 | Int64(b[i + 2] & 0xFE) << 14 | Int64(b[i + 3]) << 7 | Int64(b[i + 4]) >> 1
        }
        let pts = timestamp(9)
        let dts = b[7] & 0x40 != 0 && b.count >= 19 ? timestamp(14) : pts
        return (pts, dts)
    }
}

/// `a - b` on the 33-bit PTS clock, taking a wrap into account.
func ptsDelta(_ a: Int64, _ b: Int64) -> Int64 {
    let modulus: Int64 = 1 << 33
    var d = (a - b) % modulus
    if d > modulus / 2 { d -= modulus }
    if d < -modulus / 2 { d += modulus }
    return d
}
