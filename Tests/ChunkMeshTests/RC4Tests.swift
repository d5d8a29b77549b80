import ChunkMesh
import MeshCore
import XCTest

/// RFC 6229, section 2: keystream at offsets 0, 16, 240, 256, ... 4096 for three keys.
final class RC4Tests: XCTestCase {
    private let offsets = [0x0000, 0x0010, 0x00f0, 0x0100, 0x01f0, 0x0200, 0x02f0, 0x0300, 0x03f0,
                           0x0400, 0x05f0, 0x0600, 0x07f0, 0x0800, 0x0bf0, 0x0c00, 0x0ff0, 0x1000]

    private let vectors: [(key: String, stream: [String])] = [
        ("0102030405", [
            "b2396305f03dc027ccc3524a0a1118a8", "6982944f18fc82d589c403a47a0d0919",
            "28cb1132c96ce286421dcaadb8b69eae", "1cfcf62b03eddb641d77dfcf7f8d8c93",
            "42b7d0cdd918a8a33dd51781c81f4041", "6459844432a7da923cfb3eb4980661f6",
            "ec10327bde2beefd18f9277680457e22", "eb62638d4f0ba1fe9fca20e05bf8ff2b",
            "45129048e6a0ed0b56b490338f078da5", "30abbcc7c20b01609f23ee2d5f6bb7df",
            "3294f744d8f9790507e70f62e5bbceea", "d8729db41882259bee4f825325f5a130",
            "1eb14a0c13b3bf47fa2a0ba93ad45b8b", "cc582f8ba9f265e2b1be9112e975d2d7",
            "f2e30f9bd102ecbf75aaade9bc35c43c", "ec0e11c479dc329dc8da7968fe965681",
            "068326a2118416d21f9d04b2cd1ca050", "ff25b58995996707e51fbdf08b34d875",
        ]),
        ("0102030405060708090a0b0c0d0e0f10", [
            "9ac7cc9a609d1ef7b2932899cde41b97", "5248c4959014126a6e8a84f11d1a9e1c",
            "065902e4b620f6cc36c8589f66432f2b", "d39d566bc6bce3010768151549f3873f",
            "b6d1e6c4a5e4771cad79538df295fb11", "c68c1d5c559a974123df1dbc52a43b89",
            "c5ecf88de897fd57fed301701b82a259", "eccbe13de1fcc91c11a0b26c0bc8fa4d",
            "e7a72574f8782ae26aabcf9ebcd66065", "bdf0324e6083dcc6d3cedd3ca8c53c16",
            "b40110c4190b5622a96116b0017ed297", "ffa0b514647ec04f6306b892ae661181",
            "d03d1bc03cd33d70dff9fa5d71963ebd", "8a44126411eaa78bd51e8d87a8879bf5",
            "fabeb76028ade2d0e48722e46c4615a3", "c05d88abd50357f935a63c59ee537623",
            "ff38265c1642c1abe8d3c2fe5e572bf8", "a36a4c301ae8ac13610ccbc12256cacc",
        ]),
        ("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", [
            "eaa6bd25880bf93d3f5d1e4ca2611d91", "cfa45c9f7e714b54bdfa80027cb14380",
            "114ae344ded71b35f2e60febad727fd8", "02e1e7056b0f623900496422943e97b6",
            "91cb93c787964e10d9527d999c6f936b", "49b18b42f8e8367cbeb5ef104ba1c7cd",
            "87084b3ba700bade955610672745b374", "e7a7b9e9ec540d5ff43bdb12792d1b35",
            "c799b596738f6b018c76c74b1759bd90", "7fec5bfd9f9b89ce6548309092d7e958",
            "40f250b26d1f096a4afd4c340a588815", "3e34135c79db010200767651cf263073",
            "f656abccf88dd827027b2ce917d464ec", "18b62503bfbc077fbabb98f20d98ab34",
            "8aed95ee5b0dcbfbef4eb21d3a3f52f9", "625a1ab00ee39a5327346bddb01a9c18",
            "a13a7c79c7e119b5ab0296ab28c300b9", "f3e4c0a2e02d1d01f7f0a74618af2b48",
        ]),
    ]

    func testRFC6229Vectors() {
        for (key, stream) in vectors {
            var rc4 = RC4(key: hexBytes(key))
            var keystream = [UInt8](repeating: 0, count: 0x1010)
            rc4.apply(to: &keystream)
            for (offset, expected) in zip(offsets, stream) {
                XCTAssertEqual(hex(keystream[offset..<offset + 16]), expected, "key \(key) offset \(offset)")
            }
        }
    }

    func testDropSkipsThatMuchKeystream() {
        var full = RC4(key: hexBytes("0102030405"))
        var stream = [UInt8](repeating: 0, count: 0x1010)
        full.apply(to: &stream)
        var dropped = RC4(key: hexBytes("0102030405"), drop: 0x0c00)
        var tail = [UInt8](repeating: 0, count: 16)
        dropped.apply(to: &tail)
        XCTAssertEqual(hex(tail[...]), "ec0e11c479dc329dc8da7968fe965681")
        XCTAssertEqual(tail, Array(stream[0x0c00..<0x0c10]))
    }

    func testPiecewiseEqualsWholeAndDecryptInverts() {
        let plain = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var whole = plain
        var a = RC4(key: [1, 2, 3], drop: RC4.linkDrop)
        a.apply(to: &whole)
        var pieces = plain
        var b = RC4(key: [1, 2, 3], drop: RC4.linkDrop)
        var start = 0
        for size in [1, 7, 188, 1000, 3804] {
            pieces.withUnsafeMutableBytes { b.apply(to: UnsafeMutableRawBufferPointer(rebasing: $0[start..<start + size])) }
            start += size
        }
        XCTAssertEqual(whole, pieces)
        XCTAssertNotEqual(whole, plain)
        var c = RC4(key: [1, 2, 3], drop: RC4.linkDrop)
        c.apply(to: &whole)
        XCTAssertEqual(whole, plain)
    }
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s)
    if chars.count % 2 == 1 { chars.insert("0", at: 0) }
    for i in stride(from: 0, to: chars.count, by: 2) { out.append(UInt8(String(chars[i...i + 1]), radix: 16)!) }
    return out
}

func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    bytes.map { String(format: "%02x", $0) }.joined()
}
