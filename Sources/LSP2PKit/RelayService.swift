import ChunkMesh
import MeshCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NodeHTTP

/// `lsp2p-relay relay`: a mesh node that only forwards.
public struct RelayService {
    public var url: JoinURL
    public var key: ChannelKey
    public var listen: HostPort?
    public var uplink: BitRate?
    public var quiet: Bool
    /// The origin's public key; nil trusts the one the bootstrap names.
    public var originKey: OriginPublicKey?
    /// Serve the status page here.
    public var http: HostPort?
    /// Upload this much (or for this long), hand the children over, and leave (exit 0).
    public var limit = UploadLimit()
    /// Makes `/stream.mp4` for browsers (FFmpeg's remux); nil serves HLS and `/watch` only.
    public var fragmenter: BrowserViews.MakeFragmenter?

    public init(url: JoinURL, key: ChannelKey, listen: HostPort?, uplink: BitRate?, quiet: Bool) {
        self.url = url
        self.key = key
        self.listen = listen
        self.uplink = uplink
        self.quiet = quiet
    }

    /// Runs until SIGINT/SIGTERM; leaves the mesh on the way out.
    public func run(logger: Logger) throws {
        if http != nil { PrometheusExport.bootstrap() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let bootstrap = url.address
        // Without an uplink, two streams' worth; with one, the node sizes itself from the welcome.
        let config = joinerConfiguration(bootstrap: bootstrap, key: key, originKey: originKey, listen: listen, units: 2 * SubstreamPlan().count, uplink: uplink)
        let failure = NIOLockedValueBox<String?>(nil)
        // Woken by a stop signal or a failure to join; nothing polls.
        let wake = DispatchSemaphore(value: 0)
        let joined = NIOLockedValueBox(false)
        let failures = NIOLockedValueBox(JoinFailures())
        let source = bootstrap.description
        // The latest chunk's age on arrival (origin clock), the worst in each stats line's second.
        let lag = NIOLockedValueBox<Int64>(0)
        let offset = NIOLockedValueBox<Int64>(0)
        // Browsers and TVs on the LAN watch from here: HLS made of the chunks as they pass, and MP4 with FFmpeg.
        let views = http == nil ? nil : BrowserViews(fragmenter: fragmenter)
        let node = MeshNode(configuration: config, group: group, logger: logger, onEvent: { event in
            switch event {
            case .linkUp(let peer, true, let suite) where peer == source:
                joined.withLockedValue { $0 = true }
                logger.info("joined \(source) (\(suite))")
            case .linkFailed(let peer, let error) where peer == source && !joined.withLockedValue({ $0 }):
                guard failures.withLockedValue({ $0.isFinal(error) }) else { break }
                failure.withLockedValue { $0 = isWrongKey(error) ? "wrong key: \(source) does not hold the channel key (\(key))"
                                                        : "cannot join \(source): \(describeConnectError(error))" }
                wake.signal()
            default:
                break
            }
        }, onDeliver: { chunk in
            let age = wallClockMicros() + offset.withLockedValue { $0 } - chunk.ingestTime
            lag.withLockedValue { $0 = max($0, age) }
            views?.add(chunk)
        })
        let id: PeerName
        do { id = try node.start() } catch { throw RuntimeFailure("cannot listen on \(config.listen): \(error)") }
        logger.info("relay \(id) joining \(source)")
        let signals = StopSignals { sig in
            logger.notice("stopping on signal \(sig)")
            wake.signal()
        }
        defer { withExtendedLifetime(signals) {} }
        let server = try http.map {
            var routes = StatusBoard(role: "relay", node: node, uplink: uplink, budget: limit.budget).routes
            if let views { routes.serveBrowsers(views) }
            return try serveHTTP(routes, on: $0, logger: logger)
        }
        defer { server?.stop() }
        // Spent: the children move first, then the relay leaves.
        let watch = limit.isSet ? UploadWatch(node: node, limit: limit, logger: logger) { _, _ in wake.signal() } : nil
        defer { watch?.stop() }
        let started = monotonicMicros()
        let ticker = quiet ? nil : StatsTicker {
            let s = node.stats
            let snap = node.snapshot()
            offset.withLockedValue { $0 = node.clockOffset }
            let worst = lag.withLockedValue { value -> Int64 in defer { value = 0 }; return value }
            let elapsed = Double(monotonicMicros() - started) / 1e6
            printErr(String(format: "relay %5.1fs | parents %d | children %d | delay %@ (chunks %.0f ms old) | sent %@ | uplink %@ | units %d | dropped %d (live %d, late %d)",
                            elapsed, Set(snap.parents.values).count, snap.children.count,
                            snap.delay.map { String(format: "%.1f ms", Double($0) / 1000) } ?? "-", Double(worst) / 1000,
                            formatRate(bytes: s.bytesSent, seconds: elapsed),
                            BitRate(bitsPerSecond: max(1, s.uplinkEstimate)).description + "bit/s", s.units, s.chunksDropped, s.liveDropped, s.liveLate))
        }
        defer { ticker?.stop() }
        wake.wait()
        if let message = failure.withLockedValue({ $0 }) {
            node.stop(gracefully: false)
            throw RuntimeFailure(message)
        }
        node.stop()
    }
}
