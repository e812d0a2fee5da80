import ClientKit
import Foundation
import Logging
import Server
import ShelterDomain
import Testing
import TestSupport

@Suite struct ReplicaStateTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let thresholds = ReplicaHealth.Thresholds(behindLag: 100, staleAfter: 24 * 3600)

    @Test func eachState() {
        func state(revoked: Bool = false, syncedAgo: TimeInterval?, lag: Int64 = 0) -> ReplicaHealth.State {
            ReplicaHealth.state(revoked: revoked, lastSync: syncedAgo.map { now.addingTimeInterval(-$0) }, lag: lag, now: now, thresholds: thresholds)
        }
        #expect(state(syncedAgo: 60) == .ok)
        #expect(state(syncedAgo: 60, lag: 100) == .ok, "at the threshold is not above it")
        #expect(state(syncedAgo: 60, lag: 101) == .behind)
        #expect(state(syncedAgo: 24 * 3600 + 1) == .stale)
        #expect(state(syncedAgo: 24 * 3600 + 1, lag: 500) == .stale, "stale outranks behind")
        #expect(state(syncedAgo: nil) == .neverSynced)
        #expect(state(revoked: true, syncedAgo: nil) == .revoked)
        #expect(state(revoked: true, syncedAgo: 60) == .revoked, "revoked outranks everything")
        #expect(ReplicaHealth.state(revoked: false, forked: true, lastSync: now, lag: 0, now: now, thresholds: thresholds) == .forked)
        #expect(ReplicaHealth.state(revoked: false, forked: true, lastSync: nil, lag: 500, now: now, thresholds: thresholds) == .forked,
                "forked outranks never-synced, stale and behind")
        #expect(ReplicaHealth.state(revoked: true, forked: true, lastSync: now, lag: 0, now: now, thresholds: thresholds) == .revoked)
        let soon = now.addingTimeInterval(10 * 86_400), later = now.addingTimeInterval(40 * 86_400)
        #expect(ReplicaHealth.state(revoked: false, lastSync: now, lag: 0, certificateExpires: soon, now: now, thresholds: thresholds) == .expiring)
        #expect(ReplicaHealth.state(revoked: false, lastSync: now, lag: 0, certificateExpires: later, now: now, thresholds: thresholds) == .ok)
        #expect(ReplicaHealth.state(revoked: false, lastSync: now, lag: 101, certificateExpires: soon, now: now, thresholds: thresholds) == .behind,
                "behind outranks expiring")
    }
}

@Suite struct HealthTests {
    /// Given: reception synced long ago, office writes a lot, night never syncs, garden is revoked.
    func world() async throws -> (TestServer, Replica, Replica) {
        let server = try await TestServer.start(rooms: 5)
        try server.directory.store().saveThresholds(.init(behindLag: 3, staleAfter: 3600))
        let reception = try await server.workstation("reception", firstSync: false)
        let office = try await server.workstation("office", firstSync: false)
        _ = try server.directory.enroll(name: "night", bundlePath: server.folder.file("night.bundle"))
        let garden = try await server.workstation("garden", firstSync: false)
        _ = try await reception.sync()
        _ = try await garden.sync()
        _ = try await office.sync()
        try office.admit(Admission(name: "Anna Jensen", cpr: "010190-1234", municipality: "Køge", room: 1), by: staff("jonas"))
        try office.admit(Admission(name: "Eva Holm", municipality: "Greve", room: 2), by: staff("jonas"))
        _ = try await office.sync()
        try server.directory.store().revoke(name: "garden")
        await #expect(throws: ReplicaError.self) { try await garden.sync() }
        return (server, reception, office)
    }

    @Test func replicasJSONFromARealServer() async throws {
        let (server, _, _) = try await world()
        defer { server.remove() }
        // The admin reads the store with the CLI while the server runs.
        let result = try ShelterProcess.run(["server", "replicas", "--dir", server.directory.path, "--json"])
        #expect(result.status == 0, "\(result)")
        let json = try result.json()
        let head = try #require(json["head"] as? Int)
        #expect(head > 5)
        let replicas = try #require(json["replicas"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: replicas.map { ($0["name"] as! String, $0) })
        #expect(Set(byName.keys) == ["reception", "office", "night", "garden"])
        #expect(Set(replicas[0].keys) == ["name", "replicaId", "state", "lastSeen", "lastSync", "lag", "unsynced", "rejected",
                                          "clockSkewMs", "openConflicts", "erasuresPending", "recoveredChanges", "forkedAt", "certificateExpires", "clientVersion", "schemaVersion", "lastError"])
        #expect(replicas.allSatisfy { $0["erasuresPending"] as? Int == 0 })
        #expect(replicas.allSatisfy { $0["recoveredChanges"] as? Int == 0 && $0["forkedAt"] is NSNull })
        let office = try #require(byName["office"]), reception = try #require(byName["reception"])
        // The revocation retired the shelter key: one change of the server's that nobody has pulled yet.
        #expect(office["state"] as? String == "ok" && office["lag"] as? Int == 1 && office["unsynced"] as? Int == 0)
        #expect(office["clientVersion"] as? String == Replica.clientVersion && office["schemaVersion"] as? Int == ShelterSchema.version)
        #expect(office["clockSkewMs"] is Int && office["lastError"] is NSNull)
        #expect(reception["state"] as? String == "behind", "office's 6 changes (2 residents, 2 stays, 2 notifications) and the key's retirement have not reached it (threshold 3)")
        #expect(reception["lag"] as? Int == 7)
        let night = try #require(byName["night"])
        #expect(night["state"] as? String == "never-synced" && night["lastSeen"] is NSNull && night["lastSync"] is NSNull)
        let garden = try #require(byName["garden"])
        #expect(garden["state"] as? String == "revoked")
        #expect(garden["lastSeen"] is String, "the refused attempt counts as seen")
        #expect((garden["lastError"] as? [String: Any])?["code"] as? String == "revoked")
        // Later, without a sync, everyone who synced is stale (a clock, not a sleep).
        let later = try await server.directory.store().healthReport(now: Date().addingTimeInterval(2 * 3600))
        #expect(later.replicas.first { $0.name == "office" }?.state == .stale)
        #expect(later.replicas.first { $0.name == "garden" }?.state == .revoked)
        // The table for people, too: in Danish by default, in English when LANG asks; the JSON never changes.
        let path = server.directory.path
        let (english, danish, unset, danishJSON) = try await offThePool {
            (try ShelterProcess.run(["server", "replicas", "--dir", path], environment: ["SHELTER_LANG": "", "LANG": "en_GB.UTF-8"]),
             try ShelterProcess.run(["server", "replicas", "--dir", path], environment: ["SHELTER_LANG": "da"]),
             try ShelterProcess.run(["server", "replicas", "--dir", path], environment: ["SHELTER_LANG": "", "LANG": "C.UTF-8"]),
             try ShelterProcess.run(["server", "replicas", "--dir", path, "--json"], environment: ["SHELTER_LANG": "da"]))
        }
        #expect(english.status == 0, "\(english)")
        for text in ["NAME", "LAST SYNC", "Never synced", "Revoked", "Behind", "revoked at", "log head \(head); 4 workstations enrolled"] {
            #expect(english.stdout.contains(text), "English `server replicas` lacks \(text): \(english.stdout)")
        }
        #expect(danish.status == 0, "\(danish)")
        for text in ["NAVN", "SENESTE SYNK.", "Aldrig synkroniseret", "Tilbagekaldt", "Bagud", "I orden", "aldrig", "revoked (",
                     "log nr. \(head); 4 arbejdsstationer tilmeldt"] {
            #expect(danish.stdout.contains(text), "Danish `server replicas` lacks \(text): \(danish.stdout)")
        }
        #expect(unset.stdout == danish.stdout, "Danish is the default")
        #expect(danishJSON.stdout == result.stdout, "--json does not depend on the language")
        try await server.stop()
    }

    @Test func metricsAreValidPrometheusText() async throws {
        let (server, _, _) = try await world()
        defer { server.remove() }
        let response = try await HTTPGet.get(port: server.adminPort, path: "/metrics")
        #expect(response.status == 200)
        #expect(response.headers["content-type"]?.hasPrefix("text/plain") == true)
        let samples = try PrometheusText.parse(response.body)
        #expect(samples["shelter_sync_sessions_total", ["outcome": "ok"]] == 4, "reception, garden, office twice")
        #expect(samples["shelter_sync_sessions_total", ["outcome": "revoked"]] == 1)
        #expect(samples["shelter_changes_pushed_total", [:]] == 6)
        // The three first syncs took the same snapshot of the 5 rooms and the staff (nothing was admitted yet).
        #expect(samples["shelter_changes_pulled_total", [:]] == 0)
        let snapshotRows = samples["shelter_snapshot_rows_total", [:]] ?? 0
        #expect(snapshotRows > 3 * 5 && snapshotRows.truncatingRemainder(dividingBy: 3) == 0, "three workstations took the 5 rooms and the staff in a snapshot")
        #expect(samples["shelter_replica_state", ["replica": "reception", "state": "behind"]] == 1)
        #expect(samples["shelter_replica_state", ["replica": "reception", "state": "ok"]] == 0)
        #expect(samples["shelter_replica_state", ["replica": "night", "state": "never-synced"]] == 1)
        #expect(samples["shelter_replica_lag", ["replica": "reception"]] == 7, "office's 6 changes and the key's retirement")
        #expect(samples["shelter_replica_unsynced", ["replica": "office"]] == 0)
        #expect(samples["shelter_replica_erasures_pending", ["replica": "office"]] == 0)
        #expect(samples["shelter_replica_seconds_since_last_sync", ["replica": "night"]] == -1)
        #expect((samples["shelter_merge_duration_seconds_count", [:]] ?? 0) >= 1)
        #expect(!response.body.contains("Anna") && !response.body.contains("010190"))
        let problems = PrometheusExposition.problems(response.body)
        #expect(problems.isEmpty, "\(problems)")
        let body = response.body
        try await offThePool { try PromTool.check(body) }
        try await server.stop()
    }

    @Test func healthzAndThePageShowNoPersonalData() async throws {
        let (server, _, _) = try await world()
        defer { server.remove() }
        let health = try await HTTPGet.get(port: server.adminPort, path: "/healthz")
        #expect(health.status == 200)
        let body = try JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any]
        #expect(body?["status"] as? String == "ok" && (body?["head"] as? Int ?? 0) > 0)
        let page = try await HTTPGet.get(port: server.adminPort, path: "/")
        #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true)
        #expect(page.body.contains("http-equiv=\"refresh\""))
        // In the process's language: Danish, as no test sets another.
        for name in ["reception", "office", "night", "garden", "Aldrig synkroniseret", "Tilbagekaldt", "Bagud"] {
            #expect(page.body.contains(name), "the page shows \(name)")
        }
        // Residents exist on the server, but none of their data is on the page.
        for personal in ["Anna", "Jensen", "Eva", "Holm", "010190", "Køge", "Greve"] {
            #expect(!page.body.contains(personal), "the page leaks \(personal)")
        }
        let missing = try await HTTPGet.get(port: server.adminPort, path: "/residents")
        #expect(missing.status == 404)
        try await server.stop()
    }
}

/// A strict reader of the Prometheus text exposition format (version 0.0.4).
enum PrometheusText {
    struct Samples {
        var values: [String: Double] = [:]
        static func key(_ name: String, _ labels: [String: String]) -> String {
            name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
        }
        subscript(name: String, labels: [String: String]) -> Double? { values[Self.key(name, labels)] }
    }

    struct Malformed: Error, CustomStringConvertible {
        var line: String
        var description: String { "not Prometheus text: \(line)" }
    }

    static func parse(_ text: String) throws -> Samples {
        var samples = Samples()
        let name = /[a-zA-Z_:][a-zA-Z0-9_:]*/
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP ") {
                let parts = line.split(separator: " ")
                guard parts.count >= 3, (try? name.wholeMatch(in: String(parts[2]))) != nil else { throw Malformed(line: String(line)) }
                if line.hasPrefix("# TYPE ") {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else { throw Malformed(line: String(line)) }
                }
                continue
            }
            guard let match = try /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.wholeMatch(in: String(line)) else {
                throw Malformed(line: String(line))
            }
            var labels: [String: String] = [:]
            if let body = match.output.3, !body.isEmpty {
                for pair in body.split(separator: ",") {
                    guard let labelMatch = try /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/.wholeMatch(in: String(pair)) else {
                        throw Malformed(line: String(line))
                    }
                    labels[String(labelMatch.output.1)] = String(labelMatch.output.2)
                }
            }
            let valueText = String(match.output.4)
            guard let value = Double(valueText) ?? (valueText == "+Inf" ? .infinity : valueText == "-Inf" ? -.infinity : nil) else {
                throw Malformed(line: String(line))
            }
            samples.values[Samples.key(String(match.output.1), labels)] = value
        }
        return samples
    }
}

/// Certificates that expire: the admin is told before, the workstation says so in plain words after,
/// and a server with an expired certificate does not start.
@Suite struct CertificateExpiryTests {
    static let fiveYears: TimeInterval = 5 * 365 * 86_400

    @Test func aCertificateNearItsEndIsExpiringAndAnExpiredOneIsRefusedClearly() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        // Enrolled long ago: one expires in ten days, one expired yesterday.
        let soon = try server.directory.enroll(name: "soon", bundlePath: server.folder.file("soon.bundle"),
                                               now: Date().addingTimeInterval(-Self.fiveYears + 10 * 86_400))
        let old = try server.directory.enroll(name: "old", bundlePath: server.folder.file("old.bundle"),
                                              now: Date().addingTimeInterval(-Self.fiveYears - 86_400))
        func replica(_ enrollment: ServerDirectory.Enrollment) throws -> Replica {
            try Replica.create(at: server.folder.file("\(enrollment.name).replica"),
                               bundlePEM: String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self),
                               bundleSource: enrollment.bundlePath, server: server.address)
        }
        _ = try await replica(soon).sync()
        let report = try await server.directory.store().healthReport(serverCertificateExpires: try server.directory.serverCertificateExpires())
        #expect(report.replicas.first { $0.name == "soon" }?.state == .expiring)
        #expect(report.serverCertificateExpires != nil)
        let expired = try replica(old)
        do {
            _ = try await expired.sync()
            Issue.record("a workstation with an expired certificate synced")
        } catch let error as ReplicaError {
            #expect(error.message.contains("certificate expired on") && error.message.contains("shelter server renew --name old"), "\(error.message)")
        }
        #expect(try expired.status().lastError?.code == "certificate")
        let page = try await HTTPGet.get(port: server.adminPort, path: "/metrics")
        #expect(page.body.contains("shelter_replica_state{replica=\"soon\",state=\"expiring\"} 1"))
        #expect(page.body.contains("shelter_server_certificate_expires_in_seconds"))
        try await server.stop()
    }

    @Test func aServerWhoseCertificateExpiredDoesNotStart() throws {
        let folder = try TemporaryDirectory("expired")
        defer { folder.remove() }
        let directory = try ServerDirectory.initialize(at: folder.file("srv"), rooms: 2, now: Date().addingTimeInterval(-Self.fiveYears - 86_400))
        do {
            _ = try SyncServer(directory: directory, logger: Logger(label: "test"))
            Issue.record("a server with an expired certificate started")
        } catch let error as ServerError {
            #expect(error.message.contains("expired on") && error.message.contains("shelter server certify"))
        }
    }
}
