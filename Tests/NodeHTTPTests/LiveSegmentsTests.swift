import ChunkMesh
import MeshCore
import Foundation
import Logging
import MediaServices
import NIOPosix
import NIOCore
import StreamIngest
import TestMedia
import XCTest
@testable import NodeHTTP

/// HLS of whole chunks (issue 21): segments start at random-access chunks, chunks are put in order, a gap or a
/// new run is a discontinuity, and what is served plays in ffmpeg.
final class LiveSegmentsTests: XCTestCase {
    private func chunk(_ seq: UInt64, epoch: UInt64 = 1, every: UInt64 = 5, flags: Chunk.Flags = []) -> Chunk {
        Chunk(seq: seq, epoch: epoch, ingestTime: 0, pts: 0, duration: 200_000,
              flags: seq % every == 0 ? flags.union(.randomAccess) : flags,
              payload: ByteBuffer(bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: 188)))
    }

    private func lines(_ live: LiveSegments) -> [String] { String(decoding: live.playlist().body, as: UTF8.self).split(separator: "\n").map(String.init) }

    func testChunksInAnyOrderMakeSegmentsOfWholeChunksFromRandomAccessOnes() {
        let live = LiveSegments(targetDuration: 1_000_000, windowSegments: 3)
        // Two parents' substreams: odd seqs come late. Seqs 1-4 come before any random-access chunk: not a start.
        for seq: UInt64 in [1, 2, 3, 4] { live.add(chunk(seq)) }
        XCTAssertTrue(live.segments.isEmpty)
        var order: [UInt64] = []
        for pair in stride(from: UInt64(5), to: 40, by: 2) { order += [pair + 1, pair] }
        for seq in order { live.add(chunk(seq)) }
        let segments = live.segments
        // Seq 40 closed the segment at 35: a sliding window of 3, each 5 chunks from a keyframe, the first at 5.
        XCTAssertEqual(segments.map(\.firstSeq), [25, 30, 35])
        XCTAssertEqual(segments.map(\.number), [4, 5, 6], "numbered one after another from the first, at 5")
        XCTAssertEqual(segments.map(\.duration), [1_000_000, 1_000_000, 1_000_000])
        let body = live.segment(named: "1-25.ts")!.body
        XCTAssertEqual(body, (25..<30).flatMap { [UInt8](repeating: UInt8($0), count: 188) }, "its chunks, whole and in order")
        XCTAssertNil(live.segment(named: "1-0.ts"), "long gone from the window")
        XCTAssertNil(live.segment(named: "../../etc/passwd"))
        XCTAssertEqual(Array(lines(live).prefix(5)), ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
                                                     "#EXT-X-MEDIA-SEQUENCE:4", "#EXT-X-DISCONTINUITY-SEQUENCE:0"])
        XCTAssertEqual(Array(lines(live).suffix(2)), ["#EXTINF:1.000,", "live/1-35.ts"])
        XCTAssertFalse(lines(live).contains("#EXT-X-ENDLIST"))
    }

    func testAGapANewRunAndTheEndAreMarked() {
        let live = LiveSegments(targetDuration: 1_000_000, windowSegments: 10, maxWait: 1_000_000)
        for seq: UInt64 in 0..<10 { live.add(chunk(seq)) }
        // Seq 10 never comes: once a second of stream waits behind it, playback goes on at the next keyframe.
        for seq: UInt64 in 11..<25 { live.add(chunk(seq)) }
        XCTAssertEqual(live.segments.map(\.firstSeq), [0, 5, 15])
        XCTAssertEqual(live.segments.map(\.discontinuity), [false, false, true])
        // The origin restarted: its new run from seq 0.
        for seq: UInt64 in 0..<12 { live.add(chunk(seq, epoch: 2)) }
        XCTAssertEqual(live.segments.map(\.name), ["1-0.ts", "1-5.ts", "1-15.ts", "1-20.ts", "2-0.ts", "2-5.ts"])
        XCTAssertEqual(live.segments.map(\.discontinuity), [false, false, true, false, true, false])
        live.add(chunk(3, epoch: 1))
        XCTAssertEqual(live.segments.count, 6, "the old run's leftovers are dropped")
        live.add(Chunk(seq: 12, epoch: 2, ingestTime: 0, pts: 0, duration: 0, flags: .endOfStream, payload: ByteBuffer()))
        XCTAssertEqual(live.segments.last?.name, "2-10.ts", "the open segment closes at the end")
        XCTAssertEqual(lines(live).last, "#EXT-X-ENDLIST")
        XCTAssertEqual(lines(live).filter { $0 == "#EXT-X-DISCONTINUITY" }.count, 2)
    }

    /// Chunks that say they last nothing, far ahead of a missing one: held no more than `maxPending`.
    func testChunksOfNoDurationAheadOfAGapAreHeldWithinACap() {
        let live = LiveSegments()
        live.add(chunk(0))
        for seq in UInt64(2)..<UInt64(2 + 3 * LiveSegments.maxPending) {
            live.add(Chunk(seq: seq, epoch: 1, ingestTime: 0, pts: 0, duration: 0, flags: seq % 100 == 0 ? .randomAccess : [],
                           payload: ByteBuffer(bytes: [0x47])))
        }
        XCTAssertLessThanOrEqual(live.held, LiveSegments.maxPending + 1)
        XCTAssertEqual(live.segments.map(\.firstSeq), [0], "the gap was given up: the segment before it closed")
    }

    /// A stream with no random-access chunk for long (a sender without keyframes): the open segment closes at
    /// `maxSegmentBytes`, and what follows waits for a random-access chunk to start the next.
    func testASegmentWithoutAKeyframeClosesAtItsCap() {
        let live = LiveSegments()
        let size = 1 << 20
        let count = UInt64(LiveSegments.maxSegmentBytes / size + 8)
        for seq in 0..<count {
            live.add(Chunk(seq: seq, epoch: 1, ingestTime: 0, pts: 0, duration: 200_000, flags: seq == 0 ? .randomAccess : [],
                           payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: size))))
        }
        XCTAssertEqual(live.segments.map(\.firstSeq), [0], "closed at the cap, not held open")
        XCTAssertLessThanOrEqual(live.segment(named: "1-0.ts")!.buffer.readableBytes, LiveSegments.maxSegmentBytes)
        live.add(Chunk(seq: count, epoch: 1, ingestTime: 0, pts: 0, duration: 200_000, flags: .randomAccess,
                       payload: ByteBuffer(bytes: [0x47])))
        live.add(Chunk(seq: count + 1, epoch: 1, ingestTime: 0, pts: 0, duration: 1_000_000, flags: [], payload: ByteBuffer(bytes: [0x47])))
        live.add(Chunk(seq: count + 2, epoch: 1, ingestTime: 0, pts: 0, duration: 200_000, flags: .randomAccess,
                       payload: ByteBuffer(bytes: [0x47])))
        XCTAssertEqual(live.segments.map(\.firstSeq), [0, count], "the next starts at the next keyframe")
        XCTAssertEqual(live.segments.last?.discontinuity, true)
    }

    /// The target duration is the longest segment rounded to the nearest second (players wait three of them).
    func testTheTargetDurationIsTheLongestSegmentRounded() {
        for (every, target) in [(UInt64(7), "1"), (UInt64(8), "2")] { // 1.4 s and 1.6 s segments
            let live = LiveSegments()
            for seq in 0...(2 * every) { live.add(chunk(seq, every: every)) }
            XCTAssertEqual(live.segments.map(\.duration), [Int64(every) * 200_000, Int64(every) * 200_000])
            XCTAssertTrue(lines(live).contains("#EXT-X-TARGETDURATION:\(target)"), "\(lines(live))")
        }
    }

    /// What follows the segments (the `/stream.mp4` remux) hears of a new run before its first chunk.
    func testTheFollowerHearsOfANewRunBeforeItsChunks() {
        final class Recorder: TSFollower, @unchecked Sendable {
            var said: [String] = []
            func write(_ bytes: ByteBuffer, randomAccess: Bool) { said.append("chunk \(bytes.readableBytesView.first!)") }
            func finish() { said.append("end") }
            func newRun() { said.append("new run") }
        }
        let recorder = Recorder()
        let live = LiveSegments(follower: recorder)
        for seq: UInt64 in 0..<2 { live.add(chunk(seq)) }
        for seq: UInt64 in 0..<2 { live.add(chunk(seq, epoch: 2)) }
        XCTAssertEqual(recorder.said, ["chunk 0", "chunk 1", "new run", "chunk 0", "chunk 1"])
    }

    /// A sender back with another resolution (a new run of the origin): `/stream.mp4` starts a new remux with the
    /// new header, and a viewer who opens it again gets the new size, not the first run's moov.
    func testANewRunWithAnotherResolutionGetsItsOwnMP4Header() throws {
        func chunks(_ path: String, epoch: UInt64) throws -> [Chunk] {
            let ingest = try Ingest(options: IngestOptions(input: InputSpec(location: path), realtime: false))
            var chunks: [Chunk] = []
            _ = try ingest.run { chunk in
                var chunk = chunk
                chunk.epoch = epoch
                chunks.append(chunk)
            }
            return chunks
        }
        let dir = try Media.tempDir()
        let small = dir.appendingPathComponent("small.mp4").path
        try Media.ffmpeg(["-i", Media.sample, "-t", "4", "-vf", "scale=320:180", "-c:v", "libx264", "-preset", "ultrafast",
                          "-g", "25", "-c:a", "aac", small])
        let views = BrowserViews(fragmenter: MP4Feed.maker(logger: Logger(label: "test")))
        var routes = Routes()
        routes.serveBrowsers(views)
        let server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes)
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        for chunk in try chunks(Media.sample, epoch: 1) { views.add(chunk) }
        let first = try StreamReader.open(server.address, path: "/stream.mp4", group: group)
        try waitFor("the first run's fragments") { first.bytes.count > 10_000 }
        let second = try chunks(small, epoch: 2)
        for chunk in second.prefix(second.count - 3) { views.add(chunk) }
        try waitFor("the first run's viewer is ended, to open the stream again") { first.ended }
        let again = try StreamReader.open(server.address, path: "/stream.mp4", group: group)
        // The request is sent, not yet served: a viewer that comes after the end gets an empty response (CI stop 31).
        try waitFor("the viewer is attached before the end") { views.mp4!.currentStats.clients == 1 }
        for chunk in second.suffix(3) { views.add(chunk) }
        views.finish()
        try waitFor("the second run's stream ends") { again.ended }
        let out = dir.appendingPathComponent("again.mp4")
        try Data(again.bytes).write(to: out)
        let (status, data, _) = try Media.run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                                                        "-of", "csv=p=0", out.path])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), "320,180")
        XCTAssertEqual(try Media.decodeErrors(out.path), "")
    }

    /// The sample's real chunks over real HTTP: ffmpeg reads the playlist and its segments and decodes them clean,
    /// and the media sequence goes on across a segment roll.
    func testFFmpegPlaysThePlaylistAndTheSequenceContinuesAcrossARoll() throws {
        let ingest = try Ingest(options: IngestOptions(input: InputSpec(location: Media.sample), realtime: false))
        var chunks: [Chunk] = []
        _ = try ingest.run { chunks.append($0) }
        XCTAssertGreaterThan(chunks.count, 30)
        let live = LiveSegments(windowSegments: 4)
        var routes = Routes()
        routes.serveHLS(live)
        let server = try HTTPServer(listen: HostPort(host: "127.0.0.1", port: 0), routes: routes)
        defer { server.stop() }
        let half = chunks.count / 2
        for c in chunks[..<half] { live.add(c) }
        let before = live.segments
        XCTAssertFalse(before.isEmpty)
        for c in chunks[half...] { live.add(c) }
        live.finish()
        let after = live.segments
        XCTAssertGreaterThan(after.first!.number, before.first!.number, "the window slid")
        XCTAssertEqual(after.map(\.number), Array(after.first!.number..<after.first!.number + after.count), "one after another")
        if let kept = before.last, let again = after.first(where: { $0.name == kept.name }) { XCTAssertEqual(again.number, kept.number) }
        let dir = try Media.tempDir()
        let out = dir.appendingPathComponent("hls.ts").path
        try Media.ffmpeg(["-i", server.url + "/live.m3u8", "-c", "copy", out])
        let probe = try Media.probe(out)
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        let windowTime = Double(after.map(\.duration).reduce(0, +)) / 1e6
        XCTAssertEqual(probe.duration, windowTime, accuracy: 1, "the window's segments, whole")
        XCTAssertEqual(try Media.decodeErrors(out), "")
    }
}
