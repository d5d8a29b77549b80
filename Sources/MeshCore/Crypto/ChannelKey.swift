import Crypto
import Foundation

/// The 256-bit secret every member of a channel holds. It never travels; links derive their own keys from it.
public struct ChannelKey: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else { throw KeyError.badLength(bytes.count * 2) }
        self.bytes = bytes
    }

    /// Parses 64 hex characters.
    public init(hex: String) throws {
        let hex = hex.trimmingCharacters(in: .whitespacesAndNewlines)
        guard hex.count == 64 else { throw KeyError.badLength(hex.count) }
        guard let bytes = hexBytes(hex, count: 32) else { throw KeyError.notHex }
        try self.init(bytes: bytes)
    }

    /// Reads a key file's channel key: 64 hex characters and an optional newline (the origin's lines may follow).
    public init(contentsOfFile path: String) throws {
        self = try KeyFile(contentsOfFile: path).channel
    }

    public static func random() -> ChannelKey {
        let key = SymmetricKey(size: .bits256)
        return try! ChannelKey(bytes: key.withUnsafeBytes { Array($0) })
    }

    public var hex: String { hexString(bytes) }

    /// Never the key itself: a short fingerprint safe for logs.
    public var description: String {
        "key " + SHA256.hash(data: bytes).prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    public enum KeyError: Error, Equatable, CustomStringConvertible {
        case badLength(Int)
        case notHex
        case unreadable(String)
        case badOriginKey
        case unknownLine
        case originMismatch

        public var description: String {
            switch self {
            case .badLength(let n): return "a channel key is 64 hex characters, got \(n)"
            case .notHex: return "a channel key is 64 hex characters (0-9, a-f)"
            case .unreadable(let path): return "cannot read key file \(path)"
            case .badOriginKey: return "an origin key is 64 hex characters (an Ed25519 key)"
            case .unknownLine: return "a key file holds the channel key, then only origin= and origin-secret= lines"
            case .originMismatch: return "origin= is not the public key of origin-secret="
            }
        }
    }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
