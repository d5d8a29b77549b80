import ChunkMesh
import MeshCore
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A whole response: a page, a JSON document, a picture.
public struct Page: Sendable {
    public var contentType: String
    /// The body, shared with whoever made it (a served HLS segment is not copied per request).
    public var buffer: ByteBuffer
    public var status: HTTPResponseStatus

    public var body: [UInt8] { Array(buffer.readableBytesView) }

    public init(_ contentType: String, _ buffer: ByteBuffer, status: HTTPResponseStatus = .ok) {
        self.contentType = contentType
        self.buffer = buffer
        self.status = status
    }

    public init(_ contentType: String, _ body: [UInt8], status: HTTPResponseStatus = .ok) {
        self.init(contentType, ByteBuffer(bytes: body), status: status)
    }

    public init(_ contentType: String, _ text: String, status: HTTPResponseStatus = .ok) {
        self.init(contentType, ByteBuffer(string: text), status: status)
    }
}

/// What a server answers: whole pages by path (made when asked, on the server's loop or later), and live streams.
public struct Routes: Sendable {
    public typealias Maker = @Sendable (EventLoop) -> EventLoopFuture<Page>
    public var pages: [String: Maker] = [:]
    /// Pages under a path (`/live/`), found by the rest of the path; nil: not found.
    public var folders: [String: @Sendable (String) -> Page?] = [:]
    /// Live streams by path (`/stream.ts`, `/stream.mp4`), each as long as it lasts.
    public var streams: [String: StreamHub] = [:]

    public init() {}

    /// Pages under `prefix` (ending in `/`), looked up by the rest of the path on the server's loop: the lookup
    /// must not wait.
    public mutating func pages(under prefix: String, _ lookup: @escaping @Sendable (String) -> Page?) {
        folders[prefix] = lookup
    }

    /// A page made on the server's loop when asked: making it must not wait (a lock held briefly at most).
    public mutating func quickPage(_ path: String, _ make: @escaping @Sendable () -> Page) {
        pages[path] = { loop in loop.makeSucceededFuture(make()) }
    }

    /// A page made off the server's loop (making it may wait on a node's loop).
    public mutating func page(_ path: String, _ make: @escaping @Sendable () -> Page) {
        pages[path] = { loop in
            let promise = loop.makePromise(of: Page.self)
            DispatchQueue.global().async { promise.succeed(make()) }
            return promise.futureResult
        }
    }
}

/// A small HTTP/1.1 server on a thread of its own: `GET` and `HEAD` of the routes' paths.
public final class HTTPServer: Sendable {
    /// Connections at once; past that a new one is closed unanswered.
    public static let maxConnections = 256
    /// Requests a client may pipeline behind the one being answered; past that the connection closes.
    public static let maxPipelinedRequests = 8
    /// Connections at once from one address (a browser opens 6 at most): one host cannot take them all.
    public static let maxConnectionsPerAddress = 32
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    /// Where it listens, `HOST:PORT` (the port filled in when 0 was asked).
    public let address: HostPort

    /// `requestTimeout`: how long a connection may take to send a whole request (none while it takes the stream);
    /// `responseTimeout`: how long a client may take to read a whole page.
    public init(listen: HostPort, routes: Routes, requestTimeout: TimeAmount = .seconds(10),
                responseTimeout: TimeAmount = .seconds(30)) throws {
        let open = NIOLockedValueBox((all: 0, byAddress: [String: Int]()))
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    let address = channel.remoteAddress?.ipAddress ?? "?"
                    let admitted = open.withLockedValue { open in
                        guard open.all < Self.maxConnections, open.byAddress[address, default: 0] < Self.maxConnectionsPerAddress
                        else { return false }
                        open.all += 1
                        open.byAddress[address, default: 0] += 1
                        return true
                    }
                    guard admitted else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in
                        open.withLockedValue { open in
                            open.all -= 1
                            open.byAddress[address]! -= 1
                            if open.byAddress[address] == 0 { open.byAddress[address] = nil }
                        }
                    }
                    return channel.pipeline.configureHTTPServerPipeline().flatMap {
                        channel.pipeline.addHandler(HTTPHandler(routes: routes, requestTimeout: requestTimeout,
                                                                responseTimeout: responseTimeout))
                    }
                }
                .bind(host: listen.host, port: listen.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        address = HostPort(host: listen.host, port: channel.localAddress?.port ?? listen.port)
    }

    /// `http://HOST:PORT`.
    public var url: String { "http://\(address)" }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

private final class HTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let routes: Routes
    private var head: HTTPRequestHead?
    /// This connection carries a stream now: it answers nothing else.
    private var streaming: StreamHub?
    /// Closes the connection unless a whole request comes by then: a client that opens a connection and sends
    /// nothing, or half a request line, holds one of `maxConnections` for this long at most.
    private var deadline: Scheduled<Void>?
    private let requestTimeout: TimeAmount
    /// A response is being made or sent: requests pipelined behind it wait here, and are answered one at a time
    /// as each response has gone, so a client that asks and never reads holds one response, not one per request.
    private var responding = false
    private var waiting: [HTTPRequestHead] = []
    private let responseTimeout: TimeAmount

    init(routes: Routes, requestTimeout: TimeAmount, responseTimeout: TimeAmount) {
        self.routes = routes
        self.requestTimeout = requestTimeout
        self.responseTimeout = responseTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) { awaitRequest(context: context) }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    /// Each wait has its deadline, past which the connection is reset: for a whole request, and for a response to
    /// be made and taken. None while it carries a stream.
    private func awaitRequest(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) { abort(context.channel) }
    }

    private func startResponse(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        responding = true
        deadline?.cancel()
        deadline = context.eventLoop.scheduleTask(in: responseTimeout) { abort(context.channel) }
        respond(to: request, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head, streaming == nil else { return }
            self.head = nil
            // NIO's pipeline handler passes one request on at a time already; this bounds it should that change.
            guard !responding else {
                guard waiting.count < HTTPServer.maxPipelinedRequests else { return context.close(promise: nil) }
                return waiting.append(head)
            }
            startResponse(to: head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        streaming?.detach(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(request.uri.prefix { $0 != "?" })
        guard request.method == .GET || request.method == .HEAD else {
            return write(Page("text/plain", "only GET and HEAD\n", status: .methodNotAllowed), to: request, context: context,
                         extra: [("Allow", "GET, HEAD")])
        }
        if let hub = routes.streams[path] {
            var headers = HTTPHeaders([("Content-Type", hub.contentType), ("Cache-Control", "no-cache")])
            if request.method == .HEAD {
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))), promise: nil)
                return end(request, context: context)
            }
            guard hub.hasRoom(for: context.channel) else {
                return write(Page("text/plain", "too many players on this stream\n", status: .serviceUnavailable), to: request, context: context)
            }
            // No length: HTTP/1.1 sends it chunked, for as long as the stream lasts.
            streaming = hub
            deadline?.cancel()
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))),
                                  promise: nil)
            hub.attach(context.channel)
            return
        }
        if routes.pages[path] == nil, let slash = path.lastIndex(of: "/"), let lookup = routes.folders[String(path[...slash])] {
            let page = lookup(String(path[path.index(after: slash)...]))
                ?? Page("text/plain", "not found: \(path) (gone from the live window?)\n", status: .notFound)
            return write(page, to: request, context: context)
        }
        guard let make = routes.pages[path] else {
            let known = (Array(routes.pages.keys) + Array(routes.streams.keys)).sorted().joined(separator: " ")
            return write(Page("text/plain", "not found: try \(known)\n", status: .notFound), to: request, context: context)
        }
        let loop = context.eventLoop
        make(loop).hop(to: loop).whenComplete { [self] result in
            switch result {
            case .success(let page): write(page, to: request, context: context)
            case .failure(let error): write(Page("text/plain", "\(error)\n", status: .internalServerError), to: request, context: context)
            }
        }
    }

    private func write(_ page: Page, to request: HTTPRequestHead, context: ChannelHandlerContext, extra: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", page.contentType), ("Content-Length", "\(page.buffer.readableBytes)"),
                                   ("Cache-Control", "no-store")] + extra)
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: page.status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(page.buffer))), promise: nil)
        }
        end(request, context: context)
    }

    /// Ends a response, which must have gone within `responseTimeout` of its request: then the connection closes,
    /// or answers the next request pipelined, or waits for one.
    private func end(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = request.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [self] result in
            deadline?.cancel()
            responding = false
            guard case .success = result, keepAlive, context.channel.isActive else { return context.close(promise: nil) }
            guard waiting.isEmpty else { return startResponse(to: waiting.removeFirst(), context: context) }
            awaitRequest(context: context)
        }
    }
}
