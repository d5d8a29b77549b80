@testable import ChunkMesh
@testable import MeshCore
import NIOCore
import XCTest

/// Values a hostile peer can put on the wire, one at a time, against the decoders and the core (design §6).
final class HostileInputTests: XCTestCase {
    let signer = OriginSigningKey()

    private func info(_ id: PeerID, delay: Int64 = 0, sched: Int64 = 1_000, units: Int = 8, epoch: UInt64 = 1) -> PeerInfo {
        PeerInfo(id: id, delays: [delay, delay, delay, delay], residualUnits: units, scheduleDelay: sched,
                 ancestors: [[], [], [], []], epoch: epoch)
    }

    private func chunk(_ seq: UInt64, epoch: UInt64 = 1, signed: Bool = true, payload: UInt8 = 0x47) -> Chunk {
        var c = Chunk(seq: seq, epoch: epoch, ingestTime: 1_000_000 + Int64(seq % 1_000_000) * 200_000, pts: 0, duration: 200_000,
                      flags: seq % 10 == 0 ? .randomAccess : [], payload: ByteBuffer(bytes: [UInt8](repeating: payload, count: 188)))
        if signed { signer.sign(&c) }
        return c
    }

    /// A joiner "me" whose bootstrap "o" is the origin and has given it all four substreams.
    private func fedJoiner(verifier: OriginPublicKey? = nil) -> MeshPeer {
        var config = MeshPeerConfig(me: "me:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 4, scheduleDelay: 1_000, seed: 1)
        config.epoch = 1
        config.verifier = verifier
        var peer = MeshPeer(config: config)
        var now: Int64 = 1_000_000
        _ = peer.handle(.start, now: now)
        _ = peer.handle(.connected("o:1"), now: now)
        _ = peer.handle(.originIs("o:1"), now: now)
        now += 1_000
        let asked = peer.handle(.message(from: "o:1", .announce(info("o:1"), wantPeers: false)), now: now)
        XCTAssertTrue(asked.contains { if case .send("o:1", .subscribe) = $0 { return true }; return false }, "\(asked)")
        _ = peer.handle(.message(from: "o:1", .accept([0, 1, 2, 3])), now: now + 1_000)
        XCTAssertEqual(peer.parents.count, 4)
        _ = peer.handle(.connected("x:1"), now: now + 2_000)
        return peer
    }

    private func delivered(_ actions: [MeshAction]) -> [UInt64] {
        actions.compactMap { if case .deliver(let c) = $0 { return c.seq }; return nil }
    }

    // MARK: decoding

    func testOutOfRangeValuesAreRejectedWhereTheyAreDecoded() {
        func encoded(_ message: WireMeshMessage) -> ByteBuffer {
            var out = ByteBuffer()
            out.writeInteger(UInt8(6))
            message.write(to: &out)
            return out
        }
        // The writer clamps what it sends, so hostile values are written by hand.
        func announce(delay: Int64, sched: Int64, substreams: UInt8 = 1, ancestors: UInt8 = 0) -> ByteBuffer {
            var out = ByteBuffer(bytes: [6, 1, 0]) // mesh, announce, wantPeers no
            out.writeInteger(UInt8(3)); out.writeString("x:1")
            out.writeInteger(UInt64(1)); out.writeInteger(UInt16(1)); out.writeInteger(sched)
            out.writeInteger(substreams)
            for _ in 0..<substreams {
                out.writeInteger(delay)
                out.writeInteger(ancestors)
                for _ in 0..<ancestors { out.writeInteger(UInt8(1)); out.writeString("a") }
            }
            return out
        }
        XCTAssertNoThrow(try Message.decode(announce(delay: 5_000, sched: 1_000)))
        // A record naming more ancestors than a few tens of KiB hold, and an id that is not HOST:PORT.
        XCTAssertThrowsError(try Message.decode(announce(delay: 0, sched: 0, substreams: 8, ancestors: 64)))
        var notAnAddress = ByteBuffer(bytes: [6, 1, 0, 1])
        notAnAddress.writeString("x"); notAnAddress.writeInteger(UInt64(1)); notAnAddress.writeInteger(UInt16(1))
        notAnAddress.writeInteger(Int64(0)); notAnAddress.writeInteger(UInt8(0))
        XCTAssertThrowsError(try Message.decode(notAnAddress))
        XCTAssertNoThrow(try Message.decode(announce(delay: -1, sched: 0)))
        for bad in [announce(delay: .max, sched: 1_000), announce(delay: 1_000, sched: .max), announce(delay: -2, sched: 0),
                    announce(delay: 60_000_001, sched: 0), announce(delay: 0, sched: -1), announce(delay: 0, sched: 0, substreams: 65),
                    announce(delay: 0, sched: 0, ancestors: 65)] {
            XCTAssertThrowsError(try Message.decode(bad)) { XCTAssertTrue($0 is WireError, "\($0)") }
        }
        var peers = ByteBuffer(bytes: [6, 2, 65]) // 65 entries: more than a list may hold
        XCTAssertThrowsError(try Message.decode(peers))
        peers = encoded(.subscribe([0, 1], fromSeq: 0))
        peers.setInteger(UInt8(200), at: peers.readerIndex + 3) // substream 200
        XCTAssertThrowsError(try Message.decode(peers))
        // Welcome: a negative clock, a rate past 10 Gbit/s, more substreams than a record may carry, or no k at all.
        func welcome(clock: Int64 = 1, rate: Int64 = 1, k: [UInt8] = [4]) -> ByteBuffer {
            var w = ByteBuffer(bytes: [1])
            w.writeInteger(clock); w.writeInteger(rate); w.writeBytes([0, 0] + k)
            return w
        }
        XCTAssertNoThrow(try Message.decode(welcome()))
        XCTAssertNoThrow(try Message.decode(welcome(k: [0])), "0: a relay that does not know k yet")
        for bad in [welcome(clock: -1), welcome(rate: -1), welcome(rate: 20_000_000_000), welcome(k: [65]), welcome(k: [])] {
            XCTAssertThrowsError(try Message.decode(bad)) { XCTAssertTrue($0 is WireError, "\($0)") }
        }
        // A chunk whose duration is 100 s, whose ingest time is before 1970, or whose seq leaves no room to count on.
        for (seq, ingest, duration) in [(UInt64(1), Int64(1), Int64(100_000_000)), (1, -5, 200_000), (.max - 3, 1, 200_000)] {
            var c = ByteBuffer(bytes: [2])
            c.writeInteger(seq); c.writeInteger(UInt64(1)); c.writeInteger(ingest); c.writeInteger(Int64(0))
            c.writeInteger(duration); c.writeInteger(UInt8(0)); c.writeRepeatingByte(0, count: 64)
            XCTAssertThrowsError(try Message.decode(c))
        }
    }

    func testHandshakeFramesAreSmallUntilTheKeyIsProven() throws {
        let limit = FrameLimit(WireLimits.handshakeFrame)
        var decoder = FrameDecoder(limit: limit)
        var header = ByteBuffer(bytes: Frame.header(type: .sealed, length: 8 << 20))
        XCTAssertThrowsError(try decoder.decode(buffer: &header)) {
            XCTAssertEqual($0 as? WireError, .frameTooLarge(length: 8 << 20, limit: WireLimits.handshakeFrame))
        }
        limit.value = Frame.defaultMaxPayload
        var decoder2 = FrameDecoder(limit: limit)
        header = ByteBuffer(bytes: Frame.header(type: .sealed, length: 8 << 20))
        XCTAssertNil(try decoder2.decode(buffer: &header), "past the handshake a large frame waits for its bytes")
    }

    // MARK: the core

    func testNoPeerGivenValueTrapsTheCore() {
        // Values the decoder would refuse, handed to the core directly: sums saturate, nothing traps.
        var peer = fedJoiner()
        let huge = PeerInfo(id: "h:1", delays: [.max, .max - 1, nil, .max], residualUnits: .max, scheduleDelay: .max,
                            ancestors: [[], [], [], []], epoch: .max)
        _ = peer.handle(.message(from: "x:1", .announce(info("x:1", delay: .max, sched: .max), wantPeers: true)), now: 3_000_000)
        _ = peer.handle(.linkDelay("x:1", .max), now: 3_000_001)
        _ = peer.handle(.tick, now: 3_100_000)
        _ = peer.handle(.message(from: "o:1", .peers([huge])), now: 3_200_000) // the answer to the ask of the link's start
        _ = peer.handle(.message(from: "o:1", .announce(info("o:1", delay: .max, sched: .max, units: .max, epoch: .max), wantPeers: false)),
                        now: 3_300_000)
        XCTAssertEqual(peer.delay(of: 0), .max, "a saturated delay, not a trap")
        for t in 0..<80 { _ = peer.handle(.tick, now: 3_400_000 + Int64(t) * 100_000) }
        _ = peer.handle(.message(from: "x:1", .subscribe([0, 1, 2, 3], fromSeq: .max)), now: 12_000_000)
        _ = peer.handle(.message(from: "x:1", .repair(.max)), now: 12_000_001)
        _ = peer.handle(.chunk(from: "o:1", chunk(.max - 1)), now: 12_000_002)

        // A joiner whose bootstrap hands it such an entry (the crash the issue reports).
        var joiner = MeshPeer(config: MeshPeerConfig(me: "j:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 0, scheduleDelay: 1_000, seed: 2))
        _ = joiner.handle(.start, now: 0)
        _ = joiner.handle(.connected("o:1"), now: 0) // asks the bootstrap for peers
        let out = joiner.handle(.message(from: "o:1", .peers([huge, info("z:1", delay: .max - 10, sched: .max)])), now: 1)
        XCTAssertTrue(out.contains { if case .connect = $0 { return true }; return false }, "it still chooses: \(out)")
        for t in 0..<30 { _ = joiner.handle(.tick, now: Int64(t) * 100_000) }
    }

    func testChunksAreTakenOnlyFromTheirParentOrAnAskedRepairWithinTheWindow() {
        var peer = fedJoiner()
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "x:1", chunk(0)), now: 3_000_000)), [], "x is no parent")
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(0)), now: 3_000_001)), [0])
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(1)), now: 3_000_002)), [1])
        // Far ahead of the newest: not a chunk of the present.
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(1 + 10_000)), now: 3_000_003)), [])
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(.max)), now: 3_000_004)), [])
        XCTAssertEqual(peer.highestSeq, 1)
        // The origin takes no chunk from anyone.
        var origin = MeshPeer(config: MeshPeerConfig(me: "o:1", isOrigin: true, bootstrap: nil, capacityUnits: 8, scheduleDelay: 1_000, seed: 3))
        _ = origin.handle(.connected("x:1"), now: 0)
        XCTAssertEqual(delivered(origin.handle(.chunk(from: "x:1", chunk(0)), now: 1)), [])
    }

    /// A substream named twice in one subscribe is refused whole: each copy was weighed on its own, and at a full
    /// origin each took a unit from another child.
    func testASubscribeNamingASubstreamTwiceIsRefused() {
        var origin = MeshPeer(config: MeshPeerConfig(me: "o:1", isOrigin: true, bootstrap: nil, capacityUnits: 8, scheduleDelay: 1_000, seed: 3))
        _ = origin.handle(.connected("x:1"), now: 0)
        let answer = origin.handle(.message(from: "x:1", .subscribe([0, 0, 0], fromSeq: 0)), now: 1)
        XCTAssertTrue(answer.contains(.send("x:1", .refuse([0, 0, 0]))), "\(answer)")
        XCTAssertEqual(origin.usedUnits, 0)
        _ = origin.handle(.message(from: "x:1", .subscribe([0], fromSeq: 0)), now: 2)
        XCTAssertEqual(origin.usedUnits, 1, "once is fine")
    }

    func testAForgedChunkIsDroppedAndItsSenderCutOff() {
        var peer = fedJoiner(verifier: signer.publicKey)
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(0)), now: 3_000_000)), [0])
        var forged = chunk(1)
        forged.payload = ByteBuffer(bytes: [UInt8](repeating: 0x48, count: 188)) // same header, same signature
        // The parent of substream 1 is o in this set-up; forged chunks from any parent are refused.
        let out = peer.handle(.chunk(from: "o:1", forged), now: 3_000_001)
        XCTAssertEqual(delivered(out), [])
        XCTAssertTrue(out.contains(.disconnect("o:1")), "\(out)")
        XCTAssertTrue(peer.parents.isEmpty)
        var unsigned = MeshPeer(config: {
            var c = MeshPeerConfig(me: "u:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 0, scheduleDelay: 1_000, seed: 4)
            c.verifier = signer.publicKey
            return c
        }())
        _ = unsigned.handle(.connected("o:1"), now: 0)
        _ = unsigned.handle(.message(from: "o:1", .announce(info("o:1"), wantPeers: false)), now: 1)
        _ = unsigned.handle(.message(from: "o:1", .accept([0, 1, 2, 3])), now: 2)
        XCTAssertEqual(delivered(unsigned.handle(.chunk(from: "o:1", chunk(0, signed: false)), now: 3)), [])
    }

    func testANewEpochIsBelievedOnlyFromASignedChunk() {
        var peer = fedJoiner(verifier: signer.publicKey)
        _ = peer.handle(.chunk(from: "o:1", chunk(0)), now: 3_000_000)
        _ = peer.handle(.message(from: "x:1", .announce(info("x:1", epoch: .max), wantPeers: false)), now: 3_000_001)
        XCTAssertEqual(peer.epoch, 1, "an announce is not proof of a restart")
        XCTAssertEqual(peer.parents.count, 4)
        var second = peer
        let out = second.handle(.chunk(from: "o:1", chunk(0, epoch: 9, signed: false)), now: 3_000_002)
        XCTAssertEqual(delivered(out), [])
        XCTAssertTrue(out.contains(.disconnect("o:1")))
        XCTAssertEqual(second.epoch, 1, "nor is an unsigned chunk")
        XCTAssertEqual(delivered(peer.handle(.chunk(from: "o:1", chunk(0, epoch: 9)), now: 3_000_003)), [0])
        XCTAssertEqual(peer.epoch, 9)
    }

    func testHearsayIsTakenOnlyWhenAskedAndIsBounded() {
        var peer = MeshPeer(config: MeshPeerConfig(me: "me:1", isOrigin: false, bootstrap: "x:1", capacityUnits: 4, scheduleDelay: 1_000, seed: 1))
        XCTAssertEqual(peer.handle(.start, now: 0), [.connect("x:1")])
        // The link it opened to its bootstrap asks for x's peers, once.
        let hello = peer.handle(.connected("x:1"), now: 1)
        XCTAssertTrue(hello.contains { if case .send("x:1", .announce(_, wantPeers: true)) = $0 { return true }; return false }, "\(hello)")
        _ = peer.handle(.message(from: "x:1", .announce(info("x:1"), wantPeers: false)), now: 3_000_000)
        var cut = false
        for round in 0..<50 {
            let out = peer.handle(.message(from: "x:1", .peers((0..<64).map { info("f\(round)-\($0):1") })), now: 3_000_001 + Int64(round))
            if !cut, out.contains(.disconnect("x:1")) {
                cut = true
                XCTAssertEqual(round, 1 + MeshPeer.maxUnaskedPeers, "the answer, then the unasked lists it may send")
            }
        }
        XCTAssertTrue(cut, "a peer that keeps sending unasked lists loses its link")
        XCTAssertEqual(peer.knownCount, Membership.sampleSize + 1,
                       "x's one answer, cut to an honest answer's length; the unasked rest is dropped, and so is x")
        XCTAssertEqual(peer.hearsayCount, Membership.sampleSize + 1)
    }

    func testALinkTheOtherSideOpenedAsksItForNothing() {
        // A joiner or a prober at the other end has little to tell, and a busy peer would answer every one of them.
        var peer = fedJoiner()
        let hello = peer.handle(.connected("y:1"), now: 3_000_000)
        XCTAssertTrue(hello.contains { if case .send("y:1", .announce(_, wantPeers: false)) = $0 { return true }; return false }, "\(hello)")
        let unasked = peer.handle(.message(from: "y:1", .peers([info("z:1")])), now: 3_000_001)
        XCTAssertFalse(unasked.contains { if case .connect = $0 { return true }; return false })
        XCTAssertEqual(peer.knownCount, 1, "only o: y's list was not asked for")
    }

    func testRepeatedSubscribesSendEachChunkOnceAndRepairsStayWithinABudget() {
        var origin = MeshPeer(config: MeshPeerConfig(me: "o:1", isOrigin: true, bootstrap: nil, capacityUnits: 8, scheduleDelay: 1_000, seed: 5))
        for seq in UInt64(0)..<40 { _ = origin.handle(.chunk(from: nil, chunk(seq)), now: Int64(seq) * 200_000) }
        _ = origin.handle(.connected("c:1"), now: 8_000_000)
        var sent: [UInt64] = []
        for round in 0..<20 {
            let now = 8_000_001 + Int64(round) * 1_000
            for message in [MeshMessage.subscribe([0, 1, 2, 3], fromSeq: 1), .unsubscribe([0, 1, 2, 3]), .repair(5), .repair(6)] {
                sent += Self.sentChunks(&origin, origin.handle(.message(from: "c:1", message), now: now), now: now)
            }
        }
        XCTAssertGreaterThan(sent.count, 0)
        XCTAssertLessThanOrEqual(sent.count, 40 + ChildSet.repairBurst, "each chunk once, and a burst of repairs: \(sent)")
        // A peer merely linked, never a child, cannot pull chunks through repairs.
        _ = origin.handle(.connected("d:1"), now: 20_000_000)
        XCTAssertEqual(Self.sentChunks(&origin, origin.handle(.message(from: "d:1", .repair(30)), now: 20_000_001), now: 20_000_001), [])
        // Nor can c (unsubscribed from everything) once its link has carried nothing for the repair horizon; a child
        // that left lately may (its move, or our shed, crossed its ask).
        for seq in UInt64(40)..<80 { _ = origin.handle(.chunk(from: nil, chunk(seq)), now: 20_000_002 + Int64(seq - 40) * 200_000) }
        XCTAssertEqual(Self.sentChunks(&origin, origin.handle(.message(from: "c:1", .repair(60)), now: 29_000_000), now: 29_000_000), [])
        // The budget refills at the stream's pace: a child's repair the driver dropped can be asked for again.
        _ = Self.sentChunks(&origin, origin.handle(.message(from: "c:1", .subscribe([0], fromSeq: 80)), now: 29_000_001), now: 29_000_001)
        let later = Self.sentChunks(&origin, origin.handle(.message(from: "c:1", .repair(60)), now: 29_000_002), now: 29_000_002)
        XCTAssertTrue(later.contains(60), "\(later)")
    }

    /// The seqs of the chunks a peer hands out, told at once that each has left (as a driver on a fast link does),
    /// with what it hands out after each.
    static func sentChunks(_ peer: inout MeshPeer, _ actions: [MeshAction], now: Int64) -> [UInt64] {
        var seqs: [UInt64] = []
        var pending = actions
        while !pending.isEmpty {
            var next: [MeshAction] = []
            for case .sendChunk(let to, let chunk) in pending {
                seqs.append(chunk.seq)
                next += peer.handle(.sent(to, bytes: chunk.wireBytes), now: now)
            }
            pending = next
        }
        return seqs
    }

    func testALowClaimedScheduleDelayEvictsAChildAtMostOnceInAWhile() {
        var parent = MeshPeer(config: MeshPeerConfig(me: "p:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 4, scheduleDelay: 1_000, seed: 6))
        _ = parent.handle(.connected("o:1"), now: 0)
        _ = parent.handle(.message(from: "o:1", .announce(info("o:1"), wantPeers: false)), now: 1)
        _ = parent.handle(.message(from: "o:1", .accept([0, 1, 2, 3])), now: 2)
        _ = parent.handle(.connected("honest:1"), now: 3)
        _ = parent.handle(.message(from: "honest:1", .announce(info("honest:1", delay: 5_000, sched: 10_000, units: 0), wantPeers: false)), now: 4)
        _ = parent.handle(.message(from: "honest:1", .subscribe([0, 1, 2, 3], fromSeq: 0)), now: 5)
        XCTAssertEqual(parent.children["honest:1"], [0, 1, 2, 3])
        var evictions = 0
        for liar in 0..<6 {
            let id: PeerID = "liar\(liar):1"
            _ = parent.handle(.connected(id), now: 10 + Int64(liar))
            _ = parent.handle(.message(from: id, .announce(info(id, sched: 1, units: 8), wantPeers: false)), now: 20 + Int64(liar))
            let out = parent.handle(.message(from: id, .subscribe([liar % 4], fromSeq: 0)), now: 30 + Int64(liar))
            evictions += out.filter { $0 == .send("honest:1", .refuse([liar % 4])) }.count
        }
        XCTAssertEqual(evictions, 1, "the honest child lost one unit, not all four")
    }

    /// lsp2p-sim check, seeds 57, 150, 188 (50 peers): a viewer that retired (its upload budget spent) held the
    /// origin's only unit of a substream, and the origin, which never gives a substream's last unit away, refused every
    /// relay that asked: the whole mesh went without that substream. Retired, a peer says it uploads nothing, and a
    /// relay asking takes its place at once, evicted lately or not.
    func testARetiredViewerGivesUpTheOriginsUnitsToRelaysThatAsk() {
        var origin = MeshPeer(config: MeshPeerConfig(me: "o:1", isOrigin: true, bootstrap: nil, capacityUnits: 4, scheduleDelay: 1_000, seed: 8))
        var viewer = MeshPeer(config: MeshPeerConfig(me: "v:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 2, scheduleDelay: 50_000, seed: 9))
        _ = origin.handle(.start, now: 0)
        _ = origin.handle(.connected("v:1"), now: 1)
        _ = origin.handle(.message(from: "v:1", .announce(viewer.info, wantPeers: false)), now: 2)
        _ = origin.handle(.message(from: "v:1", .subscribe([0, 1, 2, 3], fromSeq: 0)), now: 3)
        XCTAssertEqual(origin.children["v:1"], [0, 1, 2, 3], "the origin's every unit")
        _ = viewer.handle(.retire, now: 4)
        _ = origin.handle(.message(from: "v:1", .announce(viewer.info, wantPeers: false)), now: 5)
        for (i, s) in [2, 3].enumerated() {
            // Relays weaker than the viewer was: only what it says now (nothing) lets them in; the second comes
            // while the viewer is still within its protection from the first eviction.
            let relay: PeerID = "r\(i):1"
            _ = origin.handle(.connected(relay), now: 10 + Int64(i))
            _ = origin.handle(.message(from: relay, .announce(info(relay, delay: 5_000, sched: 100_000, units: 4), wantPeers: false)), now: 20 + Int64(i))
            let out = origin.handle(.message(from: relay, .subscribe([s], fromSeq: 0)), now: 30 + Int64(i))
            XCTAssertTrue(out.contains(.send(relay, .accept([s]))), "relay \(i): \(out)")
            XCTAssertTrue(out.contains(.send("v:1", .refuse([s]))), "relay \(i): \(out)")
        }
        XCTAssertEqual(origin.children["v:1"], [0, 1])
    }

    /// Issue 20: links that announce and then do nothing kept every joiner out of the origin (past `maxLinks` idle
    /// links the newcomer was let go at its announce, and the subscribe that followed was lost). A link idle past
    /// `idleGrace` goes instead; while every idle link is young (a flash crowd still asking), the newcomer is
    /// answered and let go as before.
    func testLinksHeldIdleCannotKeepAJoinerOut() {
        var config = MeshPeerConfig(me: "o:1", isOrigin: true, bootstrap: nil, capacityUnits: 8, scheduleDelay: 1_000, seed: 8)
        config.maxLinks = 4
        var origin = MeshPeer(config: config)
        _ = origin.handle(.start, now: 0)
        for i in 0..<4 {
            let id: PeerID = "idle\(i):1"
            _ = origin.handle(.connected(id), now: 1)
            _ = origin.handle(.message(from: id, .announce(info(id, delay: 5_000, units: 4), wantPeers: false)), now: 2)
        }
        let disconnects = { (out: [MeshAction]) in out.compactMap { if case .disconnect(let p) = $0 { return p }; return nil } }
        _ = origin.handle(.connected("early:1"), now: 10)
        let early = origin.handle(.message(from: "early:1", .announce(info("early:1", delay: 5_000, units: 4), wantPeers: true)), now: 11)
        XCTAssertEqual(disconnects(early), ["early:1"], "every idle link is young: the newcomer is answered and let go")
        var now: Int64 = 100
        while now < MeshPeer.idleGrace + 2_000_000 {
            XCTAssertEqual(disconnects(origin.handle(.tick, now: now)), [], "at \(now): idle links are closed only after 20 s")
            now += 100_000
        }
        _ = origin.handle(.connected("joiner:1"), now: now)
        let answer = origin.handle(.message(from: "joiner:1", .announce(info("joiner:1", delay: 5_000, units: 4), wantPeers: true)), now: now + 1)
        XCTAssertEqual(disconnects(answer).count, 1, "\(answer)")
        XCTAssertTrue(disconnects(answer).allSatisfy { ["idle0:1", "idle1:1", "idle2:1", "idle3:1"].contains($0) }, "an idle link goes for the newcomer")
        let yes = origin.handle(.message(from: "joiner:1", .subscribe([0, 1], fromSeq: 0)), now: now + 2)
        XCTAssertTrue(yes.contains(.send("joiner:1", .accept([0, 1]))), "\(yes)")
    }

    func testTheOriginIsKnownByItsKeyNotByADelayOfZero() {
        // A peer that claims delay 0 everywhere and then forwards nothing is punished like any other.
        var peer = MeshPeer(config: MeshPeerConfig(me: "me:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 0, scheduleDelay: 1_000, seed: 7))
        _ = peer.handle(.start, now: 0)
        _ = peer.handle(.connected("o:1"), now: 0)
        _ = peer.handle(.connected("fake:1"), now: 0)
        _ = peer.handle(.message(from: "fake:1", .announce(info("fake:1", delay: 0, sched: 1, units: 64), wantPeers: false)), now: 1)
        _ = peer.handle(.message(from: "fake:1", .accept([0, 1, 2, 3])), now: 2)
        XCTAssertEqual(Set(peer.parents.values), ["fake:1"])
        for t in 0..<40 { _ = peer.handle(.tick, now: 100_000 * Int64(t + 1)) }
        XCTAssertFalse(peer.parents.values.contains("fake:1"), "a mute parent is dropped")
        let named = peer.debugState { $0 == "fake:1" ? "fake:1" : "\($0)" }
        XCTAssertTrue(named.contains("avoid [\"fake:1\"]"), named)
    }

    // MARK: playout

    func testThePlayoutBufferSkipsAGapInOneStepAndRefusesTheFarFuture() {
        var buffer = PlayoutBuffer(playoutDelay: 2_000_000)
        XCTAssertEqual(buffer.receive(chunk(0), now: 0), .onTime)
        XCTAssertEqual(buffer.receive(chunk(UInt64.max - 1), now: 0), .tooFarAhead)
        XCTAssertEqual(buffer.receive(chunk(3_000), now: 0), .onTime)
        var late = chunk(3_001)
        late.ingestTime = .max // a deadline past the end of time saturates
        XCTAssertEqual(buffer.receive(late, now: .max), .onTime)
        let out = buffer.pull(now: .max)
        XCTAssertEqual(out.count, 4) // 0, the gap 1...2999 at once, 3000, 3001
        XCTAssertEqual(out[1], .skipped(1...2_999))
        XCTAssertEqual(buffer.stats.missing, 2_999)
    }
}
