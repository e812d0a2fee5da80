import Foundation
import Hummingbird
import Logging
import NIOCore

/// The admin's small HTTP surface (Hummingbird 2), bound to loopback by default:
/// `GET /metrics` (Prometheus text), `GET /healthz`, and `GET /` (the replicas table, refreshing itself).
/// It shows workstation names, states, times and counts — never a resident's name, CPR number or note.
public enum AdminHTTP {
    public static func application(store: ServerStore, metrics: ServerMetrics, host: String, port: Int,
                                   serverCertificateExpires: Date? = nil, logger: Logger,
                                   onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let report = try await store.healthReport(serverCertificateExpires: serverCertificateExpires)
            metrics.update(with: report)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        router.get("/healthz") { _, _ -> Response in
            do {
                let head = try await store.checkWritable()
                return json(.ok, "{\"status\": \"ok\", \"head\": \(head)}")
            } catch {
                logger.error("health check failed: the store is not writable", metadata: ["error.type": "\(type(of: error))"])
                return json(.serviceUnavailable, "{\"status\": \"unavailable\", \"head\": null}")
            }
        }
        router.get("/") { _, _ -> Response in
            let report = try await store.healthReport(serverCertificateExpires: serverCertificateExpires)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: page(report))))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "shelter-admin"),
            onServerRunning: { channel in if let address = channel.localAddress { onListening(address) } },
            logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let colours: [ReplicaHealth.State: String] = [
        .ok: "#1e7d32", .behind: "#b26a00", .stale: "#c62828", .revoked: "#6a1b9a", .forked: "#ad1457", .neverSynced: "#546e7a",
        .expiring: "#ef6c00", .clockSkew: "#4e342e",
    ]

    /// The replicas table as a page that reloads itself every 10 seconds.
    static func page(_ report: HealthReport) -> String {
        var rows = ""
        for replica in report.replicas {
            let colour = colours[replica.state] ?? "#000"
            let error = replica.lastError.map { "\(escape($0.code)) at \(escape($0.at))" } ?? ""
            rows += """
                <tr><td>\(escape(replica.name))</td>\
                <td><span class="state" style="background:\(colour)">\(replica.state.rawValue)</span></td>\
                <td>\(escape(replica.lastSeen ?? "never"))</td><td>\(escape(replica.lastSync ?? "never"))</td>\
                <td class="n">\(replica.lag)</td><td class="n">\(replica.unsynced)</td><td class="n">\(replica.rejected)</td>\
                <td class="n">\(replica.recovered)</td><td>\(escape(replica.certificateExpires.map { String($0.prefix(10)) } ?? ""))</td>\
                <td class="n">\(replica.clockSkewMs.map(String.init) ?? "")</td><td class="n">\(replica.openConflicts)</td><td class="n">\(replica.erasuresPending)</td>\
                <td>\(escape(replica.clientVersion ?? ""))</td><td>\(error)</td></tr>

                """
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
            <title>ShelterSync — replicas</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; } th, td { padding: .35em .8em; border-bottom: 1px solid #ddd; text-align: left; }
            td.n { text-align: right; font-variant-numeric: tabular-nums; }
            .state { color: #fff; border-radius: .3em; padding: .1em .5em; font-weight: 600; }
            </style></head><body>
            <h1>ShelterSync replicas</h1>
            <p>Server log head \(report.head) · generated \(escape(report.generatedAt)) · this page refreshes every 10 seconds.</p>
            \(report.serverCertificateExpires.map { "<p>The server's certificate expires \(escape($0)).</p>" } ?? "")
            \(report.restoredAt.map { "<p>Restored from a backup at \(escape($0)): workstations that have not synced since may still give back changes.</p>" } ?? "")
            <table><thead><tr><th>workstation</th><th>state</th><th>last seen</th><th>last sync</th><th>lag</th><th>unsynced</th>\
            <th>rejected</th><th>recovered</th><th>certificate expires</th><th>clock skew ms</th><th>open conflicts</th><th>erasures pending</th><th>client</th><th>last error</th></tr></thead>
            <tbody>
            \(rows)</tbody></table>
            </body></html>

            """
    }
}
