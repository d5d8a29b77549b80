import ChunkMesh
import MeshCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LSP2PKit
import Plots
import XCTest

/// `/mesh.svg` and the soak report's drawing: who feeds whom, layered by hops from the origin.
final class MeshPlotTests: XCTestCase {
    /// A mesh of `count` peers and `k` substreams: each peer takes each substream from a random earlier peer
    /// (the origin among them); the last `looking` peers lack a parent in substream 0.
    private func mesh(_ count: Int, k: Int = 4, looking: Int = 0, seed: UInt64 = 1) -> MeshMap {
        var rng = SplitMix(seed)
        var records = [PeerRecord(id: "o:7000", delays: Array(repeating: 0, count: k), residualUnits: 0, scheduleDelay: 1, ancestors: [])]
        var delay: [[Int64]] = [Array(repeating: 0, count: k)]
        for i in 1...count {
            var parents: [[String]] = []
            var delays: [Int64?] = []
            var mine: [Int64] = []
            for s in 0..<k {
                // Parents among the nearer quarter of the peers before: power puts peers close to the source.
                let p = Int(rng.next() % UInt64(max(1, min(i, 1 + i / 4))))
                if s == 0 && i > count - looking {
                    parents.append([])
                    delays.append(nil)
                    mine.append(0)
                    continue
                }
                parents.append([records[p].id])
                let d = delay[p][s] + 5_000 + Int64(rng.next() % 5_000)
                delays.append(d)
                mine.append(d)
            }
            records.append(PeerRecord(id: "10.0.0.\(i):7100", delays: delays, residualUnits: 1, scheduleDelay: 1, ancestors: parents))
            delay.append(mine)
        }
        return MeshMap(records)
    }

    private func parses(_ svg: String) -> Bool { XMLParser(data: Data(svg.utf8)).parse() }

    private func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    func testFiftyPeersAreDrawnOneByOneLayeredByHopsWithAnEdgePerSubstream() throws {
        let map = mesh(50, looking: 2)
        let svg = Plot.mesh(map)
        XCTAssertTrue(parses(svg), "well-formed SVG")
        XCTAssertEqual(count("<circle", in: svg), 51, "every peer and the origin")
        let edges = map.peers.reduce(0) { $0 + $1.substreams.filter { $0.parent != nil }.count }
        XCTAssertEqual(count("<path", in: svg), edges, "one edge per parent link and substream")
        for s in 0..<4 { XCTAssertTrue(svg.contains("stroke=\"\(Plot.palette[s])\" stroke-opacity"), "substream \(s) has its colour") }
        XCTAssertTrue(svg.contains(">origin<"))
        XCTAssertTrue(svg.contains(">hop 1: "), "layers are labelled")
        XCTAssertTrue(svg.contains("looking: 2"), "peers short of a parent have their own column")
        // Children counts: the origin's, as the map counts them, is written next to it.
        let originChildren = map.peers[0].children.count
        XCTAssertTrue(svg.contains("\(map.peers[0].id): 0.0 ms, \(originChildren) children"), "the origin's children in its tooltip")
    }

    func testBeyondFiveHundredPeersTheDrawingIsASummaryByLayer() throws {
        let map = mesh(800)
        let svg = Plot.mesh(map)
        XCTAssertTrue(parses(svg))
        XCTAssertEqual(count("<circle", in: svg), 0, "no peer one by one")
        XCTAssertTrue(svg.contains("800 peers, by layer"))
        let layers = count("<rect x=", in: svg)
        XCTAssertGreaterThan(layers, 2, "a bar per layer")
        XCTAssertTrue(svg.contains("parent links, layer 0 → 1"), "arcs between layers")
        XCTAssertLessThan(svg.utf8.count, 100_000, "a summary stays small: \(svg.utf8.count) bytes")
    }

    func testALoopOfParentsIsDrawnAsLookingNotFollowedForEver() throws {
        // b's parent is c and c's is b, in substream 0: neither reaches the origin.
        let records = [PeerRecord(id: "o:1", delays: [0], residualUnits: 0, scheduleDelay: 1, ancestors: []),
                       PeerRecord(id: "b:1", delays: [1000], residualUnits: 0, scheduleDelay: 1, ancestors: [["c:1"]]),
                       PeerRecord(id: "c:1", delays: [1000], residualUnits: 0, scheduleDelay: 1, ancestors: [["b:1"]])]
        let svg = Plot.mesh(MeshMap(records))
        XCTAssertTrue(parses(svg))
        XCTAssertTrue(svg.contains("looking: 2"), svg)
    }

    /// A viewer can pad a walk (2,000 peers at most) with a chain as long as the walk: each peer's hops are counted once a substream, and
    /// a chain hanging off a loop is looking all along it.
    func testAChainAsLongAsTheWalkIsLayeredByItsHopsAndATailOffALoopIsLooking() throws {
        let k = 4, length = 1_900
        var records = [PeerRecord(id: "o:1", delays: Array(repeating: 0, count: k), residualUnits: 0, scheduleDelay: 1, ancestors: [])]
        for i in 1...length {
            let parent = i == 1 ? "o:1" : "c\(i - 1):1"
            records.append(PeerRecord(id: "c\(i):1", delays: Array(repeating: Int64(i) * 1000, count: k), residualUnits: 0,
                                      scheduleDelay: 1, ancestors: Array(repeating: [parent], count: k)))
        }
        // x and y feed each other; a tail of 5 hangs off y.
        records.append(PeerRecord(id: "x:1", delays: [1000], residualUnits: 0, scheduleDelay: 1, ancestors: [["y:1"]]))
        records.append(PeerRecord(id: "y:1", delays: [1000], residualUnits: 0, scheduleDelay: 1, ancestors: [["x:1"]]))
        for t in 1...5 {
            records.append(PeerRecord(id: "t\(t):1", delays: [1000], residualUnits: 0, scheduleDelay: 1,
                                      ancestors: [[t == 1 ? "y:1" : "t\(t - 1):1"]]))
        }
        let svg = Plot.mesh(MeshMap(records))
        XCTAssertTrue(parses(svg))
        XCTAssertTrue(svg.contains(">hop \(length): 1<"), "the chain's last peer is \(length) hops out")
        XCTAssertFalse(svg.contains(">hop \(length + 1): "))
        XCTAssertTrue(svg.contains("looking: 7"), "the loop and its tail")
    }
}

/// A small seeded generator (SplitMix64).
struct SplitMix {
    private var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
