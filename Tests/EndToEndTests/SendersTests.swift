import Foundation
import TestMedia
import XCTest

/// The edges of a channel (issue 21): OBS and cameras pushing into a source over RTMP and SRT, played through the
/// mesh; screens watching a relay over HLS.
final class SendersTests: ChannelTestCase {
    /// A TCP/UDP port nobody holds now on loopback (the kernel's pick for port 0).
    private func freePort(udp: Bool = false) throws -> Int {
        let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw XCTSkip("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `ffmpeg -re` pushing a 4 s clip to `url` as `format`, tried again until the source listens (each try fails at
    /// once while nothing does), for at most 30 s.
    private func push(_ clip: String, format: String, to url: String) throws -> Proc {
        let script = """
        end=$(( $(date +%s) + 30 ))
        while [ $(date +%s) -lt $end ]; do
          ffmpeg -hide_banner -loglevel error -re -i "$1" -c copy -f "$2" "$3" && exit 0
          sleep 0.2
        done
        exit 1
        """
        return try Proc("/bin/sh", ["-c", script, "push", clip, format, url], in: dir, name: "push-\(format)")
    }

    private func assertASenderReachesAPlayer(input: [String], format: String, pushTo url: String) throws {
        let clip = path("clip.mp4")
        try Media.ffmpeg(["-i", Media.sample, "-t", "4", "-c", "copy", clip])
        // The source opens its input before it prints the join URL: the sender must be under way first.
        let pusher = try push(clip, format: format, to: url)
        let source = try RunningSource(input + ["--key-file", keyFile, "--wait-receivers", "1"], in: dir)
        let player = try Proc("lsp2p-play", [source.url, "--output", path("out.ts"), "--report", path("r.json")], in: dir, name: "p")
        XCTAssertEqual(pusher.wait(), 0, pusher.stderr)
        XCTAssertEqual(player.wait(), 0, player.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, "the sender's end ends the run cleanly: \(source.proc.stderr)")
        let probe = try Media.probe(path("out.ts"))
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertGreaterThan(probe.duration, 2, "most of the 4 s pushed (the player joins once the sender is on)")
        XCTAssertEqual(try Media.decodeErrors(path("out.ts")), "")
    }

    func testOBSPushingRTMPToASourceIsPlayedThroughTheMesh() throws {
        let port = try freePort()
        try assertASenderReachesAPlayer(input: ["--input", "rtmp://127.0.0.1:\(port)/live/key", "--input-option", "listen=1"],
                                        format: "flv", pushTo: "rtmp://127.0.0.1:\(port)/live/key")
    }

    func testFFmpegPushingSRTToASourceIsPlayedThroughTheMesh() throws {
        let port = try freePort(udp: true)
        try assertASenderReachesAPlayer(input: ["--input", "srt://127.0.0.1:\(port)?mode=listener"],
                                        format: "mpegts", pushTo: "srt://127.0.0.1:\(port)?mode=caller")
    }

    /// `--reconnect`: OBS stops streaming and starts again. The source waits for it (the run going on with empty
    /// chunks), then plays on as a new run; the player stays, starts over at the new run's first keyframe, and its
    /// output plays through.
    func testASenderThatComesBackWithReconnectStartsANewRun() throws {
        let clip = path("clip.mp4")
        try Media.ffmpeg(["-i", Media.sample, "-t", "4", "-c", "copy", clip])
        let port = try freePort()
        let url = "rtmp://127.0.0.1:\(port)/live/key"
        let first = try push(clip, format: "flv", to: url)
        let source = try RunningSource(["--input", url, "--input-option", "listen=1", "--reconnect", "--key-file", keyFile,
                                        "--wait-receivers", "1", "--quiet"], in: dir)
        defer { source.proc.signal(SIGKILL) }
        let player = try Proc("lsp2p-play", [source.url, "--output", path("out.mp4"), "--report", path("r.json"), "--quiet"], in: dir, name: "p")
        XCTAssertEqual(first.wait(), 0, first.stderr)
        XCTAssertNotNil(source.proc.waitForLine(containing: "waiting for it to come back"), source.proc.stderr)
        // Away for longer than a player waits on silence (10 s): the heartbeats (five a second) keep it.
        let away = (try? PlayerReport.load(URL(fileURLWithPath: path("r.json"))).chunksOnTime) ?? 0
        try waitFor("12 s of heartbeats at the player", seconds: 60) {
            ((try? PlayerReport.load(URL(fileURLWithPath: self.path("r.json"))).chunksOnTime) ?? 0) >= away + 60
        }
        XCTAssertTrue(player.process.isRunning, player.stderr)
        let second = try push(clip, format: "flv", to: url)
        XCTAssertNotNil(source.proc.waitForLine(containing: "the sender is back"), source.proc.stderr)
        XCTAssertEqual(second.wait(), 0, second.stderr)
        try waitFor("the second sender went too") { source.proc.stderr.components(separatedBy: "waiting for it to come back").count == 3 }
        XCTAssertTrue(player.process.isRunning, "the player waited through the sender's absence: \(player.stderr)")
        source.proc.signal(SIGINT)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, source.proc.stderr)
        XCTAssertEqual(player.wait(), 0, player.stderr)
        let report = try PlayerReport.load(URL(fileURLWithPath: path("r.json")))
        XCTAssertEqual(report.originRestarts, 1, "the sender's return is a new run")
        let probe = try Media.probe(path("out.mp4"))
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertGreaterThan(probe.duration, 5, "most of both pushes")
        XCTAssertEqual(try Media.decodeErrors(path("out.mp4")), "")
    }

    /// A relay with `--http` serves `/live.m3u8` of the chunks it forwards; ffmpeg plays 4 s of it, clean.
    func testARelayServesHLSThatFFmpegPlays() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        defer { source.proc.signal(SIGKILL) }
        let relay = try Proc("lsp2p-relay", ["relay", source.url, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"], in: dir, name: "relay")
        defer { relay.signal(SIGINT) }
        let line = try XCTUnwrap(relay.waitForLine(containing: "status page at"), relay.stderr)
        let playlist = String(line[line.range(of: "http://")!.lowerBound...].prefix { $0 != " " }) + "live.m3u8"
        // Asked until it lists a segment (the relay needs its first keyframe and a segment's worth after it).
        let end = Date().addingTimeInterval(30)
        var text = ""
        while !text.contains(".ts"), Date() < end {
            text = (try? String(decoding: HTTP.get(playlist).body, as: UTF8.self)) ?? ""
            if !text.contains(".ts") { usleep(200_000) }
        }
        XCTAssertTrue(text.hasPrefix("#EXTM3U"), text)
        XCTAssertTrue(text.contains("#EXTINF:"), text)
        let out = path("hls.ts")
        try Media.ffmpeg(["-i", playlist, "-t", "4", "-c", "copy", out])
        let probe = try Media.probe(out)
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertEqual(probe.duration, 4, accuracy: 1)
        XCTAssertEqual(try Media.decodeErrors(out), "")
    }
}
