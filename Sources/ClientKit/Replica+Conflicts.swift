import Foundation
import GRDB
import ShelterDomain
import SyncCore

extension Replica {
    /// Open conflicts (all with `includeResolved`), newest first.
    public func conflicts(includeResolved: Bool = false) throws -> [Conflict] {
        try read { db in try conflicts(db, includeResolved: includeResolved) }
    }

    /// Open conflicts (all with `includeResolved`), newest first, each with what staff recognise it
    /// by: whose record, which room, which workstations wrote the competing values. Names only to a
    /// session; without one, an alias or `Who.locked`.
    public func conflictDetails(includeResolved: Bool = false) throws -> [ConflictDetail] {
        try read { db in
            let workstations = try store.workstations(db)
            return try conflicts(db, includeResolved: includeResolved).map { conflict in
                var detail = ConflictDetail(conflict: conflict)
                detail.writers = conflict.candidates.map { candidate -> ConflictDetail.Writer in
                    switch ReplicaID(candidate.replica).flatMap({ workstations[$0] }) {
                    case nil: .unknown
                    case ""?: .server
                    case let name?: .workstation(name)
                    }
                }
                switch conflict.kind {
                case .room, .person:
                    detail.resident = try String.fetchOne(db, sql: "SELECT resident FROM stays WHERE id = ?", arguments: [conflict.row])
                    detail.candidateWho = try conflict.candidates.map { candidate -> ConflictDetail.Who? in
                        guard let stay = candidate.value.textValue,
                              let resident = try String.fetchOne(db, sql: "SELECT resident FROM stays WHERE id = ?", arguments: [stay]) else { return nil }
                        return try who(db, resident: resident)
                    }
                    if conflict.kind == .room { detail.room = try contestedRoom(db, conflict) }
                case .field:
                    detail.resident = try resident(db, ofRow: conflict.row, in: conflict.table)
                    if conflict.table == ShelterSchema.rooms.name {
                        detail.room = try Int.fetchOne(db, sql: "SELECT number FROM rooms WHERE id = ?", arguments: [conflict.row])
                    }
                }
                detail.who = try detail.resident.flatMap { try who(db, resident: $0) }
                return detail
            }
        }
    }

    /// The resident a row belongs to: hers, her child's, her stay's or something of her stay's.
    func resident(_ db: Database, ofRow row: String, in tableName: String) throws -> String? {
        guard let table = ShelterSchema.schema.table(named: tableName) else { return nil }
        if table.name == ShelterSchema.residents.name { return row }
        let quoted = table.name.quotedDatabaseIdentifier
        if table.column(named: "resident") != nil {
            return try String.fetchOne(db, sql: "SELECT resident FROM \(quoted) WHERE id = ?", arguments: [row])
        }
        if table.column(named: "stay") != nil {
            return try String.fetchOne(db, sql: "SELECT s.resident FROM \(quoted) t JOIN stays s ON s.id = t.stay WHERE t.id = ?", arguments: [row])
        }
        return nil
    }

    /// Who a resident is, as this replica may show her: her name to a session (never without one),
    /// else her alias; `locked` when there is neither to show; nil when her row is not here.
    func who(_ db: Database, resident: String) throws -> ConflictDetail.Who? {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT anonymous, name, alias, EXISTS (SELECT 1 FROM erasures e WHERE e.id = r.id) AS erased
            FROM residents r WHERE id = ?
            """, arguments: [resident]) else { return nil }
        if row["erased"] as Bool? == true { return .erased }
        let anonymous: Bool = row["anonymous"] ?? false
        if hasSession, !anonymous, let name = plain(db, row["name"], table: ShelterSchema.residents.name, row: resident, column: "name"), !name.isEmpty {
            return .named(name)
        }
        if let alias = row["alias"] as String?, !alias.isEmpty { return .named(alias) }
        return .locked
    }

    /// The room two stays were placed in: the placements' own writes say it (the dots the conflict
    /// records); else the room the kept stay is in now.
    func contestedRoom(_ db: Database, _ conflict: Conflict) throws -> Int? {
        let dots = (try String.fetchOne(db, sql: "SELECT dots FROM conflicts WHERE id = ?", arguments: [conflict.id]) ?? "")
            .split(separator: "|").compactMap { Dot(String($0)) }
        for dot in dots {
            if let entry = try store.logEntry(db, of: dot), entry.change.table == ShelterSchema.stays.name,
               case .integer(let room)? = entry.change.values["room"] {
                return Int(room)
            }
        }
        guard let kept = conflict.candidates.first?.value.textValue else { return nil }
        return try Int.fetchOne(db, sql: "SELECT room FROM stays WHERE id = ?", arguments: [kept])
    }

    func conflicts(_ db: Database, includeResolved: Bool) throws -> [Conflict] {
        let condition = includeResolved ? "" : "WHERE status = 'open'"
        return try Row.fetchAll(db, sql: "SELECT * FROM conflicts \(condition) ORDER BY detected_at DESC, id").map { row in
            var conflict = Self.conflict(row)
            // The competing values of a personal cell are its ciphertexts: shown decrypted to a
            // session, `lockedMark` without one (also a text written before encryption).
            if let column = conflict.column, ShelterSchema.schema.table(named: conflict.table)?.personalColumns.contains(column) == true {
                for index in conflict.candidates.indices {
                    guard let text = conflict.candidates[index].value.textValue, RecordKeys.isSealedCell(text) || !hasSession else { continue }
                    let shown = hasSession ? plain(db, text, table: conflict.table, row: conflict.row, column: column) ?? Self.lockedMark : Self.lockedMark
                    conflict.candidates[index].value = .text(shown)
                }
            }
            return conflict
        // The conflict about a cell of an erased resident: nothing of it is left to resolve.
        }.filter { !($0.kind == .field && $0.candidates.isEmpty) }
    }

    static func conflict(_ row: Row) -> Conflict {
        Conflict(id: row["id"], kind: Conflict.Kind(rawValue: row["kind"]) ?? .field, table: row["tbl"], row: row["row"],
                 column: row["col"], status: Conflict.Status(rawValue: row["status"]) ?? .open,
                 candidates: Conflict.decode(row["candidates"]), winner: row["winner"], suggestion: row["suggestion"],
                 detectedAt: row["detected_at"], resolvedBy: row["resolved_by"], resolvedAt: row["resolved_at"])
    }

    /// Resolves a conflict with a normal write (it syncs like any other): the chosen value is written
    /// to the cell, and the conflict — with any other open conflict on the same cell, whose values
    /// the resolver has in front of her too — is closed.
    ///
    /// For a `room` conflict the confirmed placement never moves: `keep: 0` accepts it, and `value`
    /// gives the stay that lost the room another room.
    ///
    /// A `person` conflict (the same woman admitted twice) is resolved with `merge`: see `mergeStays`.
    public func resolveConflict(_ prefix: String, keep index: Int? = nil, value text: String? = nil, merge: Bool = false,
                                by session: any TransactionSigner) throws {
        let author = session.author
        guard [index != nil, text != nil, merge].filter({ $0 }).count == 1 else {
            throw ReplicaError(.invalidArgument, t("err.ReplicaConflicts.81"))
        }
        try perform(signedBy: session) { db in
            let id = try resolve(db, prefix, in: ShelterSchema.conflicts, kind: "conflict")
            let conflict = Self.conflict(try Row.fetchOne(db, sql: "SELECT * FROM conflicts WHERE id = ?", arguments: [id])!)
            guard conflict.status == .open else { throw ReplicaError(.invalidArgument, t("conflict.alreadyResolved", ("id", id.prefix(8)))) }
            guard merge == (conflict.kind == .person) else {
                throw ReplicaError(.invalidArgument, merge ? "--merge resolves a person conflict (the same woman admitted twice); conflict \(id.prefix(8)) is a \(conflict.kind.rawValue) conflict"
                                                           : "conflict \(id.prefix(8)) is the same woman admitted twice: resolve it with --merge")
            }
            if let index, !conflict.candidates.indices.contains(index) {
                throw ReplicaError(.invalidArgument, t("conflict.index", ("id", id.prefix(8)), ("last", conflict.candidates.count - 1), ("index", index)))
            }
            var closes = [id]
            switch conflict.kind {
            case .room:
                if let index, index != 0 {
                    throw ReplicaError(.invalidArgument, t("conflict.placement", ("stay", conflict.row.prefix(8))))
                }
                if let text {
                    guard let room = Int(text) else { throw ReplicaError(.invalidArgument, t("conflict.roomValue", ("text", text))) }
                    let stay = try requireStay(db, conflict.row)
                    try stay.checkAssignable()
                    try RoomRules.checkAvailable(room, rooms: try rooms(db), activeStays: try stays(db, activeOnly: true), movingStay: stay.id)
                    try write(db, ShelterSchema.stays, stay.id, ["room": .integer(Int64(room)), "status": .text(Stay.Status.active.rawValue)], author: author)
                }
            case .person:
                guard conflict.candidates.count == 2, let kept = conflict.candidates[0].value.textValue,
                      let merged = conflict.candidates[1].value.textValue else {
                    throw ReplicaError(.storage, t("err.ReplicaConflicts.82", ("p1", id.prefix(8))))
                }
                try mergeStays(db, keep: kept, merge: merged, author: author)
            case .field:
                guard let column = conflict.column, let table = ShelterSchema.schema.table(named: conflict.table),
                      let schemaColumn = table.column(named: column) else {
                    throw ReplicaError(.storage, t("err.ReplicaConflicts.83", ("p1", id.prefix(8))))
                }
                let value: SyncValue
                if let index {
                    value = conflict.candidates[index].value
                } else {
                    value = try Self.parse(text!, for: schemaColumn, in: table, row: conflict.row, db: db)
                }
                try write(db, table, conflict.row, [column: value], author: author)
                closes += try String.fetchAll(db, sql: "SELECT id FROM conflicts WHERE status = 'open' AND tbl = ? AND row = ? AND col = ? AND id != ?",
                                              arguments: [conflict.table, conflict.row, column, id])
            }
            for conflictID in closes {
                try write(db, ShelterSchema.conflicts, conflictID, [
                    "status": .text(Conflict.Status.resolved.rawValue),
                    "resolved_by": .text(author),
                    "resolved_at": .text(Timestamp.format(configuration.now())),
                ], author: author)
            }
        }
    }

    /// The same woman admitted twice: her first stay is kept; the other ends as `merged` into it —
    /// no room, no day of billing, no notification of its own (its pending ones are void) — and
    /// what was recorded under it moves across: her children (to the kept stay's resident), the plan
    /// goals, offers, decisions and complaints (to the kept stay), her notes (added to the kept
    /// record's), her phone and language where the kept record has none. Personal cells that move
    /// are encrypted again under the kept resident's key.
    func mergeStays(_ db: Database, keep kept: String, merge merged: String, author: String) throws {
        let keptStay = try requireStay(db, kept), mergedStay = try requireStay(db, merged)
        guard mergedStay.status != .merged, mergedStay.status != .discharged else {
            throw ReplicaError(DomainError(.invalidTransition, t("merge.ended", ("stay", merged.prefix(8)), ("status", t("stayStatus.\(mergedStay.status.rawValue)")))))
        }
        guard keptStay.status == .active || keptStay.status == .awaitingRoom else {
            throw ReplicaError(DomainError(.invalidTransition, t("merge.keptEnded", ("stay", kept.prefix(8)), ("status", t("stayStatus.\(keptStay.status.rawValue)")))))
        }
        let keptResident = keptStay.resident, otherResident = mergedStay.resident
        for resident in [keptResident, otherResident] where try Erasure.isErased(db, resident) {
            throw ReplicaError(DomainError(.invalidTransition, t("merge.erased", ("resident", resident.prefix(8)))))
        }
        // The server compared blind indexes; the session compares the numbers themselves.
        let numbers = try [keptResident, otherResident].map { resident -> String? in
            let stored = try String.fetchOne(db, sql: "SELECT cpr FROM residents WHERE id = ?", arguments: [resident])
            return plain(db, stored, table: ShelterSchema.residents.name, row: resident, column: "cpr").map { $0.filter(\.isNumber) }
        }
        guard let number = numbers[0], !number.isEmpty, numbers[1] == number else {
            throw ReplicaError(DomainError(.invalidTransition, t("merge.differentCPR")))
        }
        /// A row's personal cells as the session reads them (to be encrypted again by `write`).
        func plainCells(_ table: SyncSchema.Table, _ id: String) throws -> [String: SyncValue] {
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM \(table.name.quotedDatabaseIdentifier) WHERE id = ?", arguments: [id]) else { return [:] }
            var values: [String: SyncValue] = [:]
            for column in table.personalColumns {
                guard let stored = row[column] as String?, !stored.isEmpty else { continue }
                guard let text = plain(db, stored, table: table.name, row: id, column: column) else {
                    throw ReplicaError(.notLoggedIn, t("err.ReplicaConflicts.84", ("p1", column), ("p2", table.name), ("p3", id.prefix(8))))
                }
                values[column] = .text(text)
            }
            return values
        }
        if otherResident != keptResident {
            for child in try String.fetchAll(db, sql: "SELECT id FROM children WHERE resident = ? ORDER BY id", arguments: [otherResident]) {
                try write(db, ShelterSchema.children, child, try plainCells(ShelterSchema.children, child).merging(["resident": .text(keptResident)]) { $1 }, author: author)
            }
            let keptRecord = try plainCells(ShelterSchema.residents, keptResident), other = try plainCells(ShelterSchema.residents, otherResident)
            var update: [String: SyncValue] = [:]
            if let notes = other["notes"]?.textValue, !notes.isEmpty, notes != keptRecord["notes"]?.textValue {
                update["notes"] = .text([keptRecord["notes"]?.textValue, notes].compactMap { $0 }.joined(separator: "\n"))
            }
            if keptRecord["phone"] == nil, let phone = other["phone"] { update["phone"] = phone }
            let plainOther = try Row.fetchOne(db, sql: "SELECT language FROM residents WHERE id = ?", arguments: [otherResident])
            let keptLanguage = try String.fetchOne(db, sql: "SELECT language FROM residents WHERE id = ?", arguments: [keptResident])
            if keptLanguage == nil, let language = plainOther?["language"] as String? { update["language"] = .text(language) }
            if !update.isEmpty { try write(db, ShelterSchema.residents, keptResident, update, author: author) }
        }
        for table in ShelterSchema.schema.tables where table.column(named: "stay") != nil {
            for row in try String.fetchAll(db, sql: "SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE stay = ? ORDER BY id", arguments: [merged]) {
                guard table.name != ShelterSchema.notifications.name else { continue }  // void with the merged stay
                try write(db, table, row, try plainCells(table, row).merging(["stay": .text(kept)]) { $1 }, author: author)
            }
        }
        try write(db, ShelterSchema.stays, merged, [
            "status": .text(Stay.Status.merged.rawValue), "room": .null, "merged_into": .text(kept),
        ], author: author)
    }

    /// A value typed by staff for a column, checked by the same rules as `resident set`.
    static func parse(_ text: String, for column: SyncSchema.Column, in table: SyncSchema.Table, row: String, db: Database) throws -> SyncValue {
        if table.name == ShelterSchema.residents.name, let field = ResidentField(rawValue: column.name) {
            let anonymous = try Bool.fetchOne(db, sql: "SELECT anonymous FROM residents WHERE id = ?", arguments: [row]) ?? false
            return try field.value(from: text, anonymous: anonymous, today: Timestamp.civilDate(of: Date()))
        }
        switch column.type {
        case .integer:
            guard let number = Int64(text) else { throw ReplicaError(.invalidArgument, t("err.ReplicaConflicts.85", ("p1", column.name), ("p2", text))) }
            return .integer(number)
        case .real:
            guard let number = Double(text) else { throw ReplicaError(.invalidArgument, t("err.ReplicaConflicts.86", ("p1", column.name), ("p2", text))) }
            return .real(number)
        case .text:
            return text.isEmpty ? .null : .text(text)
        }
    }
}
