import Foundation
import TestMedia
import XCTest

/// Browsers watching a channel (issue 21): `/watch` in headless Chromium, driven through the DevTools protocol by
/// `scripts/watch-check.py`, and `/stream.mp4` read by ffmpeg.
final class BrowsersTests: ChannelTestCase {
    private struct Watched: Decodable {
        var time: Double
        var width: Int
        var error: String?
        var via: String
        var advanced_s: Double
        var first_frame_ms: Double
        var ok: Bool
    }

    /// Loads `/watch` once; the video must show frames and its time advance 3 s, with no media error.
    private func watch(_ url: String, name: String) throws -> Watched {
        let shot = path("\(name).png")
        let check = try Proc("/usr/bin/python3", [Media.packageRoot.appendingPathComponent("scripts/watch-check.py").path, url,
                                                  "--advance", "3", "--timeout", "60", "--screenshot", shot], in: dir, name: "watch-\(name)")
        XCTAssertEqual(check.wait(seconds: 120), 0, "\(url): \(check.stderr)")
        let line = try XCTUnwrap(String(contentsOf: check.stdoutURL, encoding: .utf8).split(separator: "\n").first, check.stderr)
        let watched = try JSONDecoder().decode(Watched.self, from: Data(line.utf8))
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a screenshot of \(url) in \(shot)")
        return watched
    }

    func testWatchPlaysInHeadlessChromiumFromARelayAndFromAPlayer() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        defer { source.proc.signal(SIGKILL) }
        let relay = try Proc("lsp2p-relay", ["relay", source.url, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--quiet"], in: dir, name: "relay")
        defer { relay.signal(SIGINT) }
        let player = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--output", path("out.ts"), "--http", "127.0.0.1:0", "--quiet"],
                              in: dir, name: "player")
        defer { player.signal(SIGINT) }
        let relayBase = try httpBase(relay, "status page")
        let playerBase = try httpBase(player, "status page")

        // The relay: fragmented MP4 by default, HLS when asked (as Safari gets it); each plays.
        let mp4 = try watch(relayBase + "/watch", name: "relay")
        XCTAssertEqual(mp4.via, "mp4")
        XCTAssertEqual(mp4.width, 640)
        XCTAssertNil(mp4.error)
        XCTAssertGreaterThanOrEqual(mp4.advanced_s, 3)
        let hls = try watch(relayBase + "/watch?via=hls", name: "relay-hls")
        XCTAssertEqual(hls.via, "hls")
        XCTAssertEqual(hls.width, 640)
        // The player's page too.
        let played = try watch(playerBase + "/watch", name: "player")
        XCTAssertEqual(played.via, "mp4")
        XCTAssertGreaterThanOrEqual(played.advanced_s, 3)

        // What the page plays is H.264 and AAC in MP4, and decodes clean from wherever a client comes in.
        let out = path("relay.mp4")
        try Media.ffmpeg(["-i", relayBase + "/stream.mp4", "-t", "3", "-c", "copy", out])
        XCTAssertEqual(try Media.probe(out).codecs, ["h264", "aac"])
        XCTAssertEqual(try Media.decodeErrors(out), "")
        let head = try HTTP.get(relayBase + "/stream.mp4", method: "HEAD")
        XCTAssertEqual(head.contentType, "video/mp4")
    }

    /// The relay built without FFmpeg serves `/watch` over HLS only: its page does not offer MP4, and
    /// `/stream.mp4` is not there.
    func testTheFFmpegFreeRelayServesWatchOverHLS() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        defer { source.proc.signal(SIGKILL) }
        let relay = try Proc("lsp2p-relay-node", [source.url, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--quiet"], in: dir, name: "node")
        defer { relay.signal(SIGINT) }
        let base = try httpBase(relay, "status page")
        XCTAssertEqual(try HTTP.get(base + "/stream.mp4").status, 404)
        let page = String(decoding: try HTTP.get(base + "/watch").body, as: UTF8.self)
        XCTAssertTrue(page.contains("const hasMP4 = false;"), page)
        let watched = try watch(base + "/watch", name: "node")
        XCTAssertEqual(watched.via, "hls")
        XCTAssertGreaterThanOrEqual(watched.advanced_s, 3)
    }
}
