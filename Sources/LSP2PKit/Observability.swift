import ChunkMesh
import MeshCore
import Foundation
import Logging

/// `--log-format`: lines a person reads, or one JSON object a line for a log pipeline.
public enum LogFormat: String, CaseIterable, Sendable {
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

/// Logging to stderr (stdout may carry media), as text lines or JSON objects.
public func bootstrapLogging(level: Logger.Level, format: LogFormat) {
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        case .json:
            return JSONLogHandler(label: label, logLevel: level)
        }
    }
}
