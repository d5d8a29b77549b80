import Crypto
import Foundation
import NIOCore

/// The origin's Ed25519 public key (design §6): the one thing that tells the origin's chunks and the origin
/// itself from any peer's, since every viewer holds the channel key.
public struct OriginPublicKey: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    /// Rebuilt from the bytes where used: the key type is not `Sendable`, and parsing 32 bytes costs little.
    private var key: Curve25519.Signing.PublicKey { try! Curve25519.Signing.PublicKey(rawRepresentation: bytes) }

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: bytes)) != nil else {
            throw ChannelKey.KeyError.badOriginKey
        }
        self.bytes = bytes
    }

    public init(hex: String) throws {
        guard let bytes = hexBytes(hex, count: 32) else { throw ChannelKey.KeyError.badOriginKey }
        try self.init(bytes: bytes)
    }

    public var hex: String { hexString(bytes) }
    public var description: String { "origin " + hexString(Array(bytes.prefix(4))) }

    public static func == (a: OriginPublicKey, b: OriginPublicKey) -> Bool { a.bytes == b.bytes }

    /// Whether the origin signed this chunk as it is: its header and a hash of its payload.
    public func verifies(_ chunk: Chunk) -> Bool {
        chunk.signature.count == 64 && key.isValidSignature(chunk.signature, for: chunk.signedBytes())
    }

    /// Whether the origin signed this link's handshake: the peer at the other end is the origin.
    public func verifiesLink(_ binding: [UInt8], proof: [UInt8]) -> Bool {
        proof.count == 64 && key.isValidSignature(proof, for: linkProofBytes(binding))
    }
}

/// The origin's secret: it signs every chunk and its own address. Kept in the key file as `origin-secret=HEX64`.
public struct OriginSigningKey: Sendable {
    private let raw: [UInt8]
    private var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }

    public init() { raw = Array(Curve25519.Signing.PrivateKey().rawRepresentation) }

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32, (try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes)) != nil else {
            throw ChannelKey.KeyError.badOriginKey
        }
        self.raw = bytes
    }

    public init(hex: String) throws {
        guard let bytes = hexBytes(hex, count: 32) else { throw ChannelKey.KeyError.badOriginKey }
        try self.init(bytes: bytes)
    }

    public var hex: String { hexString(raw) }
    public var publicKey: OriginPublicKey { try! OriginPublicKey(bytes: Array(key.publicKey.rawRepresentation)) }

    /// Stamps the chunk with the origin's signature over its header and payload hash.
    public func sign(_ chunk: inout Chunk) {
        chunk.signature = Array(try! key.signature(for: chunk.signedBytes()))
    }

    /// The origin's signature over a link's handshake (`LinkEvent.established`'s binding), sent in its welcome:
    /// the joiner knows it reached the origin itself, whatever address it dialled.
    public func proveLink(_ binding: [UInt8]) -> [UInt8] {
        Array(try! key.signature(for: linkProofBytes(binding)))
    }
}

private func linkProofBytes(_ binding: [UInt8]) -> [UInt8] { Array("lsp2p/1 origin link".utf8) + binding }

extension Chunk {
    /// What the origin signs: a label, the header fields and SHA-256 of the payload.
    func signedBytes() -> [UInt8] {
        var out = Array("lsp2p/1 chunk".utf8)
        out.reserveCapacity(out.count + Chunk.headerLength - Chunk.signatureLength + 32)
        for value in [epoch, seq, UInt64(bitPattern: ingestTime), UInt64(bitPattern: pts), UInt64(bitPattern: duration)] {
            out += withUnsafeBytes(of: value.bigEndian, Array.init)
        }
        out.append(flags.rawValue)
        out += payload.withUnsafeReadableBytes { Array(SHA256.hash(data: $0)) }
        return out
    }
}

/// Everything a key file holds: the channel key and, where given, the origin's keys.
///
/// ```
/// 64 hex chars                 the channel key (the file may be just this line)
/// origin=64 hex chars          the origin's public key: joiners check every chunk with it
/// origin-secret=64 hex chars   the origin's signing key: only on the origin's machine
/// ```
public struct KeyFile: Sendable {
    public var channel: ChannelKey
    public var origin: OriginPublicKey?
    public var originSecret: OriginSigningKey?

    public init(channel: ChannelKey, origin: OriginPublicKey? = nil, originSecret: OriginSigningKey? = nil) {
        self.channel = channel
        self.origin = origin ?? originSecret?.publicKey
        self.originSecret = originSecret
    }

    public init(text: String) throws {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let first = lines.first else { throw ChannelKey.KeyError.badLength(0) }
        var origin: OriginPublicKey?
        var secret: OriginSigningKey?
        for line in lines.dropFirst() {
            if line.hasPrefix("origin=") {
                origin = try OriginPublicKey(hex: String(line.dropFirst("origin=".count)))
            } else if line.hasPrefix("origin-secret=") {
                secret = try OriginSigningKey(hex: String(line.dropFirst("origin-secret=".count)))
            } else {
                throw ChannelKey.KeyError.unknownLine
            }
        }
        if let origin, let secret, origin != secret.publicKey { throw ChannelKey.KeyError.originMismatch }
        self.init(channel: try ChannelKey(hex: first), origin: origin, originSecret: secret)
    }

    public init(contentsOfFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ChannelKey.KeyError.unreadable(path) }
        guard data.count <= 512, let text = String(data: data, encoding: .utf8) else { throw ChannelKey.KeyError.notHex }
        try self.init(text: text)
    }

    /// The file's text; `includingSecret: false` is the copy to hand to viewers.
    public func text(includingSecret: Bool) -> String {
        var out = channel.hex + "\n"
        if let origin { out += "origin=\(origin.hex)\n" }
        if includingSecret, let originSecret { out += "origin-secret=\(originSecret.hex)\n" }
        return out
    }
}

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Exactly `count` bytes from `2 × count` hex characters, or nil.
func hexBytes(_ text: String, count: Int) -> [UInt8]? {
    let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard text.utf8.count == 2 * count else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(count)
    var it = text.utf8.makeIterator()
    while let hi = it.next(), let lo = it.next() {
        guard let h = hexValue(hi), let l = hexValue(lo) else { return nil }
        out.append(h << 4 | l)
    }
    return out
}
