import ChunkMesh
import MeshCore
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix

/// A one-line failure that ends a command with exit code 1.
public struct RuntimeFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
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

public func formatRate(bytes: Int, seconds: Double) -> String {
    guard seconds > 0 else { return "0 bit/s" }
    return BitRate(bitsPerSecond: max(1, Double(bytes) * 8 / seconds)).description + "bit/s"
}

/// A mesh peer that joins through `bootstrap`: listens where it can be reached and advertises that address.
public func joinerConfiguration(bootstrap: HostPort, key: ChannelKey, originKey: OriginPublicKey?, listen: HostPort?, units: Int,
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
public func isWrongKey(_ error: Error) -> Bool {
    error as? HandshakeError == .wrongKey || error as? HandshakeError == .rejected("wrong key")
}

extension JSONEncoder {
    /// How every JSON file and answer of ours is written: snake_case keys, sorted, indented.
    public static var reports: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}

/// A joiner's failures to reach its bootstrap before it joined. A wrong key or nobody listening ends the run at
/// once; anything else (a reset or a timeout: a crowded node turns handshakes away) is tried again, as the core
/// redials every 2 s, for `patience` µs.
public struct JoinFailures {
    public init() {}
    static let patience: Int64 = 30_000_000
    private var first: Int64?

    public mutating func isFinal(_ error: Error, now: Int64 = monotonicMicros()) -> Bool {
        let since = first ?? now
        first = since
        return isWrongKey(error) || describeConnectError(error) == "connection refused" || now - since >= Self.patience
    }
}

public func describeConnectError(_ error: Error) -> String {
    let text = "\(error)"
    if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
    if text.contains("connectTimeout") { return "timed out" }
    return text
}

/// The host to put in a join URL: a wildcard listen address becomes this machine's first LAN address.
public func advertisedHost(_ host: String) -> String {
    guard host == "0.0.0.0" || host == "::" else { return host }
    let devices = (try? System.enumerateDevices()) ?? []
    let wantV6 = host == "::"
    for device in devices {
        guard let ip = device.address?.ipAddress, !device.name.hasPrefix("lo") else { continue }
        if wantV6 == ip.contains(":"), !ip.hasPrefix("fe80") { return ip }
    }
    return wantV6 ? "::1" : "127.0.0.1"
}

/// Calls `tick` every `interval` seconds (one by default) on a queue of its own until stopped.
public final class StatsTicker: @unchecked Sendable {
    private let timer: DispatchSourceTimer

    public init(interval: Double = 1, _ tick: @escaping @Sendable () -> Void) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "stats"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler(handler: tick)
        timer.resume()
    }

    public func stop() { timer.cancel() }
}
