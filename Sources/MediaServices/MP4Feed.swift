import ChunkMesh
import MeshCore
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NodeHTTP
import StreamIngest

/// `/stream.mp4`: the node's stream remuxed by libavformat into fragmented MP4 for browsers, one remux for all
/// clients (each starts at the newest keyframe's fragment). A remux that fails (a stream it cannot read) ends its
/// clients' responses and starts again at a later random-access chunk, at most once every `retryAfter`. A new run
/// of the origin (a sender back with another resolution, say) starts a new remux with its own header; the
/// clients' responses end, and the page opens the stream again.
public final class MP4Feed: TSFollower, @unchecked Sendable {
    static let retryAfter: Int64 = 10_000_000

    private let hub: StreamHub
    private let logger: Logger
    private let lock = NIOLock()
    private var sink: RemuxSink?
    private var failedAt: Int64?
    private var finished = false
    /// Which remux may publish: one that was replaced may still be cutting its last fragments.
    private var generation = 0

    init(hub: StreamHub, logger: Logger) {
        self.hub = hub
        self.logger = logger
    }

    /// The maker `BrowserViews` takes.
    public static func maker(logger: Logger) -> BrowserViews.MakeFragmenter {
        { hub in MP4Feed(hub: hub, logger: logger) }
    }

    public func write(_ bytes: ByteBuffer, randomAccess: Bool) {
        lock.withLock {
            guard !finished else { return }
            if sink == nil {
                guard randomAccess, failedAt.map({ monotonicMicros() - $0 >= Self.retryAfter }) ?? true else { return }
                sink = makeSink()
            }
            do {
                try sink?.write(bytes)
            } catch {
                logger.warning("/stream.mp4: \(error); its viewers start again in \(Self.retryAfter / 1_000_000) s")
                dropSink()
                failedAt = monotonicMicros()
            }
        }
    }

    /// Under the lock: the remux goes (it may still be cutting its last fragments: they are not published), and its
    /// viewers' responses end.
    private func dropSink() {
        generation += 1
        let old = sink
        sink = nil
        hub.reset()
        DispatchQueue.global().async { try? old?.finish() }
    }

    public func newRun() {
        lock.withLock {
            dropSink()
            failedAt = nil
        }
    }

    public func finish() {
        let sink = lock.withLock { () -> RemuxSink? in
            finished = true
            defer { self.sink = nil }
            return self.sink
        }
        // The last fragment is cut once the remux has read everything: off the caller's thread (a node's loop).
        DispatchQueue.global().async { [hub] in
            try? sink?.finish()
            hub.finish()
        }
    }

    /// Under the lock. What it cuts reaches the hub only while it is the current remux (checked and handed on
    /// under the lock, so a reset cannot come in between).
    private func makeSink() -> RemuxSink {
        let mine = generation
        let ifCurrent = { [self] (publish: () -> Void) in lock.withLock { if generation == mine { publish() } } }
        return RemuxSink(fragmentedMP4: { [hub] header in ifCurrent { hub.setHeader(ByteBuffer(bytes: header)) } },
                         onFragment: { [hub] bytes, key in ifCurrent { hub.publish(ByteBuffer(bytes: bytes), randomAccess: key) } })
    }
}
