import ChunkMesh
import MeshCore
import NIOCore
import XCTest

final class PlayoutBufferTests: XCTestCase {
    private let delay: Int64 = 2_000_000

    private func chunk(_ seq: UInt64, at ingest: Int64, ra: Bool = false, epoch: UInt64 = 1) -> Chunk {
        Chunk(seq: seq, epoch: epoch, ingestTime: ingest, pts: Int64(seq) * 18_000, duration: 200_000,
              flags: ra ? .randomAccess : [], payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188)))
    }

    private func seqs(_ outputs: [PlayoutBuffer.Output]) -> [String] {
        outputs.map {
            switch $0 {
            case .chunk(let c, let late): return c.isEndOfStream ? "eos" : "\(c.seq)\(late ? "L" : "")"
            case .skipped(let s): return s.count == 1 ? "skip\(s.lowerBound)" : "skip\(s.lowerBound)-\(s.upperBound)"
            case .restarted: return "restart"
            }
        }
    }

    func testInOrderChunksAreReleasedAtOnce() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(buffer.receive(chunk(10, at: 0, ra: true), now: 1000), .onTime)
        XCTAssertEqual(seqs(buffer.pull(now: 1000)), ["10"])
        XCTAssertEqual(buffer.receive(chunk(11, at: 200_000), now: 201_000), .onTime)
        XCTAssertEqual(seqs(buffer.pull(now: 201_000)), ["11"])
        XCTAssertEqual(buffer.stats.onTime, 2)
        XCTAssertEqual(buffer.startSeq, 10)
    }

    func testStartsAtARandomAccessChunk() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(buffer.receive(chunk(4, at: 0), now: 0), .beforeStart)
        XCTAssertEqual(buffer.receive(chunk(5, at: 0, ra: true), now: 0), .onTime)
        XCTAssertEqual(buffer.receive(chunk(4, at: 0), now: 0), .beforeStart)
        XCTAssertEqual(seqs(buffer.pull(now: 0)), ["5"])
        XCTAssertEqual(buffer.stats.received, 1)
    }

    func testWhatCameBeforeAnOlderRandomAccessChunkIsPlayedAfterIt() {
        // A newcomer's parents each send from their own newest random-access chunk: the one that starts further back
        // (its chunk 10) may come after the other's 11 and 13. The node holds those and never asks for them again.
        var buffer = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(buffer.receive(chunk(11, at: 200_000), now: 300_000), .beforeStart)
        XCTAssertEqual(buffer.receive(chunk(13, at: 600_000), now: 700_000), .beforeStart)
        XCTAssertEqual(buffer.receive(chunk(9, at: 0), now: 700_000), .beforeStart)
        XCTAssertEqual(buffer.receive(chunk(10, at: 0, ra: true), now: 800_000), .onTime)
        XCTAssertEqual(seqs(buffer.pull(now: 800_000)), ["10", "11"])
        XCTAssertEqual(buffer.receive(chunk(12, at: 400_000), now: 900_000), .onTime)
        XCTAssertEqual(seqs(buffer.pull(now: 900_000)), ["12", "13"])
        XCTAssertEqual(buffer.receive(chunk(11, at: 200_000), now: 900_000), .duplicate, "held, then played")
        XCTAssertEqual(seqs(buffer.pull(now: 10_000_000)), [])
        XCTAssertEqual([buffer.stats.received, buffer.stats.onTime, buffer.stats.missing, buffer.stats.duplicates], [4, 4, 0, 1])
        XCTAssertEqual(buffer.startSeq, 10)
    }

    func testWhatComesBeforeAStartIsHeldWithinABound() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        for seq in UInt64(101)...400 { _ = buffer.receive(chunk(seq, at: Int64(seq) * 200_000), now: 0) }
        XCTAssertEqual(buffer.receive(chunk(100, at: 20_000_000, ra: true), now: 0), .onTime)
        // Only the newest `maxEarly` were kept: 101 ... 336 are gone, and skipped once 337 is due.
        XCTAssertEqual(seqs(buffer.pull(now: 0)), ["100"])
        XCTAssertEqual(seqs(buffer.pull(now: 337 * 200_000 + delay)).prefix(2), ["skip101-336", "337"])
        XCTAssertEqual(buffer.stats.received, 1 + PlayoutBuffer.maxEarly)
    }

    func testReordersWithinTheDeadline() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        _ = buffer.receive(chunk(2, at: 400_000), now: 400_000)
        XCTAssertEqual(seqs(buffer.pull(now: 400_000)), ["0"])
        _ = buffer.receive(chunk(1, at: 200_000), now: 500_000)
        XCTAssertEqual(seqs(buffer.pull(now: 500_000)), ["1", "2"])
        XCTAssertEqual(buffer.stats.missing, 0)
    }

    func testGapIsSkippedOnlyOnceALaterChunksDeadlinePasses() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        _ = buffer.receive(chunk(2, at: 400_000), now: 400_000)
        XCTAssertEqual(seqs(buffer.pull(now: 400_000)), ["0"])
        XCTAssertEqual(buffer.gapDeadline, 2_400_000)
        XCTAssertEqual(seqs(buffer.pull(now: 2_399_999)), [])
        XCTAssertEqual(seqs(buffer.pull(now: 2_400_000)), ["skip1", "2"])
        XCTAssertEqual(buffer.stats.missing, 1)
        // The missing chunk comes after all: too late, still missing.
        XCTAssertEqual(buffer.receive(chunk(1, at: 200_000), now: 2_500_000), .tooLate)
        XCTAssertEqual(buffer.stats.missing, 1)
        XCTAssertEqual(buffer.stats.expected, 3)
    }

    func testLateChunkIsStillWrittenWhenOrderAllows() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(buffer.receive(chunk(0, at: 0, ra: true), now: 3_000_000), .late)
        XCTAssertEqual(seqs(buffer.pull(now: 3_000_000)), ["0L"])
        XCTAssertEqual(buffer.stats.late, 1)
        XCTAssertEqual(buffer.latency.max, 3_000_000, accuracy: 3_000)
    }

    func testNoGapIsSkippedWhileNothingLaterArrived() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        XCTAssertEqual(seqs(buffer.pull(now: 60_000_000)), ["0"])
        // A stalled source is not a loss.
        XCTAssertEqual(seqs(buffer.pull(now: 120_000_000)), [])
        XCTAssertEqual(buffer.stats.missing, 0)
    }

    func testDuplicatesAreCountedNotReplayed() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        XCTAssertEqual(buffer.receive(chunk(0, at: 0, ra: true), now: 1), .duplicate)
        _ = buffer.pull(now: 1)
        XCTAssertEqual(buffer.receive(chunk(0, at: 0, ra: true), now: 2), .duplicate)
        XCTAssertEqual(buffer.stats.duplicates, 2)
        XCTAssertEqual(buffer.stats.received, 1)
    }

    func testEndOfStreamFinishesAfterEverythingBeforeIt() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        var end = Chunk.endOfStream(seq: 2, ingestTime: 400_000)
        end.epoch = 1
        _ = buffer.receive(end, now: 400_000)
        XCTAssertEqual(seqs(buffer.pull(now: 400_000)), ["0"])
        XCTAssertFalse(buffer.finished)
        _ = buffer.receive(chunk(1, at: 200_000), now: 500_000)
        XCTAssertEqual(seqs(buffer.pull(now: 500_000)), ["1", "eos"])
        XCTAssertTrue(buffer.finished)
        XCTAssertEqual(buffer.stats.expected, 2)
    }

    func testAStopCutsOffWhatWasNotDueYetWithoutCountingItMissing() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        _ = buffer.receive(chunk(5, at: 1_000_000, ra: true), now: 1_000_000)
        XCTAssertEqual(seqs(buffer.pull(now: 0)), ["0"])
        // Stopping at 2.5 s: 1 and 2 were due by then (2.2 and 2.4 s), 3 and 4 not yet (2.6 and 2.8 s).
        XCTAssertEqual(seqs(buffer.drain(stoppingAt: 2_500_000)), ["skip1-4", "5"])
        XCTAssertEqual(buffer.stats.missing, 2)
        XCTAssertEqual(buffer.stats.cutOff, 2)
        XCTAssertEqual(buffer.stats.expected, 4)
    }

    func testDrainSkipsGapsAndResumesOnlyAtARandomAccessChunk() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(0, at: 0, ra: true), now: 0)
        _ = buffer.receive(chunk(3, at: 600_000), now: 600_000)
        _ = buffer.receive(chunk(5, at: 1_000_000, ra: true), now: 1_000_000)
        _ = buffer.receive(chunk(6, at: 1_200_000), now: 1_200_000)
        _ = buffer.receive(chunk(8, at: 1_600_000), now: 1_600_000)
        XCTAssertEqual(seqs(buffer.pull(now: 1_000_000)), ["0"])
        // 3 refers to pictures in 1-2, 8 to 7: nothing will fill those gaps now, so they would only decode as errors.
        XCTAssertEqual(seqs(buffer.drain()), ["skip1-4", "5", "6", "skip7-8"])
        XCTAssertEqual(buffer.stats.missing, 6)
        XCTAssertEqual(buffer.stats.expected, 9)
    }

    func testARestartedOriginsRunPlaysAfterWhatTheOldRunLeft() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        _ = buffer.receive(chunk(40, at: 0, ra: true), now: 0)
        _ = buffer.receive(chunk(41, at: 200_000), now: 200_000)
        // 42 never comes: the origin died with it in flight, after sending 43 to another child.
        _ = buffer.receive(chunk(43, at: 600_000), now: 600_000)
        XCTAssertEqual(seqs(buffer.pull(now: 600_000)), ["40", "41"])
        // The new run counts from 0 again; it starts at a random-access chunk like a join.
        XCTAssertEqual(buffer.receive(chunk(1, at: 3_000_000, epoch: 2), now: 3_000_000), .beforeStart)
        XCTAssertEqual(buffer.receive(chunk(2, at: 3_200_000, ra: true, epoch: 2), now: 3_200_000), .onTime)
        XCTAssertEqual(buffer.receive(chunk(44, at: 800_000), now: 3_200_000), .oldRun)
        // The old run's 43 needs 42's pictures: it goes with the gap, and the new run starts clean.
        XCTAssertEqual(seqs(buffer.pull(now: 3_200_000)), ["skip42-43", "restart", "2"])
        XCTAssertEqual(buffer.receive(chunk(3, at: 3_400_000, epoch: 2), now: 3_400_000), .onTime)
        XCTAssertEqual(seqs(buffer.pull(now: 3_400_000)), ["3"])
        XCTAssertEqual(buffer.stats.restarts, 1)
        XCTAssertEqual(buffer.stats.missing, 2)
        XCTAssertEqual(buffer.stats.onTime, 4)
    }

    /// Issue 20: a validly signed chunk replayed to a fresh player, or a recording fed as live, is not a start: its
    /// deadline passed long ago. Playback starts at the first random-access chunk of the present.
    func testAStaleChunkNeverStartsPlayback() {
        var buffer = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(buffer.staleAfter, 10_000_000)
        let now: Int64 = 900_000_000 // 15 minutes into the run
        XCTAssertEqual(buffer.receive(chunk(0, at: 0, ra: true), now: now), .stale)
        XCTAssertEqual(buffer.receive(chunk(1, at: 200_000), now: now), .beforeStart)
        XCTAssertNil(buffer.startSeq)
        // A start somewhat late (within `staleAfter` of its deadline) still plays: a joiner's backlog can be.
        XCTAssertEqual(buffer.receive(chunk(4_440, at: now - 5_000_000, ra: true), now: now), .late)
        XCTAssertEqual(buffer.startSeq, 4_440)
        XCTAssertEqual(seqs(buffer.pull(now: now)), ["4440L"])
        XCTAssertEqual(buffer.receive(chunk(4_441, at: now - 4_800_000), now: now + 1), .late, "once started, a late chunk is late")
        // A clock that is off (a bootstrap's skewed offset): every start looks stale; after `staleAfter` of that,
        // playback starts late rather than never.
        var skewed = PlayoutBuffer(playoutDelay: delay)
        XCTAssertEqual(skewed.receive(chunk(10, at: 0, ra: true), now: 30_000_000), .stale)
        XCTAssertEqual(skewed.receive(chunk(20, at: 2_000_000, ra: true), now: 32_000_000), .stale)
        XCTAssertEqual(skewed.receive(chunk(60, at: 10_000_000, ra: true), now: 40_000_000), .late)
        XCTAssertEqual(skewed.startSeq, 60)
    }

    /// A start that was not of the present after all (every live chunk too far ahead of it): after a run of such
    /// chunks, playback starts again at the next random-access chunk, after playing out what was held.
    func testARunOfChunksTooFarAheadStartsPlaybackAgainAtThePresent() {
        var buffer = PlayoutBuffer(playoutDelay: delay, capacity: 64, staleAfter: .max, reanchorAfter: 5)
        XCTAssertEqual(buffer.receive(chunk(0, at: 0, ra: true), now: 0), .onTime)
        XCTAssertEqual(buffer.receive(chunk(2, at: 400_000), now: 400_000), .onTime)
        for seq in UInt64(1_000)..<1_004 { XCTAssertEqual(buffer.receive(chunk(seq, at: 200_000_000), now: 200_000_000), .tooFarAhead) }
        XCTAssertEqual(buffer.receive(chunk(3, at: 600_000), now: 200_000_000), .late, "one in range: the run is broken")
        for seq in UInt64(2_000)..<2_004 { XCTAssertEqual(buffer.receive(chunk(seq, at: 400_000_000), now: 400_000_000), .tooFarAhead) }
        XCTAssertEqual(buffer.stats.reanchors, 0, "not yet: four in a row")
        XCTAssertEqual(buffer.receive(chunk(2_004, at: 400_000_000), now: 400_000_000), .beforeStart, "the fifth: start again")
        XCTAssertEqual(buffer.stats.reanchors, 1)
        XCTAssertEqual(buffer.receive(chunk(2_005, at: 400_200_000), now: 400_200_000), .beforeStart, "it waits for a random-access chunk")
        XCTAssertEqual(buffer.receive(chunk(2_006, at: 400_400_000, ra: true), now: 400_400_000), .onTime)
        XCTAssertEqual(buffer.startSeq, 2_006)
        XCTAssertEqual(seqs(buffer.pull(now: 400_400_000)), ["0", "skip1-3", "2006"], "what was held, then the present")
    }
}

