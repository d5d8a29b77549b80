import MeshCore

/// A node's links by peer name, and the rules on them a stranger could otherwise bend: which of two links to one peer
/// stays, which inbound claims are taken, and which renames (a port forward, a NAT) are believed. Generic over the
/// link (a class, or a class-bound protocol such as `Channel`: links are told apart by identity) so its rules are
/// tested without sockets.
struct LinkTable<Link> {
    private struct Entry {
        var link: Link
        var openedByMe: Bool
        /// When it came up: only a link just opened can lose to one the other side opened at once.
        var since: Int64
    }

    /// This node's own name (its advertised `HOST:PORT`).
    var me: PeerName = ""
    /// Most links kept; past it a new inbound link is refused.
    let maxLinks: Int
    /// The bootstrap's name: never taken by a rename.
    let bootstrap: PeerName?
    /// The linked peer that proved it is the origin: an inbound claim never takes its name or replaces its link.
    var originPeer: PeerName?
    private var entries: [PeerName: Entry] = [:]
    /// Each link's name, for what comes back from a link (a write completed).
    private var nameOf: [ObjectIdentifier: PeerName] = [:]
    /// Where to dial a peer known by another name than its address (reached through a port forward).
    private var dialAddresses: [PeerName: PeerName] = [:]

    /// Two peers that dial each other at once see both links come up within this long.
    static var simultaneousDialWindow: Int64 { 3_000_000 }

    init(maxLinks: Int, bootstrap: PeerName?) {
        self.maxLinks = maxLinks
        self.bootstrap = bootstrap
    }

    var count: Int { entries.count }
    var names: Set<PeerName> { Set(entries.keys) }
    var all: [Link] { entries.values.map(\.link) }
    subscript(_ id: PeerName) -> Link? { entries[id]?.link }
    func name(of link: Link) -> PeerName? { nameOf[Self.key(link)] }
    private static func key(_ link: Link) -> ObjectIdentifier { ObjectIdentifier(link as AnyObject) }
    /// Where to dial `id`: the address it was first reached at, if it took another name since.
    func dialAddress(of id: PeerName) -> PeerName { dialAddresses[id] ?? id }

    enum Added {
        case added
        /// Taken in place of this link, which is to be closed.
        case replaced(Link)
        case refused
    }

    /// A link finished its handshake (outbound), or an inbound one named itself. An inbound claim never replaces
    /// a link unless the tie-break says so, never names the origin (which dials no one) or this node, and finds no
    /// room past `maxLinks`. Two peers that dialled each other at once both keep the link the smaller id opened.
    mutating func add(_ link: Link, as id: PeerName, outbound: Bool, now: Int64) -> Added {
        if !outbound {
            guard HostPort(id) != nil, id != me, id != originPeer, entries.count < maxLinks || entries[id] != nil else { return .refused }
        }
        var replaced: Link?
        if let old = entries[id], Self.key(old.link) != Self.key(link) {
            let oldOpener = old.openedByMe ? me : id
            let newOpener = outbound ? me : id
            let justOpened = now - old.since < Self.simultaneousDialWindow
            guard newOpener < oldOpener, justOpened, id != originPeer else { return .refused }
            nameOf.removeValue(forKey: Self.key(old.link))
            replaced = old.link
        }
        entries[id] = Entry(link: link, openedByMe: outbound, since: now)
        nameOf[Self.key(link)] = id
        return replaced.map(Added.replaced) ?? .added
    }

    /// Lets the link to `id` go (the core let the peer go); returns it, to be closed.
    mutating func remove(_ id: PeerName) -> Link? {
        guard let entry = entries.removeValue(forKey: id) else { return nil }
        nameOf.removeValue(forKey: Self.key(entry.link))
        return entry.link
    }

    /// A link closed: true when it was the one `id` had (a link replaced in a tie-break goes unnoticed).
    mutating func down(_ link: Link, id: PeerName?) -> Bool {
        guard let id, let entry = entries[id], Self.key(entry.link) == Self.key(link) else { return false }
        _ = remove(id)
        return true
    }

    /// Every link, let go at once (the node stops).
    mutating func removeAll() -> [Link] {
        defer {
            entries.removeAll()
            nameOf.removeAll()
        }
        return all
    }

    /// The peer dialled as `old` calls itself `new`: the link is the new name's, and the old address is where to
    /// dial it again. Never into the origin's name (unless this is the origin's link), this node's, the
    /// bootstrap's, or a name already reached another way; and a link renames once.
    mutating func rename(_ link: Link, from old: PeerName, to new: PeerName) -> Bool {
        guard let entry = entries[old], Self.key(entry.link) == Self.key(link), entries[new] == nil, HostPort(new) != nil, new != me,
              dialAddresses[old] == nil, new != originPeer || old == originPeer, new != bootstrap, dialAddresses[new] == nil
        else { return false }
        entries.removeValue(forKey: old)
        entries[new] = entry
        nameOf[Self.key(link)] = new
        dialAddresses[new] = old
        if originPeer == old { originPeer = new }
        return true
    }
}

/// What a stranger can hold at a node before it has proved anything: handshakes under way (few at once, fewer from
/// one address) and observers looking in. Each admitted place is given back once.
struct Admission {
    let maxPending: Int
    let maxPendingPerAddress: Int
    let maxObservers: Int
    private(set) var pending = 0
    private var pendingByHost: [String: Int] = [:]
    private(set) var observers = 0

    init(maxPending: Int, maxPendingPerAddress: Int, maxObservers: Int) {
        self.maxPending = maxPending
        self.maxPendingPerAddress = maxPendingPerAddress
        self.maxObservers = maxObservers
    }

    /// Whether a new inbound connection from `host` may start a handshake; `handshakeEnded` gives its place back.
    mutating func admitHandshake(from host: String) -> Bool {
        guard pending < maxPending, pendingByHost[host, default: 0] < maxPendingPerAddress else { return false }
        pending += 1
        pendingByHost[host, default: 0] += 1
        return true
    }

    mutating func handshakeEnded(from host: String) {
        guard let held = pendingByHost[host] else { return }
        pending -= 1
        pendingByHost[host] = held > 1 ? held - 1 : nil
    }

    /// The hosts with handshakes under way (bounded by `maxPending`).
    var hostsPending: Int { pendingByHost.count }

    mutating func admitObserver() -> Bool {
        guard observers < maxObservers else { return false }
        observers += 1
        return true
    }

    mutating func observerLeft() { observers = max(0, observers - 1) }
}
