import ChunkMesh
import MeshCore
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import StreamIngest
import TestMedia
import XCTest

final class IngestTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Media.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func ingestAll(_ path: String, loop: Bool = false, maxChunks: Int = .max) throws -> [Chunk] {
        let ingest = try Ingest(options: IngestOptions(input: InputSpec(location: path), realtime: false, loop: loop))
        var chunks: [Chunk] = []
        try ingest.run { chunk in
            chunks.append(chunk)
            if chunks.count >= maxChunks { ingest.stop() }
        }
        return chunks
    }

    private func write(_ chunks: [Chunk], to name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(chunks.flatMap { Array($0.payload.readableBytesView) }).write(to: url)
        return url.path
    }

    func testRemuxMatchesFFmpegStreamCopyByteForByte() throws {
        let reference = dir.appendingPathComponent("ref.ts").path
        try Media.ffmpeg(["-i", Media.sample, "-c", "copy", "-f", "mpegts", reference])
        let chunks = try ingestAll(Media.sample)
        XCTAssertEqual(chunks.map(\.seq), Array(0..<UInt64(chunks.count)))
        XCTAssertTrue(chunks[0].isRandomAccess)
        let ours = try write(chunks, to: "ours.ts")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ours)), try Data(contentsOf: URL(fileURLWithPath: reference)))
    }

    func testVP8AndOpusAreTranscodedToH264AndAAC() throws {
        let webm = dir.appendingPathComponent("in.webm").path
        try Media.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3", "-f", "lavfi", "-i", "sine=duration=3",
                          "-c:v", "libvpx", "-b:v", "300k", "-c:a", "libopus", webm])
        let ingest = try Ingest(options: IngestOptions(input: InputSpec(location: webm), realtime: false))
        XCTAssertEqual(ingest.streamSummary, ["vp8 → h264 (transcode)", "opus → aac (transcode)"])
        var chunks: [Chunk] = []
        try ingest.run { chunks.append($0) }
        let out = try write(chunks, to: "out.ts")
        let probe = try Media.probe(out)
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertEqual(probe.duration, 3, accuracy: 0.5)
        XCTAssertEqual(try Media.decodeErrors(out), "")
        // libx264 is set for a keyframe every second: a joiner can start within one.
        XCTAssertGreaterThanOrEqual(chunks.filter(\.isRandomAccess).count, 3)
    }

    func testRawVideoAndPCMAreTranscodedToo() throws {
        let avi = dir.appendingPathComponent("raw.nut").path
        try Media.ffmpeg(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2", "-f", "lavfi", "-i", "sine=duration=2:sample_rate=22050",
                          "-c:v", "rawvideo", "-pix_fmt", "rgb24", "-c:a", "pcm_s16le", avi])
        let out = try write(try ingestAll(avi), to: "raw.ts")
        XCTAssertEqual(try Media.probe(out).codecs, ["h264", "aac"])
        XCTAssertEqual(try Media.decodeErrors(out), "")
    }

    func testLoopKeepsTimestampsGoing() throws {
        let short = dir.appendingPathComponent("short.mp4").path
        try Media.ffmpeg(["-i", Media.sample, "-t", "2", "-c", "copy", short])
        let chunks = try ingestAll(short, loop: true, maxChunks: 40)
        XCTAssertGreaterThanOrEqual(chunks.count, 40) // and the muxer's last chunk after stop()
        let out = try write(chunks, to: "looped.ts")
        XCTAssertGreaterThan(try Media.probe(out).duration, 4.5, "more than two passes of a 2 s input")
        XCTAssertEqual(try Media.decodeErrors(out), "")
    }

    func testTheWholeSampleLoops() throws {
        // Its AAC starts with a priming packet at a negative time: the next pass must still come after the last.
        let chunks = try ingestAll(Media.sample, loop: true, maxChunks: 120)
        let out = try write(chunks, to: "sample-looped.ts")
        XCTAssertGreaterThan(try Media.probe(out).duration, 20)
        XCTAssertEqual(try Media.decodeErrors(out), "")
    }

    func testBadInputsFailWithAClearError() throws {
        let missing = dir.appendingPathComponent("nope.mp4").path
        XCTAssertThrowsError(try Ingest(options: IngestOptions(input: InputSpec(location: missing)))) {
            XCTAssertEqual("\($0)", "cannot open \(missing): no such file")
        }
        let garbage = dir.appendingPathComponent("garbage.mp4")
        var rng = SystemRandomNumberGenerator()
        try Data((0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: garbage)
        XCTAssertThrowsError(try Ingest(options: IngestOptions(input: InputSpec(location: garbage.path)))) {
            XCTAssertTrue("\($0)".hasPrefix("cannot open \(garbage.path): ") || "\($0)".hasPrefix("cannot read \(garbage.path): "), "\($0)")
        }
        // The random bytes above were once taken for H.263 with no picture size (a CI run), and the error named libx264.
        // One picture start code that FFmpeg cannot parse does the same every time.
        var h263 = Data(count: 100_000)
        h263.replaceSubrange(0..<6, with: [0x00, 0x00, 0x80, 0x02, 0x1E, 0x00])
        let unreadable = dir.appendingPathComponent("unsized.bin")
        try h263.write(to: unreadable)
        XCTAssertThrowsError(try Ingest(options: IngestOptions(input: InputSpec(location: unreadable.path)))) {
            XCTAssertEqual("\($0)", "cannot read \(unreadable.path): h263 without a picture size (not a media file?)")
        }
        XCTAssertThrowsError(try Ingest(options: IngestOptions(input: InputSpec(location: "x", format: "nosuchformat")))) {
            XCTAssertEqual("\($0)", "unknown input format 'nosuchformat' (see `ffmpeg -formats`)")
        }
        let textOnly = dir.appendingPathComponent("subs.srt")
        try "1\n00:00:00,000 --> 00:00:01,000\nhello\n".write(to: textOnly, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Ingest(options: IngestOptions(input: InputSpec(location: textOnly.path)))) {
            XCTAssertEqual("\($0)", "\(textOnly.path) has no audio or video stream")
        }
    }

    func testTruncatedFileEndsCleanly() throws {
        let cut = dir.appendingPathComponent("cut.ts")
        let full = dir.appendingPathComponent("full.ts").path
        try Media.ffmpeg(["-i", Media.sample, "-c", "copy", "-f", "mpegts", full])
        let data = try Data(contentsOf: URL(fileURLWithPath: full))
        try data.prefix(data.count / 2 + 77).write(to: cut)
        let chunks = try ingestAll(cut.path)
        XCTAssertGreaterThan(chunks.count, 10)
    }

    func testRemuxSinkWritesAPlayableMP4() throws {
        let chunks = try ingestAll(Media.sample)
        let mp4 = dir.appendingPathComponent("out.mp4").path
        let sink = try openSink(mp4)
        for chunk in chunks { try sink.write(chunk.payload) }
        try sink.finish()
        let probe = try Media.probe(mp4)
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertEqual(probe.duration, 10, accuracy: 0.5)
        XCTAssertEqual(try Media.decodeErrors(mp4), "")
    }

    func testRemuxSinkKeepsPlayingWhenTheStreamStartsAgain() throws {
        // A restarted origin sends the stream from its first timestamps again, mid-file for the receiver.
        let chunks = try ingestAll(Media.sample)
        let mp4 = dir.appendingPathComponent("restart.mp4").path
        let sink = try openSink(mp4)
        for chunk in chunks.prefix(chunks.count / 2) + chunks { try sink.write(chunk.payload) }
        try sink.finish()
        let probe = try Media.probe(mp4)
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertEqual(probe.duration, 16, accuracy: 1.5, "half a run, a gap, then a whole run")
        XCTAssertEqual(try Media.decodeErrors(mp4), "")
    }

    func testFragmentedMP4StartsAtEachKeyframeAndPlaysFromAnyOfThem() throws {
        let chunks = try ingestAll(Media.sample)
        let header = NIOLockedValueBox<[[UInt8]]>([])
        let fragments = NIOLockedValueBox<[(bytes: [UInt8], key: Bool)]>([])
        let sink = RemuxSink(fragmentedMP4: { bytes in header.withLockedValue { $0.append(bytes) } },
                             onFragment: { bytes, key in fragments.withLockedValue { $0.append((bytes, key)) } })
        for chunk in chunks { try sink.write(chunk.payload) }
        try sink.finish()
        let head = try XCTUnwrap(header.withLockedValue { $0 }.first)
        XCTAssertEqual(header.withLockedValue { $0.count }, 1, "one header for the whole stream")
        XCTAssertEqual(String(decoding: head[4..<8], as: UTF8.self), "ftyp")
        let all = fragments.withLockedValue { $0 }
        for fragment in all { XCTAssertEqual(String(decoding: fragment.bytes[4..<8], as: UTF8.self), "moof") }
        // The sample has a keyframe every second: about ten fragments, each starting at one.
        let keyed = all.filter(\.key)
        XCTAssertGreaterThanOrEqual(keyed.count, 9)
        // The whole stream plays, and so does what a viewer who came in at the fifth keyframe gets.
        let whole = dir.appendingPathComponent("whole.mp4")
        try Data(head + all.flatMap(\.bytes)).write(to: whole)
        XCTAssertEqual(try Media.probe(whole.path).codecs, ["h264", "aac"])
        XCTAssertEqual(try Media.decodeErrors(whole.path), "")
        let late = dir.appendingPathComponent("late.mp4")
        let from = try XCTUnwrap(all.indices.filter { all[$0].key }.dropFirst(4).first)
        try Data(head + all[from...].flatMap(\.bytes)).write(to: late)
        XCTAssertEqual(try Media.decodeErrors(late.path), "")
        XCTAssertEqual(try Media.probe(late.path).codecs, ["h264", "aac"])
    }

    /// A remux that stops taking the stream (here its consumer blocks on the first fragment) fails the writes
    /// past `RemuxSink.maxBehind` instead of holding the stream in memory.
    func testARemuxThatFallsBehindFailsItsWritesAtACap() throws {
        let chunks = try ingestAll(Media.sample)
        let stuck = DispatchSemaphore(value: 0)
        let sink = RemuxSink(fragmentedMP4: { _ in stuck.wait() }, onFragment: { _, _ in })
        var written = 0
        var failure: Error?
        // Bounded: the sample again and again, to twice the cap at most.
        while failure == nil, written <= 2 * RemuxSink.maxBehind {
            for chunk in chunks {
                do { try sink.write(chunk.payload) } catch { failure = error; break }
                written += chunk.payload.readableBytes
            }
        }
        let error = try XCTUnwrap(failure, "\(written) bytes taken by a stuck remux")
        XCTAssertTrue("\(error)".contains("MiB behind the stream"), "\(error)")
        XCTAssertLessThanOrEqual(written, RemuxSink.maxBehind + 8 << 20, "what the demuxer read before it stuck, and the cap")
        stuck.signal()
        try? sink.finish()
    }

    func testSinksReportUnwritableOutputs() throws {
        XCTAssertThrowsError(try openSink("/nonexistent-dir/out.ts")) { XCTAssertTrue("\($0)".hasPrefix("cannot create /nonexistent-dir/out.ts")) }
        let full = try FileSink(path: "/dev/full")
        XCTAssertThrowsError(try full.write(ByteBuffer(bytes: [1, 2, 3]))) {
            XCTAssertEqual("\($0)", "cannot write /dev/full: No space left on device")
        }
        let empty = try openSink(dir.appendingPathComponent("empty.mkv").path)
        XCTAssertThrowsError(try empty.finish())
    }
}
