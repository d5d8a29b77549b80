import ChunkMesh
import MeshCore
import Foundation
import MeshSim
import XCTest

final class OverlayTests: XCTestCase {
    private func scenario(peers: Int, uplinks: String = "0.5x-4x", churn: String = "off", duration: Int64 = 40, seed: UInt64 = 3) -> OverlayScenario {
        var sc = OverlayScenario()
        sc.peers = peers
        sc.uplinks = UplinkDistribution(argument: uplinks)!
        sc.churn = OverlayChurn(argument: churn)!
        sc.duration = duration * 1_000_000
        sc.joinSpread = 4_000_000
        sc.seed = seed
        return sc
    }

    func testChurnSpecs() {
        let churn = OverlayChurn(argument: "fail:2s,leave:5:1")
        XCTAssertEqual(churn?.failEvery, 2)
        XCTAssertEqual(churn?.leaveEvery, 5)
        XCTAssertEqual(churn?.down, 1)
        XCTAssertEqual(OverlayChurn(argument: "off"), OverlayChurn())
        XCTAssertNil(OverlayChurn(argument: "relays:5s"), "a soak kind is not an overlay kind")
        XCTAssertNil(OverlayChurn(argument: "often"))
    }

    func testMaxRateIsKumarLiuRossBound() {
        var sc = scenario(peers: 10, uplinks: "0.5x")
        sc.originUplink = UplinkDistribution(argument: "3x")!
        let world = OverlayWorld(sc)
        // min(u_s, (u_s + Σ u_i) / n) = min(3, (3 + 10 × 0.5) / 10) = 0.8 streams
        XCTAssertEqual(world.maxRate / world.rate, 0.8, accuracy: 1e-9)
        XCTAssertEqual(world.units[1], 2)
        XCTAssertEqual(world.units[0], 12)
    }

    func testTheNetworkModelIsSymmetricAndBounded() {
        var net = WideAreaNetwork(seed: 9)
        for _ in 0..<50 { net.addHost() }
        for a in 0..<50 {
            XCTAssertEqual(net.delay(a, a), 0)
            for b in 0..<50 where b != a {
                XCTAssertEqual(net.delay(a, b), net.delay(b, a))
                XCTAssertGreaterThanOrEqual(net.delay(a, b), 2 * net.access.lowerBound)
                XCTAssertLessThanOrEqual(net.delay(a, b), 2 * net.access.upperBound + Int64(Double(net.crossing) * 1.415))
            }
        }
    }

    func testTheSameSeedGivesTheSameNumbers() throws {
        let world = OverlayWorld(scenario(peers: 40, churn: "fail:4s", duration: 30))
        XCTAssertGreaterThan(world.events.count, 4)
        for algorithm in OverlayAlgorithm.allCases {
            var a = OverlaySimulation.run(algorithm, world: world)
            var b = OverlaySimulation.run(algorithm, world: OverlayWorld(world.scenario))
            (a.wallSeconds, b.wallSeconds) = (0, 0)
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            XCTAssertEqual(String(decoding: try encoder.encode(a), as: UTF8.self), String(decoding: try encoder.encode(b), as: UTF8.self), algorithm.rawValue)
        }
    }

    func testEveryPeerGetsTheFullRateWhenTheUplinksAllowIt() {
        let world = OverlayWorld(scenario(peers: 120, uplinks: "1.5x-4x", duration: 60))
        XCTAssertGreaterThan(world.maxRate, world.rate)
        for algorithm in OverlayAlgorithm.allCases {
            let r = OverlaySimulation.run(algorithm, world: world)
            XCTAssertEqual(r.peersMeasured, 120, algorithm.rawValue)
            XCTAssertGreaterThanOrEqual(r.rateRatio, 0.999, algorithm.rawValue)
            XCTAssertLessThanOrEqual(r.rateRatio, 1.000_001, algorithm.rawValue)
            XCTAssertLessThanOrEqual(r.originLoad, 2.0 + 1e-9, "the origin serves at most its uplink: \(algorithm)")
        }
    }

    func testFastMeshNeverFormsALoopUnderChurn() {
        let world = OverlayWorld(scenario(peers: 100, churn: "fail:2s,leave:3s", duration: 60))
        XCTAssertGreaterThan(world.events.filter { $0.kind == .fail }.count, 10)
        let r = OverlaySimulation.run(.fastmesh, world: world)
        XCTAssertEqual(r.loopsSeen, 0)
        XCTAssertGreaterThan(r.rateRatio, 0.9, "the mesh keeps the stream going")
    }

    /// Design §7: a crowd that all joins through the origin within two seconds leaves no node, the origin least of
    /// all, with more than a bounded number of links; the mesh walked node to node still lists everyone.
    func testAFlashCrowdThroughTheOriginLeavesEveryNodeFewLinks() throws {
        var sc = scenario(peers: 300, duration: 40)
        sc.joinSpread = 2_000_000
        sc.bootstrap = .origin
        let r = OverlaySimulation.run(.fastmesh, world: OverlayWorld(sc))
        guard let scale = r.scale else { return XCTFail("fastmesh reports its scale figures") }
        // A peer keeps 32 links (`MeshPeerConfig.maxLinks`); strangers past that are answered and let go.
        XCTAssertLessThanOrEqual(scale.maxLinks, 64, "links at the busiest node")
        let held = try XCTUnwrap(scale.maxLinksHolder, "the report says who held the most links")
        XCTAssertEqual(held.opened + held.byOthers, scale.maxLinks, "the links it opened and those opened to it are all it held")
        XCTAssertGreaterThan(held.byOthers, 0, "the crowd dialled in")
        XCTAssertLessThanOrEqual(held.children + held.parents, scale.maxLinks, "its children and parents are among its links")
        XCTAssertEqual(scale.withoutChunk, 0)
        XCTAssertEqual(scale.meshListed, scale.meshAlive, "the walk from the origin finds every live peer")
        XCTAssertGreaterThan(r.rateRatio, 0.99)
        XCTAssertEqual(r.loopsSeen, 0)
    }

    func testFastMeshIsAheadOfARandomMesh() {
        let world = OverlayWorld(scenario(peers: 150, duration: 90))
        let fast = OverlaySimulation.run(.fastmesh, world: world)
        let random = OverlaySimulation.run(.random, world: world)
        let centralized = OverlaySimulation.run(.centralized, world: world)
        // Every peer's uplink sends one chunk after another (the egress), in the baselines too: a later child of the
        // same substream waits for those before it. In that model the distributed mesh is ahead of a random one
        // but not yet near full knowledge (about 2.9× its max delay here; BENCHMARKS, issue 19, has the figures).
        XCTAssertLessThan(fast.maxDelayMs, random.maxDelayMs, "centralized: \(centralized.maxDelayMs) ms")
        // No peer hears a chunk sooner than its straight line from the origin plus the origin's push.
        let floor = (1..<world.count).map { Double(world.network.delay(0, $0) + world.sched[0]) / 1_000 }.max()!
        XCTAssertGreaterThanOrEqual(fast.maxDelayMs, floor, "no faster than the direct path")
        XCTAssertGreaterThanOrEqual(fast.maxDelayMs, centralized.maxDelayMs * 0.5, "full knowledge is a heuristic, not magic")
    }

    /// The centralized mesh timed through each peer's uplink, as fastmesh is: a parent's substreams queue behind each
    /// other, so its chunks come no sooner than the analytic baseline says, and later where uplinks are uneven.
    func testTheCentralizedMeshThroughQueuedUplinksIsNoFasterThanItsAnalyticDelays() {
        let world = OverlayWorld(scenario(peers: 150, duration: 40))
        let analytic = OverlaySimulation.run(.centralized, world: world)
        let queued = OverlaySimulation.run(.centralizedQueued, world: world)
        XCTAssertEqual(queued.originLoad, analytic.originLoad, "the same mesh")
        XCTAssertGreaterThan(queued.maxDelayMs, analytic.maxDelayMs)
        XCTAssertGreaterThan(queued.meanDelayMs, analytic.meanDelayMs)
        XCTAssertEqual(queued.rateRatio, 1, accuracy: 0.001, "every chunk arrives")
    }

    /// Issue 19: where upload is scarce (uplinks 0.5x-4x, the origin 2x) the mesh settles and delivers on time. A
    /// relay used to tell its sched multiplied by its busiest fan-out, so one feeding three children a substream
    /// looked three times weaker than an idle peer of the same uplink: joiners evicted relays and the subtrees below
    /// them, over and over (here: 89 % on time, 39 parent changes a peer a minute; at 1,000 peers, 50 %).
    func testWhereUploadIsScarceTheMeshSettlesAndDeliversOnTime() throws {
        let r = OverlaySimulation.run(.fastmesh, world: OverlayWorld(scenario(peers: 200, duration: 40)))
        let scale = try XCTUnwrap(r.scale)
        XCTAssertGreaterThanOrEqual(r.onTime, 0.99, "chunks on time")
        XCTAssertLessThan(scale.parentChangesPerPeerMinuteMeasured, 20, "parent changes a peer a minute, settled")
        XCTAssertEqual(r.loopsSeen, 0)
    }
}
