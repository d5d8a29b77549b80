import ArgumentParser
import ChunkMesh
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// `--log-format`: lines a person reads, or one JSON object a line for a log pipeline.
public enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// One JSON object a line on stderr: `ts`, `level`, `label`, `source`, `message`, and the metadata as strings.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields[key] = "\(value)" }
        let time = ISO8601DateFormatter()
        time.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let record = Record(ts: time.string(from: Date()),
                            level: event.level.rawValue, label: label, source: event.source, message: "\(event.message)",
                            metadata: fields.isEmpty ? nil : fields)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(record) else { return }
        line.append(UInt8(ascii: "\n"))
        FileHandle.standardError.write(line)
    }

    private struct Record: Encodable {
        var ts, level, label, source, message: String
        var metadata: [String: String]?
    }
}

/// `--metrics HOST:PORT`: serve this node's counters as Prometheus text at `/metrics`.
public struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9100).")
    public var metrics: HostPort?

    public init() {}

    /// Runs `body` with the metrics served, when `--metrics` asks for them.
    public func serving(logger: Logger, _ body: () throws -> Void) throws {
        let server = try start(logger: logger)
        defer { server?.stop() }
        try body()
    }

    /// Bootstraps swift-metrics with a Prometheus registry and serves it; nil without `--metrics`.
    public func start(logger: Logger) throws -> MetricsServer? {
        guard let metrics else { return nil }
        do {
            let server = try MetricsServer(listen: metrics)
            logger.info("metrics at http://\(server.address)/metrics")
            return server
        } catch {
            throw RuntimeFailure("cannot serve metrics on \(metrics): \(error)")
        }
    }
}

/// A small HTTP/1.1 server for `GET /metrics`, on a thread of its own.
public final class MetricsServer {
    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Chunk latencies: 1 ms to 10 s.
        factory.defaultDurationHistogramBuckets = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000].map { .milliseconds($0) }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    /// Where it listens, `HOST:PORT` (the port filled in when 0 was asked).
    public let address: HostPort

    public init(listen: HostPort) throws {
        let registry = Self.registry
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.pipeline.configureHTTPServerPipeline().flatMap {
                        channel.pipeline.addHandler(MetricsHTTPHandler(registry: registry))
                    }
                }
                .bind(host: listen.host, port: listen.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        address = HostPort(host: listen.host, port: channel.localAddress?.port ?? listen.port)
    }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

private final class MetricsHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let registry: PrometheusCollectorRegistry
    private var path = ""
    private var keepAlive = false

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri : ""
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let found = path == "/metrics" || path.hasPrefix("/metrics?")
            let body = found ? registry.emitToBuffer() : Array("not found: try /metrics\n".utf8)
            var headers = HTTPHeaders([("Content-Type", found ? "text/plain; version=0.0.4" : "text/plain"),
                                       ("Content-Length", "\(body.count)")])
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let keepAlive = self.keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
