import Foundation
import GRDB
import Synchronization

/// Some columns of one row whose values are to be erased.
public struct ErasedCells: Hashable, Sendable {
    public var table: String
    public var rowID: String
    public var columns: Set<String>

    public init(table: String, rowID: String, columns: Set<String>) {
        self.table = table
        self.rowID = rowID
        self.columns = columns
    }
}

/// Whether an erasure was written since the write-ahead log was last emptied: the WAL still holds
/// the pages as they were before it (SQLite keeps old frames until a checkpoint), so the owner of the
/// connection checkpoints and truncates it after the erasing transaction (`checkpointAfterErasure`).
public final class ErasureCheckpoint: Sendable {
    private let pending = Mutex(false)
    public init() {}
    public var isPending: Bool { pending.withLock { $0 } }
    /// Also when a store opens that has erased anything: a crash after an erasing commit, or a
    /// checkpoint that readers kept from truncating, may have left the old pages in its WAL.
    public func set() { pending.withLock { $0 = true } }

    /// Copies the WAL into the database file and truncates it to nothing, waiting at most a moment
    /// for readers to move on; when they do not, it stays pending for the next write. Call outside
    /// a transaction, on the writing connection.
    public func checkpoint(_ db: Database) {
        guard isPending else { return }
        let timeout = (try? Int.fetchOne(db, sql: "PRAGMA busy_timeout")) ?? 0
        _ = try? db.execute(sql: "PRAGMA busy_timeout = 250")
        defer { _ = try? db.execute(sql: "PRAGMA busy_timeout = \(timeout)") }
        guard let result = try? db.checkpoint(.truncate), result.walFrameCount <= 0 else { return }
        pending.withLock { $0 = false }
    }
}

/// What `SyncStore.erase` did.
public struct ErasureReport: Hashable, Sendable {
    /// Log entries and held-back changes whose values it erased.
    public var entries = 0
    /// This replica's own changes not yet pushed that hold such values: kept until the server has
    /// them (`complete` is false), then erased by a later call.
    public var waiting = 0
    public var complete: Bool { waiting == 0 }

    public init() {}
}

extension SyncStore {
    /// Erases the values of `cells` wherever this replica keeps them: the domain row (each cell
    /// goes back to its column's default), every log entry and held-back change of the row that
    /// wrote them, with each erased value's digest kept (`CellChange.erased`) so that its transaction's
    /// signature and the log's hash chain still check. The rows' metadata is unchanged: merging
    /// converges as before, and the application erases what a late change brings (erasure wins).
    ///
    /// - Parameter keepUnsynced: keep this replica's own changes that the server has not merged
    ///   yet (a workstation: the server must still check their signature against their values).
    ///   They are counted in `waiting`; call again after the push.
    @discardableResult
    public func erase(_ db: Database, _ cells: [ErasedCells], keepUnsynced: Bool) throws -> ErasureReport {
        var report = ErasureReport()
        defer { if report.entries > 0 || !cells.isEmpty { erasureCheckpoint.set() } }
        for group in cells {
            let table = try self.table(group.table)
            let columns = table.columns.filter { group.columns.contains($0.name) }
            guard !columns.isEmpty else { continue }
            let defaults = Dictionary(uniqueKeysWithValues: columns.map { ($0.name, $0.defaultValue) })
            let assignments = columns.map { "\($0.name.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ")
            try db.execute(sql: "UPDATE \(table.name.quotedDatabaseIdentifier) SET \(assignments) WHERE id = ?",
                           arguments: StatementArguments(columns.map { $0.defaultValue.databaseValue } + [group.rowID.databaseValue]))

            /// The change with the columns' values erased, each one's digest kept; nil when it holds
            /// none of them.
            func erased(_ change: CellChange) -> CellChange? {
                var result = change
                for (column, value) in change.values {
                    guard let empty = defaults[column], value != empty || change.erased[column] != nil else { continue }
                    if result.erased[column] == nil { result.erased[column] = LogHash.valueDigest(value) }
                    result.values[column] = empty
                }
                return result.erased == change.erased ? nil : result
            }
            for entry in try loggedChanges(db, where: "row = ? AND tbl = ?", arguments: [.text(group.rowID), .integer(Int64(table.code))],
                                           order: "seq ASC", limit: .max) {
                guard let change = erased(entry.change) else { continue }
                if keepUnsynced && entry.state == .unsynced {
                    report.waiting += 1
                    continue
                }
                try storeErased(db, change, at: entry.sequence, table: table)
                report.entries += 1
            }
            for row in try Row.fetchAll(db, sql: "SELECT peer, counter, change FROM sync_pending WHERE tbl = ? AND row = ?",
                                        arguments: [table.code, group.rowID]) {
                guard let change = erased(try decodeChange(row["change"] as Data)) else { continue }
                try db.execute(sql: "UPDATE sync_pending SET change = ? WHERE peer = ? AND counter = ?",
                               arguments: [Data(ChangeCodec.encodeSealed(change)), row["peer"] as Int64, row["counter"] as Int64])
                report.entries += 1
            }
        }
        return report
    }

    /// Erases, in the log only (the row keeps its values), the values of `columns` of one row that
    /// `superseded` picks — a wrapped key replaced by a new wrapping — each keeping its digest. The
    /// row's log is read once for all the columns.
    @discardableResult
    public func eraseInLog(_ db: Database, table tableName: String, rowID: String, columns: Set<String>, keepUnsynced: Bool,
                           superseded: (_ column: String, _ value: SyncValue) -> Bool) throws -> ErasureReport {
        let table = try self.table(tableName)
        let defaults = Dictionary(uniqueKeysWithValues: table.columns.filter { columns.contains($0.name) }.map { ($0.name, $0.defaultValue) })
        guard !defaults.isEmpty else { return ErasureReport() }
        var report = ErasureReport()
        for entry in try loggedChanges(db, where: "row = ? AND tbl = ?", arguments: [.text(rowID), .integer(Int64(table.code))],
                                       order: "seq ASC", limit: .max) {
            let picked = defaults.filter { column, empty in
                guard let value = entry.change.values[column], entry.change.erased[column] == nil, value != empty else { return false }
                return superseded(column, value)
            }
            guard !picked.isEmpty else { continue }
            if keepUnsynced && entry.state == .unsynced {
                report.waiting += 1
                continue
            }
            var change = entry.change
            for (column, empty) in picked {
                change.erased[column] = LogHash.valueDigest(change.values[column]!)
                change.values[column] = empty
            }
            try storeErased(db, change, at: entry.sequence, table: table)
            report.entries += picked.count
        }
        if report.entries > 0 { erasureCheckpoint.set() }
        return report
    }

    /// Writes a log entry's values with some erased, and the digests they keep.
    private func storeErased(_ db: Database, _ change: CellChange, at sequence: Int64, table: SyncSchema.Table) throws {
        var digests = BinaryWriter(capacity: 48 * change.erased.count)
        ChangeCodec.encode(erased: change.erased, into: &digests)
        try db.execute(sql: "UPDATE sync_log SET vals = ?, erased = ? WHERE seq = ?",
                       arguments: [Data(encodeValues(change.values, table: table)), Data(digests.bytes), sequence])
    }

    /// Whether `subject` was recorded as erased here (`recordErasure`).
    public func hasRecordedErasure(_ db: Database, subject: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM sync_erasures WHERE subject = ?)"), arguments: [subject]) ?? false
    }

    /// The subjects (the application's: a resident's id) erased here, and whether all of each is
    /// erased (`erase` left nothing waiting).
    public func erasures(_ db: Database) throws -> [String: Bool] {
        var result: [String: Bool] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT subject, complete FROM sync_erasures") {
            result[row["subject"]] = (row["complete"] as Int64) != 0
        }
        return result
    }

    /// Records that `subject` was erased here, completely or with local changes still waiting.
    public func recordErasure(_ db: Database, subject: String, complete: Bool) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO sync_erasures (subject, complete) VALUES (?, ?)", arguments: [subject, complete])
    }
}
