/// The RC4 stream cipher (RFC 6229 checks it). Encryption and decryption are the same XOR.
///
/// RC4's early keystream is biased, so links drop the first ``linkDrop`` bytes before use.
public struct RC4 {
    /// Keystream bytes a link discards before its first frame (RFC 4345 recommends at least 1536).
    public static let linkDrop = 3072

    // UInt32 cells and Int indices: byte-sized ones make the compiler narrow and widen on every step.
    // An array, not a raw pointer, so a copied cipher state stays a copy.
    private var s: [UInt32]
    private var i = 0
    private var j = 0

    public init<Key: Collection>(key: Key, drop: Int = 0) where Key.Element == UInt8 {
        precondition(!key.isEmpty && key.count <= 256, "RC4 takes a key of 1 to 256 bytes")
        let key = Array(key)
        var s = (0..<256).map { UInt32($0) }
        var j = 0
        for i in 0..<256 {
            j = (j + Int(s[i]) + Int(key[i % key.count])) & 0xFF
            s.swapAt(i, j)
        }
        self.s = s
        if drop > 0 { skip(drop) }
    }

    /// Discards `count` keystream bytes.
    public mutating func skip(_ count: Int) {
        var scratch = [UInt8](repeating: 0, count: count)
        apply(to: &scratch)
    }

    /// XORs the keystream into `bytes` in place.
    public mutating func apply(to bytes: UnsafeMutableRawBufferPointer) {
        apply(from: UnsafeRawBufferPointer(bytes), to: bytes)
    }

    /// XORs the keystream into `source` and writes the result to `destination` (at least as long): a copy and a
    /// cipher in one pass. The two may be the same memory, but must not overlap otherwise.
    public mutating func apply(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= source.count, "RC4 writes as many bytes as it reads")
        guard let src = source.baseAddress, let base = destination.baseAddress else { return }
        let count = source.count
        // Indices live inside the closure: captured from outside, they would stay in memory.
        (i, j) = s.withUnsafeMutableBufferPointer { [i, j] sp in
            let s = sp.baseAddress!
            var i = i
            var j = j
            @inline(__always) func next() -> UInt64 {
                i = (i &+ 1) & 0xFF
                let si = s[i]
                j = (j &+ Int(si)) & 0xFF
                let sj = s[j]
                s[i] = sj
                s[j] = si
                return UInt64(s[Int((si &+ sj) & 0xFF)])
            }
            // Eight keystream bytes, then one 64-bit XOR: about 1.5x faster than byte by byte.
            var n = 0
            while n + 8 <= count {
                var k = next()
                k |= next() << 8
                k |= next() << 16
                k |= next() << 24
                k |= next() << 32
                k |= next() << 40
                k |= next() << 48
                k |= next() << 56
                let v = src.loadUnaligned(fromByteOffset: n, as: UInt64.self)
                base.storeBytes(of: v ^ UInt64(littleEndian: k), toByteOffset: n, as: UInt64.self)
                n += 8
            }
            while n < count {
                base.storeBytes(of: src.load(fromByteOffset: n, as: UInt8.self) ^ UInt8(truncatingIfNeeded: next()),
                                toByteOffset: n, as: UInt8.self)
                n += 1
            }
            return (i, j)
        }
    }

    public mutating func apply(to bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { apply(to: $0) }
    }
}
