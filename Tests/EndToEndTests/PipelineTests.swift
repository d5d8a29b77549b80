import Foundation
import TestMedia
import XCTest

/// The real binaries over loopback: source → players, checked with ffprobe and ffmpeg.
final class PipelineTests: ChannelTestCase {
    private func assertPlays(_ file: String, duration: Double, codecs: [String] = ["h264", "aac"],
                             file f: StaticString = #filePath, line: UInt = #line) throws {
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.codecs, codecs, file: f, line: line)
        XCTAssertEqual(probe.duration, duration, accuracy: 0.5, "\(file)", file: f, line: line)
        XCTAssertEqual(try Media.decodeErrors(file), "", "\(file)", file: f, line: line)
    }

    /// A short clip made for the test.
    private func clip(seconds: Int, name: String = "clip.mp4") throws -> String {
        let out = path(name)
        try Media.ffmpeg(["-i", Media.sample, "-t", "\(seconds)", "-c", "copy", out])
        return out
    }

    func testSampleReachesTwoPlayersAtOnceAsFileAndStdout() throws {
        let source = try RunningSource(["--input", Media.sample, "--key-file", keyFile, "--wait-receivers", "2"], in: dir)
        let toFile = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--output", path("a.ts"), "--report", path("a.json")],
                              in: dir, name: "a")
        let toStdout = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--output", "-", "--report", path("b.json")],
                                in: dir, name: "b")
        XCTAssertEqual(toFile.wait(), 0, toFile.stderr)
        XCTAssertEqual(toStdout.wait(), 0, toStdout.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, source.proc.stderr)

        try assertPlays(path("a.ts"), duration: 10)
        try assertPlays(toStdout.stdoutURL.path, duration: 10)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("a.ts"))), try Data(contentsOf: toStdout.stdoutURL))
        for name in ["a.json", "b.json"] {
            let report = try PlayerReport.load(dir.appendingPathComponent(name))
            XCTAssertEqual(report.chunksMissing, 0)
            XCTAssertGreaterThanOrEqual(report.chunksExpected, 40)
            XCTAssertEqual(report.chunksReceived, report.chunksExpected)
            XCTAssertEqual(report.chunksOnTime + report.chunksLate, report.chunksExpected)
            XCTAssertNotNil(report.firstChunkMs)
            XCTAssertEqual(report.parents.first?.parents.count, 1)
        }
        // Stats lines and logs stay off stdout: the stdout file is pure TS.
        XCTAssertTrue(toStdout.stderr.contains("play "))
        // Keys stay out of logs: the channel key only in the join URL the source prints, the origin's secret nowhere.
        let keys = try String(contentsOfFile: keyFile, encoding: .utf8).split(separator: "\n").map(String.init)
        let channelKey = try XCTUnwrap(keys.first), secret = try XCTUnwrap(keys.first { $0.hasPrefix("origin-secret=") }?.dropFirst(14))
        XCTAssertTrue(source.proc.stderr.contains("key=" + channelKey), "the join URL carries the key")
        for log in [source.proc.stderr, toFile.stderr, toStdout.stderr] {
            XCTAssertFalse(log.split(separator: "\n").contains { !$0.hasPrefix("join: ") && $0.contains(channelKey) }, log)
            XCTAssertFalse(log.contains(secret), log)
        }
    }

    func testWebMOverIPv6WithChaChaArrivesAsH264AACInMP4() throws {
        let webm = path("in.webm")
        try Media.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", "-f", "lavfi", "-i", "sine=duration=4",
                          "-c:v", "libvpx", "-b:v", "400k", "-c:a", "libopus", webm])
        let source = try RunningSource(["--input", webm, "--key-file", keyFile, "--wait-receivers", "1", "--cipher", "chacha20-poly1305"],
                                       listen: "[::1]:0", in: dir)
        XCTAssertTrue(source.url.hasPrefix("lsp2p://[::1]:"), source.url)
        let player = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--output", path("out.mp4")], in: dir, name: "p")
        XCTAssertEqual(player.wait(), 0, player.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0)
        XCTAssertTrue(player.stderr.contains("chacha20-poly1305"))
        try assertPlays(path("out.mp4"), duration: 4)
    }

    func testStdinSourceIsReadAsFastAsItComes() throws {
        let ts = path("in.ts")
        try Media.ffmpeg(["-i", Media.sample, "-t", "4", "-c", "copy", "-f", "mpegts", ts])
        let source = try RunningSource(["--input", "-", "--key-file", keyFile, "--wait-receivers", "1"], in: dir,
                                       stdin: URL(fileURLWithPath: ts))
        let player = try Proc("lsp2p-play", [source.url, "--output", path("out.ts"), "--report", path("r.json")], in: dir, name: "p")
        XCTAssertEqual(player.wait(), 0, player.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, source.proc.stderr)
        try assertPlays(path("out.ts"), duration: 4)
        XCTAssertEqual(try PlayerReport.load(dir.appendingPathComponent("r.json")).chunksMissing, 0)
    }

    func testWrongKeyFailsThatPlayerAndTheSourceServesOthers() throws {
        let source = try RunningSource(["--input", try clip(seconds: 3), "--key-file", keyFile, "--loop"], in: dir)
        let wrongKey = path("wrong.key")
        try (String(repeating: "ab", count: 32) + "\n").write(toFile: wrongKey, atomically: true, encoding: .utf8)
        let wrong = try Proc("lsp2p-play", [source.url.components(separatedBy: "?")[0], "--key-file", wrongKey, "--output", path("w.ts")],
                             in: dir, name: "wrong")
        XCTAssertEqual(wrong.wait(seconds: 20), 1)
        XCTAssertTrue(wrong.stderr.contains("lsp2p-play: wrong key"), wrong.stderr)

        let good = try Proc("lsp2p-play", [source.url, "--output", path("g.ts"), "--duration", "3", "--report", path("g.json")],
                            in: dir, name: "good")
        XCTAssertEqual(good.wait(), 0, good.stderr)
        XCTAssertGreaterThan(try PlayerReport.load(dir.appendingPathComponent("g.json")).chunksReceived, 5)
        source.proc.signal(SIGTERM)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, source.proc.stderr)
        XCTAssertTrue(source.proc.stderr.contains("wrong key"), "the source logs the failed join")
    }

    func testGarbageAndOversizedFramesDoNotDisturbAPlayingReceiver() throws {
        let source = try RunningSource(["--input", try clip(seconds: 4), "--key-file", keyFile, "--wait-receivers", "1"], in: dir)
        let player = try Proc("lsp2p-play", [source.url, "--output", path("p.ts"), "--report", path("p.json")], in: dir, name: "p")
        XCTAssertNotNil(player.waitForLine(containing: "joined"))
        let port = Int32(source.url.split(separator: ":").last!.split(separator: "?")[0])!
        // Garbage, a frame of this version (3) too large to be one, and TS bytes.
        for junk in [Array("GET / HTTP/1.1\r\n\r\n".utf8), [0x4C, 0x32, 3, 0x10, 0x7F, 0xFF, 0xFF, 0xFF], [UInt8](repeating: 0x47, count: 5000)] {
            try sendRaw(junk, port: port)
        }
        XCTAssertEqual(player.wait(), 0, player.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0)
        let report = try PlayerReport.load(dir.appendingPathComponent("p.json"))
        XCTAssertEqual(report.chunksMissing, 0)
        try assertPlays(path("p.ts"), duration: 4)
        XCTAssertTrue(source.proc.stderr.contains("closing link: not an lsp2p peer"), source.proc.stderr)
        XCTAssertTrue(source.proc.stderr.contains("exceeds the"), source.proc.stderr)
    }

    func testAReceiverThatDisappearsMidStreamHarmsNoOther() throws {
        let source = try RunningSource(["--input", try clip(seconds: 4), "--key-file", keyFile, "--wait-receivers", "2"], in: dir)
        let doomed = try Proc("lsp2p-play", [source.url, "--output", path("d.ts")], in: dir, name: "doomed")
        let survivor = try Proc("lsp2p-play", [source.url, "--output", path("s.ts"), "--report", path("s.json")], in: dir, name: "s")
        XCTAssertNotNil(doomed.waitForLine(containing: "play "), doomed.stderr)
        doomed.signal(SIGKILL)
        XCTAssertEqual(survivor.wait(), 0, survivor.stderr)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0, source.proc.stderr)
        XCTAssertEqual(try PlayerReport.load(dir.appendingPathComponent("s.json")).chunksMissing, 0)
        try assertPlays(path("s.ts"), duration: 4)
    }

    func testAStalledReceiverHoldsUpNoOtherAndTheSourceStillEnds() throws {
        let source = try RunningSource(["--input", try clip(seconds: 3), "--key-file", keyFile, "--wait-receivers", "2"], in: dir)
        let stalled = try Proc("lsp2p-play", [source.url, "--output", path("st.ts")], in: dir, name: "stalled")
        let survivor = try Proc("lsp2p-play", [source.url, "--output", path("s.ts"), "--report", path("s.json")], in: dir, name: "s")
        XCTAssertNotNil(stalled.waitForLine(containing: "joined"), stalled.stderr)
        stalled.signal(SIGSTOP)
        defer { stalled.signal(SIGKILL) }
        XCTAssertEqual(survivor.wait(), 0, survivor.stderr)
        XCTAssertEqual(try PlayerReport.load(dir.appendingPathComponent("s.json")).chunksMissing, 0)
        // It waits a bounded time for the stalled one to take the end of stream, then closes it and exits.
        XCTAssertEqual(source.proc.wait(seconds: 30), 0, source.proc.stderr)
        try assertPlays(path("s.ts"), duration: 3)
    }

    func testSIGINTLeavesAPlayableMP4AndAReport() throws {
        let source = try RunningSource(["--input", try clip(seconds: 3), "--key-file", keyFile, "--loop"], in: dir)
        // The report goes where it is asked, through a symlink (never renamed over it).
        try FileManager.default.createSymbolicLink(atPath: path("link.json"), withDestinationPath: path("x.json"))
        let player = try Proc("lsp2p-play", [source.url, "--output", path("x.mp4"), "--report", path("link.json")], in: dir, name: "x")
        XCTAssertNotNil(player.waitForLine(containing: "play   3."), player.stderr)
        player.signal(SIGINT)
        XCTAssertEqual(player.wait(seconds: 20), 0, player.stderr)
        let probe = try Media.probe(path("x.mp4"))
        XCTAssertEqual(probe.codecs, ["h264", "aac"])
        XCTAssertGreaterThan(probe.duration, 1.5)
        XCTAssertEqual(try Media.decodeErrors(path("x.mp4")), "")
        let report = try PlayerReport.load(dir.appendingPathComponent("x.json"))
        XCTAssertGreaterThan(report.chunksReceived, 5)
        XCTAssertGreaterThan(report.durationS, 2)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("link.json")), path("x.json"), "still a symlink")
        source.proc.signal(SIGINT)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0)
    }

    func testFullDiskOnOutputIsAClearFailure() throws {
        let source = try RunningSource(["--input", try clip(seconds: 2), "--key-file", keyFile, "--loop"], in: dir)
        let player = try Proc("lsp2p-play", [source.url, "--output", "/dev/full", "--quiet"], in: dir, name: "full")
        XCTAssertEqual(player.wait(seconds: 20), 1)
        XCTAssertEqual(player.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last,
                       "lsp2p-play: cannot write /dev/full: No space left on device")
        source.proc.signal(SIGTERM)
        XCTAssertEqual(source.proc.wait(seconds: 20), 0)
    }

    func testBadInputsAndUsageGiveOneLineAndTheRightExitCode() throws {
        let garbage = path("garbage.mp4")
        try Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: garbage))
        let cases: [([String], Int32, String)] = [
            (["source", "--input", path("missing.mp4"), "--listen", "127.0.0.1:0"], 1, "lsp2p-relay: cannot open \(path("missing.mp4")): no such file"),
            (["source", "--input", garbage, "--listen", "127.0.0.1:0"], 1, "lsp2p-relay: cannot "),
            (["source", "--input", "x", "--format", "nosuchformat", "--listen", "127.0.0.1:0"], 1, "lsp2p-relay: unknown input format 'nosuchformat'"),
            (["source", "--input", Media.sample, "--input-option", "no_such_option=1", "--listen", "127.0.0.1:0"], 1,
             "lsp2p-relay: unknown input option for \(Media.sample): no_such_option"),
            (["source", "--input", Media.sample, "--input-option", "=1"], 2, "--input-option takes KEY=VALUE"),
            (["source", "--input", Media.sample, "--chunk-ms", "5"], 2, "--chunk-ms must be 20 to 10000"),
            (["source", "--input", Media.sample, "--reconnect"], 2, "--reconnect is for a sender that can come back"),
            (["source", "--input", "-", "--reconnect"], 2, "--reconnect is for a sender that can come back"),
            (["source", "--input", "srt://127.0.0.1:9?mode=listener", "--reconnect", "--loop"], 2, "--reconnect and --loop do not go together"),
            (["source", "--input", Media.sample, "--uplink", "lots"], 2, "--uplink"),
            (["source", "--input", Media.sample, "--uplink", "99999999999999999999G"], 2, "--uplink"),
            (["source", "--input", Media.sample, "--key-file", path("none.key")], 2, "cannot read key file"),
            (["nosuchcommand"], 2, "nosuchcommand"),
        ]
        for (args, code, message) in cases {
            let p = try Proc("lsp2p-relay", args, in: dir, name: "bad")
            XCTAssertEqual(p.wait(seconds: 20), code, "\(args): \(p.stderr)")
            XCTAssertTrue(p.stderr.contains(message), "\(args): \(p.stderr)")
            if code == 1 { XCTAssertEqual(p.stderr.split(separator: "\n").filter { !$0.contains(" info ") }.count, 1, p.stderr) }
        }
        var playCases: [([String], Int32, String)] = [
            (["http://x", "--output", path("o.ts")], 2, "is not a join URL"),
            (["lsp2p://127.0.0.1:1", "--output", path("o.ts")], 2, "no key"),
            (["lsp2p://127.0.0.1:1?key=\(String(repeating: "1", count: 64))", "--output", path("o.ts")], 1,
             "lsp2p-play: cannot connect to 127.0.0.1:1: connection refused"),
            (["lsp2p://127.0.0.1:1?key=\(String(repeating: "1", count: 64))", "--output", "/nonexistent/o.ts"], 1,
             "lsp2p-play: cannot create /nonexistent/o.ts"),
        ]
        // Values past any use are usage errors, not traps (exit 132) once the stream's rate is known.
        let key = "lsp2p://127.0.0.1:1?key=\(String(repeating: "1", count: 64))"
        for (option, value) in [("--until", "1e300"), ("--deadline-ms", "9223372036854776"), ("--uplink", "99999999999999999999G"),
                                ("--duration", "1e300")] {
            playCases.append(([key, "--output", path("o.ts"), option, value], 2, option))
        }
        for (args, code, message) in playCases {
            let p = try Proc("lsp2p-play", args, in: dir, name: "badplay")
            XCTAssertEqual(p.wait(seconds: 20), code, "\(args): \(p.stderr)")
            XCTAssertTrue(p.stderr.contains(message), "\(args): \(p.stderr)")
        }
    }

    /// Connects, sends bytes, and waits for the source to hang up.
    private func sendRaw(_ bytes: [UInt8], port: Int32) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(ok, 0)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 1024)
        var n = 1
        while n > 0 { n = recv(fd, &buf, buf.count, 0) }
        let reason = errno
        // Closed with our bytes unread: a reset is as good as a FIN. A timeout (EAGAIN) is not.
        XCTAssertTrue(n == 0 || reason == ECONNRESET, "the source closes a link that sent junk (errno \(reason))")
    }
}
