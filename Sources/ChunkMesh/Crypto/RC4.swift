/// The RC4 stream cipher (RFC 6229 checks it). Encryption and decryption are the same XOR.
///
/// RC4's early keystream is biased, so links drop the first ``linkDrop`` bytes before use.
public struct RC4 {
    /// Keystream bytes a link discards before its first frame (RFC 4345 recommends at least 1536).
    public static let linkDrop = 3072

    // UInt32 cells: byte-sized cells make the compiler re-load and widen on every step.
    private var s: [UInt32]
    private var i: UInt8 = 0
    private var j: UInt8 = 0

    public init<Key: Collection>(key: Key, drop: Int = 0) where Key.Element == UInt8 {
        precondition(!key.isEmpty && key.count <= 256, "RC4 takes a key of 1 to 256 bytes")
        let key = Array(key)
        var s = (0..<256).map { UInt32($0) }
        var j: UInt32 = 0
        for i in 0..<256 {
            j = (j &+ s[i] &+ UInt32(key[i % key.count])) & 0xFF
            s.swapAt(i, Int(j))
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
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let count = bytes.count
        var i = self.i
        var j = self.j
        s.withUnsafeMutableBufferPointer { sp in
            let s = sp.baseAddress!
            for n in 0..<count {
                i &+= 1
                let si = s[Int(i)]
                j &+= UInt8(truncatingIfNeeded: si)
                let sj = s[Int(j)]
                s[Int(i)] = sj
                s[Int(j)] = si
                base[n] ^= UInt8(truncatingIfNeeded: s[Int(UInt8(truncatingIfNeeded: si &+ sj))])
            }
        }
        self.i = i
        self.j = j
    }

    public mutating func apply(to bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { apply(to: $0) }
    }
}
