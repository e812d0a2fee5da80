import Foundation
import Metrics
import Prometheus

/// The server's metrics, through swift-metrics, into a Prometheus registry this server owns (no
/// global bootstrap, so tests and embedders get their own). Labels carry workstation names and
/// outcomes only: never personal data.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        self.factory = factory
    }

    /// One finished session.
    func session(outcome: String, pushed: Int, pulled: Int, conflicts: Int) {
        Counter(label: "shelter_sync_sessions_total", dimensions: [("outcome", outcome)], factory: factory).increment()
        if pushed > 0 { Counter(label: "shelter_changes_pushed_total", factory: factory).increment(by: pushed) }
        if pulled > 0 { Counter(label: "shelter_changes_pulled_total", factory: factory).increment(by: pulled) }
        if conflicts > 0 { Counter(label: "shelter_conflicts_created_total", factory: factory).increment(by: conflicts) }
    }

    /// How long merging one pushed batch took (merge and commit).
    func mergeDuration(_ duration: Duration) {
        Metrics.Timer(label: "shelter_merge_duration_seconds", factory: factory).record(duration: duration)
    }

    /// Sets the per-workstation gauges from a health report (at scrape time).
    public func update(with report: HealthReport, now: Date = Date()) {
        Gauge(label: "shelter_log_head", factory: factory).record(Double(report.head))
        if let expires = report.serverCertificateExpires.flatMap({ try? Date($0, strategy: .iso8601) }) {
            Gauge(label: "shelter_server_certificate_expires_in_seconds", factory: factory).record(expires.timeIntervalSince(now).rounded())
        }
        for replica in report.replicas {
            let name = [("replica", replica.name)]
            if let expires = replica.certificateExpires.flatMap({ try? Date($0, strategy: .iso8601) }) {
                Gauge(label: "shelter_replica_certificate_expires_in_seconds", dimensions: name, factory: factory)
                    .record(expires.timeIntervalSince(now).rounded())
            }
            Gauge(label: "shelter_replica_lag", dimensions: name, factory: factory).record(Double(replica.lag))
            Gauge(label: "shelter_replica_unsynced", dimensions: name, factory: factory).record(Double(replica.unsynced))
            Gauge(label: "shelter_replica_rejected", dimensions: name, factory: factory).record(Double(replica.rejected))
            Gauge(label: "shelter_replica_open_conflicts", dimensions: name, factory: factory).record(Double(replica.openConflicts))
            Gauge(label: "shelter_replica_erasures_pending", dimensions: name, factory: factory).record(Double(replica.erasuresPending))
            Gauge(label: "shelter_replica_recovered", dimensions: name, factory: factory).record(Double(replica.recovered))
            // Never synced: -1, so an alert can tell it from "just now".
            Gauge(label: "shelter_replica_seconds_since_last_sync", dimensions: name, factory: factory)
                .record(replica.secondsSinceLastSync(now: now).map { $0.rounded() } ?? -1)
            for state in ReplicaHealth.State.allCases {
                Gauge(label: "shelter_replica_state", dimensions: name + [("state", state.rawValue)], factory: factory)
                    .record(state == replica.state ? 1.0 : 0.0)
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String { registry.emitToString() }
}

extension Metrics.Timer {
    func record(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
