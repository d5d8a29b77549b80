import CFFmpeg
import Foundation

/// Where a stream comes from.
public struct InputSpec: Equatable, Sendable {
    /// A path, a URL, `-` for stdin, or a device such as `/dev/video0`.
    public var location: String
    /// A libavformat input format name (`v4l2`, `lavfi`, `mpegts`), or nil to probe.
    public var format: String?
    /// The demuxer's and protocol's options (`listen` = `1` for an RTMP server OBS pushes to, `rtsp_transport` =
    /// `tcp`, `timeout`), as `ffmpeg` takes them before `-i`.
    public var options: [String: String]

    public init(location: String, format: String? = nil, options: [String: String] = [:]) {
        self.location = location
        self.format = format
        self.options = options
    }

    /// Stdin and URLs are live already; a local file is played at its own pace only when asked.
    public var isLocalFile: Bool {
        location != "-" && !location.contains("://") && format == nil
    }

    var url: String { location == "-" ? "pipe:0" : location }

    /// Stdin, or a stream from the network: a read that fails with EIO there is the sender going away (a pipe
    /// closed, OBS stopped), the end of the stream.
    public var endsWhenTheSenderGoes: Bool { location == "-" || (location.contains("://") && !location.hasPrefix("file:")) }
}

/// Asks an ingest to stop, from any thread: a wait for a sender to connect, or a read in progress, is cut short.
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false

    public init() {}

    public func request() {
        lock.lock()
        requested = true
        lock.unlock()
    }

    public var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }
}

/// An opened input: owns the demuxer context and frees it with the input-side free.
final class MediaInput {
    let context: UnsafeMutablePointer<AVFormatContext>
    let spec: InputSpec
    /// Held for the interrupt callback, which libavformat calls while it waits.
    private let stop: StopRequest

    init(_ spec: InputSpec, stop: StopRequest = StopRequest()) throws {
        self.stop = stop
        avdevice_register_all()
        var format: UnsafePointer<AVInputFormat>?
        if let name = spec.format {
            format = av_find_input_format(name)
            guard format != nil else { throw MediaError("unknown input format '\(name)' (see `ffmpeg -formats`)") }
        }
        if spec.location != "-", !spec.location.contains("://"), spec.format == nil,
           !FileManager.default.isReadableFile(atPath: spec.location) {
            let exists = FileManager.default.fileExists(atPath: spec.location)
            throw MediaError("cannot open \(spec.location): \(exists ? "permission denied" : "no such file")")
        }
        var ctx = avformat_alloc_context()
        ctx!.pointee.interrupt_callback = AVIOInterruptCB(callback: { opaque in
            Unmanaged<StopRequest>.fromOpaque(opaque!).takeUnretainedValue().isRequested ? 1 : 0
        }, opaque: Unmanaged.passUnretained(stop).toOpaque())
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        for (key, value) in spec.options.sorted(by: { $0.key < $1.key }) { av_dict_set(&options, key, value, 0) }
        try check(avformat_open_input(&ctx, spec.url, format, &options), "cannot open \(spec.location)")
        // What the demuxer and protocol took is gone from the dictionary; what is left, neither knows.
        if av_dict_count(options) > 0 {
            var unknown: [String] = []
            var entry: UnsafeMutablePointer<AVDictionaryEntry>?
            while let next = av_dict_get(options, "", entry, AV_DICT_IGNORE_SUFFIX) {
                unknown.append(String(cString: next.pointee.key))
                entry = next
            }
            avformat_close_input(&ctx)
            throw MediaError("unknown input option\(unknown.count == 1 ? "" : "s") for \(spec.location): \(unknown.joined(separator: ", "))")
        }
        context = ctx!
        self.spec = spec
        do {
            try check(avformat_find_stream_info(context, nil), "cannot read \(spec.location)")
        } catch {
            var c: UnsafeMutablePointer<AVFormatContext>? = context
            avformat_close_input(&c)
            throw error
        }
    }

    deinit {
        var c: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&c)
    }

    func stream(_ index: Int) -> UnsafeMutablePointer<AVStream> { context.pointee.streams[index]! }

    /// The best video and best audio stream, whichever exist.
    func selectedStreams() throws -> [Int] {
        var picked: [Int] = []
        for type in [AVMEDIA_TYPE_VIDEO, AVMEDIA_TYPE_AUDIO] {
            let index = av_find_best_stream(context, type, -1, -1, nil, 0)
            if index >= 0 { picked.append(Int(index)) }
        }
        guard !picked.isEmpty else { throw MediaError("\(spec.location) has no audio or video stream") }
        return picked
    }

    /// Start time in AV_TIME_BASE units (0 when unknown).
    var startTime: Int64 {
        let t = context.pointee.start_time
        return t == noPTS ? 0 : t
    }

    /// Rewinds to the start, for `--loop`.
    func rewind() throws {
        try check(av_seek_frame(context, -1, startTime, AVSEEK_FLAG_BACKWARD), "cannot loop \(spec.location) (not seekable)")
    }
}

/// An owned AVPacket.
final class Packet {
    let pointer: UnsafeMutablePointer<AVPacket>
    init() { pointer = av_packet_alloc() }
    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&p)
    }
}

/// An owned AVFrame.
final class Frame {
    let pointer: UnsafeMutablePointer<AVFrame>
    init() { pointer = av_frame_alloc() }
    deinit {
        var p: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&p)
    }
}

/// An owned codec context.
final class CodecContext {
    let pointer: UnsafeMutablePointer<AVCodecContext>
    init(codec: UnsafePointer<AVCodec>) { pointer = avcodec_alloc_context3(codec) }
    deinit {
        var p: UnsafeMutablePointer<AVCodecContext>? = pointer
        avcodec_free_context(&p)
    }
}
