import Histogram

/// Puts chunks back in order for playback and decides, by deadline, when to give up on a missing one.
///
/// Pure: times are passed in (microseconds on the origin's clock). A chunk's deadline is
/// `ingestTime + playoutDelay`. A gap is skipped once a later chunk has arrived and the deadline of that
/// later chunk has passed: the missing one was due no later than that.
public struct PlayoutBuffer {
    public enum Output: Equatable {
        /// The next chunk in order, to be written. `late` if it arrived after its deadline.
        case chunk(Chunk, late: Bool)
        /// The chunks with these seqs were given up on (a gap is skipped in one step, however long).
        case skipped(ClosedRange<UInt64>)
        /// The origin restarted: what follows is a new run of the stream (its timestamps start again).
        case restarted
    }

    public enum Arrival: Equatable {
        case onTime, late
        /// Its seq was already released or skipped, or it is a copy of a buffered chunk.
        case duplicate
        /// Arrived after it was skipped.
        case tooLate
        /// Before the first random-access chunk: a receiver cannot start there. Before playback starts such a chunk is
        /// held, and played if an older random-access chunk comes to start at.
        case beforeStart
        /// From an origin run that has been replaced by a newer one.
        case oldRun
        /// More than `capacity` chunks ahead of the next to play: not a chunk of this stream's present.
        case tooFarAhead
        /// A start too old for a live stream: its deadline passed more than `staleAfter` ago (a replay of a signed
        /// chunk, or a recording fed as live). Playback starts only at a chunk of the present.
        case stale
    }

    public struct Stats: Equatable, Sendable {
        public var received = 0
        public var onTime = 0
        public var late = 0
        public var missing = 0
        public var bytesReceived = 0
        public var duplicates = 0
        /// Times the origin restarted under us.
        public var restarts = 0
        /// Chunks skipped at a stop before their deadline came (`drain(stoppingAt:)`): neither missed nor expected.
        public var cutOff = 0
        /// Times playback started again at the stream's present after every chunk for a while was too far ahead.
        public var reanchors = 0
        /// Released or skipped so far: the chunks the stream had for us.
        public var expected: Int { onTime + late + missing }
    }

    public let playoutDelay: Int64
    /// Largest number of chunks held while waiting for a gap; past it the gap is skipped at once.
    public let capacity: Int
    /// Playback never starts at a chunk whose deadline passed longer ago than this (`Arrival.stale`).
    public let staleAfter: Int64
    /// After this many chunks in a row too far ahead, playback starts again at the next random-access chunk: what
    /// it started at was not of the present (a replayed chunk handed to a fresh player anchored it there, and every
    /// live chunk was then refused).
    public let reanchorAfter: Int
    public private(set) var stats = Stats()
    /// Latency from ingest to arrival, in microseconds.
    public private(set) var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    /// The first seq played; nil until a random-access chunk arrives.
    public private(set) var startSeq: UInt64?
    /// True once the end-of-stream marker has been released.
    public private(set) var finished = false

    private var next: UInt64?
    /// A chunk waiting for its turn, and when it came.
    private typealias Held = (chunk: Chunk, arrival: Int64)
    private var pending: [UInt64: Held] = [:]
    /// Chunks that came before any random-access chunk (the newest `maxEarly`). Parents send a newcomer their backlog
    /// each from its own newest random-access chunk, and the one that starts further back may come last: what came
    /// first is played after it. The node holds those chunks and never asks for them again, so dropping them here
    /// lost them (a player missed the chunks just after its start).
    private var early: [UInt64: Held] = [:]
    public static let maxEarly = 64
    /// Gaps given up on lately (the newest `maxSkipped`), and seqs that came after all.
    private var skipped: [ClosedRange<UInt64>] = []
    private var cameAfterSkip = Set<UInt64>()
    static let maxSkipped = 256
    /// The origin run being played (`Chunk.epoch`); nil before the first chunk.
    public private(set) var epoch: UInt64?
    /// What the last run left to release, ahead of the new run.
    private var carried: [Output] = []
    private var farAheadInARow = 0
    /// When a start was first refused as stale: past `staleAfter` of refusals the clock is taken to be off (a
    /// bootstrap's skewed clock offset, a clock step) and playback starts late rather than never.
    private var staleSince: Int64?

    public init(playoutDelay: Int64, capacity: Int = 4096, staleAfter: Int64? = nil, reanchorAfter: Int = 50) {
        self.playoutDelay = playoutDelay
        self.capacity = capacity
        self.staleAfter = staleAfter ?? max(10_000_000, 4 * playoutDelay)
        self.reanchorAfter = reanchorAfter
    }

    public mutating func receive(_ chunk: Chunk, now: Int64) -> Arrival {
        if let epoch, chunk.epoch < epoch { return .oldRun }
        if let epoch, chunk.epoch > epoch, !finished {
            // A restarted origin counts from 0 again: play out what the old run left, then start over.
            startOver(then: [.restarted])
            stats.restarts += 1
        }
        epoch = chunk.epoch
        if next == nil {
            guard chunk.isRandomAccess else {
                if early[chunk.seq] == nil { early[chunk.seq] = (chunk, now) }
                if early.count > Self.maxEarly { early.removeValue(forKey: early.keys.min()!) }
                return .beforeStart
            }
            if now.saturatingSubtract(deadline(of: chunk)) > staleAfter {
                let since = staleSince ?? now
                staleSince = since
                guard now.saturatingSubtract(since) >= staleAfter else { return .stale }
            }
            staleSince = nil
            next = chunk.seq
            startSeq = chunk.seq
            for (seq, held) in early where seq > chunk.seq && seq - chunk.seq <= UInt64(capacity) {
                pending[seq] = held
                count(held.chunk, now: held.arrival)
            }
            early.removeAll()
        }
        guard let next, chunk.seq >= startSeq! else { return .beforeStart }
        guard chunk.seq < next || chunk.seq - next <= UInt64(capacity) else {
            farAheadInARow += 1
            guard farAheadInARow >= reanchorAfter else { return .tooFarAhead }
            // Where it started was not the present: start again at the next random-access chunk of it.
            startOver(then: [])
            stats.reanchors += 1
            return receive(chunk, now: now) // it may be the random-access chunk to start at
        }
        farAheadInARow = 0
        if chunk.seq < next || pending[chunk.seq] != nil {
            if skipped.contains(where: { $0.contains(chunk.seq) }), cameAfterSkip.insert(chunk.seq).inserted {
                if cameAfterSkip.count > capacity { cameAfterSkip.remove(cameAfterSkip.min()!) }
                count(chunk, now: now)
                return .tooLate
            }
            stats.duplicates += 1
            return .duplicate
        }
        pending[chunk.seq] = (chunk, now)
        count(chunk, now: now)
        return now > deadline(of: chunk) ? .late : .onTime
    }

    private mutating func count(_ chunk: Chunk, now: Int64) {
        guard !chunk.isEndOfStream else { return }
        stats.received += 1
        stats.bytesReceived += chunk.payload.readableBytes
        _ = latency.record(UInt64(max(0, now.saturatingSubtract(chunk.ingestTime))))
    }

    /// Plays out what is held (then `marker`) and starts again at the next random-access chunk.
    private mutating func startOver(then marker: [Output]) {
        carried += drain() + marker
        farAheadInARow = 0
        next = nil
        startSeq = nil
        pending.removeAll()
        early.removeAll()
        skipped.removeAll()
        cameAfterSkip.removeAll()
    }

    /// Releases what can be played now, in order.
    public mutating func pull(now: Int64) -> [Output] {
        var out = carried
        carried.removeAll()
        while !finished, let seq = next {
            if let (chunk, arrival) = pending.removeValue(forKey: seq) {
                next = seq + 1
                if chunk.isEndOfStream {
                    finished = true
                } else if arrival > deadline(of: chunk) {
                    stats.late += 1
                } else {
                    stats.onTime += 1
                }
                out.append(.chunk(chunk, late: arrival > deadline(of: chunk)))
            } else if let due = gapDeadline, now >= due || pending.count >= capacity {
                out.append(skipGap())
            } else {
                break
            }
        }
        return out
    }

    /// Releases what is buffered: the stream is stopping, or its run ended (a restarted origin). Nothing more will
    /// come to fill a gap, and what lies past one refers to pictures in it: play resumes only at a random-access
    /// chunk held beyond it; the chunks before that are skipped with the gap (a decoder would only show errors).
    ///
    /// With `stoppingAt`, the player is stopping then: a chunk skipped whose deadline had not come is cut off by the
    /// stop (`Stats.cutOff`), not missed; it may well have been on its way.
    public mutating func drain(stoppingAt now: Int64? = nil) -> [Output] {
        var out: [Output] = []
        while !finished, let seq = next, !pending.isEmpty {
            if pending[seq] != nil {
                out += pull(now: .min)
            } else {
                let resume = pending.filter { $0.value.chunk.isRandomAccess || $0.value.chunk.isEndOfStream }.keys.min()
                out.append(skip(through: (resume ?? pending.keys.max()! + 1) - 1, stoppingAt: now))
            }
        }
        return out
    }

    /// When the current gap, if any, will be skipped.
    public var gapDeadline: Int64? {
        guard let later = pending.keys.min() else { return nil }
        return deadline(of: pending[later]!.chunk)
    }

    /// Gives up on everything from the next seq to the first chunk held, in one step.
    private mutating func skipGap() -> Output { skip(through: pending.keys.min()! - 1) }

    /// Gives up on everything from the next seq to `last`, in one step; chunks held in that range are dropped.
    private mutating func skip(through last: UInt64, stoppingAt now: Int64? = nil) -> Output {
        let first = next!
        next = last + 1
        var cutOff = 0
        if let now, last - first < UInt64(capacity) * 4 {
            // A seq's deadline: its own chunk's if held, else the next held chunk's less a chunk's duration a seq.
            let held = pending.keys.filter { $0 >= first }.sorted()
            for seq in first...last {
                guard let ref = held.first(where: { $0 >= seq }), let chunk = pending[ref]?.chunk else {
                    cutOff += 1 // after all that came: it had not come yet
                    continue
                }
                let due = deadline(of: chunk).saturatingSubtract(Int64(ref - seq).saturatingMultiply(chunk.duration))
                if due > now { cutOff += 1 }
            }
        }
        if let held = pending.keys.min(), held <= last { pending = pending.filter { $0.key > last } }
        stats.missing += Int(last - first + 1) - cutOff
        stats.cutOff += cutOff
        skipped.append(first...last)
        if skipped.count > Self.maxSkipped { skipped.removeFirst() }
        return .skipped(first...last)
    }

    private func deadline(of chunk: Chunk) -> Int64 { chunk.ingestTime.saturatingAdd(playoutDelay) }
}
