/// Lists the mesh by asking node after node for its view (design §7): no node hears every peer, so `mesh` walks
/// the links from where it starts. Each node answers with its own record and its linked peers' (parents, children,
/// probes); every peer named is asked in turn. Sans-IO: the driver fetches, this keeps the books; peers named
/// by `HOST:PORT` (`lsp2p-relay mesh`) or by number (the simulator).
public struct MeshCrawl<Name: Hashable & Comparable & Sendable> {
    public let start: Name
    /// Most nodes asked: a crawl of a huge mesh stops there (its listing says how many were asked).
    public let limit: Int
    private var records: [Name: PeerInfoOf<Name>] = [:]
    /// Peers whose own record came (it beats what others say of them).
    private var answered: Set<Name> = []
    private var queued: Set<Name> = []
    private var queue: [Name] = []
    private var head = 0
    public private(set) var asked = 0
    public private(set) var failed = 0

    public init(start: Name, limit: Int = 1_000_000) {
        self.start = start
        self.limit = limit
        queued.insert(start)
        queue.append(start)
    }

    /// The next node to ask, nil when none is left (or the limit is reached).
    public mutating func next() -> Name? {
        guard head < queue.count, asked < limit else { return nil }
        asked += 1
        head += 1
        return queue[head - 1]
    }

    /// Records taken from one answer: a node has at most a few dozen links (an honest answer is that long), and a
    /// liar's list of made-up peers must not send the walk dialling for hours.
    public static var maxPerAnswer: Int { 128 }

    /// A node's answer: its own record first, then its linked peers'. A node speaks for itself only under the
    /// name it was asked by (the start is asked by its address, and may call itself otherwise).
    public mutating func answer(from node: Name, view: [PeerInfoOf<Name>]) {
        guard let own = view.first, own.id == node || node == start else { return failure(node) }
        answered.insert(own.id)
        records[own.id] = own
        for info in view.dropFirst().prefix(Self.maxPerAnswer) where info.id != own.id {
            if !answered.contains(info.id), records[info.id] != nil || records.count < 2 * limit {
                records[info.id] = Self.merged(records[info.id], info)
            }
            if queue.count < limit, queued.insert(info.id).inserted { queue.append(info.id) }
        }
    }

    /// A node that could not be asked (gone, behind a NAT): what others said of it stands.
    public mutating func failure(_ node: Name) { failed += 1 }

    /// Every peer heard of: the start first, then by id.
    public var listing: [PeerInfoOf<Name>] {
        let first = records[start].map { [$0] } ?? []
        return first + records.filter { $0.key != start }.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Two hearsay records of one peer: each substream's parent from whichever names one.
    private static func merged(_ a: PeerInfoOf<Name>?, _ b: PeerInfoOf<Name>) -> PeerInfoOf<Name> {
        guard var a else { return b }
        for s in b.ancestors.indices where s < a.ancestors.count && a.ancestors[s].isEmpty && !b.ancestors[s].isEmpty {
            a.ancestors[s] = b.ancestors[s]
            if s < a.delays.count, s < b.delays.count { a.delays[s] = b.delays[s] }
        }
        return a
    }
}
