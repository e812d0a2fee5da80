import Foundation
import GRDB
import SyncCore
import Testing
import TestSupport

/// The hash chain of a log, the checkpoints a workstation keeps of it, and change digests.
@Suite struct HistoryTests {
    static let schema = SyncSchema(version: 1, tables: [
        .init("t", code: 1, columns: [.init("a", code: 1, .integer), .init("b", code: 2, .text)]),
    ])

    func makeStore(chained: Bool) throws -> (SyncStore, DatabaseQueue) {
        let store = SyncStore(schema: Self.schema, chained: chained)
        var migrator = DatabaseMigrator()
        store.registerMigrations(in: &migrator)
        let queue = try DatabaseQueue()
        try migrator.migrate(queue)
        try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
        return (store, queue)
    }

    func change(_ replica: ReplicaID, _ counter: UInt64, a: Int64, b: String = "x") -> CellChange {
        CellChange(table: "t", rowID: "r\(counter)", values: ["a": .integer(a), "b": .text(b)], dot: Dot(replica: replica, counter: counter),
                   hlc: HLC(rawValue: counter << 16), author: "x", context: VersionVector())
    }

    /// A digest depends on the content only, never on the order a dictionary happens to keep; any
    /// change of a value, the author, the clock or the context changes it.
    @Test func aDigestIsCanonicalAndCoversEveryField() {
        let replica = ReplicaID.random()
        var values: [String: SyncValue] = [:]
        for n in 0..<40 { values["c\(n)"] = .integer(Int64(n)) }
        let one = CellChange(table: "t", rowID: "r", values: values, dot: Dot(replica: replica, counter: 1), hlc: HLC(rawValue: 7),
                             author: "mette", context: VersionVector([replica: 0, .random(): 2, .random(): 3]))
        var rebuilt = [String: SyncValue]()
        for key in values.keys.shuffled() { rebuilt[key] = values[key] }
        var same = one
        same.values = rebuilt
        #expect(LogHash.of(same) == LogHash.of(one))
        var variants: [CellChange] = []
        var v = one; v.values["c3"] = .text("3"); variants.append(v)
        v = one; v.author = "jonas"; variants.append(v)
        v = one; v.hlc = HLC(rawValue: 8); variants.append(v)
        v = one; v.context = VersionVector([replica: 1]); variants.append(v)
        v = one; v.rowID = "s"; variants.append(v)
        v = one; v.dot.counter = 2; variants.append(v)
        for variant in variants { #expect(LogHash.of(variant) != LogHash.of(one)) }
    }

    /// The server's log chains every entry to the one before; a workstation's log keeps no chain.
    @Test func aChainedLogChainsEveryEntryAndAPullCarriesTheChain() throws {
        let (store, queue) = try makeStore(chained: true)
        let (writer, puller) = (ReplicaID.random(), ReplicaID.random())
        let changes = (1...5).map { change(writer, UInt64($0), a: Int64($0)) }
        try queue.write { db in for change in changes { _ = try store.merge(db, change, wallMilliseconds: 0) } }
        try queue.read { db in
            var expected = LogHash.genesis
            for (position, change) in changes.enumerated() {
                expected = expected.chained(with: LogHash.of(change))
                #expect(try store.chain(db, at: Int64(position + 1)) == expected)
            }
            #expect(try store.chain(db, at: 0) == .genesis)
            #expect(try store.chain(db, at: 6) == nil, "beyond the head")
            let pulled = try store.changes(db, after: 0, notFrom: puller, limit: 2)
            let atTwo = try store.chain(db, at: 2)
            #expect(pulled.readUpTo == 2 && pulled.chain == atTwo)
            let rest = try store.changes(db, after: 2, notFrom: puller, limit: 100)
            #expect(rest.readUpTo == 5 && rest.chain == expected)
            // Common positions: the newest checkpoint whose hash agrees.
            let good = Checkpoint(position: 3, hash: try store.chain(db, at: 3)!)
            let wrong = Checkpoint(position: 5, hash: LogHash.of(changes[0]))
            let beyond = Checkpoint(position: 9, hash: expected)
            #expect(try store.lastCommonPosition(db, of: [wrong, good]) == 3)
            #expect(try store.lastCommonPosition(db, of: [beyond, wrong]) == 0)
        }
        let (plain, plainQueue) = try makeStore(chained: false)
        try plainQueue.write { db in _ = try plain.merge(db, changes[0], wallMilliseconds: 0) }
        #expect(try plainQueue.read { db in try plain.chain(db, at: 1) } == nil)
    }

    /// A rolled-back append leaves nothing of its hash: the next entry chains to the last committed one.
    @Test func aRolledBackAppendDoesNotMoveTheChain() throws {
        let (store, queue) = try makeStore(chained: true)
        let writer = ReplicaID.random()
        try queue.write { db in _ = try store.merge(db, change(writer, 1, a: 1), wallMilliseconds: 0) }
        struct Rollback: Error {}
        #expect(throws: Rollback.self) {
            try queue.write { db in
                _ = try store.merge(db, change(writer, 2, a: 2), wallMilliseconds: 0)
                throw Rollback()
            }
        }
        let other = change(writer, 2, a: 20)
        try queue.write { db in _ = try store.merge(db, other, wallMilliseconds: 0) }
        let expected = LogHash.genesis.chained(with: LogHash.of(change(writer, 1, a: 1))).chained(with: LogHash.of(other))
        #expect(try queue.read { db in try store.chain(db, at: 2) } == expected)
    }

    /// A store whose entries have no chain yet (made before 0.5) gets the same chain as if it had
    /// always kept one.
    @Test func anOldLogGetsItsChain() throws {
        let (store, queue) = try makeStore(chained: true)
        let writer = ReplicaID.random()
        try queue.write { db in for n in 1...2_500 { _ = try store.merge(db, change(writer, UInt64(n), a: Int64(n)), wallMilliseconds: 0) } }
        let before = try queue.read { db in try (1...2_500).map { try store.chain(db, at: Int64($0)) } }
        try queue.write { db in
            try db.execute(sql: "UPDATE sync_log SET chain = NULL WHERE seq > 1200")
            try store.extendChain(db)
        }
        #expect(try queue.read { db in try (1...2_500).map { try store.chain(db, at: Int64($0)) } } == before)
    }

    /// Checkpoints: the last few, then about one per power of two of distance; never more than ~70
    /// however long the history, and always a nearby one for any earlier position.
    @Test func checkpointsThinOutWithDistance() throws {
        let (store, queue) = try makeStore(chained: false)
        var rng = SeededRandom(seed: SeededRandom.seed(from: "CHECKPOINT_SEED", default: 11))
        var cursor: Int64 = 0
        for _ in 0..<3_000 {
            cursor += Int64.random(in: 1...500, using: &rng)
            let at = cursor
            try queue.write { db in try store.setCursor(db, at, hash: .genesis) }
        }
        let kept = try queue.read { db in try store.checkpoints(db, limit: 1_000) }
        print("seed \(rng.seed): \(kept.count) checkpoints for a cursor at \(cursor)")
        #expect(kept.count <= 70, "seed \(rng.seed)")
        #expect(kept.first?.position == cursor)
        // For any earlier position p, some checkpoint lies in [p − (cursor − p), p]: a divergence at
        // p costs at most twice the distance to pull again.
        for p in stride(from: cursor - 1, to: 1_000, by: -997) {
            let nearest = kept.map(\.position).filter { $0 <= p }.max() ?? 0
            #expect(p - nearest <= max(500, cursor - p), "seed \(rng.seed): nothing near \(p) (nearest \(nearest))")
        }
        // Rewinding drops the checkpoints after the common position.
        let middle = kept[kept.count / 2].position
        try queue.write { db in try store.rewindCursor(db, to: middle) }
        let after = try queue.read { db in (try store.state(db), try store.checkpoints(db)) }
        #expect(after.0.cursor == middle && after.0.cursorHash == .genesis && after.1.allSatisfy { $0.position <= middle })
    }
}
