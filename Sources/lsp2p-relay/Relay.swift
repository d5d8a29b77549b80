import ArgumentParser
import CommandSupport
import LSP2PKit
import MediaServices

@main
struct Relay: ParsableCommand {
    static func main() {
        // `relay --http` serves /stream.mp4 with this binary's FFmpeg.
        RelayCommand.fragmenter = MP4Feed.maker(logger:)
        mainWithContractExitCodes()
    }

    static let configuration = CommandConfiguration(
        commandName: "lsp2p-relay",
        abstract: "Push a live stream to many peers: the origin and the mesh relays of lsp2p.",
        discussion: """
        Start an origin with `lsp2p-relay source --input FILE`; it prints a join URL \
        (lsp2p://HOST:PORT?key=HEX64) that players (`lsp2p-play URL --output F`) join.
        Exit codes: 0 success, 1 runtime failure, 2 usage error.
        """,
        subcommands: [Source.self, RelayCommand.self, MeshCommand.self, Soak.self, Keygen.self, ChunkInput.self]
    )
}
