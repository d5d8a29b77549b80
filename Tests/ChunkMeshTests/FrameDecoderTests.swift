@testable import ChunkMesh
@testable import MeshCore
import NIOCore
import NIOEmbedded
import NIOTestUtils
import XCTest

final class FrameDecoderTests: XCTestCase {
    private func encoded(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(to: &buffer) }
        return buffer
    }

    private func frame(_ type: FrameType, _ bytes: [UInt8]) -> Frame { Frame(type: type, payload: ByteBuffer(bytes: bytes)) }

    func testARelayForwardsAChunkAsItCameWithoutReencodingIt() throws {
        var chunk = Chunk(seq: 9, epoch: 2, ingestTime: 5, pts: 6, duration: 200_000, flags: .randomAccess,
                          payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 376)))
        OriginSigningKey().sign(&chunk)
        let bytes = Message.chunk(chunk).encode()
        guard case .chunk(let decoded) = try Message.decode(bytes) else { return XCTFail("a chunk") }
        XCTAssertEqual(decoded, chunk)
        XCTAssertEqual(decoded.wire, bytes, "the bytes it came in, ready to send on")
        XCTAssertNil(chunk.wire, "the origin's own chunk is encoded once, by the driver")
    }

    func testVerifierByteByByteAndManyAtOnce() throws {
        let cases: [(ByteBuffer, [Frame])] = [
            (encoded([frame(.hello, [1, 2, 3])]), [frame(.hello, [1, 2, 3])]),
            (encoded([frame(.sealed, [])]), [frame(.sealed, [])]),
            (encoded([frame(.proof, Array(repeating: 7, count: 1000)), frame(.reject, [9])]),
             [frame(.proof, Array(repeating: 7, count: 1000)), frame(.reject, [9])]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: cases) { FrameDecoder() }
    }

    func testSingleStepOutsideAPipeline() throws {
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
        var got: [Frame] = []
        let wire = encoded([frame(.hello, [1]), frame(.challenge, [2, 2]), frame(.sealed, [3, 3, 3])])
        for byte in wire.readableBytesView {
            try processor.process(buffer: ByteBuffer(bytes: [byte])) { got.append($0) }
        }
        XCTAssertEqual(got.map(\.type), [.hello, .challenge, .sealed])
        XCTAssertEqual(got.map(\.payload.readableBytes), [1, 2, 3])
    }

    func testTruncatedFrameWaitsForTheRest() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let wire = encoded([frame(.hello, [1, 2, 3, 4])])
        try channel.writeInbound(wire.getSlice(at: 0, length: wire.readableBytes - 2)!)
        XCTAssertNil(try channel.readInbound(as: Frame.self))
        try channel.writeInbound(wire.getSlice(at: wire.readableBytes - 2, length: 2)!)
        XCTAssertEqual(try channel.readInbound(as: Frame.self), frame(.hello, [1, 2, 3, 4]))
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testOversizedFrameIsRejectedBeforeItsPayloadArrives() {
        var decoder = FrameDecoder(maxPayload: 1024)
        var header = ByteBuffer(bytes: Frame.header(type: .sealed, length: 1025))
        XCTAssertThrowsError(try decoder.decode(buffer: &header)) {
            XCTAssertEqual($0 as? WireError, .frameTooLarge(length: 1025, limit: 1024))
        }
        var huge = ByteBuffer(bytes: Frame.header(type: .sealed, length: Int(UInt32.max)))
        var fresh = FrameDecoder()
        XCTAssertThrowsError(try fresh.decode(buffer: &huge))
    }

    func testGarbageIsRejected() {
        var decoder = FrameDecoder()
        var http = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        XCTAssertThrowsError(try decoder.decode(buffer: &http)) { XCTAssertEqual($0 as? WireError, .badMagic) }
        var badVersion = ByteBuffer(bytes: [0x4C, 0x32, 9, 1, 0, 0, 0, 0])
        decoder = FrameDecoder()
        XCTAssertThrowsError(try decoder.decode(buffer: &badVersion)) { XCTAssertEqual($0 as? WireError, .unsupportedVersion(9)) }
        // A version-2 node's hello (no X25519 key): refused by its header, before the handshake is read.
        var older = ByteBuffer(bytes: [0x4C, 0x32, 2, FrameType.hello.rawValue, 0, 0, 0, 35] + [UInt8](repeating: 1, count: 35))
        decoder = FrameDecoder()
        XCTAssertThrowsError(try decoder.decode(buffer: &older)) {
            XCTAssertEqual(($0 as? WireError)?.description, "unsupported protocol version 2")
        }
        var badType = ByteBuffer(bytes: [0x4C, 0x32, Frame.version, 0x77, 0, 0, 0, 0])
        decoder = FrameDecoder()
        XCTAssertThrowsError(try decoder.decode(buffer: &badType)) { XCTAssertEqual($0 as? WireError, .unknownFrameType(0x77)) }
    }

    func testRandomBytesNeverCrash() {
        var rng = SplitMixRandom(seed: 42)
        var outcomes = (frames: 0, waiting: 0)
        var errors: [String: Int] = [:]
        for _ in 0..<2000 {
            let count = Int(rng.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Half the time start with a valid magic and version so the deeper checks are reached.
            if rng.next() % 2 == 0, bytes.count >= 4 { bytes[0] = 0x4C; bytes[1] = 0x32; bytes[2] = Frame.version }
            var decoder = FrameDecoder(maxPayload: 32)
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while let _ = try decoder.decode(buffer: &buffer) { outcomes.frames += 1 }
                outcomes.waiting += 1
            } catch let error as WireError {
                let kind = switch error {
                case .badMagic: "badMagic"
                case .unsupportedVersion: "unsupportedVersion"
                case .frameTooLarge: "frameTooLarge"
                case .unknownFrameType: "unknownFrameType"
                case .malformed: "malformed"
                }
                errors[kind, default: 0] += 1
            } catch {
                XCTFail("unexpected error type \(error)")
            }
        }
        XCTAssertGreaterThan(outcomes.waiting, 0)
        // Past the magic and the version: the frame type and the length are checked too.
        for kind in ["badMagic", "unknownFrameType", "frameTooLarge"] {
            XCTAssertGreaterThan(errors[kind] ?? 0, 0, "\(kind) in \(errors)")
        }
    }

    func testMessagesRoundTrip() throws {
        var chunk = Chunk(seq: 7, epoch: 1_795_000_000_000_000, ingestTime: 123_456, pts: 90_000, duration: 200_000, flags: [.randomAccess],
                          payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 376)))
        let signer = OriginSigningKey()
        signer.sign(&chunk)
        var unsigned = chunk
        unsigned.signature = [UInt8](repeating: 0, count: 64)
        for message in [Message.welcome(Welcome(originClock: 99, streamRate: 8_000_000)),
                        .welcome(Welcome(originClock: 99, streamRate: 1, originKey: signer.publicKey, originProof: signer.proveLink([1, 2]))),
                        .chunk(chunk), .chunk(unsigned), .ping(5), .pong(6), .bye("done")] {
            XCTAssertEqual(try Message.decode(message.encode()), message)
        }
        var bad = ByteBuffer(bytes: [2, 0, 0])
        XCTAssertThrowsError(try Message.decode(bad))
        bad = Message.chunk(Chunk(seq: 1, ingestTime: 0, pts: 0, duration: 0, flags: [], payload: ByteBuffer(bytes: [1, 2, 3]))).encode()
        XCTAssertThrowsError(try Message.decode(bad)) // not whole TS packets
    }
}

final class MeshMessageTests: XCTestCase {
    func testMeshMessagesRoundTrip() throws {
        let info = PeerRecord(id: "[::1]:7001", delays: [0, 12_000, nil, 9_000], residualUnits: 6, scheduleDelay: 2_500,
                            ancestors: [["origin"], ["a", "origin"], [], ["b", "origin"]], epoch: 1_795_000_000_000_000)
        let messages: [WireMeshMessage] = [
            .announce(info, wantPeers: true), .peers([info, PeerRecord(id: "x:1", delays: [], residualUnits: 0, scheduleDelay: 0, ancestors: [])]),
            .subscribe([0, 2], fromSeq: 77), .unsubscribe([1]), .accept([0, 2]), .refuse([3]), .repair(12), .leaving,
            .viewRequest, .view([info, info]), .view([]),
        ]
        for message in messages {
            XCTAssertEqual(try Message.decode(Message.mesh(message).encode()), .mesh(message))
        }
    }

    func testTruncatedMeshMessagesAreRejected() {
        let full = Message.mesh(.announce(PeerRecord(id: "peer:1", delays: [1, 2], residualUnits: 1, scheduleDelay: 1,
                                                   ancestors: [["o"], ["o"]]), wantPeers: false)).encode()
        for length in 1..<full.readableBytes {
            XCTAssertThrowsError(try Message.decode(full.getSlice(at: 0, length: length)!), "length \(length)")
        }
        var trailing = full
        trailing.writeInteger(UInt8(0))
        XCTAssertThrowsError(try Message.decode(trailing))
    }
}
