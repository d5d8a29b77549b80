import ChunkMesh
import MeshCore
import NIOCore
@testable import StreamIngest
import TestMedia
import XCTest

final class TSChunkerTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Media.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func cutAll(_ bytes: [UInt8], target: Int64, pieces: [Int]) -> [TSChunker.Cut] {
        var chunker = TSChunker(targetDuration: target)
        var cuts: [TSChunker.Cut] = []
        var offset = 0
        var i = 0
        while offset < bytes.count {
            let size = min(pieces[i % pieces.count], bytes.count - offset)
            cuts += chunker.feed(Array(bytes[offset..<offset + size]))
            offset += size
            i += 1
        }
        return cuts + chunker.flush()
    }

    func testCutsTheSampleAtKeyframesAndByTime() throws {
        let ts = dir.appendingPathComponent("sample.ts").path
        try Media.ffmpeg(["-i", Media.sample, "-c", "copy", "-f", "mpegts", ts])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ts)))
        // Odd write sizes, as a custom AVIO callback delivers them.
        let cuts = cutAll(bytes, target: 200_000, pieces: [1, 187, 4096, 12032, 333])

        XCTAssertEqual(cuts.flatMap { Array($0.payload.readableBytesView) }, bytes, "chunks are the stream, in order, whole")
        for cut in cuts { XCTAssertEqual(cut.payload.readableBytes % 188, 0) }
        XCTAssertTrue(cuts[0].randomAccess)
        // The sample has a keyframe every second for 10 s: one random-access chunk each.
        XCTAssertEqual(cuts.filter(\.randomAccess).count, 10)
        for cut in cuts where cut.randomAccess {
            let pid = Int(cut.payload.getInteger(at: 1, as: UInt8.self)! & 0x1F) << 8 | Int(cut.payload.getInteger(at: 2, as: UInt8.self)!)
            XCTAssertTrue([0, 0x11].contains(pid), "a random-access chunk starts with PSI (PAT, or SDT then PAT), not PID \(pid)")
        }
        let total = cuts.reduce(Int64(0)) { $0 + $1.duration }
        XCTAssertEqual(Double(total) / 1e6, 10, accuracy: 0.3)
        // 25 fps: a chunk ends at the first frame past 200 ms, or earlier at a keyframe.
        for cut in cuts.dropLast() { XCTAssertLessThanOrEqual(cut.duration, 240_000, "chunk of \(cut.duration) µs") }
        XCTAssertGreaterThanOrEqual(cuts.count, 40)

        // A random-access chunk and what follows play on their own.
        let start = cuts.indices.dropFirst().first { cuts[$0].randomAccess }!
        let tail = dir.appendingPathComponent("tail.ts")
        try Data(cuts[start...].flatMap { Array($0.payload.readableBytesView) }).write(to: tail)
        XCTAssertEqual(try Media.decodeErrors(tail.path), "")
    }

    func testAudioOnlyStreamIsCutByTimeAtPATs() throws {
        let ts = dir.appendingPathComponent("audio.ts").path
        try Media.ffmpeg(["-f", "lavfi", "-i", "sine=duration=3", "-c:a", "aac", "-f", "mpegts", ts])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ts)))
        let cuts = cutAll(bytes, target: 500_000, pieces: [188 * 7])
        XCTAssertEqual(cuts.flatMap { Array($0.payload.readableBytesView) }, bytes)
        XCTAssertGreaterThanOrEqual(cuts.count, 4)
        XCTAssertTrue(cuts.allSatisfy(\.randomAccess))
    }

    func testGarbageBytesAreSkippedNotFatal() {
        var chunker = TSChunker(targetDuration: 200_000)
        var junk = [UInt8](repeating: 0xAB, count: 188 * 4)
        junk[188] = 0x47
        _ = chunker.feed(junk)
        _ = chunker.flush()
        XCTAssertEqual(chunker.packetsSkipped, 3)
    }

    func testPTSDeltaAcrossTheWrap() {
        XCTAssertEqual(ptsDelta(10, (1 << 33) - 10), 20)
        XCTAssertEqual(ptsDelta(100, 40), 60)
        XCTAssertEqual(ptsDelta(40, 100), -60)
    }
}
