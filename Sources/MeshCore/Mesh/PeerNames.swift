/// A peer's name in the mesh: the address it listens on, `HOST:PORT`. On the wire and in what a node tells its
/// owner; the core knows the peer by number (`PeerID`).
public typealias PeerName = String

/// A peer as the mesh core knows it: a number for its name (`HOST:PORT`), given by its driver's `PeerNames`
/// (design §7: the core hashes, compares and copies numbers, never strings). Only numbers from one table mean the
/// same peer; their order is arbitrary but fixed, which is all the core needs of it (determinism).
public struct PeerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let number: UInt64

    public init(_ number: UInt64) { self.number = number }

    public static func < (a: PeerID, b: PeerID) -> Bool { a.number < b.number }
    public var description: String { "#\(number)" }

    public func hash(into hasher: inout Hasher) { hasher.combine(number) }
    /// A dictionary keyed by peers mixes the number with the table's seed (SplitMix64's finalizer, a few
    /// instructions) instead of running SipHash on it: a number already is a keyed hash of the name, with a random
    /// key at a node, so no peer can choose numbers that pile into one bucket (this rests on the key staying secret:
    /// numbers never go on the wire). SipHash here was 15 % of the simulator's instructions.
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: SplitMixRandom.mix(number ^ UInt64(truncatingIfNeeded: seed)))
    }
}

/// A chunk's seq as a key of the core's tables, hashed as `PeerID` is (mixed with the table's seed, no SipHash: that
/// was a tenth of the simulator's time). Seqs come from the wire, but a table's seed is not known outside the
/// process, and the tables that hold seqs are bounded by the window.
struct SeqKey: Hashable, Comparable {
    let seq: UInt64
    init(_ seq: UInt64) { self.seq = seq }
    static func < (a: SeqKey, b: SeqKey) -> Bool { a.seq < b.seq }
    func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: SplitMixRandom.mix(seq ^ UInt64(truncatingIfNeeded: seed))) }
}

/// The names of the peers a driver hands its core, and their numbers (`PeerID`). A name's number is a keyed hash of
/// it (the next free one in the rare case of a clash), so a name forgotten and met again gets its number back.
/// Names come from the wire, so the table is kept to what the core still refers to (`keep(only:)`). A node keys its
/// table at random, so no peer can choose a name to clash with another's; the simulator keys it with 0, so that
/// its numbers are the same from run to run (`number(of:key:)`).
public struct PeerNames: Sendable {
    private var numbers: [String: PeerID] = [:]
    private var names: [PeerID: String] = [:]
    public let key: UInt64

    public init(key: UInt64 = 0) { self.key = key }

    public var count: Int { names.count }

    /// The number of a name, given now if it has none.
    public mutating func id(_ name: String) -> PeerID {
        if let id = numbers[name] { return id }
        var id = PeerID(Self.number(of: name, key: key))
        while names[id] != nil { id = PeerID(id.number &+ 1) }
        numbers[name] = id
        names[id] = name
        return id
    }

    /// A name's number in a table keyed with `key`, unless it clashes there with a name met before.
    public static func number(of name: String, key: UInt64) -> UInt64 {
        // FNV-1a over the key and the name, then SplitMix64's finalizer to spread it.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in withUnsafeBytes(of: key.littleEndian, Array.init) + Array(name.utf8) {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return SplitMixRandom.mix(h)
    }

    /// The number of a name met before, if it still has one.
    public func existing(_ name: String) -> PeerID? { numbers[name] }

    /// The name of a number this table gave and still keeps.
    public func name(_ id: PeerID) -> String? { names[id] }

    /// A name for logs and reports, the number if it is forgotten.
    public func describe(_ id: PeerID) -> String { names[id] ?? id.description }

    /// The name of a number, or `UnknownPeer`.
    public func named(_ id: PeerID) throws -> String {
        guard let name = names[id] else { throw UnknownPeer(id: id) }
        return name
    }

    /// Forgets every name but those of `live`.
    public mutating func keep(only live: Set<PeerID>) {
        guard live.count < names.count else { return }
        names = names.filter { live.contains($0.key) }
        numbers = numbers.filter { live.contains($0.value) }
    }
}

/// A name the table does not hold (it was forgotten: nothing of the core refers to it any more).
public struct UnknownPeer: Error, CustomStringConvertible {
    public let id: PeerID
    public var description: String { "no name for peer \(id)" }
}
