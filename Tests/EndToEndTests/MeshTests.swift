import Foundation
import TestMedia
import XCTest

/// The mesh with real processes on loopback: an origin that can feed two streams' worth, relays, players.
final class MeshTests: ChannelTestCase {
    func testTwelveRelaysFourPlayersAndFourRelaysKilled() throws {
        // The sample is about 1.07 Mbit/s: the origin can feed two streams, each relay four.
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--uplink", "2.2M",
                                        "--wait-receivers", "16", "--quiet"], in: dir)
        let relays = try (0..<12).map { try Proc("lsp2p-relay", ["relay", source.url, "--uplink", "4.4M", "--quiet"], in: dir, name: "relay\($0)") }
        defer { relays.forEach { $0.signal(SIGKILL) } }
        for relay in relays { XCTAssertNotNil(relay.waitForLine(containing: "joined"), relay.stderr) }
        let players = try (0..<4).map {
            try Proc("lsp2p-play", [source.url, "--output", path("p\($0).ts"), "--duration", "16", "--report", path("p\($0).json"),
                                    "--quiet"], in: dir, name: "player\($0)")
        }
        for player in players { XCTAssertNotNil(player.waitForLine(containing: "joined"), player.stderr) }
        sleep(7)
        for relay in relays.prefix(4) { relay.signal(SIGKILL) }
        for (i, player) in players.enumerated() { XCTAssertEqual(player.wait(seconds: 60), 0, "player \(i): \(player.stderr)") }
        source.proc.signal(SIGTERM)
        XCTAssertEqual(source.proc.wait(seconds: 30), 0, source.proc.stderr)

        var received = 0
        for i in 0..<4 {
            let report = try PlayerReport.load(dir.appendingPathComponent("p\(i).json"))
            XCTAssertGreaterThan(report.chunksExpected, 50, "player \(i)")
            XCTAssertLessThanOrEqual(Double(report.chunksMissing), 0.01 * Double(report.chunksExpected),
                                     "player \(i): \(report.chunksMissing) of \(report.chunksExpected) missing")
            let probe = try Media.probe(path("p\(i).ts"))
            XCTAssertEqual(probe.codecs, ["h264", "aac"])
            XCTAssertGreaterThan(probe.duration, 12)
            received = max(received, report.bytesReceived)
        }
        // What the origin sent in all, against one player's stream: about two streams' worth, not sixteen.
        let done = source.proc.stderr.split(separator: "\n").last { $0.contains("done:") } ?? ""
        let sent = Int(done.split(separator: " ").drop { $0 != "chunks," }.dropFirst().first ?? "") ?? -1
        print("mesh: origin sent \(sent) bytes; a player received \(received)")
        XCTAssertGreaterThan(sent, 0, String(done))
        XCTAssertLessThan(Double(sent), 3.0 * Double(received), "origin sent \(sent) bytes for a \(received)-byte stream")
    }
}
