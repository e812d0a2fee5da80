import Foundation
import GRDB
@testable import Server
import ShelterDomain
import Testing
import TestSupport

/// The admin page as people read it: in Danish and in English, readable badges, local times.
/// The page is rendered with a named language and zone: tests never set `Language.current`.
@Suite struct AdminPageTests {
    static let copenhagen = TimeZone(identifier: "Europe/Copenhagen")!

    /// Given: one workstation in each state the page must show, with times in winter and in summer.
    static func report() -> HealthReport {
        func replica(_ name: String, _ state: ReplicaHealth.State, lastSync: String?, lag: Int64 = 0,
                     lastError: ReplicaHealth.LastError? = nil) -> ReplicaHealth {
            ReplicaHealth(name: name, replicaID: UUID().uuidString, serial: "01", enrolledAt: "2026-01-01T08:00:00Z",
                          firstSeen: lastSync, lastSeen: lastSync, lastSync: lastSync, lastError: lastError, lag: lag,
                          unsynced: 0, rejected: 0, clientVersion: "0.9", schemaVersion: 7, clockSkewMs: lastSync == nil ? nil : -12,
                          openConflicts: 0, recovered: 0, forkedAt: nil, certificateExpires: "2031-01-15T23:30:00Z",
                          revoked: state == .revoked, state: state)
        }
        return HealthReport(head: 1234, generatedAt: "2026-07-15T12:00:00Z", restoredAt: nil,
                            serverCertificateExpires: "2031-11-26T10:00:00Z",
                            replicas: [
                                replica("office", .ok, lastSync: "2026-07-15T11:59:00Z"),
                                replica("reception", .behind, lastSync: "2026-01-15T12:00:00Z", lag: 98765),
                                replica("night", .neverSynced, lastSync: nil, lag: 1234),
                                replica("garden", .revoked, lastSync: "2026-07-15T10:00:00Z",
                                        lastError: .init(code: "revoked", at: "2026-07-15T10:05:00Z")),
                            ])
    }

    @Test func everyBadgeHasContrastOfAtLeastFourAndAHalf() throws {
        // The formula, on pairs whose ratio is known: black on white is 21:1; #777 on white just misses.
        #expect(AdminHTTP.contrastRatio("#000000", "#ffffff") == 21)
        #expect(try #require(AdminHTTP.contrastRatio("#777777", "#ffffff")) < 4.5)
        #expect(AdminHTTP.contrastRatio("#fff", "#000000") == nil, "only #rrggbb")
        for state in ReplicaHealth.State.allCases {
            let badge = try #require(AdminHTTP.colours[state], "no badge for \(state)")
            let ratio = try #require(AdminHTTP.contrastRatio(badge.text, badge.background))
            #expect(ratio >= 4.5, "\(state): \(badge.text) on \(badge.background) is \(ratio):1")
        }
    }

    @Test func everyStateHasANameInBothLanguages() {
        for state in ReplicaHealth.State.allCases {
            for language in Language.allCases {
                let name = AdminHTTP.stateName(state, language: language)
                #expect(!name.isEmpty && !name.hasPrefix("admin."), "\(state) has no name in \(language)")
            }
        }
        #expect(AdminHTTP.stateName(.neverSynced, language: .da) == "Aldrig synkroniseret")
        #expect(AdminHTTP.stateName(.neverSynced, language: .en) == "Never synced")
    }

    @Test func thePageInDanish() {
        let page = AdminHTTP.page(Self.report(), language: .da, timeZone: Self.copenhagen)
        #expect(page.contains("<html lang=\"da\">"))
        #expect(page.contains("<title>ShelterSync — arbejdsstationer</title>"))
        #expect(page.contains("<h1>Arbejdsstationer</h1>"))
        for text in ["Seneste synkronisering", "Sidst set", "Efterslæb", "Åbne konflikter", "Seneste fejl", "I orden", "Bagud",
                     "Tilbagekaldt", "Aldrig synkroniseret", "Siden opdateres hvert 10. sekund.", "Serverens log står på nr. 1234",
                     "Tidspunkter er i tidszonen Europe/Copenhagen.", ">aldrig<", "revoked (<time"] {
            #expect(page.contains(text), "the Danish page lacks \(text)")
        }
        #expect(!page.contains("Workstation") && !page.contains("refreshes"), "no English on the Danish page")
        #expect(!page.contains("admin."), "a catalogue key is missing: \(page)")
    }

    @Test func thePageInEnglish() {
        let page = AdminHTTP.page(Self.report(), language: .en, timeZone: Self.copenhagen)
        #expect(page.contains("<html lang=\"en\">"))
        #expect(page.contains("<h1>Workstations</h1>"))
        for text in ["Last sync", "Last seen", "Lag", "Open conflicts", "Last error", "OK", "Behind", "Revoked", "Never synced",
                     "This page refreshes every 10 seconds.", "Server log head 1234", "Times are in the Europe/Copenhagen time zone.",
                     ">never<", "revoked at <time"] {
            #expect(page.contains(text), "the English page lacks \(text)")
        }
        #expect(!page.contains("Arbejdsstation") && !page.contains("opdateres"), "no Danish on the English page")
        #expect(!page.contains("admin."), "a catalogue key is missing")
    }

    @Test func thePageFitsANarrowScreen() throws {
        let page = AdminHTTP.page(Self.report(), language: .da, timeZone: Self.copenhagen)
        #expect(page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"))
        // The table scrolls sideways in its own box instead of widening the page.
        #expect(page.contains("<div class=\"table-wrap\">") && page.contains(".table-wrap { overflow-x: auto;"))
        // Numbers right-aligned in tabular figures; times never wrap.
        #expect(page.contains(".num { text-align: right; font-variant-numeric: tabular-nums; }"))
        #expect(page.contains("time { white-space: nowrap; }"))
        #expect(page.contains("<td class=\"num\">98765</td>"), "the lag is a numeric cell")
        #expect(page.contains("<th scope=\"col\" class=\"num\">Efterslæb</th>"), "and so is its heading")
        // Each badge's colours come from `colours`.
        for state in ReplicaHealth.State.allCases {
            let badge = try #require(AdminHTTP.colours[state])
            #expect(page.contains(".state-\(state.rawValue) { background: \(badge.background); color: \(badge.text); }"))
        }
    }

    @Test func timesAreLocalToTheServer() {
        // Winter (CET, +1) and summer (CEST, +2) in Copenhagen, written as `LocalTime` writes them.
        let page = AdminHTTP.page(Self.report(), language: .en, timeZone: Self.copenhagen)
        #expect(page.contains("<time datetime=\"2026-01-15T12:00:00Z\">2026-01-15 13:00</time>"))
        #expect(page.contains("<time datetime=\"2026-07-15T11:59:00Z\">2026-07-15 13:59</time>"))
        #expect(page.contains("Generated <time datetime=\"2026-07-15T12:00:00Z\">2026-07-15 14:00</time>"))
        // A certificate that expires at 23:30 UTC expires the next day in Copenhagen: only the date shows.
        #expect(page.contains("<time datetime=\"2031-01-15T23:30:00Z\">2031-01-16</time>"))
        let danish = AdminHTTP.page(Self.report(), language: .da, timeZone: Self.copenhagen)
        #expect(danish.contains("<time datetime=\"2026-01-15T12:00:00Z\">15.01.2026 kl. 13.00</time>"))
        #expect(danish.contains("<time datetime=\"2031-01-15T23:30:00Z\">16.01.2031</time>"))
        let utc = TimeZone(identifier: "UTC")!
        let inUTC = AdminHTTP.page(Self.report(), language: .en, timeZone: utc)
        #expect(inUTC.contains("<time datetime=\"2026-01-15T12:00:00Z\">2026-01-15 12:00</time>"))
        #expect(inUTC.contains("Times are in the \(utc.identifier) time zone."), "UTC or GMT, as Foundation names it")
        // The server's zone: TZ when it names one, else Copenhagen.
        #expect(LocalTime.zone(environment: [:]).identifier == "Europe/Copenhagen")
        #expect(LocalTime.zone(environment: ["TZ": "America/New_York"]).identifier == "America/New_York")
        #expect(AdminHTTP.localDate(stored: "2031-01-15T23:30:00Z", language: .da, zone: Self.copenhagen) == "16.01.2031")
    }

    @Test func aServerWithNoWorkstationsSaysSo() {
        var report = Self.report()
        report.replicas = []
        report.restoredAt = "2026-07-15T09:00:00Z"
        let page = AdminHTTP.page(report, language: .da, timeZone: Self.copenhagen)
        #expect(page.contains("Ingen arbejdsstationer er tilmeldt endnu."))
        #expect(page.contains("Gendannet fra en sikkerhedskopi <time datetime=\"2026-07-15T09:00:00Z\">15.07.2026 kl. 11.00</time>"))
    }
}

/// `/healthz` and `/metrics` of a real server on port 0.
@Suite struct AdminHTTPTests {
    @Test func headHealthzAnswersLikeGet() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let get = try await HTTPGet.get(port: server.adminPort, path: "/healthz")
        let head = try await HTTPGet.request("HEAD", port: server.adminPort, path: "/healthz")
        #expect(get.status == 200 && head.status == 200)
        #expect(head.body.isEmpty, "HEAD has no body: \(head.body)")
        #expect(head.headers["content-type"] == "application/json")
        try await server.stop()
    }

    /// Given: another connection holds the store's write lock (as a stuck admin tool or a second
    /// process would). When: the monitor asks `/healthz`. Then: 503, within the deadline, not after
    /// the store's 10-second busy timeout; and 200 again once the lock is gone.
    ///
    /// The server is a process of its own and the requests block a thread of their own: the time
    /// measured is the server's, not the time this busy test process takes to resume a task.
    @Test(.timeLimit(.minutes(2))) func healthzAnswers503QuicklyWhenTheStoreIsLocked() async throws {
        let folder = try TemporaryDirectory("locked")
        defer { folder.remove() }
        let srv = try ServerDirectory.initialize(at: folder.file("srv"), rooms: 2).path
        typealias Answer = (status: Int, body: String)
        let (before, locked, waited, lockedHead, after) = try await offThePool { () throws -> (Answer, Answer, Duration, Answer, Answer) in
            let server = try ServerProcess.start(directory: srv, waitForAdmin: true)
            defer { server.stop() }
            let port = server.adminPort ?? 0
            let before = try BlockingHTTP.request("GET", port: port, path: "/healthz")
            var configuration = Configuration()
            configuration.allowsUnsafeTransactions = true  // the lock outlives one access, on purpose
            let holder = try DatabaseQueue(path: srv + "/server.db", configuration: configuration)
            defer { try? holder.close() }
            try holder.writeWithoutTransaction { db in try db.execute(sql: "BEGIN EXCLUSIVE") }
            let started = ContinuousClock.now
            let locked = try BlockingHTTP.request("GET", port: port, path: "/healthz")
            let waited = ContinuousClock.now - started
            let lockedHead = try BlockingHTTP.request("HEAD", port: port, path: "/healthz")
            try holder.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
            return (before, locked, waited, lockedHead, try BlockingHTTP.request("GET", port: port, path: "/healthz"))
        }
        #expect(before.status == 200)
        #expect(locked.status == 503, "\(locked)")
        #expect(locked.body.contains("\"unavailable\""))
        #expect(lockedHead.status == 503 && lockedHead.body.isEmpty)
        // The server answers within 2 s (1 s busy timeout, 1.5 s deadline); 3 s leaves slack for a busy machine.
        #expect(waited < .seconds(3), "503 took \(waited)")
        #expect(after.status == 200, "the lock is gone")
    }

    @Test func metricsOfAFreshServerHaveHelpAndZeroCounters() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        // Before any sync.
        let response = try await HTTPGet.get(port: server.adminPort, path: "/metrics")
        #expect(response.status == 200)
        let problems = PrometheusExposition.problems(response.body)
        #expect(problems.isEmpty, "\(problems)")
        for family in ["shelter_sync_sessions_total", "shelter_changes_pushed_total", "shelter_changes_pulled_total",
                       "shelter_conflicts_created_total", "shelter_merge_duration_seconds", "shelter_log_head",
                       "shelter_server_certificate_expires_in_seconds"] {
            #expect(response.body.contains("\n# HELP \(family) ") || response.body.hasPrefix("# HELP \(family) "), "no HELP for \(family)")
        }
        let samples = try PrometheusText.parse(response.body)
        #expect(samples["shelter_sync_sessions_total", ["outcome": "ok"]] == 0)
        #expect(samples["shelter_changes_pushed_total", [:]] == 0)
        #expect(samples["shelter_changes_pulled_total", [:]] == 0)
        #expect(samples["shelter_conflicts_created_total", [:]] == 0)
        #expect(samples["shelter_merge_duration_seconds_count", [:]] == 0)
        let body = response.body
        try await offThePool { try PromTool.check(body) }
        try await server.stop()
    }
}

/// The rules of the Prometheus text format that `promtool check metrics` holds a scrape to, checked
/// here so the suite does not depend on promtool being installed.
enum PrometheusExposition {
    static func problems(_ text: String) -> [String] {
        var problems: [String] = []
        var types: [String: String] = [:], helped: Set<String> = [], finished: Set<String> = [], series: Set<String> = []
        var current: String?
        let name = /[a-zA-Z_:][a-zA-Z0-9_:]*/, label = /[a-zA-Z_][a-zA-Z0-9_]*/
        func family(of sample: String) -> String {
            for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
                let base = String(sample.dropLast(suffix.count))
                if types[base] == "histogram" || types[base] == "summary" { return base }
            }
            return sample
        }
        func enter(_ family: String) {
            if current != family {
                if let current { finished.insert(current) }
                if finished.contains(family) { problems.append("\(family): its lines are not together") }
                current = family
            }
        }
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                guard parts.count >= 3, (try? name.wholeMatch(in: parts[2])) != nil else {
                    problems.append("bad comment: \(line)")
                    continue
                }
                enter(parts[2])
                if parts[1] == "HELP" {
                    if helped.contains(parts[2]) { problems.append("\(parts[2]): two HELP lines") }
                    if parts.count < 4 || parts[3].isEmpty { problems.append("\(parts[2]): empty HELP") }
                    if types[parts[2]] != nil { problems.append("\(parts[2]): HELP after TYPE") }
                    helped.insert(parts[2])
                } else {
                    if types[parts[2]] != nil { problems.append("\(parts[2]): two TYPE lines") }
                    types[parts[2]] = parts.count == 4 ? parts[3] : ""
                    if parts[2].hasSuffix("_total") != (types[parts[2]] == "counter") {
                        problems.append("\(parts[2]): counters and only counters end in _total")
                    }
                }
                continue
            }
            guard let match = try? /^([^{ ]+)(\{([^}]*)\})? (\S+)$/.wholeMatch(in: line) else {
                problems.append("bad sample: \(line)")
                continue
            }
            let sample = String(match.output.1)
            if (try? name.wholeMatch(in: sample)) == nil { problems.append("bad name: \(sample)") }
            let owner = family(of: sample)
            enter(owner)
            if types[owner] == nil { problems.append("\(sample): sample before its TYPE") }
            if !helped.contains(owner) { problems.append("\(sample): no HELP") }
            var labels: [String] = []
            if let body = match.output.3, !body.isEmpty {
                for pair in body.split(separator: ",") {
                    let key = String(pair.prefix { $0 != "=" })
                    if (try? label.wholeMatch(in: key)) == nil || key.hasPrefix("__") { problems.append("bad label \(key) in \(line)") }
                    labels.append(String(pair))
                }
            }
            let key = sample + "{" + labels.sorted().joined(separator: ",") + "}"
            if !series.insert(key).inserted { problems.append("duplicate series \(key)") }
        }
        return problems
    }
}

/// `promtool check metrics`, when promtool is installed (Debian: `apt-get install prometheus`).
enum PromTool {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    static var path: String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func check(_ text: String) throws {
        guard let path else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw Failed(description: "promtool check metrics: exit \(process.terminationStatus): \(said)") }
    }
}
