import Foundation
import GRDB
import SyncCore
import Testing
import TestSupport

/// An in-memory replica that applies changes with the one merge, holding back what is not ready.
struct MemoryReplica {
    struct Cell: Equatable { var value: SyncValue }
    var rows: [String: (meta: RowMeta, values: [String: SyncValue])] = [:]
    var pending: [CellChange] = []
    var concurrent: [ConcurrentWrite] = []
    var applied: [CellChange] = []

    mutating func apply(_ change: CellChange) {
        guard tryApply(change) else {
            if !pending.contains(change) && !(rows[change.rowID]?.meta.versionVector.contains(change.dot) ?? false) { pending.append(change) }
            return
        }
        var progress = true
        while progress {
            progress = false
            for held in pending where tryApply(held) {
                pending.removeAll { $0 == held }
                progress = true
            }
        }
    }

    /// True when the change is now part of the row (merged now or before).
    private mutating func tryApply(_ change: CellChange) -> Bool {
        let row = rows[change.rowID]
        switch Merge.merge(change, into: row?.meta, currentValues: row?.values ?? [:]) {
        case .duplicate: return true
        case .notReady: return false
        case .merged(let apply, let meta, let found):
            var values = row?.values ?? [:]
            values.merge(apply) { _, new in new }
            rows[change.rowID] = (meta, values)
            concurrent += found
            applied.append(change)
            return true
        }
    }

    var snapshot: [String: String] {
        rows.mapValues { "\($0.values.sorted { $0.key < $1.key }) \($0.meta.versionVector) \($0.meta.cells.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.dot)" })" }
    }
}

/// Random histories: K replicas write concurrently to a few rows and exchange what they know.
struct History {
    var changes: [CellChange] = []

    static func random(_ rng: inout SeededRandom, replicas count: Int, steps: Int) -> History {
        let ids = (0..<count).map { _ in ReplicaID.random() }
        var replicas = Array(repeating: MemoryReplica(), count: count)
        var counters = Array(repeating: UInt64(0), count: count)
        var clocks = Array(repeating: HybridLogicalClock(), count: count)
        var walls = Array(repeating: UInt64(1_000_000), count: count)
        var history = History()
        for _ in 0..<steps {
            let r = Int.random(in: 0..<count, using: &rng)
            if rng.chance(0.6) {
                // A local write: a few columns of one row, small values so equal writes happen too.
                let row = String(Int.random(in: 1...3, using: &rng))
                var values: [String: SyncValue] = [:]
                for column in ["a", "b", "c"] where rng.chance(0.5) { values[column] = .integer(Int64.random(in: 0...3, using: &rng)) }
                if values.isEmpty { values["a"] = .integer(9) }
                // Wall clocks drift, and sometimes step back.
                walls[r] = rng.chance(0.1) ? walls[r] - min(walls[r], UInt64.random(in: 0...500, using: &rng)) : walls[r] + UInt64.random(in: 0...50, using: &rng)
                counters[r] += 1
                let change = CellChange(table: "t", rowID: row, values: values, dot: Dot(replica: ids[r], counter: counters[r]),
                                        hlc: clocks[r].tick(wallMilliseconds: walls[r]), author: "s\(r)",
                                        context: replicas[r].rows[row]?.meta.versionVector ?? VersionVector())
                replicas[r].apply(change)
                history.changes.append(change)
            } else {
                // Delivery: r learns everything another replica has, in that replica's order.
                let from = Int.random(in: 0..<count, using: &rng)
                for change in replicas[from].applied {
                    replicas[r].apply(change)
                    clocks[r].receive(change.hlc, wallMilliseconds: walls[r])
                }
            }
        }
        return history
    }
}

@Suite struct ConvergenceTests {
    static var seeds: [UInt64] {
        let base = SeededRandom.seed(from: "MERGE_SEED", default: 1)
        let count = ProcessInfo.processInfo.environment["MERGE_SEED"] != nil ? 1 : 60
        return (0..<UInt64(count)).map { base &+ $0 }
    }

    @Test func finalStateDoesNotDependOnOrderAndMergeIsIdempotent() {
        for seed in Self.seeds {
            var rng = SeededRandom(seed: seed)
            let history = History.random(&rng, replicas: Int.random(in: 2...5, using: &rng), steps: 80)
            var reference = MemoryReplica()
            for change in history.changes { reference.apply(change) }
            #expect(reference.pending.isEmpty, "seed \(seed): creation order is causal")
            for _ in 0..<6 {
                var shuffled = MemoryReplica()
                for change in history.changes.shuffled(using: &rng) { shuffled.apply(change) }
                #expect(shuffled.pending.isEmpty, "seed \(seed): every held-back change was released")
                #expect(shuffled.snapshot == reference.snapshot, "seed \(seed): order changed the result (replay with MERGE_SEED=\(seed))")
            }
            var twice = reference
            for change in history.changes.shuffled(using: &rng) { twice.apply(change) }
            #expect(twice.snapshot == reference.snapshot, "seed \(seed): merge is not idempotent")
            #expect(twice.concurrent.count == reference.concurrent.count, "seed \(seed): a duplicate reported a conflict")
            checkNothingSilentlyLost(history, reference, seed: seed)
        }
    }

    /// Every write is the current value, or was overwritten by a write that saw it, or is part of a
    /// reported concurrent pair (the server keeps those with different values as conflict rows).
    func checkNothingSilentlyLost(_ history: History, _ replica: MemoryReplica, seed: UInt64) {
        let reportedCells = Set(replica.concurrent.flatMap { c in [c.current.dot, c.incoming.dot].map { "\($0)|\(c.column)" } })
        for change in history.changes {
            let row = replica.rows[change.rowID]!
            for column in change.values.keys {
                let current = row.meta.cells[column]!
                let seen = history.changes.contains { $0.rowID == change.rowID && $0.values[column] != nil && $0.context.contains(change.dot) }
                let accounted = current.dot == change.dot || seen || reportedCells.contains("\(change.dot)|\(column)")
                #expect(accounted, "seed \(seed): write \(change.dot) to \(change.rowID).\(column) was silently lost")
            }
        }
    }

    static let schema = SyncSchema(version: 1, tables: [
        .init("t", code: 1, columns: [.init("a", code: 1, .integer), .init("b", code: 2, .integer), .init("c", code: 3, .integer)]),
    ])

    /// The SQLite store reaches exactly the state of the pure model, in any order.
    @Test func sqliteStoreMatchesThePureMerge() throws {
        for seed in Self.seeds.prefix(15) {
            var rng = SeededRandom(seed: seed)
            let history = History.random(&rng, replicas: 3, steps: 60)
            var reference = MemoryReplica()
            for change in history.changes { reference.apply(change) }
            let store = SyncStore(schema: Self.schema)
            var migrator = DatabaseMigrator()
            store.registerMigrations(in: &migrator)
            let queue = try DatabaseQueue()
            try migrator.migrate(queue)
            try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
            try queue.write { db in
                for change in history.changes.shuffled(using: &rng) { _ = try store.merge(db, change, wallMilliseconds: 0) }
            }
            try queue.read { db in
                #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_pending") == 0, "seed \(seed)")
                for (rowID, expected) in reference.rows {
                    let meta = try store.rowMeta(db, table: Self.schema.tables[0], rowID: rowID)
                    #expect(meta == expected.meta, "seed \(seed) row \(rowID): metadata differs from the pure merge")
                    let values = try store.values(db, table: Self.schema.tables[0], rowID: rowID, columns: ["a", "b", "c"])
                    for (column, value) in expected.values {
                        #expect(values[column] == value, "seed \(seed) row \(rowID).\(column)")
                    }
                }
                #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_log") == history.changes.count, "seed \(seed): each change logged once")
            }
        }
    }

    /// The batch merge (one pass per batch: each row read once, written once) leaves exactly what
    /// merging change by change leaves — rows, metadata, log, held-back changes — and reports each
    /// change alike, whatever the batches' sizes, the order and the duplicates.
    @Test func aBatchMergeLeavesWhatChangeByChangeLeaves() throws {
        func makeStore() throws -> (SyncStore, DatabaseQueue) {
            let store = SyncStore(schema: Self.schema)
            var migrator = DatabaseMigrator()
            store.registerMigrations(in: &migrator)
            let queue = try DatabaseQueue()
            try migrator.migrate(queue)
            try queue.write { db in try store.initialize(db, replicaID: .random(), createdAt: "now") }
            return (store, queue)
        }
        for seed in Self.seeds.prefix(20) {
            var rng = SeededRandom(seed: seed)
            let history = History.random(&rng, replicas: 3, steps: 80)
            // Out of causal order (some held back, released later in or across batches), some twice.
            var arriving = history.changes.shuffled(using: &rng)
            for _ in 0..<6 { arriving.insert(arriving[Int.random(in: 0..<arriving.count, using: &rng)], at: Int.random(in: 0...arriving.count, using: &rng)) }
            let (one, oneQueue) = try makeStore()
            let (batched, batchedQueue) = try makeStore()
            var oneReports: [MergeReport] = [], batchedReports: [MergeReport] = []
            var start = 0
            while start < arriving.count {
                let count = min(arriving.count - start, Int.random(in: 1...40, using: &rng))
                let batch = Array(arriving[start..<(start + count)])
                try oneQueue.write { db in
                    for change in batch { oneReports.append(try one.merge(db, change, wallMilliseconds: 0)) }
                }
                try batchedQueue.write { db in
                    var clock = try batched.loadClock(db)
                    batchedReports += try batched.merge(db, batch, clock: &clock, wallMilliseconds: 0)
                    try batched.saveClock(db, clock)
                }
                start += count
            }
            #expect(batchedReports == oneReports, "seed \(seed): a change was reported otherwise in a batch")
            let table = Self.schema.tables[0]
            // Dictionaries in a canonical order (two equal ones may print in different orders).
            func text(_ vector: VersionVector) -> String { vector.entries.map { "\($0.key):\($0.value)" }.sorted().joined(separator: ",") }
            func text(_ change: CellChange) -> String {
                "\(change.dot) \(change.hlc) \(change.rowID) \(change.values.map { "\($0.key)=\($0.value)" }.sorted()) [\(text(change.context))]"
            }
            func state(_ store: SyncStore, _ queue: DatabaseQueue) throws -> [String] {
                try queue.read { db in
                    var lines: [String] = []
                    for row in try Row.fetchAll(db, sql: "SELECT id, a, b, c FROM t ORDER BY id") {
                        let id: String = row["id"]
                        let meta = try store.rowMeta(db, table: table, rowID: id)
                        lines.append("\(row) [\(meta.map { text($0.versionVector) } ?? "none")] \(meta?.cells.map { "\($0.key)=\($0.value.dot)@\($0.value.hlc)" }.sorted() ?? [])")
                    }
                    for logged in try store.log(db).reversed() { lines.append("\(logged.sequence) \(text(logged.change)) \(logged.state)") }
                    lines.append("held \(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_pending") ?? -1)")
                    lines.append("clock \(try store.loadClock(db).last)")
                    return lines
                }
            }
            let expected = try state(one, oneQueue)
            let got = try state(batched, batchedQueue)
            #expect(got == expected, "seed \(seed): the batch merge left another state (replay with MERGE_SEED=\(seed))")
            #expect(expected.contains("held 0"), "seed \(seed): every held-back change was released")
        }
    }
}
