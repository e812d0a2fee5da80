import Foundation
import GRDB
import SyncCore
import Testing

/// The store's memos and its pull query, on one SQLite file.
@Suite struct StoreTests {
    static let schema = SyncSchema(version: 1, tables: [
        .init("t", code: 1, columns: [.init("a", code: 1, .integer), .init("b", code: 2, .integer)]),
    ])

    func makeStore() throws -> (SyncStore, DatabaseQueue) {
        let store = SyncStore(schema: Self.schema)
        var migrator = DatabaseMigrator()
        store.registerMigrations(in: &migrator)
        let queue = try DatabaseQueue()
        try migrator.migrate(queue)
        try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
        return (store, queue)
    }

    func change(_ replica: ReplicaID, _ counter: UInt64, row: String, a: Int64, context: VersionVector = VersionVector()) -> CellChange {
        CellChange(table: "t", rowID: row, values: ["a": .integer(a)], dot: Dot(replica: replica, counter: counter),
                   hlc: HLC(rawValue: counter << 16), author: "x", context: context)
    }

    struct Rollback: Error {}

    /// A transaction that emptied the held-back changes and then rolled back must not leave the
    /// store believing none are held: the next merge still releases them.
    @Test func aRolledBackReleaseKeepsTheHeldBackChange() throws {
        let (store, queue) = try makeStore()
        let writer = ReplicaID.random()
        let first = change(writer, 1, row: "r", a: 1)
        let second = change(writer, 2, row: "r", a: 2, context: VersionVector([writer: 1]))
        let held = try queue.write { db in try store.merge(db, second, wallMilliseconds: 0) }
        #expect(held == .heldBack)
        // Released, then (after another merge found nothing held) rolled back.
        #expect(throws: Rollback.self) {
            try queue.write { db in
                _ = try store.merge(db, first, wallMilliseconds: 0)
                _ = try store.merge(db, change(writer, 3, row: "other", a: 3), wallMilliseconds: 0)
                throw Rollback()
            }
        }
        try queue.write { db in _ = try store.merge(db, first, wallMilliseconds: 0) }
        let (value, held2) = try queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT a FROM t WHERE id = 'r'"), try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_pending"))
        }
        #expect(value == 2, "the held-back change was released")
        #expect(held2 == 0)
    }

    /// The same inside a merge's memo (`withMergeMemo`, as the server's push and the workstation's
    /// pull merge), rolled back by the caller or by SQLite itself (a constraint with `OR ROLLBACK`,
    /// as an interrupt or a full disk does; GRDB then calls no end-of-transaction hook): the retry
    /// still releases the held-back change.
    @Test(arguments: [false, true]) func aRolledBackReleaseInAMergesMemoKeepsTheHeldBackChange(bySQLite: Bool) throws {
        let (store, queue) = try makeStore()
        let writer = ReplicaID.random()
        let first = change(writer, 1, row: "r", a: 1)
        let second = change(writer, 2, row: "r", a: 2, context: VersionVector([writer: 1]))
        let held = try queue.write { db in try store.withMergeMemo(db) { try store.merge(db, second, wallMilliseconds: 0) } }
        #expect(held == .heldBack)
        #expect(throws: (any Error).self) {
            try queue.write { db in
                try store.withMergeMemo(db) {
                    _ = try store.merge(db, first, wallMilliseconds: 0)
                    _ = try store.merge(db, change(writer, 3, row: "other", a: 3), wallMilliseconds: 0)
                    if bySQLite {
                        try db.execute(sql: "INSERT OR ROLLBACK INTO sync_peers (idx, replica_id) SELECT idx, 'again' FROM sync_peers LIMIT 1")
                    }
                    throw Rollback()
                }
            }
        }
        try queue.write { db in try store.withMergeMemo(db) { _ = try store.merge(db, first, wallMilliseconds: 0) } }
        let (value, held2) = try queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT a FROM t WHERE id = 'r'"), try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_pending"))
        }
        #expect(value == 2, "the held-back change was released")
        #expect(held2 == 0)
    }

    /// The server's pull leaves out the puller's own changes without decoding them, and moves the
    /// cursor past them.
    @Test func aPullSkipsThePullersOwnChanges() throws {
        let (store, queue) = try makeStore()
        let (mine, other) = (ReplicaID.random(), ReplicaID.random())
        try queue.write { db in
            for n in 1...5 { _ = try store.merge(db, change(mine, UInt64(n), row: "m\(n)", a: Int64(n)), wallMilliseconds: 0) }
            for n in 1...3 { _ = try store.merge(db, change(other, UInt64(n), row: "o\(n)", a: Int64(n)), wallMilliseconds: 0) }
            for n in 6...7 { _ = try store.merge(db, change(mine, UInt64(n), row: "m\(n)", a: Int64(n)), wallMilliseconds: 0) }
        }
        try queue.read { db in
            // Positions 1–5 mine, 6–8 the other's, 9–10 mine.
            let full = try store.changes(db, after: 0, notFrom: mine, limit: 2)
            #expect(full.changes.map(\.sequence) == [6, 7] && full.readUpTo == 7 && full.more)
            let rest = try store.changes(db, after: 7, notFrom: mine, limit: 2)
            #expect(rest.changes.map(\.sequence) == [8] && rest.readUpTo == 10 && !rest.more, "the cursor moves past the puller's own tail")
            let none = try store.changes(db, after: 10, notFrom: mine, limit: 2)
            #expect(none.changes.isEmpty && none.readUpTo == 10 && !none.more)
            let stranger = try store.changes(db, after: 0, notFrom: .random(), limit: 100)
            #expect(stranger.changes.count == 10 && stranger.readUpTo == 10, "a replica the log has never seen gets everything")
        }
    }
}

extension StoreTests {
    /// Row metadata written before the compact format (a stamp per cell) still reads the same, and
    /// the next write stores it compactly.
    @Test func rowMetadataInTheFirstFormatStillReads() throws {
        let (store, queue) = try makeStore()
        let table = Self.schema.tables[0]
        let written = try queue.write { db in
            try store.write(db, table: "t", rowID: "r", values: ["a": .integer(1), "b": .integer(2)], author: "x", wallMilliseconds: 1_800_000_000_000)
        }
        let (compact, meta) = try queue.read { db in
            (try Data.fetchOne(db, sql: "SELECT meta FROM sync_rows WHERE id = 'r'")!, try store.rowMeta(db, table: table, rowID: "r"))
        }
        #expect(meta?.cells["a"] == CellStamp(dot: written.dot, hlc: written.hlc) && meta?.cells["b"] == meta?.cells["a"])
        // Format 1, by hand: vector [peer 1: 1], then two cells each with peer 1, counter 1 and the HLC.
        var legacy = BinaryWriter()
        for varint in [1, 1, 1, 2] { legacy.write(varint: UInt64(varint)) }
        for code in [1, 2] {
            for varint in [UInt64(code), 1, 1, written.hlc.rawValue] { legacy.write(varint: varint) }
        }
        #expect(legacy.bytes.count > compact.count, "the compact form stores the shared stamp once")
        try queue.write { db in try db.execute(sql: "UPDATE sync_rows SET meta = ? WHERE id = 'r'", arguments: [Data(legacy.bytes)]) }
        #expect(try queue.read { db in try store.rowMeta(db, table: table, rowID: "r") } == meta)
        // A format-1 blob with a byte too many is corrupt, not silently read.
        try queue.write { db in try db.execute(sql: "UPDATE sync_rows SET meta = ? WHERE id = 'r'", arguments: [Data(legacy.bytes + [0])]) }
        #expect(throws: SyncError.self) { try queue.read { db in try store.rowMeta(db, table: table, rowID: "r") } }
    }
}

extension StoreTests {
    /// Two processes on one replica file each have their own store: what one knows about held-back
    /// changes must not outlive its transaction, or a change the other held back is never released.
    @Test func anotherProcessesHeldBackChangeIsReleased() throws {
        let (mine, queue) = try makeStore()
        let other = SyncStore(schema: Self.schema)   // the second process's store, same file
        let writer = ReplicaID.random()
        let first = change(writer, 1, row: "r", a: 1)
        let second = change(writer, 2, row: "r", a: 2, context: VersionVector([writer: 1]))
        // This process merges something while nothing is held back…
        try queue.write { db in _ = try mine.merge(db, change(writer, 3, row: "unrelated", a: 3), wallMilliseconds: 0) }
        // …the other process holds a change back…
        let held = try queue.write { db in try other.merge(db, second, wallMilliseconds: 0) }
        #expect(held == .heldBack)
        // …and this process then merges what it was waiting for.
        try queue.write { db in _ = try mine.merge(db, first, wallMilliseconds: 0) }
        let value = try queue.read { db in try Int.fetchOne(db, sql: "SELECT a FROM t WHERE id = 'r'") }
        #expect(value == 2, "the other process's held-back change was released")
    }

    /// Two row ids that are the same text to Swift (canonically equivalent) and two rows to SQLite
    /// ("é" as one code point, and as "e" with a combining accent) stay two rows in one batch.
    @Test func aBatchKeepsRowsWhoseIdsDifferOnlyInTheirBytes() throws {
        let (store, queue) = try makeStore()
        let writer = ReplicaID.random()
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed, "Swift takes them as equal")
        let batch = [change(writer, 1, row: composed, a: 1), change(writer, 2, row: decomposed, a: 2)]
        let reports = try queue.write { db in
            var clock = try store.loadClock(db)
            return try store.merge(db, batch, clock: &clock, wallMilliseconds: 0)
        }
        #expect(reports.allSatisfy { if case .merged = $0 { true } else { false } }, "\(reports)")
        let rows = try queue.read { db in try Row.fetchAll(db, sql: "SELECT id, a FROM t ORDER BY a").map { [UInt8](($0["id"] as String).utf8) } }
        #expect(rows == [Array(composed.utf8), Array(decomposed.utf8)], "each change wrote its own row")
        let metas = try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_rows") }
        #expect(metas == 2)
    }
}
