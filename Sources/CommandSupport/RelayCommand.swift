import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import LSP2PKit
import Logging
import NodeHTTP

/// `lsp2p-relay relay`. It needs no FFmpeg: `lsp2p-relay` (which links FFmpeg for `source`) hands it to
/// `lsp2p-relay-node`, the same command built without FFmpeg, when that binary sits next to it, so a relay's
/// process maps half the memory (`LSP2P_IN_PROCESS=1` keeps it in process). A relay that serves browsers
/// (`--http`) stays in `lsp2p-relay`, whose FFmpeg remuxes `/stream.mp4`.
public struct RelayCommand: ParsableCommand {
    public init() {}

    /// Set by a binary that links FFmpeg: how it makes `/stream.mp4`.
    nonisolated(unsafe) public static var fragmenter: (@Sendable (Logger) -> BrowserViews.MakeFragmenter)?

    public static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Join a channel as a mesh relay: take parents by power, forward to children up to --uplink.",
        discussion: """
        Example, on another machine of the LAN:
          lsp2p-relay relay lsp2p://192.168.1.20:7000 --key-file channel.key --uplink 16M --listen 0.0.0.0:7100
        Runs until SIGINT/SIGTERM, then leaves (its children move first). With --upload-budget or --until it hands its \
        children over to other parents once it has spent its share (each keeps being fed until it has a new parent, \
        a few seconds at most) and exits 0.
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

    @OptionGroup var limit: UploadLimitOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var common: CommonOptions

    public func validate() throws {
        do { _ = try JoinURL(url) } catch { throw ValidationError("\(error)") }
    }

    public func run() throws {
        if http.listen == nil || Self.fragmenter == nil { execFFmpegFreeNode() }
        let logger = common.makeLogger("lsp2p.relay")
        let url = try JoinURL(url)
        let keys = try resolveKeys(keyFile: keyFile, url: url)
        var service = RelayService(url: url, key: keys.channel, listen: listen, uplink: uplink, quiet: common.quiet)
        service.originKey = keys.origin
        service.http = http.listen
        service.limit = limit.limit
        service.fragmenter = Self.fragmenter?(logger)
        try exitingOnFailure("lsp2p-relay") { try service.run(logger: logger) }
    }
}

/// Replaces this process with `lsp2p-relay-node` (next to this binary), passing the arguments after `relay`; returns
/// when there is no such binary, when this is it already, or with `LSP2P_IN_PROCESS` set.
func execFFmpegFreeNode() {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let node = exe.deletingLastPathComponent().appendingPathComponent("lsp2p-relay-node").path
    guard exe.lastPathComponent != "lsp2p-relay-node", ProcessInfo.processInfo.environment["LSP2P_IN_PROCESS"] == nil,
          FileManager.default.isExecutableFile(atPath: node) else { return }
    let args = CommandLine.arguments
    guard args.count > 1, args[1] == "relay" else { return }
    let argv = (["lsp2p-relay-node"] + args.dropFirst(2)).map { strdup($0) } + [nil]
    execv(node, argv)
    // Only on failure: run in process.
    for arg in argv { free(arg) }
}
