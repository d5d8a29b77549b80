import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import CommandSupport
import LSP2PKit
import StreamIngest

struct ChunkInput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chunk",
        abstract: "Ingest an input as `source` would and write the chunks' MPEG-TS to a file, without a network.",
        discussion: """
        Shows what a source would send: streams copied or transcoded, chunk count, durations and \
        random-access points. Reads as fast as it can unless --realtime. Example:
          lsp2p-relay chunk --input samples/sample.mp4 --output /tmp/sample.ts
        """
    )

    @Option(name: .shortAndLong, help: "Input: a file, a URL, - for stdin, or a device with --format.")
    var input: String

    @Option(help: "Input format for libavformat; probed when absent.")
    var format: String?

    @Option(name: .shortAndLong, help: "Where to write the MPEG-TS (- for stdout). Nothing is written when absent.")
    var output: String?

    @Option(help: "Target chunk duration in milliseconds.")
    var chunkMs = 200

    @Flag(help: "Pace reading to the stream clock, like ffmpeg -re.")
    var realtime = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (20...10_000).contains(chunkMs) else { throw ValidationError("--chunk-ms must be 20 to 10000") }
    }

    func run() throws {
        let logger = common.makeLogger("lsp2p.chunk")
        setFFmpegLogging(verbose: logger.logLevel <= .debug)
        do {
            let ingest = try Ingest(options: IngestOptions(input: InputSpec(location: input, format: format), realtime: realtime,
                                                           chunkDuration: Int64(chunkMs) * 1000))
            let sink = try output.map(FileSink.init(path:))
            var count = 0, randomAccess = 0, bytes = 0
            var longest: Int64 = 0, total: Int64 = 0
            var writeError: Error?
            try ingest.run { chunk in
                guard writeError == nil else { return }
                count += 1
                if chunk.isRandomAccess { randomAccess += 1 }
                bytes += chunk.payload.readableBytes
                total += chunk.duration
                longest = max(longest, chunk.duration)
                do { try sink?.write(chunk.payload) } catch {
                    writeError = error
                    ingest.stop()
                }
            }
            if let writeError { throw writeError }
            try sink?.finish()
            printErr("\(input): \(ingest.streamSummary.joined(separator: ", "))")
            printErr(String(format: "%d chunks (%d random-access), %d bytes, %.2f s, mean %.0f ms, longest %.0f ms",
                            count, randomAccess, bytes, Double(total) / 1e6,
                            count == 0 ? 0 : Double(total) / Double(count) / 1000, Double(longest) / 1000))
        } catch {
            printErr("lsp2p-relay: \(error)")
            throw ExitCode.failure
        }
    }
}
