import Foundation
import GRDB
import ShelterDomain
import SyncCore

extension Replica {
    // MARK: Reads for staff

    /// The occupancy board: every room, free, occupied or out of service.
    public func roomBoard() throws -> RoomBoard {
        try read { db in
            let rooms = try rooms(db)
            let active = try stays(db, activeOnly: true)
            let summaries = try Dictionary(stays(db, includeDischarged: false).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            var entries: [RoomBoard.Entry] = []
            for room in rooms {
                if let stay = active.first(where: { $0.room == room.number }) {
                    let summary = summaries[stay.id]
                    entries.append(.init(number: room.number, status: .occupied, stay: stay.id,
                                         resident: hasSession ? summary?.display : nil, children: summary?.children ?? 0))
                } else {
                    entries.append(.init(number: room.number, status: room.inService ? .free : .outOfService,
                                         stay: nil, resident: nil, children: 0))
                }
            }
            return RoomBoard(capacity: rooms.filter(\.inService).count,
                             occupied: entries.filter { $0.status == .occupied }.count, rooms: entries)
        }
    }

    /// Current stays (awaiting a room or active), with `includeDischarged` also the ended ones;
    /// oldest admission first.
    public func stays(includeDischarged: Bool = false) throws -> [StaySummary] {
        try read { db in try stays(db, includeDischarged: includeDischarged) }
    }

    /// A resident's record with her children and stays. `id` is an id or a unique prefix.
    public func resident(_ id: String) throws -> ResidentRecord {
        try read { db in
            let id = try resolve(db, id, in: ShelterSchema.residents, kind: "resident")
            let row = try Row.fetchOne(db, sql: "SELECT * FROM residents WHERE id = ?", arguments: [id])!
            let residents = ShelterSchema.residents, childTable = ShelterSchema.children
            let children = try Row.fetchAll(db, sql: "SELECT * FROM children WHERE resident = ? ORDER BY id", arguments: [id]).map {
                ResidentRecord.Child(id: $0["id"], name: plain(db, $0, "name", table: childTable), cpr: plain(db, $0, "cpr", table: childTable), alias: $0["alias"])
            }
            return ResidentRecord(
                id: id, anonymous: row["anonymous"], name: plain(db, row, "name", table: residents), cpr: plain(db, row, "cpr", table: residents),
                alias: row["alias"], municipality: row["municipality"], documented: row["documented"], phone: plain(db, row, "phone", table: residents),
                language: row["language"], interpreter: row["interpreter"], notes: plain(db, row, "notes", table: residents),
                children: children,
                stays: try stays(db, includeDischarged: true).filter { $0.resident == id },
                erasure: try erasure(db, of: id))
        }
    }

    public func status() throws -> ReplicaStatus {
        try read { db in
            let state = try store.state(db)
            var failure: ReplicaStatus.SyncFailure?
            if let code = state.lastErrorCode, let at = state.lastErrorAt {
                failure = .init(code: code, message: state.lastError ?? code, at: at)
            }
            return ReplicaStatus(replica: state.replicaID.description, unsynced: try store.outboxCount(db),
                                 lastSync: state.lastSyncAt, server: state.server, schemaVersion: ShelterSchema.version,
                                 rejected: try store.rejectedCount(db), lastError: failure, keyRotationDue: try rotationDue(db))
        }
    }

    /// The change log, newest first; for one row when `id` (an id or unique prefix) is given.
    /// Values of personal columns are left out unless `showPersonal`.
    public func history(of id: String? = nil, limit: Int = .max, showPersonal: Bool = false) throws -> [HistoryEntry] {
        try read { db in
            let rows = try id.map { [try resolveAny(db, $0)] }
            return try store.log(db, rows: rows, limit: limit).map { logged in
                let table = ShelterSchema.schema.table(named: logged.change.table)
                let erased = !logged.change.erased.isEmpty
                let erasedColumns = Set(logged.change.erased.keys)
                let columns = logged.change.values.sorted { $0.key < $1.key }.map { name, value in
                    let personal = table?.column(named: name)?.personal ?? true
                    if erasedColumns.contains(name) {
                        return HistoryEntry.Column(name: name, value: Self.erasedMark, personal: personal)
                    }
                    let shown: String? = (personal && !showPersonal) || value.isNull ? nil
                        : personal ? plain(db, value.description, table: logged.change.table, row: logged.change.rowID, column: name) ?? "(locked)"
                        : value.description
                    return HistoryEntry.Column(name: name, value: shown, personal: personal)
                }
                return HistoryEntry(
                    sequence: logged.sequence,
                    at: Timestamp.format(Date(timeIntervalSince1970: Double(logged.change.hlc.milliseconds) / 1000)),
                    author: logged.change.author, replica: logged.change.dot.replica.description,
                    counter: logged.change.dot.counter, table: logged.change.table, row: logged.change.rowID,
                    columns: columns, state: "\(logged.state)", rejection: logged.rejection, erased: erased)
            }
        }
    }

    /// Where this replica's local history begins when it took the server's snapshot instead of the
    /// whole log (its first pull): the log position and when the server read it; nil when its log
    /// holds everything it pulled.
    public func historyBegins() throws -> (position: Int64, at: String)? {
        try read { db in
            try store.snapshot(db).map { ($0.seal.position, Timestamp.format(Date(timeIntervalSince1970: Double($0.seal.takenAt) / 1000))) }
        }
    }

    /// What `history` shows for a value that was erased.
    public static let erasedMark = "(erased)"
    /// A competing value of a personal cell this session cannot open (or shown with no session).
    public static let lockedMark = "(locked)"

    /// A stay shown with no name to show (neither a name nor an alias).
    public static let noNameMark = "(no name)"

    /// A record kind in the current language's word.
    static func kindWord(_ kind: String) -> String { Catalogue.word("kind.\(kind)", else: kind) }

    /// The full id of a stay from an id or a unique prefix of at least 6 characters.

    public func resolveStay(_ prefix: String) throws -> String {
        try read { db in try resolve(db, prefix, in: ShelterSchema.stays, kind: "stay") }
    }

    // MARK: Helpers inside a transaction

    func rooms(_ db: Database) throws -> [Room] {
        try Row.fetchAll(db, sql: "SELECT number, in_service FROM rooms ORDER BY number").map {
            Room(number: $0["number"], inService: $0["in_service"])
        }
    }

    func stays(_ db: Database, activeOnly: Bool) throws -> [Stay] {
        let condition = activeOnly ? "WHERE status = 'active'" : ""
        return try Row.fetchAll(db, sql: "SELECT id, resident, admitted_at, room, status, discharged_at FROM stays \(condition)").map(Self.stay)
    }

    static func stay(_ row: Row) -> Stay {
        Stay(id: row["id"], resident: row["resident"], admittedAt: row["admitted_at"], room: row["room"],
             status: Stay.Status(rawValue: row["status"]) ?? .awaitingRoom, dischargedAt: row["discharged_at"])
    }

    func stays(_ db: Database, includeDischarged: Bool) throws -> [StaySummary] {
        let condition = includeDischarged ? "" : "WHERE s.status IN ('active', 'awaitingRoom')"
        return try Row.fetchAll(db, sql: """
            SELECT s.id, s.resident, s.admitted_at, s.room, s.status, s.discharged_at,
                   r.anonymous, r.name, r.alias,
                   (SELECT COUNT(*) FROM children c WHERE c.resident = s.resident) AS children,
                   EXISTS (SELECT 1 FROM erasures e WHERE e.id = s.resident) AS erased
            FROM stays s LEFT JOIN residents r ON r.id = s.resident
            \(condition)
            ORDER BY s.admitted_at, s.id
            """).map { row in
            let anonymous: Bool = row["anonymous"] ?? false
            let name: String? = plain(db, row["name"], table: ShelterSchema.residents.name, row: row["resident"] ?? "", column: "name")
            let alias: String? = row["alias"]
            return StaySummary(
                id: row["id"], resident: row["resident"],
                display: row["erased"] ? "(erased)" : (anonymous ? alias : name ?? alias) ?? Self.noNameMark,
                anonymous: anonymous, room: row["room"],
                status: Stay.Status(rawValue: row["status"]) ?? .awaitingRoom,
                admittedAt: row["admitted_at"], dischargedAt: row["discharged_at"], children: row["children"])
        }
    }

    func requireStay(_ db: Database, _ prefix: String) throws -> Stay {
        let id = try resolve(db, prefix, in: ShelterSchema.stays, kind: "stay")
        let row = try Row.fetchOne(db, sql: "SELECT id, resident, admitted_at, room, status, discharged_at FROM stays WHERE id = ?", arguments: [id])!
        return Self.stay(row)
    }

    /// Minimum length of an id prefix, as `git` asks for abbreviated hashes.
    public static let minimumPrefix = 6

    /// Resolves an id or unique prefix within one table.
    func resolve(_ db: Database, _ prefix: String, in table: SyncSchema.Table, kind: String) throws -> String {
        let matches = try matching(db, prefix, in: table, kind: kind)
        switch matches.count {
        case 0: throw ReplicaError(.unknownID, t("id.none", ("kind", Self.kindWord(kind)), ("prefix", prefix.lowercased())))
        case 1: return matches[0]
        default:
            throw ReplicaError(.ambiguousID, t("id.ambiguous", ("kind", Self.kindWord(kind)), ("prefix", prefix.lowercased()), ("matches", matches.map { String($0.prefix(12)) }.joined(separator: ", "))))
        }
    }

    private func matching(_ db: Database, _ prefix: String, in table: SyncSchema.Table, kind: String) throws -> [String] {
        let prefix = prefix.lowercased()
        guard prefix.count >= Self.minimumPrefix else {
            throw ReplicaError(.invalidArgument, t("id.short", ("kind", Self.kindWord(kind)), ("prefix", prefix), ("minimum", Self.minimumPrefix)))
        }
        guard prefix.allSatisfy({ $0.isHexDigit }) else {
            throw ReplicaError(.unknownID, t("id.notHex", ("kind", Self.kindWord(kind)), ("prefix", prefix)))
        }
        // Ids are lower-case hex, so every id with this prefix sorts in [prefix, prefix + "~").
        return try String.fetchAll(db, sql: "SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE id >= ? AND id < ? ORDER BY id LIMIT 5",
                                   arguments: [prefix, prefix + "~"])
    }

    /// Resolves an id or unique prefix in any table (for `history`).
    func resolveAny(_ db: Database, _ prefix: String) throws -> String {
        var found: [String] = []
        for table in ShelterSchema.schema.tables where table.name != "rooms" {
            // The same id in two tables (a resident and her erasure) is one record's history.
            for id in try matching(db, prefix, in: table, kind: "record") where !found.contains(id) { found.append(id) }
        }
        switch found.count {
        case 0: throw ReplicaError(.unknownID, t("err.ReplicaQueries.98", ("p1", prefix.lowercased())))
        case 1: return found[0]
        default: throw ReplicaError(.ambiguousID, t("err.ReplicaQueries.99", ("p1", prefix.lowercased()), ("p2", found.map { String($0.prefix(12)) }.joined(separator: ", "))))
        }
    }
}
