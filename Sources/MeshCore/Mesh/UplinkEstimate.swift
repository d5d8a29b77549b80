/// What a peer finds it can send (issue 19: uplinks found out, not declared). A part of `MeshPeer`, fed by its
/// `Egress`: how long the bytes it hands its links take to leave. Over windows of `window`, the bytes that left
/// while something was on its way, over the time something was on its way, is a sample of the uplink; a link's
/// socket takes up to `absorbed` bytes at once whatever the uplink (the driver's send buffer), so those bytes are
/// not counted as having taken any time. The estimate is the best sample of the last `memory` (as BBR keeps its
/// bottleneck bandwidth): a sample below it says a link was slow (its peer's acknowledgements wait in that peer's
/// own full uplink), not that this uplink shrank; a peer that takes on more than it can send finds out from its
/// live chunks waiting (`MeshPeer`'s allowance), and an old best sample ages out. `--uplink` caps the estimate; it
/// is not a claim. Rates in bytes per second.
public struct UplinkEstimate: Sendable {
    /// The estimate now, bytes/s.
    public private(set) var rate: Double
    /// At most this (`--uplink`), if set.
    public let cap: Double?
    /// Bytes a link's socket takes at once after a quiet spell: they drain at once whatever the uplink.
    let absorbed: Int
    /// Samples taken.
    public private(set) var samples = 0

    // The window being measured.
    private var windowStart: Int64?
    private var bytes = 0
    private var busy: Int64 = 0
    private var busySince: Int64?
    private var free = 0

    /// Each sample is weighed over this long.
    static let window: Int64 = 500_000
    /// A sample needs this much time with bytes on their way, and this many bytes past the sockets' share: a
    /// burst the sockets swallow whole says nothing about the uplink.
    static let minBusy: Int64 = 20_000
    static let minBytes = 4_096
    /// How long a sample counts.
    static let memory: Int64 = 10_000_000
    /// Samples of that long, newest last.
    private var recent: [(at: Int64, rate: Double)] = []

    public init(initial: Double, cap: Double?, absorbed: Int) {
        self.cap = cap
        self.absorbed = absorbed
        rate = min(initial, cap ?? .infinity)
    }

    /// Where the estimate starts, while nothing is measured yet (the stream's rate became known, say).
    package mutating func start(at initial: Double) {
        guard samples == 0 else { return }
        rate = min(initial, cap ?? .infinity)
    }

    /// A hand-out to a link: `idle` says how long that link's socket had to drain since its last bytes went, so
    /// the part of this hand-out it takes at once is known.
    package mutating func handedOut(bytes: Int, linkIdleFor idle: Int64, now: Int64) {
        if busySince == nil { busySince = now }
        if windowStart == nil { windowStart = now }
        let room = min(Double(absorbed), rate * Double(max(0, idle)) / 1e6)
        free += min(bytes, Int(room))
    }

    /// Bytes left; `idle` is true when nothing more is on its way. Returns true when the estimate changed.
    @discardableResult
    package mutating func drained(bytes sent: Int, idle: Bool, now: Int64) -> Bool {
        bytes += sent
        if idle, let since = busySince {
            busy += now - since
            busySince = nil
        }
        guard let start = windowStart, now - start >= Self.window else { return false }
        var busyNow = busy
        if let since = busySince { busyNow += now - since }
        let counted = bytes - free
        // Too little to weigh: keep gathering, up to a few windows.
        guard busyNow >= Self.minBusy, counted >= Self.minBytes else {
            if now - start >= 4 * Self.window { restart(idle: idle, now: now) }
            return false
        }
        restart(idle: idle, now: now)
        let sample = Double(counted) / (Double(busyNow) / 1e6)
        samples += 1
        let old = rate
        // A sample far above the estimate is more likely bytes the sockets swallowed than an uplink that grew
        // tenfold: each counts for at most twice the estimate.
        recent.removeAll { now - $0.at > Self.memory }
        recent.append((now, min(sample, 2 * rate)))
        rate = min(cap ?? .infinity, recent.map(\.rate).max()!)
        return abs(rate - old) > 0.01 * old
    }

    private mutating func restart(idle: Bool, now: Int64) {
        windowStart = idle ? nil : now
        bytes = 0
        free = 0
        busy = 0
        if busySince != nil { busySince = now }
    }
}
