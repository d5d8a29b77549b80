@testable import ChunkMesh
@testable import MeshCore
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

        let one = deriveLinkKeys(channelKey: key, sharedSecret: [9], clientNonce: [1], serverNonce: [2], clientAddress: "h:1", suite: .rc4HmacSHA256)
        let moved = deriveLinkKeys(channelKey: key, sharedSecret: [9], clientNonce: [1], serverNonce: [2], clientAddress: "h:2", suite: .rc4HmacSHA256)
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

    /// Issue 20: a viewer (it holds the channel key) relays a joiner's handshake to the origin, to be taken for the
    /// origin: the origin's signature is over the transcript it saw. Relayed as it is, the joiner's link is the
    /// origin's, and the viewer, with every value that crossed it in clear, cannot open it; swapping in ephemeral keys
    /// of its own to hold the link's keys makes the two transcripts differ, and the origin's proof does not verify.
    func testAPeerRelayingAHandshakeToTheOriginCannotReadTheLinkNorPassForTheOrigin() throws {
        let origin = OriginSigningKey()
        let address = "10.0.0.9:4000"
        // Relayed untouched.
        var joiner = HandshakeInitiator(key: key, role: .player, nonce: randomNonce())
        var atOrigin = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: address)
        let hello = joiner.hello()
        let challenge = try atOrigin.receiveHello(hello)
        let (proof, joinerCipher, _, joinerBinding) = try joiner.receive(challenge)
        var originCipher = try atOrigin.receiveProof(proof)
        XCTAssertTrue(origin.publicKey.verifiesLink(joinerBinding, proof: origin.proveLink(atOrigin.binding)))
        var asJoiner = joinerCipher
        let secret = ByteBuffer(string: "welcome")
        let sealed = originCipher.seal(secret)
        XCTAssertEqual(try asJoiner.open(sealed.payload), secret, "a relay that passes bytes on changes nothing")
        // What the relay can derive from what it saw: every input but the shared secret, which never crossed.
        let helloBytes = hello.payload, challengeBytes = challenge.payload
        let joinerNonce = helloBytes.getBytes(at: helloBytes.readerIndex + 2 + CipherSuite.allCases.count, length: handshakeNonceLength)!
        let originNonce = challengeBytes.getBytes(at: challengeBytes.readerIndex + 1, length: handshakeNonceLength)!
        for guess in [[], joinerNonce, originNonce] as [[UInt8]] {
            let keys = deriveLinkKeys(channelKey: key, sharedSecret: guess, clientNonce: joinerNonce, serverNonce: originNonce,
                                      clientAddress: address, suite: .rc4HmacSHA256)
            var relay = LinkCipher(suite: .rc4HmacSHA256, send: keys.clientToServer, receive: keys.serverToClient)
            XCTAssertThrowsError(try relay.open(sealed.payload), "the relay read the origin's welcome")
        }

        // The relay ends both handshakes itself, with ephemeral keys of its own: it holds both links' keys, but the
        // origin signs the relay's link, not the joiner's.
        var victim = HandshakeInitiator(key: key, role: .player, nonce: randomNonce())
        var relayAsOrigin = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: address)
        var relayAsJoiner = HandshakeInitiator(key: key, role: .relay, nonce: randomNonce())
        var realOrigin = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: address)
        let toVictim = try relayAsOrigin.receiveHello(victim.hello())
        let (_, _, _, victimBinding) = try victim.receive(toVictim)
        let toRelay = try realOrigin.receiveHello(relayAsJoiner.hello())
        let (relayProof, _, _, relayBinding) = try relayAsJoiner.receive(toRelay)
        _ = try realOrigin.receiveProof(relayProof)
        let signed = origin.proveLink(realOrigin.binding)
        XCTAssertTrue(origin.publicKey.verifiesLink(relayBinding, proof: signed))
        XCTAssertFalse(origin.publicKey.verifiesLink(victimBinding, proof: signed), "the relay passed for the origin")
    }

    func testAnEphemeralKeyThatGivesNoSecretIsMalformed() throws {
        var client = HandshakeInitiator(key: key, role: .player, nonce: randomNonce())
        var server = HandshakeResponder(key: key, suite: .rc4HmacSHA256, nonce: randomNonce(), clientAddress: "x")
        var hello = client.hello()
        // The all-zero point: every secret with it is zero.
        let end = hello.payload.writerIndex
        hello.payload.setBytes([UInt8](repeating: 0, count: ephemeralKeyLength), at: end - ephemeralKeyLength)
        XCTAssertThrowsError(try server.receiveHello(hello)) { XCTAssertEqual($0 as? HandshakeError, .malformed("ephemeral key")) }
    }
}
