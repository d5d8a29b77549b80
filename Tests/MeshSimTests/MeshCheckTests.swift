import ChunkMesh
import MeshCore
import MeshSim
import XCTest

/// `lsp2p-sim check` (deterministic simulation testing of the real core): the suite's seed sweep runs the release
/// binary in `scripts/test.sh`; these check the checker.
final class MeshCheckTests: XCTestCase {
    func check(peers: Int = 60, duration: Int = 40) -> MeshCheck {
        var check = MeshCheck()
        check.peers = peers
        check.duration = duration
        return check
    }

    func testASeedReplaysExactlyAndHoldsEveryInvariant() {
        let first = check().run(seed: 3)
        let again = check().run(seed: 3)
        XCTAssertNil(first.violation.map { "\($0)" })
        XCTAssertGreaterThan(first.events, 10_000, "the cores handled events")
        XCTAssertGreaterThan(first.checks, 10_000, "invariants were checked after them")
        XCTAssertEqual(first.events, again.events, "the same seed, the same run")
        XCTAssertEqual(first.checks, again.checks)
    }

    /// An audience whose uplinks carry a tenth of what they should cannot feed itself: peers go without parents,
    /// and the liveness invariant says so (with the seed and event to replay).
    func testLivenessFailsWhereTheAudienceCannotFeedItself() {
        var starved = check()
        starved.uplinkScale = 0.1
        let outcome = starved.run(seed: 3)
        XCTAssertEqual(outcome.violation?.invariant, .liveness, "\(outcome.violation.map { "\($0)" } ?? "no violation")")
        XCTAssertEqual(outcome.violation?.seed, 3)
        XCTAssertGreaterThan(outcome.violation?.event ?? 0, 0)
    }

    /// Findings of the seed sweep, each fixed (50 peers, 40 s): a retired viewer held the origin's only unit of a
    /// substream, and nobody could have that substream for the rest of the run (liveness).
    func testSeedsThatFoundBugsPass() {
        for seed: UInt64 in [57, 188] {
            let outcome = check(peers: 50).run(seed: seed)
            XCTAssertNil(outcome.violation.map { "\($0)" }, "seed \(seed)")
        }
    }

    /// A mute holding the origin's only unit of a substream, with the origin too full to free another: every peer
    /// went without that substream to the end (`--every-substream`, 100 peers, 45 s). The origin now gives the
    /// sole holder's unit to the third asker that has gone without it for two parent timeouts.
    func testAMuteSoleHolderOfASubstreamIsReplaced() {
        for seed: UInt64 in [70] {
            var strict = check(peers: 100, duration: 45)
            strict.everySubstream = true
            let outcome = strict.run(seed: seed)
            XCTAssertNil(outcome.violation.map { "\($0)" }, "seed \(seed)")
        }
    }
}
