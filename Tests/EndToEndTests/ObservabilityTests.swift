import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestMedia
import XCTest

/// Metrics endpoints, JSON logs, and the soak command.
final class ObservabilityTests: ChannelTestCase {
    private func get(_ url: String) throws -> (status: Int, body: String) {
        let answer = try HTTP.get(url)
        return (answer.status, String(decoding: answer.body, as: UTF8.self))
    }

    private func value(_ metric: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(metric + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    func testMetricsMoveWhileStreamingAndLogsCanBeJSON() throws {
        let source = try RunningSource(["--input", Media.sample, "--loop", "--key-file", keyFile, "--quiet",
                                        "--metrics", "127.0.0.1:0", "--log-format", "json"], in: dir)
        defer { source.proc.signal(SIGKILL) }
        let player = try Proc("lsp2p-play", [source.url, "--output", path("out.ts"), "--duration", "6", "--quiet",
                                             "--metrics", "127.0.0.1:0"], in: dir, name: "player")
        // `--metrics` is the status server's older name: `/metrics` is where it always was.
        let line = try XCTUnwrap(player.waitForLine(containing: "status page at"), player.stderr)
        let endpoint = String(line[line.range(of: "http://")!.lowerBound...].prefix { $0 != " " }) + "metrics"
        // Scraped until chunks have come, then until more have: the counters move while the stream plays.
        func scrape(until condition: (Double) -> Bool) throws -> (status: Int, body: String) {
            let end = Date().addingTimeInterval(20)
            while true {
                let answer = try get(endpoint)
                if let n = value("lsp2p_chunks_received_total", in: answer.body), condition(n) { return answer }
                if Date() > end { XCTFail("counter never got there: \(answer.body)"); return answer }
                usleep(200_000)
            }
        }
        let first = try scrape { $0 > 0 }
        XCTAssertEqual(first.status, 200)
        XCTAssertTrue(first.body.contains("# TYPE lsp2p_chunks_received_total counter"), first.body)
        let before = try XCTUnwrap(value("lsp2p_chunks_received_total", in: first.body), first.body)
        let second = try scrape { $0 > before }
        let after = try XCTUnwrap(value("lsp2p_chunks_received_total", in: second.body), second.body)
        XCTAssertGreaterThan(after, before, "counters move")
        XCTAssertGreaterThan(value("lsp2p_chunks_on_time_total", in: second.body) ?? 0, 0, second.body)
        XCTAssertTrue(second.body.contains("lsp2p_chunk_latency_seconds_bucket"), second.body)
        XCTAssertEqual(try get(endpoint.replacingOccurrences(of: "/metrics", with: "/nope")).status, 404)
        XCTAssertEqual(player.wait(seconds: 30), 0, player.stderr)

        // The source logged JSON, one object a line (the join URL line is the one plain line, by contract).
        let logs = source.proc.stderr.split(separator: "\n").filter { !$0.hasPrefix("join: ") }
        XCTAssertGreaterThan(logs.count, 1)
        for log in logs {
            let object = try JSONSerialization.jsonObject(with: Data(log.utf8)) as? [String: Any]
            XCTAssertNotNil(object?["message"] as? String, String(log))
            XCTAssertNotNil(object?["level"] as? String, String(log))
        }
    }

    func testSixtySecondSoakWithChurnMeetsItsDeadlines() throws {
        let out = dir.appendingPathComponent("soak")
        let soak = try Proc("lsp2p-relay", ["soak", "--input", Media.sample, "--relays", "12", "--players", "4", "--duration", "60",
                                            "--churn", "relays:10s,players:20s", "--min-on-time", "0.99", "--out", out.path],
                            in: dir, name: "soak")
        XCTAssertEqual(soak.wait(seconds: 240), 0, soak.stderr)
        XCTAssertTrue(soak.stderr.contains("soak ") && soak.stderr.contains("| on time "), "progress line on stderr")
        let stdout = try String(contentsOf: soak.stdoutURL, encoding: .utf8)
        XCTAssertFalse(stdout.contains("on time"), "progress stays off stdout: \(stdout)")

        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any]
        let totals = try XCTUnwrap(report?["totals"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(totals["on_time_ratio"] as? Double ?? 0, 0.99)
        XCTAssertGreaterThan(totals["chunks_expected"] as? Int ?? 0, 500)
        let players = report?["players"] as? [[String: Any]] ?? []
        XCTAssertGreaterThanOrEqual(players.count, 6, "4 players and the ones that joined as others left")
        let events = (report?["events"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        XCTAssertGreaterThanOrEqual(events.filter { $0 == "relay-kill" }.count, 4)
        // Every kill is accounted for: timed from the players' reports, or it fed no player directly.
        let recovery = try XCTUnwrap(report?["recovery"] as? [String: Any])
        let kills = events.filter { $0 == "relay-kill" }.count
        XCTAssertEqual((recovery["count"] as? Int ?? 0) + (recovery["not_observed"] as? Int ?? 0) + (recovery["unrecovered"] as? Int ?? 0), kills,
                       "\(recovery)")
        XCTAssertEqual(recovery["unrecovered"] as? Int, 0, "\(recovery)")
        XCTAssertNotNil((report?["mesh"] as? [String: Any])?["peers"])
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("| player |"))
        for plot in ["latency-cdf", "on-time", "delay", "mesh"] {
            let parser = XMLParser(contentsOf: out.appendingPathComponent("\(plot).svg"))!
            XCTAssertTrue(parser.parse(), "\(plot).svg is well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
        }
    }

    func testSoakRejectsBadArguments() throws {
        let soak = try Proc("lsp2p-relay", ["soak", "--churn", "sometimes"], in: dir, name: "bad")
        XCTAssertEqual(soak.wait(), 2)
        XCTAssertTrue(soak.stderr.contains("--churn"), soak.stderr)
    }
}
