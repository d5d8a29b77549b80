// swift-tools-version: 6.1
// Benchmarks live in their own package so users of lsp2p never build them.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
import PackageDescription

/// What the in-process mesh benchmarks use.
let meshDependencies: [Target.Dependency] = [
    .product(name: "ChunkMesh", package: "lsp2p"),
    .product(name: "MeshCore", package: "lsp2p"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
    .product(name: "Histogram", package: "hdrhistogram-swift"),
    .product(name: "Logging", package: "swift-log"),
]

let package = Package(
    name: "lsp2p-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "lsp2p", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "LinkCrypto",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ChunkMesh", package: "lsp2p"),
                .product(name: "MeshCore", package: "lsp2p"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/LinkCrypto",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        /// Per-hop latency and CPU of the mesh over loopback: `swift run -c release mesh-chain [N ...]`.
        .executableTarget(
            name: "mesh-chain",
            dependencies: meshDependencies,
            path: "Benchmarks/MeshChain",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        /// Time from a relay's death to its children's next chunk: `swift run -c release mesh-recovery [ROUNDS]`.
        .executableTarget(
            name: "mesh-recovery",
            dependencies: meshDependencies,
            path: "Benchmarks/MeshRecovery",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
