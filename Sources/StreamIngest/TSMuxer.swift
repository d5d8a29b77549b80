import CFFmpeg
import ChunkMesh
import MeshCore

/// Muxes packets to MPEG-TS through a custom AVIO write callback that feeds a `TSChunker`.
final class TSMuxer {
    /// What the AVIO callback writes into; passed to C as an unretained `opaque` that `TSMuxer` keeps alive.
    private final class Sink {
        var chunker: TSChunker
        var cuts: [TSChunker.Cut] = []
        init(chunker: TSChunker) { self.chunker = chunker }
    }

    let context: UnsafeMutablePointer<AVFormatContext>
    private let sink: Sink
    private var headerWritten = false
    private var trailerWritten = false

    init(chunkDuration: Int64) throws {
        var ctx: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&ctx, nil, "mpegts", nil), "cannot create the MPEG-TS muxer")
        context = ctx!
        sink = Sink(chunker: TSChunker(targetDuration: chunkDuration))
        // As the ffmpeg tool does: this, the copied frame rate and metadata give its bytes.
        context.pointee.max_delay = 700_000

        let size: Int32 = 188 * 64
        let buffer = av_malloc(Int(size))!.assumingMemoryBound(to: UInt8.self)
        let opaque = Unmanaged.passUnretained(sink).toOpaque()
        // Inferred closure types: `uint8_t *` before FFmpeg 7, `const uint8_t *` after.
        let pb = avio_alloc_context(buffer, size, 1, opaque, nil, { opaque, buf, size in
            let sink = Unmanaged<Sink>.fromOpaque(opaque!).takeUnretainedValue()
            sink.cuts += sink.chunker.feed(UnsafeRawBufferPointer(start: buf, count: Int(size)))
            return size
        }, nil)
        context.pointee.pb = pb
    }

    deinit {
        if headerWritten && !trailerWritten { av_write_trailer(context) }
        var pb: UnsafeMutablePointer<AVIOContext>? = context.pointee.pb
        if let pb { av_freep(&pb.pointee.buffer) }
        avio_context_free(&pb)
        context.pointee.pb = nil
        avformat_free_context(context)
    }

    /// Adds an output stream carrying `stream` as it is.
    func addCopy(of stream: UnsafeMutablePointer<AVStream>, formatMetadata: OpaquePointer?) throws -> UnsafeMutablePointer<AVStream> {
        guard let out = avformat_new_stream(context, nil) else { throw MediaError("cannot add an output stream") }
        try check(avcodec_parameters_copy(out.pointee.codecpar, stream.pointee.codecpar), "cannot copy codec parameters")
        out.pointee.codecpar.pointee.codec_tag = 0
        out.pointee.time_base = stream.pointee.time_base
        out.pointee.avg_frame_rate = stream.pointee.avg_frame_rate
        out.pointee.r_frame_rate = stream.pointee.r_frame_rate
        out.pointee.disposition = stream.pointee.disposition
        av_dict_copy(&out.pointee.metadata, stream.pointee.metadata, 0)
        if context.pointee.metadata == nil { av_dict_copy(&context.pointee.metadata, formatMetadata, 0) }
        return out
    }

    /// Adds an output stream for what `encoder` produces.
    func addEncoded(by encoder: UnsafeMutablePointer<AVCodecContext>, like stream: UnsafeMutablePointer<AVStream>) throws -> UnsafeMutablePointer<AVStream> {
        guard let out = avformat_new_stream(context, nil) else { throw MediaError("cannot add an output stream") }
        try check(avcodec_parameters_from_context(out.pointee.codecpar, encoder), "cannot set output codec parameters")
        out.pointee.time_base = encoder.pointee.time_base
        out.pointee.avg_frame_rate = encoder.pointee.framerate
        av_dict_copy(&out.pointee.metadata, stream.pointee.metadata, 0)
        return out
    }

    func writeHeader() throws {
        try check(avformat_write_header(context, nil), "cannot start the MPEG-TS stream")
        headerWritten = true
    }

    /// Writes a packet whose timestamps are already in the output stream's time base.
    func write(_ packet: UnsafeMutablePointer<AVPacket>) throws {
        try check(av_interleaved_write_frame(context, packet), "cannot mux a packet")
    }

    func finish() throws {
        guard headerWritten, !trailerWritten else { return }
        trailerWritten = true
        try check(av_write_trailer(context), "cannot end the MPEG-TS stream")
        avio_flush(context.pointee.pb)
        sink.cuts += sink.chunker.flush()
    }

    /// The chunks cut since the last call.
    func takeCuts() -> [TSChunker.Cut] {
        defer { sink.cuts.removeAll(keepingCapacity: true) }
        return sink.cuts
    }
}
