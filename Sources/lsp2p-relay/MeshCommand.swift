import ArgumentParser
import ChunkMesh
import MeshCore
import CommandSupport
import LSP2PKit

struct MeshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Show the mesh: each peer's parent and delay per substream, residual units, children.",
        discussion: """
        No node hears every peer: mesh asks the node in the URL for its view (itself and the peers linked to it),
        then each peer named there, and so on, 16 at a time. Examples:
          lsp2p-relay mesh lsp2p://192.168.1.20:7000 --key-file channel.key
          lsp2p-relay mesh "$URL" --dot | dot -Tsvg > mesh.svg
        """
    )

    @Argument(help: "Join URL of the origin: lsp2p://HOST:PORT?key=HEX64")
    var url: String

    @Option(help: "Key file (the channel key, and origin= for the origin's public key), instead of ?key= and &origin= in the URL.")
    var keyFile: String?

    @Flag(help: "Print JSON (snake_case keys) instead of text.")
    var json = false

    @Flag(help: "Print Graphviz (parent -> child, labelled with substreams) instead of text.")
    var dot = false

    @Option(help: "Seconds to wait for the first node's answer (others get at most 2).")
    var timeout: Int64 = 5

    @Flag(inversion: .prefixedNo, help: "Walk the mesh from node to node; --no-crawl shows only the first node's view.")
    var crawl = true

    @Option(help: "Most nodes to ask.")
    var limit = 100_000

    func validate() throws {
        do { _ = try JoinURL(url) } catch { throw ValidationError("\(error)") }
        if json && dot { throw ValidationError("--json and --dot cannot be given together") }
        guard (1...3_600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() throws {
        let url = try JoinURL(url)
        let key = try resolveKey(keyFile: keyFile, url: url)
        try exitingOnFailure("lsp2p-relay") {
            let map = try MeshMap.fetch(from: url.address, key: key, timeout: timeout, crawl: crawl, limit: limit)
            print(json ? try map.json() : dot ? map.dot() : map.text())
        }
    }
}
