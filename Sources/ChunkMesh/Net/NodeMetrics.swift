import MeshCore
import CoreMetrics

/// What a mesh node counts, through swift-metrics: nothing is kept unless the process bootstraps a backend
/// (`--metrics` serves them as Prometheus text).
struct NodeMetrics {
    let chunksIn = Counter(label: "lsp2p_chunks_received_total")
    let bytesIn = Counter(label: "lsp2p_bytes_received_total")
    let chunksOut = Counter(label: "lsp2p_chunks_sent_total")
    let bytesOut = Counter(label: "lsp2p_bytes_sent_total")
    let chunksDropped = Counter(label: "lsp2p_chunks_dropped_total")
    let parentChanges = Counter(label: "lsp2p_parent_changes_total")
    let residualUnits = Gauge(label: "lsp2p_residual_units")
    let delayFromSource = Gauge(label: "lsp2p_delay_from_source_seconds")
    let linksUp = Gauge(label: "lsp2p_links", dimensions: [("state", "up")])
    let children = Gauge(label: "lsp2p_children")
    let parents = Gauge(label: "lsp2p_parents")
    private let failures: [LinkFailure: Counter] = Dictionary(uniqueKeysWithValues: LinkFailure.allCases.map {
        ($0, Counter(label: "lsp2p_link_failures_total", dimensions: [("reason", $0.rawValue)]))
    })

    enum LinkFailure: String, CaseIterable {
        case connect, handshake, tag, frame, other
    }

    func failed(_ error: Error) {
        let reason: LinkFailure
        switch error {
        case is HandshakeError: reason = .handshake
        case is LinkCipherError: reason = .tag
        case is WireError: reason = .frame
        default: reason = .other
        }
        failures[reason]?.increment()
    }

    func connectFailed() { failures[.connect]?.increment() }
}
