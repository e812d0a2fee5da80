import Foundation
import GRDB
@testable import SyncCore
import Testing

/// A replica's peers get small local numbers (`sync_peers`), kept in memory once known. A number
/// taken inside a transaction is SQLite's to give out again if the transaction (or a savepoint of
/// it) rolls back — by the caller, or by SQLite itself (an interrupt, a full disk): the memo must
/// never keep it past that, and must not look it up again and again while a merge lasts.
@Suite struct PeerNumberTests {
    static let schema = SyncSchema(version: 1, tables: [
        .init("t", code: 1, columns: [.init("a", code: 1, .integer)]),
    ])

    struct Rollback: Error {}

    /// A store and its file, with a count of the peer lookups that reached SQLite.
    func makeStore() throws -> (SyncStore, DatabaseQueue, Counter) {
        let store = SyncStore(schema: Self.schema)
        var migrator = DatabaseMigrator()
        store.registerMigrations(in: &migrator)
        let lookups = Counter()
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            db.trace { event in
                if case .statement(let statement) = event, statement.sql.hasPrefix("SELECT idx FROM sync_peers") { lookups.add() }
            }
        }
        let queue = try DatabaseQueue(configuration: configuration)
        try migrator.migrate(queue)
        try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
        return (store, queue, lookups)
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add() { lock.withLock { count += 1 } }
        var value: Int { lock.withLock { count } }
    }

    func change(_ replica: ReplicaID, _ counter: UInt64, row: String) -> CellChange {
        CellChange(table: "t", rowID: row, values: ["a": .integer(Int64(counter))], dot: Dot(replica: replica, counter: counter),
                   hlc: HLC(rawValue: counter << 16), author: "x", context: VersionVector())
    }

    /// Every logged change's dot, read through SQL (not the memo): which replica each peer number names.
    func loggedDots(_ queue: DatabaseQueue) throws -> Set<String> {
        try queue.read { db in
            Set(try Row.fetchAll(db, sql: "SELECT p.replica_id, l.counter FROM sync_log l JOIN sync_peers p ON p.idx = l.peer")
                .map { "\($0[0] as String):\($0[1] as Int64)" })
        }
    }

    @Test func aPeerNewInATransactionIsLookedUpOnce() throws {
        let (store, queue, lookups) = try makeStore()
        let writer = ReplicaID.random()
        let before = lookups.value
        try queue.write { db in
            try store.withMergeMemo(db) {
                for counter in UInt64(1)...200 { _ = try store.merge(db, change(writer, counter, row: "r\(counter)"), wallMilliseconds: 0) }
            }
        }
        // The miss before the insert (and one to spare); before 2026-11-28 it was one per change and more.
        #expect(lookups.value - before <= 2, "peer lookups that reached SQLite: \(lookups.value - before)")
        #expect(try loggedDots(queue).count == 200)
    }

    @Test func aRolledBackTransactionsPeerNumberIsNotKept() throws {
        let (store, queue, _) = try makeStore()
        let x = ReplicaID.random(), y = ReplicaID.random()
        #expect(throws: Rollback.self) {
            try queue.write { db in
                try store.withMergeMemo(db) {
                    _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
                    throw Rollback()
                }
            }
        }
        // Y now takes the number X had in the rolled-back transaction; X gets another.
        try queue.write { db in
            try store.withMergeMemo(db) {
                _ = try store.merge(db, change(y, 1, row: "ry"), wallMilliseconds: 0)
                _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
            }
        }
        #expect(try loggedDots(queue) == ["\(y):1", "\(x):1"])
        // And after the commit, from the memo: still each its own.
        try queue.write { db in
            _ = try store.merge(db, change(x, 2, row: "rx2"), wallMilliseconds: 0)
            _ = try store.merge(db, change(y, 2, row: "ry2"), wallMilliseconds: 0)
        }
        #expect(try loggedDots(queue) == ["\(y):1", "\(x):1", "\(x):2", "\(y):2"])
    }

    @Test func aRolledBackSavepointsPeerNumberIsNotKept() throws {
        let (store, queue, _) = try makeStore()
        let x = ReplicaID.random(), y = ReplicaID.random()
        try queue.write { db in
            try store.withMergeMemo(db) {
                try db.inSavepoint {
                    _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
                    return .rollback
                }
                store.forgetMergeMemo(db)
                _ = try store.merge(db, change(y, 1, row: "ry"), wallMilliseconds: 0)
                _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
            }
        }
        #expect(try loggedDots(queue) == ["\(y):1", "\(x):1"])
    }

    /// SQLite rolls the whole transaction back by itself (here a constraint with `OR ROLLBACK`; an
    /// interrupt of a cancelled task or a full disk does the same): GRDB then calls no rollback hook
    /// until the connection's next transaction ends, so a memo cleared only by that hook would carry
    /// the number into the next transaction.
    @Test func aTransactionSQLiteRolledBackLeavesNoPeerNumber() throws {
        let (store, queue, _) = try makeStore()
        let x = ReplicaID.random(), y = ReplicaID.random()
        #expect(throws: DatabaseError.self) {
            try queue.write { db in
                try store.withMergeMemo(db) {
                    _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
                    try db.execute(sql: "INSERT OR ROLLBACK INTO sync_peers (idx, replica_id) SELECT idx, 'again' FROM sync_peers LIMIT 1")
                }
            }
        }
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_log") } == 0)
        try queue.write { db in
            try store.withMergeMemo(db) {
                _ = try store.merge(db, change(y, 1, row: "ry"), wallMilliseconds: 0)
                _ = try store.merge(db, change(x, 1, row: "rx"), wallMilliseconds: 0)
            }
        }
        try queue.write { db in
            _ = try store.merge(db, change(x, 2, row: "rx2"), wallMilliseconds: 0)
            _ = try store.merge(db, change(y, 2, row: "ry2"), wallMilliseconds: 0)
        }
        #expect(try loggedDots(queue) == ["\(y):1", "\(x):1", "\(x):2", "\(y):2"])
        let numbers = try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT peer) FROM sync_log") }
        #expect(numbers == 2)
    }
}
