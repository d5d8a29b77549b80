@testable import ChunkMesh
@testable import MeshCore
import MeshSim
import XCTest

/// Uplinks found out, not declared (issue 19), in the simulator: each peer's uplink is modelled, its core's egress
/// hands chunks to it, and the core learns what it can send from when they leave.
final class UplinkTests: XCTestCase {
    let rate = BitRate(bitsPerSecond: 1_100_000)

    /// An origin of twice the stream on a LAN (300 µs links).
    func lan() -> SimulatedMesh {
        let sim = SimulatedMesh(originUnits: 8, originScheduleDelay: 100_000, streamRate: rate,
                                originUplink: BitRate(bitsPerSecond: 2 * rate.bitsPerSecond))
        sim.oneWayDelay = { _, _ in 300 }
        return sim
    }

    func uplink(_ streams: Double) -> BitRate { BitRate(bitsPerSecond: streams * rate.bitsPerSecond) }

    /// Runs `seconds`, calling `each` every 50 ms of it.
    func run(_ sim: SimulatedMesh, seconds: Int, _ each: () -> Void = {}) {
        for _ in 0..<seconds * 20 {
            sim.run(for: 50_000)
            each()
        }
    }

    /// Seqs cut in the last `seconds` (all but the newest 2 s, still on their way) that `name` never got.
    func missed(_ sim: SimulatedMesh, _ name: String, lastSeconds seconds: Int) -> [UInt64] {
        let got = sim.delivered[sim.id(name)] ?? [:]
        let end = sim.producedSeqs - 10
        return (end - UInt64(seconds * 5)..<end).filter { got[$0] == nil }
    }

    func testASlowPeerThatDeclaresNothingEndsHoldingOnlyWhatItCanSend() {
        let sim = lan()
        // One fast relay, then the slow one (0.4 streams: one unit of four), then more fast relays and leaves.
        sim.join("fast0", uplink: uplink(3), streamRate: rate, seed: 1, declares: false)
        sim.run(for: 500_000)
        let slow = sim.join("slow", uplink: uplink(0.4), streamRate: rate, seed: 2, declares: false)
        var mostOffered = 0
        sim.run(for: 1)
        mostOffered = sim.peers[slow]!.config.capacityUnits
        var names = ["fast0", "slow"]
        for i in 1..<4 {
            sim.run(for: 500_000)
            sim.join("fast\(i)", uplink: uplink(3), streamRate: rate, seed: UInt64(10 + i), declares: false)
            names.append("fast\(i)")
        }
        for i in 0..<4 {
            sim.run(for: 300_000)
            sim.join("leaf\(i)", uplink: uplink(0.5), streamRate: rate, seed: UInt64(20 + i), declares: false)
            names.append("leaf\(i)")
        }
        run(sim, seconds: 60) { mostOffered = max(mostOffered, sim.peers[slow]!.config.capacityUnits) }
        let peer = sim.peers[slow]!
        let canSend = Int(uplink(0.4).bitsPerSecond / (rate.bitsPerSecond / 4))
        XCTAssertGreaterThan(mostOffered, canSend, "it started offering more than it can send (else this tests nothing)")
        XCTAssertGreaterThan(peer.egress.bytesSent, 0, "it fed someone: what it sent told it its uplink")
        XCTAssertLessThanOrEqual(peer.config.capacityUnits, canSend, "it offers only what it can send")
        XCTAssertLessThanOrEqual(peer.usedUnits, canSend, "it holds only what it can send: \(peer.usedUnits) units")
        XCTAssertEqual(peer.egress.uplink.rate * 8, uplink(0.4).bitsPerSecond, accuracy: 0.1 * uplink(0.4).bitsPerSecond)
        for name in names {
            XCTAssertTrue(sim.peers[name]!.hasAllParents, name)
            XCTAssertEqual(missed(sim, name, lastSeconds: 20), [], "\(name) missed chunks once settled")
        }
    }

    func testAPeerThatClaimsFourTimesItsUplinkLosesWhatItCannotFeed() {
        let sim = lan()
        // The liar claims four times its half stream: the cap allows 8 units, what it sends allows 1 or 2.
        var config = MeshPeerConfig(me: sim.id("liar"), isOrigin: false, bootstrap: sim.origin, capacityUnits: 8, scheduleDelay: 1,
                                    seed: 3, plan: sim.plan, chunkDuration: sim.chunkDuration)
        config.uplink = uplink(2)
        config.findsUplink = true
        config.streamRate = rate
        config.initialUplink = uplink(2)
        sim.add(config, uplink: uplink(0.5))
        sim.run(for: 1)
        sim.send("liar", .stream(rate: Int64(rate.bitsPerSecond), substreams: 4))
        var mostOffered = sim.peers["liar"]!.config.capacityUnits
        var names: [String] = []
        for i in 0..<6 {
            sim.run(for: 400_000)
            sim.join("p\(i)", uplink: uplink(i < 3 ? 3 : 0.5), streamRate: rate, seed: UInt64(40 + i), declares: false)
            names.append("p\(i)")
        }
        run(sim, seconds: 60) { mostOffered = max(mostOffered, sim.peers["liar"]!.config.capacityUnits) }
        let liar = sim.peers["liar"]!
        XCTAssertGreaterThan(mostOffered, 2, "the claim was believed at first (else this tests nothing)")
        XCTAssertGreaterThan(liar.egress.bytesSent, 0, "it fed someone")
        XCTAssertLessThanOrEqual(liar.config.capacityUnits, 2, "what it sent, not what it claims, sizes it")
        XCTAssertLessThanOrEqual(liar.usedUnits, 2, "it keeps only what it can feed")
        for name in names { XCTAssertEqual(missed(sim, name, lastSeconds: 20), [], "\(name) missed chunks once settled") }
    }

    /// What a relay tells of its uplink is the uplink's own (one chunk's time), whatever its fan-out: parents weigh it
    /// when a stronger asker may take a weaker child's place, and a busy relay is no weaker than an idle peer.
    func testARelayTellsItsUplinkWhateverItsFanOut() {
        let sim = lan()
        let relay = sim.join("relay", uplink: uplink(4), streamRate: rate, seed: 1, declares: false)
        sim.run(for: 500_000)
        for i in 0..<6 {
            sim.join("leaf\(i)", uplink: uplink(0.3), streamRate: rate, seed: UInt64(10 + i), bootstrap: relay, declares: false)
        }
        var busiest = 0
        run(sim, seconds: 20) {
            let peer = sim.peers[relay]!
            let fanOut = (0..<4).map { s in peer.children.values.filter { $0.contains(s) }.count }.max() ?? 0
            busiest = max(busiest, fanOut)
            XCTAssertEqual(peer.info.scheduleDelay, peer.config.scheduleDelay, "fan-out \(fanOut)")
        }
        XCTAssertGreaterThanOrEqual(busiest, 2, "the relay fed several children a substream (else this tests nothing)")
    }
}

