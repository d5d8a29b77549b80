import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import LSP2PKit
import Logging

extension BitRate: ExpressibleByArgument {
    /// Up to `BitRate.maxArgument`: a rate past any link is a typo, and turned into units or a pace it would trap.
    public init?(argument: String) {
        guard let rate = BitRate(argument), rate.bitsPerSecond <= BitRate.maxArgument else { return nil }
        self = rate
    }
    public var defaultValueDescription: String { description }
}

extension HostPort: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public var defaultValueDescription: String { description }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
extension UplinkDistribution: ExpressibleByArgument {}

extension Duration: @retroactive ExpressibleByArgument {
    /// `90`, `90s`, `15m`, `2h`.
    public init?(argument: String) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        var text = argument.lowercased()
        var scale = 1.0
        if let last = text.last, let unit = units[last] {
            scale = unit
            text.removeLast()
        }
        guard let value = Double(text), value > 0, value * scale <= Self.maxArgumentSeconds else { return nil }
        self = .milliseconds(Int64(value * scale * 1000))
    }

    /// Ten years: past that a time is a typo (and past Int64 milliseconds it would trap).
    public static let maxArgumentSeconds = 10 * 365 * 86_400.0

    /// `--duration` and the like, in seconds: positive and at most `maxArgumentSeconds`.
    public static func checkSeconds(_ seconds: Double?, _ option: String) throws {
        guard let seconds else { return }
        guard seconds > 0, seconds <= maxArgumentSeconds else {
            throw ValidationError("\(option) must be positive and at most \(Int(maxArgumentSeconds)) s")
        }
    }
}

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
        bootstrapLogging(level: logLevel, format: logFormat)
        return Logger(label: label)
    }
}

/// `--http HOST:PORT`: the node's status page, `/status.json` and `/metrics` (`--metrics` is the older name).
public struct HTTPOptions: ParsableArguments {
    @Option(help: "Serve the status page at http://HOST:PORT/ (also /status.json and Prometheus /metrics), e.g. 127.0.0.1:8080.")
    public var http: HostPort?

    @Option(help: ArgumentHelp("The same server as --http (its older name).", visibility: .hidden))
    public var metrics: HostPort?

    public init() {}

    /// Where the status server listens, if asked.
    public var listen: HostPort? { http ?? metrics }

    public func validate() throws {
        if http != nil, metrics != nil { throw ValidationError("--http and --metrics name the same server: give one") }
    }
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

/// Runs a command's work: a `RuntimeFailure` becomes one `TOOL: message` line on stderr and exit code 1.
public func exitingOnFailure(_ tool: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as RuntimeFailure {
        printErr("\(tool): \(failure)")
        throw ExitCode.failure
    }
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

/// A number of bytes: `500000`, `500k`, `50M`, `2G` (powers of 1000, as rates are).
public struct ByteCount: ExpressibleByArgument, Sendable {
    public var bytes: Int

    public init?(argument: String) {
        guard let value = BitRate.quantity(argument.hasSuffix("B") ? String(argument.dropLast()) : argument), value < 1e18 else { return nil }
        bytes = Int(value)
    }
}

/// `--upload-budget` and `--until`, on the nodes that upload for others.
public struct UploadLimitOptions: ParsableArguments {
    @Option(help: "Upload at most this many bytes of stream to children (500M, 2G), then hand them over to other parents and upload no more.")
    public var uploadBudget: ByteCount?

    @Option(help: "Upload for this long (90s, 15m, 2h), then hand the children over as for --upload-budget.")
    public var until: Duration?

    public init() {}

    public var limit: UploadLimit { UploadLimit(budget: uploadBudget?.bytes, until: until) }
}
