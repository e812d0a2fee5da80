import Foundation
import GRDB
import ShelterDomain
import SyncCore

/// Reads a replica file directly (read-only) to check what the library promises about it.
public struct ReplicaInspector {
    public let path: String

    public init(path: String) { self.path = path }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        var config = Configuration()
        config.readonly = true
        return try DatabaseQueue(path: path, configuration: config).read(body)
    }

    /// The rows of a query, each column as text (nil for null).
    public func rows(_ sql: String) throws -> [[String?]] {
        try read { db in
            try Row.fetchAll(db, sql: sql).map { row in (0..<row.count).map { row[$0] as String? } }
        }
    }

    /// Every row of every table, as text: equal snapshots mean nothing changed.
    public func snapshot() throws -> [String: [String]] {
        try read { db in
            var result: [String: [String]] = [:]
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
                result[table] = try Row.fetchAll(db, sql: "SELECT * FROM \(table.quotedDatabaseIdentifier)").map(\.description).sorted()
            }
            return result
        }
    }

    /// The shelter's tables only (no sync metadata): what staff see. Equal on converged replicas.
    /// `opaqueKeys`: encrypted cells, wrapped keys and grants shown by their key reference only —
    /// the same records encrypted twice differ in their random nonces and keys.
    public func domainSnapshot(opaqueKeys: Bool = false) throws -> [String: [String]] {
        let tables = Set(ShelterSchema.schema.tables.map(\.name))
        let snapshot = try snapshot().filter { tables.contains($0.key) }
        guard opaqueKeys else { return snapshot }
        let patterns = [(#"ss1:([^:"]*):[A-Za-z0-9+/=]+"#, "ss1:$1:…"), (#"rk1:([0-9a-f]*):[A-Za-z0-9+/=]+"#, "rk1:…"),
                        (#"hpke1:([0-9a-f]*):[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"#, "hpke1:…")]
        return snapshot.mapValues { rows in
            rows.map { row in
                patterns.reduce(row) { $0.replacingOccurrences(of: $1.0, with: $1.1, options: .regularExpression) }
            }.sorted()
        }
    }

    public func integrityCheck() throws -> [String] {
        try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    public func count(_ sql: String) throws -> Int {
        try read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
    }

    /// The invariants of an intact replica; returns what is broken (empty when all hold).
    public func problems() throws -> [String] {
        try read { db in
            var problems: [String] = []
            let check = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            if check != ["ok"] { problems.append("integrity_check: \(check)") }
            let counter = try Int.fetchOne(db, sql: "SELECT counter FROM sync_state") ?? -1
            let own = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer
                WHERE p.replica_id = (SELECT replica_id FROM sync_state)
                """) ?? -1
            if counter != own { problems.append("counter \(counter) but \(own) own changes in the log") }
            for table in ["rooms", "staff", "residents", "children", "stays"] where try db.tableExists(table) {
                let orphans = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table) t WHERE NOT EXISTS (SELECT 1 FROM sync_rows r WHERE r.id = t.id)") ?? 0
                if orphans > 0 { problems.append("\(orphans) \(table) rows without sync metadata") }
            }
            let staysWithoutResident = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM stays s WHERE NOT EXISTS (SELECT 1 FROM residents r WHERE r.id = s.resident)") ?? 0
            if staysWithoutResident > 0 { problems.append("\(staysWithoutResident) stays without their resident") }
            let residentsWithoutStay = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM residents r WHERE NOT EXISTS (SELECT 1 FROM stays s WHERE s.resident = r.id)") ?? 0
            if residentsWithoutStay > 0 { problems.append("\(residentsWithoutStay) residents without a stay (half an admission)") }
            return problems
        }
    }
}

/// One read-only connection kept open, for polling a file another process is writing.
public final class LiveReader: @unchecked Sendable {
    // @unchecked: a DatabaseQueue serializes every access itself.
    let queue: DatabaseQueue

    public init(path: String) throws {
        var config = Configuration()
        config.readonly = true
        queue = try DatabaseQueue(path: path, configuration: config)
    }

    public func int(_ sql: String) throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
    }
}
