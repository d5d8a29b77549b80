@testable import ChunkMesh
@testable import MeshCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// Mesh nodes driven by NIO over real TCP on loopback, in one process: what their tests share.
class MeshNodeTestCase: XCTestCase {
    let key = ChannelKey.random()
    var group: MultiThreadedEventLoopGroup!
    var logger = Logger(label: "test.mesh")

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        logger.logLevel = ProcessInfo.processInfo.environment["MESH_LOG"] != nil ? .debug : .critical
    }

    override func tearDownWithError() throws { try group.syncShutdownGracefully() }

    /// A node on loopback. `got` collects the seqs it delivers; `forged` counts delivered chunks whose payload is
    /// not the one the origin published.
    func node(origin: Bool = false, bootstrap: HostPort?, units: Int, seed: UInt64,
              got: NIOLockedValueBox<Set<UInt64>>? = nil, forged: NIOLockedValueBox<Int>? = nil, faults: Faults = Faults(),
              parentsSeen: NIOLockedValueBox<Set<PeerName>>? = nil) throws -> MeshNode {
        var config = MeshNode.Configuration(listen: HostPort(host: "127.0.0.1", port: 0), key: key, isOrigin: origin,
                                            bootstrap: bootstrap, capacityUnits: units, scheduleDelay: 1_000, seed: seed)
        config.faults = faults
        // Each node's lines say whose they are (MESH_LOG=1), by the seed the test gave it.
        var logger = logger
        logger[metadataKey: "node"] = "\(seed)"
        let node = MeshNode(configuration: config,
                            group: group, logger: logger,
                            onEvent: { event in
                                if case .parentsChanged(let map) = event { parentsSeen?.withLockedValue { $0.formUnion(map.values) } }
                            },
                            onDeliver: { chunk in
                                got?.withLockedValue { _ = $0.insert(chunk.seq) }
                                if chunk.payload != Self.payload(chunk.seq) { forged?.withLockedValue { $0 += 1 } }
                            })
        try node.start()
        return node
    }

    /// What the origin publishes as chunk `seq`: 20 TS packets, each byte after the sync byte telling the seq.
    static func payload(_ seq: UInt64) -> ByteBuffer {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: seq &* 31 &+ 7), count: 188 * 20)
        for i in stride(from: 0, to: bytes.count, by: 188) { bytes[i] = 0x47 }
        return ByteBuffer(bytes: bytes)
    }

    func chunk(_ seq: UInt64) -> Chunk {
        Chunk(seq: seq, ingestTime: wallClockMicros(), pts: 0, duration: 50_000, flags: seq % 10 == 0 ? .randomAccess : [],
              payload: Self.payload(seq))
    }

    /// Publishes `n` chunks from `seq` on, one each 50 ms.
    func publish(_ n: Int, from origin: MeshNode, seq: inout UInt64) {
        for _ in 0..<n {
            origin.publish(chunk(seq))
            seq += 1
            usleep(50_000)
        }
    }

    /// Waits for `condition`, with a deadline; `what` is read when it times out, so it can show the state then.
    func waitUntil(_ what: @autoclosure () -> String, seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > end {
                XCTFail("timed out waiting for \(what())")
                return false
            }
            usleep(20_000)
        }
        return true
    }
}
