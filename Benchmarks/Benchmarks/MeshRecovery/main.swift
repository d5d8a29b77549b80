import ChunkMesh
import MeshCore
import Foundation
import Histogram
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

// Recovery after a relay dies: an origin (two streams' worth), 12 relays (four streams each) and 8 leaves, in one
// process over loopback, a 1 Mbit/s stream of 200 ms chunks. Each round kills the relay with the most children
// abruptly (every socket closed at once, no goodbye: what the kernel does for a SIGKILLed process), then for each
// child and each substream it had from that relay, measures the time from the kill to the arrival of the first
// chunk of that substream cut after the kill. A new relay joins in its place and the mesh settles before the next
// round. Prints p50/p99/max and how many such chunks never came.
// Run: cd Benchmarks && swift run -c release mesh-recovery [ROUNDS]

var logger = Logger(label: "bench")
logger.logLevel = .critical
let key = ChannelKey.random()
let rounds = CommandLine.arguments.dropFirst().compactMap { Int($0) }.first ?? 30
let chunkDuration: Int64 = 200_000
let plan = SubstreamPlan()
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// First arrival of each seq at each node.
let arrivals = NIOLockedValueBox<[PeerName: [UInt64: Int64]]>([:])
let ingestTimes = NIOLockedValueBox<[UInt64: Int64]>([:])
let changes = NIOLockedValueBox<[PeerName: [(Int64, [Int: PeerName])]]>([:])
let verbose = ProcessInfo.processInfo.environment["VERBOSE"] != nil

func node(origin: Bool, bootstrap: HostPort?, units: Int, seed: UInt64) throws -> MeshNode {
    let box = NIOLockedValueBox<PeerName>("")
    let node = MeshNode(configuration: .init(listen: HostPort(host: "127.0.0.1", port: 0), key: key, isOrigin: origin,
                                             bootstrap: bootstrap, capacityUnits: units, scheduleDelay: 2_000, seed: seed),
                        group: group, logger: logger, onEvent: { event in
                            guard verbose, case .parentsChanged(let map) = event else { return }
                            let id = box.withLockedValue { $0 }
                            changes.withLockedValue { $0[id, default: []].append((monotonicMicros(), map)) }
                        }, onDeliver: { chunk in
                            let now = monotonicMicros()
                            let id = box.withLockedValue { $0 }
                            arrivals.withLockedValue { if $0[id]?[chunk.seq] == nil { $0[id, default: [:]][chunk.seq] = now } }
                        })
    box.withLockedValue { $0 = try! node.start() }
    return node
}

let origin = try node(origin: true, bootstrap: nil, units: 8, seed: 1)
let bootstrap = HostPort(origin.id)!
let seqBox = NIOLockedValueBox<UInt64>(0)
let running = NIOLockedValueBox(true)
// The source: a chunk every 200 ms on a thread of its own.
let source = Thread {
    while running.withLockedValue({ $0 }) {
        let seq = seqBox.withLockedValue { s -> UInt64 in defer { s += 1 }; return s }
        ingestTimes.withLockedValue { $0[seq] = monotonicMicros() }
        origin.publish(Chunk(seq: seq, ingestTime: wallClockMicros(), pts: 0, duration: chunkDuration, flags: seq % 5 == 0 ? .randomAccess : [],
                             payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 25_000 / 188 * 188))))
        usleep(UInt32(chunkDuration))
    }
}
source.start()

var seed: UInt64 = 10
var relays = try (0..<12).map { _ in seed += 1; return try node(origin: false, bootstrap: bootstrap, units: 16, seed: seed) }
let leaves = try (0..<8).map { i in try node(origin: false, bootstrap: bootstrap, units: 0, seed: UInt64(100 + i)) }
sleep(5)

var recovery = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
/// The same chunks' latency, cut to arrival: what the loss of a parent added beyond waiting for the chunk to be cut.
var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
var never = 0
for round in 0..<rounds {
    guard let victim = relays.max(by: { $0.snapshot().children.count < $1.snapshot().children.count }) else { break }
    let orphans = victim.snapshot().children.flatMap { child, subs in subs.map { (child, $0) } }
    let killedAt = monotonicMicros()
    victim.stop(gracefully: false)
    relays.removeAll { $0 === victim }
    sleep(3)
    let (got, cut) = (arrivals.withLockedValue { $0 }, ingestTimes.withLockedValue { $0 })
    for (child, s) in orphans {
        // The first chunk of that substream cut after the kill.
        guard let next = cut.filter({ $0.value >= killedAt && plan.substream(of: $0.key) == s }).map(\.key).min() else { continue }
        if let at = got[child]?[next] {
            _ = recovery.record(UInt64(at - killedAt))
            _ = latency.record(UInt64(max(0, at - cut[next]!)))
        } else {
            never += 1
        }
        if verbose, (got[child]?[next]).map({ $0 - killedAt > 1_000_000 }) ?? true {
            let history = changes.withLockedValue { $0[child] ?? [] }.filter { $0.0 >= killedAt }
                .map { "+\(($0.0 - killedAt) / 1000)ms \($0.1[s] ?? "-")" }
            print("  slow: \(child) s\(s) next \(next) after \(((got[child]?[next]) ?? 0) - killedAt) µs; parents of s: \(history)")
        }
    }
    print(String(format: "round %d: killed a relay with %d child substreams; recovery so far p50 %.0f ms p99 %.0f ms",
                 round + 1, orphans.count, Double(recovery.valueAtPercentile(50)) / 1000, Double(recovery.valueAtPercentile(99)) / 1000))
    seed += 1
    relays.append(try node(origin: false, bootstrap: bootstrap, units: 16, seed: seed))
    sleep(2)
}
running.withLockedValue { $0 = false }
print(String(format: "recovery over %llu orphaned child substreams: p50 %.0f ms, p99 %.0f ms, max %.0f ms; never came: %d",
             recovery.totalCount, Double(recovery.valueAtPercentile(50)) / 1000, Double(recovery.valueAtPercentile(99)) / 1000,
             Double(recovery.max) / 1000, never))
print(String(format: "those chunks, cut to arrival: p50 %.1f ms, p99 %.1f ms, max %.1f ms (a substream's next chunk is cut up to %lld ms after a kill)",
             Double(latency.valueAtPercentile(50)) / 1000, Double(latency.valueAtPercentile(99)) / 1000, Double(latency.max) / 1000,
             Int64(plan.count) * chunkDuration / 1000))
(relays + leaves + [origin]).forEach { $0.stop(gracefully: false) }
try group.syncShutdownGracefully()
