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

/// Remuxes the incoming MPEG-TS into MP4 or Matroska with libavformat, on a thread of its own.
public final class RemuxSink: MediaSink, @unchecked Sendable {
    /// Bytes handed from `write` to the demuxer's read callback.
    private final class Pipe {
        let condition = NSCondition()
        var chunks: [ByteBuffer] = []
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
            }
            return Int32(n)
        }
    }

    private let path: String
    private let pipe = Pipe()
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)
    private var error: Error?

    public init(path: String) throws {
        self.path = path
        // Fail now, not at the end, when the file cannot be made.
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw MediaError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        let thread = Thread { [self] in
            var failure: Error?
            do { try remux() } catch { failure = error }
            pipe.condition.lock()
            self.error = failure
            pipe.closed = true // a failed remux stops taking bytes
            pipe.chunks.removeAll()
            pipe.condition.unlock()
            done.signal()
        }
        thread.name = "remux"
        self.thread = thread
        thread.start()
    }

    public func write(_ bytes: ByteBuffer) throws {
        pipe.condition.lock()
        defer { pipe.condition.unlock() }
        if let error { throw error }
        pipe.chunks.append(bytes)
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
            throw MediaError("no media arrived to write to \(path)")
        }
        defer { avformat_close_input(&input) }
        try check(avformat_find_stream_info(inCtx, nil), "cannot read the received stream")

        var output: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&output, nil, nil, path), "cannot write \(path)")
        let outCtx = output!
        defer {
            avio_closep(&outCtx.pointee.pb)
            avformat_free_context(outCtx)
        }
        var map: [Int32: UnsafeMutablePointer<AVStream>] = [:]
        for i in 0..<Int(inCtx.pointee.nb_streams) {
            let s = inCtx.pointee.streams[i]!
            let type = s.pointee.codecpar.pointee.codec_type
            guard type == AVMEDIA_TYPE_VIDEO || type == AVMEDIA_TYPE_AUDIO else { continue }
            let o = avformat_new_stream(outCtx, nil)!
            try check(avcodec_parameters_copy(o.pointee.codecpar, s.pointee.codecpar), "cannot copy codec parameters")
            o.pointee.codecpar.pointee.codec_tag = 0
            o.pointee.time_base = s.pointee.time_base
            map[Int32(i)] = o
        }
        try check(avio_open(&outCtx.pointee.pb, path, AVIO_FLAG_WRITE), "cannot create \(path)")
        try check(avformat_write_header(outCtx, nil), "cannot write \(path)")
        let packet = Packet()
        let p = packet.pointer
        // Start the output at the first timestamp the receiver got, keeping audio and video in step.
        let start = inCtx.pointee.start_time == noPTS ? 0 : inCtx.pointee.start_time
        var timeline = Timeline()
        while av_read_frame(inCtx, p) >= 0 {
            defer { av_packet_unref(p) }
            guard let o = map[p.pointee.stream_index] else { continue }
            let inTB = inCtx.pointee.streams[Int(p.pointee.stream_index)]!.pointee.time_base
            let dts = p.pointee.dts == noPTS ? nil : av_rescale_q(p.pointee.dts, inTB, lsp2p_time_base_q()) - start
            guard let shift = timeline.shift(stream: p.pointee.stream_index, dts: dts) else { continue }
            let base = av_rescale_q(start - shift, lsp2p_time_base_q(), inTB)
            if p.pointee.pts != noPTS { p.pointee.pts -= base }
            if p.pointee.dts != noPTS { p.pointee.dts -= base }
            p.pointee.stream_index = o.pointee.index
            p.pointee.pos = -1
            av_packet_rescale_ts(p, inTB, o.pointee.time_base)
            try check(av_interleaved_write_frame(outCtx, p), "cannot write \(path)")
        }
        try check(av_write_trailer(outCtx), "cannot finish \(path)")
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
