import Benchmark
import ChunkMesh
import MeshCore
import NIOCore

/// Link crypto on the hot path: RC4 alone (against `openssl speed -evp rc4`), and whole frames sealed and opened.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.throughput, .wallClock, .cpuTotal], maxDuration: .seconds(3))

    // 64 blocks of 16 KiB per iteration: 1 MiB, so throughput × 1 MiB is bytes per second.
    Benchmark("RC4 16 KiB blocks (1 MiB per iteration)") { benchmark in
        var rc4 = RC4(key: [UInt8](repeating: 7, count: 32), drop: RC4.linkDrop)
        var block = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in benchmark.scaledIterations {
            for _ in 0..<64 { rc4.apply(to: &block) }
            blackHole(block)
        }
    }

    let keys = deriveLinkKeys(channelKey: .random(), sharedSecret: [7], clientNonce: [1], serverNonce: [2], clientAddress: "a", suite: .rc4HmacSHA256)
    // An 8 Mbit/s stream in 200 ms chunks: 200 kB each.
    let chunk = ByteBuffer(bytes: [UInt8](repeating: 0x47, count: 200_000))

    for suite in CipherSuite.allCases {
        Benchmark("seal+open 200 kB chunk, \(suite)") { benchmark in
            var sender = LinkCipher(suite: suite, send: keys.clientToServer, receive: keys.serverToClient)
            var receiver = LinkCipher(suite: suite, send: keys.serverToClient, receive: keys.clientToServer)
            for _ in benchmark.scaledIterations {
                let frame = sender.seal(chunk)
                blackHole(try receiver.open(frame.payload))
            }
        }
    }

    // Origin signatures (Ed25519 over the header and SHA-256 of the payload): once per chunk at the origin, and
    // once per chunk at every peer.
    let signer = OriginSigningKey()
    for (label, bytes) in [("25 kB (1 Mbit/s)", 25_000), ("200 kB (8 Mbit/s)", 200_000)] {
        var chunk = Chunk(seq: 1, epoch: 1, ingestTime: 1, pts: 0, duration: 200_000, flags: [],
                          payload: ByteBuffer(bytes: [UInt8](repeating: 0x47, count: bytes / 188 * 188)))
        Benchmark("sign \(label) chunk") { benchmark in
            for _ in benchmark.scaledIterations {
                signer.sign(&chunk)
                blackHole(chunk.signature)
            }
        }
        signer.sign(&chunk)
        let signed = chunk
        Benchmark("verify \(label) chunk") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(signer.publicKey.verifies(signed)) }
        }
    }
}
