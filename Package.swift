// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "lsp2p",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lsp2p-relay", targets: ["lsp2p-relay"]),
        .executable(name: "lsp2p-play", targets: ["lsp2p-play"]),
        .executable(name: "lsp2p-relay-node", targets: ["lsp2p-relay-node"]),
        .executable(name: "lsp2p-sim", targets: ["lsp2p-sim"]),
        .library(name: "ChunkMesh", targets: ["ChunkMesh"]),
        .library(name: "MeshCore", targets: ["MeshCore"]),
        .library(name: "StreamIngest", targets: ["StreamIngest"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev",
                              "libavdevice-dev", "libswscale-dev", "libswresample-dev"])]
        ),
        /// The sans-IO core: chunks, wire, crypto, the mesh protocol, playout. No sockets, no clock, no FFmpeg: the
        /// simulator and the fuzzers run it as the relays do.
        .target(
            name: "MeshCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // The core's small accessors inlined where the simulator and the driver read them after every event.
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        /// The core's NIO drivers: links, the node, the observer's view. It does not re-export MeshCore: a target
        /// that uses the core's types depends on MeshCore and imports it itself. Through a re-export, an
        /// incremental build misses a private stored property added to a core struct and links the dependents
        /// against the old layout (swiftlang/swift#89636: a release `lsp2p-relay source` aborted in malloc).
        .target(
            name: "ChunkMesh",
            dependencies: [
                "MeshCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        /// FFmpeg: open, pace, transcode, mux MPEG-TS, cut chunks; remux at the receiver. No networking.
        .target(
            name: "StreamIngest",
            dependencies: [
                "CFFmpeg", "ChunkMesh", "MeshCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// Small SVG charts for the reports.
        .target(name: "Plots"),
        /// The simulator: the real mesh core on a simulated network, the baselines, and the packet-level model.
        // The simulator's dynamic exclusivity checks (its peers are class boxes read from closures) were 7 % of a
        // `lsp2p-sim check` run; the core it drives keeps them.
        .target(name: "MeshSim", dependencies: ["MeshCore", "Plots", .product(name: "NIOCore", package: "swift-nio")],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        /// The HTTP pieces every node shares: the status page and `/status.json`, `/metrics`, and the served stream.
        .target(
            name: "NodeHTTP",
            dependencies: [
                "ChunkMesh", "MeshCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        /// What the commands share without FFmpeg: the relay service, the mesh walk, the player's report, logging.
        .target(
            name: "LSP2PKit",
            dependencies: [
                "ChunkMesh", "MeshCore", "NodeHTTP", "Plots",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        /// The services that touch media: the source (ingest + origin) and the player.
        .target(
            name: "MediaServices",
            dependencies: [
                "LSP2PKit", "StreamIngest", "NodeHTTP", "ChunkMesh", "MeshCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        /// `lsp2p-relay soak`: real processes on loopback, read through the players' `--report` files.
        .target(
            name: "Soak",
            dependencies: ["LSP2PKit", "StreamIngest", "Plots", "ChunkMesh", "MeshCore", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        /// The commands' shared options and exit codes (ArgumentParser lives here and in the executables only).
        .target(
            name: "CommandSupport",
            dependencies: ["LSP2PKit", "ChunkMesh", "MeshCore", "NodeHTTP", .product(name: "Logging", package: "swift-log"), .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lsp2p-relay",
            dependencies: ["CommandSupport", "LSP2PKit", "MediaServices", "Soak", "StreamIngest", "ChunkMesh", "MeshCore",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        /// `lsp2p-relay relay` without FFmpeg: `lsp2p-relay` hands the relay command to it.
        .executableTarget(name: "lsp2p-relay-node", dependencies: ["CommandSupport"]), // imports neither mesh module
        .executableTarget(
            name: "lsp2p-play",
            dependencies: ["CommandSupport", "LSP2PKit", "MediaServices", "StreamIngest", "ChunkMesh", "MeshCore",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        /// FFmpeg-free: the simulator links the core, not the media services.
        .executableTarget(
            name: "lsp2p-sim",
            dependencies: ["MeshSim", "CommandSupport", "LSP2PKit", "ChunkMesh", "MeshCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "ChunkMeshTests",
            dependencies: [
                "ChunkMesh", "MeshCore", "MeshSim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        /// The committed sample, temp folders, and ffmpeg/ffprobe checks, for the media and end-to-end tests.
        .target(name: "TestMedia", path: "Tests/TestMedia"),
        .testTarget(name: "StreamIngestTests", dependencies: ["StreamIngest", "ChunkMesh", "MeshCore", "TestMedia"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestMedia"]),
        .testTarget(name: "MeshSimTests", dependencies: ["MeshSim", "ChunkMesh", "MeshCore"]),
        .testTarget(name: "LSP2PKitTests", dependencies: ["LSP2PKit", "ChunkMesh", "MeshCore", "Plots"]),
        .testTarget(name: "NodeHTTPTests", dependencies: ["NodeHTTP", "ChunkMesh", "MeshCore", "StreamIngest", "MediaServices", "TestMedia", .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]),
    ]
)
