import Foundation
import TestMedia
import XCTest

/// One of our binaries, run for real, with stdout and stderr going to files.
final class Proc {
    static let binDir: URL = {
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["LSP2P_BIN_DIR"] { candidates.append(URL(fileURLWithPath: dir)) }
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Media.packageRoot.appendingPathComponent(".build/debug"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("lsp2p-relay").path) }
            ?? Media.packageRoot.appendingPathComponent(".build/debug")
    }()

    let process = Process()
    let stdoutURL: URL
    let stderrURL: URL

    init(_ binary: String, _ args: [String], in dir: URL, name: String, stdin: URL? = nil) throws {
        stdoutURL = dir.appendingPathComponent("\(name).stdout")
        stderrURL = dir.appendingPathComponent("\(name).stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = binary.hasPrefix("/") ? URL(fileURLWithPath: binary) : Proc.binDir.appendingPathComponent(binary)
        process.arguments = args
        process.standardInput = try stdin.map(FileHandle.init(forReadingFrom:)) ?? FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
    }

    deinit { if process.isRunning { process.terminate() } }

    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Waits for exit, up to `seconds`; kills and fails the test past that.
    @discardableResult
    func wait(seconds: Double = 60, file: StaticString = #filePath, line: UInt = #line) -> Int32 {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > end {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                XCTFail("\(process.executableURL!.lastPathComponent) did not exit within \(seconds) s; stderr:\n\(stderr)", file: file, line: line)
                return -1
            }
            usleep(20_000)
        }
        return process.terminationStatus
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits until stderr has a line containing `text`; returns that line.
    func waitForLine(containing text: String, seconds: Double = 30) -> String? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let line = stderr.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            if !process.isRunning { return nil }
            usleep(20_000)
        }
        return nil
    }
}

/// A source on a free loopback port, and the join URL it printed.
struct RunningSource {
    let proc: Proc
    let url: String

    struct NoJoinURL: Error, CustomStringConvertible { let description: String }

    init(_ args: [String], listen: String = "127.0.0.1:0", in dir: URL, name: String = "source", stdin: URL? = nil) throws {
        proc = try Proc("lsp2p-relay", ["source", "--listen", listen] + args, in: dir, name: name, stdin: stdin)
        guard let line = proc.waitForLine(containing: "join: ") else {
            throw NoJoinURL(description: "source printed no join URL: \(proc.stderr)")
        }
        url = String(line[line.range(of: "lsp2p://")!.lowerBound...])
    }
}

struct PlayerReport: Decodable {
    struct Latency: Decodable { var p50, p90, p99, max: Double }
    struct Parents: Decodable { var atS: Double; var parents: [String] }
    var chunksExpected, chunksReceived, chunksOnTime, chunksLate, chunksMissing, bytesReceived: Int
    var latencyMs: Latency
    var firstChunkMs: Double?
    var parents: [Parents]
    var originRestarts: Int
    var durationS: Double
    /// When chunks were given up, [seconds since joining, how many].
    var missingAtS: [[Double]]?

    static func load(_ url: URL) throws -> PlayerReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(PlayerReport.self, from: Data(contentsOf: url))
    }
}

/// A test with a temporary folder and a fresh channel key made by `lsp2p-relay keygen`.
class ChannelTestCase: XCTestCase {
    var dir: URL!
    var keyFile: String!

    override func setUpWithError() throws {
        dir = try Media.tempDir()
        keyFile = dir.appendingPathComponent("channel.key").path
        let keygen = try Proc("lsp2p-relay", ["keygen"], in: dir, name: "keygen")
        XCTAssertEqual(keygen.wait(), 0)
        try FileManager.default.copyItem(atPath: keygen.stdoutURL.path, toPath: keyFile)
    }

    /// `http://HOST:PORT` from the line a node prints when it serves `what`.
    func httpBase(_ proc: Proc, _ what: String) throws -> String {
        let line = try XCTUnwrap(proc.waitForLine(containing: what), "no \(what) line: \(proc.stderr)")
        let url = String(line[line.range(of: "http://")!.lowerBound...])
        return String(url.prefix { $0 != " " }.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false).prefix(3).joined(separator: "/"))
    }

    /// A failed test's folder (logs, reports, outputs) stays, and its path is printed.
    override func tearDownWithError() throws {
        if (testRun?.failureCount ?? 0) > 0 { print("kept \(dir.path) for the failure") } else { try? FileManager.default.removeItem(at: dir) }
    }

    /// Asks the origin for the mesh (`lsp2p-relay mesh --json`) until `condition` holds of its peers, up to
    /// `seconds`; returns the last answer's peers (or fails the test).
    @discardableResult
    func waitForMesh(_ url: String, seconds: Double = 30, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                     until condition: ([[String: Any]]) -> Bool) throws -> [[String: Any]] {
        let end = Date().addingTimeInterval(seconds)
        var peers: [[String: Any]] = []
        var attempt = 0
        while Date() < end {
            attempt += 1
            let mesh = try Proc("lsp2p-relay", ["mesh", url, "--json", "--timeout", "3"], in: dir, name: "mesh-wait\(attempt)")
            if mesh.wait(seconds: 10, file: file, line: line) == 0,
               let map = try? JSONSerialization.jsonObject(with: Data(contentsOf: mesh.stdoutURL)) as? [String: Any] {
                peers = map["peers"] as? [[String: Any]] ?? []
                if condition(peers) { return peers }
            }
            usleep(300_000)
        }
        XCTFail("timed out waiting for the mesh: \(what); last seen: \(peers)", file: file, line: line)
        return peers
    }

    /// Peers of a mesh answer that have a parent for each of the 4 substreams.
    static func fed(_ peers: [[String: Any]]) -> Int {
        peers.filter { (($0["substreams"] as? [[String: Any]]) ?? []).compactMap { $0["parent"] as? String }.count == 4 }.count
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
}
