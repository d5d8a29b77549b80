import MeshCore

/// A seeded model of a wide-area network: hosts at random on a plane (a continent, crossed in
/// `crossing` µs one way, corner to corner about 1.4 × that) plus an access delay of each host's last mile.
/// One-way delay between two hosts: both access delays and the distance between them.
public struct WideAreaNetwork: Sendable {
    public struct Host: Sendable {
        public var x: Double
        public var y: Double
        /// µs, one way.
        public var access: Int64
    }

    public private(set) var hosts: [Host] = []
    public let crossing: Int64
    public let access: ClosedRange<Int64>
    private var rng: SplitMixRandom

    public init(seed: UInt64, crossing: Int64 = 60_000, access: ClosedRange<Int64> = 1_000...15_000) {
        self.crossing = crossing
        self.access = access
        rng = SplitMixRandom(seed: seed ^ 0x5157_4E45_5457_4F52)
    }

    /// Places one more host; returns its index.
    @discardableResult
    public mutating func addHost() -> Int {
        hosts.append(Host(x: .random(in: 0..<1, using: &rng), y: .random(in: 0..<1, using: &rng),
                          access: .random(in: access, using: &rng)))
        return hosts.count - 1
    }

    /// One-way delay between two hosts, µs.
    public func delay(_ a: Int, _ b: Int) -> Int64 {
        guard a != b else { return 0 }
        let (p, q) = (hosts[a], hosts[b])
        let dx = p.x - q.x, dy = p.y - q.y
        return p.access + q.access + Int64(((dx * dx + dy * dy).squareRoot() * Double(crossing)).rounded())
    }
}
