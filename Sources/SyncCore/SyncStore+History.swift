import Foundation
import GRDB

/// A position of the server's log with the chain hash there.
public struct Checkpoint: Hashable, Sendable {
    public var position: Int64
    public var hash: LogHash

    public init(position: Int64, hash: LogHash) {
        self.position = position
        self.hash = hash
    }
}

/// Copies and restores (DESIGN §3): the chain of the server's log, the checkpoints a workstation
/// keeps of it, what the server holds from each replica, the changes a workstation sends again to a
/// server that lost them, and changes of a forked replica re-issued under a new identity.
extension SyncStore {
    // MARK: The chain (server)

    /// The chain hash at `position`: `genesis` at 0, nil beyond the head or where no chain is kept.
    public func chain(_ db: Database, at position: Int64) throws -> LogHash? {
        if position == 0 { return .genesis }
        guard position > 0 else { return nil }
        let select = try RawStatement(db, "SELECT chain FROM sync_log WHERE seq = ?")
        select.bind(1, position)
        return try select.oneRow { $0.isNull(0) ? nil : LogHash(bytes: $0.blob(0)) } ?? nil
    }

    /// The last of `checkpoints` (newest first) at which this log's chain is the same: the position
    /// up to which both logs hold the same history. 0 (genesis) when none is.
    public func lastCommonPosition(_ db: Database, of checkpoints: [Checkpoint]) throws -> Int64 {
        for checkpoint in checkpoints.sorted(by: { $0.position > $1.position }) where checkpoint.position > 0 {
            if try chain(db, at: checkpoint.position) == checkpoint.hash { return checkpoint.position }
        }
        return 0
    }

    /// Computes the chain of every entry that has none, in log order (a server store made before
    /// the chain existed). Call in a migration.
    public func extendChain(_ db: Database) throws {
        var tip = LogHash.genesis
        var after: Int64 = 0
        while true {
            let page = try loggedChanges(db, where: "seq > ?", arguments: [.integer(after)], order: "seq ASC", limit: 1000)
            guard let last = page.last else { return }
            for entry in page {
                if let chain = entry.chain {
                    tip = chain
                } else {
                    tip = tip.chained(with: LogHash.of(entry.change))
                    try db.execute(sql: "UPDATE sync_log SET chain = ? WHERE seq = ?", arguments: [Data(tip.bytes), entry.sequence])
                }
            }
            after = last.sequence
        }
    }

    // MARK: Cursor and checkpoints (workstation)

    /// Moves the pull cursor to `cursor`, where the server's chain is `hash`, and keeps it as a
    /// checkpoint. Checkpoints thin out with distance: the last few are kept, and an older one is
    /// dropped only while the next older one is no farther from the kept one before it than that
    /// one is from the cursor. So for any earlier position p there stays a checkpoint within
    /// max(the gap between two syncs, cursor − p) below it — a server that went back to p costs at
    /// most about twice that much pulling again — and a replica keeps only about two per doubling
    /// of its history (tens, never thousands).
    public func setCursor(_ db: Database, _ cursor: Int64, hash: LogHash?) throws {
        try db.execute(sql: "UPDATE sync_state SET cursor = ?, cursor_hash = ? WHERE id = 1",
                       arguments: [cursor, hash.map { Data($0.bytes) }])
        guard let hash, cursor > 0 else { return }
        try db.execute(sql: "INSERT OR REPLACE INTO sync_checkpoints (position, hash) VALUES (?, ?)", arguments: [cursor, Data(hash.bytes)])
        let positions = try Int64.fetchAll(db.cachedStatement(sql: "SELECT position FROM sync_checkpoints ORDER BY position DESC"))
        guard positions.count > Self.recentCheckpoints else { return }
        var kept = positions[Self.recentCheckpoints - 1]
        for index in Self.recentCheckpoints..<positions.count - 1 {
            let (candidate, older) = (positions[index], positions[index + 1])
            if kept - older <= cursor - kept {
                try db.execute(sql: "DELETE FROM sync_checkpoints WHERE position = ?", arguments: [candidate])
            } else {
                kept = candidate
            }
        }
    }

    /// How many of the newest checkpoints are always kept.
    static let recentCheckpoints = 4

    /// The checkpoints this replica keeps, newest first: the current cursor's first when known.
    public func checkpoints(_ db: Database, limit: Int = 64) throws -> [Checkpoint] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT position, hash FROM sync_checkpoints ORDER BY position DESC LIMIT ?"), arguments: [limit])
            .compactMap { row in LogHash(bytes: row["hash"] as Data).map { Checkpoint(position: row["position"], hash: $0) } }
    }

    /// The server's history diverged after `position`: the cursor goes back there (pulling again is
    /// safe, merges are idempotent by dot) and the checkpoints of the history that is gone are dropped.
    public func rewindCursor(_ db: Database, to position: Int64) throws {
        let hash: LogHash? = position == 0 ? .genesis : try Data.fetchOne(
            db, sql: "SELECT hash FROM sync_checkpoints WHERE position = ?", arguments: [position]).flatMap { LogHash(bytes: $0) }
        try db.execute(sql: "DELETE FROM sync_checkpoints WHERE position > ?", arguments: [position])
        try db.execute(sql: "UPDATE sync_state SET cursor = ?, cursor_hash = ? WHERE id = 1",
                       arguments: [position, hash.map { Data($0.bytes) }])
    }

    // MARK: What a log holds

    /// The logged change with this dot, if any.
    public func logEntry(_ db: Database, of dot: Dot) throws -> LoggedChange? {
        guard let peer = try knownPeerIndex(db, dot.replica) else { return nil }
        return try loggedChanges(db, where: "peer = ? AND counter = ?", arguments: [.integer(peer), .integer(Int64(dot.counter))],
                                 order: "seq", limit: 1).first
    }

    /// Where the change with this dot sits in the log, who wrote it and its stamp, without decoding it.
    public func logPosition(_ db: Database, of dot: Dot) throws -> (sequence: Int64, author: String, hlc: HLC)? {
        guard let peer = try knownPeerIndex(db, dot.replica) else { return nil }
        let select = try RawStatement(db, "SELECT seq, author, hlc FROM sync_log WHERE peer = ? AND counter = ?")
        select.bind(1, peer)
        select.bind(2, Int64(dot.counter))
        return try select.oneRow { ($0.int64(0), $0.text(1), HLC(rawValue: UInt64(max(0, $0.int64(2))))) }
    }

    /// From now on this store writes under `replicaID`, with counters from 1 (a server's new run).
    public func beginWriter(_ db: Database, replicaID: ReplicaID) throws {
        try db.execute(sql: "UPDATE sync_state SET replica_id = ?, counter = 0, sealed = 0 WHERE id = 1", arguments: [replicaID.description])
    }

    /// The held-back change with this dot, if any.
    public func heldBack(_ db: Database, of dot: Dot) throws -> CellChange? {
        guard let peer = try knownPeerIndex(db, dot.replica),
              let data = try Data.fetchOne(db, sql: "SELECT change FROM sync_pending WHERE peer = ? AND counter = ?",
                                           arguments: [peer, Int64(dot.counter)]) else { return nil }
        return try decodeChange(data)
    }

    /// The highest counter of `replica` whose change this log holds (merged or held back); 0 if none.
    public func highestCounter(_ db: Database, of replica: ReplicaID) throws -> UInt64 {
        guard let peer = try knownPeerIndex(db, replica) else { return 0 }
        let logged = try Int64.fetchOne(db, sql: "SELECT MAX(counter) FROM sync_log WHERE peer = ?", arguments: [peer]) ?? 0
        let held = try Int64.fetchOne(db, sql: "SELECT MAX(counter) FROM sync_pending WHERE peer = ?", arguments: [peer]) ?? 0
        return UInt64(max(0, logged, held))
    }

    /// The highest counter of `replica` whose change sits in this log at a position up to `position`.
    /// Walks that replica's entries from its newest: for the rare session that heals a restored server.
    public func highestCounter(_ db: Database, of replica: ReplicaID, upTo position: Int64) throws -> UInt64 {
        guard let peer = try knownPeerIndex(db, replica) else { return 0 }
        return UInt64(max(0, try Int64.fetchOne(db, sql: "SELECT MAX(counter) FROM sync_log WHERE peer = ? AND seq <= ?",
                                                 arguments: [peer, position]) ?? 0))
    }

    /// The highest counter of each replica whose changes this log holds (merged or held back).
    /// Reads the whole log's index: for the rare session that heals a restored server.
    public func holdings(_ db: Database) throws -> VersionVector {
        var holdings: [ReplicaID: UInt64] = [:]
        for sql in ["SELECT p.replica_id, MAX(l.counter) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer GROUP BY l.peer",
                    "SELECT p.replica_id, MAX(l.counter) FROM sync_pending l JOIN sync_peers p ON p.idx = l.peer GROUP BY l.peer"] {
            for row in try Row.fetchAll(db, sql: sql) {
                guard let id = ReplicaID(row[0] as String) else { continue }
                holdings[id] = max(holdings[id] ?? 0, UInt64(max(0, row[1] as Int64)))
            }
        }
        return VersionVector(holdings)
    }

    // MARK: Healing a server that lost changes (workstation)

    /// The next changes, in this log's order after position `sequence`, that a server which went
    /// back in time may lack and this replica can give it back: its own changes above `ownCommon`
    /// (the highest of them in the history both share) that a server had processed — acknowledged
    /// or refused; the server compares each with what it holds now — and, when the server sent its
    /// `holdings`, other replicas' changes beyond what it holds of each. Unsynced changes go by the
    /// ordinary push.
    public func recoveryBatch(_ db: Database, ownCommon: UInt64, holdings: VersionVector?,
                              after sequence: Int64, limit: Int) throws -> [LoggedChange] {
        let own = try peerIndex(db, try state(db).replicaID)
        // From the start of the transaction the first lacking change belongs to: the server checks
        // each transaction whole (and skips the changes of it that it holds).
        var clauses = ["(peer = ? AND counter > ? AND state IN (1, 2))"]
        var arguments: [SyncValue] = [.integer(own), .integer(Int64(try transactionStart(db, peer: own, after: ownCommon)))]
        if let holdings {
            for row in try Row.fetchAll(db, sql: "SELECT idx, replica_id FROM sync_peers WHERE idx != ?", arguments: [own]) {
                guard let id = ReplicaID(row["replica_id"] as String) else { continue }
                clauses.append("(peer = ? AND counter > ?)")
                arguments += [.integer(row["idx"]), .integer(Int64(try transactionStart(db, peer: row["idx"], after: holdings[id])))]
            }
        }
        return try loggedChanges(db, where: "seq > ? AND (\(clauses.joined(separator: " OR ")))",
                                 arguments: [.integer(sequence)] + arguments, order: "seq ASC", limit: limit)
    }

    /// `counter`, moved back to just before the start of the transaction that holds `counter + 1`.
    func transactionStart(_ db: Database, peer: Int64, after counter: UInt64) throws -> UInt64 {
        guard let data = try Data.fetchOne(db, sql: "SELECT seal FROM sync_log WHERE peer = ? AND counter > ? AND seal IS NOT NULL ORDER BY counter LIMIT 1",
                                           arguments: [peer, Int64(counter)]) else { return counter }
        var reader = BinaryReader(Array(data))
        guard let seal = try? ChangeCodec.decodeSeal(from: &reader) else { return counter }
        return min(counter, seal.first &- 1)
    }

    /// After the server took a recovery batch: this replica's own changes in it are processed
    /// again — acknowledged, or refused with the server's reason.
    public func acknowledgeRecovered(_ db: Database, own counters: [UInt64], rejected: [(counter: UInt64, reason: String)]) throws {
        let own = try peerIndex(db, try state(db).replicaID)
        let refused = Dictionary(rejected.map { ($0.counter, $0.reason) }, uniquingKeysWith: { a, _ in a })
        for counter in counters {
            if let reason = refused[counter] {
                try db.execute(sql: "UPDATE sync_log SET state = ?, rejection = ? WHERE peer = ? AND counter = ?",
                               arguments: [LoggedChange.State.rejected.rawValue, reason, own, Int64(counter)])
            } else {
                try db.execute(sql: "UPDATE sync_log SET state = ?, rejection = NULL WHERE peer = ? AND counter = ? AND state != 0",
                               arguments: [LoggedChange.State.acknowledged.rawValue, own, Int64(counter)])
            }
        }
    }

    // MARK: Rescue (workstation)

    /// The counter under which this replica re-issued `change` of another replica, if it did.
    public func reissuedCounter(_ db: Database, of change: CellChange) throws -> UInt64? {
        try Int64.fetchOne(db, sql: "SELECT reissued FROM sync_rescued WHERE replica = ? AND counter = ? AND digest = ?",
                           arguments: [change.dot.replica.description, Int64(change.dot.counter), Data(LogHash.of(change).bytes)]).map { UInt64($0) }
    }

    /// Every change of `replica` re-issued here: its counter, digest, and the counter it was re-issued under.
    public func reissued(_ db: Database, from replica: ReplicaID) throws -> [(counter: UInt64, digest: LogHash, reissued: UInt64)] {
        try Row.fetchAll(db, sql: "SELECT counter, digest, reissued FROM sync_rescued WHERE replica = ?", arguments: [replica.description]).compactMap { row in
            LogHash(bytes: row["digest"] as Data).map { (UInt64(row["counter"] as Int64), $0, UInt64(row["reissued"] as Int64)) }
        }
    }

    /// Re-issues a change of another replica as a new change of this one: the same table, row,
    /// values, author and clock stamp, a new dot of this replica, and `context` (what the original
    /// writer had seen, limited to what this replica holds). Merged here like a change received —
    /// a concurrent write keeps its place and is reported — and logged as unsynced, so the next
    /// sync sends it and the server records any conflict. Call inside a transaction.
    @discardableResult
    /// `values`: what to write instead of the original's values (some of them cleared since).
    public func reissue(_ db: Database, _ original: CellChange, values: [String: SyncValue]? = nil, context: VersionVector, author: String,
                        wallMilliseconds: UInt64) throws -> CellChange {
        let table = try self.table(original.table)
        try checkColumns(original.values.keys, of: table)
        let current = try state(db)
        let counter = current.counter + 1
        let change = CellChange(table: original.table, rowID: original.rowID, values: values ?? original.values,
                                dot: Dot(replica: current.replicaID, counter: counter), hlc: original.hlc,
                                author: author, context: context)
        let meta = try rowMeta(db, table: table, rowID: change.rowID)
        // The rules of the rescuing transaction read the row as it was before it, as for a write.
        if journal.isRecording, !journal.hasBefore(table: table.name, row: change.rowID) {
            journal.keepBefore(table: table.name, row: change.rowID, meta == nil ? nil : try currentRow(db, table: table.name, id: change.rowID))
        }
        let contested = change.values.keys.filter { meta?.cells[$0] != nil }
        let values = contested.isEmpty ? [:] : try self.values(db, table: table, rowID: change.rowID, columns: contested)
        guard case .merged(let apply, let newMeta, _) = Merge.merge(change, into: meta, currentValues: values, keepBoth: table.keepBoth) else {
            throw SyncError(.corruptData, "a re-issued change to \(change.table) \(change.rowID) names writes this replica does not hold")
        }
        // A cell it takes from a write this log does not hold (a snapshot brought it) is kept aside:
        // if a restamp moves this change's stamp back, that write may win the cell again.
        for (column, old) in meta?.cells ?? [:] where newMeta.cells[column] != old {
            guard try logEntry(db, of: old.dot) == nil else { continue }
            var value = BinaryWriter()
            value.write(value: values[column] ?? .null)
            try db.execute(sql: "INSERT OR IGNORE INTO sync_displaced (tbl, row, col, replica, counter, hlc, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [table.code, change.rowID, column, old.dot.replica.description, Int64(old.dot.counter),
                                       Int64(old.hlc.rawValue), Data(value.bytes)])
        }
        try applyValues(db, table: table, rowID: change.rowID, values: apply)
        try saveMeta(db, table: table, rowID: change.rowID, meta: newMeta)
        _ = try appendLog(db, change: change, table: table, state: .unsynced)
        var clock = try loadClock(db)
        clock.receive(original.hlc, wallMilliseconds: wallMilliseconds)
        try db.execute(sql: "UPDATE sync_state SET counter = ?, hlc = ? WHERE id = 1", arguments: [Int64(counter), Int64(clock.last.rawValue)])
        try db.execute(sql: "INSERT INTO sync_rescued (replica, counter, digest, reissued) VALUES (?, ?, ?, ?)",
                       arguments: [original.dot.replica.description, Int64(original.dot.counter), Data(LogHash.of(original).bytes), Int64(counter)])
        journal.append(change)
        return change
    }

    /// The writes a re-issued change displaced from `rowID`'s cells that this log does not hold, one
    /// pseudo-change per cell (its value, dot and stamp; no context).
    func displaced(_ db: Database, table: SyncSchema.Table, rowID: String) throws -> [CellChange] {
        try Row.fetchAll(db, sql: "SELECT col, replica, counter, hlc, value FROM sync_displaced WHERE tbl = ? AND row = ?",
                         arguments: [table.code, rowID]).compactMap { row in
            guard let replica = ReplicaID(row["replica"] as String) else { return nil }
            var reader = BinaryReader([UInt8](row["value"] as Data))
            let value = try corrupt("a displaced value") { try reader.readValue() }
            return CellChange(table: table.name, rowID: rowID, values: [row["col"]: value],
                              dot: Dot(replica: replica, counter: UInt64(row["counter"] as Int64)),
                              hlc: HLC(rawValue: UInt64(row["hlc"] as Int64)), author: "", context: VersionVector())
        }
    }
}
