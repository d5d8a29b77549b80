import Foundation

/// `lsp2p-play --report`: the keys tests and scripts read (design §5).
public struct Report: Codable, Equatable {
    public struct Latency: Codable, Equatable {
        public var p50, p90, p99, max: Double
        public init(p50: Double, p90: Double, p99: Double, max: Double) { (self.p50, self.p90, self.p99, self.max) = (p50, p90, p99, max) }
    }
    public struct ParentChange: Codable, Equatable {
        public var atS: Double
        public var parents: [String]
        /// Substreams that have a parent (a lost parent's are missing until new ones say yes).
        public var fed: Int?
        public init(atS: Double, parents: [String], fed: Int? = nil) { (self.atS, self.parents, self.fed) = (atS, parents, fed) }
    }

    public var chunksExpected, chunksReceived, chunksOnTime, chunksLate, chunksMissing, bytesReceived: Int
    public var latencyMs: Latency
    /// [percentile, ms] pairs: the latency distribution, for plots.
    public var latencyCdfMs: [[Double]]
    public var firstChunkMs: Double?
    public var parents: [ParentChange]
    /// Times the origin restarted (a new run, timestamps from zero) while this player kept playing.
    public var originRestarts: Int
    public var durationS: Double
    /// When the player joined (`at_s` counts from it), Unix seconds.
    public var startedUnixS: Double?
    /// When chunks were given up as missing: [seconds since joining, how many], the first 1,000 times.
    public var missingAtS: [[Double]]?

    public static let cdfPercentiles: [Double] = [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 100]

    public init(chunksExpected: Int, chunksReceived: Int, chunksOnTime: Int, chunksLate: Int, chunksMissing: Int, bytesReceived: Int,
                latencyMs: Latency, latencyCdfMs: [[Double]], firstChunkMs: Double?, parents: [ParentChange], originRestarts: Int,
                durationS: Double, startedUnixS: Double? = nil, missingAtS: [[Double]]? = nil) {
        (self.chunksExpected, self.chunksReceived, self.chunksOnTime, self.chunksLate, self.chunksMissing, self.bytesReceived) =
            (chunksExpected, chunksReceived, chunksOnTime, chunksLate, chunksMissing, bytesReceived)
        (self.latencyMs, self.latencyCdfMs, self.firstChunkMs, self.parents, self.originRestarts, self.durationS) =
            (latencyMs, latencyCdfMs, firstChunkMs, parents, originRestarts, durationS)
        self.startedUnixS = startedUnixS
        self.missingAtS = missingAtS
    }

    public static func load(_ path: String) throws -> Report {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes the report to `path`: a new or regular file is replaced whole (a reader never sees half a report);
    /// anything else there (a symlink, a pipe, a device) is written through, as a shell's `>` would, never
    /// renamed over.
    public func write(to path: String) throws {
        let data = try JSONEncoder.reports.encode(self)
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG else {
            return try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }
        // Never blocking the node: a pipe without a reader is an error (ENXIO), a full one drops this report.
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw RuntimeFailure(errno == ENXIO ? "a pipe with no reader" : String(cString: strerror(errno))) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { try handle.truncate(atOffset: 0) }
        try handle.write(contentsOf: data)
    }
}

