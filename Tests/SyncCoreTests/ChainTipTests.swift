import Foundation
import GRDB
import SyncCore
import Testing

/// The server's log is hash-chained: each entry's chain is the one before it chained with the
/// entry's digest. The tip is kept in memory inside a write transaction; when SQLite itself rolls a
/// transaction back (an interrupt of a cancelled task, a full disk), GRDB calls the hook that
/// forgets it only when the connection's next transaction ends — the next entries must still chain
/// from the log as it stands.
@Suite struct ChainTipTests {
    static let schema = SyncSchema(version: 1, tables: [
        .init("t", code: 1, columns: [.init("a", code: 1, .integer)]),
    ])

    func change(_ replica: ReplicaID, _ counter: UInt64) -> CellChange {
        CellChange(table: "t", rowID: "r\(counter)", values: ["a": .integer(Int64(counter))], dot: Dot(replica: replica, counter: counter),
                   hlc: HLC(rawValue: counter << 16), author: "x", context: VersionVector())
    }

    @Test func theChainContinuesFromTheLogAfterSQLiteRolledBackATransaction() throws {
        let store = SyncStore(schema: Self.schema, chained: true)
        var migrator = DatabaseMigrator()
        store.registerMigrations(in: &migrator)
        let queue = try DatabaseQueue()
        try migrator.migrate(queue)
        try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
        let writer = ReplicaID.random()
        try queue.write { db in _ = try store.merge(db, change(writer, 1), wallMilliseconds: 0) }
        // Appended, then rolled back by SQLite itself (a constraint with OR ROLLBACK).
        #expect(throws: DatabaseError.self) {
            try queue.write { db in
                _ = try store.merge(db, change(writer, 2), wallMilliseconds: 0)
                try db.execute(sql: "INSERT OR ROLLBACK INTO sync_peers (idx, replica_id) SELECT idx, 'again' FROM sync_peers LIMIT 1")
            }
        }
        try queue.write { db in
            _ = try store.merge(db, change(writer, 3), wallMilliseconds: 0)
            _ = try store.merge(db, change(writer, 4), wallMilliseconds: 0)
        }
        try queue.write { db in _ = try store.merge(db, change(writer, 5), wallMilliseconds: 0) }
        let entries = try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, chain, digest FROM sync_log ORDER BY seq").map {
                (sequence: $0["seq"] as Int64, chain: LogHash(bytes: [UInt8]($0["chain"] as Data))!, digest: LogHash(bytes: [UInt8]($0["digest"] as Data))!)
            }
        }
        #expect(entries.count == 4)
        var tip = LogHash.genesis
        for entry in entries {
            tip = tip.chained(with: entry.digest)
            #expect(entry.chain == tip, "the chain breaks at entry \(entry.sequence)")
        }
    }
}
