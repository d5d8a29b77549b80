import ChunkMesh
import XCTest

final class ParentSelectorTests: XCTestCase {
    private func candidate(_ id: String, d: Int64, link: Int64 = 1000, sched: Int64 = 1000, units: Int,
                           ancestors: Set<String> = []) -> CandidateParent {
        CandidateParent(id: id, delayFromSource: d, linkDelay: link, scheduleDelay: sched, residualUnits: units, ancestors: ancestors)
    }

    func testPowerIsResidualOverDelay() {
        let c = candidate("a", d: 8000, units: 3)
        XCTAssertEqual(c.delayVia, 10_000)
        XCTAssertEqual(c.power(needing: 4), 3.0 / 10_000)
        XCTAssertEqual(c.power(needing: 2), 2.0 / 10_000)
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

    func testSubstreamPlan() {
        let plan = SubstreamPlan(count: 4)
        XCTAssertEqual((0..<8).map { plan.substream(of: UInt64($0)) }, [0, 1, 2, 3, 0, 1, 2, 3])
        XCTAssertEqual(plan.units(uplink: BitRate("8M")!, streamRate: BitRate("2M")!), 16)
        XCTAssertEqual(plan.units(uplink: BitRate("1M")!, streamRate: BitRate("2M")!), 2)
        XCTAssertEqual(SubstreamPlan.scheduleDelay(chunkBytes: 50_000, uplink: BitRate("8M")!), 50_000)
    }
}
