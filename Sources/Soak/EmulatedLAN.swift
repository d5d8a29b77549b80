import Foundation
import LSP2PKit

/// An emulated LAN for `soak --lan` and the tests: one network namespace per host, each on one Linux bridge
/// through a veth pair, each host's uplink shaped by `tc ... tbf` on its side of the pair (downlinks unshaped, as
/// on Wi-Fi where upload is what a laptop lacks). Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking
/// range), a /20 per run; the root namespace holds the first address of it, so the soak can reach every host.
///
/// Everything is named after this process's pid (`lsp2p-PID-N`, bridge `lsp2pPID`): `tearDown()` removes it, a
/// watchdog process removes it if this one dies without doing so (a crash, SIGKILL), and a new run sweeps what
/// runs whose process is gone left behind. Needs root.
public final class EmulatedLAN {
    public struct Host: Sendable {
        public let index: Int
        public let namespace: String
        public let address: String
        /// Its real uplink, bits/s (nil: unshaped).
        public let uplink: Double?
        /// Its end of the veth pair in the root namespace: what it receives there is what the host sent.
        let bridgePort: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    let tag: String
    let bridge: String
    /// The run's /20: its first address is the root namespace's.
    let base: UInt32
    public private(set) var hosts: [Host] = []
    private var watchdog: Process?
    private var tornDown = false
    static let prefix = 20

    /// Whether this process may build namespaces (it runs as root).
    public static var isPermitted: Bool { geteuid() == 0 }

    public init() throws {
        guard Self.isPermitted else { throw Failure(description: "an emulated LAN needs root (network namespaces and tc)") }
        guard let ip = Self.which("ip"), Self.which("tc") != nil, FileManager.default.isExecutableFile(atPath: ip) else {
            throw Failure(description: "an emulated LAN needs iproute2's ip and tc (apt-get install iproute2)")
        }
        let pid = getpid()
        tag = "lsp2p-\(pid)"
        bridge = "lsp2p\(pid)"
        Self.sweepStale()
        guard let slot = Self.freeSlot() else { throw Failure(description: "no free /20 left in 198.18.0.0/15 for an emulated LAN") }
        base = (198 << 24 | 18 << 16) + UInt32(slot) << 12
        startWatchdog()
        do {
            try Self.ip(["link", "add", bridge, "type", "bridge"])
            try Self.ip(["link", "set", bridge, "up"])
            try Self.ip(["addr", "add", "\(Self.dotted(base + 1))/\(Self.prefix)", "dev", bridge])
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    /// The address the root namespace (the soak itself) has on the LAN.
    public var rootAddress: String { Self.dotted(base + 1) }

    /// A new host on the bridge, its uplink shaped to `uplink` bits/s (nil leaves it unshaped).
    @discardableResult
    public func addHost(uplink: Double?) throws -> Host {
        let index = hosts.count
        guard index < 4000 else { throw Failure(description: "an emulated LAN holds at most 4000 hosts") }
        let ns = "\(tag)-\(index)"
        let outside = "l\(getpid())h\(index)"
        let inside = "l\(getpid())n\(index)"
        let address = Self.dotted(base + 2 + UInt32(index))
        try Self.ip(["netns", "add", ns])
        try Self.ip(["link", "add", outside, "type", "veth", "peer", "name", inside])
        try Self.ip(["link", "set", inside, "netns", ns])
        try Self.ip(["link", "set", outside, "master", bridge, "up"])
        try Self.ip(["-n", ns, "link", "set", inside, "name", "eth0"])
        try Self.ip(["-n", ns, "addr", "add", "\(address)/\(Self.prefix)", "dev", "eth0"])
        try Self.ip(["-n", ns, "link", "set", "eth0", "up"])
        try Self.ip(["-n", ns, "link", "set", "lo", "up"])
        // Packets of one MTU, as a Wi-Fi card sends them: a veth's 64 KiB segmentation offload hands tbf bursts
        // it can only drop or let through whole, so a socket's write seems to leave at once whatever the rate.
        try Self.ip(["-n", ns, "link", "set", "dev", "eth0", "gso_max_size", "1514", "gso_max_segs", "1"])
        if let uplink { try shape(ns, uplink: uplink) }
        let host = Host(index: index, namespace: ns, address: address, uplink: uplink, bridgePort: outside)
        hosts.append(host)
        return host
    }

    /// The host's uplink as a token bucket: `rate`, a burst of a few milliseconds' worth (at least 4 KiB: a few
    /// packets), and a queue of 200 ms (at least 64 KiB) before the bucket drops. A Wi-Fi card queues in packets, a
    /// thousand or so, whatever its rate: a queue of 50 ms is 6 KB at 1 Mbit/s, less than one chunk, and dropped 1-4 %
    /// of a relay's packets (each a TCP retransmission, 200 ms or more) where the card would have queued them.
    private func shape(_ ns: String, uplink: Double) throws {
        let bytesPerSecond = uplink / 8
        let burst = max(4096, Int(bytesPerSecond * 0.004))
        let limit = max(65_536, Int(bytesPerSecond * 0.2))
        try Self.run(Self.which("tc")!, ["-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "\(Int(uplink))bit",
                                        "burst", "\(burst)", "limit", "\(limit)"])
    }

    /// The command line that runs `binary` inside the host's namespace.
    public func command(on host: Host, _ binary: URL, _ args: [String]) -> (URL, [String]) {
        (URL(fileURLWithPath: Self.which("ip") ?? "/usr/sbin/ip"), ["netns", "exec", host.namespace, binary.path] + args)
    }

    /// Bytes the host has sent onto the LAN so far (its uplink's count, frames and all).
    public func bytesSent(by host: Host) -> Int {
        let path = "/sys/class/net/\(host.bridgePort)/statistics/rx_bytes"
        return (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
    }

    /// Packets the host's uplink dropped so far (its queue was full).
    public func uplinkDrops(of host: Host) -> Int {
        guard host.uplink != nil, let text = try? Self.run(Self.which("tc")!, ["-n", host.namespace, "-s", "qdisc", "show", "dev", "eth0"]),
              let range = text.range(of: "dropped ") else { return 0 }
        return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// Kills whatever runs in the hosts, removes them and the bridge. Safe to call twice.
    public func tearDown() {
        guard !tornDown else { return }
        tornDown = true
        _ = try? Self.run("/bin/sh", ["-c", Self.cleanupScript(pid: getpid())])
        if let watchdog, watchdog.isRunning { kill(watchdog.processIdentifier, SIGKILL) }
    }

    // MARK: clean-up

    /// Removes the namespaces and bridge of run `pid`, killing what runs inside first.
    static func cleanupScript(pid: Int32) -> String {
        """
        for ns in $(ip netns list | awk '{print $1}' | grep '^lsp2p-\(pid)-'); do \
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done; ip netns del "$ns" 2>/dev/null; done; \
        ip link del lsp2p\(pid) 2>/dev/null; true
        """
    }

    /// A process of its own that waits for this one to end and then cleans up after it (it outlives a crash).
    private func startWatchdog() {
        let pid = getpid()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while kill -0 \(pid) 2>/dev/null; do sleep 1; done; " + Self.cleanupScript(pid: pid)]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        watchdog = process
    }

    /// Cleans up after earlier runs whose process is gone.
    static func sweepStale() {
        guard let list = try? output(which("ip") ?? "/usr/sbin/ip", ["netns", "list"]) else { return }
        var dead: Set<Int32> = []
        for line in list.split(separator: "\n") {
            let name = line.split(separator: " ").first.map(String.init) ?? ""
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0] == "lsp2p", let pid = Int32(parts[1]), kill(pid, 0) != 0, errno == ESRCH else { continue }
            dead.insert(pid)
        }
        for pid in dead { _ = try? run("/bin/sh", ["-c", cleanupScript(pid: pid)]) }
    }

    /// A /20 of 198.18.0.0/15 that no interface of the root namespace uses.
    static func freeSlot() -> Int? {
        let used = (try? output(which("ip") ?? "/usr/sbin/ip", ["-4", "-o", "addr", "show"])) ?? ""
        let taken = Set(used.split(separator: " ").compactMap { word -> Int? in
            let parts = word.split(separator: "/").first?.split(separator: ".").compactMap { UInt32($0) } ?? []
            guard parts.count == 4, parts[0] == 198, parts[1] == 18 || parts[1] == 19 else { return nil }
            return Int(((parts[1] - 18) << 16 | parts[2] << 8) >> 12)
        })
        return (0..<32).first { !taken.contains($0) }
    }

    // MARK: commands

    static func dotted(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

    static func which(_ tool: String) -> String? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func ip(_ args: [String]) throws { try run(which("ip") ?? "/usr/sbin/ip", args) }

    @discardableResult
    static func run(_ path: String, _ args: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        let err = Pipe()
        let out = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let text = out.fileHandleForReading.readDataToEndOfFile()
        let problem = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: problem, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "\(URL(fileURLWithPath: path).lastPathComponent) \(args.joined(separator: " ")): \(message)")
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func output(_ path: String, _ args: [String]) throws -> String { try run(path, args) }
}
