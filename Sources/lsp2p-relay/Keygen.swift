import ArgumentParser
import ChunkMesh

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a new channel key (64 hex characters) for --key-file.",
        discussion: "Example: lsp2p-relay keygen > channel.key"
    )

    func run() {
        print(ChannelKey.random().hex)
    }
}
