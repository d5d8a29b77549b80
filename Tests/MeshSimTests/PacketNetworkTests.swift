import MeshSim
import XCTest

final class PacketNetworkTests: XCTestCase {
    private func scenario(nodes: Int = 80, radius: Double = 0.22, energy: Double = 1e9, steps: Int = 60, seed: UInt64 = 7) -> PacketScenario {
        var sc = PacketScenario()
        sc.nodes = nodes
        sc.radius = radius
        sc.energy = energy
        sc.share = 0
        sc.steps = steps
        sc.seed = seed
        sc.receivers = 2
        return sc
    }

    /// Hop counts from `source` over links between active nodes, computed here by breadth-first search.
    private func hops(from source: Int, _ net: PacketNetwork) -> [Int?] {
        var dist = [Int?](repeating: nil, count: net.nodes.count)
        dist[source] = 0
        var queue = [source]
        while !queue.isEmpty {
            let i = queue.removeFirst()
            for j in net.neighbours[i] where dist[j] == nil && net.nodes[j].active {
                dist[j] = dist[i]! + 1
                queue.append(j)
            }
        }
        return dist
    }

    private func assertRoutesAreShortest(_ net: PacketNetwork, file: StaticString = #filePath, line: UInt = #line) {
        for (r, receiver) in net.receivers.enumerated() {
            let expected = hops(from: receiver, net)
            for i in net.nodes.indices where net.nodes[i].active {
                XCTAssertEqual(net.dist[r][i] < 1 << 20 ? net.dist[r][i] : nil, expected[i], "node \(i) to receiver \(receiver)", file: file, line: line)
                if let d = expected[i], d > 0 {
                    let via = net.nextHop[r][i]
                    XCTAssertTrue(net.neighbours[i].contains(via), "node \(i): next hop \(via) is a neighbour", file: file, line: line)
                    XCTAssertEqual(via >= 0 ? expected[via] : nil, d - 1, "node \(i): next hop \(via) is one hop nearer", file: file, line: line)
                }
            }
        }
    }

    func testRoutesAreShortestPaths() {
        let net = PacketNetwork(scenario())
        net.run()
        XCTAssertGreaterThan(net.receivers.count, 1)
        assertRoutesAreShortest(net)
    }

    func testRoutesFollowANodeThatGoesInactive() {
        let net = PacketNetwork(scenario(steps: 120))
        for _ in 0..<40 { net.advance() }
        // The busiest relay next to a receiver goes: the routes through it must change.
        let receiver = net.receivers[0]
        let victim = net.neighbours[receiver].max { a, b in
            (net.nodes.indices.filter { net.nextHop[0][$0] == a }.count, b) < (net.nodes.indices.filter { net.nextHop[0][$0] == b }.count, a)
        }!
        XCTAssertTrue(net.nodes.indices.contains { net.nextHop[0][$0] == victim }, "some route goes through node \(victim)")
        net.retire(victim, reason: "test")
        net.run()
        XCTAssertFalse(net.nodes.indices.contains { net.nodes[$0].active && net.nextHop[0][$0] == victim })
        assertRoutesAreShortest(net)
    }

    func testEnergyNeverGoesNegativeAndInactiveNodesNeverSend() {
        var sc = scenario(nodes: 150, radius: 0.15, energy: 60, steps: 200)
        sc.share = 40
        let net = PacketNetwork(sc)
        net.keepSendLog = true
        net.run()
        let inactive = net.nodes.filter { !$0.active }
        XCTAssertGreaterThan(inactive.filter { $0.inactiveReason == "energy" }.count, 0, "some nodes ran out")
        XCTAssertGreaterThan(inactive.filter { $0.inactiveReason == "share" }.count, 0, "some nodes sent their share")
        for (i, node) in net.nodes.enumerated() {
            XCTAssertGreaterThanOrEqual(node.energy, 0, "node \(i)")
            XCTAssertLessThanOrEqual(node.sent, sc.share, "node \(i)")
        }
        for send in net.sends {
            if let off = net.nodes[send.node].inactiveAt { XCTAssertLessThanOrEqual(send.step, off, "node \(send.node) sent after it went inactive") }
        }
        let used = net.stepsDone.reduce(0) { $0 + $1.energyUsed }
        XCTAssertEqual(used, Double(sc.nodes) * sc.energy - net.nodes.reduce(0) { $0 + $1.energy }, accuracy: 1e-6)
    }

    func testTheSameSeedGivesTheSameNumbers() {
        let sc = scenario(nodes: 300, radius: 0.1, energy: 200, steps: 120)
        let runs = (0..<2).map { _ in PacketNetwork(sc) }
        for net in runs { net.run() }
        XCTAssertEqual(PacketReport(runs[0]).csv, PacketReport(runs[1]).csv)
        XCTAssertGreaterThan(runs[0].totalDelivered, 0)
        var other = sc
        other.seed += 1
        let third = PacketNetwork(other)
        third.run()
        XCTAssertNotEqual(PacketReport(third).csv, PacketReport(runs[0]).csv)
    }
}
