import Benchmark
import ChunkMesh
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

    let keys = deriveLinkKeys(channelKey: .random(), clientNonce: [1], serverNonce: [2], clientAddress: "a", suite: .rc4HmacSHA256)
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
}
