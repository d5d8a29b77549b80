import ChunkMesh
import MeshCore
import NIOConcurrencyHelpers
import NIOCore

/// `/live.m3u8` and its segments: the live stream as HLS for browsers, phones and TVs that play it without any
/// script (issue 21). Segments are MPEG-TS made of whole chunks, each starting at a random-access chunk (PAT, PMT
/// and a keyframe), so no remuxing and no FFmpeg: a relay serves it as it forwards. A sliding window of
/// `windowSegments`; a new run of the origin, a loop of the input or a gap starts a segment marked as a
/// discontinuity; the end of the stream ends the playlist.
///
/// Chunks may come in any order (a relay gets its substreams from different parents): they are put in order
/// here, and a chunk missing while `maxWait` of stream is held after it is given up.
public final class LiveSegments: @unchecked Sendable {
    public struct Segment: Sendable {
        /// Its media sequence number: one more than the segment before (HLS counts segments, not chunks).
        public let number: Int
        public let epoch: UInt64
        /// Its first chunk: the segment's name says it.
        public let firstSeq: UInt64
        /// Stream time it covers, µs.
        public fileprivate(set) var duration: Int64 = 0
        public let discontinuity: Bool
        fileprivate var parts: [ByteBuffer] = []
        fileprivate var bytes = 0
        /// The parts in one buffer, made once when the segment closes: every request shares it.
        fileprivate var whole = ByteBuffer()
        public var name: String { "\(epoch)-\(firstSeq).ts" }
    }

    /// A segment closes at the first random-access chunk once it holds this much stream time.
    public let targetDuration: Int64
    public let windowSegments: Int
    /// Stream time held after a missing chunk before it is given up.
    public let maxWait: Int64
    /// A segment closes at this size: at the next random-access chunk, or at once in a stream that has none for
    /// that long (what follows until one comes is not served).
    public static let maxSegmentBytes = 16 << 20
    /// Chunks held out of order, whatever their durations say (a node given no origin key takes unsigned ones).
    public static let maxPending = 512

    private let lock = NIOLock()
    private var closed: [Segment] = []
    private var open: Segment?
    private var nextNumber = 0
    /// Discontinuities that have left the window (`EXT-X-DISCONTINUITY-SEQUENCE`).
    private var discontinuitiesGone = 0
    private var epoch: UInt64?
    /// The next chunk in order, once started at a random-access chunk.
    private var next: UInt64?
    private var pending: [UInt64: Chunk] = [:]
    private var pendingTime: Int64 = 0
    /// The next segment opened follows a break in the stream.
    private var broken = false
    private var ended = false
    /// Gets each chunk put in a segment, in the same order (the stream for `/stream.mp4`), and the end.
    private let follower: TSFollower?

    public init(targetDuration: Int64 = 1_000_000, windowSegments: Int = 6, maxWait: Int64 = 3_000_000, follower: TSFollower? = nil) {
        self.targetDuration = targetDuration
        self.windowSegments = windowSegments
        self.maxWait = maxWait
        self.follower = follower
    }

    /// A chunk of the stream, in any order, from any thread.
    public func add(_ chunk: Chunk) {
        lock.withLock {
            guard !ended else { return }
            if let epoch, chunk.epoch < epoch { return }
            if chunk.epoch != epoch {
                // A new run: what is held of the old one is no use.
                if epoch != nil {
                    closeOpen()
                    broken = true
                    follower?.newRun()
                }
                epoch = chunk.epoch
                clearPending()
            }
            if chunk.flags.contains(.endOfStream) { return end() }
            if let next, chunk.seq < next { return }
            guard pending[chunk.seq] == nil else { return }
            pending[chunk.seq] = chunk
            pendingTime += chunk.duration
            if next == nil {
                // Not started: at the first random-access chunk held (what came before it out of order is dropped).
                guard startAtRandomAccess() else {
                    if pendingTime > maxWait || pending.count > Self.maxPending { clearPending() }
                    return
                }
            }
            drain()
            if pendingTime > maxWait || pending.count > Self.maxPending { skipGap() }
        }
    }

    /// Chunks were given up upstream (a player's playout buffer skipped them): the gap is skipped now.
    public func skipped() {
        lock.withLock { if !pending.isEmpty { skipGap() } }
    }

    /// The stream ended: the playlist says so.
    public func finish() {
        lock.withLock { if !ended { end() } }
    }

    /// `GET /live.m3u8`.
    public func playlist() -> Page {
        let text = lock.withLock { () -> String in
            // The longest segment rounded to the nearest second, as RFC 8216 §4.3.3.1 allows: a player holds back
            // three target durations from the live edge, so 1.2 s segments must not say 2.
            let target = max(1, Int(((closed.map(\.duration).max() ?? targetDuration) + 500_000) / 1_000_000))
            var lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:\(target)",
                         "#EXT-X-MEDIA-SEQUENCE:\(closed.first?.number ?? open?.number ?? nextNumber)",
                         "#EXT-X-DISCONTINUITY-SEQUENCE:\(discontinuitiesGone)"]
            for segment in closed {
                if segment.discontinuity { lines.append("#EXT-X-DISCONTINUITY") }
                lines.append("#EXTINF:\(String(format: "%.3f", Double(segment.duration) / 1e6)),")
                lines.append("live/\(segment.name)")
            }
            if ended { lines.append("#EXT-X-ENDLIST") }
            return lines.joined(separator: "\n") + "\n"
        }
        return Page("application/vnd.apple.mpegurl", text)
    }

    /// `GET /live/EPOCH-SEQ.ts`: a segment still in the window (or just out of it), else nil.
    public func segment(named name: String) -> Page? {
        lock.withLock {
            guard let segment = (closed + retired).first(where: { $0.name == name }) else { return nil }
            return Page("video/mp2t", segment.whole)
        }
    }

    /// Segments in the playlist now.
    public var segments: [Segment] { lock.withLock { closed } }
    /// Chunks held out of order now.
    public var held: Int { lock.withLock { pending.count } }

    /// Segments just out of the window, still served to a client that read the playlist a moment ago.
    private var retired: [Segment] = []

    // Under the lock from here on.

    private func drain() {
        while let next, let chunk = pending.removeValue(forKey: next) {
            pendingTime -= chunk.duration
            append(chunk)
            self.next = next + 1
        }
    }

    /// The chunk awaited is given up: playback goes on at the next random-access chunk held, as a discontinuity.
    private func skipGap() {
        closeOpen()
        broken = true
        if startAtRandomAccess() { drain() } else { clearPending() }
    }

    /// Starts (again) at the first random-access chunk held, dropping what is held before it; false if none is.
    private func startAtRandomAccess() -> Bool {
        guard let start = pending.values.filter(\.isRandomAccess).map(\.seq).min() else { return false }
        for seq in pending.keys where seq < start { pendingTime -= pending.removeValue(forKey: seq)!.duration }
        next = start
        return true
    }

    /// Nothing to start at yet: what is held goes, and the next random-access chunk starts the stream.
    private func clearPending() {
        pending = [:]
        pendingTime = 0
        next = nil
    }

    private func append(_ chunk: Chunk) {
        guard chunk.payload.readableBytes > 0 else { return } // the origin's heartbeats while its sender is away
        if chunk.flags.contains(.discontinuity), open != nil {
            closeOpen()
            broken = true
        }
        if let segment = open, segment.bytes + chunk.payload.readableBytes > Self.maxSegmentBytes {
            closeOpen()
            if !chunk.isRandomAccess { broken = true }
        } else if let segment = open, chunk.isRandomAccess, segment.duration >= targetDuration {
            closeOpen()
        }
        if open == nil {
            guard chunk.isRandomAccess else { return }
            open = Segment(number: nextNumber, epoch: chunk.epoch, firstSeq: chunk.seq, discontinuity: broken && !closed.isEmpty)
            nextNumber += 1
            broken = false
        }
        follower?.write(chunk.payload, randomAccess: chunk.isRandomAccess)
        open!.parts.append(chunk.payload)
        open!.bytes += chunk.payload.readableBytes
        open!.duration += chunk.duration
    }

    private func end() {
        closeOpen()
        ended = true
        follower?.finish()
    }

    private func closeOpen() {
        guard var segment = open else { return }
        open = nil
        segment.whole.reserveCapacity(segment.bytes)
        for part in segment.parts { segment.whole.writeImmutableBuffer(part) }
        segment.parts = []
        closed.append(segment)
        while closed.count > windowSegments {
            let gone = closed.removeFirst()
            if gone.discontinuity { discontinuitiesGone += 1 }
            retired.append(gone)
            if retired.count > 2 { retired.removeFirst() }
        }
    }
}

extension Routes {
    /// `/live.m3u8` and `/live/…ts` from these segments.
    public mutating func serveHLS(_ live: LiveSegments) {
        quickPage("/live.m3u8") { live.playlist() }
        pages(under: "/live/") { name in live.segment(named: name) }
    }
}
