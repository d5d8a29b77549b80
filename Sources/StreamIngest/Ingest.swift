import CFFmpeg
import ChunkMesh
import MeshCore
import Foundation

/// How much FFmpeg itself may print on stderr. Quiet by default: our errors say what failed in one line.
public func setFFmpegLogging(verbose: Bool) {
    av_log_set_level(verbose ? AV_LOG_WARNING : AV_LOG_FATAL)
}

/// How to ingest.
public struct IngestOptions: Sendable {
    public var input: InputSpec
    /// Pace reading to the stream's own clock (like `ffmpeg -re`); nil picks: on for local files, off otherwise.
    public var realtime: Bool?
    /// Start again at the end of the input.
    public var loop = false
    /// Target chunk duration, in microseconds.
    public var chunkDuration: Int64 = 200_000

    public init(input: InputSpec, realtime: Bool? = nil, loop: Bool = false, chunkDuration: Int64 = 200_000) {
        self.input = input
        self.realtime = realtime
        self.loop = loop
        self.chunkDuration = chunkDuration
    }

    public var paced: Bool { realtime ?? input.isLocalFile }
}

/// Demuxes a live source, transcodes what MPEG-TS cannot carry, muxes MPEG-TS and cuts it into chunks.
///
/// `init` opens and checks everything, so a bad input fails before any network is set up.
/// `run` blocks its thread; call `stop()` from anywhere to end it early.
public final class Ingest: @unchecked Sendable {
    private struct Route {
        let input: UnsafeMutablePointer<AVStream>
        let output: UnsafeMutablePointer<AVStream>
        let transcoder: Transcoder?
    }

    public let options: IngestOptions
    private let input: MediaInput
    private let muxer: TSMuxer
    private var routes: [Int: Route] = [:]
    private let stopRequest: StopRequest
    /// One line per stream: codec, and whether it is copied or transcoded.
    public private(set) var streamSummary: [String] = []

    /// `stop`: shared with whoever may end the run early (a signal handler), even while the input is being opened.
    public init(options: IngestOptions, stop: StopRequest = StopRequest()) throws {
        self.options = options
        self.stopRequest = stop
        input = try MediaInput(options.input, stop: stop)
        muxer = try TSMuxer(chunkDuration: options.chunkDuration)
        for index in try input.selectedStreams() {
            let stream = input.stream(index)
            let par = stream.pointee.codecpar.pointee
            let name = String(cString: avcodec_get_name(par.codec_id))
            if transportStreamCodecs.contains(par.codec_id.rawValue) {
                let out = try muxer.addCopy(of: stream, formatMetadata: input.context.pointee.metadata)
                routes[index] = Route(input: stream, output: out, transcoder: nil)
                streamSummary.append("\(name) (copy)")
            } else {
                // A stream to transcode needs what FFmpeg found of it: no encoder opens without a picture size, and
                // garbage probed as some format has none (random bytes taken for H.263). Copied streams need nothing.
                if par.codec_type == AVMEDIA_TYPE_VIDEO, par.width <= 0 || par.height <= 0 {
                    throw MediaError("cannot read \(options.input.location): \(name) without a picture size (not a media file?)")
                }
                let transcoder = try Transcoder(stream: stream)
                let out = try muxer.addEncoded(by: transcoder.encoder.pointer, like: stream)
                routes[index] = Route(input: stream, output: out, transcoder: transcoder)
                let target = par.codec_type == AVMEDIA_TYPE_VIDEO ? "h264" : "aac"
                streamSummary.append("\(name) → \(target) (transcode)")
            }
        }
        try muxer.writeHeader()
    }

    public func stop() { stopRequest.request() }

    public var isStopRequested: Bool { isStopped }

    private var isStopped: Bool { stopRequest.isRequested }

    /// Reads until the input ends (or forever with `loop`) or `stop()`; hands each chunk to `onChunk`.
    /// Seqs start at `firstSeq`, gap-free; the ingest time is the wall clock when a chunk is cut.
    @discardableResult
    public func run(firstSeq: UInt64 = 0, onChunk: (Chunk) -> Void) throws -> UInt64 {
        var seq = firstSeq
        func emit() {
            for cut in muxer.takeCuts() {
                onChunk(Chunk(seq: seq, ingestTime: wallClockMicros(), pts: cut.pts, duration: cut.duration,
                              flags: cut.randomAccess ? .randomAccess : [], payload: cut.payload))
                seq += 1
            }
        }
        let packet = Packet()
        let p = packet.pointer
        let start = input.startTime
        var offset: Int64 = 0 // µs added to every timestamp, grows by one pass per loop
        var passEnd: Int64 = 0 // µs, latest end of a packet so far
        var passStart: Int64? // µs, earliest timestamp of this pass
        var clockStart: Int64?
        var firstDTS: Int64?
        let timeBaseQ = lsp2p_time_base_q()

        while !isStopped {
            let r = av_read_frame(input.context, p)
            if r < 0 {
                if isStopped { break } // cut short by stop()
                // The end: EOF, or stdin or a sender (OBS over RTMP, SRT) gone from under us. Any other read error
                // is a failure (exit 1), not an end.
                if r == AVError.eof || (r == lsp2p_averror(EIO) && input.spec.endsWhenTheSenderGoes) {
                    if options.loop, let start = passStart, passEnd > start {
                        try input.rewind()
                        // The next pass starts where this one ended, priming packets (negative times) included.
                        offset += passEnd - start
                        passStart = nil
                        continue
                    }
                    break
                }
                try check(r, "cannot read \(input.spec.location)")
            }
            defer { av_packet_unref(p) }
            guard let route = routes[Int(p.pointee.stream_index)] else { continue }
            let tb = route.input.pointee.time_base
            // Shift timestamps so the stream starts at 0 (as ffmpeg does) and each loop follows the last.
            let shift = av_rescale_q(offset, timeBaseQ, tb) - av_rescale_q(start, timeBaseQ, tb)
            if p.pointee.pts != noPTS { p.pointee.pts += shift }
            if p.pointee.dts != noPTS { p.pointee.dts += shift }
            // A pass ends where its latest frame ends (PTS: with B-frames the last DTS comes earlier).
            let latest = max(p.pointee.pts, p.pointee.dts)
            if latest != noPTS {
                passEnd = max(passEnd, av_rescale_q(latest + p.pointee.duration, tb, timeBaseQ))
            }
            let earliest = [p.pointee.pts, p.pointee.dts].filter { $0 != noPTS }.min()
            if let earliest { passStart = min(passStart ?? .max, av_rescale_q(earliest, tb, timeBaseQ)) }
            let ts = p.pointee.dts != noPTS ? p.pointee.dts : p.pointee.pts
            if ts != noPTS, options.paced {
                pace(av_rescale_q(ts, tb, timeBaseQ), clockStart: &clockStart, firstDTS: &firstDTS)
            }
            if let transcoder = route.transcoder {
                try transcoder.transcode(p) { encoded in try write(encoded, from: transcoder.encoderTimeBase, to: route.output) }
            } else {
                try write(p, from: tb, to: route.output)
            }
            emit()
        }
        for route in routes.values {
            guard let transcoder = route.transcoder else { continue }
            try transcoder.transcode(nil) { encoded in try write(encoded, from: transcoder.encoderTimeBase, to: route.output) }
        }
        try muxer.finish()
        emit()
        return seq
    }

    private func write(_ packet: UnsafeMutablePointer<AVPacket>, from tb: AVRational, to out: UnsafeMutablePointer<AVStream>) throws {
        packet.pointee.stream_index = out.pointee.index
        packet.pointee.pos = -1
        av_packet_rescale_ts(packet, tb, out.pointee.time_base)
        try muxer.write(packet)
    }

    /// Sleeps until the wall clock catches up with the stream clock (`ffmpeg -re`).
    private func pace(_ dts: Int64, clockStart: inout Int64?, firstDTS: inout Int64?) {
        let now = monotonicMicros()
        let origin = clockStart ?? now
        let first = firstDTS ?? dts
        clockStart = origin
        firstDTS = first
        var wait = origin + (dts - first) - now
        while wait > 1000, !isStopped {
            usleep(UInt32(min(wait, 100_000)))
            wait = origin + (dts - first) - monotonicMicros()
        }
    }

    /// The input's nominal rate in bits/s as libavformat knows it, 0 when unknown (a live source).
    public var nominalBitRate: Int64 { max(0, input.context.pointee.bit_rate) }
}
