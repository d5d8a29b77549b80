import ArgumentParser
import ChunkMesh
import LSP2PKit

struct RelayNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Join a channel as a mesh relay: take parents by power, forward to children up to --uplink.",
        discussion: """
        Example, on another machine of the LAN:
          lsp2p-relay relay lsp2p://192.168.1.20:7000 --key-file channel.key --uplink 16M --listen 0.0.0.0:7100
        Runs until SIGINT/SIGTERM, then leaves (its children move first).
        """
    )

    @Argument(help: "Join URL: lsp2p://HOST:PORT?key=HEX64&origin=HEX64")
    var url: String

    @Option(help: "Address to listen on for peers, HOST:PORT. Default: the interface that reaches the join address, any port.")
    var listen: HostPort?

    @Option(help: "Upload budget in bits/s (8M, 500k). Default: two streams' worth, unshaped.")
    var uplink: BitRate?

    @Option(help: "Key file (the channel key, and origin= for the origin's public key), instead of ?key= and &origin= in the URL.")
    var keyFile: String?

    @OptionGroup var common: CommonOptions
    @OptionGroup var metrics: MetricsOptions

    func validate() throws {
        do { _ = try JoinURL(url) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.relay")
        let url = try JoinURL(url)
        let keys = try resolveKeys(keyFile: keyFile, url: url)
        var service = RelayService(url: url, key: keys.channel, listen: listen, uplink: uplink, quiet: common.quiet)
        service.originKey = keys.origin
        try exitingOnFailure("lsp2p-relay") {
            try metrics.serving(logger: logger) { try service.run(logger: logger) }
        }
    }
}
