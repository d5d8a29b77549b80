import XCTest
import NIOCore
@testable import MeshCore

final class OriginStamperTests: XCTestCase {
    private func cut(_ n: Int, flags: Chunk.Flags = []) -> Chunk {
        // What comes before the stamper says nothing of identity: these seqs, epochs and signatures must not stick.
        var chunk = Chunk(seq: 999, epoch: 7, ingestTime: Int64(n), pts: Int64(n), duration: 40_000, flags: flags,
                          payload: ByteBuffer(bytes: [UInt8](repeating: UInt8(n), count: 188)))
        chunk.signature = [UInt8](repeating: 1, count: 64)
        return chunk
    }

    func testChunksGetTheRunsSeqsInOrderSignedByTheOrigin() throws {
        let key = OriginSigningKey()
        var stamper = OriginStamper(epoch: 1_000, signer: key)
        let stamped = (0..<5).compactMap { stamper.stamp(cut($0, flags: $0 == 0 ? .randomAccess : [])) }
        XCTAssertEqual(stamped.map(\.seq), [0, 1, 2, 3, 4])
        XCTAssertEqual(Set(stamped.map(\.epoch)), [1_000])
        XCTAssertEqual(stamped.map(\.ingestTime), [0, 1, 2, 3, 4], "the cut's timing stays")
        XCTAssertTrue(stamped[0].isRandomAccess)
        XCTAssertTrue(stamped.allSatisfy(key.publicKey.verifies), "signed over the stamped identity")
        XCTAssertFalse(OriginSigningKey().publicKey.verifies(stamped[0]))
        XCTAssertEqual(stamper.nextSeq, 5)
    }

    func testTheEndOfStreamTakesTheNextSeqAndNothingFollowsIt() throws {
        var stamper = OriginStamper(epoch: 1, signer: OriginSigningKey())
        _ = stamper.stamp(cut(0))
        _ = stamper.stamp(cut(1))
        let end = try XCTUnwrap(stamper.endOfStream(ingestTime: 5))
        XCTAssertTrue(end.isEndOfStream)
        XCTAssertEqual(end.seq, 2)
        XCTAssertTrue(stamper.ended)
        XCTAssertNil(stamper.stamp(cut(2)), "no chunk after the end of stream")
        XCTAssertNil(stamper.endOfStream(ingestTime: 6), "one end a run")
    }

    func testANewRunStartsFromSeqZeroUnderANewerEpoch() throws {
        var stamper = OriginStamper(epoch: 5_000)
        _ = stamper.stamp(cut(0))
        _ = stamper.endOfStream(ingestTime: 1)
        stamper.newRun(startedAt: 10) // a clock behind the run's: the epoch still grows
        XCTAssertEqual(stamper.epoch, 5_001)
        let first = try XCTUnwrap(stamper.stamp(cut(1)))
        XCTAssertEqual(first.seq, 0)
        XCTAssertEqual(first.epoch, 5_001)
        stamper.newRun(startedAt: 9_000)
        XCTAssertEqual(stamper.epoch, 9_000)
        XCTAssertEqual(stamper.stamp(cut(2))?.seq, 0)
    }
}
