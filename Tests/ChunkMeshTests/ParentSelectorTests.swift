import ChunkMesh
import MeshCore
import XCTest

final class ParentSelectorTests: XCTestCase {
    /// A candidate that receives every substream at delay `d`, with `ancestors` upstream in all of them.
    private func candidate(_ id: PeerID, d: Int64, link: Int64 = 1000, sched: Int64 = 1000, units: Int,
                           ancestors: [PeerID] = [], substreams: [Int] = [0, 1, 2, 3]) -> CandidateParent {
        CandidateParent(id: id, delays: Dictionary(uniqueKeysWithValues: substreams.map { ($0, d) }), linkDelay: link,
                        scheduleDelay: sched, residualUnits: units,
                        ancestors: Dictionary(uniqueKeysWithValues: substreams.map { ($0, ancestors) }))
    }

    func testPowerIsResidualOverDelay() {
        let c = candidate("a", d: 8000, units: 3)
        XCTAssertEqual(c.delayVia(0), 10_000)
        XCTAssertEqual(c.power(needing: [0, 1, 2, 3], me: "me"), 3.0 / 10_000)
        XCTAssertEqual(c.power(needing: [0, 1], me: "me"), 2.0 / 10_000)
        XCTAssertEqual(candidate("b", d: 0, units: 4, substreams: [2]).power(needing: [0, 1], me: "me"), 0)
    }

    func testGreedySelectionTakesTheMostPowerfulFirst() {
        // near: 2 units at 10 ms → power 2/10; far: 4 units at 40 ms → 4/40 = 1/10; origin: 1 unit at 2 ms → 1/2.
        let plan = ParentSelector.select(needed: [0, 1, 2, 3], from: [
            candidate("far", d: 38_000, units: 4),
            candidate("near", d: 8000, units: 2),
            candidate("origin", d: 0, units: 1),
        ], me: "me")
        XCTAssertEqual(plan, [0: "origin", 1: "near", 2: "near", 3: "far"])
    }

    func testNeverTakesItselfADescendantOrAFullPeer() {
        let plan = ParentSelector.select(needed: [0, 1], from: [
            candidate("me", d: 0, units: 4),
            candidate("child", d: 1000, units: 4, ancestors: ["origin", "me"]),
            candidate("full", d: 1000, units: 0),
            candidate("ok", d: 50_000, units: 1),
        ], me: "me")
        XCTAssertEqual(plan, [0: "ok"]) // substream 1 found no parent
    }

    func testTreesArePerSubstream() {
        // My child in substream 0 may feed me substream 1: the trees are separate.
        var child = candidate("child", d: 5000, units: 2)
        child.ancestors[0] = ["origin", "me"]
        let plan = ParentSelector.select(needed: [0, 1], from: [child], me: "me")
        XCTAssertEqual(plan, [1: "child"])
    }

    func testImprovementMovesTheWorstSubstreamBeyondTheMargin() {
        let parents = [0: candidate("a", d: 5000, units: 1), 1: candidate("slow", d: 60_000, units: 1)]
        XCTAssertEqual(ParentSelector.delay(parents: parents), 62_000)
        let better = candidate("b", d: 10_000, units: 1)
        let move = ParentSelector.improvement(parents: parents, candidates: [better], me: "me", margin: 5000)
        XCTAssertEqual(move?.substream, 1)
        XCTAssertEqual(move?.to, "b")
        // Within the hysteresis margin: no move.
        let barely = candidate("c", d: 57_500, units: 1)
        XCTAssertNil(ParentSelector.improvement(parents: parents, candidates: [barely], me: "me", margin: 5000))
        // A candidate that has me upstream is never a move, however fast.
        let loop = candidate("d", d: 0, units: 4, ancestors: ["me"])
        XCTAssertNil(ParentSelector.improvement(parents: parents, candidates: [loop], me: "me", margin: 5000))
    }

    func testImprovementMovesOneSubstreamAtATimeEvenWhenOneParentFeedsAll() {
        let slow = candidate("slow", d: 60_000, units: 0)
        var parents = [0: slow, 1: slow, 2: slow, 3: slow]
        let fast = candidate("fast", d: 2_000, units: 4)
        var moves: [Int] = []
        while let move = ParentSelector.improvement(parents: parents, candidates: [fast, slow], me: "me", margin: 2_000) {
            XCTAssertEqual(move.to, "fast")
            moves.append(move.substream)
            parents[move.substream] = fast
        }
        XCTAssertEqual(moves.sorted(), [0, 1, 2, 3])
        XCTAssertEqual(ParentSelector.delay(parents: parents), 4_000)
    }

    func testSubstreamPlan() {
        let plan = SubstreamPlan(count: 4)
        XCTAssertEqual((0..<8).map { plan.substream(of: UInt64($0)) }, [0, 1, 2, 3, 0, 1, 2, 3])
        XCTAssertEqual(plan.units(uplink: BitRate("8M")!, streamRate: BitRate("2M")!), 16)
        XCTAssertEqual(plan.units(uplink: BitRate("1M")!, streamRate: BitRate("2M")!), 2)
        // A 200 ms chunk of a 2 Mbit/s stream is 50,000 bytes: 50 ms at 8 Mbit/s.
        XCTAssertEqual(SubstreamPlan.scheduleDelay(streamRate: BitRate("2M")!, chunkDuration: 200_000, uplink: BitRate("8M")!), 50_000)
    }
}
