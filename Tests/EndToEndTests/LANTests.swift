import Foundation
import TestMedia
import XCTest

/// Real processes on an emulated LAN (`soak --lan`): each host in a network namespace, its uplink shaped with tbf.
/// Needs root (CI runs as root); skipped without it.
final class LANTests: ChannelTestCase {
    func testASlowRelayThatDeclaresNothingEndsHoldingOnlyWhatItCanSendAndPlayersMissNothing() throws {
        guard geteuid() == 0 else { throw XCTSkip("an emulated LAN needs root (network namespaces and tc)") }
        // Root in a sandbox that forbids namespaces cannot run it either: say so rather than fail.
        let probe = try Proc("/usr/sbin/ip", ["netns", "add", "lsp2p-probe-\(getpid())"], in: dir, name: "probe")
        guard probe.wait() == 0 else { throw XCTSkip("network namespaces are not allowed here: \(probe.stderr)") }
        XCTAssertEqual(try Proc("/usr/sbin/ip", ["netns", "del", "lsp2p-probe-\(getpid())"], in: dir, name: "unprobe").wait(), 0)
        let out = dir.appendingPathComponent("lan")
        // The slow relay (0.4 streams: one unit of four) joins first, so the next joiners ask it for what the origin
        // has no room for; two fast relays follow; the players come once the mesh has settled.
        let soak = try Proc("lsp2p-relay", ["soak", "--lan", "--input", Media.sample, "--relays", "3", "--players", "2",
                                            "--uplink-dist", "0.4x,4x,4x,2x,2x", "--declared", "none", "--duration", "75",
                                            "--warmup", "20", "--churn", "off", "--min-on-time", "0", "--out", out.path, "--quiet"],
                            in: dir, name: "soak")
        XCTAssertEqual(soak.wait(seconds: 300), 0, soak.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any]
        let hosts = report?["hosts"] as? [[String: Any]] ?? []
        let rate = (report?["scenario"] as? [String: Any])?["stream_rate_bps"] as? Double ?? 0
        XCTAssertGreaterThan(rate, 0)
        guard let slow = hosts.first(where: { $0["role"] as? String == "relay" && ($0["uplink_bps"] as? Double ?? 0) < 0.5 * rate }) else {
            return XCTFail("no slow relay in \(hosts)")
        }
        let canSend = slow["units_it_can_send"] as? Int ?? -1
        XCTAssertEqual(canSend, 1)
        XCTAssertGreaterThan(slow["bytes_sent"] as? Int ?? 0, 100_000, "it fed someone, and so found out what it can send: \(slow)")
        XCTAssertLessThanOrEqual(slow["units_offered"] as? Int ?? .max, canSend, "it offers only what it can send: \(slow)")
        XCTAssertLessThanOrEqual(slow["units_held"] as? Int ?? .max, canSend, "it holds only what it can send: \(slow)")
        let players = report?["players"] as? [[String: Any]] ?? []
        XCTAssertEqual(players.count, 2)
        for player in players {
            let r = player["report"] as? [String: Any] ?? [:]
            XCTAssertGreaterThan(r["chunks_expected"] as? Int ?? 0, 50)
            // Settled: 10 s after a first parent in every substream (parents that cannot keep up let children go, and
            // late ones are left, in those seconds); a chunk missing then is given up a deadline (2 s) later.
            let changes = r["parents"] as? [[String: Any]] ?? []
            guard let fed = changes.first(where: { $0["fed"] as? Int == 4 })?["at_s"] as? Double else {
                XCTFail("\(player["name"] ?? "") never had a parent for every substream: \(r)")
                continue
            }
            let settled = fed + 10
            XCTAssertGreaterThan(r["duration_s"] as? Double ?? 0, settled + 15, "a player plays on long enough after settling")
            // The stop cuts off what is still on its way: holes written out then are the end of the run, not misses.
            let stop = (r["duration_s"] as? Double ?? 0) - 1
            let misses = (r["missing_at_s"] as? [[Double]] ?? []).filter { $0[0] > settled + 2.5 && $0[0] < stop }
            // Known holes (issue 20): a substream without a parent for seconds after a refusal while others have room,
            // and a parent that forwards a few chunks late for seconds before its child moves. Runs show 0-3 chunks
            // missed once settled (of about 250); a mesh that does not find its uplinks misses dozens to hundreds.
            let missed = misses.reduce(0) { $0 + Int($1[1]) }
            XCTAssertLessThanOrEqual(missed, 4, "\(player["name"] ?? "") missed chunks once settled at \(settled) s: \(misses); \(r)")
        }
        // Torn down: no namespace of the run is left.
        let namespaces = try Proc("/usr/sbin/ip", ["netns", "list"], in: dir, name: "netns")
        XCTAssertEqual(namespaces.wait(), 0)
        let left = (try? String(contentsOf: namespaces.stdoutURL, encoding: .utf8)) ?? ""
        XCTAssertFalse(left.contains("lsp2p-\(soak.process.processIdentifier)-"), left)
    }
}
