import ChunkMesh
import MeshCore
import Foundation
import LSP2PKit
import Logging
import NodeHTTP
import NIOCore
import NIOPosix
import StreamIngest

/// `lsp2p-relay source`: ingest plus the origin.
public struct SourceService {
    public var ingest: IngestOptions
    public var listen: HostPort
    public var key: ChannelKey
    public var suite: CipherSuite
    public var uplink: BitRate?
    public var waitReceivers: Int
    public var quiet: Bool
    /// k: the stream is cut into this many substreams (the unit of upload); joiners take it from the welcome.
    public var substreams = SubstreamPlan.defaultCount
    /// Signs every chunk; its public key goes in the join URL. Nil makes one for this run.
    public var originSigner: OriginSigningKey?
    /// Serve the status page (with the mesh drawn) here.
    public var http: HostPort?
    /// When the sender goes (OBS stops), wait for it to come back and go on as a new run, instead of ending.
    public var reconnect = false

    public init(ingest: IngestOptions, listen: HostPort, key: ChannelKey, originSigner: OriginSigningKey?, suite: CipherSuite,
                uplink: BitRate?, waitReceivers: Int, quiet: Bool) {
        self.originSigner = originSigner
        self.ingest = ingest
        self.listen = listen
        self.key = key
        self.suite = suite
        self.uplink = uplink
        self.waitReceivers = waitReceivers
        self.quiet = quiet
    }

    /// Runs until the input ends (or a stop signal); returns after receivers have the end of stream.
    public func run(logger: Logger) throws {
        setFFmpegLogging(verbose: logger.logLevel <= .debug)
        if http != nil { PrometheusExport.bootstrap() }
        let stop = StopRequest()
        var ingest: Ingest
        do { ingest = try Ingest(options: self.ingest, stop: stop) } catch { throw RuntimeFailure("\(error)") }
        logger.info("input \(self.ingest.input.location): \(ingest.streamSummary.joined(separator: ", "))")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(4, System.coreCount)))
        defer { try? group.syncShutdownGracefully() }
        let plan = SubstreamPlan(count: substreams)
        // What the mesh carries is MPEG-TS: packet headers, PES headers, PAT/PMT and padding add 5-10 % to the
        // codecs' rate. Units sized on the bare rate oversubscribe an uplink, and a drained bucket starves the mesh.
        let rate = ingest.nominalBitRate * 11 / 10
        // Units the origin serves: its uplink over one substream's rate; without an uplink, as many as come.
        let units: Int
        var sched: Int64 = 1_000
        if let uplink {
            let streamRate = BitRate(bitsPerSecond: Double(rate > 0 ? rate : 4_000_000))
            units = plan.units(uplink: uplink, streamRate: streamRate)
            sched = SubstreamPlan.scheduleDelay(streamRate: streamRate, chunkDuration: self.ingest.chunkDuration, uplink: uplink)
            logger.info("uplink \(uplink)bit/s serves \(units) substream units of \(streamRate)bit/s / \(plan.count)")
        } else {
            units = 100_000
        }
        var config = MeshNode.Configuration(listen: listen, key: key, isOrigin: true, bootstrap: nil, capacityUnits: units,
                                            scheduleDelay: sched, seed: UInt64.random(in: 0...UInt64.max), uplink: uplink)
        config.suite = suite
        config.substreams = plan.count
        config.chunkDuration = self.ingest.chunkDuration
        config.advertise = advertisedHost(listen.host)
        let signer = originSigner ?? OriginSigningKey()
        config.originSigner = signer
        let origin = MeshNode(configuration: config, group: group, logger: logger)
        origin.streamRate = rate
        let id: PeerName
        do { id = try origin.start() } catch { throw RuntimeFailure("cannot listen on \(listen): \(error)") }
        let url = JoinURL(address: HostPort(id)!, key: key, origin: signer.publicKey)
        printErr("join: \(url)")
        let server: HTTPServer?
        let views = http == nil ? nil : BrowserViews(fragmenter: MP4Feed.maker(logger: logger))
        do {
            server = try http.map { listen in
                let picture = MeshPicture(address: HostPort(id)!, key: key)
                var routes = StatusBoard(role: "origin", node: origin, uplink: uplink, meshSvg: true).routes
                routes.page("/mesh.svg") { picture.page() }
                if let views { routes.serveBrowsers(views) }
                return try serveHTTP(routes, on: listen, logger: logger)
            }
        } catch {
            origin.stop()
            throw error
        }
        defer { server?.stop() }
        if originSigner == nil {
            logger.warning("signing with an origin key made for this run: a restarted origin would not be believed (keep one: lsp2p-relay keygen)")
        }

        let signals = StopSignals { sig in
            logger.notice("stopping on signal \(sig)")
            stop.request()
        }
        defer { withExtendedLifetime(signals) {} }

        if waitReceivers > 0 {
            logger.info("waiting for \(waitReceivers) receiver(s)")
            while origin.stats.links < waitReceivers, !stop.isRequested { usleep(20_000) }
            // Linked is not yet fed: the stream starts once one of them has subscribed (a few seconds at most), or a
            // fast input would be gone before the first subscribe comes.
            let linked = monotonicMicros()
            while origin.snapshot().children.isEmpty, monotonicMicros() - linked < 5_000_000, !stop.isRequested { usleep(20_000) }
        }

        let started = monotonicMicros()
        let ticker = quiet ? nil : StatsTicker {
            let s = origin.stats
            let elapsed = Double(monotonicMicros() - started) / 1e6
            printErr(String(format: "source %5.1fs | links %d | sent %@ (%@) | uplink %@ | units %d | dropped %d (live %d, late %d)",
                            elapsed, s.links,
                            ByteCountFormatter.string(fromByteCount: Int64(s.bytesSent), countStyle: .binary),
                            formatRate(bytes: s.bytesSent, seconds: elapsed),
                            BitRate(bitsPerSecond: max(1, s.uplinkEstimate)).description + "bit/s", s.units, s.chunksDropped, s.liveDropped, s.liveLate))
        }
        defer { ticker?.stop() }

        do {
            while true {
                // The origin gives each chunk its identity (run, seq, signature): the views get them as the mesh does.
                let cut = try ingest.run { chunk in
                    if let stamped = origin.publish(chunk) { views?.add(stamped) }
                }
                guard reconnect, !stop.isRequested else { break }
                logger.notice("the sender is gone after \(cut) chunks; waiting for it to come back (--reconnect)")
                let beat = Heartbeat(origin: origin, every: self.ingest.chunkDuration)
                let next = waitForTheSender(stop: stop, logger: logger)
                beat.stop()
                guard let next else { break }
                ingest = next
                origin.startNewRun()
                logger.notice("the sender is back: a new run of the stream (\(ingest.streamSummary.joined(separator: ", ")))")
            }
        } catch {
            origin.stop()
            throw RuntimeFailure("\(error)")
        }
        let last = origin.endStream()
        views?.finish()
        logger.info("end of stream after \(last) chunks; waiting for peers to finish")
        // Peers leave once they have the end of stream; a stalled one is not waited for past 10 s.
        let deadline = monotonicMicros() + 10_000_000
        while origin.stats.links > 0, monotonicMicros() < deadline { usleep(20_000) }
        origin.stop()
        let s = origin.stats
        logger.info("done: \(last) chunks, \(s.bytesSent) bytes sent over \(s.joined) link(s), \(s.chunksDropped) dropped")
    }
}


extension SourceService {
    /// Opens the input again until it opens (a listener waits in the open; a camera pulled from is tried every
    /// second); nil on a stop.
    func waitForTheSender(stop: StopRequest, logger: Logger) -> Ingest? {
        var told = false
        while !stop.isRequested {
            do { return try Ingest(options: ingest, stop: stop) } catch {
                if stop.isRequested { break }
                if !told { logger.notice("\(error); trying again every second") }
                told = true
                for _ in 0..<50 where !stop.isRequested { usleep(20_000) }
            }
        }
        return nil
    }
}

/// While the sender is away (`--reconnect`), the run goes on with empty chunks, one per chunk duration: peers keep
/// their parents (a silent parent is dropped as starving its children) and players wait for the stream.
final class Heartbeat {
    private let queue = DispatchQueue(label: "lsp2p.heartbeat")
    private let timer: DispatchSourceTimer

    init(origin: MeshNode, every period: Int64) {
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: .microseconds(Int(max(20_000, period))))
        timer.setEventHandler {
            origin.publish(Chunk(seq: 0, ingestTime: wallClockMicros(), pts: 0, duration: 0, flags: [], payload: ByteBuffer()))
        }
        timer.resume()
    }

    /// Stops, once no beat is under way.
    func stop() {
        timer.cancel()
        queue.sync {}
    }
}
