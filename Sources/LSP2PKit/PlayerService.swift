import ChunkMesh
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import StreamIngest

/// `lsp2p-play`: joins, puts chunks in order by their deadlines, writes playable output.
public struct PlayerService: Sendable {
    public var url: JoinURL
    public var key: ChannelKey
    public var output: String
    public var duration: Double?
    public var deadlineMs: Int
    public var reportPath: String?
    public var quiet: Bool
    /// Upload offered to other peers: nil gives one stream's worth, zero makes a pure leaf.
    public var uplink: BitRate?
    public var noUpload = false
    /// Where to listen for peers; nil picks the interface that reaches the join address.
    public var listen: HostPort?
    /// The origin's public key; nil trusts the one the bootstrap names.
    public var originKey: OriginPublicKey?

    public init(url: JoinURL, key: ChannelKey, output: String, duration: Double?, deadlineMs: Int,
                reportPath: String?, quiet: Bool) {
        self.url = url
        self.key = key
        self.output = output
        self.duration = duration
        self.deadlineMs = deadlineMs
        self.reportPath = reportPath
        self.quiet = quiet
    }

    /// Plays until end of stream, `duration`, or a stop signal. Throws `RuntimeFailure` for exit code 1.
    public func run(logger: Logger) throws {
        let sink: MediaSink
        do { sink = try openSink(output) } catch { throw RuntimeFailure("\(error)") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let session = PlayerSession(service: self, sink: sink, loop: group.next(), logger: logger)
        let signals = StopSignals { sig in session.stop(reason: "signal \(sig)") }
        defer { withExtendedLifetime(signals) {} }
        try session.start(group: group)
        let outcome = session.wait()
        if let reportPath {
            do { try session.report().write(to: reportPath) } catch { throw RuntimeFailure("cannot write report \(reportPath): \(error)") }
        }
        if case .failure(let failure) = outcome { throw failure }
    }
}

/// One player's run: a mesh peer whose chunks go through the playout buffer to the sink.
/// Everything but the writes happens on `loop`, the mesh node's loop.
final class PlayerSession: @unchecked Sendable {
    private let service: PlayerService
    private let sink: MediaSink
    private let loop: EventLoop
    private let logger: Logger
    private let writer = DispatchQueue(label: "output")
    private let finished: EventLoopPromise<Void>

    private var buffer: PlayoutBuffer
    private var node: MeshNode?
    private let joinedAt = monotonicMicros()
    private var joined = false
    private var joinFailures = JoinFailures()
    private var lastChunkAt = monotonicMicros()
    private var firstChunkMs: Double?
    private var parents: [Report.ParentChange] = []
    private var failure: RuntimeFailure?
    private var sawEndOfStream = false
    private var endOfStreamArrived = false
    private var done = false
    private var tasks: [RepeatedTask] = []
    private let writeFailure = NIOLockedValueBox<String?>(nil)
    private let metrics = PlayerMetrics()
    private let outputClosed = NIOLockedValueBox(false)
    /// Silence this long after joining, with no end of stream, means the stream is lost.
    static let silenceLimit: Int64 = 10_000_000

    init(service: PlayerService, sink: MediaSink, loop: EventLoop, logger: Logger) {
        self.service = service
        self.sink = sink
        self.loop = loop
        self.logger = logger
        self.buffer = PlayoutBuffer(playoutDelay: Int64(service.deadlineMs) * 1000)
        self.finished = loop.makePromise()
    }

    private var originNow: Int64 { wallClockMicros() + (node?.clockOffset ?? 0) }
    private var source: String { service.url.address.description }

    func start(group: EventLoopGroup) throws {
        let config = joinerConfiguration(bootstrap: service.url.address, key: service.key, originKey: service.originKey, listen: service.listen,
                                         units: service.noUpload ? 0 : SubstreamPlan().count,
                                         uplink: service.noUpload ? nil : service.uplink)
        let node = MeshNode(configuration: config, group: loop, logger: logger,
                            onEvent: { [self] event in handle(event) },
                            onDeliver: { [self] chunk in deliver(chunk) })
        self.node = node
        do { try node.start() } catch { throw RuntimeFailure("cannot listen on \(config.listen): \(error)") }
        loop.execute { [self] in
            tasks.append(loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [self] _ in tick() })
            if !service.quiet {
                tasks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in printStats() })
            }
        }
    }

    func wait() -> Result<Void, RuntimeFailure> {
        do {
            try finished.futureResult.wait()
            return .success(())
        } catch let failure as RuntimeFailure {
            return .failure(failure)
        } catch {
            return .failure(RuntimeFailure("\(error)"))
        }
    }

    func stop(reason: String) {
        loop.execute { [self] in
            logger.notice("stopping on \(reason)")
            finish(failure: nil)
        }
    }

    private func handle(_ event: MeshNodeEvent) {
        guard !done else { return }
        switch event {
        case .linkUp(let peer, true, let suite) where peer == source:
            joined = true
            lastChunkAt = monotonicMicros()
            logger.info("joined \(source) (\(suite))")
        case .linkUp:
            break
        case .welcome:
            break // the node took the origin clock from its bootstrap
        case .linkFailed(let peer, let error) where peer == source && !joined:
            guard joinFailures.isFinal(error) else { break }
            if isWrongKey(error) {
                finish(failure: "wrong key: \(source) does not hold the channel key (\(service.key))")
            } else if error is HandshakeError || error is WireError || error is LinkCipherError {
                finish(failure: "link to \(source) failed: \(error)")
            } else {
                finish(failure: "cannot connect to \(source): \(describeConnectError(error))")
            }
        case .linkFailed, .linkDown:
            break
        case .parentsChanged(let map):
            let now = Array(Set(map.values)).sorted()
            // The report keeps the first 10,000 changes: a week-long run must not grow without bound.
            if parents.last?.parents != now, parents.count < 10_000 { parents.append(.init(atS: elapsed, parents: now)) }
        }
    }

    private func deliver(_ chunk: Chunk) {
        guard !done else { return }
        lastChunkAt = monotonicMicros()
        if chunk.isEndOfStream { endOfStreamArrived = true }
        let now = originNow
        switch buffer.receive(chunk, now: now) {
        case .onTime, .late, .tooLate: metrics.latency.recordMicroseconds(max(0, now.saturatingSubtract(chunk.ingestTime)))
        default: break
        }
        release(buffer.pull(now: now))
    }

    private func tick() {
        guard !done else { return }
        if let failure = writeFailure.withLockedValue({ $0 }) { return finish(failure: failure) }
        if outputClosed.withLockedValue({ $0 }) {
            logger.notice("output closed by its reader")
            return finish(failure: nil)
        }
        release(buffer.pull(now: originNow))
        if let duration = service.duration, elapsed >= duration { return finish(failure: nil) }
        if joined, monotonicMicros() - lastChunkAt > Self.silenceLimit {
            if endOfStreamArrived { return finish(failure: nil) }
            finish(failure: "lost the stream: nothing from \(source) or any peer for \(Self.silenceLimit / 1_000_000) s")
        }
    }

    private func release(_ outputs: [PlayoutBuffer.Output]) {
        for output in outputs {
            switch output {
            case .chunk(let chunk, _) where chunk.isEndOfStream:
                sawEndOfStream = true
                logger.info("end of stream")
                finish(failure: nil)
                return
            case .chunk(let chunk, let late):
                (late ? metrics.late : metrics.onTime).increment()
                if firstChunkMs == nil { firstChunkMs = Double(monotonicMicros() - joinedAt) / 1000 }
                let payload = chunk.payload
                writer.async { [self] in
                    guard writeFailure.withLockedValue({ $0 }) == nil, !outputClosed.withLockedValue({ $0 }) else { return }
                    do {
                        try sink.write(payload)
                    } catch is OutputClosed {
                        outputClosed.withLockedValue { $0 = true }
                    } catch {
                        writeFailure.withLockedValue { $0 = "\(error)" }
                    }
                }
            case .skipped(let seqs):
                metrics.missing.increment(by: seqs.count)
                logger.debug("skipped chunks \(seqs): deadline passed")
            case .restarted:
                logger.notice("the origin restarted: playing its new run")
            }
        }
    }

    private func finish(failure: String?) {
        guard !done else { return }
        done = true
        // Write out what is buffered; an end of stream met here calls back in and returns at once.
        if !sawEndOfStream { release(buffer.drain()) }
        self.failure = failure.map(RuntimeFailure.init)
        for task in tasks { task.cancel() }
        writer.async { [self] in
            // Leave the mesh (children are told); off the loop, since stopping waits on it.
            node?.stop()
            var result = self.failure
            if result == nil, let writeError = writeFailure.withLockedValue({ $0 }) { result = RuntimeFailure(writeError) }
            do { try sink.finish() } catch { if result == nil { result = RuntimeFailure("\(error)") } }
            loop.execute { [self] in
                if !service.quiet { printStats() }
                if let result { finished.fail(result) } else { finished.succeed(()) }
            }
        }
    }

    private var elapsed: Double { Double(monotonicMicros() - joinedAt) / 1e6 }

    private func printStats() {
        let s = buffer.stats
        printErr(String(format: "play %5.1fs | received %d | on time %d | late %d | missing %d | latency p50 %.0f ms p99 %.0f ms | %@",
                        elapsed, s.received, s.onTime, s.late, s.missing,
                        Double(buffer.latency.valueAtPercentile(50)) / 1000, Double(buffer.latency.valueAtPercentile(99)) / 1000,
                        formatRate(bytes: s.bytesReceived, seconds: elapsed)))
    }

    /// The `--report` figures (design §5). Call after `wait()`.
    func report() -> Report {
        let s = buffer.stats
        let h = buffer.latency
        let count = h.totalCount
        func ms(_ v: UInt64) -> Double { count == 0 ? 0 : (Double(v) / 1000 * 10).rounded() / 10 }
        return Report(chunksExpected: s.expected, chunksReceived: s.received, chunksOnTime: s.onTime, chunksLate: s.late,
                      chunksMissing: s.missing, bytesReceived: s.bytesReceived,
                      latencyMs: .init(p50: ms(h.valueAtPercentile(50)), p90: ms(h.valueAtPercentile(90)),
                                       p99: ms(h.valueAtPercentile(99)), max: ms(h.max)),
                      latencyCdfMs: count == 0 ? [] : Report.cdfPercentiles.map { [$0, ms(h.valueAtPercentile($0))] },
                      firstChunkMs: firstChunkMs, parents: parents, originRestarts: s.restarts,
                      durationS: (elapsed * 1000).rounded() / 1000)
    }
}

/// What a player counts for `--metrics`, besides its node's counters.
struct PlayerMetrics {
    let onTime = Counter(label: "lsp2p_chunks_on_time_total")
    let late = Counter(label: "lsp2p_chunks_late_total")
    let missing = Counter(label: "lsp2p_chunks_missing_total")
    /// Ingest to arrival, on the origin's clock.
    let latency = Metrics.Timer(label: "lsp2p_chunk_latency_seconds")
}

/// `lsp2p-play --report`: the keys tests and scripts read (design §5).
public struct Report: Codable, Equatable {
    public struct Latency: Codable, Equatable {
        public var p50, p90, p99, max: Double
    }
    public struct ParentChange: Codable, Equatable {
        public var atS: Double
        public var parents: [String]
    }

    public var chunksExpected, chunksReceived, chunksOnTime, chunksLate, chunksMissing, bytesReceived: Int
    public var latencyMs: Latency
    /// [percentile, ms] pairs: the latency distribution, for plots.
    public var latencyCdfMs: [[Double]]
    public var firstChunkMs: Double?
    public var parents: [ParentChange]
    /// Times the origin restarted (a new run, timestamps from zero) while this player kept playing.
    public var originRestarts: Int
    public var durationS: Double

    static let cdfPercentiles: [Double] = [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 100]

    public static func load(_ path: String) throws -> Report {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder.reports
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// A joiner's failures to reach its bootstrap before it joined. A wrong key or nobody listening ends the run at
/// once; anything else (a reset or a timeout: a crowded node turns handshakes away) is tried again, as the core
/// redials every 2 s, for `patience` µs.
struct JoinFailures {
    static let patience: Int64 = 30_000_000
    private var first: Int64?

    mutating func isFinal(_ error: Error, now: Int64 = monotonicMicros()) -> Bool {
        let since = first ?? now
        first = since
        return isWrongKey(error) || describeConnectError(error) == "connection refused" || now - since >= Self.patience
    }
}

func describeConnectError(_ error: Error) -> String {
    let text = "\(error)"
    if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
    if text.contains("connectTimeout") { return "timed out" }
    return text
}
