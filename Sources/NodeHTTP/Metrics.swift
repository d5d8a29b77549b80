import Metrics
import Prometheus

/// The process's Prometheus registry: swift-metrics is bootstrapped with it the first time it is used, which
/// must be before the node makes its counters (a counter made earlier counts nothing).
public enum PrometheusExport {
    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Chunk latencies: 1 ms to 10 s.
        factory.defaultDurationHistogramBuckets = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000].map { .milliseconds($0) }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Bootstraps swift-metrics (once).
    public static func bootstrap() { _ = registry }

    /// `/metrics`: Prometheus text.
    public static var page: Page { Page("text/plain; version=0.0.4", registry.emitToBuffer()) }
}
