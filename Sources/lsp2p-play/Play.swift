import ArgumentParser
import ChunkMesh
import MeshCore
import CommandSupport
import LSP2PKit
import MediaServices

@main
struct Play: ParsableCommand {
    static func main() { mainWithContractExitCodes() }

    static let configuration = CommandConfiguration(
        commandName: "lsp2p-play",
        abstract: "Join an lsp2p channel; write the stream, in order, to a file or stdout, or serve it to local players.",
        discussion: """
        Chunks are put back in order; a missing chunk is waited for until its deadline \
        (ingest time + --deadline-ms) and then skipped. Output: MPEG-TS, or MP4/MKV by file extension. \
        Logs and the stats line go to stderr. Examples:
          lsp2p-play 'lsp2p://127.0.0.1:7000?key=…' --output out.ts
          lsp2p-play lsp2p://[::1]:7000 --key-file channel.key --output - | ffplay -
          lsp2p-play "$URL" --serve 127.0.0.1:8090    # mpv http://127.0.0.1:8090/stream.ts
          lsp2p-play "$URL" --player mpv              # or vlc, ffplay; ends when it does
          lsp2p-play "$URL" -o out.ts --http 127.0.0.1:8080   # status page
        Exit codes: 0 success, 1 runtime failure (wrong key, source lost, output unwritable), 2 usage error.
        """
    )

    @Argument(help: "Join URL: lsp2p://HOST:PORT?key=HEX64&origin=HEX64")
    var url: String

    @Option(name: .shortAndLong, help: "Output file (.ts, .mp4, .mkv) or - for stdout. Needed unless --serve or --player.")
    var output: String?

    @Option(help: "Serve the stream to local players at http://HOST:PORT/stream.ts (e.g. 127.0.0.1:8090), as many as come.")
    var serve: HostPort?

    @Option(help: "Start this player on the served stream: mpv, vlc or ffplay. The run ends when the player exits.")
    var player: PlayerApp?

    @Option(help: "Key file (the channel key, and origin= for the origin's public key), instead of ?key= and &origin= in the URL.")
    var keyFile: String?

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    @Option(help: "Playout delay in milliseconds: how long after ingest a chunk is due.")
    var deadlineMs = 2000

    @Option(help: "Write a JSON report here (chunk counts, latency, parents): every 5 s while playing, and at exit.")
    var report: String?

    @Option(help: "Upload offered to other peers in bits/s (8M, 500k). Default: one stream's worth.")
    var uplink: BitRate?

    @Flag(help: "Upload nothing: a pure leaf of the mesh.")
    var noUpload = false

    @Option(help: "Address to listen on for peers, HOST:PORT. Default: the interface that reaches the join address, any port.")
    var listen: HostPort?

    @OptionGroup var limit: UploadLimitOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        _ = try parsedURL()
        try Duration.checkSeconds(duration, "--duration")
        guard (1...3_600_000).contains(deadlineMs) else { throw ValidationError("--deadline-ms must be 1 to 3600000 (an hour)") }
        if noUpload, uplink != nil { throw ValidationError("--no-upload and --uplink exclude each other") }
        if output == nil, serve == nil, player == nil { throw ValidationError("nothing to play to: give --output FILE, --serve HOST:PORT or --player") }
        if noUpload, limit.limit.isSet { throw ValidationError("--no-upload uploads nothing: --upload-budget and --until do not apply") }
    }

    private func parsedURL() throws -> JoinURL {
        do { return try JoinURL(url) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.play")
        let url = try parsedURL()
        let keys = try resolveKeys(keyFile: keyFile, url: url)
        var service = PlayerService(url: url, key: keys.channel, output: output,
                                    duration: duration, deadlineMs: deadlineMs, reportPath: report, quiet: common.quiet)
        service.uplink = uplink
        service.noUpload = noUpload
        service.listen = listen
        service.originKey = keys.origin
        service.serve = serve
        service.player = player
        service.http = http.listen
        service.limit = limit.limit
        try exitingOnFailure("lsp2p-play") { try service.run(logger: logger) }
    }
}

extension PlayerApp: ExpressibleByArgument {}
