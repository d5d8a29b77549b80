import ChunkMesh
import MeshCore
import Foundation
import XCTest

final class ContractsTests: XCTestCase {
    let hexKey = String(repeating: "0f", count: 32)

    func testJoinURL() throws {
        let url = try JoinURL("lsp2p://127.0.0.1:7000?key=\(hexKey)")
        XCTAssertEqual(url.address, HostPort(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(url.key?.hex, hexKey)
        XCTAssertEqual(url.description, "lsp2p://127.0.0.1:7000?key=\(hexKey)")
        let v6 = try JoinURL("lsp2p://[::1]:7001")
        XCTAssertEqual(v6.address.host, "::1")
        XCTAssertNil(v6.key)
        XCTAssertEqual(v6.description, "lsp2p://[::1]:7001")
        XCTAssertThrowsError(try JoinURL("http://x:1"))
        XCTAssertThrowsError(try JoinURL("lsp2p://host"))
        XCTAssertThrowsError(try JoinURL("lsp2p://::1:7000"))
        XCTAssertThrowsError(try JoinURL("lsp2p://h:1?key=abc"))
    }

    func testKeyFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let withNewline = dir.appendingPathComponent("a.key").path
        try (hexKey.uppercased() + "\n").write(toFile: withNewline, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ChannelKey(contentsOfFile: withNewline).hex, hexKey)
        let short = dir.appendingPathComponent("b.key").path
        try "abcd".write(toFile: short, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ChannelKey(contentsOfFile: short)) { XCTAssertEqual($0 as? ChannelKey.KeyError, .badLength(4)) }
        XCTAssertThrowsError(try ChannelKey(contentsOfFile: dir.appendingPathComponent("none").path))
        XCTAssertThrowsError(try ChannelKey(hex: String(repeating: "zz", count: 32))) { XCTAssertEqual($0 as? ChannelKey.KeyError, .notHex) }
        XCTAssertNotEqual(ChannelKey.random(), ChannelKey.random())
        XCTAssertFalse(try ChannelKey(hex: hexKey).description.contains(hexKey))
    }

    func testRatesAndAddresses() {
        XCTAssertEqual(BitRate("8M")?.bitsPerSecond, 8_000_000)
        XCTAssertEqual(BitRate("500k")?.bitsPerSecond, 500_000)
        XCTAssertEqual(BitRate("1.5G")?.bitsPerSecond, 1_500_000_000)
        XCTAssertEqual(BitRate("64000")?.bitsPerSecond, 64_000)
        XCTAssertNil(BitRate("fast"))
        XCTAssertNil(BitRate("-1M"))
        XCTAssertEqual(HostPort("[::1]:7000"), HostPort(host: "::1", port: 7000))
        XCTAssertEqual(HostPort("0.0.0.0:0"), HostPort(host: "0.0.0.0", port: 0))
        XCTAssertNil(HostPort("host:99999"))
        XCTAssertNil(HostPort("nocolon"))
    }

    func testTokenBucket() {
        var bucket = TokenBucket(bytesPerSecond: 1000, burst: 500)
        XCTAssertTrue(bucket.take(500, now: 0))
        XCTAssertFalse(bucket.take(1, now: 0))
        XCTAssertFalse(bucket.take(200, now: 100_000)) // 100 bytes refilled
        XCTAssertTrue(bucket.take(200, now: 200_000))
        XCTAssertTrue(bucket.take(500, now: 10_000_000)) // capped at burst
        XCTAssertFalse(bucket.take(1, now: 10_000_000))
    }

    /// What can wait (`keep` left for what cannot) is told how long it will be held, never "now" while it is held:
    /// an egress woke itself every microsecond on that. And it goes once the bucket is full, even where it and what
    /// is kept are more than a bucket.
    func testTokenBucketWaitCountsWhatIsKeptForWhatCannotWait() {
        var bucket = TokenBucket(bytesPerSecond: 1000, burst: 500)
        XCTAssertTrue(bucket.take(300, now: 0)) // 200 left: 100 bytes could go, not with 250 kept
        XCTAssertFalse(bucket.take(100, now: 0, keep: 250))
        let wait = bucket.wait(for: 100, keep: 250, now: 0)
        XCTAssertGreaterThan(wait, 0, "held back: not to be tried again at once")
        XCTAssertFalse(bucket.take(100, now: wait - 2, keep: 250))
        XCTAssertTrue(bucket.take(100, now: wait, keep: 250))

        var big = TokenBucket(bytesPerSecond: 1000, burst: 500)
        XCTAssertTrue(big.take(500, now: 0))
        let full = big.wait(for: 400, keep: 250, now: 0)
        XCTAssertEqual(full, 500_001, "a full bucket: half a second")
        XCTAssertFalse(big.take(400, now: full - 2, keep: 250))
        XCTAssertTrue(big.take(400, now: full, keep: 250), "400 + 250 is more than the bucket holds: a full one lets it go")
    }

    func testChurnListsParseKindsTimesAndDowntimes() {
        XCTAssertEqual(ChurnList.parse("off"), [])
        XCTAssertEqual(ChurnList.parse("relays:10s:3,players:20"),
                       [ChurnList.Item(kind: "relays", every: 10, down: 3), ChurnList.Item(kind: "players", every: 20, down: nil)])
        for bad in ["relays", "relays:x", "relays:0", "relays:5:-1", "a:1:2:3"] { XCTAssertNil(ChurnList.parse(bad), bad) }
    }
}
