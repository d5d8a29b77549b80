@testable import ChunkMesh
@testable import MeshCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// Mesh nodes driven by NIO over real TCP on loopback, in one process: the origin, relays and leaves.
final class MeshNodeTests: MeshNodeTestCase {
    func testRelaysCarryWhatTheOriginsUplinkCannotAndSurviveAKill() throws {
        // The origin serves one stream's worth (4 units); three relays carry the rest to four leaves.
        let origin = try node(origin: true, bootstrap: nil, units: 4, seed: 1)
        defer { origin.stop() }
        let bootstrap = HostPort(origin.id)!
        var seq: UInt64 = 0
        let relays = try (0..<3).map { try node(bootstrap: bootstrap, units: 16, seed: UInt64(10 + $0)) }
        defer { relays.forEach { $0.stop() } }
        publish(20, from: origin, seq: &seq) // relays settle on their parents
        let leaves = (0..<4).map { _ in NIOLockedValueBox<Set<UInt64>>([]) }
        let leafNodes = try leaves.enumerated().map { try node(bootstrap: bootstrap, units: 0, seed: UInt64(20 + $0.offset), got: $0.element) }
        defer { leafNodes.forEach { $0.stop() } }
        publish(20, from: origin, seq: &seq)
        XCTAssertTrue(waitUntil("every leaf fed in every substream") {
            origin.publish(chunk(seq))
            seq += 1
            usleep(30_000) // with the wait's own 20 ms, one chunk each 50 ms
            return leafNodes.allSatisfy { $0.snapshot().parents.count == 4 }
        })
        XCTAssertLessThanOrEqual(origin.snapshot().children.values.reduce(0) { $0 + $1.count }, 4, "origin within its uplink")

        // Kill the relay that feeds most, without a goodbye; the leaves re-parent and keep getting chunks.
        let busiest = relays.max { $0.snapshot().children.count < $1.snapshot().children.count }!
        busiest.stop(gracefully: false)
        let afterKill = seq
        publish(60, from: origin, seq: &seq)
        for (i, got) in leaves.enumerated() {
            // Live chunks come first; what was missed meanwhile follows from the new parents' backlog and repairs.
            let missing = { got.withLockedValue { have in (afterKill..<seq).filter { !have.contains($0) } } }
            // On a failure, every node's state: a leaf without parents is stuck because of what the others hold.
            let everyone = { ([origin] + relays.filter { $0 !== busiest }).map { "\($0.id): \($0.debugState)" }.joined(separator: "; ") }
            // 60 s: when leaves take the origin's units first, each relay wins one back per full ask (10 s apart per
            // full peer) before it can feed them again (issue 20 is to make that fast; 20 s failed 2 full runs in 5).
            XCTAssertTrue(waitUntil("leaf \(i) to miss at most 3 chunks after the kill (\(missing()) now; \(leafNodes[i].debugState); others: \(everyone()))", seconds: 60) {
                missing().count <= 3
            })
            XCTAssertFalse(leafNodes[i].snapshot().parents.values.contains(busiest.id))
        }
    }

    func testPeersRouteAroundAMuteALyingAndACorruptingPeer() throws {
        // Two streams' worth at the origin, two honest relays of two streams each, then three bad peers that claim
        // 64 units: they take most of the honest relays' room, so the four leaves (players that upload a stream's
        // worth) must start on them, and end up fed by the honest relays and each other.
        let origin = try node(origin: true, bootstrap: nil, units: 8, seed: 1)
        defer { origin.stop() }
        let bootstrap = HostPort(origin.id)!
        var seq: UInt64 = 0
        let honest = try (0..<2).map { try node(bootstrap: bootstrap, units: 8, seed: UInt64(2 + $0)) }
        defer { honest.forEach { $0.stop() } }
        publish(20, from: origin, seq: &seq)
        let bad = try [
            node(bootstrap: bootstrap, units: 64, seed: 4, faults: Faults(mute: true)),
            node(bootstrap: bootstrap, units: 64, seed: 5, faults: Faults(realUplink: BitRate(bitsPerSecond: 100_000))),
            node(bootstrap: bootstrap, units: 64, seed: 6, faults: Faults(corruptFramesFrom: 1_000)),
        ]
        defer { bad.forEach { $0.stop() } }
        publish(20, from: origin, seq: &seq)
        let leaves = (0..<4).map { _ in NIOLockedValueBox<Set<UInt64>>([]) }
        let seen = NIOLockedValueBox<Set<PeerName>>([])
        let leafNodes = try leaves.enumerated().map {
            try node(bootstrap: bootstrap, units: 4, seed: UInt64(10 + $0.offset), got: $0.element, parentsSeen: seen)
        }
        defer { leafNodes.forEach { $0.stop() } }
        publish(200, from: origin, seq: &seq)
        // The 4 s before now, once a bad parent tried late has been found out and its gap repaired.
        let checked = (seq - 80)..<seq
        publish(60, from: origin, seq: &seq)
        let badIDs = Set(bad.map(\.id))
        for (i, got) in leaves.enumerated() {
            // Waited for, not read at once: on a loaded machine the last of them may still be on their way.
            let missing = { got.withLockedValue { have in checked.filter { !have.contains($0) } } }
            XCTAssertTrue(waitUntil("leaf \(i) to miss at most one chunk of \(checked) (\(missing()) now; \(leafNodes[i].debugState))") {
                missing().count <= 1
            })
        }
        // Not a test of nothing: bad peers were leaves' parents on the way.
        XCTAssertFalse(seen.withLockedValue { $0.isDisjoint(with: badIDs) }, "no leaf ever took a bad parent")
    }
}
