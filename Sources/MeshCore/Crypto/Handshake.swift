import Crypto
import NIOCore

/// Why a join did not complete.
public enum HandshakeError: Error, Equatable, CustomStringConvertible {
    /// The other side does not hold our channel key.
    case wrongKey
    case noCommonSuite(offered: [UInt8])
    case rejected(String)
    case unexpected(FrameType)
    case malformed(String)

    public var description: String {
        switch self {
        case .wrongKey: return "wrong key: the peer does not hold the channel key"
        case .noCommonSuite(let offered): return "no common cipher suite (peer offered \(offered))"
        case .rejected(let reason): return "rejected by peer: \(reason)"
        case .unexpected(let type): return "unexpected \(type) frame during handshake"
        case .malformed(let why): return "malformed handshake: \(why)"
        }
    }
}

/// What a joining peer is.
public enum PeerRole: UInt8, Sendable {
    case player = 1
    case relay = 2
    /// Looks in on the mesh (`lsp2p-relay mesh`); never a peer.
    case observer = 3
}

public let handshakeNonceLength = 32
/// An X25519 public key's length: each side sends a fresh one.
public let ephemeralKeyLength = 32

/// The joining side. It sends `hello`, checks the responder's proof of the channel key, and answers with its own.
///
/// Neither proof reveals the key: each is an HMAC under the key over the transcript, fresh nonces included. Each
/// side also sends a fresh X25519 key, and the link's keys fold in their shared secret: every viewer holds the
/// channel key, so without it a peer that relays a handshake between two others (to be taken for the origin, whose
/// signature covers the transcript) could read and forge the link it relayed (issue 20).
public struct HandshakeInitiator {
    public let role: PeerRole
    private let key: ChannelKey
    private let suites: [CipherSuite]
    private let nonce: [UInt8]
    private let ephemeral = Curve25519.KeyAgreement.PrivateKey()
    private var helloBytes: [UInt8] = []

    public init(key: ChannelKey, role: PeerRole, suites: [CipherSuite] = CipherSuite.allCases, nonce: [UInt8]) {
        precondition(nonce.count == handshakeNonceLength)
        self.key = key
        self.role = role
        self.suites = suites
        self.nonce = nonce
    }

    /// The first frame: `role, suite count, suites, nonce, ephemeral key`.
    public mutating func hello() -> Frame {
        helloBytes = [role.rawValue, UInt8(suites.count)] + suites.map(\.rawValue) + nonce + Array(ephemeral.publicKey.rawRepresentation)
        return Frame(type: .hello, payload: ByteBuffer(bytes: helloBytes))
    }

    /// Checks the challenge; returns the proof frame to send, the link's cipher and its binding (`linkBinding`).
    public func receive(_ frame: Frame) throws -> (proof: Frame, cipher: LinkCipher, suite: CipherSuite, binding: [UInt8]) {
        if frame.type == .reject { throw HandshakeError.rejected(String(buffer: frame.payload)) }
        guard frame.type == .challenge else { throw HandshakeError.unexpected(frame.type) }
        var payload = frame.payload
        guard let rawSuite = payload.readInteger(as: UInt8.self),
              let serverNonce = payload.readBytes(length: handshakeNonceLength),
              let serverEphemeral = payload.readBytes(length: ephemeralKeyLength),
              let addressLength = payload.readInteger(as: UInt8.self),
              let address = payload.readString(length: Int(addressLength)),
              let serverProof = payload.readBytes(length: 32), payload.readableBytes == 0
        else { throw HandshakeError.malformed("challenge") }
        guard let suite = CipherSuite(rawValue: rawSuite), suites.contains(suite) else {
            throw HandshakeError.noCommonSuite(offered: [rawSuite])
        }
        let transcript = helloBytes + [rawSuite] + serverNonce + serverEphemeral + [addressLength] + Array(address.utf8)
        guard constantTimeEqual(serverProof, handshakeProof(key, "server", transcript)) else { throw HandshakeError.wrongKey }
        let shared = try sharedSecret(ephemeral, serverEphemeral)
        let proof = handshakeProof(key, "client", transcript + serverProof)
        let keys = deriveLinkKeys(channelKey: key, sharedSecret: shared, clientNonce: nonce, serverNonce: serverNonce,
                                  clientAddress: address, suite: suite)
        let cipher = LinkCipher(suite: suite, send: keys.clientToServer, receive: keys.serverToClient)
        return (Frame(type: .proof, payload: ByteBuffer(bytes: proof)), cipher, suite, linkBinding(transcript + serverProof))
    }
}

/// The accepting side: answers `hello` with a challenge carrying its own proof, then checks the joiner's.
public struct HandshakeResponder {
    private let key: ChannelKey
    private let suite: CipherSuite
    private let nonce: [UInt8]
    private let ephemeral = Curve25519.KeyAgreement.PrivateKey()
    private let clientAddress: String
    private var transcript: [UInt8]?
    private var clientNonce: [UInt8] = []
    private var shared: [UInt8] = []
    public private(set) var role: PeerRole?
    /// What names this link alone, once the hello is answered (`linkBinding`).
    public var binding: [UInt8] { transcript.map(linkBinding) ?? [] }

    /// `clientAddress` is the joiner's address as this side sees it; it is sent back and bound into the keys.
    public init(key: ChannelKey, suite: CipherSuite, nonce: [UInt8], clientAddress: String) {
        precondition(nonce.count == handshakeNonceLength)
        self.key = key
        self.suite = suite
        self.nonce = nonce
        self.clientAddress = String(clientAddress.utf8.prefix(255))!
    }

    public mutating func receiveHello(_ frame: Frame) throws -> Frame {
        guard frame.type == .hello else { throw HandshakeError.unexpected(frame.type) }
        var payload = frame.payload
        let helloBytes = payload.getBytes(at: payload.readerIndex, length: payload.readableBytes) ?? []
        guard let rawRole = payload.readInteger(as: UInt8.self), let role = PeerRole(rawValue: rawRole),
              let count = payload.readInteger(as: UInt8.self),
              let offered = payload.readBytes(length: Int(count)),
              let nonce = payload.readBytes(length: handshakeNonceLength),
              let clientEphemeral = payload.readBytes(length: ephemeralKeyLength), payload.readableBytes == 0
        else { throw HandshakeError.malformed("hello") }
        guard offered.contains(suite.rawValue) else { throw HandshakeError.noCommonSuite(offered: offered) }
        shared = try sharedSecret(ephemeral, clientEphemeral)
        self.role = role
        self.clientNonce = nonce
        let address = Array(clientAddress.utf8)
        let mine = Array(ephemeral.publicKey.rawRepresentation)
        let transcript = helloBytes + [suite.rawValue] + self.nonce + mine + [UInt8(address.count)] + address
        let proof = handshakeProof(key, "server", transcript)
        self.transcript = transcript + proof
        var out = ByteBuffer()
        out.writeInteger(suite.rawValue)
        out.writeBytes(self.nonce)
        out.writeBytes(mine)
        out.writeInteger(UInt8(address.count))
        out.writeBytes(address)
        out.writeBytes(proof)
        return Frame(type: .challenge, payload: out)
    }

    /// Checks the joiner's proof; on success returns the link's cipher.
    public func receiveProof(_ frame: Frame) throws -> LinkCipher {
        if frame.type == .reject { throw HandshakeError.rejected(String(buffer: frame.payload)) }
        guard frame.type == .proof, let transcript else { throw HandshakeError.unexpected(frame.type) }
        guard frame.payload.readableBytes == 32,
              constantTimeEqual(frame.payload.getBytes(at: frame.payload.readerIndex, length: 32)!,
                                handshakeProof(key, "client", transcript))
        else { throw HandshakeError.wrongKey }
        let keys = deriveLinkKeys(channelKey: key, sharedSecret: shared, clientNonce: clientNonce, serverNonce: nonce,
                                  clientAddress: clientAddress, suite: suite)
        return LinkCipher(suite: suite, send: keys.serverToClient, receive: keys.clientToServer)
    }

    public static func reject(_ reason: String) -> Frame {
        Frame(type: .reject, payload: ByteBuffer(string: String(reason.utf8.prefix(200))!))
    }
}

/// The X25519 secret of our ephemeral key and theirs. A key that gives no secret (a small-order point) is malformed.
private func sharedSecret(_ mine: Curve25519.KeyAgreement.PrivateKey, _ theirs: [UInt8]) throws -> [UInt8] {
    guard let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: theirs),
          let secret = try? mine.sharedSecretFromKeyAgreement(with: key)
    else { throw HandshakeError.malformed("ephemeral key") }
    let bytes = secret.withUnsafeBytes { Array($0) }
    guard bytes.contains(where: { $0 != 0 }) else { throw HandshakeError.malformed("ephemeral key") }
    return bytes
}

private func handshakeProof(_ key: ChannelKey, _ side: String, _ transcript: [UInt8]) -> [UInt8] {
    var hmac = HMAC<SHA256>(key: SymmetricKey(data: key.bytes))
    hmac.update(data: Array("lsp2p/1 \(side) proof".utf8))
    hmac.update(data: transcript)
    return Array(hmac.finalize())
}

/// A digest of the handshake both sides hold alike and no other link shares (fresh nonces and ephemeral keys, the
/// joiner's address):
/// what the origin signs to prove it is the one at the other end.
func linkBinding(_ transcript: [UInt8]) -> [UInt8] {
    Array(SHA256.hash(data: Array("lsp2p/1 binding".utf8) + transcript))
}

/// Fresh random bytes for a nonce.
public func randomNonce() -> [UInt8] {
    SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
}
