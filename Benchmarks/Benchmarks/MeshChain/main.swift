import ChunkMesh
import MeshCore
import Foundation
import Histogram
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

// Per-hop cost of the mesh's NIO path: an origin, a chain of N relays (each can serve one peer: 4 units) and a
// leaf, in one process over loopback. An 8 Mbit/s stream of 50 ms chunks (50 kB). Prints the leaf's latency,
// ingest to arrival, and the process CPU per relay.
// Run: cd Benchmarks && swift run -c release mesh-chain [N ...]

let key = ChannelKey.random()
var logger = Logger(label: "bench")
logger.logLevel = .critical
let chunkBytes = 50_000
let interval: UInt32 = 50_000
let chunks = Int(ProcessInfo.processInfo.environment["CHUNKS"] ?? "") ?? 200

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func run(relays n: Int) throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    defer { try? group.syncShutdownGracefully() }
    func node(origin: Bool, bootstrap: HostPort?, units: Int, seed: UInt64, onDeliver: @escaping @Sendable (Chunk) -> Void = { _ in }) throws -> MeshNode {
        let node = MeshNode(configuration: .init(listen: HostPort(host: "127.0.0.1", port: 0), key: key, isOrigin: origin,
                                                 bootstrap: bootstrap, capacityUnits: units, scheduleDelay: 50_000, seed: seed),
                            group: group, logger: logger, onDeliver: onDeliver)
        try node.start()
        return node
    }
    let origin = try node(origin: true, bootstrap: nil, units: 4, seed: 1)
    let bootstrap = HostPort(origin.id)!
    var seq: UInt64 = 0
    func publish(_ count: Int) {
        for _ in 0..<count {
            origin.publish(Chunk(seq: seq, ingestTime: wallClockMicros(), pts: 0, duration: 50_000, flags: seq % 20 == 0 ? .randomAccess : [],
                                 payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: chunkBytes / 188 * 188))))
            seq += 1
            usleep(interval)
        }
    }
    var nodes: [MeshNode] = []
    for i in 0..<n {
        nodes.append(try node(origin: false, bootstrap: bootstrap, units: 4, seed: UInt64(10 + i)))
        // Join one at a time: each new relay finds only the last one with room, and a chain forms.
        var waited = 0
        while nodes.last!.snapshot().parents.count < 4, waited < 200 {
            publish(1)
            waited += 1
        }
    }
    let latencies = NIOLockedValueBox(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))
    let measuring = NIOLockedValueBox(false)
    let leaf = try node(origin: false, bootstrap: bootstrap, units: 0, seed: 99) { chunk in
        let latency = UInt64(max(0, wallClockMicros() - chunk.ingestTime))
        if measuring.withLockedValue({ $0 }) { latencies.withLockedValue { _ = $0.record(latency) } }
    }
    publish(40)
    let depth = leaf.snapshot().parents.values.first.map { p in nodes.firstIndex { $0.id == p }.map { $0 + 1 } ?? 0 } ?? -1
    measuring.withLockedValue { $0 = true }
    let cpu0 = cpuSeconds()
    let t0 = Date()
    publish(chunks)
    let cpu = cpuSeconds() - cpu0
    let wall = Date().timeIntervalSince(t0)
    measuring.withLockedValue { $0 = false }
    let h = latencies.withLockedValue { $0 }
    print(String(format: "relays %d (leaf under relay %d): %llu chunks, latency p50 %.2f ms p99 %.2f ms max %.2f ms; process CPU %.3f cores, %.3f per node",
                 n, depth, h.totalCount, Double(h.valueAtPercentile(50)) / 1000, Double(h.valueAtPercentile(99)) / 1000,
                 Double(h.max) / 1000, cpu / wall, cpu / wall / Double(n + 2)))
    leaf.stop()
    nodes.forEach { $0.stop() }
    origin.stop()
}

let counts = CommandLine.arguments.dropFirst().compactMap { Int($0) }
for n in counts.isEmpty ? [0, 1, 4, 8] : counts { try run(relays: n) }
