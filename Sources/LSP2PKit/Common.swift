import ArgumentParser
import ChunkMesh
import Dispatch
import Foundation
import Logging
import StreamIngest

extension BitRate: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public var defaultValueDescription: String { description }
}

extension HostPort: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public var defaultValueDescription: String { description }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Options every command shares.
public struct CommonOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .info

    @Option(help: "Log format on stderr: text, or json (one object a line).")
    public var logFormat: LogFormat = .text

    @Flag(name: .shortAndLong, help: "No stats line.")
    public var quiet = false

    public init() {}

    /// Sets up logging to stderr (stdout may carry media) and returns the command's logger.
    public func makeLogger(_ label: String) -> Logger {
        let level = logLevel
        let format = logFormat
        setFFmpegLogging(verbose: level <= .debug)
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
        return Logger(label: label)
    }
}

/// Runs a command's work: a `RuntimeFailure` becomes one `TOOL: message` line on stderr and exit code 1.
public func exitingOnFailure(_ tool: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as RuntimeFailure {
        printErr("\(tool): \(failure)")
        throw ExitCode.failure
    }
}

/// A one-line failure that ends a command with exit code 1.
public struct RuntimeFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Resolves the keys from `--key-file`, else the join URL's `?key=`; the origin's public key from either.
public func resolveKeys(keyFile: String?, url: JoinURL?) throws -> KeyFile {
    var keys: KeyFile
    if let keyFile {
        do { keys = try KeyFile(contentsOfFile: keyFile) } catch { throw ValidationError("--key-file \(keyFile): \(error)") }
    } else if let key = url?.key {
        keys = KeyFile(channel: key)
    } else {
        throw ValidationError("no key: give --key-file F or a join URL with ?key=HEX64")
    }
    if let origin = url?.origin {
        if let given = keys.origin, given != origin { throw ValidationError("the join URL's origin= differs from the key file's") }
        keys.origin = origin
    }
    return keys
}

/// The channel key alone (see `resolveKeys`).
public func resolveKey(keyFile: String?, url: JoinURL?) throws -> ChannelKey {
    try resolveKeys(keyFile: keyFile, url: url).channel
}

/// Writes a line to stderr, unbuffered.
public func printErr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Calls `handler` once on the first SIGINT or SIGTERM (instead of dying), on a queue of its own.
public final class StopSignals {
    private var sources: [DispatchSourceSignal] = []

    public init(_ handler: @escaping @Sendable (Int32) -> Void) {
        let queue = DispatchQueue(label: "signals")
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { handler(sig) }
            source.resume()
            sources.append(source)
        }
        signal(SIGPIPE, SIG_IGN)
    }
}

func formatRate(bytes: Int, seconds: Double) -> String {
    guard seconds > 0 else { return "0 bit/s" }
    return BitRate(bitsPerSecond: max(1, Double(bytes) * 8 / seconds)).description + "bit/s"
}

extension ParsableCommand {
    /// `main()` with the exit codes of design §5: usage errors exit 2 (ArgumentParser's own code is 64).
    public static func mainWithContractExitCodes() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printErr(fullMessage(for: error))
                Foundation.exit(2)
            }
            Self.exit(withError: error)
        }
    }
}

/// A mesh peer that joins through `bootstrap`: listens where it can be reached and advertises that address.
func joinerConfiguration(bootstrap: HostPort, key: ChannelKey, originKey: OriginPublicKey?, listen: HostPort?, units: Int,
                         uplink: BitRate?) -> MeshNode.Configuration {
    let listen = listen ?? defaultListen(joining: bootstrap)
    var config = MeshNode.Configuration(listen: listen, key: key, isOrigin: false, bootstrap: bootstrap, capacityUnits: units,
                                        scheduleDelay: 1_000, seed: UInt64.random(in: 0...UInt64.max), uplink: uplink)
    config.advertise = advertisedHost(listen.host)
    config.originKey = originKey
    return config
}

/// Where a peer listens by default: on loopback when the join address is, else on every interface.
func defaultListen(joining bootstrap: HostPort) -> HostPort {
    if bootstrap.host.hasPrefix("127.") || bootstrap.host == "::1" || bootstrap.host == "localhost" {
        return HostPort(host: bootstrap.host, port: 0)
    }
    return HostPort(host: bootstrap.host.contains(":") ? "::" : "0.0.0.0", port: 0)
}

/// Whether a link failed because one side does not hold the channel key (ours found out, or theirs told us).
func isWrongKey(_ error: Error) -> Bool {
    error as? HandshakeError == .wrongKey || error as? HandshakeError == .rejected("wrong key")
}

extension JSONEncoder {
    /// How every JSON file and answer of ours is written: snake_case keys, sorted, indented.
    static var reports: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}
