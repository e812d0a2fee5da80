import Foundation
import Prometheus

/// The server's metrics, in a Prometheus registry this server owns (no global bootstrap, so tests
/// and embedders get their own). Every metric is made here with its `# HELP` text, straight in the
/// registry: swift-metrics' factory registers metrics without help, and a registry refuses one name
/// with two help texts. The counters and the merge histogram exist from start-up (at 0), so a scrape
/// before the first sync already shows them. Labels carry workstation names and outcomes only: never
/// personal data.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Every metric's name and help text.
    enum Help {
        static let sessions = ("shelter_sync_sessions_total", "Sync sessions that ended, by outcome (ok, or the error code or disconnect reason).")
        static let pushed = ("shelter_changes_pushed_total", "Changes workstations pushed to the server (including changes given back to a restored server).")
        static let pulled = ("shelter_changes_pulled_total", "Changes workstations pulled from the server.")
        static let snapshotRows = ("shelter_snapshot_rows_total", "Rows new workstations took in a snapshot instead of the log.")
        static let conflicts = ("shelter_conflicts_created_total", "Conflicts merging found (concurrent edits of one field kept for staff to resolve).")
        static let mergeDuration = ("shelter_merge_duration_seconds", "Time to merge and commit one pushed batch.")
        static let logHead = ("shelter_log_head", "The position of the newest entry in the server's log.")
        static let serverCertificate = ("shelter_server_certificate_expires_in_seconds", "Seconds until the server's certificate expires.")
        static let replicaCertificate = ("shelter_replica_certificate_expires_in_seconds", "Seconds until the workstation's certificate expires.")
        static let lag = ("shelter_replica_lag", "Entries of the server's log that have not reached the workstation yet.")
        static let unsynced = ("shelter_replica_unsynced", "Unsynced changes the workstation reported at its last sync.")
        static let rejected = ("shelter_replica_rejected", "Changes of the workstation that the server refused.")
        static let openConflicts = ("shelter_replica_open_conflicts", "Open conflicts one of whose values the workstation wrote.")
        static let erasuresPending = ("shelter_replica_erasures_pending", "Erasures in the server's log that the workstation has not pulled yet.")
        static let recovered = ("shelter_replica_recovered", "Changes a server restored from a backup got back from the workstation.")
        static let sinceLastSync = ("shelter_replica_seconds_since_last_sync", "Seconds since the workstation's last successful sync (-1: never synced).")
        static let state = ("shelter_replica_state", "1 for the workstation's current state, 0 for the others.")
    }

    static let mergeBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        // From start-up, at 0: the session counter of the usual outcome, the change counters, the histogram.
        _ = sessions(outcome: "ok")
        _ = counter(Help.pushed)
        _ = counter(Help.pulled)
        _ = counter(Help.snapshotRows)
        _ = counter(Help.conflicts)
        _ = mergeHistogram
    }

    private func counter(_ help: (String, String), labels: [(String, String)] = []) -> Prometheus.Counter {
        registry.makeCounter(name: help.0, labels: labels, help: help.1)
    }

    private func gauge(_ help: (String, String), labels: [(String, String)] = []) -> Prometheus.Gauge {
        registry.makeGauge(name: help.0, labels: labels, help: help.1)
    }

    private func sessions(outcome: String) -> Prometheus.Counter { counter(Help.sessions, labels: [("outcome", outcome)]) }

    private var mergeHistogram: DurationHistogram {
        registry.makeDurationHistogram(name: Help.mergeDuration.0, labels: [], buckets: Self.mergeBuckets, help: Help.mergeDuration.1)
    }

    /// One finished session.
    func session(outcome: String, pushed: Int, pulled: Int, snapshotRows: Int = 0, conflicts: Int) {
        sessions(outcome: outcome).increment()
        if pushed > 0 { counter(Help.pushed).increment(by: Int64(pushed)) }
        if pulled > 0 { counter(Help.pulled).increment(by: Int64(pulled)) }
        if snapshotRows > 0 { counter(Help.snapshotRows).increment(by: Int64(snapshotRows)) }
        if conflicts > 0 { counter(Help.conflicts).increment(by: Int64(conflicts)) }
    }

    /// How long merging one pushed batch took (merge and commit).
    func mergeDuration(_ duration: Duration) {
        mergeHistogram.record(duration)
    }

    /// Sets the per-workstation gauges from a health report (at scrape time).
    public func update(with report: HealthReport, now: Date = Date()) {
        gauge(Help.logHead).set(Double(report.head))
        if let expires = report.serverCertificateExpires.flatMap({ try? Date($0, strategy: .iso8601) }) {
            gauge(Help.serverCertificate).set(expires.timeIntervalSince(now).rounded())
        }
        for replica in report.replicas {
            let name = [("replica", replica.name)]
            if let expires = replica.certificateExpires.flatMap({ try? Date($0, strategy: .iso8601) }) {
                gauge(Help.replicaCertificate, labels: name).set(expires.timeIntervalSince(now).rounded())
            }
            gauge(Help.lag, labels: name).set(Double(replica.lag))
            gauge(Help.unsynced, labels: name).set(Double(replica.unsynced))
            gauge(Help.rejected, labels: name).set(Double(replica.rejected))
            gauge(Help.openConflicts, labels: name).set(Double(replica.openConflicts))
            gauge(Help.erasuresPending, labels: name).set(Double(replica.erasuresPending))
            gauge(Help.recovered, labels: name).set(Double(replica.recovered))
            // Never synced: -1, so an alert can tell it from "just now".
            gauge(Help.sinceLastSync, labels: name).set(replica.secondsSinceLastSync(now: now).map { $0.rounded() } ?? -1)
            for state in ReplicaHealth.State.allCases {
                gauge(Help.state, labels: name + [("state", state.rawValue)]).set(state == replica.state ? 1.0 : 0.0)
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String { registry.emitToString() }
}
