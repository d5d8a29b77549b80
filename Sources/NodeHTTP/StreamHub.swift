import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A live stream as served over HTTP (`/stream.ts` to local players, `/stream.mp4` to browsers): any number of
/// clients, each given the header (if the format has one) and then the stream from its newest random-access
/// part. Publishing never waits for a client: a client that has more than `maxBacklog` bytes it has not taken
/// yet is dropped, and nobody else notices. All clients together hold `maxQueued` at most: past it, a client
/// holding more than its share (and more than a start's worth) is dropped, so many slow clients cannot take
/// `maxClients` x `maxBacklog`. One address holds `maxPerAddress` clients at most. A client dropped, or ended by
/// `finish` or `reset` that does not take the end within `endTimeout`, is reset (a stalled one would keep its
/// connection and its backlog for good).
public final class StreamHub: @unchecked Sendable {
    public struct Stats: Sendable, Equatable {
        /// Clients reading now.
        public var clients = 0
        /// Clients ever attached.
        public var served = 0
        /// Clients dropped for reading too slowly.
        public var dropped = 0
    }

    private final class Client {
        let channel: Channel
        let address: String
        /// Waiting for a random-access chunk to start at.
        var started: Bool
        /// Bytes written and not yet taken by the socket (touched on the channel's loop only).
        var queued = 0

        init(_ channel: Channel, started: Bool) {
            self.channel = channel
            self.address = channel.remoteAddress?.ipAddress ?? "?"
            self.started = started
        }
    }

    public let contentType: String
    public let maxBacklog: Int
    /// Clients at once; past that a new one is turned away (503): each may hold `maxBacklog` bytes.
    public let maxClients: Int
    /// Bytes all clients together may hold before a client past its share is dropped.
    public let maxQueued: Int
    /// Clients from one address at once.
    public let maxPerAddress: Int
    /// How long an ended client has to take the end of its response.
    static let endTimeout: TimeAmount = .seconds(5)
    /// Bytes held by all clients, and how many clients share `maxQueued`.
    private let held = NIOLockedValueBox((bytes: 0, clients: 0))
    /// The most kept from the newest random-access chunk on, for clients that come in between (well under
    /// `maxBacklog`: a new client gets all of it at once).
    public let maxStart: Int
    private let lock = NIOLock()
    private var clients: [ObjectIdentifier: Client] = [:]
    private var start: [ByteBuffer] = []
    /// What every client gets first (a fragmented MP4's ftyp and moov); nothing is sent before it is set.
    private var header: ByteBuffer?
    private let needsHeader: Bool
    private var startBytes = 0
    private var stats = Stats()
    private var finished = false

    /// `needsHeader`: clients wait for `setHeader` before anything is sent them.
    public init(contentType: String = "video/mp2t", needsHeader: Bool = false, maxBacklog: Int = 8 << 20, maxStart: Int = 4 << 20,
                maxClients: Int = 64, maxQueued: Int = 64 << 20, maxPerAddress: Int = 4) {
        self.contentType = contentType
        self.needsHeader = needsHeader
        self.maxBacklog = maxBacklog
        self.maxClients = maxClients
        self.maxQueued = maxQueued
        self.maxPerAddress = maxPerAddress
        self.maxStart = maxStart
    }

    public var currentStats: Stats { lock.withLock { stats } }

    /// The format's header, sent to each client before its first part; set once (later ones are ignored).
    public func setHeader(_ bytes: ByteBuffer) {
        lock.withLock { if header == nil { header = bytes } }
    }

    /// A part of the stream, in order. Safe from any thread.
    public func publish(_ bytes: ByteBuffer, randomAccess: Bool) {
        lock.withLock {
            // Nothing to send (the origin's heartbeats while its sender is away): an empty part would end the response.
            guard !finished, !needsHeader || header != nil, bytes.readableBytes > 0 else { return }
            if randomAccess {
                start = [bytes]
                startBytes = bytes.readableBytes
            } else if !start.isEmpty {
                if startBytes + bytes.readableBytes <= maxStart {
                    start.append(bytes)
                    startBytes += bytes.readableBytes
                } else {
                    start = []
                    startBytes = 0
                }
            }
            for client in clients.values {
                if !client.started {
                    guard randomAccess else { continue }
                    client.started = true
                    if let header { send(header, to: client) }
                }
                send(bytes, to: client)
            }
        }
    }

    /// The stream ended: every client gets the end of its response.
    public func finish() {
        lock.withLock {
            finished = true
            endClients()
        }
    }

    /// Starts over: every client's response ends (a browser opens the stream again), and the header and the
    /// newest random-access part are forgotten.
    public func reset() {
        lock.withLock {
            endClients()
            header = nil
            start = []
            startBytes = 0
        }
    }

    /// Whether another client may come now from that channel's address.
    func hasRoom(for channel: Channel) -> Bool {
        let address = channel.remoteAddress?.ipAddress ?? "?"
        return lock.withLock {
            clients.count < maxClients && clients.values.reduce(0) { $0 + ($1.address == address ? 1 : 0) } < maxPerAddress
        }
    }

    func attach(_ channel: Channel) {
        // Not under the lock: ending the response may close the channel at once, and its detach takes the lock.
        guard !lock.withLock({ finished }) else {
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        lock.withLock {
            guard !finished else { return channel.eventLoop.execute { channel.close(promise: nil) } }
            let client = Client(channel, started: !start.isEmpty)
            clients[ObjectIdentifier(channel)] = client
            stats.served += 1
            stats.clients = clients.count
            held.withLockedValue { $0.clients = clients.count }
            if client.started, let header { send(header, to: client) }
            for bytes in start { send(bytes, to: client) }
        }
    }

    func detach(_ channel: Channel) {
        lock.withLock {
            clients.removeValue(forKey: ObjectIdentifier(channel))
            stats.clients = clients.count
            held.withLockedValue { $0.clients = clients.count }
        }
    }

    /// Under the lock: every client's response ends, and none is kept.
    private func endClients() {
        for client in clients.values { end(client.channel) }
        clients.removeAll()
        stats.clients = 0
        held.withLockedValue { $0.clients = 0 }
    }

    private func end(_ channel: Channel) {
        channel.eventLoop.execute {
            let timeout = channel.eventLoop.scheduleTask(in: Self.endTimeout) { abort(channel) }
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                timeout.cancel()
                channel.close(promise: nil)
            }
        }
    }

    /// Under the lock: the write itself happens on the client's loop, in publishing order.
    private func send(_ bytes: ByteBuffer, to client: Client) {
        let count = bytes.readableBytes
        client.channel.eventLoop.execute { [self] in
            guard client.channel.isActive else { return }
            guard client.queued + count <= maxBacklog else { return drop(client) }
            let overShare = held.withLockedValue { held -> Bool in
                if held.bytes + count > maxQueued, client.queued + count > max(maxStart, maxQueued / max(1, held.clients)) { return true }
                held.bytes += count
                return false
            }
            guard !overShare else { return drop(client) }
            client.queued += count
            client.channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(bytes))).whenComplete { [held] _ in
                client.queued -= count
                held.withLockedValue { $0.bytes -= count }
            }
        }
    }

    /// Called on the client's loop. Whether still a client or already ended, the connection is reset.
    private func drop(_ client: Client) {
        lock.withLock {
            if clients.removeValue(forKey: ObjectIdentifier(client.channel)) != nil { stats.dropped += 1 }
            stats.clients = clients.count
            held.withLockedValue { $0.clients = clients.count }
        }
        abort(client.channel)
    }
}

extension StreamHub {
    /// `GET /` next to the stream: what is there.
    public static var index: Page {
        Page("text/html; charset=utf-8", """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>lsp2p stream</title></head><body>
        <h1>lsp2p stream</h1>
        <p><a href="/stream.ts">/stream.ts</a>: the channel as MPEG-TS (H.264/AAC as the source sent it), live, from its newest
        keyframe. Open it in a player: <code>mpv URL</code>, <code>vlc URL</code>, <code>ffplay URL</code>.</p>
        </body></html>

        """)
    }
}

/// Closes a connection with a reset: what the client did not take is dropped at once, not kept by the kernel behind
/// a FIN it would not read either.
func abort(_ channel: Channel) {
    guard let socket = channel as? SocketOptionProvider else { return channel.close(promise: nil) }
    socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
}
