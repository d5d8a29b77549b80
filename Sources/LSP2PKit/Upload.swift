import ChunkMesh
import MeshCore
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NodeHTTP

/// `--upload-budget` and `--until`: when a node stops uploading (the power-aware node of the LSP2P method goes
/// inactive once it has spent its share).
public struct UploadLimit: Sendable {
    /// Chunk bytes to send to children at most (control messages are not counted).
    public var budget: Int?
    /// Time to upload for, from the start.
    public var until: Duration?

    public init(budget: Int? = nil, until: Duration? = nil) {
        self.budget = budget
        self.until = until
    }

    public var isSet: Bool { budget != nil || until != nil }

    /// Why the node stops uploading now, if it does.
    public func reason(bytesSent: Int, elapsed: Duration) -> String? {
        if let budget, bytesSent >= budget { return "upload budget of \(budget) bytes spent" }
        if let until, elapsed >= until { return "--until \(until) reached" }
        return nil
    }
}

/// Watches a node's upload against its limit and retires it once (make-before-break hand-off of its children),
/// then calls `retired` with the hand-off's duration and how many children had to be let go.
public final class UploadWatch: Sendable {
    private let ticker: StatsTicker

    public init(node: MeshNode, limit: UploadLimit, logger: Logger,
                retired: @escaping @Sendable (_ handOff: Duration, _ letGo: Int) -> Void) {
        let started = ContinuousClock.now
        let fired = NIOLockedValueBox(false)
        ticker = StatsTicker(interval: 0.1) {
            // One tick at a time (the ticker's queue is serial): the flag only stops the ticks still queued.
            guard !fired.withLockedValue({ $0 }),
                  let reason = limit.reason(bytesSent: node.stats.bytesSent, elapsed: ContinuousClock.now - started) else { return }
            fired.withLockedValue { $0 = true }
            let children = node.status()?.children.count ?? 0
            logger.notice("\(reason): no more children; \(children) told to move")
            let from = ContinuousClock.now
            node.retire().whenSuccess { left in
                let took = ContinuousClock.now - from
                logger.notice("hand-off done in \(took.milliseconds) ms: \(children - left) moved, \(left) let go")
                retired(took, left)
            }
        }
    }

    public func stop() { ticker.stop() }
}

/// Serves a node's HTTP routes, with a one-line failure when it cannot.
public func serveHTTP(_ routes: Routes, on listen: HostPort, logger: Logger, what: String = "status page", path: String = "/") throws -> HTTPServer {
    do {
        let server = try HTTPServer(listen: listen, routes: routes)
        logger.info("\(what) at \(server.url)\(path)")
        return server
    } catch {
        throw RuntimeFailure("cannot serve http on \(listen): \(error)")
    }
}

extension Duration {
    /// Whole milliseconds.
    public var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
