import Crypto
import Foundation
import NIOCore

/// How a link protects its frames once the handshake is done.
public enum CipherSuite: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// RC4 (first 3072 keystream bytes dropped), then an HMAC-SHA256 tag, truncated to 16 bytes, over counter, header and ciphertext.
    case rc4HmacSHA256 = 1
    /// ChaCha20-Poly1305 with the frame counter as nonce and the header as associated data.
    case chacha20Poly1305 = 2

    public init?(name: String) {
        switch name.lowercased() {
        case "rc4": self = .rc4HmacSHA256
        case "chacha20-poly1305", "chacha20poly1305", "chacha": self = .chacha20Poly1305
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .rc4HmacSHA256: return "rc4"
        case .chacha20Poly1305: return "chacha20-poly1305"
        }
    }
}

public enum LinkCipherError: Error, Equatable, CustomStringConvertible {
    /// Tampered, replayed, reordered, or sealed under another key.
    case badTag(counter: UInt64)
    case truncated

    public var description: String {
        switch self {
        case .badTag(let counter): return "frame \(counter) failed authentication (tampered, replayed or wrong key)"
        case .truncated: return "sealed frame shorter than its tag"
        }
    }
}

/// Key material for one direction of one link.
public struct DirectionKeys: Equatable, Sendable {
    public var cipherKey: [UInt8]
    public var macKey: [UInt8]
}

/// Derives a link's two directions from the channel key, the ephemeral keys' shared secret (which only the two ends
/// hold), both nonces, the client's address and the suite.
public func deriveLinkKeys(channelKey: ChannelKey, sharedSecret: [UInt8], clientNonce: [UInt8], serverNonce: [UInt8],
                           clientAddress: String, suite: CipherSuite) -> (clientToServer: DirectionKeys, serverToClient: DirectionKeys) {
    func direction(_ name: String) -> DirectionKeys {
        let info = Array("lsp2p/1 \(name) \(suite) \(clientAddress)".utf8)
        let okm = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: channelKey.bytes + sharedSecret),
                                         salt: clientNonce + serverNonce, info: info, outputByteCount: 64)
        let bytes = okm.withUnsafeBytes { Array($0) }
        return DirectionKeys(cipherKey: Array(bytes[0..<32]), macKey: Array(bytes[32..<64]))
    }
    return (direction("c2s"), direction("s2c"))
}

/// Seals outgoing frames and opens incoming ones for one link. Frames carry no counter: each side counts,
/// so a replayed, dropped or reordered frame fails its tag.
public struct LinkCipher {
    public static let tagLength = 16

    private enum Direction {
        case rc4(RC4, mac: SymmetricKey)
        case chacha(SymmetricKey)
    }

    public let suite: CipherSuite
    private var sending: Direction
    private var receiving: Direction
    private var sendCounter: UInt64 = 0
    private var receiveCounter: UInt64 = 0

    public init(suite: CipherSuite, send: DirectionKeys, receive: DirectionKeys) {
        func make(_ keys: DirectionKeys) -> Direction {
            switch suite {
            case .rc4HmacSHA256: return .rc4(RC4(key: keys.cipherKey, drop: RC4.linkDrop), mac: SymmetricKey(data: keys.macKey))
            case .chacha20Poly1305: return .chacha(SymmetricKey(data: keys.cipherKey))
            }
        }
        self.suite = suite
        self.sending = make(send)
        self.receiving = make(receive)
    }

    /// Encrypts `plaintext` into a sealed frame.
    public mutating func seal(_ plaintext: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Frame {
        let counter = sendCounter
        sendCounter += 1
        let header = Frame.header(type: .sealed, length: plaintext.readableBytes + Self.tagLength)
        var out = allocator.buffer(capacity: plaintext.readableBytes + Self.tagLength)
        switch sending {
        case .rc4(var rc4, let mac):
            // One pass: each block is copied through the cipher and into the tag while it is in cache.
            var hmac = Self.hmac(mac: mac, counter: counter, header: header)
            let count = plaintext.readableBytes
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { dst in
                plaintext.withUnsafeReadableBytes { src in
                    Self.blocks(count) { range in
                        let block = UnsafeMutableRawBufferPointer(rebasing: dst[range])
                        rc4.apply(from: UnsafeRawBufferPointer(rebasing: src[range]), to: block)
                        hmac.update(data: UnsafeRawBufferPointer(block))
                    }
                }
                return count
            }
            sending = .rc4(rc4, mac: mac)
            out.writeBytes(Self.finish(hmac))
        case .chacha(let key):
            let box = plaintext.withUnsafeReadableBytes { pt in
                try! ChaChaPoly.seal(pt, using: key, nonce: Self.nonce(counter), authenticating: header)
            }
            out.writeBytes(box.ciphertext)
            out.writeBytes(box.tag)
        }
        return Frame(type: .sealed, payload: out)
    }

    /// Authenticates and decrypts a sealed frame's payload.
    public mutating func open(_ payload: ByteBuffer) throws -> ByteBuffer {
        guard payload.readableBytes >= Self.tagLength else { throw LinkCipherError.truncated }
        let counter = receiveCounter
        let header = Frame.header(type: .sealed, length: payload.readableBytes)
        let bodyLength = payload.readableBytes - Self.tagLength
        let body = payload.getSlice(at: payload.readerIndex, length: bodyLength)!
        let tag = payload.getBytes(at: payload.readerIndex + bodyLength, length: Self.tagLength)!
        switch receiving {
        case .rc4(var rc4, let mac):
            // One pass, as in `seal`: each block goes into the tag and through the cipher into a buffer of its own
            // (the frame's shares storage with what the link read). Nothing of it is returned unless the tag holds,
            // and a link whose tag fails is closed, so the cipher's state moving on does not matter.
            var hmac = Self.hmac(mac: mac, counter: counter, header: header)
            var plain = ByteBuffer()
            plain.reserveCapacity(bodyLength)
            plain.writeWithUnsafeMutableBytes(minimumWritableBytes: bodyLength) { dst in
                body.withUnsafeReadableBytes { src in
                    Self.blocks(bodyLength) { range in
                        let block = UnsafeRawBufferPointer(rebasing: src[range])
                        hmac.update(data: block)
                        rc4.apply(from: block, to: UnsafeMutableRawBufferPointer(rebasing: dst[range]))
                    }
                }
                return bodyLength
            }
            guard constantTimeEqual(Self.finish(hmac), tag) else { throw LinkCipherError.badTag(counter: counter) }
            receiving = .rc4(rc4, mac: mac)
            receiveCounter += 1
            return plain
        case .chacha(let key):
            let plain: [UInt8]
            do {
                let box = try body.withUnsafeReadableBytes { ct in
                    try ChaChaPoly.SealedBox(nonce: Self.nonce(counter), ciphertext: ct, tag: tag)
                }
                plain = try Array(ChaChaPoly.open(box, using: key, authenticating: header))
            } catch {
                throw LinkCipherError.badTag(counter: counter)
            }
            receiveCounter += 1
            return ByteBuffer(bytes: plain)
        }
    }

    /// The tag covers the counter, the header and the ciphertext.
    private static func hmac(mac: SymmetricKey, counter: UInt64, header: [UInt8]) -> HMAC<SHA256> {
        var hmac = HMAC<SHA256>(key: mac)
        withUnsafeBytes(of: counter.bigEndian) { hmac.update(data: $0) }
        hmac.update(data: header)
        return hmac
    }

    private static func finish(_ hmac: HMAC<SHA256>) -> [UInt8] { Array(Array(hmac.finalize()).prefix(tagLength)) }

    /// `count` bytes in blocks small enough to stay in the first-level cache between the cipher and the tag.
    private static func blocks(_ count: Int, _ body: (Range<Int>) -> Void) {
        var start = 0
        while start < count {
            let end = min(count, start + 4096)
            body(start..<end)
            start = end
        }
    }

    private static func nonce(_ counter: UInt64) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: counter.bigEndian) { bytes.replaceSubrange(4..<12, with: $0) }
        return try! ChaChaPoly.Nonce(data: bytes)
    }
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}
