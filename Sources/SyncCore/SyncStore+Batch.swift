import Foundation
import GRDB

/// The batch merge (DESIGN-NOTES "The batch merge"): a batch of changes from other replicas is
/// merged in one pass. The metadata of every row the batch touches is read in one query per table,
/// each change is merged in memory by the one `Merge.merge`, its log entry is appended in order, and
/// each touched row — its cells and its metadata — is written once, when the batch is done. A row
/// edited many times in a batch (a stay's plan, a resident's record through her stay) costs one
/// upsert and one metadata write, not one per change.
///
/// Nothing outside the batch reads the rows before they are written: `merge` writes them before it
/// returns, so every caller sees the rows as it did when each change was written at once.
extension SyncStore {
    /// The statements a batch runs once per change or row, kept for the batch: each is found in
    /// GRDB's statement cache once, not by a hash of its text at every change. A class, so the
    /// functions that run them fill it as they go; one batch, one thread.
    final class MergeStatements {
        private struct UpsertKey: Hashable {
            let table: Int
            let codes: [Int]
        }
        private var byText: [(text: String, statement: RawStatement)] = []
        private var upserts: [UpsertKey: RawStatement] = [:]

        /// The statement of `sql`, one of a few static texts (the same storage compares at once).
        func statement(_ db: Database, _ sql: String) throws -> RawStatement {
            for kept in byText where kept.text == sql { return kept.statement.again() }
            let statement = try RawStatement(db, sql)
            byText.append((sql, statement))
            return statement
        }

        func upsert(table: Int, codes: [Int]) -> RawStatement? { upserts[UpsertKey(table: table, codes: codes)]?.again() }
        func keep(_ statement: RawStatement, table: Int, codes: [Int]) { upserts[UpsertKey(table: table, codes: codes)] = statement }
    }

    /// The rows a batch merge has touched, as the batch leaves them.
    struct MergeBatch {
        /// A row by table and id, the id compared and hashed by its bytes as SQLite compares them
        /// (Swift's `String` equality takes canonically equivalent texts — "é" as one code point or
        /// as "e" and an accent — as equal; SQLite keeps them as two rows).
        struct Key: Hashable {
            let table: Int
            let id: String

            static func == (a: Key, b: Key) -> Bool { a.table == b.table && a.id.utf8.elementsEqual(b.id.utf8) }

            func hash(into hasher: inout Hasher) {
                hasher.combine(table)
                var id = id
                id.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
            }
        }

        struct Row {
            let table: SyncSchema.Table
            let id: String
            var meta: RowMeta?
            /// The cells merged and not yet written, in code order.
            var cells: [CodedCell] = []
            /// Whether a change was merged into the row (it is written even with no cell: it exists).
            var merged = false
        }

        var index: [Key: Int] = [:]
        var rows: [Row] = []
        /// Kept for a batch of more than one change (a change merged alone runs each statement once).
        let statements: MergeStatements?

        /// The row's values as SQLite holds them (a value as its column's type makes it: an integer
        /// in a REAL column reads back as a real), its cells merged so far written first. Read only
        /// when a merge contests a cell (a concurrent write reports both values): rare.
        mutating func values(_ db: Database, _ store: SyncStore, _ slot: Int) throws -> [String: SyncValue] {
            if !rows[slot].cells.isEmpty {
                try store.applyCells(db, table: rows[slot].table, rowID: rows[slot].id, cells: rows[slot].cells, statements: statements)
                rows[slot].cells = []
            }
            return try store.currentRow(db, table: rows[slot].table.name, id: rows[slot].id) ?? [:]
        }

        /// `cells`: in code order.
        mutating func merged(_ slot: Int, cells: [CodedCell], meta: RowMeta) {
            rows[slot].meta = meta
            guard rows[slot].merged, !rows[slot].cells.isEmpty else {
                // The row's first merge in the batch (by far the most common), or its first since its
                // cells were written: its cells as they are.
                rows[slot].merged = true
                rows[slot].cells = cells
                return
            }
            // Both in code order: merged into one, the later write's cell over the earlier's.
            let earlier = rows[slot].cells
            var merged: [CodedCell] = []
            merged.reserveCapacity(earlier.count + cells.count)
            var e = 0, l = 0
            while e < earlier.count || l < cells.count {
                if l == cells.count || (e < earlier.count && earlier[e].code < cells[l].code) {
                    merged.append(earlier[e]); e += 1
                } else {
                    if e < earlier.count && earlier[e].code == cells[l].code { e += 1 }
                    merged.append(cells[l]); l += 1
                }
            }
            rows[slot].cells = merged
        }
    }

    /// Merges a batch of changes made on other replicas, in order, moving `clock` past their stamps
    /// (the caller saves it, `saveClock`), and reports each as `merge(_:_:clock:…)` would have.
    /// `digests`: each change's `LogHash.of` where the caller has it (one per change, or nil).
    /// Call inside a transaction (a throw leaves it to be rolled back: rows are written at the end).
    public func merge(_ db: Database, _ changes: [CellChange], clock: inout HybridLogicalClock, wallMilliseconds: UInt64,
                      digests: [LogHash?]? = nil) throws -> [MergeReport] {
        precondition(digests == nil || digests!.count == changes.count, "one digest (or nil) per change")
        // Every change's table and columns checked before anything is written: a batch naming one
        // this schema does not know throws with nothing of it in the store.
        var coded: [(table: SyncSchema.Table, cells: [CodedCell])] = []
        coded.reserveCapacity(changes.count)
        for change in changes {
            let table = try self.table(change.table)
            coded.append((table, try codedCells(change.values, of: table)))
        }
        var batch = MergeBatch(statements: changes.count > 1 ? MergeStatements() : nil)
        // Each change's row in the batch, its metadata read with the others' (one query per table).
        let slots = try prefetch(db, changes, tables: coded.map(\.table), into: &batch)
        var reports: [MergeReport] = []
        reports.reserveCapacity(changes.count)
        for (position, change) in changes.enumerated() {
            reports.append(try merge(db, change, table: coded[position].table, cells: coded[position].cells, slot: slots[position],
                                     into: &batch, clock: &clock, wallMilliseconds: wallMilliseconds, digest: digests?[position]))
        }
        try write(db, batch)
        return reports
    }

    /// The widths of the metadata query's `IN` list: a batch's ids are read in chunks of these, the
    /// last padded with NULL, so the statement cache holds four texts, not one per batch size.
    static let prefetchWidths = [1, 8, 32, 128]

    /// Reads the metadata of every row `changes` touch, one query per table and chunk; returns each
    /// change's row in the batch.
    func prefetch(_ db: Database, _ changes: [CellChange], tables: [SyncSchema.Table], into batch: inout MergeBatch) throws -> [Int] {
        if changes.count == 1 {
            // A change merged alone (the server merges so): its row's metadata by its key.
            batch.rows = [MergeBatch.Row(table: tables[0], id: changes[0].rowID, meta: try rowMeta(db, table: tables[0], rowID: changes[0].rowID))]
            return [0]
        }
        var ids: [Int: [String]] = [:]
        var slots: [Int] = []
        slots.reserveCapacity(changes.count)
        for (change, table) in zip(changes, tables) {
            let key = MergeBatch.Key(table: table.code, id: change.rowID)
            if let slot = batch.index[key] { slots.append(slot); continue }
            slots.append(batch.rows.count)
            batch.index[key] = batch.rows.count
            batch.rows.append(MergeBatch.Row(table: table, id: change.rowID, meta: nil))
            ids[table.code, default: []].append(change.rowID)
        }
        for (code, rowIDs) in ids {
            var start = 0
            while start < rowIDs.count {
                let count = min(rowIDs.count - start, Self.prefetchWidths.last!)
                let width = Self.prefetchWidths.first { $0 >= count }!
                let select = try RawStatement(db, "SELECT id, meta FROM sync_rows WHERE tbl = ? AND id IN (?\(String(repeating: ", ?", count: width - 1)))")
                select.bind(1, code)
                for offset in 0..<count { select.bind(Int32(offset + 2), rowIDs[start + offset]) }
                // Rows are read in full first: decoding metadata may look up a peer with another statement.
                var found: [(id: String, meta: [UInt8])] = []
                while try select.step() { found.append((select.text(0), select.blob(1))) }
                for (id, bytes) in found {
                    guard let slot = batch.index[MergeBatch.Key(table: code, id: id)] else { continue }
                    batch.rows[slot].meta = try decodeMeta(db, bytes, table: batch.rows[slot].table)
                }
                start += count
            }
        }
        return slots
    }

    /// Merges one change of a batch, then the held-back changes of its row it makes ready.
    /// `cells`: the change's values with their columns' codes, in code order (the row's upsert and
    /// the log's encoding use these).
    private func merge(_ db: Database, _ change: CellChange, table: SyncSchema.Table, cells: [CodedCell], slot: Int,
                       into batch: inout MergeBatch, clock: inout HybridLogicalClock, wallMilliseconds: UInt64, digest: LogHash?) throws -> MergeReport {
        clock.receive(change.hlc, wallMilliseconds: wallMilliseconds)

        var concurrent: [ConcurrentWrite] = []
        guard let sequence = try mergeOne(db, change, cells: cells, slot: slot, batch: &batch, concurrent: &concurrent, digest: digest) else {
            return batch.rows[slot].meta?.versionVector.contains(change.dot) == true ? .duplicate : .heldBack
        }
        // Release held-back changes of this row whose context is now complete.
        var released: [CellChange] = []
        var progress = try !pending.isKnownEmpty(db)
        while progress {
            progress = false
            let held = try Row.fetchAll(db.cachedStatement(sql: "SELECT peer, counter, change FROM sync_pending WHERE tbl = ? AND row = ? ORDER BY peer, counter"),
                                        arguments: [table.code, change.rowID])
            for row in held {
                let pendingChange = try decodeChange(row["change"] as Data)
                if try mergeOne(db, pendingChange, cells: try codedCells(pendingChange.values, of: table), slot: slot, batch: &batch, concurrent: &concurrent) != nil
                    || batch.rows[slot].meta?.versionVector.contains(pendingChange.dot) == true {
                    released.append(pendingChange)
                    try db.execute(sql: "DELETE FROM sync_pending WHERE peer = ? AND counter = ?",
                                   arguments: [row["peer"] as Int64, row["counter"] as Int64])
                    progress = true
                }
            }
        }
        return .merged(sequence: sequence, concurrent: concurrent, released: released)
    }

    /// Merges one change into its row of the batch; returns its log position, or nil if it was a
    /// duplicate or was held back.
    private func mergeOne(_ db: Database, _ change: CellChange, cells: [CodedCell], slot: Int, batch: inout MergeBatch,
                          concurrent: inout [ConcurrentWrite], digest: LogHash? = nil) throws -> Int64? {
        let table = batch.rows[slot].table
        let meta = batch.rows[slot].meta
        // The current values of the cells the change contests (a concurrent write reports both).
        var current: [String: SyncValue] = [:]
        if let meta, change.values.keys.contains(where: { meta.cells[$0] != nil }) {
            let values = try batch.values(db, self, slot)
            for name in change.values.keys where meta.cells[name] != nil { current[name] = values[name] ?? .null }
        }
        switch Merge.merge(change, into: meta, currentValues: current, keepBoth: table.keepBoth) {
        case .duplicate:
            return nil
        case .notReady:
            let bytes = Data(ChangeCodec.encodeSealed(change))
            pending.inserted()
            try db.execute(sql: "INSERT OR IGNORE INTO sync_pending (peer, counter, tbl, row, change) VALUES (?, ?, ?, ?, ?)",
                           arguments: [try peerIndex(db, change.dot.replica), Int64(change.dot.counter), table.code, change.rowID, bytes])
            return nil
        case .merged(let apply, let newMeta, let found):
            // Every cell the change writes, or those of them that won (a concurrent write kept some).
            batch.merged(slot, cells: apply.count == cells.count ? cells : cells.filter { apply[$0.name] != nil }, meta: newMeta)
            concurrent += found
            return try appendLog(db, change: change, table: table, state: .received, digest: digest, encodedValues: encodeCells(cells),
                                 statements: batch.statements)
        }
    }

    /// Writes each row the batch merged into: its cells (one upsert) and its metadata.
    private func write(_ db: Database, _ batch: MergeBatch) throws {
        for row in batch.rows where row.merged {
            try applyCells(db, table: row.table, rowID: row.id, cells: row.cells, statements: batch.statements)
            try saveMeta(db, table: row.table, rowID: row.id, meta: row.meta ?? RowMeta(), statements: batch.statements)
        }
    }
}
