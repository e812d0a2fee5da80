import Foundation
import Hummingbird
import Logging
import NIOCore
import ShelterDomain

/// The admin's small HTTP surface (Hummingbird 2), bound to loopback by default:
/// `GET /metrics` (Prometheus text), `GET`/`HEAD /healthz`, and `GET /` (the workstations table,
/// refreshing itself, in the server's language and time zone).
/// It shows workstation names, states, times and counts — never a resident's name, CPR number or note.
public enum AdminHTTP {
    /// How long `/healthz` waits for the store to take a write before it answers 503.
    public static let healthDeadline: Duration = .milliseconds(1500)
    /// How often the page reloads itself, in seconds.
    static let refreshSeconds = 10

    /// The application; `language` and `timeZone` are the page's (default: the process's language,
    /// and `TZ`, else Europe/Copenhagen).
    public static func application(store: ServerStore, metrics: ServerMetrics, host: String, port: Int,
                                   serverCertificateExpires: Date? = nil, language: Language = .current,
                                   timeZone: TimeZone = LocalTime.zone, logger: Logger,
                                   onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let report = try await store.healthReport(serverCertificateExpires: serverCertificateExpires)
            metrics.update(with: report)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        router.get("/healthz") { _, _ -> Response in
            await health(store: store, logger: logger)
        }
        // A load balancer's probe: the same status and headers, no body.
        router.head("/healthz") { _, _ -> Response in
            await health(store: store, logger: logger).createHeadResponse()
        }
        router.get("/") { _, _ -> Response in
            let report = try await store.healthReport(serverCertificateExpires: serverCertificateExpires)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: page(report, language: language, timeZone: timeZone))))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "shelter-admin"),
            onServerRunning: { channel in if let address = channel.localAddress { onListening(address) } },
            logger: logger)
    }

    // MARK: /healthz

    /// `/healthz` took longer than `healthDeadline`: another connection holds the store's write lock,
    /// or the server's own writer is stuck.
    struct HealthCheckTimedOut: Error {}

    /// 200 with the log head when the store takes a write within `deadline`, else 503.
    static func health(store: ServerStore, deadline: Duration = healthDeadline, logger: Logger) async -> Response {
        switch await writableHead(store: store, deadline: deadline) {
        case .success(let head):
            return json(.ok, "{\"status\": \"ok\", \"head\": \(head)}")
        case .failure(let error):
            logger.error("health check failed: the store is not writable", metadata: ["error.type": "\(type(of: error))"])
            return json(.serviceUnavailable, "{\"status\": \"unavailable\", \"head\": null}")
        }
    }

    /// Races `store.checkWritable()` against `deadline` and returns whichever ends first. The check is
    /// cancelled, not awaited, when the deadline wins: its own busy timeout ends it soon after.
    static func writableHead(store: ServerStore, deadline: Duration) async -> Result<Int64, any Error> {
        let (outcomes, continuation) = AsyncStream.makeStream(of: Result<Int64, any Error>.self)
        let check = Task {
            do { continuation.yield(.success(try await store.checkWritable())) } catch { continuation.yield(.failure(error)) }
        }
        let timer = Task {
            try? await Task.sleep(for: deadline)
            continuation.yield(.failure(HealthCheckTimedOut()))
        }
        defer {
            continuation.finish()
            timer.cancel()
            check.cancel()
        }
        var iterator = outcomes.makeAsyncIterator()
        return await iterator.next() ?? .failure(CancellationError())
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    // MARK: The page

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A state's badge: its background and its text colour (`#rrggbb`).
    struct Badge: Hashable, Sendable {
        var background: String
        var text: String
    }

    /// The badge of every state; a test holds each pair to WCAG's 4.5:1 for normal text.
    static let colours: [ReplicaHealth.State: Badge] = [
        .ok: Badge(background: "#1e7d32", text: "#ffffff"),         // green
        .behind: Badge(background: "#ffb300", text: "#1a1a1a"),     // amber
        .stale: Badge(background: "#c62828", text: "#ffffff"),      // red
        .revoked: Badge(background: "#6a1b9a", text: "#ffffff"),    // purple
        .forked: Badge(background: "#ad1457", text: "#ffffff"),     // magenta
        .neverSynced: Badge(background: "#546e7a", text: "#ffffff"), // grey
        .expiring: Badge(background: "#ef6c00", text: "#1a1a1a"),   // orange
        .clockSkew: Badge(background: "#4e342e", text: "#ffffff"),  // brown
    ]

    /// The WCAG 2 contrast ratio of two `#rrggbb` colours (1 to 21); nil for anything else.
    static func contrastRatio(_ first: String, _ second: String) -> Double? {
        func luminance(_ hex: String) -> Double? {
            guard hex.count == 7, hex.first == "#", let value = UInt32(hex.dropFirst(), radix: 16) else { return nil }
            func linear(_ channel: UInt32) -> Double {
                let c = Double(channel) / 255
                return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
            }
            return 0.2126 * linear(value >> 16 & 0xff) + 0.7152 * linear(value >> 8 & 0xff) + 0.0722 * linear(value & 0xff)
        }
        guard let a = luminance(first), let b = luminance(second) else { return nil }
        return (max(a, b) + 0.05) / (min(a, b) + 0.05)
    }

    /// The catalogue key of a state's name for people.
    static func stateKey(_ state: ReplicaHealth.State) -> String {
        switch state {
        case .ok: "admin.state.ok"
        case .behind: "admin.state.behind"
        case .stale: "admin.state.stale"
        case .revoked: "admin.state.revoked"
        case .forked: "admin.state.forked"
        case .neverSynced: "admin.state.neverSynced"
        case .expiring: "admin.state.expiring"
        case .clockSkew: "admin.state.clockSkew"
        }
    }

    /// A state's name for people, in `language`.
    public static func stateName(_ state: ReplicaHealth.State, language: Language = .current) -> String {
        Catalogue.text(stateKey(state), [], language: language)
    }

    /// A stored UTC moment as people read it in `zone` (`LocalTime`: `15.01.2026 kl. 13.00` in Danish,
    /// `2026-01-15 13:00` in English), in a `<time>` element that keeps the stored value; text that
    /// is not a moment is shown as it is.
    static func localTime(_ stored: String, in zone: TimeZone, language: Language, dateOnly: Bool = false) -> String {
        guard let moment = try? Timestamp.parse(stored, timeZone: .gmt) else { return escape(stored) }
        let text = dateOnly ? localDate(stored: stored, language: language, zone: zone) : LocalTime.dateTime(moment, language: language, zone: zone)
        return "<time datetime=\"\(escape(stored))\">\(escape(text))</time>"
    }

    /// The day of a stored UTC moment in `zone`, as people read it (a certificate's expiry).
    public static func localDate(stored: String, language: Language = .current, zone: TimeZone = LocalTime.zone) -> String {
        guard let moment = try? Timestamp.parse(stored, timeZone: .gmt) else { return stored }
        return LocalTime.date(LocalTime.civilDate(of: moment, zone: zone), language: language)
    }

    /// The workstations table as a page that reloads itself every `refreshSeconds` seconds, its texts
    /// in `language`, its times in `timeZone`.
    static func page(_ report: HealthReport, language: Language, timeZone: TimeZone) -> String {
        /// A catalogue text as HTML: the text escaped, its placeholders filled with HTML fragments.
        func text(_ key: String, _ fragments: (String, String)...) -> String {
            var html = escape(Catalogue.text(key, [], language: language))
            for (name, fragment) in fragments { html = html.replacingOccurrences(of: "{\(name)}", with: fragment) }
            return html
        }
        func time(_ stored: String?) -> String { stored.map { localTime($0, in: timeZone, language: language) } ?? text("admin.never") }
        // Numbers are right-aligned in tabular figures, times never wrap; the rest reads left to right.
        let columns: [(key: String, numeric: Bool)] = [
            ("admin.column.name", false), ("admin.column.state", false), ("admin.column.lastSeen", false),
            ("admin.column.lastSync", false), ("admin.column.lag", true), ("admin.column.unsynced", true),
            ("admin.column.rejected", true), ("admin.column.recovered", true), ("admin.column.certificateExpires", false),
            ("admin.column.clockSkew", true), ("admin.column.openConflicts", true), ("admin.column.erasuresPending", true),
            ("admin.column.client", false), ("admin.column.lastError", false),
        ]
        let header = columns.map { $0.numeric ? "<th scope=\"col\" class=\"num\">\(text($0.key))</th>" : "<th scope=\"col\">\(text($0.key))</th>" }
            .joined()
        var rows = ""
        for replica in report.replicas {
            let error = replica.lastError.map { text("admin.error", ("code", escape($0.code)), ("time", localTime($0.at, in: timeZone, language: language))) } ?? ""
            let cells = [
                "<th scope=\"row\">\(escape(replica.name))</th>",
                "<td><span class=\"state state-\(replica.state.rawValue)\">\(escape(stateName(replica.state, language: language)))</span></td>",
                "<td>\(time(replica.lastSeen))</td>",
                "<td>\(time(replica.lastSync))</td>",
                "<td class=\"num\">\(replica.lag)</td>",
                "<td class=\"num\">\(replica.unsynced)</td>",
                "<td class=\"num\">\(replica.rejected)</td>",
                "<td class=\"num\">\(replica.recovered)</td>",
                "<td>\(replica.certificateExpires.map { localTime($0, in: timeZone, language: language, dateOnly: true) } ?? "")</td>",
                "<td class=\"num\">\(replica.clockSkewMs.map(String.init) ?? "")</td>",
                "<td class=\"num\">\(replica.openConflicts)</td>",
                "<td class=\"num\">\(replica.erasuresPending)</td>",
                "<td>\(escape(replica.clientVersion ?? ""))</td>",
                "<td>\(error)</td>",
            ]
            rows += "<tr>" + cells.joined() + "</tr>\n"
        }
        if report.replicas.isEmpty {
            rows = "<tr><td colspan=\"\(columns.count)\">\(text("admin.page.empty"))</td></tr>\n"
        }
        let badges = ReplicaHealth.State.allCases.compactMap { state in
            colours[state].map { ".state-\(state.rawValue) { background: \($0.background); color: \($0.text); }" }
        }.joined(separator: "\n")
        let facts = [
            text("admin.page.head", ("head", String(report.head))),
            text("admin.page.generated", ("time", localTime(report.generatedAt, in: timeZone, language: language))),
            text("admin.page.timeZone", ("zone", escape(timeZone.identifier))),
            text("admin.page.refresh", ("seconds", String(refreshSeconds))),
        ].joined(separator: " · ")
        let certificate = report.serverCertificateExpires.map {
            "<p>" + text("admin.page.serverCertificate", ("date", localTime($0, in: timeZone, language: language, dateOnly: true))) + "</p>"
        } ?? ""
        let restored = report.restoredAt.map { "<p class=\"warning\">" + text("admin.restored", ("time", localTime($0, in: timeZone, language: language))) + "</p>" } ?? ""
        return """
            <!doctype html>
            <html lang="\(language.rawValue)"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="refresh" content="\(refreshSeconds)">
            <title>\(text("admin.title"))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 1rem; color: #1a1a1a; background: #ffffff; line-height: 1.4; }
            h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
            p { margin: .3rem 0; max-width: 60rem; }
            .warning { background: #fff4e5; color: #1a1a1a; border-left: .3rem solid #ef6c00; padding: .3rem .6rem; }
            .table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; margin-top: 1rem; }
            table { border-collapse: collapse; }
            th, td { padding: .35em .8em; border-bottom: 1px solid #d0d0d0; text-align: left; vertical-align: top; }
            thead th { background: #f3f4f6; white-space: nowrap; }
            tbody th { font-weight: 600; white-space: nowrap; }
            .num { text-align: right; font-variant-numeric: tabular-nums; }
            time { white-space: nowrap; }
            .state { display: inline-block; border-radius: .3em; padding: .1em .5em; font-weight: 600; white-space: nowrap; }
            \(badges)
            @media (max-width: 40rem) {
              body { margin: .5rem; }
              th, td { padding: .3em .5em; }
            }
            </style></head><body>
            <h1>\(text("admin.heading"))</h1>
            <p>\(facts)</p>
            \(certificate)
            \(restored)
            <div class="table-wrap">
            <table><thead><tr>\(header)</tr></thead>
            <tbody>
            \(rows)</tbody></table>
            </div>
            </body></html>

            """
    }
}
