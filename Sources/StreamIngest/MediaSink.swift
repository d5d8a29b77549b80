import CFFmpeg
import Foundation
import NIOCore

/// Where a receiver writes the stream, in order.
public protocol MediaSink: AnyObject {
    func write(_ bytes: ByteBuffer) throws
    /// Ends the output so it plays (an MP4 gets its index); throws what went wrong on the way.
    func finish() throws
}

/// Opens the sink an output path asks for: `-` is stdout, `.mp4`/`.mkv` are remuxed, anything else gets MPEG-TS.
public func openSink(_ path: String) throws -> MediaSink {
    let lower = path.lowercased()
    if lower.hasSuffix(".mp4") || lower.hasSuffix(".mkv") || lower.hasSuffix(".mov") {
        return try RemuxSink(path: path)
    }
    return try FileSink(path: path)
}

/// The reader of a pipe went away (a player was closed): a normal way for playback to end.
public struct OutputClosed: Error {}

/// Raw MPEG-TS to a file or stdout.
public final class FileSink: MediaSink {
    private let fd: Int32
    private let path: String
    private let owned: Bool

    public init(path: String) throws {
        self.path = path
        if path == "-" {
            fd = STDOUT_FILENO
            owned = false
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw MediaError("cannot create \(path): \(String(cString: strerror(errno)))") }
            owned = true
        }
    }

    deinit { if owned { close(fd) } }

    public func write(_ bytes: ByteBuffer) throws {
        try bytes.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE { throw OutputClosed() }
                    throw MediaError("cannot write \(path == "-" ? "stdout" : path): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    public func finish() throws {
        if owned, fsync(fd) != 0, errno != EINVAL {
            throw MediaError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Remuxes the incoming MPEG-TS with libavformat, on a thread of its own: into an MP4 or Matroska file, or into
/// fragmented MP4 handed out fragment by fragment (a browser's `/stream.mp4`).
public final class RemuxSink: MediaSink, @unchecked Sendable {
    /// Bytes handed from `write` to the demuxer's read callback.
    private final class Pipe {
        let condition = NSCondition()
        var chunks: [ByteBuffer] = []
        /// Bytes in `chunks`.
        var queued = 0
        var closed = false

        func read(into buf: UnsafeMutablePointer<UInt8>, size: Int) -> Int32 {
            condition.lock()
            defer { condition.unlock() }
            while chunks.isEmpty && !closed { condition.wait() }
            guard !chunks.isEmpty else { return AVError.eof }
            var n = 0
            while n < size, !chunks.isEmpty {
                let take = min(size - n, chunks[0].readableBytes)
                chunks[0].withUnsafeReadableBytes { UnsafeMutableRawPointer(buf + n).copyMemory(from: $0.baseAddress!, byteCount: take) }
                chunks[0].moveReaderIndex(forwardBy: take)
                if chunks[0].readableBytes == 0 { chunks.removeFirst() }
                n += take
                queued -= take
            }
            return Int32(n)
        }
    }

    private enum Target {
        case file(String)
        case fragments(MP4Fragments)
    }

    private let target: Target
    private let name: String
    private let pipe = Pipe()
    private let done = DispatchSemaphore(value: 0)
    private var error: Error?

    public init(path: String) throws {
        target = .file(path)
        name = path
        // Fail now, not at the end, when the file cannot be made.
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw MediaError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        start()
    }

    /// Fragmented MP4 (H.264/AAC as they come): `onInit` gets the header (ftyp and moov) once, `onFragment` each
    /// fragment (moof and mdat) as it is cut, marked when it starts at a keyframe (a new viewer may start there).
    /// A fragment is cut at each video keyframe, and after `maxFragment` µs without one. Called on the remux thread.
    public init(fragmentedMP4 onInit: @escaping ([UInt8]) -> Void, onFragment: @escaping ([UInt8], _ randomAccess: Bool) -> Void,
                maxFragment: Int64 = 500_000) {
        target = .fragments(MP4Fragments(onInit: onInit, onFragment: onFragment, maxFragment: maxFragment))
        name = "fragmented MP4"
        start()
    }

    private func start() {
        let thread = Thread { [self] in
            var failure: Error?
            do { try remux() } catch { failure = error }
            pipe.condition.lock()
            self.error = failure ?? self.error
            pipe.closed = true // a failed remux stops taking bytes
            pipe.chunks.removeAll()
            pipe.queued = 0
            pipe.condition.unlock()
            done.signal()
        }
        thread.name = "remux"
        thread.start()
    }

    /// The most fragmented MP4's remux may fall behind what it is given: past that a write fails and the remux
    /// stops (a stream it reads far slower than it comes, or a consumer stuck) rather than hold the stream in
    /// memory. A file's remux waits for its disk as long as it takes.
    public static let maxBehind = 32 << 20

    public func write(_ bytes: ByteBuffer) throws {
        pipe.condition.lock()
        defer { pipe.condition.unlock() }
        if let error { throw error }
        guard bytes.readableBytes > 0, !pipe.closed else { return }
        if case .fragments = target, pipe.queued + bytes.readableBytes > Self.maxBehind {
            let behind = MediaError("\(name): the remux is \(pipe.queued >> 20) MiB behind the stream")
            error = behind
            pipe.closed = true // the remux reads to the end of what it has, and stops
            pipe.chunks.removeAll()
            pipe.queued = 0
            pipe.condition.signal()
            throw behind
        }
        pipe.chunks.append(bytes)
        pipe.queued += bytes.readableBytes
        pipe.condition.signal()
    }

    public func finish() throws {
        pipe.condition.lock()
        pipe.closed = true
        pipe.condition.signal()
        pipe.condition.unlock()
        done.wait()
        if let error { throw error }
    }

    private func remux() throws {
        let size: Int32 = 188 * 64
        let buffer = av_malloc(Int(size))!.assumingMemoryBound(to: UInt8.self)
        let opaque = Unmanaged.passUnretained(pipe).toOpaque()
        var pb: UnsafeMutablePointer<AVIOContext>? = avio_alloc_context(buffer, size, 0, opaque, { opaque, buf, size in
            Unmanaged<Pipe>.fromOpaque(opaque!).takeUnretainedValue().read(into: buf!, size: Int(size))
        }, nil, nil)
        defer {
            if let p = pb { av_freep(&p.pointee.buffer) }
            avio_context_free(&pb)
        }
        var input = avformat_alloc_context()
        input!.pointee.pb = pb
        input!.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
        guard avformat_open_input(&input, nil, av_find_input_format("mpegts"), nil) >= 0, let inCtx = input else {
            throw MediaError("no media arrived to write to \(name)")
        }
        defer { avformat_close_input(&input) }
        try check(avformat_find_stream_info(inCtx, nil), "cannot read the received stream")

        var output: UnsafeMutablePointer<AVFormatContext>?
        switch target {
        case .file(let path): try check(avformat_alloc_output_context2(&output, nil, nil, path), "cannot write \(path)")
        case .fragments: try check(avformat_alloc_output_context2(&output, nil, "mp4", nil), "cannot make fragmented MP4")
        }
        let outCtx = output!
        var fragmentIO: UnsafeMutablePointer<AVIOContext>?
        defer {
            if case .file = target { avio_closep(&outCtx.pointee.pb) }
            if let p = fragmentIO { av_freep(&p.pointee.buffer) }
            avio_context_free(&fragmentIO)
            avformat_free_context(outCtx)
        }
        var map: [Int32: UnsafeMutablePointer<AVStream>] = [:]
        var filters: [Int32: BitstreamFilter] = [:]
        var video: Int32?
        for i in 0..<Int(inCtx.pointee.nb_streams) {
            let s = inCtx.pointee.streams[i]!
            let type = s.pointee.codecpar.pointee.codec_type
            guard type == AVMEDIA_TYPE_VIDEO || type == AVMEDIA_TYPE_AUDIO else { continue }
            if type == AVMEDIA_TYPE_VIDEO { if video != nil { continue }; video = Int32(i) }
            let o = avformat_new_stream(outCtx, nil)!
            try check(avcodec_parameters_copy(o.pointee.codecpar, s.pointee.codecpar), "cannot copy codec parameters")
            o.pointee.codecpar.pointee.codec_tag = 0
            o.pointee.time_base = s.pointee.time_base
            map[Int32(i)] = o
            // MPEG-TS carries AAC with ADTS headers; a fragmented MP4's header needs the bare setup, which libavformat
            // inserts this filter for only when it writes the header at the end.
            if case .fragments = target, s.pointee.codecpar.pointee.codec_id == AV_CODEC_ID_AAC {
                filters[Int32(i)] = try BitstreamFilter("aac_adtstoasc", stream: s)
            }
        }
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        switch target {
        case .file(let path):
            try check(avio_open(&outCtx.pointee.pb, path, AVIO_FLAG_WRITE), "cannot create \(path)")
        case .fragments(let fragments):
            fragmentIO = fragments.makeIO()
            outCtx.pointee.pb = fragmentIO
            outCtx.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
            // Cut where we say; the header as soon as the codecs' set-up is known (AAC's comes with its first packet).
            av_dict_set(&options, "movflags", "frag_custom+empty_moov+delay_moov+default_base_moof", 0)
        }
        try check(avformat_write_header(outCtx, &options), "cannot write \(name)")
        let packet = Packet()
        let p = packet.pointer
        // Start the output at the first timestamp the receiver got, keeping audio and video in step.
        let start = inCtx.pointee.start_time == noPTS ? 0 : inCtx.pointee.start_time
        var timeline = Timeline()
        while av_read_frame(inCtx, p) >= 0 {
            defer { av_packet_unref(p) }
            let index = p.pointee.stream_index
            guard let o = map[index] else { continue }
            let inTB = inCtx.pointee.streams[Int(index)]!.pointee.time_base
            let dts = p.pointee.dts == noPTS ? nil : av_rescale_q(p.pointee.dts, inTB, lsp2p_time_base_q()) - start
            guard let shift = timeline.shift(stream: index, dts: dts) else { continue }
            let base = av_rescale_q(start - shift, lsp2p_time_base_q(), inTB)
            if p.pointee.pts != noPTS { p.pointee.pts -= base }
            if p.pointee.dts != noPTS { p.pointee.dts -= base }
            if case .fragments(let fragments) = target {
                let key = index == video && p.pointee.flags & AV_PKT_FLAG_KEY != 0
                if fragments.shouldCut(keyframe: key, hasVideo: video != nil, dts: dts.map { $0 + shift }) {
                    // What waits to be interleaved goes in first: the fragment ends right before the keyframe.
                    try check(av_interleaved_write_frame(outCtx, nil), "cannot cut a fragment")
                    try check(av_write_frame(outCtx, nil), "cannot cut a fragment")
                    avio_flush(outCtx.pointee.pb)
                    fragments.cut(startingAtKeyframe: key || video == nil)
                }
            }
            p.pointee.stream_index = o.pointee.index
            p.pointee.pos = -1
            av_packet_rescale_ts(p, inTB, o.pointee.time_base)
            if let filter = filters[index] {
                try filter.filter(p) { try check(av_interleaved_write_frame(outCtx, $0), "cannot write \(name)") }
            } else {
                try check(av_interleaved_write_frame(outCtx, p), "cannot write \(name)")
            }
        }
        try check(av_write_trailer(outCtx), "cannot finish \(name)")
        if case .fragments(let fragments) = target {
            avio_flush(outCtx.pointee.pb)
            fragments.cut(startingAtKeyframe: false)
        }
    }
}

/// One of libavcodec's bitstream filters over a stream's packets.
final class BitstreamFilter {
    private var context: UnsafeMutablePointer<AVBSFContext>?

    init(_ name: String, stream: UnsafeMutablePointer<AVStream>) throws {
        guard let filter = av_bsf_get_by_name(name) else { throw MediaError("FFmpeg lacks the \(name) filter") }
        try check(av_bsf_alloc(filter, &context), "cannot set up \(name)")
        try check(avcodec_parameters_copy(context!.pointee.par_in, stream.pointee.codecpar), "cannot set up \(name)")
        context!.pointee.time_base_in = stream.pointee.time_base
        try check(av_bsf_init(context), "cannot set up \(name)")
    }

    deinit { av_bsf_free(&context) }

    /// Filters the packet (taking its data) and hands on each packet that comes out, in the same packet.
    func filter(_ packet: UnsafeMutablePointer<AVPacket>, _ each: (UnsafeMutablePointer<AVPacket>) throws -> Void) throws {
        try check(av_bsf_send_packet(context, packet), "cannot filter a packet")
        while av_bsf_receive_packet(context, packet) == 0 {
            try each(packet)
            av_packet_unref(packet)
        }
    }
}

/// The bytes of a fragmented MP4 as the muxer writes them, split into its top-level boxes: ftyp and moov make
/// the header, each moof with its mdat a fragment.
final class MP4Fragments {
    private let onInit: ([UInt8]) -> Void
    private let onFragment: ([UInt8], Bool) -> Void
    private let maxFragment: Int64
    private var pending: [UInt8] = []
    private var header: [UInt8] = []
    private var headerDone = false
    private var fragment: [UInt8] = []
    /// Whether the fragment being written starts at a keyframe, and the first time in it (µs).
    private var startsAtKeyframe = true
    private var fragmentStart: Int64?
    private var written = false

    init(onInit: @escaping ([UInt8]) -> Void, onFragment: @escaping ([UInt8], Bool) -> Void, maxFragment: Int64) {
        self.onInit = onInit
        self.onFragment = onFragment
        self.maxFragment = maxFragment
    }

    func makeIO() -> UnsafeMutablePointer<AVIOContext>? {
        let size: Int32 = 64 << 10
        let buffer = av_malloc(Int(size))!.assumingMemoryBound(to: UInt8.self)
        return avio_alloc_context(buffer, size, 1, Unmanaged.passUnretained(self).toOpaque(), nil, { opaque, buf, size in
            let me = Unmanaged<MP4Fragments>.fromOpaque(opaque!).takeUnretainedValue()
            me.pending.append(contentsOf: UnsafeBufferPointer(start: buf, count: Int(size)))
            return size
        }, nil)
    }

    /// Whether to cut before this packet: at a video keyframe, or once a fragment holds `maxFragment`.
    func shouldCut(keyframe: Bool, hasVideo: Bool, dts: Int64?) -> Bool {
        guard written else {
            written = true
            startsAtKeyframe = keyframe || !hasVideo
            fragmentStart = dts
            return false
        }
        if keyframe { fragmentStart = dts; return true }
        guard let dts, let start = fragmentStart, dts - start >= maxFragment else { return false }
        fragmentStart = dts
        return true
    }

    /// The fragment written so far is out of the muxer: hand out the boxes it made.
    func cut(startingAtKeyframe next: Bool) {
        let current = startsAtKeyframe
        startsAtKeyframe = next
        var at = 0
        while pending.count - at >= 8 {
            var size = pending[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: pending[at + 4..<at + 8], as: UTF8.self)
            if size == 1 {
                guard pending.count - at >= 16 else { break }
                size = pending[at + 8..<at + 16].reduce(0) { $0 << 8 | Int($1) }
            }
            guard size >= 8, pending.count - at >= size else { break }
            let box = pending[at..<at + size]
            at += size
            switch type {
            case "ftyp", "moov":
                header += box
                if type == "moov", !headerDone {
                    headerDone = true
                    onInit(header)
                }
            case "moof":
                fragment = Array(box)
            case "mdat":
                fragment += box
                onFragment(fragment, current)
                fragment = []
            default:
                break // mfra at the end: nothing a live viewer reads
            }
        }
        pending.removeFirst(at)
    }
}

/// Keeps an output's timestamps going forward when the input's jump back (a restarted origin starts its
/// clock again): each run is shifted to start a little after the latest time written so far, audio and video
/// by the same amount. Times in µs.
struct Timeline {
    /// A stream whose DTS falls back by more than this has met a new run; smaller steps back are dropped.
    static let jumpBack: Int64 = 1_000_000
    /// Room left between runs, more than audio and video of one run are apart in the stream.
    static let gap: Int64 = 1_000_000

    private var shifts: [Int64] = [0]
    private var run: [Int32: Int] = [:]
    private var lastDTS: [Int32: Int64] = [:]
    private var latest: Int64 = .min

    /// The shift for a packet of `stream` with this DTS, or nil to drop it (it would not go forward).
    mutating func shift(stream: Int32, dts: Int64?) -> Int64? {
        var mine = run[stream] ?? 0
        guard let dts else { return shifts[mine] }
        if let last = lastDTS[stream], dts + shifts[mine] < last - Self.jumpBack {
            if mine + 1 < shifts.count {
                mine += 1 // another stream has started the new run already: keep in step with it
            } else {
                shifts.append(latest + Self.gap - dts)
                mine = shifts.count - 1
            }
            run[stream] = mine
        }
        let shifted = dts + shifts[mine]
        // Strictly forward: a muxer refuses a DTS it has had (a packet that came twice, around a restart).
        if let last = lastDTS[stream], shifted <= last { return nil }
        lastDTS[stream] = shifted
        latest = max(latest, shifted)
        return shifts[mine]
    }
}
