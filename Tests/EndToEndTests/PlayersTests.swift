import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestMedia
import XCTest

/// Where people watch: the served stream, the status page in a real browser, and nodes that spend a budget.
final class PlayersTests: ChannelTestCase {
    /// `http://HOST:PORT` from a node's log line `WHAT at http://HOST:PORT/...`.
    func testServedStreamPlaysInTwoClientsWhileAThirdNeverReads() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        let report = path("player.json")
        let player = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--serve", "127.0.0.1:0", "--output", path("out.ts"),
                                             "--duration", "20", "--report", report, "--quiet"], in: dir, name: "player")
        let base = try httpBase(player, "the stream")
        let stream = base + "/stream.ts"
        let stalled = try StalledClient(host: "127.0.0.1", port: URL(string: stream)!.port!, path: "/stream.ts")
        let (status, probe, err) = try Media.run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", stream])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(Set(String(decoding: probe, as: UTF8.self).split(separator: "\n").map(String.init)), ["h264", "aac"])
        // Two players at once, each decoding 6 s of the live stream.
        let clients = try (0..<2).map { i in
            try Proc("/usr/bin/env", ["ffmpeg", "-v", "error", "-i", stream, "-t", "6", "-map", "0", "-f", "null", "-"], in: dir, name: "ffmpeg\(i)")
        }
        for client in clients {
            XCTAssertEqual(client.wait(seconds: 40), 0, client.stderr)
            XCTAssertEqual(client.stderr, "", "decodes without errors")
        }
        let index = try HTTP.get(base + "/")
        XCTAssertTrue(String(decoding: index.body, as: UTF8.self).contains("/stream.ts"))
        XCTAssertEqual(try HTTP.get(stream, method: "HEAD").contentType, "video/mp2t")
        XCTAssertEqual(player.wait(seconds: 60), 0, player.stderr)
        let r = try PlayerReport.load(URL(fileURLWithPath: report))
        XCTAssertEqual(r.chunksMissing, 0, "the player's own output loses nothing")
        XCTAssertEqual(r.chunksLate, 0)
        XCTAssertGreaterThan(r.chunksOnTime, 50)
        XCTAssertEqual(try Media.decodeErrors(path("out.ts")), "")
        withExtendedLifetime(stalled) {}
    }

    func testTheStatusPageInHeadlessChromium() throws {
        let chromium = try XCTUnwrap(["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                     "chromium is not installed: ./scripts/setup.sh --tests installs it")
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--http", "127.0.0.1:0", "--quiet"], in: dir)
        let origin = try httpBase(source.proc, "status page")
        let player = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--output", path("out.ts"), "--http", "127.0.0.1:0",
                                             "--duration", "40", "--quiet"], in: dir, name: "player")
        let page = try httpBase(player, "status page")
        try waitFor("the player plays") { ((try? NodeStatusJSON.get(page))?.playback?.onTime ?? 0) > 5 }

        func load(_ base: String, _ name: String) throws -> String {
            let (status, dom, err) = try Media.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(path("chromium-\(name)"))",
                                                              "--virtual-time-budget=3000", "--dump-dom", base + "/"])
            XCTAssertEqual(status, 0, err)
            return String(decoding: dom, as: UTF8.self)
        }
        func figure(_ dom: String, _ id: String) -> String? {
            guard let r = dom.range(of: "id=\"\(id)\""), let end = dom[r.upperBound...].firstIndex(of: ">") else { return nil }
            return String(dom[dom.index(after: end)...].prefix { $0 != "<" })
        }

        // The player: its figures in the DOM are the ones /status.json gives, and they move.
        let before = try NodeStatusJSON.get(page)
        let first = try load(page, "player1")
        let after = try NodeStatusJSON.get(page)
        XCTAssertEqual(figure(first, "node_id"), before.id)
        XCTAssertTrue(first.contains("lsp2p player"), first)
        let onTime1 = try XCTUnwrap(figure(first, "on_time").flatMap(Int.init), first)
        XCTAssertTrue((before.playback!.onTime...after.playback!.onTime).contains(onTime1), "\(onTime1) not in \(before.playback!.onTime)...\(after.playback!.onTime)")
        let uptime1 = try XCTUnwrap(figure(first, "uptime_s").flatMap(Double.init))
        XCTAssertTrue(first.contains("id=\"sparkline\""), "the latency sparkline is drawn")
        XCTAssertTrue(first.contains(source.url.split(separator: "/")[1].split(separator: "?")[0]), "its parent, the origin, is listed")
        try waitFor("a chunk more") { ((try? NodeStatusJSON.get(page))?.playback?.onTime ?? 0) > after.playback!.onTime + 2 }
        let second = try load(page, "player2")
        XCTAssertGreaterThan(try XCTUnwrap(figure(second, "on_time").flatMap(Int.init)), onTime1)
        XCTAssertGreaterThan(try XCTUnwrap(figure(second, "uptime_s").flatMap(Double.init)), uptime1)

        // The origin: its child is listed, and the mesh is drawn by /mesh.svg.
        let originDOM = try load(origin, "origin")
        XCTAssertTrue(originDOM.contains("lsp2p origin"), originDOM)
        XCTAssertTrue(originDOM.contains(try NodeStatusJSON.get(page).id), "the player is the origin's child")
        XCTAssertTrue(originDOM.contains("/mesh.svg"))
        let svg = try HTTP.get(origin + "/mesh.svg")
        XCTAssertEqual(svg.contentType, "image/svg+xml")
        XCTAssertTrue(String(decoding: svg.body, as: UTF8.self).contains("<svg"))
        let metrics = String(decoding: try HTTP.get(origin + "/metrics").body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("lsp2p_chunks_sent_total"), "/metrics is still there")

        let shot = path("status.png")
        let (status, _, err) = try Media.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(path("chromium-shot"))",
                                                         "--virtual-time-budget=3000", "--window-size=1200,1400", "--screenshot=\(shot)", page + "/"])
        XCTAssertEqual(status, 0, err)
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG screenshot")
        player.signal(SIGTERM)
        XCTAssertEqual(player.wait(), 0)
    }

    /// `--player ffplay` (SDL's dummy drivers: no display here): the player is started on the served stream, reads
    /// it, and closing it ends the run with exit 0.
    func testPlayerStartsFfplayAndEndsWhenItExits() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        setenv("SDL_VIDEODRIVER", "dummy", 1)
        setenv("SDL_AUDIODRIVER", "dummy", 1)
        defer { unsetenv("SDL_VIDEODRIVER"); unsetenv("SDL_AUDIODRIVER") }
        let player = try Proc("lsp2p-play", [source.url, "--key-file", keyFile, "--player", "ffplay", "--http", "127.0.0.1:0", "--quiet"],
                              in: dir, name: "player")
        let page = try httpBase(player, "status page")
        try waitFor("ffplay reads the served stream") { ((try? NodeStatusJSON.get(page))?.serve?.clients ?? 0) == 1 }
        let ffplay = try XCTUnwrap(childPIDs(of: player.process.processIdentifier).first, "no ffplay under lsp2p-play")
        kill(ffplay, SIGTERM)
        XCTAssertEqual(player.wait(seconds: 30), 0, player.stderr)
        XCTAssertNotNil(player.stderr.range(of: "ffplay exited"), player.stderr)
    }

    /// Processes whose parent is `pid`, from /proc.
    private func childPIDs(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    /// `--output -` into a pipe nobody reads: a stop signal still ends the run (its last writes unflushed).
    func testAPlayerWhoseStdoutIsNeverReadStillStops() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet"], in: dir)
        let report = path("player.json")
        let player = Process()
        player.executableURL = Proc.binDir.appendingPathComponent("lsp2p-play")
        player.arguments = [source.url, "--key-file", keyFile, "--output", "-", "--report", report, "--quiet"]
        let stdout = Pipe() // never read: it fills after a second or so of stream
        player.standardOutput = stdout
        player.standardError = FileHandle.nullDevice
        try player.run()
        defer { if player.isRunning { kill(player.processIdentifier, SIGKILL) } }
        try waitFor("more than a pipe's worth has played") {
            ((try? PlayerReport.load(URL(fileURLWithPath: report)))?.bytesReceived ?? 0) > 512 << 10
        }
        kill(player.processIdentifier, SIGTERM)
        let end = Date().addingTimeInterval(30)
        while player.isRunning, Date() < end { usleep(50_000) }
        XCTAssertFalse(player.isRunning, "the player hung on its blocked output")
        withExtendedLifetime(stdout) {}
    }

    /// A mesh of 6: the origin, a relay with a small budget that the players join through, another relay, and three
    /// players, one with a budget of its own (`--until 8s`).
    func testARelayWithABudgetLeavesAndThePlayersUnderItMissNothing() throws {
        // The origin has room for about three streams: the players need the relays, so the spender gets children.
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--uplink", "3M", "--quiet"], in: dir)
        let spender = try Proc("lsp2p-relay", ["relay", source.url, "--key-file", keyFile, "--upload-budget", "2M", "--quiet"],
                               in: dir, name: "spender")
        let joinLine = try XCTUnwrap(spender.waitForLine(containing: "joining"), spender.stderr)
        let spenderID = String(joinLine[joinLine.range(of: "relay ")!.upperBound...].prefix { $0 != " " })
        try waitForMesh(source.url, "the spender is fed") { peers in peers.contains { $0["id"] as? String == spenderID } && Self.fed(peers) >= 1 }
        let other = try Proc("lsp2p-relay", ["relay", source.url, "--key-file", keyFile, "--quiet"], in: dir, name: "relay")
        // Joining through the spender: it is their first candidate.
        let viaSpender = "lsp2p://\(spenderID)"
        let players = try (0..<3).map { i in
            // A 4 s deadline: two loaded CI cores may stall a process for a second; a chunk lost is lost whatever the deadline.
            try Proc("lsp2p-play", [viaSpender, "--key-file", keyFile, "--output", path("p\(i).ts"), "--duration", "30", "--deadline-ms", "4000",
                                    "--report", path("p\(i).json"), "--quiet"] + (i == 0 ? ["--until", "8s"] : []),
                     in: dir, name: "player\(i)")
        }
        XCTAssertEqual(spender.wait(seconds: 60), 0, "a spent relay exits 0: \(spender.stderr)")
        XCTAssertNotNil(spender.stderr.range(of: "hand-off done"), spender.stderr)
        for player in players { XCTAssertEqual(player.wait(seconds: 60), 0, player.stderr) }
        var underSpender = 0
        for i in 0..<3 {
            let r = try PlayerReport.load(URL(fileURLWithPath: path("p\(i).json")))
            XCTAssertEqual(r.chunksMissing, 0, "player \(i): \(players[i].stderr)")
            XCTAssertGreaterThan(r.chunksOnTime, 100, "player \(i)")
            if r.parents.contains(where: { $0.parents.contains(spenderID) }) { underSpender += 1 }
        }
        XCTAssertGreaterThan(underSpender, 0, "some player was fed by the spender before it left")
        // Its budget is time (its children, if any, depend on who joined first): at 8 s it is a leaf, and plays on.
        XCTAssertNotNil(players[0].stderr.range(of: "a leaf now"), "the player with a budget spent it: \(players[0].stderr)")
        withExtendedLifetime(other) {}
    }
}

/// `/status.json`, the keys this test reads.
struct NodeStatusJSON: Decodable {
    struct Playback: Decodable { var onTime: Int }
    struct Serve: Decodable { var clients: Int }
    var id: String
    var role: String
    var uptimeS: Double
    var playback: Playback?
    var serve: Serve?

    static func get(_ base: String) throws -> NodeStatusJSON {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(NodeStatusJSON.self, from: Data(try HTTP.get(base + "/status.json").body))
    }
}

enum HTTP {
    struct Failed: Error { var description: String }

    /// One request over loopback, waited for (10 s at most).
    static func get(_ url: String, method: String = "GET") throws -> (status: Int, contentType: String?, body: [UInt8]) {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: 10)
        request.httpMethod = method
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<(Int, String?, [UInt8]), Error> = .failure(Failed(description: "no answer"))
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { result = .failure(error) } else {
                let http = response as? HTTPURLResponse
                result = .success((http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "Content-Type"), Array(data ?? Data())))
            }
            done.signal()
        }.resume()
        done.wait()
        return try result.get()
    }
}
