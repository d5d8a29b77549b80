import ArgumentParser
import ChunkMesh
import LSP2PKit

@main
struct Play: ParsableCommand {
    static func main() { mainWithContractExitCodes() }

    static let configuration = CommandConfiguration(
        commandName: "lsp2p-play",
        abstract: "Join an lsp2p channel and write the stream, in order, to a file or stdout.",
        discussion: """
        Chunks are put back in order; a missing chunk is waited for until its deadline \
        (ingest time + --deadline-ms) and then skipped. Output: MPEG-TS, or MP4/MKV by file extension. \
        Logs and the stats line go to stderr. Examples:
          lsp2p-play 'lsp2p://127.0.0.1:7000?key=…' --output out.ts
          lsp2p-play lsp2p://[::1]:7000 --key-file channel.key --output - | ffplay -
        Exit codes: 0 success, 1 runtime failure (wrong key, source lost, output unwritable), 2 usage error.
        """
    )

    @Argument(help: "Join URL: lsp2p://HOST:PORT?key=HEX64&origin=HEX64")
    var url: String

    @Option(name: .shortAndLong, help: "Output file (.ts, .mp4, .mkv) or - for stdout.")
    var output: String

    @Option(help: "Key file (the channel key, and origin= for the origin's public key), instead of ?key= and &origin= in the URL.")
    var keyFile: String?

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    @Option(help: "Playout delay in milliseconds: how long after ingest a chunk is due.")
    var deadlineMs = 2000

    @Option(help: "Write a JSON report here at exit (chunk counts, latency, parents).")
    var report: String?

    @Option(help: "Upload offered to other peers in bits/s (8M, 500k). Default: one stream's worth.")
    var uplink: BitRate?

    @Flag(help: "Upload nothing: a pure leaf of the mesh.")
    var noUpload = false

    @Option(help: "Address to listen on for peers, HOST:PORT. Default: the interface that reaches the join address, any port.")
    var listen: HostPort?

    @OptionGroup var common: CommonOptions
    @OptionGroup var metrics: MetricsOptions

    func validate() throws {
        _ = try parsedURL()
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        guard deadlineMs > 0 else { throw ValidationError("--deadline-ms must be positive") }
        if noUpload, uplink != nil { throw ValidationError("--no-upload and --uplink exclude each other") }
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
        try exitingOnFailure("lsp2p-play") {
            try metrics.serving(logger: logger) { try service.run(logger: logger) }
        }
    }
}
