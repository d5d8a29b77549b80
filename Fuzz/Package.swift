// swift-tools-version:5.10
// libFuzzer targets, in their own package so that nobody else builds them with the fuzzer's flags.
// Build and run through ../scripts/fuzz.sh (no argument lists the targets).
import PackageDescription

let fuzzDependencies: [Target.Dependency] = [
    "FuzzDriver",
    .product(name: "ChunkMesh", package: "lsp2p"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
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
        .executableTarget(name: "FuzzFrames", dependencies: fuzzDependencies),
        /// `Message.decode`, and what it decodes must encode back to itself.
        .executableTarget(name: "FuzzMessages", dependencies: fuzzDependencies),
        /// `Message.decode` → `MeshPeer.handle` over a scripted little mesh.
        .executableTarget(name: "FuzzPeer", dependencies: fuzzDependencies),
    ]
)
