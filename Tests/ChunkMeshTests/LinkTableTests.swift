@testable import ChunkMesh
@testable import MeshCore
import NIOCore
import XCTest

/// The node's link table and admission: the rules on links that a stranger could otherwise bend, without sockets.
final class LinkTableTests: XCTestCase {
    final class Link {}

    func table(me: PeerName = "10.0.0.5:7000", maxLinks: Int = 4, bootstrap: PeerName? = "10.0.0.1:7000") -> LinkTable<Link> {
        var table = LinkTable<Link>(maxLinks: maxLinks, bootstrap: bootstrap)
        table.me = me
        return table
    }

    func testTwoLinksToOnePeerKeepTheOneTheSmallerIdOpenedAndOnlyAtFirst() {
        var links = table()
        let mine = Link(), theirs = Link()
        // 10.0.0.5 dialled 10.0.0.9 and 10.0.0.9 dialled back at once: the smaller id (this node) opened `mine`.
        XCTAssertEqual(links.add(mine, as: "10.0.0.9:7000", outbound: true, now: 0), .added)
        XCTAssertEqual(links.add(theirs, as: "10.0.0.9:7000", outbound: false, now: 1_000), .refused)
        XCTAssertTrue(links["10.0.0.9:7000"] === mine)
        // Against a smaller id, the link it opened wins, within the window only.
        let first = Link(), second = Link(), late = Link()
        XCTAssertEqual(links.add(first, as: "10.0.0.2:7000", outbound: true, now: 0), .added)
        XCTAssertEqual(links.add(second, as: "10.0.0.2:7000", outbound: false, now: 1_000), .replaced(first))
        XCTAssertTrue(links["10.0.0.2:7000"] === second)
        XCTAssertNil(links.name(of: first), "the replaced link is nobody's")
        XCTAssertEqual(links.name(of: second), "10.0.0.2:7000")
        XCTAssertFalse(links.down(first, id: "10.0.0.2:7000"), "the replaced link closing takes nothing down")
        XCTAssertEqual(links.add(late, as: "10.0.0.2:7000", outbound: false, now: 1_000 + LinkTable<Link>.simultaneousDialWindow), .refused,
                       "a link up for a while is not replaced")
    }

    func testInboundClaimsFindNoRoomPastTheCapAndNeverNameTheOriginOrThisNode() {
        var links = table(maxLinks: 2)
        links.originPeer = "10.0.0.1:7000"
        XCTAssertEqual(links.add(Link(), as: "10.0.0.1:7000", outbound: false, now: 0), .refused, "the origin dials no one")
        XCTAssertEqual(links.add(Link(), as: "10.0.0.5:7000", outbound: false, now: 0), .refused, "this node's own name")
        XCTAssertEqual(links.add(Link(), as: "not an address", outbound: false, now: 0), .refused)
        XCTAssertEqual(links.add(Link(), as: "10.0.0.7:7000", outbound: false, now: 0), .added)
        XCTAssertEqual(links.add(Link(), as: "10.0.0.8:7000", outbound: false, now: 0), .added)
        XCTAssertEqual(links.add(Link(), as: "10.0.0.9:7000", outbound: false, now: 0), .refused, "past maxLinks")
        XCTAssertEqual(links.add(Link(), as: "10.0.0.3:7000", outbound: true, now: 0), .added, "a link this node dials is its choice")
        XCTAssertEqual(links.count, 3)
    }

    func testARenameMovesTheLinkOnceAndNeverOntoANameTaken() throws {
        var links = table()
        let forwarded = Link(), other = Link()
        XCTAssertEqual(links.add(forwarded, as: "10.0.0.20:7000", outbound: true, now: 0), .added)
        XCTAssertEqual(links.add(other, as: "10.0.0.21:7000", outbound: true, now: 0), .added)
        XCTAssertFalse(links.rename(forwarded, from: "10.0.0.20:7000", to: "10.0.0.21:7000"), "a name reached another way")
        XCTAssertFalse(links.rename(forwarded, from: "10.0.0.20:7000", to: "10.0.0.1:7000"), "the bootstrap's name")
        XCTAssertFalse(links.rename(forwarded, from: "10.0.0.20:7000", to: "10.0.0.5:7000"), "this node's name")
        XCTAssertFalse(links.rename(other, from: "10.0.0.20:7000", to: "10.0.0.30:7000"), "another link's name")
        XCTAssertTrue(links.rename(forwarded, from: "10.0.0.20:7000", to: "192.168.1.4:7000"))
        XCTAssertTrue(links["192.168.1.4:7000"] === forwarded)
        XCTAssertNil(links["10.0.0.20:7000"])
        XCTAssertEqual(links.name(of: forwarded), "192.168.1.4:7000")
        XCTAssertEqual(links.dialAddress(of: "192.168.1.4:7000"), "10.0.0.20:7000", "dialled again where it was reached")
        XCTAssertFalse(links.rename(forwarded, from: "192.168.1.4:7000", to: "192.168.1.5:7000"), "a link renames once")
        XCTAssertTrue(links.down(forwarded, id: "192.168.1.4:7000"))
        XCTAssertEqual(links.names, ["10.0.0.21:7000"])
    }

    func testTheOriginsNameIsTakenOnlyByTheOriginsOwnLink() {
        var links = table()
        let origin = Link(), impostor = Link()
        XCTAssertEqual(links.add(origin, as: "10.0.0.40:7000", outbound: true, now: 0), .added)
        XCTAssertEqual(links.add(impostor, as: "10.0.0.41:7000", outbound: true, now: 0), .added)
        links.originPeer = "10.0.0.40:7000"
        XCTAssertTrue(links.rename(origin, from: "10.0.0.40:7000", to: "10.0.0.43:7000"))
        XCTAssertEqual(links.originPeer, "10.0.0.43:7000", "the origin renamed is still the origin")
        XCTAssertEqual(links.add(Link(), as: "10.0.0.43:7000", outbound: true, now: 1), .refused, "the origin's link is never replaced")
        XCTAssertTrue(links.down(origin, id: "10.0.0.43:7000"))
        XCTAssertFalse(links.rename(impostor, from: "10.0.0.41:7000", to: "10.0.0.43:7000"), "its name stays the origin's when its link is down")
        XCTAssertEqual(links.add(Link(), as: "10.0.0.43:7000", outbound: false, now: 2), .refused, "and no inbound claim takes it")
    }

    func testAdmissionCapsHandshakesInAllAndByAddressAndGivesPlacesBackOnce() {
        var admission = Admission(maxPending: 3, maxPendingPerAddress: 2, maxObservers: 1)
        XCTAssertTrue(admission.admitHandshake(from: "a"))
        XCTAssertTrue(admission.admitHandshake(from: "a"))
        XCTAssertFalse(admission.admitHandshake(from: "a"), "two from one address")
        XCTAssertTrue(admission.admitHandshake(from: "b"))
        XCTAssertFalse(admission.admitHandshake(from: "c"), "three in all")
        admission.handshakeEnded(from: "a")
        admission.handshakeEnded(from: "zzz") // never admitted: gives nothing back
        XCTAssertEqual(admission.pending, 2)
        XCTAssertTrue(admission.admitHandshake(from: "c"))
        for host in ["a", "b", "c", "c"] { admission.handshakeEnded(from: host) }
        XCTAssertEqual(admission.pending, 0)
        XCTAssertEqual(admission.hostsPending, 0, "no host is remembered once its handshakes are over")
        XCTAssertTrue(admission.admitObserver())
        XCTAssertFalse(admission.admitObserver())
        admission.observerLeft()
        admission.observerLeft()
        XCTAssertEqual(admission.observers, 0)
        XCTAssertTrue(admission.admitObserver())
    }
}

extension LinkTable.Added: Equatable where Link: AnyObject {
    public static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.added, .added), (.refused, .refused): true
        case (.replaced(let x), .replaced(let y)): x === y
        default: false
        }
    }
}

/// What goes on the wire for a chunk: what came in goes on as it came; the origin's own chunks are encoded once.
final class ChunkEncodingTests: XCTestCase {
    func chunk(_ seq: UInt64) -> Chunk {
        Chunk(seq: seq, epoch: 3, ingestTime: 1, pts: 2, duration: 40_000, flags: [], payload: ByteBuffer(repeating: 0x11, count: 188 * 4))
    }

    func testAChunkOffALinkGoesOnAsItCameAndTheOriginsIsEncodedOnceForAllLinks() throws {
        var encoding = ChunkEncoding()
        let sent = Message.chunk(chunk(1)).encode()
        guard case .chunk(let received) = try Message.decode(sent) else { return XCTFail("not a chunk") }
        XCTAssertNotNil(received.wire)
        let onward = encoding.message(for: received)
        XCTAssertEqual(onward.bytes, sent)
        XCTAssertEqual(onward.bytes.readerIndex, sent.readerIndex)
        // The origin's chunk, to three links: one encoding, shared (the same storage).
        let first = encoding.message(for: chunk(2))
        let again = encoding.message(for: chunk(2))
        XCTAssertTrue(first.bytes.withUnsafeReadableBytes { a in again.bytes.withUnsafeReadableBytes { $0.baseAddress == a.baseAddress } })
        guard case .chunk(let decoded) = try Message.decode(first.bytes) else { return XCTFail("not a chunk") }
        XCTAssertEqual([decoded.seq, decoded.epoch], [2, 3])
        XCTAssertEqual(decoded.payload, chunk(2).payload)
        XCTAssertNotEqual(encoding.message(for: chunk(3)).bytes, first.bytes, "the next chunk is encoded anew")
    }

    func testAForgingNodeSendsOtherBytesUnderTheSameHeader() throws {
        var encoding = ChunkEncoding(forgePayload: true)
        guard case .chunk(let received) = try Message.decode(Message.chunk(chunk(1)).encode()) else { return XCTFail("not a chunk") }
        guard case .chunk(let forged) = try Message.decode(encoding.message(for: received).bytes) else { return XCTFail("not a chunk") }
        XCTAssertEqual(forged.seq, 1)
        XCTAssertEqual(forged.payload, ByteBuffer(repeating: 0x47, count: 188 * 4))
    }
}
