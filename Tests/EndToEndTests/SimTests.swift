import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestMedia
import XCTest

/// `lsp2p-sim` as users run it: files written, the summary on stdout, progress on stderr, usage errors exit 2.
final class SimTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Media.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func assertWellFormed(_ url: URL, file: StaticString = #filePath, line: UInt = #line) {
        let parser = XMLParser(contentsOf: url)!
        XCTAssertTrue(parser.parse(), "\(url.lastPathComponent): \(parser.parserError.map { "\($0)" } ?? "")", file: file, line: line)
    }

    func testPacketWritesItsPlotsAndTable() throws {
        let out = dir.appendingPathComponent("packet")
        let sim = try Proc("lsp2p-sim", ["packet", "--nodes", "300", "--radius", "0.1", "--steps", "80", "--energy", "100", "--out", out.path], in: dir, name: "packet")
        XCTAssertEqual(sim.wait(), 0, sim.stderr)
        for plot in ["topology", "flow", "inactive", "performance"] { assertWellFormed(out.appendingPathComponent("\(plot).svg")) }
        let csv = try String(contentsOf: out.appendingPathComponent("performance.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 81)
        XCTAssertTrue(csv[0].hasPrefix("step,generated,delivered,delivery_ratio,mean_delay_steps,energy_used"))
        let summary = try String(contentsOf: sim.stdoutURL, encoding: .utf8)
        XCTAssertTrue(summary.contains("300 nodes") && summary.contains("delivered"), summary)
        XCTAssertTrue(sim.stderr.contains("packet: 80/80 steps"), sim.stderr)
    }

    func testOverlayReportHasEveryAlgorithm() throws {
        let out = dir.appendingPathComponent("overlay")
        let sim = try Proc("lsp2p-sim", ["overlay", "--peers", "60", "--duration", "20", "--churn", "fail:5s", "--out", out.path], in: dir, name: "overlay")
        XCTAssertEqual(sim.wait(seconds: 120), 0, sim.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any] ?? [:]
        let algorithms = json["algorithms"] as? [String: [String: Any]] ?? [:]
        XCTAssertEqual(Set(algorithms.keys), ["fastmesh", "centralized", "random", "tree"])
        for (name, result) in algorithms {
            for key in ["max_delay_ms", "mean_delay_ms", "rate_ratio", "origin_load", "parent_changes"] {
                XCTAssertNotNil(result[key] as? Double ?? (result[key] as? Int).map(Double.init), "\(name).\(key)")
            }
        }
        let scenario = json["scenario"] as? [String: Any] ?? [:]
        XCTAssertEqual(scenario["peers"] as? Int, 60)
        XCTAssertNotNil(scenario["r_max_bps"] as? Double)
        for plot in ["delay-cdf", "peer-delays", "max-delay", "rate"] { assertWellFormed(out.appendingPathComponent("\(plot).svg")) }
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("| fastmesh |"))
        let summary = try String(contentsOf: sim.stdoutURL, encoding: .utf8)
        XCTAssertTrue(summary.contains("fastmesh max delay / centralized"), summary)
    }

    func testBadArgumentsExit2() throws {
        for (args, flag) in [(["overlay", "--algo", "fastest"], "--algo"), (["overlay", "--churn", "often"], "--churn"),
                             (["packet", "--radius", "0"], "--radius")] {
            let sim = try Proc("lsp2p-sim", args, in: dir, name: "bad")
            XCTAssertEqual(sim.wait(), 2, args.joined(separator: " "))
            XCTAssertTrue(sim.stderr.contains(flag), sim.stderr)
        }
    }

    func testAnOutputThatCannotBeWrittenIsAOneLineErrorAndExit1() throws {
        let blocker = dir.appendingPathComponent("file")
        try Data("x".utf8).write(to: blocker)
        let sim = try Proc("lsp2p-sim", ["packet", "--nodes", "50", "--steps", "5", "--out", blocker.appendingPathComponent("out").path, "-q"],
                           in: dir, name: "unwritable")
        XCTAssertEqual(sim.wait(), 1)
        let lines = sim.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, sim.stderr)
        XCTAssertTrue(lines.first?.hasPrefix("lsp2p-sim: cannot write") == true, sim.stderr)
    }
}
