// swift-tools-version:5.10
// libFuzzer targets, in their own package so that nobody else builds them with the fuzzer's flags.
// Build and run through ../scripts/fuzz.sh (no argument lists the targets).
import PackageDescription

/// The sans-IO core alone: what decodes wire bytes and what the mesh makes of them, no sockets linked.
let coreDependencies: [Target.Dependency] = [
    "FuzzDriver",
    .product(name: "MeshCore", package: "lsp2p"),
    .product(name: "NIOCore", package: "swift-nio"),
]

let package = Package(
    name: "lsp2p-fuzz",
    dependencies: [
        .package(name: "lsp2p", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzDriver"),
        /// The frame decoder and the join handshake, as either side, fed any bytes.
        .executableTarget(name: "FuzzFrames", dependencies: coreDependencies + [
            .product(name: "ChunkMesh", package: "lsp2p"), .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        /// `Message.decode`, and what it decodes must encode back to itself.
        .executableTarget(name: "FuzzMessages", dependencies: coreDependencies),
        /// `Message.decode` → `MeshPeer.handle` over a scripted little mesh.
        .executableTarget(name: "FuzzPeer", dependencies: coreDependencies),
    ]
)
