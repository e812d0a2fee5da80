import Foundation
import GRDB
import ShelterDomain
import SyncCore

extension Replica {
    /// Erases residents (a leader's action; `Erasure`): one signed transaction that records each
    /// erasure, then carries it out here at once — her key and personal cells, their values in the
    /// log and in conflict rows. Every other replica and the server carry it out when they merge
    /// it. This replica's own changes of hers not yet pushed are erased once the server has them.
    /// `residents`: ids or unique prefixes. Returns the full ids.
    @discardableResult
    public func erase(residents: [String], reason: Erasure.Reason = .request, by session: any TransactionSigner) throws -> [String] {
        let erasedAt = Timestamp.format(configuration.now())
        let ids = try perform(signedBy: session) { db -> [String] in
            guard try staffMember(db, session.signer)?.role == .leader else {
                throw ReplicaError(DomainError(.notPermitted, t("err.ReplicaErasure.93", ("p1", session.author))))
            }
            var ids: [String] = []
            for prefix in residents {
                let id = try resolve(db, prefix, in: ShelterSchema.residents, kind: "resident")
                if let done = try erasure(db, of: id) {
                    throw ReplicaError(DomainError(.invalidTransition, t("err.ReplicaErasure.94", ("p1", id.prefix(8)), ("p2", done.erasedAt), ("p3", done.erasedBy))))
                }
                guard !ids.contains(id) else { continue }
                ids.append(id)
                try write(db, ShelterSchema.erasures, id, [
                    "erased_at": .text(erasedAt), "erased_by": .text(session.signer), "reason": .text(reason.rawValue),
                ], author: session.author)
            }
            let keep = try keepsUnsynced(db)
            for id in ids { try Erasure.apply(db, store: store, resident: id, keepUnsynced: keep) }
            return ids
        }
        keys.forget(residents: ids)
        return ids
    }

    /// `erase(residents:)` of one resident.
    @discardableResult
    public func erase(resident: String, reason: Erasure.Reason = .request, by session: any TransactionSigner) throws -> String {
        try erase(residents: [resident], reason: reason, by: session)[0]
    }

    /// Who erased a resident and when; nil when she is not erased.
    public func erasure(of resident: String) throws -> ErasureRecord? {
        try read { db in try erasure(db, of: try resolve(db, resident, in: ShelterSchema.residents, kind: "resident")) }
    }

    func erasure(_ db: Database, of resident: String) throws -> ErasureRecord? {
        try Row.fetchOne(db, sql: "SELECT erased_at, erased_by, reason FROM erasures WHERE id = ?", arguments: [resident]).map {
            ErasureRecord(resident: resident, erasedAt: $0["erased_at"], erasedBy: $0["erased_by"],
                          reason: Erasure.Reason(rawValue: $0["reason"]) ?? .request)
        }
    }

    /// Erasures made or merged here whose erasing still waits for this replica's own changes of
    /// hers to reach the server (they are erased once it acknowledges them).
    public func erasuresWaiting() throws -> Int {
        try read { db in try store.erasures(db).values.filter { !$0 }.count }
    }

    /// Whether this replica keeps its own changes not yet pushed as they are when it erases (the
    /// server must check their signature against their values): a replica bound to a server does;
    /// a standalone one, which pushes nothing, erases them at once.
    func keepsUnsynced(_ db: Database) throws -> Bool {
        try store.state(db).server != nil
    }

    // MARK: Retention

    /// The retention period in years (the setting `retentionYears`, default 3).
    public func retentionYears() throws -> Int {
        try read { db in try retentionYears(db) }
    }

    func retentionYears(_ db: Database) throws -> Int {
        try String.fetchOne(db, sql: "SELECT value FROM settings WHERE id = ?", arguments: [Erasure.retentionSetting])
            .flatMap { Int($0) } ?? Erasure.defaultRetentionYears
    }

    /// Residents not erased whose stays have all ended, the last more than the retention period
    /// before `now`; the longest ago first.
    public func retentionDue(now: Date? = nil) throws -> (years: Int, residents: [RetentionDue]) {
        try read { db in
            let years = try retentionYears(db)
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = TimeZone(identifier: "UTC")!
            let cutoff = Timestamp.format(utc.date(byAdding: .year, value: -years, to: now ?? configuration.now())!)
            let due = try Row.fetchAll(db, sql: """
                SELECT r.id, r.anonymous, r.name, r.alias, MAX(e.ended) AS last
                FROM residents r JOIN (
                    -- A stay merged into another ends when that one ends.
                    SELECT s.resident,
                           CASE WHEN s.status = 'merged' THEN k.status ELSE s.status END AS state,
                           CASE WHEN s.status = 'merged' THEN k.discharged_at ELSE s.discharged_at END AS ended
                    FROM stays s LEFT JOIN stays k ON k.id = s.merged_into) e ON e.resident = r.id
                WHERE NOT EXISTS (SELECT 1 FROM erasures x WHERE x.id = r.id)
                GROUP BY r.id
                HAVING SUM(e.state IS NOT 'discharged' OR e.ended IS NULL) = 0 AND MAX(e.ended) < ?
                ORDER BY last, r.id
                """, arguments: [cutoff]).map { row -> RetentionDue in
                let anonymous: Bool = row["anonymous"]
                let alias: String? = row["alias"]
                let name = hasSession ? plain(db, row, "name", table: ShelterSchema.residents) : nil
                return RetentionDue(resident: row["id"], display: hasSession ? (anonymous ? alias : name ?? alias) : nil, lastDischargedAt: row["last"])
            }
            return (years, due)
        }
    }

    // MARK: Settings

    /// The settings the shelter's staff set (`shelter settings`), by key.
    public static let knownSettings: [String: String] = [
        Erasure.retentionSetting: "years after a resident's last stay ended before `shelter retention` lists her for erasure (default \(Erasure.defaultRetentionYears))",
        "language": "the language of the screens and messages: da (Danish, the default) or en; a workstation's SHELTER_LANG or LANG overrides it",
        "name": "the shelter's name, which signs the letters to the municipalities",
        "address": "the shelter's address, under its name on the letters",
    ]

    /// The shelter's `language` setting in the replica file at `path`, read without opening the
    /// replica for writing (nil: none set, or no readable replica there).
    public static func languageSetting(at path: String) -> Language? {
        guard FileManager.default.isReadableFile(atPath: path) else { return nil }
        var configuration = GRDB.Configuration()
        configuration.readonly = true
        guard let queue = try? DatabaseQueue(path: path, configuration: configuration) else { return nil }
        defer { try? queue.close() }
        return (try? queue.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE id = 'language'") })?.flatMap { Language(rawValue: $0) }
    }

    /// Every setting as stored, by key.
    public func settings() throws -> [String: String] {
        try read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, value FROM settings WHERE value IS NOT NULL").map { ($0["id"], $0["value"]) })
        }
    }

    /// Sets shelter settings (a leader's action), in one signed transaction.
    public func setSettings(_ values: [(key: String, value: String)], by session: any TransactionSigner) throws {
        for (key, value) in values {
            guard Self.knownSettings[key] != nil else {
                throw ReplicaError(.invalidArgument, t("err.ReplicaErasure.95", ("p1", key), ("p2", Self.knownSettings.keys.sorted().joined(separator: ", "))))
            }
            if key == "language" && Language(rawValue: value) == nil {
                throw ReplicaError(.invalidArgument, t("settings.language", ("value", value)))
            }
            if (key == "name" || key == "address") && value.trimmingCharacters(in: .whitespaces).isEmpty {
                throw ReplicaError(.invalidArgument, t("settings.empty", ("key", key)))
            }
        }
        try perform(signedBy: session) { db in
            for (key, value) in values {
                try write(db, ShelterSchema.settings, key, ["value": .text(value)], author: session.author)
            }
        }
    }
}
