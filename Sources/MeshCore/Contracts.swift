import Foundation

/// A rate in bits per second, written `8M`, `500k`, `1.5G` or plain digits.
public struct BitRate: Equatable, Comparable, Sendable, CustomStringConvertible {
    public var bitsPerSecond: Double

    public init(bitsPerSecond: Double) { self.bitsPerSecond = bitsPerSecond }

    /// The most a rate option takes (1 Tbit/s).
    public static let maxArgument = 1e12

    public init?(_ text: String) {
        guard let value = BitRate.quantity(text) else { return nil }
        bitsPerSecond = value
    }

    /// A positive quantity written as rates are: digits, then `k`, `M` or `G` (powers of 1000), either case. Byte
    /// counts (`--upload-budget`, `--budget-dist`) are written the same way.
    public static func quantity(_ text: String) -> Double? {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard let last = text.last else { return nil }
        let scale: Double
        var digits = text
        switch last {
        case "k", "K": scale = 1e3
        case "m", "M": scale = 1e6
        case "g", "G": scale = 1e9
        default: scale = 1
        }
        if scale != 1 { digits.removeLast() }
        guard let value = Double(digits), value > 0, value * scale <= maxQuantity else { return nil }
        return value * scale
    }

    /// The most any rate or byte count may be (a petabit a second, a petabyte): past it, a typo, and turned into
    /// an integer count or a pace it would trap.
    public static let maxQuantity = 1e15

    public var bytesPerSecond: Double { bitsPerSecond / 8 }

    public var description: String {
        switch bitsPerSecond {
        case 1e9...: return String(format: "%.3gG", bitsPerSecond / 1e9)
        case 1e6...: return String(format: "%.3gM", bitsPerSecond / 1e6)
        case 1e3...: return String(format: "%.3gk", bitsPerSecond / 1e3)
        default: return String(format: "%.0f", bitsPerSecond)
        }
    }

    public static func < (a: BitRate, b: BitRate) -> Bool { a.bitsPerSecond < b.bitsPerSecond }
}

/// `HOST:PORT`, with IPv6 hosts in brackets: `127.0.0.1:7000`, `[::1]:7000`.
public struct HostPort: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil } // a bare IPv6 address needs brackets
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// `lsp2p://HOST:PORT?key=HEX64&origin=HEX64`: where to join and, optionally, the channel key and the origin's
/// public key (which every chunk is checked against).
public struct JoinURL: Equatable, Sendable, CustomStringConvertible {
    public var address: HostPort
    public var key: ChannelKey?
    public var origin: OriginPublicKey?

    public init(address: HostPort, key: ChannelKey?, origin: OriginPublicKey? = nil) {
        self.address = address
        self.key = key
        self.origin = origin
    }

    public enum ParseError: Error, CustomStringConvertible {
        case notJoinURL(String)
        case badKey(ChannelKey.KeyError)
        public var description: String {
            switch self {
            case .notJoinURL(let s): return "'\(s)' is not a join URL (lsp2p://HOST:PORT?key=HEX64&origin=HEX64)"
            case .badKey(let e): return "bad key in join URL: \(e)"
            }
        }
    }

    public init(_ text: String) throws {
        let prefix = "lsp2p://"
        guard text.lowercased().hasPrefix(prefix) else { throw ParseError.notJoinURL(text) }
        let rest = text.dropFirst(prefix.count)
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = HostPort(String(parts[0].hasSuffix("/") ? parts[0].dropLast() : parts[0])) else {
            throw ParseError.notJoinURL(text)
        }
        self.address = address
        self.key = nil
        if parts.count == 2 {
            for item in parts[1].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                do {
                    if kv[0] == "key" { key = try ChannelKey(hex: String(kv[1])) }
                    if kv[0] == "origin" { origin = try OriginPublicKey(hex: String(kv[1])) }
                } catch let e as ChannelKey.KeyError { throw ParseError.badKey(e) }
            }
        }
    }

    public var description: String {
        let query = [key.map { "key=\($0.hex)" }, origin.map { "origin=\($0.hex)" }].compactMap { $0 }
        return "lsp2p://\(address)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }
}

/// A token bucket over bytes: what a node may send now under its uplink.
public struct TokenBucket: Sendable {
    public let rate: Double // bytes per second
    public let burst: Double
    private var tokens: Double
    private var last: Int64?

    /// `burst` in bytes: how much may go at once after a quiet spell.
    public init(bytesPerSecond: Double, burst: Double) {
        self.rate = bytesPerSecond
        self.burst = burst
        self.tokens = burst
    }

    /// Takes `bytes` if the bucket holds them at `now` (microseconds), and `keep` bytes more besides (a full bucket
    /// will do); otherwise takes nothing. `keep` lets what can wait (repairs, a joiner's backlog) yield to what cannot.
    public mutating func take(_ bytes: Int, now: Int64, keep: Double = 0) -> Bool {
        if let last { tokens = min(burst, tokens + Double(max(0, now - last)) * rate / 1e6) }
        last = now
        guard tokens >= needed(bytes, keep: keep) else { return false }
        // More than a whole burst goes once the bucket is full, and is paid for after.
        tokens -= Double(bytes)
        return true
    }

    /// µs until `take(bytes, keep:)` can succeed, from `now`: 0 only if it can now. (It used to leave `keep` out, so
    /// an egress holding a repair back asked to be woken again at once, every microsecond, for up to a second.)
    public func wait(for bytes: Int, keep: Double = 0, now: Int64) -> Int64 {
        let have = last.map { min(burst, tokens + Double(max(0, now - $0)) * rate / 1e6) } ?? tokens
        let need = needed(bytes, keep: keep) - have
        return need <= 0 ? 0 : Int64((need / rate * 1e6).rounded(.up)) + 1
    }

    /// What the bucket must hold for `bytes` to go with `keep` left: never more than a full bucket, which always may.
    private func needed(_ bytes: Int, keep: Double) -> Double { min(Double(bytes) + max(0, keep), burst) }
}

/// Wall clock in microseconds since the Unix epoch: the one clock reading drivers pass into pure code.
public func wallClockMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}

/// Monotonic clock in microseconds, for intervals.
public func monotonicMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}

extension Int64 {
    /// `self + other`, held at the type's bounds instead of trapping: for sums of values peers told us.
    public func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self * other`, held at the type's bounds instead of trapping.
    public func saturatingMultiply(_ other: Int64) -> Int64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) != (other < 0) ? .min : .max) : product
    }

    /// `self - other`, held at the type's bounds instead of trapping.
    public func saturatingSubtract(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }
}
