import ChunkMesh
import MeshCore
import Foundation
import LSP2PKit
import Logging
import NIOPosix
import StreamIngest

/// `lsp2p-relay soak`: an origin, relays and players as real processes on loopback, churn on a seeded
/// schedule, a live progress line, and a report with plots at the end.
public struct SoakService {
    public var input: String
    public var relays: Int
    public var players: Int
    public var duration: Double
    public var chunkMs: Int
    public var deadlineMs: Int
    public var uplinks: UplinkDistribution
    public var churn: ChurnSpec
    public var seed: UInt64
    public var out: String
    public var minOnTime: Double
    public var quiet: Bool
    /// Relays' upload budgets: relays that spend theirs hand their children over and exit.
    public var budgets = BudgetDistribution.off
    /// Each host in a network namespace of its own on one bridge, its uplink shaped (`EmulatedLAN`).
    public var lan = false
    /// What the relays and players are told of their uplinks (`--uplink`); on loopback, where nothing is shaped,
    /// the drawn uplink is what they send at most.
    public var declared = DeclaredUplink.honest
    /// Players join this long after the relays (the mesh settles first).
    public var warmup: Double = 0
    /// The relays' and players' log level (their logs are in `logs/`).
    public var nodeLogLevel = "info"

    public init(input: String, relays: Int, players: Int, duration: Double, chunkMs: Int, deadlineMs: Int,
                uplinks: UplinkDistribution, churn: ChurnSpec, seed: UInt64, out: String, minOnTime: Double, quiet: Bool) {
        self.input = input
        self.relays = relays
        self.players = players
        self.duration = duration
        self.chunkMs = chunkMs
        self.deadlineMs = deadlineMs
        self.uplinks = uplinks
        self.churn = churn
        self.seed = seed
        self.out = out
        self.minOnTime = minOnTime
        self.quiet = quiet
    }

    /// Runs the soak and writes the report; throws `RuntimeFailure` when it could not run, or when the
    /// on-time ratio ends below `minOnTime` (after writing everything).
    public func run(logger: Logger) throws {
        let streamRate: Double
        do {
            streamRate = Double(try Ingest(options: IngestOptions(input: InputSpec(location: input, format: nil), realtime: false)).nominalBitRate)
        } catch { throw RuntimeFailure("\(error)") }
        guard streamRate > 0 else { throw RuntimeFailure("\(input): the stream's bit rate is unknown; give --uplink-dist in bits/s") }
        let outDir = URL(fileURLWithPath: out)
        do {
            try FileManager.default.createDirectory(at: outDir.appendingPathComponent("logs"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: outDir.appendingPathComponent("players"), withIntermediateDirectories: true)
        } catch { throw RuntimeFailure("cannot create \(out): \(error)") }
        var network: EmulatedLAN?
        if lan {
            do { network = try EmulatedLAN() } catch { throw RuntimeFailure("\(error)") }
        }
        defer { network?.tearDown() }
        let run = SoakRun(service: self, streamRate: streamRate, outDir: outDir, logger: logger, lan: network)
        let result = try run.run()
        do { try result.write(to: outDir) } catch { throw RuntimeFailure("cannot write the report in \(out): \(error)") }
        printErr(result.summary)
        if result.totals.onTimeRatio < minOnTime {
            throw RuntimeFailure(String(format: "on-time ratio %.4f is below --min-on-time %.4f", result.totals.onTimeRatio, minOnTime))
        }
    }
}

/// One child process with its stderr in a file.
final class SoakChild {
    let name: String
    let process = Process()
    let log: URL
    let startedAt: Double

    /// The host it runs on, on an emulated LAN, and what that host had sent when it started.
    let host: EmulatedLAN.Host?
    let bytesAtStart: Int
    let dropsAtStart: Int

    init(_ binary: URL, _ args: [String], name: String, logDir: URL, at t: Double, on lan: EmulatedLAN? = nil,
         host: EmulatedLAN.Host? = nil) throws {
        self.name = name
        self.startedAt = t
        self.host = host
        bytesAtStart = host.map { lan?.bytesSent(by: $0) ?? 0 } ?? 0
        dropsAtStart = host.map { lan?.uplinkDrops(of: $0) ?? 0 } ?? 0
        var (binary, args) = (binary, args)
        if let lan, let host { (binary, args) = lan.command(on: host, binary, args) }
        log = logDir.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = binary
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    /// Lines of its stderr so far.
    var lines: [Substring] {
        guard let data = try? Data(contentsOf: log) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
    }

    func line(containing text: String) -> Substring? { lines.last { $0.contains(text) } }

    func waitForExit(seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < end { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Resident memory in MiB, from /proc.
    var rssMiB: Double? {
        guard process.isRunning, let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }
}

final class SoakRun {
    let service: SoakService
    let streamRate: Double
    let outDir: URL
    let logDir: URL
    let logger: Logger
    let relayBinary: URL
    let playerBinary: URL
    let keyFile: String
    let key = ChannelKey.random()
    var rng: SplitMixRandom
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let started = Date()

    var origin: SoakChild!
    var url = ""
    /// Where the origin listens, for the mesh view.
    var originAddress: HostPort?
    var relays: [SoakChild?] = []
    var players: [SoakChild] = []
    var events: [SoakResult.Event] = []
    var samples: [SoakResult.Sample] = []
    var recoveries: [Double] = []
    var pendingRecovery: [(id: String, at: Double)] = []
    var unrecovered = 0
    var notObserved = 0
    var rss: [SoakResult.RSS] = []
    /// Each player's latest report (players rewrite theirs each second).
    var lastReports: [String: Report] = [:]
    /// Players gone whose last report has been read.
    var finalReports: Set<String> = []
    var relayCount = 0, playerCount = 0
    /// The emulated LAN, if the soak runs on one: the relays' hosts by slot (a relay started again in a slot runs
    /// on the same host), and what each process did there.
    let lan: EmulatedLAN?
    var relayHosts: [EmulatedLAN.Host] = []
    var hostStats: [String: SoakResult.Host] = [:]
    /// Who runs at each LAN address now, for the mesh map's peers.
    var atAddress: [String: String] = [:]
    var nextMeshSample = 0.0
    /// Relays' and players' uplinks, drawn in the order they start.
    var uplinks: UplinkDistribution

    init(service: SoakService, streamRate: Double, outDir: URL, logger: Logger, lan: EmulatedLAN? = nil) {
        self.lan = lan
        self.service = service
        self.uplinks = service.uplinks
        self.streamRate = streamRate
        self.outDir = outDir
        self.logDir = outDir.appendingPathComponent("logs")
        self.logger = logger
        self.rng = SplitMixRandom(seed: service.seed)
        let binDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        relayBinary = binDir.appendingPathComponent("lsp2p-relay")
        playerBinary = binDir.appendingPathComponent("lsp2p-play")
        keyFile = outDir.appendingPathComponent("channel.key").path
    }

    var now: Double { Date().timeIntervalSince(started) }

    func run() throws -> SoakResult {
        guard FileManager.default.isExecutableFile(atPath: playerBinary.path) else {
            throw RuntimeFailure("lsp2p-play not found next to lsp2p-relay (\(playerBinary.path))")
        }
        defer { try? group.syncShutdownGracefully() }
        try KeyFile(channel: key, originSecret: OriginSigningKey()).text(includingSecret: true)
            .write(toFile: keyFile, atomically: true, encoding: .utf8)
        do {
            try startOrigin()
            for slot in 0..<service.relays {
                if let lan { relayHosts.append(try lan.addHost(uplink: drawUplink())) }
                relays.append(try startRelay(slot: slot))
            }
            if service.warmup == 0 { for _ in 0..<service.players { players.append(try startPlayer()) } }
        } catch {
            stopAll()
            throw RuntimeFailure("cannot start the soak's processes: \(error)")
        }
        let stop = StopFlag()
        let signals = StopSignals { _ in stop.set() }
        defer { withExtendedLifetime(signals) {} }

        var nextRelayKill = service.churn.relayEvery.map { now + $0 }
        var nextPlayerSwap = service.churn.playerEvery.map { now + $0 }
        var restarts: [(slot: Int, at: Double)] = []
        var nextSample = now + 1
        var playersStarted = service.warmup == 0
        while now < service.duration, !stop.isSet {
            usleep(200_000)
            let t = now
            if !playersStarted, t >= service.warmup {
                playersStarted = true
                for _ in 0..<service.players { if let player = try? startPlayer() { players.append(player) } }
            }
            if lan != nil, t >= nextMeshSample {
                nextMeshSample = t + 10
                sampleMesh()
            }
            if let due = nextRelayKill, t >= due {
                nextRelayKill = due + service.churn.relayEvery!
                killRelay(at: t, restarts: &restarts)
            }
            reapSpentRelays(at: t, restarts: &restarts)
            for r in restarts where t >= r.at { relays[r.slot] = try? startRelay(slot: r.slot) }
            restarts.removeAll { t >= $0.at }
            if let due = nextPlayerSwap, t >= due {
                nextPlayerSwap = due + service.churn.playerEvery!
                swapPlayer(at: t)
            }
            checkRecoveries(at: t)
            if t >= nextSample {
                nextSample += 1
                sample(at: t)
            }
        }
        if stop.isSet { logger.notice("stopping early on a signal") }
        for player in players {
            if let report = try? Report.load(reportPath(player.name)) { lastReports[player.name] = report }
        }
        checkRecoveries(at: now)
        unrecovered += pendingRecovery.count
        let finalMap = originAddress.flatMap { try? MeshMap.fetch(from: $0, key: key, timeout: 3, group: group) }
        if let finalMap { record(finalMap) }
        let originBytes = stopAll()
        var result = SoakResult(service: service, streamRate: streamRate, elapsed: now, players: playerReports(),
                                events: events, samples: samples, recoveries: recoveries, unrecovered: unrecovered, notObserved: notObserved,
                                originBytes: originBytes, rss: rss, mesh: finalMap)
        if lan != nil {
            for (name, report) in lastReports { hostStats[name]?.onTimeRatio = report.onTimeRatio }
            result.hosts = hostStats.values.sorted { ($0.order, $0.name) < ($1.order, $1.name) }
        }
        return result
    }

    // MARK: processes

    private func startOrigin() throws {
        let uplink = 2 * streamRate
        let host = try lan?.addHost(uplink: uplink)
        let listen = host.map { "\($0.address):7000" } ?? "127.0.0.1:0"
        origin = try SoakChild(relayBinary, ["source", "--input", service.input, "--loop", "--listen", listen,
                                             "--key-file", keyFile, "--chunk-ms", "\(service.chunkMs)",
                                             "--uplink", "\(Int(uplink))", "--log-level", service.nodeLogLevel],
                               name: "origin", logDir: logDir, at: now,
                               on: lan, host: host)
        started(origin, role: "origin", uplink: uplink, declared: uplink)
        let end = Date().addingTimeInterval(20)
        while Date() < end {
            if let line = origin.line(containing: "join: ") {
                url = String(line[line.range(of: "lsp2p://")!.lowerBound...])
                originAddress = try JoinURL(url).address
                return
            }
            guard origin.isRunning else { break }
            usleep(50_000)
        }
        throw RuntimeFailure("the origin did not start: \(origin.lines.suffix(3).joined(separator: " / "))")
    }

    /// One host's uplink, bits/s, from `--uplink-dist`.
    private func drawUplink() -> Double { uplinks.draw(streamRate: streamRate, using: &rng) }

    /// A relay in its slot: on a LAN, on the slot's host, with the host's uplink; on loopback, a new draw.
    private func startRelay(slot: Int) throws -> SoakChild {
        relayCount += 1
        let host = lan != nil ? relayHosts[slot] : nil
        let uplink = host?.uplink ?? drawUplink()
        let declared = service.declared.declare(uplink)
        var args = ["relay", url, "--log-level", service.nodeLogLevel]
        if let declared { args += ["--uplink", "\(Int(declared))"] }
        if let budget = service.budgets.draw(using: &rng) { args += ["--upload-budget", "\(budget)"] }
        let child = try SoakChild(relayBinary, args, name: "relay-\(relayCount)", logDir: logDir, at: now, on: lan, host: host)
        events.append(.init(t: now, kind: "relay-start", target: child.name))
        started(child, role: "relay", uplink: uplink, declared: declared)
        return child
    }

    private func startPlayer() throws -> SoakChild {
        playerCount += 1
        let name = "player-\(playerCount)"
        let host = try lan.map { try $0.addHost(uplink: drawUplink()) }
        var args = [url, "--output", "/dev/null", "--deadline-ms", "\(service.deadlineMs)", "--report", reportPath(name), "--quiet",
                    "--log-level", service.nodeLogLevel]
        let declared = host.flatMap { $0.uplink.flatMap(service.declared.declare) }
        if let declared { args += ["--uplink", "\(Int(declared))"] }
        let child = try SoakChild(playerBinary, args, name: name, logDir: logDir, at: now, on: lan, host: host)
        events.append(.init(t: now, kind: "player-join", target: name))
        if let uplink = host?.uplink { started(child, role: "player", uplink: uplink, declared: declared) }
        return child
    }

    /// A process on a LAN host: its line in the report's hosts.
    private func started(_ child: SoakChild, role: String, uplink: Double, declared: Double?) {
        guard let host = child.host else { return }
        atAddress[host.address] = child.name
        let order = ["origin": 0, "relay": 1, "player": 2][role] ?? 3
        let unit = streamRate / Double(SubstreamPlan.defaultCount)
        hostStats[child.name] = SoakResult.Host(name: child.name, role: role, order: order, address: host.address, uplinkBps: uplink,
                                                declaredBps: declared, unitsItCanSend: Int(uplink / unit))
    }

    /// What the host of a process that ended (or is ending) sent while it ran.
    private func ended(_ child: SoakChild) {
        guard let lan, let host = child.host else { return }
        hostStats[child.name]?.bytesSent = lan.bytesSent(by: host) - child.bytesAtStart
        hostStats[child.name]?.uplinkDrops = lan.uplinkDrops(of: host) - child.dropsAtStart
        hostStats[child.name]?.seconds = ((now - child.startedAt) * 10).rounded() / 10
    }

    /// The mesh as the origin's walk finds it: each LAN host's units held (substreams its children take from it).
    private func sampleMesh() {
        guard let address = originAddress, let map = try? MeshMap.fetch(from: address, key: key, timeout: 3, group: group) else { return }
        record(map)
    }

    private func record(_ map: MeshMap) {
        var units: [String: Int] = [:]
        var children: [String: Int] = [:]
        for peer in map.peers {
            for parent in Set(peer.substreams.compactMap(\.parent)) { children[parent, default: 0] += 1 }
            for parent in peer.substreams.compactMap(\.parent) { units[parent, default: 0] += 1 }
        }
        for peer in map.peers {
            guard let host = HostPort(peer.id)?.host, let name = atAddress[host], hostStats[name] != nil else { continue }
            let held = units[peer.id] ?? 0
            hostStats[name]!.unitsHeld = held
            hostStats[name]!.unitsHeldMax = max(hostStats[name]!.unitsHeldMax, held)
            hostStats[name]!.children = children[peer.id] ?? 0
            hostStats[name]!.unitsOffered = peer.residualUnits + held
        }
    }

    /// A relay's mesh id, from its log: `relay 127.0.0.1:PORT joining ...`.
    private func meshID(_ relay: SoakChild) -> String? {
        guard let line = relay.line(containing: "joining") , let r = line.range(of: "relay ") else { return nil }
        return String(line[r.upperBound...].prefix { $0 != " " })
    }

    private func killRelay(at t: Double, restarts: inout [(slot: Int, at: Double)]) {
        // Relay 1 is never killed: its memory is watched for the whole run.
        let candidates = relays.indices.filter { $0 > 0 && relays[$0]?.isRunning == true }
        guard !candidates.isEmpty else { return }
        let slot = candidates[Int(rng.next() % UInt64(candidates.count))]
        let victim = relays[slot]!
        let id = meshID(victim)
        victim.signal(SIGKILL)
        victim.waitForExit(seconds: 5)
        ended(victim)
        relays[slot] = nil
        events.append(.init(t: t, kind: "relay-kill", target: victim.name))
        if let id { pendingRecovery.append((id, t)) }
        restarts.append((slot, t + service.churn.relayDown))
    }

    /// Relays that left on their own (a spent budget exits 0) make way for new ones, as killed ones do.
    private func reapSpentRelays(at t: Double, restarts: inout [(slot: Int, at: Double)]) {
        for slot in relays.indices {
            guard let relay = relays[slot], !relay.isRunning else { continue }
            let status = relay.process.terminationStatus
            ended(relay)
            events.append(.init(t: t, kind: status == 0 ? "relay-spent" : "relay-exit", target: relay.name))
            if status != 0 { logger.warning("\(relay.name) exited with status \(status)") }
            relays[slot] = nil
            restarts.append((slot, t + service.churn.relayDown))
        }
    }

    private func swapPlayer(at t: Double) {
        let active = players.filter(\.isRunning)
        guard !active.isEmpty else { return }
        let leaving = active[Int(rng.next() % UInt64(active.count))]
        leaving.signal(SIGTERM)
        if lan != nil {
            leaving.waitForExit(seconds: 15)
            ended(leaving)
        }
        events.append(.init(t: t, kind: "player-leave", target: leaving.name))
        if let newcomer = try? startPlayer() { players.append(newcomer) }
    }

    /// A kill is recovered once every player the dead relay fed directly has a parent for every substream again,
    /// none of them the dead relay; the time is the players' own (their reports' `parents` changes), not when the
    /// soak looked. A relay that fed no player directly is not timed here: its subtree shows in the on-time ratio.
    private func checkRecoveries(at t: Double) {
        pendingRecovery.removeAll { pending in
            var affected = 0
            var slowest = 0.0
            for player in players where player.isRunning {
                guard let report = lastReports[player.name] else { continue }
                // On the soak's clock: the player's own start on the wall clock (the process starts a little earlier).
                let start = report.startedUnixS.map { $0 - started.timeIntervalSince1970 } ?? player.startedAt
                let changes = report.parents.map { (at: start + $0.atS, parents: $0.parents, fed: $0.fed ?? 0) }
                guard let before = changes.last(where: { $0.at <= pending.at }), before.parents.contains(pending.id) else { continue }
                affected += 1
                guard let after = changes.first(where: { $0.at > pending.at && !$0.parents.contains(pending.id) && $0.fed >= before.fed })
                else { return t - pending.at > 60 ? giveUp(pending.id) : false }
                slowest = max(slowest, after.at - pending.at)
            }
            // Reports are rewritten every 5 s: a player fed by the relay may not have said so yet.
            guard t - pending.at > 7 else { return false }
            if affected > 0 {
                recoveries.append(slowest * 1000)
                events.append(.init(t: pending.at + slowest, kind: "recovered", target: pending.id))
            } else {
                notObserved += 1
            }
            return true
        }
    }

    private func giveUp(_ id: String) -> Bool {
        unrecovered += 1
        events.append(.init(t: now, kind: "unrecovered", target: id))
        return true
    }

    private func sample(at t: Double) {
        // Running players' reports, and a gone one's last (written at its exit): not every player ever, every second.
        for player in players where player.isRunning || !finalReports.contains(player.name) {
            if !player.isRunning { finalReports.insert(player.name) }
            if let report = try? Report.load(reportPath(player.name)) { lastReports[player.name] = report }
        }
        let reports = Array(lastReports.values)
        let onTime = reports.reduce(0) { $0 + $1.chunksOnTime }
        let expected = reports.reduce(0) { $0 + $1.chunksOnTime + $1.chunksLate + $1.chunksMissing }
        let p99 = players.filter(\.isRunning).compactMap { lastReports[$0.name]?.latencyMs.p99 }.max() ?? 0
        let relaysUp = relays.compactMap { $0 }.filter(\.isRunning).count
        let playersUp = players.filter(\.isRunning).count
        samples.append(.init(t: t, onTime: onTime, expected: expected, p99Ms: p99, relaysUp: relaysUp, playersUp: playersUp))
        if let watched = relays.first ?? nil, let mib = watched.rssMiB, rss.last.map({ t - $0.t >= 10 }) ?? true {
            rss.append(.init(t: t, mib: mib))
        }
        guard !service.quiet else { return }
        printErr(String(format: "soak %4.0f/%.0fs | relays %d/%d | players %d/%d | on time %.2f%% | p99 %.0f ms | recoveries %d",
                        t, service.duration, relaysUp, service.relays, playersUp, service.players,
                        expected == 0 ? 100 : 100 * Double(onTime) / Double(expected), p99, recoveries.count))
    }

    /// Players first (they write their reports), then relays, then the origin; returns what the origin sent.
    @discardableResult
    private func stopAll() -> Int {
        let running = players.filter(\.isRunning)
        for p in players { p.signal(SIGTERM) }
        for p in players { p.waitForExit(seconds: 15) }
        for p in running { ended(p) }
        for r in relays.compactMap({ $0 }) { r.signal(SIGTERM) }
        for r in relays.compactMap({ $0 }) { r.waitForExit(seconds: 10) }
        for r in relays.compactMap({ $0 }) { ended(r) }
        guard let origin else { return 0 }
        origin.signal(SIGTERM)
        origin.waitForExit(seconds: 20)
        ended(origin)
        // `done: N chunks, B bytes sent over L link(s), D dropped`
        let done = origin.line(containing: "done:") ?? ""
        return Int(done.split(separator: " ").drop { $0 != "chunks," }.dropFirst().first ?? "") ?? 0
    }

    private func reportPath(_ name: String) -> String { outDir.appendingPathComponent("players/\(name).json").path }

    private func playerReports() -> [SoakResult.Player] {
        players.compactMap { p in
            guard let report = try? Report.load(reportPath(p.name)) else { return nil }
            return SoakResult.Player(name: p.name, joinedS: (p.startedAt * 10).rounded() / 10, report: report)
        }
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
