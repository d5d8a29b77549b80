import ChunkMesh
import MeshCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import TestMedia
import XCTest
@testable import NodeHTTP

/// The served stream over real loopback HTTP: clients start at a keyframe, a client that does not read is dropped,
/// and nobody else loses a byte.
final class StreamHubTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var server: HTTPServer!
    var hub: StreamHub!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        server?.stop()
        try? group.syncShutdownGracefully()
    }

    private func serve(_ hub: StreamHub) throws {
        self.hub = hub
        var routes = Routes()
        routes.streams["/stream.ts"] = hub
        routes.page("/") { StreamHub.index }
        server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes)
    }

    private func chunk(_ tag: UInt8, size: Int = 1000) -> ByteBuffer {
        ByteBuffer(bytes: [UInt8](repeating: tag, count: size))
    }

    /// Publishes 64 KiB pieces in lock-step with `reader` (so only clients that do not read fall behind) until
    /// `dropped` clients are dropped or `atMost` bytes are sent; returns what was sent.
    private func publishInStep(with reader: StreamReader, until dropped: Int, atMost: Int) throws -> [UInt8] {
        var sent: [UInt8] = []
        var n = 0
        while hub.currentStats.dropped < dropped, sent.count < atMost {
            let piece = chunk(UInt8(n % 251), size: 64 << 10)
            hub.publish(piece, randomAccess: n == 0)
            sent += piece.readableBytesView
            n += 1
            try waitFor("the reader keeps up") { reader.bytes.count == sent.count }
        }
        return sent
    }

    func testAClientStartsAtTheNewestRandomAccessChunk() throws {
        try serve(StreamHub())
        hub.publish(chunk(1), randomAccess: true)
        hub.publish(chunk(2), randomAccess: false)
        hub.publish(chunk(3), randomAccess: true)
        hub.publish(chunk(4), randomAccess: false)
        let reader = try StreamReader.open(server.address, group: group)
        try waitFor("the client is attached") { self.hub.currentStats.clients == 1 }
        hub.publish(chunk(5), randomAccess: false)
        try waitFor("three chunks arrive") { reader.bytes.count >= 3000 }
        XCTAssertEqual(reader.status, .ok)
        XCTAssertEqual(reader.contentType, "video/mp2t")
        XCTAssertEqual(reader.bytes, [UInt8](repeating: 3, count: 1000) + [UInt8](repeating: 4, count: 1000) + [UInt8](repeating: 5, count: 1000))
    }

    /// `/stream.mp4`: every client gets the header first, nothing is sent before there is one, and a reset ends
    /// the clients' responses and forgets the header.
    func testClientsOfAStreamWithAHeaderGetItFirstAndAResetEndsThem() throws {
        self.hub = StreamHub(contentType: "video/mp4", needsHeader: true)
        var routes = Routes()
        routes.streams["/stream.mp4"] = hub
        server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes)
        hub.publish(chunk(1), randomAccess: true) // before the header: no use to anyone
        let early = try StreamReader.open(server.address, path: "/stream.mp4", group: group)
        try waitFor("the client is attached") { self.hub.currentStats.clients == 1 }
        hub.setHeader(chunk(9, size: 100))
        hub.publish(chunk(2), randomAccess: false)
        hub.publish(chunk(3), randomAccess: true)
        let late = try StreamReader.open(server.address, path: "/stream.mp4", group: group)
        try waitFor("the second client is attached") { self.hub.currentStats.clients == 2 }
        hub.publish(chunk(4), randomAccess: false)
        let expected = [UInt8](repeating: 9, count: 100) + [UInt8](repeating: 3, count: 1000) + [UInt8](repeating: 4, count: 1000)
        try waitFor("both have the header and two parts") { early.bytes.count >= 2100 && late.bytes.count >= 2100 }
        XCTAssertEqual(early.bytes, expected)
        XCTAssertEqual(late.bytes, expected)
        XCTAssertEqual(late.contentType, "video/mp4")
        hub.reset()
        try waitFor("a reset ends both responses") { early.ended && late.ended }
        let next = try StreamReader.open(server.address, path: "/stream.mp4", group: group)
        try waitFor("a new client is attached") { self.hub.currentStats.clients == 1 }
        hub.publish(chunk(5), randomAccess: true)
        hub.setHeader(chunk(8, size: 10))
        hub.publish(chunk(6), randomAccess: true)
        try waitFor("the new header and part") { next.bytes.count >= 1010 }
        XCTAssertEqual(next.bytes, [UInt8](repeating: 8, count: 10) + [UInt8](repeating: 6, count: 1000))
    }

    func testAClientBeforeAnyKeyframeWaitsForOne() throws {
        try serve(StreamHub())
        let reader = try StreamReader.open(server.address, group: group)
        try waitFor("the client is attached") { self.hub.currentStats.clients == 1 }
        hub.publish(chunk(1), randomAccess: false)
        hub.publish(chunk(2), randomAccess: true)
        try waitFor("the keyframe arrives") { reader.bytes.count >= 1000 }
        XCTAssertEqual(reader.bytes, [UInt8](repeating: 2, count: 1000))
    }

    func testASlowClientIsDroppedAndTheOthersGetEveryByte() throws {
        try serve(StreamHub(maxBacklog: 256 << 10))
        let reader = try StreamReader.open(server.address, group: group)
        let stalled = try StalledClient(host: server.address.host, port: server.address.port, path: "/stream.ts")
        try waitFor("both clients are attached") { self.hub.currentStats.clients == 2 }
        // Bounded at 400 MB.
        var sent = try publishInStep(with: reader, until: 1, atMost: 400 << 20)
        XCTAssertEqual(hub.currentStats.dropped, 1, "the client that never reads is dropped")
        XCTAssertEqual(hub.currentStats.clients, 1)
        hub.publish(chunk(9), randomAccess: false)
        sent += [UInt8](repeating: 9, count: 1000)
        try waitFor("the reader still gets the stream") { reader.bytes.count == sent.count }
        XCTAssertEqual(reader.bytes, sent)
        withExtendedLifetime(stalled) {}
    }

    /// Slow clients together hold `maxQueued` at most: each is dropped at its share, long before its own backlog
    /// limit, and a client that reads gets every byte.
    func testSlowClientsTogetherHoldNoMoreThanTheHubsCap() throws {
        try serve(StreamHub(maxBacklog: 8 << 20, maxStart: 64 << 10, maxQueued: 1 << 20))
        let reader = try StreamReader.open(server.address, group: group)
        let stalled = try (0..<2).map { _ in try StalledClient(host: server.address.host, port: server.address.port, path: "/stream.ts") }
        try waitFor("three clients are attached") { self.hub.currentStats.clients == 3 }
        // Bounded under the clients' own limit: only the cap on all of them can drop the stalled ones here.
        let sent = try publishInStep(with: reader, until: 2, atMost: 6 << 20)
        XCTAssertEqual(hub.currentStats.dropped, 2, "both stalled clients dropped after \(sent.count) bytes")
        XCTAssertEqual(reader.bytes, sent)
        withExtendedLifetime(stalled) {}
    }

    /// One address holds `maxPerAddress` clients of a stream; another address still gets one.
    func testOneAddressCannotTakeEveryPlaceOnAStream() throws {
        try serve(StreamHub(maxPerAddress: 2))
        let readers = try (0..<2).map { _ in try StreamReader.open(server.address, group: group) }
        try waitFor("two clients are attached") { self.hub.currentStats.clients == 2 }
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/stream.ts", group: group).status, .serviceUnavailable)
        let other = try StalledClient(host: "127.0.0.1", port: server.address.port, path: "/stream.ts", from: "127.0.0.2")
        try waitFor("a client from another address is attached") { self.hub.currentStats.clients == 3 }
        withExtendedLifetime((readers, other)) {}
    }

    /// A client that stopped reading, ended by a reset (a new run), is reset within `endTimeout`: it cannot keep its
    /// connection and backlog for good.
    func testAStalledClientEndedByAResetIsClosed() throws {
        try serve(StreamHub())
        let stalled = try StalledClient(host: "127.0.0.1", port: server.address.port, path: "/stream.ts")
        try waitFor("the client is attached") { self.hub.currentStats.clients == 1 }
        for n in 0..<64 { hub.publish(chunk(UInt8(n), size: 64 << 10), randomAccess: n == 0) } // 4 MiB it does not read
        hub.reset()
        try waitFor("the stalled client is reset") { stalled.hungUp }
    }

    func testClientsPastTheLimitAreTurnedAway() throws {
        try serve(StreamHub(maxClients: 2))
        let readers = try (0..<2).map { _ in try StreamReader.open(server.address, group: group) }
        try waitFor("two clients are attached") { self.hub.currentStats.clients == 2 }
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/stream.ts", group: group).status, .serviceUnavailable)
        hub.publish(chunk(1), randomAccess: true)
        try waitFor("the first two still get the stream") { readers.allSatisfy { $0.bytes.count == 1000 } }
    }

    /// Connections that never finish a request (half a request line) are closed after the request timeout, so they
    /// cannot hold every connection the server takes; a client on the stream sends nothing and is never cut.
    func testHalfRequestsCannotLockTheServerOut() throws {
        let hub = StreamHub()
        self.hub = hub
        var routes = Routes()
        routes.streams["/stream.ts"] = hub
        routes.page("/") { StreamHub.index }
        server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes, requestTimeout: .milliseconds(500))
        let viewer = try StreamReader.open(server.address, group: group)
        try waitFor("the viewer is attached") { hub.currentStats.clients == 1 }
        let port = server.address.port
        let slow = try (0..<HTTPServer.maxConnections).map { _ in try StalledClient(host: "127.0.0.1", port: port, path: "", raw: "GET /sta") }
        try waitFor("every half request is closed") { slow.allSatisfy(\.closedByServer) }
        // A HEAD of the stream is answered, then the connection must send its next request in time like any other.
        let head = try StalledClient(host: "127.0.0.1", port: port, path: "", raw: "HEAD /stream.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        try waitFor("an idle connection after a HEAD of the stream is closed") { head.closedByServer }
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/", group: group).status, .ok)
        hub.publish(chunk(1), randomAccess: true)
        try waitFor("the viewer, silent since it asked, still gets the stream") { viewer.bytes.count == 1000 }
    }

    /// A client that pipelines requests for a big page and never reads holds one response, for the response
    /// timeout at most: the server closes it and goes on.
    func testAClientThatAsksAndNeverReadsIsClosed() throws {
        var routes = Routes()
        let big = Page("application/octet-stream", [UInt8](repeating: 7, count: 16 << 20))
        let made = NIOLockedValueBox(0)
        routes.quickPage("/big") {
            made.withLockedValue { $0 += 1 }
            return big
        }
        routes.quickPage("/") { StreamHub.index }
        server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes, responseTimeout: .milliseconds(500))
        let ask = String(repeating: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", count: HTTPServer.maxPipelinedRequests)
        let greedy = try StalledClient(host: "127.0.0.1", port: server.address.port, path: "", raw: ask)
        try waitFor("the client that never reads is closed") { greedy.hungUp }
        XCTAssertEqual(made.withLockedValue { $0 }, 1, "one response made, not one per request pipelined")
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/", group: group).status, .ok)
    }

    /// One address cannot take every connection: past its share it is closed at once, and another address is
    /// still answered.
    func testOneAddressCannotTakeEveryConnection() throws {
        try serve(StreamHub())
        let port = server.address.port
        let held = try (0..<HTTPServer.maxConnectionsPerAddress).map { _ in try StalledClient(host: "127.0.0.1", port: port, path: "", raw: "") }
        let turned = try StalledClient(host: "127.0.0.1", port: port, path: "", raw: "GET / HTTP/1.0\r\n\r\n")
        try waitFor("one connection too many from an address is closed") { turned.closedByServer }
        XCTAssertEqual(turned.received, 0, "closed unanswered")
        let other = try StalledClient(host: "127.0.0.1", port: port, path: "", raw: "GET / HTTP/1.0\r\n\r\n", from: "127.0.0.2")
        try waitFor("another address is answered") { other.closedByServer }
        XCTAssertGreaterThan(other.received, 0)
        withExtendedLifetime(held) {}
    }

    func testAClientAfterTheEndGetsAnEmptyStreamAndTheServerGoesOn() throws {
        try serve(StreamHub())
        hub.finish()
        let late = try StreamReader.open(server.address, group: group)
        try waitFor("the late client's response ends") { late.ended }
        XCTAssertEqual(late.bytes, [])
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/", group: group).status, .ok, "the server's loop is not stuck")
    }

    func testAPeerIdCannotBreakTheStatusPage() throws {
        let hostile = "<!--<script>:1</script><script>alert(1)</script>"
        let status = NodeStatus(role: "player", id: hostile, uptimeS: 1, streamRateBps: nil, substreams: 1, delayMs: nil, links: 1,
                                linkFailures: 0, chunksDropped: 0, parents: [.init(substream: 0, peer: hostile, delayMs: 1)],
                                children: [.init(peer: hostile, substreams: [0])],
                                upload: .init(usedBps: 0, allowedBps: nil, units: 0, unitsUsed: 0, bytesSent: 0, budgetBytes: nil, retired: false),
                                playback: nil, serve: nil, meshSvg: false)
        let html = StatusPage.html(status)
        XCTAssertEqual(html.components(separatedBy: "<script>").count, 2, "one script element, the page's own")
        XCTAssertEqual(html.components(separatedBy: "</script>").count, 2)
        XCTAssertFalse(html.contains("<!--<"))
        // The embedded status still decodes to the hostile id (drawn as text by the page).
        let json = html.components(separatedBy: "const initial = ")[1].components(separatedBy: ";\n")[0]
        XCTAssertEqual(try NodeStatus.decode(Data(json.utf8)).id, hostile)
    }

    func testHeadIndexAndUnknownPaths() throws {
        try serve(StreamHub())
        let head = try fetch(server.address, method: .HEAD, path: "/stream.ts", group: group)
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Content-Type"].first, "video/mp2t")
        XCTAssertTrue(head.body.isEmpty)
        let index = try fetch(server.address, method: .GET, path: "/", group: group)
        XCTAssertEqual(index.status, .ok)
        XCTAssertTrue(String(decoding: index.body, as: UTF8.self).contains("/stream.ts"))
        XCTAssertEqual(try fetch(server.address, method: .GET, path: "/nope", group: group).status, .notFound)
        XCTAssertEqual(try fetch(server.address, method: .POST, path: "/", group: group).status, .methodNotAllowed)
        XCTAssertEqual(hub.currentStats.served, 0, "a HEAD is not a client")
    }
}

/// A whole HTTP response.
func fetch(_ address: HostPort, method: HTTPMethod, path: String, group: EventLoopGroup) throws -> (status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
    let reader = try StreamReader.open(address, method: method, path: path, group: group)
    try waitFor("the response to \(method) \(path)") { reader.ended }
    return (reader.status!, reader.headers!, reader.bytes)
}

/// An HTTP client that keeps what it reads.
final class StreamReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let state = NIOLockedValueBox<(status: HTTPResponseStatus?, headers: HTTPHeaders?, bytes: [UInt8], ended: Bool)>((nil, nil, [], false))
    var status: HTTPResponseStatus? { state.withLockedValue { $0.status } }
    var headers: HTTPHeaders? { state.withLockedValue { $0.headers } }
    var contentType: String? { headers?["Content-Type"].first }
    var bytes: [UInt8] { state.withLockedValue { $0.bytes } }
    var ended: Bool { state.withLockedValue { $0.ended } }

    static func open(_ address: HostPort, method: HTTPMethod = .GET, path: String = "/stream.ts", group: EventLoopGroup) throws -> StreamReader {
        let reader = StreamReader()
        let channel = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(reader) }
            }
            .connect(host: address.host, port: address.port).wait()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: address.description)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try channel.writeAndFlush(HTTPClientRequestPart.end(nil)).wait()
        return reader
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): state.withLockedValue { $0.status = head.status; $0.headers = head.headers }
        case .body(let buffer): state.withLockedValue { $0.bytes += buffer.readableBytesView }
        case .end: state.withLockedValue { $0.ended = true }
        }
    }
}
