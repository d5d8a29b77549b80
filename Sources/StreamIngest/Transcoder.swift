import CFFmpeg

/// Codecs MPEG-TS carries as they are; anything else is transcoded.
public let transportStreamCodecs: Set<UInt32> = [
    AV_CODEC_ID_H264.rawValue, AV_CODEC_ID_HEVC.rawValue, AV_CODEC_ID_MPEG2VIDEO.rawValue,
    AV_CODEC_ID_AAC.rawValue, AV_CODEC_ID_MP3.rawValue, AV_CODEC_ID_MP2.rawValue, AV_CODEC_ID_AC3.rawValue,
]

/// Decodes one input stream and re-encodes it to a codec MPEG-TS carries: H.264 (libx264, zerolatency) or AAC.
final class Transcoder {
    let decoder: CodecContext
    let encoder: CodecContext
    private let isVideo: Bool
    private let decoded = Frame()
    private let encoded = Packet()
    private var scaler: OpaquePointer?
    private var scaled: Frame?
    private var resampler: OpaquePointer?
    private var fifo: OpaquePointer?
    private var samplesOut: Int64 = 0
    private var firstPTS: Int64?

    init(stream: UnsafeMutablePointer<AVStream>) throws {
        let par = stream.pointee.codecpar!
        guard let decoderCodec = avcodec_find_decoder(par.pointee.codec_id) else {
            throw MediaError("no decoder for \(String(cString: avcodec_get_name(par.pointee.codec_id)))")
        }
        decoder = CodecContext(codec: decoderCodec)
        try check(avcodec_parameters_to_context(decoder.pointer, par), "cannot set up the decoder")
        decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
        try check(avcodec_open2(decoder.pointer, decoderCodec, nil), "cannot open the \(String(cString: decoderCodec.pointee.name)) decoder")

        isVideo = par.pointee.codec_type == AVMEDIA_TYPE_VIDEO
        let d = decoder.pointer.pointee
        if isVideo {
            guard let codec = avcodec_find_encoder_by_name("libx264") else { throw MediaError("libx264 is not available in this FFmpeg") }
            encoder = CodecContext(codec: codec)
            let e = encoder.pointer
            var rate = stream.pointee.avg_frame_rate
            if rate.num <= 0 || rate.den <= 0 { rate = stream.pointee.r_frame_rate }
            if rate.num <= 0 || rate.den <= 0 { rate = AVRational(num: 25, den: 1) }
            e.pointee.width = d.width
            e.pointee.height = d.height
            e.pointee.pix_fmt = AV_PIX_FMT_YUV420P
            e.pointee.sample_aspect_ratio = d.sample_aspect_ratio
            e.pointee.time_base = stream.pointee.time_base
            e.pointee.framerate = rate
            // A keyframe every second: the receiver can start within one.
            e.pointee.gop_size = max(1, Int32((Double(rate.num) / Double(rate.den)).rounded()))
            e.pointee.max_b_frames = 0
            var opts: OpaquePointer?
            av_dict_set(&opts, "preset", "veryfast", 0)
            av_dict_set(&opts, "tune", "zerolatency", 0)
            defer { av_dict_free(&opts) }
            try check(avcodec_open2(e, codec, &opts), "cannot open libx264")
            if d.pix_fmt != AV_PIX_FMT_YUV420P {
                scaler = sws_getContext(d.width, d.height, d.pix_fmt, d.width, d.height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nil, nil, nil)
                guard scaler != nil else { throw MediaError("cannot convert \(String(cString: av_get_pix_fmt_name(d.pix_fmt))) to yuv420p") }
                let frame = Frame()
                frame.pointer.pointee.format = AV_PIX_FMT_YUV420P.rawValue
                frame.pointer.pointee.width = d.width
                frame.pointer.pointee.height = d.height
                try check(av_frame_get_buffer(frame.pointer, 0), "cannot allocate a video frame")
                scaled = frame
            }
        } else {
            guard let codec = avcodec_find_encoder(AV_CODEC_ID_AAC) else { throw MediaError("no AAC encoder in this FFmpeg") }
            encoder = CodecContext(codec: codec)
            let e = encoder.pointer
            let supported: Set<Int32> = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000]
            e.pointee.sample_rate = supported.contains(d.sample_rate) ? d.sample_rate : 48000
            av_channel_layout_default(&e.pointee.ch_layout, d.ch_layout.nb_channels >= 2 ? 2 : 1)
            e.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
            e.pointee.bit_rate = 128_000
            e.pointee.time_base = AVRational(num: 1, den: e.pointee.sample_rate)
            try check(avcodec_open2(e, codec, nil), "cannot open the AAC encoder")
            var swr: OpaquePointer?
            var inLayout = d.ch_layout
            try check(swr_alloc_set_opts2(&swr, &e.pointee.ch_layout, e.pointee.sample_fmt, e.pointee.sample_rate,
                                          &inLayout, d.sample_fmt, d.sample_rate, 0, nil), "cannot set up the resampler")
            resampler = swr
            try check(swr_init(swr), "cannot set up the resampler")
            fifo = av_audio_fifo_alloc(e.pointee.sample_fmt, e.pointee.ch_layout.nb_channels, 4096)
        }
    }

    deinit {
        if scaler != nil { sws_freeContext(scaler) }
        if resampler != nil { swr_free(&resampler) }
        if fifo != nil { av_audio_fifo_free(fifo) }
    }

    var encoderTimeBase: AVRational { encoder.pointer.pointee.time_base }

    /// Decodes `packet` (nil to drain) and hands each encoded packet, in the encoder's time base, to `emit`.
    func transcode(_ packet: UnsafeMutablePointer<AVPacket>?, emit: (UnsafeMutablePointer<AVPacket>) throws -> Void) throws {
        let sent = avcodec_send_packet(decoder.pointer, packet)
        if sent < 0 && sent != AVError.eof && sent != AVError.again {
            // A damaged packet: skip it, as ffmpeg does, rather than stop the stream.
            return
        }
        while true {
            let r = avcodec_receive_frame(decoder.pointer, decoded.pointer)
            if r == AVError.again || r == AVError.eof { break }
            if r < 0 { break }
            try encode(decoded.pointer, emit: emit)
            av_frame_unref(decoded.pointer)
        }
        if packet == nil {
            if !isVideo { try drainFIFO(final: true, emit: emit) }
            try receivePackets(flush: true, emit: emit)
        }
    }

    private func encode(_ frame: UnsafeMutablePointer<AVFrame>, emit: (UnsafeMutablePointer<AVPacket>) throws -> Void) throws {
        if isVideo {
            var out = frame
            if let scaled {
                try check(av_frame_make_writable(scaled.pointer), "cannot write a video frame")
                try check(sws_scale_frame(scaler, scaled.pointer, frame), "cannot convert a video frame")
                scaled.pointer.pointee.pts = frame.pointee.best_effort_timestamp
                out = scaled.pointer
            } else {
                frame.pointee.pts = frame.pointee.best_effort_timestamp
            }
            out.pointee.pict_type = AV_PICTURE_TYPE_NONE
            try check(avcodec_send_frame(encoder.pointer, out), "cannot encode video")
            try receivePackets(flush: false, emit: emit)
        } else {
            if firstPTS == nil {
                let pts = frame.pointee.best_effort_timestamp
                firstPTS = pts == noPTS ? 0 : av_rescale_q(pts, decoder.pointer.pointee.pkt_timebase, encoderTimeBase)
            }
            let e = encoder.pointer.pointee
            let capacity = swr_get_out_samples(resampler, frame.pointee.nb_samples)
            var buffers: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?
            try check(av_samples_alloc_array_and_samples(&buffers, nil, e.ch_layout.nb_channels, capacity, e.sample_fmt, 0), "cannot allocate audio")
            defer {
                av_freep(buffers)
                av_freep(&buffers)
            }
            // `const uint8_t **` before FFmpeg 7, `const uint8_t * const *` after: `.init(OpaquePointer)` fits both.
            let converted = swr_convert(resampler, buffers, capacity, .init(OpaquePointer(frame.pointee.extended_data)),
                                        frame.pointee.nb_samples)
            try check(converted, "cannot resample audio")
            buffers!.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: Int(e.ch_layout.nb_channels)) {
                _ = av_audio_fifo_write(fifo, $0, converted)
            }
            try drainFIFO(final: false, emit: emit)
        }
    }

    /// Feeds the AAC encoder whole frames of its frame size from the FIFO.
    private func drainFIFO(final: Bool, emit: (UnsafeMutablePointer<AVPacket>) throws -> Void) throws {
        let e = encoder.pointer.pointee
        let frameSize = e.frame_size > 0 ? e.frame_size : 1024
        while av_audio_fifo_size(fifo) >= frameSize || (final && av_audio_fifo_size(fifo) > 0) {
            let n = min(frameSize, av_audio_fifo_size(fifo))
            let frame = Frame()
            let f = frame.pointer
            f.pointee.nb_samples = n
            f.pointee.format = e.sample_fmt.rawValue
            f.pointee.sample_rate = e.sample_rate
            av_channel_layout_copy(&f.pointee.ch_layout, &encoder.pointer.pointee.ch_layout)
            try check(av_frame_get_buffer(f, 0), "cannot allocate audio")
            withUnsafeMutablePointer(to: &f.pointee.data) {
                $0.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 8) { _ = av_audio_fifo_read(fifo, $0, n) }
            }
            f.pointee.pts = (firstPTS ?? 0) + samplesOut
            samplesOut += Int64(n)
            try check(avcodec_send_frame(encoder.pointer, f), "cannot encode audio")
            try receivePackets(flush: false, emit: emit)
        }
    }

    private func receivePackets(flush: Bool, emit: (UnsafeMutablePointer<AVPacket>) throws -> Void) throws {
        if flush { avcodec_send_frame(encoder.pointer, nil) }
        while true {
            let r = avcodec_receive_packet(encoder.pointer, encoded.pointer)
            if r == AVError.again || r == AVError.eof { return }
            try check(r, "cannot encode")
            try emit(encoded.pointer)
            av_packet_unref(encoded.pointer)
        }
    }
}
