import ChunkMesh
import MeshCore
import Foundation
import LSP2PKit
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NodeHTTP
import StreamIngest

/// `lsp2p-play`: joins, puts chunks in order by their deadlines, writes playable output.
public struct PlayerService: Sendable {
    public var url: JoinURL
    public var key: ChannelKey
    /// A file (.ts, .mp4, .mkv) or - for stdout; nil writes nothing (the stream is served, say).
    public var output: String?
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
    /// Serve the stream to local players at http://HOST:PORT/stream.ts.
    public var serve: HostPort?
    /// Start this player on the served stream; the run ends when it exits.
    public var player: PlayerApp?
    /// Serve the status page here.
    public var http: HostPort?
    /// Upload this much (or for this long), hand the children over, and go on as a leaf.
    public var limit = UploadLimit()

    public init(url: JoinURL, key: ChannelKey, output: String?, duration: Double?, deadlineMs: Int,
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
        setFFmpegLogging(verbose: logger.logLevel <= .debug)
        if http != nil { PrometheusExport.bootstrap() }
        let sink: MediaSink?
        do { sink = try output.map(openSink) } catch { throw RuntimeFailure("\(error)") }
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
    private let sink: MediaSink?
    private let loop: EventLoop
    private let logger: Logger
    private let writer = DispatchQueue(label: "output")
    private let finished: EventLoopPromise<Void>

    private var buffer: PlayoutBuffer
    private var node: MeshNode?
    private let joinedAt = monotonicMicros()
    /// The same instant on the wall clock, for the report: others line their events up with its times.
    private let joinedAtWall = Date().timeIntervalSince1970
    private var joined = false
    private var joinFailures = JoinFailures()
    private var lastChunkAt = monotonicMicros()
    private var firstChunkMs: Double?
    private var parents: [Report.ParentChange] = []
    /// When chunks were given up as missing (`Report.missingAtS`).
    private var missingAt: [[Double]] = []
    private var failure: RuntimeFailure?
    private var sawEndOfStream = false
    private var endOfStreamArrived = false
    private var saidStale = false
    private var done = false
    private var tasks: [RepeatedTask] = []
    private let writeFailure = NIOLockedValueBox<String?>(nil)
    private let metrics = PlayerMetrics()
    private let outputClosed = NIOLockedValueBox(false)
    /// `--serve`: the stream for local players, and its server; `--http`: the status page.
    private let hub: StreamHub?
    /// `/watch`, `/live.m3u8` and `/stream.mp4` on either server: for browsers, phones and TVs.
    private let views: BrowserViews?
    private var servers: [HTTPServer] = []
    private var watch: UploadWatch?
    private var app: Process?
    /// The worst latency of each of the last 60 seconds, and of this one so far (ms), for the status page.
    private var sparkline: [Double] = []
    private var worstThisSecond = 0.0
    /// Silence this long after joining, with no end of stream, means the stream is lost.
    static let silenceLimit: Int64 = 10_000_000

    init(service: PlayerService, sink: MediaSink?, loop: EventLoop, logger: Logger) {
        self.service = service
        self.sink = sink
        self.loop = loop
        self.logger = logger
        self.buffer = PlayoutBuffer(playoutDelay: Int64(service.deadlineMs) * 1000)
        self.finished = loop.makePromise()
        self.hub = service.serve == nil && service.player == nil ? nil : StreamHub()
        self.views = hub == nil && service.http == nil ? nil : BrowserViews(fragmenter: MP4Feed.maker(logger: logger))
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
        // Served first, then joined: nothing the loop does (a failure to join finishes the run) meets these half set.
        do {
            if let hub {
                var routes = Routes()
                routes.streams["/stream.ts"] = hub
                routes.page("/") { StreamHub.index }
                if let views { routes.serveBrowsers(views) }
                // --player alone serves on a free port of loopback.
                let server = try serveHTTP(routes, on: service.serve ?? HostPort(host: "127.0.0.1", port: 0), logger: logger,
                                           what: "the stream, for mpv, vlc or ffplay,", path: "/stream.ts")
                servers.append(server)
                indexURL = server.url
            }
            if let listen = service.http {
                let board = StatusBoard(role: "player", node: node, uplink: service.noUpload ? BitRate(bitsPerSecond: 0) : service.uplink,
                                        budget: service.limit.budget) { [self] status in addPlayback(to: &status) }
                var routes = board.routes
                if let views { routes.serveBrowsers(views) }
                servers.append(try serveHTTP(routes, on: listen, logger: logger))
            }
            try node.start()
        } catch {
            node.stop(gracefully: false)
            for server in servers { server.stop() }
            throw error as? RuntimeFailure ?? RuntimeFailure("cannot listen on \(config.listen): \(error)")
        }
        loop.execute { [self] in
            guard !done else { return }
            // The player comes once the node is up, on the loop, so that `finish` sees it.
            if let app = service.player, let url = indexURL {
                do { self.app = try launch(app, url: url + "/stream.ts") } catch {
                    return finish(failure: "\(error)")
                }
            }
            if service.limit.isSet {
                watch = UploadWatch(node: node, limit: service.limit, logger: logger) { [logger] _, _ in
                    logger.notice("a leaf now: playing on, uploading nothing")
                }
            }
            tasks.append(loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [self] _ in tick() })
            tasks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
                sparkline.append(worstThisSecond)
                if sparkline.count > 60 { sparkline.removeFirst() }
                worstThisSecond = 0
                if !service.quiet { printStats() }
                // The report is kept current while playing (a soak reads it), every few seconds (encoding it costs:
                // fifty players on two cores felt it each second), and written a last time at exit.
                seconds += 1
                if let path = service.reportPath, seconds % Self.reportEvery == 0 { try? report().write(to: path) }
            })
        }
    }

    /// Starts the player on the served stream; when it exits, so does this run.
    private func launch(_ app: PlayerApp, url: String) throws -> Process {
        guard let binary = PlayerApp.find(app.binary) else {
            throw RuntimeFailure("--player \(app.rawValue): \(app.binary) is not on PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = app.arguments(url)
        process.standardInput = FileHandle.nullDevice
        // Our stdout may carry the stream (`--output -`): the player's own output goes nowhere.
        process.standardOutput = FileHandle.nullDevice
        process.terminationHandler = { [self] p in stop(reason: "\(app.rawValue) exited (status \(p.terminationStatus))") }
        do { try process.run() } catch { throw RuntimeFailure("cannot start \(binary): \(error)") }
        logger.info("started \(app.rawValue) on \(url)")
        return process
    }

    /// The player's own figures on the status page, read on the node's loop.
    private func addPlayback(to status: inout NodeStatus) {
        guard let (playback, serve) = try? loop.submit({ [self] () -> (NodeStatus.Playback, NodeStatus.Serve?) in
            let s = buffer.stats
            let h = buffer.latency
            let playback = NodeStatus.Playback(received: s.received, onTime: s.onTime, late: s.late, missing: s.missing,
                                               latencyP50Ms: Double(h.valueAtPercentile(50)) / 1000,
                                               latencyP99Ms: Double(h.valueAtPercentile(99)) / 1000, sparklineMs: sparkline)
            let serve = hub.map { hub in
                let h = hub.currentStats
                return NodeStatus.Serve(url: (indexURL ?? "") + "/stream.ts", clients: h.clients, served: h.served, dropped: h.dropped)
            }
            return (playback, serve)
        }).wait() else { return }
        status.playback = playback
        status.serve = serve
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
            if parents.last.map({ $0.parents != now || $0.fed != map.count }) ?? true, parents.count < 10_000 {
                parents.append(.init(atS: elapsed, parents: now, fed: map.count))
            }
        }
    }

    private func deliver(_ chunk: Chunk) {
        guard !done else { return }
        lastChunkAt = monotonicMicros()
        if chunk.isEndOfStream { endOfStreamArrived = true }
        let now = originNow
        let (reanchors, anchoredAt) = (buffer.stats.reanchors, buffer.startSeq)
        switch buffer.receive(chunk, now: now) {
        case .onTime, .late, .tooLate:
            let latency = max(0, now.saturatingSubtract(chunk.ingestTime))
            metrics.latency.recordMicroseconds(latency)
            worstThisSecond = max(worstThisSecond, Double(latency) / 1000)
        case .stale where !saidStale:
            saidStale = true
            logger.warning("not starting at seq \(chunk.seq): cut \(now.saturatingSubtract(chunk.ingestTime) / 1_000_000) s ago (a replay, or a recording fed as live); waiting for the live stream")
        default: break
        }
        if buffer.stats.reanchors > reanchors || buffer.startSeq != anchoredAt { saidStale = false }
        if buffer.stats.reanchors > reanchors {
            logger.warning("every chunk for a while came too far ahead of seq \(anchoredAt.map(String.init) ?? "?") (where playback started): starting again at the live stream")
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

    private func release(_ outputs: [PlayoutBuffer.Output], countingSkips: Bool = true) {
        for output in outputs {
            switch output {
            case .chunk(let chunk, _) where chunk.isEndOfStream:
                views?.finish()
                sawEndOfStream = true
                logger.info("end of stream")
                finish(failure: nil)
                return
            case .chunk(let chunk, let late):
                (late ? metrics.late : metrics.onTime).increment()
                if firstChunkMs == nil { firstChunkMs = Double(monotonicMicros() - joinedAt) / 1000 }
                let payload = chunk.payload
                hub?.publish(payload, randomAccess: chunk.isRandomAccess)
                views?.add(chunk)
                guard let sink else { continue }
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
                views?.skipped()
                guard countingSkips else { continue }
                metrics.missing.increment(by: seqs.count)
                if missingAt.count < 1_000 { missingAt.append([(elapsed * 10).rounded() / 10, Double(seqs.count)]) }
                logger.debug("skipped chunks \(seqs): missing")
            case .restarted:
                logger.notice("the origin restarted: playing its new run")
            }
        }
    }

    private func finish(failure: String?) {
        guard !done else { return }
        done = true
        // Write out what is buffered; an end of stream met here calls back in and returns at once. What the stop
        // cuts off before its deadline is not counted missing: only what was already due.
        if !sawEndOfStream {
            let missedBefore = buffer.stats.missing
            release(buffer.drain(stoppingAt: originNow), countingSkips: false)
            let missed = buffer.stats.missing - missedBefore
            if missed > 0 {
                metrics.missing.increment(by: missed)
                if missingAt.count < 1_000 { missingAt.append([(elapsed * 10).rounded() / 10, Double(missed)]) }
            }
        }
        self.failure = failure.map(RuntimeFailure.init)
        for task in tasks { task.cancel() }
        watch?.stop()
        hub?.finish()
        // The run is over, so is the player it started (a player that ended it has exited already).
        if let app, app.isRunning { app.terminate() }
        // Leave the mesh (children are told) and stop serving; off the loop, since stopping waits on it, and not
        // behind the output's writes, which a reader that takes nothing can hold for ever.
        let left = DispatchGroup()
        DispatchQueue.global().async(group: left) { [self] in
            for server in servers { server.stop() }
            node?.stop()
        }
        writer.async { [self] in
            left.wait()
            var result = self.failure
            if result == nil, let writeError = writeFailure.withLockedValue({ $0 }) { result = RuntimeFailure(writeError) }
            do { try sink?.finish() } catch { if result == nil { result = RuntimeFailure("\(error)") } }
            loop.execute { [self] in complete(result) }
        }
        // The output's reader stopped reading (a pipe nobody drains): the run ends anyway, its last writes unflushed.
        loop.scheduleTask(in: Self.flushLimit) { [self] in
            guard !completed else { return }
            logger.warning("the output took nothing for \(Self.flushLimit.nanoseconds / 1_000_000_000) s: leaving without flushing it")
            complete(self.failure)
        }
    }

    private var completed = false
    static let flushLimit = TimeAmount.seconds(10)

    private func complete(_ result: RuntimeFailure?) {
        guard !completed else { return }
        completed = true
        if !service.quiet { printStats() }
        if let result { finished.fail(result) } else { finished.succeed(()) }
    }

    private var indexURL: String?
    private var seconds = 0
    static let reportEvery = 5

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
                      durationS: (elapsed * 1000).rounded() / 1000, startedUnixS: (joinedAtWall * 1000).rounded() / 1000,
                      missingAtS: missingAt)
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


/// `--player`: a media player started on the served stream.
public enum PlayerApp: String, CaseIterable, Sendable {
    case mpv, vlc, ffplay

    var binary: String { self == .vlc ? "vlc" : rawValue }

    func arguments(_ url: String) -> [String] {
        switch self {
        case .mpv: ["--force-window=yes", "--title=lsp2p", url]
        case .vlc: ["--play-and-exit", url]
        case .ffplay: ["-hide_banner", "-loglevel", "error", "-autoexit", "-window_title", "lsp2p", url]
        }
    }

    /// The binary's path on PATH, if there.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
