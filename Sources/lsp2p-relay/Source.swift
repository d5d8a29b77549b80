import ArgumentParser
import ChunkMesh
import MeshCore
import CommandSupport
import Foundation
import LSP2PKit
import MediaServices
import StreamIngest

struct Source: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ingest a live source and serve it as the origin of a channel.",
        discussion: """
        The input is demuxed with libavformat, transcoded to H.264/AAC only when MPEG-TS cannot carry \
        it as is, cut into MPEG-TS chunks and sent to every joiner, encrypted per link. The join URL \
        goes to stderr. Examples:
          lsp2p-relay source --input samples/sample.mp4 --loop
          lsp2p-relay source --input /dev/video0 --format v4l2 --listen 0.0.0.0:7000
          ffmpeg -i in.mkv -c copy -f mpegts - | lsp2p-relay source --input -
          lsp2p-relay source --input samples/sample.mp4 --loop --http 127.0.0.1:8080   # status page and the mesh drawn
          lsp2p-relay source --input rtmp://0.0.0.0:1935/live/key --input-option listen=1   # OBS pushes here
          lsp2p-relay source --input 'srt://0.0.0.0:9000?mode=listener'                      # ffmpeg/OBS over SRT
        """
    )

    @Option(name: .shortAndLong, help: "Input: a file, a URL, - for stdin, or a device with --format.")
    var input: String

    @Option(help: "Input format for libavformat (v4l2, lavfi, mpegts, ...); probed when absent.")
    var format: String?

    @Option(name: .customLong("input-option"), help: ArgumentHelp(
        "An option of the input's demuxer or protocol, KEY=VALUE, as ffmpeg takes before -i (repeatable): listen=1 for an RTMP server OBS pushes to, rtsp_transport=tcp, timeout=5000000.",
        valueName: "key=value"))
    var inputOptions: [String] = []

    @Option(help: "Address to listen on, HOST:PORT ([::1]:7000 for IPv6).")
    var listen = HostPort(host: "127.0.0.1", port: 7000)

    @Option(help: "Key file from `lsp2p-relay keygen`: the channel key and the origin's signing key (origin-secret=). Keys missing from it are made anew and the join URL carries them.")
    var keyFile: String?

    @Option(help: "Target chunk duration in milliseconds.")
    var chunkMs = 200

    @Flag(help: "Start the input again when it ends.")
    var loop = false

    @Flag(help: "When the sender goes (OBS stops streaming, a camera drops), wait for it to come back and go on as a new run (players start over at its first keyframe) instead of ending.")
    var reconnect = false

    @Flag(inversion: .prefixedNo, help: "Pace reading to the stream clock, like ffmpeg -re. Default: on for files, off for stdin, URLs and devices.")
    var realtime: Bool?

    @Option(help: "Upload budget of the origin in bits/s (8M, 500k): it feeds that much of the mesh directly, relays and players carry the rest. Unlimited when absent.")
    var uplink: BitRate?

    @Option(help: "Substreams k: the stream is cut seq mod k into k trees, each a unit of upload (every peer takes the origin's).")
    var substreams = SubstreamPlan.defaultCount

    @Option(help: "Link cipher: rc4 (RC4 + HMAC-SHA256) or chacha20-poly1305.")
    var cipher = "rc4"

    @Option(help: "Hold the stream until this many receivers have joined.")
    var waitReceivers = 0

    @OptionGroup var http: HTTPOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (20...10_000).contains(chunkMs) else { throw ValidationError("--chunk-ms must be 20 to 10000") }
        guard waitReceivers >= 0 else { throw ValidationError("--wait-receivers cannot be negative") }
        guard (1...16).contains(substreams) else { throw ValidationError("--substreams must be 1 to 16") }
        guard CipherSuite(name: cipher) != nil else { throw ValidationError("--cipher must be rc4 or chacha20-poly1305") }
        _ = try parsedInputOptions()
        if reconnect {
            guard !loop else { throw ValidationError("--reconnect and --loop do not go together: a file loops, a sender reconnects") }
            guard input != "-", InputSpec(location: input, format: format).endsWhenTheSenderGoes || format != nil else {
                throw ValidationError("--reconnect is for a sender that can come back (a URL, a device with --format), not a file or stdin")
            }
        }
    }

    /// `--input-option KEY=VALUE`s as a dictionary (the last of a key wins).
    func parsedInputOptions() throws -> [String: String] {
        var options: [String: String] = [:]
        for item in inputOptions {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("--input-option takes KEY=VALUE (as ffmpeg's -KEY VALUE before -i), not '\(item)'")
            }
            options[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return options
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.source")
        let keys = try keyFile.map { try resolveKeys(keyFile: $0, url: nil) } ?? KeyFile(channel: ChannelKey.random())
        let key = keys.channel
        var service = SourceService(
            ingest: IngestOptions(input: InputSpec(location: input, format: format, options: try parsedInputOptions()), realtime: realtime,
                                  loop: loop, chunkDuration: Int64(chunkMs) * 1000),
            listen: listen, key: key, originSigner: keys.originSecret, suite: CipherSuite(name: cipher)!, uplink: uplink, waitReceivers: waitReceivers, quiet: common.quiet)
        service.substreams = substreams
        service.http = http.listen
        service.reconnect = reconnect
        try exitingOnFailure("lsp2p-relay") { try service.run(logger: logger) }
    }
}
