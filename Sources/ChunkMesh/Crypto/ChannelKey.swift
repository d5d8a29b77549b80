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
        var out = [UInt8]()
        out.reserveCapacity(32)
        var it = hex.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = hexValue(hi), let l = hexValue(lo) else { throw KeyError.notHex }
            out.append(h << 4 | l)
        }
        try self.init(bytes: out)
    }

    /// Reads a key file: 64 hex characters and an optional newline.
    public init(contentsOfFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw KeyError.unreadable(path) }
        guard data.count <= 66, let text = String(data: data, encoding: .utf8) else { throw KeyError.notHex }
        try self.init(hex: text)
    }

    public static func random() -> ChannelKey {
        let key = SymmetricKey(size: .bits256)
        return try! ChannelKey(bytes: key.withUnsafeBytes { Array($0) })
    }

    public var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Never the key itself: a short fingerprint safe for logs.
    public var description: String {
        "key " + SHA256.hash(data: bytes).prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    public enum KeyError: Error, Equatable, CustomStringConvertible {
        case badLength(Int)
        case notHex
        case unreadable(String)

        public var description: String {
            switch self {
            case .badLength(let n): return "a channel key is 64 hex characters, got \(n)"
            case .notHex: return "a channel key is 64 hex characters (0-9, a-f)"
            case .unreadable(let path): return "cannot read key file \(path)"
            }
        }
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
