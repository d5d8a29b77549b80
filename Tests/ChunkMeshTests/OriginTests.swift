import ChunkMesh
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// The origin and joiners over real TCP on loopback, in one process.
final class OriginTests: XCTestCase {
    let key = ChannelKey.random()
    var group: MultiThreadedEventLoopGroup!
    var origin: Origin!
    var port = 0

    override func setUpWithError() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "test.origin")
        logger.logLevel = .critical
        origin = Origin(configuration: .init(listen: HostPort(host: "127.0.0.1", port: 0), key: key), group: group, logger: logger)
        port = try origin.start().port!
    }

    override func tearDownWithError() throws {
        origin.shutdown()
        try group.syncShutdownGracefully()
    }

    /// A joiner that records what arrives.
    final class Recorder: @unchecked Sendable {
        let events = NIOLockedValueBox<[String]>([])
        let chunks = NIOLockedValueBox<[UInt64]>([])
        let closed = ConditionLock(value: 0)

        func handle(_ event: JoinEvent) {
            switch event {
            case .established: events.withLockedValue { $0.append("established") }
            case .message(.chunk(let c)): chunks.withLockedValue { $0.append(c.seq) }
            case .message: break
            case .failed(let error): events.withLockedValue { $0.append("failed: \(error)") }
            case .closed:
                closed.lock()
                closed.unlock(withValue: 1)
            }
        }

        func waitClosed(seconds: Double = 10) -> Bool {
            guard closed.lock(whenValue: 1, timeoutSeconds: seconds) else { return false }
            closed.unlock()
            return true
        }
    }

    private func chunk(_ seq: UInt64, ra: Bool) -> Chunk {
        Chunk(seq: seq, ingestTime: wallClockMicros(), pts: 0, duration: 200_000, flags: ra ? .randomAccess : [],
              payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188 * 10)))
    }

    private func waitUntil(_ what: String, seconds: Double = 10, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > end { return XCTFail("timed out waiting for \(what)") }
            usleep(10_000)
        }
    }

    private func address() -> HostPort { HostPort(host: "127.0.0.1", port: port) }

    func testJoinerStartsAtTheNewestRandomAccessChunkAndGetsEverythingAfter() throws {
        for seq in 0..<5 { origin.publish(chunk(UInt64(seq), ra: seq % 2 == 0)) }
        let a = Recorder()
        _ = try join(address(), key: key, role: .player, group: group) { a.handle($0) }.wait()
        waitUntil("backlog") { a.chunks.withLockedValue { $0 } == [4] }
        for seq in 5..<8 { origin.publish(chunk(UInt64(seq), ra: false)) }
        origin.publish(.endOfStream(seq: 8, ingestTime: wallClockMicros()))
        waitUntil("live chunks") { a.chunks.withLockedValue { $0 } == [4, 5, 6, 7, 8] }
    }

    func testWrongKeyFailsThatJoinerOnly() throws {
        let good = Recorder()
        let bad = Recorder()
        _ = try join(address(), key: key, role: .player, group: group) { good.handle($0) }.wait()
        _ = try join(address(), key: .random(), role: .player, group: group) { bad.handle($0) }.wait()
        XCTAssertTrue(bad.waitClosed())
        XCTAssertEqual(bad.events.withLockedValue { $0 }, ["failed: wrong key: the peer does not hold the channel key"])
        origin.publish(chunk(0, ra: true))
        waitUntil("good joiner's chunk") { good.chunks.withLockedValue { $0 } == [0] }
    }

    func testGarbageAndOversizedFramesCloseOnlyTheirLink() throws {
        let good = Recorder()
        _ = try join(address(), key: key, role: .player, group: group) { good.handle($0) }.wait()
        waitUntil("a receiver") { origin.stats.receivers == 1 }

        for junk in [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), Frame.header(type: .hello, length: 1 << 30),
                     Frame.header(type: .sealed, length: 4) + [1, 2, 3, 4]] {
            let raw = try ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).wait()
            try raw.writeAndFlush(ByteBuffer(bytes: junk)).wait()
            // The origin hangs up on it.
            XCTAssertNoThrow(try raw.closeFuture.wait())
        }
        origin.publish(chunk(0, ra: true))
        origin.publish(chunk(1, ra: false))
        waitUntil("good joiner's chunks") { good.chunks.withLockedValue { $0 } == [0, 1] }
        XCTAssertEqual(origin.stats.receivers, 1)
    }

    func testAJoinerThatVanishesDoesNotStopTheOthers() throws {
        let stays = Recorder()
        let leaves = Recorder()
        _ = try join(address(), key: key, role: .player, group: group) { stays.handle($0) }.wait()
        let leaving = try join(address(), key: key, role: .player, group: group) { leaves.handle($0) }.wait()
        waitUntil("two receivers") { origin.stats.receivers == 2 }
        origin.publish(chunk(0, ra: true))
        try leaving.close().wait()
        waitUntil("one receiver") { origin.stats.receivers == 1 }
        for seq in 1..<20 { origin.publish(chunk(UInt64(seq), ra: false)) }
        waitUntil("all chunks") { stays.chunks.withLockedValue { $0 }.count == 20 }
    }

    func testUplinkBoundsWhatTheOriginSends() throws {
        origin.shutdown()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // 80 kbit/s = 10 kB/s with a 1 MiB burst floor: far less than 200 chunks of 1880 bytes to 2 receivers.
        origin = Origin(configuration: .init(listen: HostPort(host: "127.0.0.1", port: 0), key: key, uplink: BitRate("80k")),
                        group: group, logger: logger)
        port = try origin.start().port!
        let a = Recorder(), b = Recorder()
        _ = try join(address(), key: key, role: .player, group: group) { a.handle($0) }.wait()
        _ = try join(address(), key: key, role: .player, group: group) { b.handle($0) }.wait()
        waitUntil("two receivers") { origin.stats.receivers == 2 }
        for seq in 0..<400 { origin.publish(chunk(UInt64(seq), ra: seq == 0)) }
        waitUntil("drops") { origin.stats.chunksDropped > 0 }
        let sent = origin.stats.bytesSent
        XCTAssertLessThanOrEqual(sent, (1 << 20) + 2 * 1900 + 50_000, "sent \(sent) bytes beyond burst + refill")
    }
}
