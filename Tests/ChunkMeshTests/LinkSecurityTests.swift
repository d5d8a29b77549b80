@testable import ChunkMesh
import NIOCore
import XCTest

final class LinkSecurityTests: XCTestCase {
    let key = try! ChannelKey(hex: String(repeating: "ab", count: 32))
    let otherKey = try! ChannelKey(hex: String(repeating: "cd", count: 32))

    /// Runs a whole handshake; returns (client cipher, server cipher).
    private func handshake(clientKey: ChannelKey, serverKey: ChannelKey, suite: CipherSuite = .rc4HmacSHA256,
                           address: String = "127.0.0.1:5000") throws -> (LinkCipher, LinkCipher) {
        var client = HandshakeInitiator(key: clientKey, role: .player, nonce: randomNonce())
        var server = HandshakeResponder(key: serverKey, suite: suite, nonce: randomNonce(), clientAddress: address)
        let challenge = try server.receiveHello(client.hello())
        let (proof, clientCipher, chosen, binding) = try client.receive(challenge)
        XCTAssertEqual(binding, server.binding, "both sides name the link alike")
        XCTAssertEqual(chosen, suite)
        let serverCipher = try server.receiveProof(proof)
        return (clientCipher, serverCipher)
    }

    func testHandshakeWithTheRightKeyGivesWorkingCiphersBothWays() throws {
        for suite in CipherSuite.allCases {
            var (client, server) = try handshake(clientKey: key, serverKey: key, suite: suite)
            for size in [0, 1, 188, 70_000] {
                let plain = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0) })
                let sealed = server.seal(plain)
                XCTAssertEqual(sealed.type, .sealed)
                if size > 16 { XCTAssertNotEqual(sealed.payload.getSlice(at: 0, length: size), plain) }
                XCTAssertEqual(try client.open(sealed.payload), plain)
                XCTAssertEqual(try server.open(client.seal(plain).payload), plain)
            }
        }
    }

    func testWrongKeyIsCaughtByTheJoiner() throws {
        var client = HandshakeInitiator(key: otherKey, role: .player, nonce: randomNonce())
        var server = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: "x")
        let challenge = try server.receiveHello(client.hello())
        XCTAssertThrowsError(try client.receive(challenge)) { XCTAssertEqual($0 as? HandshakeError, .wrongKey) }
    }

    func testForgedProofIsCaughtByTheResponder() throws {
        var client = HandshakeInitiator(key: key, role: .player, nonce: randomNonce())
        var server = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: "x")
        _ = try server.receiveHello(client.hello())
        let forged = Frame(type: .proof, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 32)))
        XCTAssertThrowsError(try server.receiveProof(forged)) { XCTAssertEqual($0 as? HandshakeError, .wrongKey) }
    }

    func testProofsDoNotContainTheKey() throws {
        var client = HandshakeInitiator(key: key, role: .player, nonce: randomNonce())
        var server = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: "x")
        let hello = client.hello()
        let challenge = try server.receiveHello(hello)
        let (proof, _, _, _) = try client.receive(challenge)
        for frame in [hello, challenge, proof] {
            XCTAssertNil(hex(frame.payload.readableBytesView).range(of: key.hex.prefix(16)))
        }
    }

    func testTamperedFrameFailsItsTag() throws {
        for suite in CipherSuite.allCases {
            var (client, server) = try handshake(clientKey: key, serverKey: key, suite: suite)
            var frame = server.seal(ByteBuffer(string: "a chunk of video"))
            let at = frame.payload.readerIndex + 3
            frame.payload.setInteger(frame.payload.getInteger(at: at, as: UInt8.self)! ^ 0x01, at: at)
            XCTAssertThrowsError(try client.open(frame.payload)) { XCTAssertEqual($0 as? LinkCipherError, .badTag(counter: 0)) }
        }
    }

    func testReplayAndReorderAreRejected() throws {
        for suite in CipherSuite.allCases {
            var (client, server) = try handshake(clientKey: key, serverKey: key, suite: suite)
            let first = server.seal(ByteBuffer(string: "one"))
            let second = server.seal(ByteBuffer(string: "two"))
            // Reordered: the second frame arrives first.
            var reordering = client
            XCTAssertThrowsError(try reordering.open(second.payload))
            // Replayed: the first frame again after it was accepted.
            XCTAssertEqual(try client.open(first.payload), ByteBuffer(string: "one"))
            XCTAssertThrowsError(try client.open(first.payload)) { XCTAssertEqual($0 as? LinkCipherError, .badTag(counter: 1)) }
        }
    }

    func testKeysAreBoundToEachLink() throws {
        var (_, serverA) = try handshake(clientKey: key, serverKey: key, address: "10.0.0.1:1")
        var (clientB, serverB) = try handshake(clientKey: key, serverKey: key, address: "10.0.0.2:1")
        let plain = ByteBuffer(bytes: [UInt8](repeating: 0, count: 64))
        let a = serverA.seal(plain)
        let b = serverB.seal(plain)
        XCTAssertNotEqual(a.payload, b.payload)
        // A frame sealed for link A does not open on link B.
        XCTAssertThrowsError(try clientB.open(a.payload))

        let one = deriveLinkKeys(channelKey: key, clientNonce: [1], serverNonce: [2], clientAddress: "h:1", suite: .rc4HmacSHA256)
        let moved = deriveLinkKeys(channelKey: key, clientNonce: [1], serverNonce: [2], clientAddress: "h:2", suite: .rc4HmacSHA256)
        XCTAssertNotEqual(one.clientToServer, one.serverToClient)
        XCTAssertNotEqual(one.clientToServer, moved.clientToServer)
    }

    func testNoCommonSuite() throws {
        var client = HandshakeInitiator(key: key, role: .player, suites: [.rc4HmacSHA256], nonce: randomNonce())
        var server = HandshakeResponder(key: key, suite: .chacha20Poly1305, nonce: randomNonce(), clientAddress: "x")
        XCTAssertThrowsError(try server.receiveHello(client.hello())) {
            XCTAssertEqual($0 as? HandshakeError, .noCommonSuite(offered: [1]))
        }
    }
}
