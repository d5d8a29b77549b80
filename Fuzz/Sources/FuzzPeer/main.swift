import MeshCore
import FuzzDriver
import NIOCore

/// A joiner fed by its bootstrap, with two more linked peers and a child. The input is a script of steps, each
/// `who(1) what(1) length(2) bytes…`: a message from one of the peers (decoded as a sealed frame's content would be),
/// a tick, a link event, a measured delay, or a retirement (a budget spent) with fuzzed values. The core must never trap.
/// Numbered as `MeshNode` numbers peers: a name from the wire gets a number from its table.
nonisolated(unsafe) var names = PeerNames()
let peers: [PeerID] = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"].map { names.id($0) }
let signer = OriginSigningKey()

func freshPeer() -> (MeshPeer, Int64) {
    var config = MeshPeerConfig(me: names.id("127.0.0.1:7100"), isOrigin: false, bootstrap: peers[0], capacityUnits: 4, scheduleDelay: 1_000, seed: 1)
    config.epoch = 1
    config.verifier = signer.publicKey
    var peer = MeshPeer(config: config)
    var now: Int64 = 1_000_000
    _ = peer.handle(.start, now: now)
    for p in peers { _ = peer.handle(.connected(p), now: now) }
    _ = peer.handle(.originIs(peers[0]), now: now)
    let origin = PeerInfo(id: peers[0], delays: [0, 0, 0, 0], residualUnits: 8, scheduleDelay: 1_000, ancestors: [[], [], [], []], epoch: 1)
    _ = peer.handle(.message(from: peers[0], .announce(origin, wantPeers: false)), now: now)
    _ = peer.handle(.message(from: peers[0], .accept([0, 1, 2, 3])), now: now)
    for seq in UInt64(0)..<8 {
        var chunk = Chunk(seq: seq, epoch: 1, ingestTime: now, pts: 0, duration: 200_000, flags: seq == 0 ? .randomAccess : [],
                          payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 188)))
        signer.sign(&chunk)
        now += 50_000
        _ = peer.handle(.chunk(from: peers[0], chunk), now: now)
    }
    _ = peer.handle(.message(from: peers[3], .subscribe([0, 1], fromSeq: 0)), now: now)
    return (peer, now)
}

func fuzzPeer(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    var (peer, now) = freshPeer()
    while let who = input.readInteger(as: UInt8.self), let what = input.readInteger(as: UInt8.self),
          let length = input.readInteger(as: UInt16.self) {
        let from = peers[Int(who) % peers.count]
        let body = input.readSlice(length: min(Int(length), input.readableBytes)) ?? ByteBuffer()
        now += Int64(what & 0x0F) * 37_000
        let event: MeshEvent
        switch what >> 4 {
        case 0, 1, 2, 3, 4, 5, 6, 7:
            guard let message = try? Message.decode(body) else { continue }
            switch message {
            case .mesh(let m): event = .message(from: from, m.renamed { names.id($0) })
            case .chunk(let c): event = .chunk(from: from, c)
            // What `MeshNode` makes of a bootstrap's welcome.
            case .welcome(let w): event = .stream(rate: w.streamRate, substreams: w.substreams)
            default: continue
            }
        case 8, 9: event = .tick
        case 10: event = .linkDelay(from, body.getInteger(at: body.readerIndex, as: Int64.self) ?? 0)
        case 11: event = .disconnected(from)
        case 12: event = .connected(from)
        case 13: event = .misbehaved(from)
        case 14: event = .setCapacity(Int(body.getInteger(at: body.readerIndex, as: Int16.self) ?? 0))
        case 15 where what & 0x03 == 1: event = .retire
        case 15 where what & 0x03 == 2: event = .shedChildren
        default: event = .renamed(from: from, to: peers[Int(what) % peers.count])
        }
        _ = peer.handle(event, now: now)
    }
    for _ in 0..<20 {
        now += 100_000
        _ = peer.handle(.tick, now: now)
    }
    return 0
}

runFuzzer { fuzzPeer($0, $1) }
