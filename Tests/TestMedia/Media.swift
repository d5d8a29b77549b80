import Foundation
import XCTest

/// Media helpers for tests: the committed sample, a temp folder, and the real ffmpeg/ffprobe tools.
public enum Media {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let sample = packageRoot.appendingPathComponent("samples/sample.mp4").path

    public static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lsp2p-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs a tool; returns (status, stdout, stderr).
    @discardableResult
    public static func run(_ tool: String, _ args: [String]) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    public static func ffmpeg(_ args: [String]) throws {
        let (status, _, err) = try run("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y"] + args)
        XCTAssertEqual(status, 0, "ffmpeg failed: \(err)")
    }

    /// Codec names and container duration, from ffprobe.
    public static func probe(_ path: String) throws -> (codecs: [String], duration: Double) {
        let (_, out, _) = try run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json", path])
        let json = try JSONSerialization.jsonObject(with: out) as? [String: Any] ?? [:]
        let streams = json["streams"] as? [[String: Any]] ?? []
        let format = json["format"] as? [String: Any] ?? [:]
        return (streams.compactMap { $0["codec_name"] as? String }, Double(format["duration"] as? String ?? "") ?? 0)
    }

    /// What `ffmpeg -v error -i F -f null -` prints: empty when the file decodes cleanly.
    public static func decodeErrors(_ path: String) throws -> String {
        let (status, _, err) = try run("ffmpeg", ["-v", "error", "-i", path, "-f", "null", "-"])
        return status == 0 ? err : "exit \(status): \(err)"
    }
}
