/// A chunk's identity, given in one place at the origin: its run (epoch), its seq in that run (gap-free, from 0),
/// the end of stream, and the origin's signature over all of it. The source's node and the simulator's origin stamp
/// through it alike; what comes before it (an ingest's cuts, a heartbeat's empty chunks) carries no identity.
public struct OriginStamper: Sendable {
    /// The run being stamped (the origin's start time, µs, at a real origin).
    public private(set) var epoch: UInt64
    /// The seq the next chunk gets; how many chunks this run has had.
    public private(set) var nextSeq: UInt64 = 0
    /// Stamped the end of this run's stream: nothing follows it in the run.
    public private(set) var ended = false
    private let signer: OriginSigningKey?

    public init(epoch: UInt64, signer: OriginSigningKey? = nil) {
        self.epoch = epoch
        self.signer = signer
    }

    /// The next chunk of the run: `cut`'s timing, flags and payload under this run's next seq, signed. Nil once the
    /// run has ended (a chunk after the end of stream would be taken by nobody).
    public mutating func stamp(_ cut: Chunk) -> Chunk? {
        guard !ended else { return nil }
        var chunk = cut
        chunk.seq = nextSeq
        chunk.epoch = epoch
        chunk.signature = []
        chunk.wire = nil
        if chunk.isEndOfStream { ended = true } else { nextSeq += 1 }
        signer?.sign(&chunk)
        return chunk
    }

    /// The marker that ends the run, at the seq that would have come next.
    public mutating func endOfStream(ingestTime: Int64) -> Chunk? {
        stamp(.endOfStream(seq: 0, ingestTime: ingestTime))
    }

    /// A new run (a source that came back): seqs from 0 again under an epoch newer than this one and not older
    /// than `startedAt` (µs; 0 where time is not the wall clock's).
    public mutating func newRun(startedAt: UInt64) {
        epoch = max(epoch + 1, startedAt)
        nextSeq = 0
        ended = false
    }
}
