import GRDB
import SyncCore

/// Erasing a resident (DESIGN §4 "Rotation and erasure"): a leader's signed change, a row of
/// `erasures`, that every replica and the server carry out when they merge it — the same code on
/// both sides.
///
/// Carrying it out clears, in every row of hers (her resident row, her children and stays, the
/// decisions, goals and complaints of her stays, the conflict rows about a personal cell of any
/// of them), every
/// personal cell and her wrapped key: in the row, in every log entry and held-back change (which
/// keep their digest, so signatures and the server's hash chain still check) — crypto-shredding
/// and the ciphertext itself. Non-personal cells stay: her stays keep dates, room, municipality and
/// status for billing and statistics. A change that reaches a replica after her erasure (made
/// offline before it was known) is cleared the same way when it is merged: erasure wins.
public enum Erasure {
    public enum Reason: String, CaseIterable, Sendable {
        /// She asked to be erased.
        case request
        /// Her last stay ended more than the retention period ago.
        case retention
    }

    /// The setting (a row of `settings`) that holds the retention period in years.
    public static let retentionSetting = "retentionYears"
    public static let defaultRetentionYears = 3

    /// Whether `resident` is erased here.
    public static func isErased(_ db: Database, _ resident: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM erasures WHERE id = ?)"), arguments: [resident]) ?? false
    }

    /// The resident a row's personal cells belong to: herself, the resident of a child or stay, the
    /// resident of the stay a decision, goal or complaint is about, the owner of the row a conflict
    /// is about; nil for rows of no resident (a house meeting). `values`: the row's values being
    /// written, read before the stored row.
    public static func owner(_ db: Database, table: SyncSchema.Table, rowID: String, values: [String: SyncValue] = [:]) throws -> String? {
        if table.name == ShelterSchema.residents.name { return rowID }
        let quoted = table.name.quotedDatabaseIdentifier
        if table.column(named: "resident") != nil {
            if let resident = values["resident"]?.textValue, !resident.isEmpty { return resident }
            return try String.fetchOne(db.cachedStatement(sql: "SELECT resident FROM \(quoted) WHERE id = ?"), arguments: [rowID])
        }
        if table.column(named: "stay") != nil {
            let stay = try values["stay"]?.textValue ?? String.fetchOne(db.cachedStatement(sql: "SELECT stay FROM \(quoted) WHERE id = ?"), arguments: [rowID])
            guard let stay else { return nil }
            return try String.fetchOne(db.cachedStatement(sql: "SELECT resident FROM stays WHERE id = ?"), arguments: [stay])
        }
        if table.name == ShelterSchema.conflicts.name {
            let about = try Row.fetchOne(db.cachedStatement(sql: "SELECT tbl, row FROM conflicts WHERE id = ?"), arguments: [rowID])
            let aboutTable = (values["tbl"]?.textValue ?? about?["tbl"]).flatMap { ShelterSchema.schema.table(named: $0) }
            let aboutRow: String? = values["row"]?.textValue ?? about?["row"]
            guard let aboutTable, let aboutRow, aboutTable.name != ShelterSchema.conflicts.name else { return nil }
            return try owner(db, table: aboutTable, rowID: aboutRow)
        }
        return nil
    }

    /// The cells to clear in one row of hers: its personal columns, her wrapped key in her own row,
    /// and the alias she and her children went by (not personal data by the schema — it is plain so
    /// that an anonymous stay can be named — but after her erasure no one needs it).
    public static func erasedColumns(of table: SyncSchema.Table) -> Set<String> {
        var columns = table.personalColumns
        if table.name == ShelterSchema.residents.name { columns.formUnion(["key", "cpr_index"]) }
        if table.name == ShelterSchema.residents.name || table.name == ShelterSchema.children.name { columns.insert("alias") }
        return columns
    }

    static func erasable(_ table: SyncSchema.Table, rowID: String) -> ErasedCells? {
        let columns = erasedColumns(of: table)
        return columns.isEmpty ? nil : ErasedCells(table: table.name, rowID: rowID, columns: columns)
    }

    /// Every row of hers with cells to clear, and the conflict rows about any row of hers.
    public static func cells(of resident: String, _ db: Database) throws -> [ErasedCells] {
        var rows: [(table: SyncSchema.Table, id: String)] = [(ShelterSchema.residents, resident)]
        var stays: [String] = []
        for table in ShelterSchema.schema.tables where table.column(named: "resident") != nil {
            let ids = try String.fetchAll(db, sql: "SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE resident = ?", arguments: [resident])
            rows += ids.map { (table, $0) }
            if table.name == ShelterSchema.stays.name { stays = ids }
        }
        if !stays.isEmpty {
            let marks = Array(repeating: "?", count: stays.count).joined(separator: ", ")
            for table in ShelterSchema.schema.tables where table.column(named: "stay") != nil && !table.personalColumns.isEmpty {
                let ids = try String.fetchAll(db, sql: "SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE stay IN (\(marks))",
                                              arguments: StatementArguments(stays))
                rows += ids.map { (table, $0) }
            }
        }
        var cells = rows.compactMap { erasable($0.table, rowID: $0.id) }
        cells += try conflictCells(about: rows.map { ($0.table.name, $0.id) }, db)
        return cells
    }

    /// The conflict rows about a personal cell of `rows` (their candidates are her values; a
    /// conflict about a room or a status holds nothing personal and stays resolvable).
    static func conflictCells(about rows: [(table: String, id: String)], _ db: Database) throws -> [ErasedCells] {
        var cells: [ErasedCells] = []
        for (table, id) in rows {
            guard let schemaTable = ShelterSchema.schema.table(named: table) else { continue }
            let personal = erasedColumns(of: schemaTable)
            guard !personal.isEmpty else { continue }
            for conflict in try Row.fetchAll(db.cachedStatement(sql: "SELECT id, col FROM conflicts WHERE row = ? AND tbl = ?"), arguments: [id, table])
            where (conflict["col"] as String?).map(personal.contains) == true {
                if let erasable = erasable(ShelterSchema.conflicts, rowID: conflict["id"]) { cells.append(erasable) }
            }
        }
        return cells
    }

    /// Whether a conflict is about a cell an erasure clears (its candidates are someone's values).
    static func isAboutPersonalCell(conflict id: String, values: [String: SyncValue], _ db: Database) throws -> Bool {
        let stored = try Row.fetchOne(db.cachedStatement(sql: "SELECT tbl, col FROM conflicts WHERE id = ?"), arguments: [id])
        guard let table = (values["tbl"]?.textValue ?? stored?["tbl"]).flatMap({ ShelterSchema.schema.table(named: $0) }),
              let column = values["col"]?.textValue ?? stored?["col"] else { return false }
        return erasedColumns(of: table).contains(column)
    }

    /// Why a change that arrives with erased values (a pulled change, or one given back to a
    /// restored server) is not one an erasure made: a value erased that no erasure clears, or not
    /// back at its column's default. Nil when it is one (or has none erased).
    public static func erasedRefusal(_ change: CellChange) -> String? {
        guard !change.erased.isEmpty, let table = ShelterSchema.schema.table(named: change.table) else { return nil }
        let erasable = erasedColumns(of: table)
        for column in change.erased.keys.sorted() where !erasable.contains(column) || change.values[column] != table.column(named: column)?.defaultValue {
            return "change \(change.dot) claims the \(column) of \(change.table) \(change.rowID) erased, which an erasure does not do"
        }
        return nil
    }

    /// Carries out the erasure of `resident` here. `keepUnsynced`: a workstation keeps its own
    /// changes not yet pushed (the server must check their signature against their values) and
    /// erases them once acknowledged (`completeWaiting`).
    @discardableResult
    public static func apply(_ db: Database, store: SyncStore, resident: String, keepUnsynced: Bool) throws -> ErasureReport {
        let report = try store.erase(db, try cells(of: resident, db), keepUnsynced: keepUnsynced)
        try store.recordErasure(db, subject: resident, complete: report.complete)
        return report
    }

    /// Erases from the log every wrapped key and every CPR index of `resident` but the ones her row
    /// holds now: after a rotation her key is wrapped again under the new shelter key and her index
    /// computed again under it, and the old ones — which a retired shelter key opens, or guesses
    /// through — must not stay in any copy.
    public static func eraseSuperseded(_ db: Database, store: SyncStore, resident: String, keepUnsynced: Bool) throws {
        let current = try Row.fetchOne(db, sql: "SELECT key, cpr_index FROM residents WHERE id = ?", arguments: [resident])
        let report = try store.eraseInLog(db, table: ShelterSchema.residents.name, rowID: resident, columns: supersededColumns,
                                          keepUnsynced: keepUnsynced) { column, value in
            value.textValue != nil && value.textValue != current?[column] as String?
        }
        // An old value in a change of this replica's not pushed yet goes once the server has it.
        if !report.complete { try store.recordErasure(db, subject: supersededKeySubject + resident, complete: false) }
    }

    /// The columns of her row a rotation writes again.
    public static let supersededColumns: Set<String> = ["key", "cpr_index"]

    /// The subject under which `sync_erasures` remembers an old wrapping still to erase.
    static let supersededKeySubject = "key:"

    /// After `changes` were merged or written here (a pulled batch, a pushed transaction, changes
    /// re-issued by a rescue): carries out the
    /// erasures among them, and clears what the others brought to a resident erased before —
    /// erasure wins over a concurrent edit. Returns the residents erased by this batch.
    @discardableResult
    public static func afterMerge(_ db: Database, store: SyncStore, changes: [CellChange], keepUnsynced: Bool) throws -> [String] {
        // A resident's key wrapped again, her index computed again (a rotation): the old ones leave the log.
        // (`changes` includes those a merge released from hold-back: a rotation that waited for
        // the admission it follows clears the admission's old wrapping when it is released.)
        var supersededDone = Set<String>()
        for change in changes where change.table == ShelterSchema.residents.name && !supersededDone.contains(change.rowID)
            && !change.values.isEmpty && supersededColumns.isSuperset(of: change.values.keys)
            && change.values.values.contains(where: { !($0.textValue ?? "").isEmpty }) {
            supersededDone.insert(change.rowID)
            try eraseSuperseded(db, store: store, resident: change.rowID, keepUnsynced: keepUnsynced)
        }
        guard !changes.isEmpty,
              try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM erasures)")) == true else { return [] }
        var erased: [String] = []
        for change in changes where change.table == ShelterSchema.erasures.name && !erased.contains(change.rowID) {
            guard try !store.hasRecordedErasure(db, subject: change.rowID) else { continue }
            try apply(db, store: store, resident: change.rowID, keepUnsynced: keepUnsynced)
            erased.append(change.rowID)
        }
        var late: [String: [ErasedCells]] = [:]
        var seen = Set<String>()
        for change in changes where change.table != ShelterSchema.erasures.name {
            // A row is looked at once, for the first change that brings it a value to erase.
            guard let table = ShelterSchema.schema.table(named: change.table), let cells = erasable(table, rowID: change.rowID),
                  change.values.keys.contains(where: cells.columns.contains),
                  seen.insert(change.table + "\u{1}" + change.rowID + "\u{1}" + (change.values["resident"]?.textValue ?? change.values["stay"]?.textValue ?? "")).inserted
            else { continue }
            if table.name == ShelterSchema.conflicts.name, try !isAboutPersonalCell(conflict: change.rowID, values: change.values, db) { continue }
            // Her row as it stands after the merge, or as the change would have it (a `resident`
            // the merge did not take): either belonging to an erased resident is enough.
            let owners = Set([try owner(db, table: table, rowID: change.rowID), try owner(db, table: table, rowID: change.rowID, values: change.values)].compactMap { $0 })
            var erasedOwner: String?
            for candidate in owners.sorted() where !erased.contains(candidate) {
                if try isErased(db, candidate) { erasedOwner = candidate; break }
            }
            guard let owner = erasedOwner else { continue }
            late[owner, default: []] += [cells] + (try conflictCells(about: [(table.name, change.rowID)], db))
        }
        for (owner, cells) in late {
            // A change of this replica's own not pushed yet waits, and its erasure with it.
            if try !store.erase(db, cells, keepUnsynced: keepUnsynced).complete {
                try store.recordErasure(db, subject: owner, complete: false)
            }
        }
        return erased
    }

    /// Erases what erasures here left waiting: this workstation's own changes that were not yet
    /// pushed when the erasure arrived. Call after the server acknowledged a push.
    public static func completeWaiting(_ db: Database, store: SyncStore) throws {
        for (subject, complete) in try store.erasures(db) where !complete {
            if subject.hasPrefix(supersededKeySubject) {
                let resident = String(subject.dropFirst(supersededKeySubject.count))
                try store.recordErasure(db, subject: subject, complete: true)
                try eraseSuperseded(db, store: store, resident: resident, keepUnsynced: true)
            } else {
                try apply(db, store: store, resident: subject, keepUnsynced: true)
            }
        }
    }
}
