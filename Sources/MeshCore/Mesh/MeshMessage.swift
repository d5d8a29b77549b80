import NIOCore

/// What a peer tells others about itself: enough to compute its power as a parent, per substream tree. `Name` is
/// how peers are named: `PeerID` in the core (`PeerInfo`), `HOST:PORT` strings on the wire and for observers
/// (`PeerRecord`); the driver turns one into the other (`renamed`).
public struct PeerInfoOf<Name: Hashable & Sendable>: Equatable, Sendable {
    public var id: Name
    /// D_s: its delay from the source in each substream, µs; nil for a substream it does not receive yet.
    public var delays: [Int64?]
    public var residualUnits: Int
    /// sched(p), µs: time to push one chunk of one substream at its uplink.
    public var scheduleDelay: Int64
    /// Its ancestors in each substream's tree, up to the origin: a peer never takes a parent that has it upstream.
    public var ancestors: [[Name]]
    /// The origin run (its `Chunk.epoch`) this peer is on; 0 before it knows.
    public var epoch: UInt64

    public init(id: Name, delays: [Int64?], residualUnits: Int, scheduleDelay: Int64, ancestors: [[Name]], epoch: UInt64 = 0) {
        self.id = id
        self.epoch = epoch
        self.delays = delays
        self.residualUnits = residualUnits
        self.scheduleDelay = scheduleDelay
        self.ancestors = ancestors
    }

    /// The news as told to a peer that is not a child: each substream's parent, not the whole ancestry (design §7:
    /// announces stay small). Only children need the ancestry, for their loop checks; a parent refuses a
    /// subscribe from its own ancestor whatever the asker knew.
    public var brief: Self {
        var copy = self
        copy.ancestors = ancestors.map { Array($0.prefix(1)) }
        return copy
    }

    /// Its peer and every ancestor named.
    func collectPeers(into all: inout Set<Name>) {
        all.insert(id)
        for up in ancestors { all.formUnion(up) }
    }

    /// The same record with every peer named otherwise.
    public func renamed<Other>(_ rename: (Name) throws -> Other) rethrows -> PeerInfoOf<Other> {
        PeerInfoOf<Other>(id: try rename(id), delays: delays, residualUnits: residualUnits, scheduleDelay: scheduleDelay,
                          ancestors: try ancestors.map { try $0.map(rename) }, epoch: epoch)
    }

    /// Wire bytes of this record (the frame's share), with names of these lengths.
    @inlinable
    public func wireSize(nameBytes: (Name) -> Int) -> Int {
        nameBytes(id) + 1 + 8 + 2 + 8 + 1 + delays.count * 9 + ancestors.reduce(0) { $0 + $1.reduce(0) { $0 + nameBytes($1) + 1 } }
    }

    /// Longest ancestry carried per substream; deeper trees than this lose loop protection at their bottom.
    static var maxAncestors: Int { 64 }
    /// Most substreams a stream may be cut into.
    public static var maxSubstreams: Int { 64 }
}

/// A record in the core, peers known by number.
public typealias PeerInfo = PeerInfoOf<PeerID>
/// A record on the wire and for observers, peers known by name (`HOST:PORT`).
public typealias PeerRecord = PeerInfoOf<String>

extension PeerInfoOf where Name == String {
    /// Wire bytes of this record (the frame's share).
    public var wireSize: Int { wireSize { $0.utf8.count } }

    func write(to out: inout ByteBuffer) {
        writeShortString(id, to: &out)
        out.writeInteger(epoch)
        out.writeInteger(UInt16(clamping: residualUnits))
        out.writeInteger(min(max(0, scheduleDelay), WireLimits.maxDelay))
        let kept = delays.prefix(Self.maxSubstreams)
        out.writeInteger(UInt8(kept.count))
        // What a reader takes: at most `maxAncestorNames` in all, so with many substreams each ancestry is cut
        // shorter (its top is the part loop checks need least: the bottom, near this peer, is kept).
        let perSubstream = min(Self.maxAncestors, WireLimits.maxAncestorNames / max(1, kept.count))
        for (i, delay) in kept.enumerated() {
            out.writeInteger(delay.map { min(max(0, $0), WireLimits.maxDelay) } ?? -1)
            let up = (i < ancestors.count ? ancestors[i] : []).prefix(perSubstream)
            out.writeInteger(UInt8(up.count))
            for a in up { writeShortString(a, to: &out) }
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> PeerRecord {
        let id = try readShortString(&buffer)
        guard let epoch = buffer.readInteger(as: UInt64.self), let residual = buffer.readInteger(as: UInt16.self), let sched = buffer.readInteger(as: Int64.self),
              let count = buffer.readInteger(as: UInt8.self)
        else { throw WireError.malformed("peer info truncated") }
        guard (0...WireLimits.maxDelay).contains(sched) else { throw WireError.malformed("schedule delay out of range") }
        guard count <= maxSubstreams else { throw WireError.malformed("\(count) substreams") }
        guard HostPort(id) != nil else { throw WireError.malformed("peer id is not HOST:PORT") }
        var delays: [Int64?] = []
        var ancestors: [[String]] = []
        var names = 0
        for _ in 0..<count {
            guard let delay = buffer.readInteger(as: Int64.self), let n = buffer.readInteger(as: UInt8.self) else {
                throw WireError.malformed("peer info truncated")
            }
            // -1 is "not received"; anything else outside 0-60 s is a lie.
            guard delay == -1 || (0...WireLimits.maxDelay).contains(delay) else { throw WireError.malformed("delay out of range") }
            names += Int(n)
            guard n <= maxAncestors, names <= WireLimits.maxAncestorNames else { throw WireError.malformed("ancestry of \(n)") }
            delays.append(delay < 0 ? nil : delay)
            ancestors.append(try (0..<n).map { _ in try readShortString(&buffer) })
        }
        return PeerRecord(id: id, delays: delays, residualUnits: Int(residual), scheduleDelay: sched, ancestors: ancestors, epoch: epoch)
    }
}

/// The mesh's own messages, carried inside `Message.mesh`; peers named as in `PeerInfoOf`.
public enum MeshMessageOf<Name: Hashable & Sendable>: Equatable, Sendable {
    /// Who I am now; `wantPeers` asks for a `peers` answer (gossip).
    case announce(PeerInfoOf<Name>, wantPeers: Bool)
    case peers([PeerInfoOf<Name>])
    /// Child to parent: send me these substreams, from `fromSeq` on (what you hold of it first).
    case subscribe([Int], fromSeq: UInt64)
    case unsubscribe([Int])
    case accept([Int])
    case refuse([Int])
    /// Send me this chunk if you hold it (repair).
    case repair(UInt64)
    /// I am leaving: move away from me.
    case leaving
    /// From a looking-in client (`lsp2p-relay mesh`), not a peer: what do you know of the mesh?
    case viewRequest
    /// The answer: every peer the origin hears from first hand, itself included.
    case view([PeerInfoOf<Name>])

    /// The same message with every peer named otherwise.
    public func renamed<Other>(_ rename: (Name) throws -> Other) rethrows -> MeshMessageOf<Other> {
        switch self {
        case .announce(let info, let want): .announce(try info.renamed(rename), wantPeers: want)
        case .peers(let list): .peers(try list.map { try $0.renamed(rename) })
        case .view(let list): .view(try list.map { try $0.renamed(rename) })
        case .subscribe(let list, let from): .subscribe(list, fromSeq: from)
        case .unsubscribe(let list): .unsubscribe(list)
        case .accept(let list): .accept(list)
        case .refuse(let list): .refuse(list)
        case .repair(let seq): .repair(seq)
        case .leaving: .leaving
        case .viewRequest: .viewRequest
        }
    }

    /// Wire bytes of the message, without the frame's header, with names of these lengths.
    @inlinable
    public func wireSize(nameBytes: (Name) -> Int) -> Int {
        switch self {
        case .announce(let info, _): 2 + info.wireSize(nameBytes: nameBytes)
        case .peers(let list): 2 + list.reduce(0) { $0 + $1.wireSize(nameBytes: nameBytes) }
        case .view(let list): 3 + list.reduce(0) { $0 + $1.wireSize(nameBytes: nameBytes) }
        case .subscribe(let list, _): 2 + list.count + 8
        case .unsubscribe(let list), .accept(let list), .refuse(let list): 2 + list.count
        case .repair: 9
        case .leaving, .viewRequest: 1
        }
    }
}

/// A message in the core.
public typealias MeshMessage = MeshMessageOf<PeerID>
/// A message on the wire.
public typealias WireMeshMessage = MeshMessageOf<String>

extension MeshMessageOf where Name == String {
    /// Wire bytes of the message, without the frame's header.
    public var wireSize: Int { wireSize { $0.utf8.count } }

    private enum Tag: UInt8 { case announce = 1, peers, subscribe, unsubscribe, accept, refuse, repair, leaving, viewRequest, view }

    package func write(to out: inout ByteBuffer) {
        func substreams(_ tag: Tag, _ list: [Int]) {
            out.writeInteger(tag.rawValue)
            out.writeInteger(UInt8(clamping: list.count))
            for s in list.prefix(255) { out.writeInteger(UInt8(clamping: s)) }
        }
        switch self {
        case .announce(let info, let want):
            out.writeInteger(Tag.announce.rawValue)
            out.writeInteger(UInt8(want ? 1 : 0))
            info.write(to: &out)
        case .peers(let list):
            out.writeInteger(Tag.peers.rawValue)
            let kept = list.prefix(64)
            out.writeInteger(UInt8(kept.count))
            for p in kept { p.write(to: &out) }
        case .subscribe(let list, let from):
            substreams(.subscribe, list)
            out.writeInteger(from)
        case .unsubscribe(let list): substreams(.unsubscribe, list)
        case .accept(let list): substreams(.accept, list)
        case .refuse(let list): substreams(.refuse, list)
        case .repair(let seq):
            out.writeInteger(Tag.repair.rawValue)
            out.writeInteger(seq)
        case .leaving:
            out.writeInteger(Tag.leaving.rawValue)
        case .viewRequest:
            out.writeInteger(Tag.viewRequest.rawValue)
        case .view(let list):
            out.writeInteger(Tag.view.rawValue)
            let kept = list.prefix(Int(UInt16.max))
            out.writeInteger(UInt16(kept.count))
            for p in kept { p.write(to: &out) }
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> WireMeshMessage {
        guard let raw = buffer.readInteger(as: UInt8.self), let tag = Tag(rawValue: raw) else {
            throw WireError.malformed("unknown mesh message")
        }
        func substreams() throws -> [Int] {
            guard let n = buffer.readInteger(as: UInt8.self), n <= PeerRecord.maxSubstreams, let bytes = buffer.readBytes(length: Int(n)) else {
                throw WireError.malformed("substream list truncated")
            }
            guard bytes.allSatisfy({ $0 < PeerRecord.maxSubstreams }) else { throw WireError.malformed("substream out of range") }
            return bytes.map(Int.init)
        }
        switch tag {
        case .announce:
            guard let want = buffer.readInteger(as: UInt8.self) else { throw WireError.malformed("announce truncated") }
            return .announce(try PeerRecord.read(from: &buffer), wantPeers: want != 0)
        case .peers:
            guard let n = buffer.readInteger(as: UInt8.self) else { throw WireError.malformed("peers truncated") }
            guard n <= WireLimits.maxPeers else { throw WireError.malformed("\(n) peers in one list") }
            return .peers(try (0..<n).map { _ in try PeerRecord.read(from: &buffer) })
        case .subscribe:
            let list = try substreams()
            guard let from = buffer.readInteger(as: UInt64.self) else { throw WireError.malformed("subscribe truncated") }
            return .subscribe(list, fromSeq: from)
        case .unsubscribe: return .unsubscribe(try substreams())
        case .accept: return .accept(try substreams())
        case .refuse: return .refuse(try substreams())
        case .repair:
            guard let seq = buffer.readInteger(as: UInt64.self) else { throw WireError.malformed("repair truncated") }
            return .repair(seq)
        case .leaving: return .leaving
        case .viewRequest: return .viewRequest
        case .view:
            guard let n = buffer.readInteger(as: UInt16.self) else { throw WireError.malformed("view truncated") }
            return .view(try (0..<n).map { _ in try PeerRecord.read(from: &buffer) })
        }
    }
}

func writeShortString(_ s: String, to out: inout ByteBuffer) {
    let bytes = Array(s.utf8.prefix(255))
    out.writeInteger(UInt8(bytes.count))
    out.writeBytes(bytes)
}

func readShortString(_ buffer: inout ByteBuffer) throws -> String {
    guard let n = buffer.readInteger(as: UInt8.self), let bytes = buffer.readBytes(length: Int(n)) else {
        throw WireError.malformed("string truncated")
    }
    // Valid UTF-8 only: a name must read back as the bytes it came as.
    let s = String(decoding: bytes, as: UTF8.self)
    guard s.utf8.elementsEqual(bytes) else { throw WireError.malformed("string is not UTF-8") }
    return s
}
