import Foundation
import GRDB
import GRDBSQLite
import Synchronization

extension SyncValue: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let v): v.databaseValue
        case .real(let v): v.databaseValue
        case .text(let v): v.databaseValue
        }
    }

    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> SyncValue? {
        switch dbValue.storage {
        case .null: .null
        case .int64(let v): .integer(v)
        case .double(let v): .real(v)
        case .string(let v): .text(v)
        case .blob: nil
        }
    }
}

/// The sync layer's persistent state in one replica file.
public struct SyncState: Hashable, Sendable {
    public var replicaID: ReplicaID
    /// The counter of this replica's last write.
    public var counter: UInt64
    /// The last HLC stamp issued or received.
    public var clock: HLC
    public var createdAt: String
    /// `HOST:PORT` of the sync server, nil for a standalone replica.
    public var server: String?
    /// How far this replica has pulled the server's log.
    public var cursor: Int64
    /// The server log's chain hash at `cursor`, as the server sent it; nil when not known (a
    /// replica made before 0.5, or one that never pulled).
    public var cursorHash: LogHash?
    /// This replica's highest counter the server has processed (merged or refused), as far as
    /// this replica knows: a server that reports less has lost changes (restored from a backup).
    public var acknowledged: UInt64
    public var lastSyncAt: String?
    /// The server's refusal of this replica as a copy (`replicaForked`, `replicaRewound`) or of its
    /// certificate (`revoked`), kept until a sync succeeds (a later failure to reach the server does
    /// not hide it), and when.
    public var refusedCode: String?
    public var refusedAt: String?
    /// This workstation's wall clock against the server's at the last hello (ms, positive: ahead).
    public var clockSkewMs: Int64?
    /// The most the server lets a clock differ from its own (ms), as it said at the last sync.
    public var maxClockSkewMs: UInt64 = HybridLogicalClock.defaultMaximumAheadMilliseconds
    /// The last sync that failed: a code, a message without personal data, and when.
    public var lastErrorCode: String?
    public var lastError: String?
    public var lastErrorAt: String?
    /// The counter up to which this replica's own changes are sealed (signed).
    public var sealed: UInt64 = 0
    /// The server's public signing key (base64), as its welcome said.
    public var serverSigningKey: String?
}

/// A workstation's TLS identity, kept inside its replica file (mode 0600).
public struct StoredIdentity: Hashable, Sendable {
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var caPEM: String

    public init(certificatePEM: String, privateKeyPEM: String, caPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.caPEM = caPEM
    }
}

/// One entry of a replica's change log.
public struct LoggedChange: Hashable, Sendable {
    /// Whether a local write has reached the server.
    public enum State: Int, Sendable {
        /// Written here, not yet acknowledged by the server: part of the outbox.
        case unsynced = 0
        /// Written here and merged by the server.
        case acknowledged = 1
        /// Written here and refused by the server; kept, never silently dropped.
        case rejected = 2
        /// Written elsewhere and merged here.
        case received = 3
    }

    /// Position in this replica's log (on the server: the cursor).
    public var sequence: Int64
    public var change: CellChange
    public var state: State
    public var rejection: String?
    /// The log's hash chain at this entry: kept by the server's log only (nil elsewhere).
    public var chain: LogHash?

    public init(sequence: Int64, change: CellChange, state: State, rejection: String? = nil, chain: LogHash? = nil) {
        self.sequence = sequence
        self.change = change
        self.state = state
        self.rejection = rejection
        self.chain = chain
    }
}

/// What merging a change from another replica did.
public enum MergeReport: Hashable, Sendable {
    case duplicate
    /// Held back until the writes in its context arrive; applied automatically then.
    case heldBack
    /// Merged, together with any held-back changes it released (`released`, in the order merged).
    /// `sequence` is its log position.
    case merged(sequence: Int64, concurrent: [ConcurrentWrite], released: [CellChange] = [])
}

/// The sync tables of a replica and the two ways rows change: a local write, and a merge of a write
/// made elsewhere. Both go through `Merge.merge` and write the domain row, its metadata and the log
/// entry in the caller's transaction.
///
/// Sync tables (all prefixed `sync_`):
/// - `sync_state`: one row, the replica id, counter, clock, server and cursor;
/// - `sync_peers`: a small local number for each replica id, so metadata stays compact;
/// - `sync_rows`: per synced row, its version vector and the dot + HLC of each cell;
/// - `sync_log`: every change applied here (the outbox is the local, unsynced part);
/// - `sync_pending`: changes held back until their causal context has arrived;
/// - `sync_checkpoints`: positions of the server's log this replica stood at, with the chain hash
///   there, so it can find the last position it shares with a server that went back in time;
/// - `sync_rescued`: changes of another (forked) replica re-issued here by `rescue`, by dot and
///   digest (two copies of one replica hold different changes under one dot).
///
/// A store made with `chained: true` (the server's) extends the log's hash chain with every entry.
public struct SyncStore: Sendable {
    public let schema: SyncSchema
    /// Whether every log entry carries the log's hash chain (the server's log).
    public let chained: Bool
    /// Peer numbers of this store's database. One `SyncStore` serves one database file.
    let peers = PeerNumbers()
    /// Whether `sync_pending` is known to be empty, so a merge need not look for held-back changes.
    let pending = PendingFlag()
    /// The text of each upsert the merge has needed, by table and column set.
    let upserts = UpsertTexts()
    /// The chain at the log's last entry, known inside one write transaction (`chained` stores).
    let chainTip = ChainTip()
    /// Set when an erasure was written and the WAL still holds what it erased.
    public let erasureCheckpoint = ErasureCheckpoint()
    /// What the current signed transaction has written and the rows as they were before it.
    let journal = TransactionJournal()

    /// Each synced table's `SELECT` of a whole row by id, made once (a rule reads rows by the
    /// thousand; the text was built, and hashed for the statement cache, at every read).
    let selectRow: [String: (sql: String, columns: [String])]

    public init(schema: SyncSchema, chained: Bool = false) {
        self.schema = schema
        self.chained = chained
        var selects: [String: (sql: String, columns: [String])] = [:]
        for table in schema.tables {
            let columns = table.columns.map(\.name)
            selects[table.name] = ("SELECT \(columns.map(\.quotedDatabaseIdentifier).joined(separator: ", ")) FROM \(table.name.quotedDatabaseIdentifier) WHERE id = ?", columns)
        }
        selectRow = selects
    }

    // MARK: Schema

    /// Registers the sync tables and every version of the domain tables, additively.
    public func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("sync-1") { db in
            try db.execute(sql: """
                CREATE TABLE sync_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    replica_id TEXT NOT NULL,
                    counter INTEGER NOT NULL,
                    hlc INTEGER NOT NULL,
                    created_at TEXT NOT NULL,
                    server TEXT,
                    cursor INTEGER NOT NULL DEFAULT 0,
                    last_sync_at TEXT
                );
                CREATE TABLE sync_peers (
                    idx INTEGER PRIMARY KEY,
                    replica_id TEXT NOT NULL UNIQUE
                );
                CREATE TABLE sync_rows (
                    tbl INTEGER NOT NULL,
                    id TEXT NOT NULL,
                    meta BLOB NOT NULL,
                    PRIMARY KEY (tbl, id)
                ) WITHOUT ROWID;
                CREATE TABLE sync_log (
                    seq INTEGER PRIMARY KEY,
                    peer INTEGER NOT NULL,
                    counter INTEGER NOT NULL,
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    hlc INTEGER NOT NULL,
                    author TEXT NOT NULL,
                    context BLOB NOT NULL,
                    vals BLOB NOT NULL,
                    state INTEGER NOT NULL,
                    rejection TEXT,
                    UNIQUE (peer, counter)
                );
                CREATE INDEX sync_log_row ON sync_log (row);
                CREATE INDEX sync_log_outbox ON sync_log (counter) WHERE state = 0;
                CREATE TABLE sync_pending (
                    peer INTEGER NOT NULL,
                    counter INTEGER NOT NULL,
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    change BLOB NOT NULL,
                    PRIMARY KEY (peer, counter)
                ) WITHOUT ROWID;
                CREATE INDEX sync_pending_row ON sync_pending (tbl, row);
                """)
        }
        migrator.registerMigration("sync-2") { db in
            try db.execute(sql: """
                CREATE TABLE sync_identity (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    certificate TEXT NOT NULL,
                    private_key TEXT NOT NULL,
                    ca TEXT NOT NULL
                );
                ALTER TABLE sync_state ADD COLUMN last_error_code TEXT;
                ALTER TABLE sync_state ADD COLUMN last_error TEXT;
                ALTER TABLE sync_state ADD COLUMN last_error_at TEXT;
                """)
        }
        migrator.registerMigration("sync-3") { db in
            try db.execute(sql: """
                ALTER TABLE sync_log ADD COLUMN chain BLOB;
                ALTER TABLE sync_state ADD COLUMN cursor_hash BLOB;
                ALTER TABLE sync_state ADD COLUMN acknowledged INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE sync_state ADD COLUMN refused_code TEXT;
                ALTER TABLE sync_state ADD COLUMN refused_at TEXT;
                ALTER TABLE sync_state ADD COLUMN clock_skew_ms INTEGER;
                ALTER TABLE sync_state ADD COLUMN max_clock_skew_ms INTEGER NOT NULL DEFAULT 300000;
                CREATE TABLE sync_checkpoints (
                    position INTEGER PRIMARY KEY,
                    hash BLOB NOT NULL
                );
                CREATE TABLE sync_rescued (
                    replica TEXT NOT NULL,
                    counter INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    reissued INTEGER NOT NULL,
                    PRIMARY KEY (replica, counter, digest)
                ) WITHOUT ROWID;
                UPDATE sync_state SET acknowledged = COALESCE((
                    SELECT MAX(l.counter) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer
                    WHERE p.replica_id = sync_state.replica_id AND l.state IN (1, 2)), 0);
                """)
        }
        migrator.registerMigration("sync-4") { db in
            // Signed transactions: the seal (signer and signature) on each transaction's last change;
            // `sealed`: the counter up to which this replica's own changes are sealed; the server's
            // public signing key as the server sent it.
            try db.execute(sql: """
                ALTER TABLE sync_log ADD COLUMN seal BLOB;
                ALTER TABLE sync_state ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE sync_state ADD COLUMN server_signing_key TEXT;
                UPDATE sync_state SET sealed = counter;
                """)
        }
        migrator.registerMigration("sync-5") { db in
            // Erasure: an entry whose values were erased keeps the digest it had as written (its
            // signature and the hash chain rest on it); the subjects (residents) erased here, and
            // whether everything of theirs is erased (a local change not yet pushed waits).
            try db.execute(sql: """
                ALTER TABLE sync_log ADD COLUMN erased BLOB;
                CREATE TABLE sync_erasures (
                    subject TEXT PRIMARY KEY,
                    complete INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("sync-6") { db in
            // The server's workstation names by replica id, as its last welcome sent them: local
            // state (never synced), to show who wrote what.
            try db.execute(sql: """
                CREATE TABLE sync_workstations (
                    replica_id TEXT PRIMARY KEY,
                    name TEXT NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("sync-7") { db in
            // The server's signed snapshot this replica's pulled history begins with, when it
            // bootstrapped from one instead of the whole log (`sync_displaced`: a cell a rescue's
            // re-issued change took from a write this log does not hold, which a restamp may have to
            // give back), and the dot and digest of every change
            // the server's log held then (`sync_held`: one row per replica, its counters and digests
            // in one blob — read only by a rescue, written once); the server keeps each change's digest in its
            // log (`digest`, written with the hash chain) so that a snapshot reads them as they are.
            try db.execute(sql: """
                CREATE TABLE sync_snapshot (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    server TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    chain BLOB,
                    rows INTEGER NOT NULL,
                    held INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    holdings BLOB NOT NULL,
                    taken_at INTEGER NOT NULL,
                    signature BLOB NOT NULL
                );
                CREATE TABLE sync_held (
                    peer INTEGER PRIMARY KEY,
                    digests BLOB NOT NULL
                );
                ALTER TABLE sync_log ADD COLUMN digest BLOB;
                CREATE INDEX sync_log_rejected ON sync_log (counter) WHERE state = 2;
                CREATE TABLE sync_displaced (
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    col TEXT NOT NULL,
                    replica TEXT NOT NULL,
                    counter INTEGER NOT NULL,
                    hlc INTEGER NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (tbl, row, col, replica, counter)
                ) WITHOUT ROWID;
                """)
        }
        for version in 1...max(1, schema.version) {
            migrator.registerMigration("domain-\(version)") { db in
                for table in schema.tables {
                    if table.since == version {
                        try db.execute(sql: Self.createTableSQL(table, atVersion: version))
                    } else if table.since < version {
                        for column in table.columns where column.since == version {
                            try db.execute(sql: "ALTER TABLE \(table.name.quotedDatabaseIdentifier) ADD COLUMN \(Self.columnSQL(column))")
                        }
                    }
                }
            }
        }
    }

    static func columnSQL(_ column: SyncSchema.Column) -> String {
        var sql = "\(column.name.quotedDatabaseIdentifier) \(column.type.rawValue)"
        switch column.defaultValue {
        case .null: break
        case .integer(let v): sql += " NOT NULL DEFAULT \(v)"
        case .real(let v): sql += " NOT NULL DEFAULT \(v)"
        case .text(let v): sql += " NOT NULL DEFAULT '\(v.replacingOccurrences(of: "'", with: "''"))'"
        }
        return sql
    }

    /// The table as it was at `version`: later columns come with their own `ALTER TABLE`.
    static func createTableSQL(_ table: SyncSchema.Table, atVersion version: Int) -> String {
        let columns = ["\"id\" TEXT PRIMARY KEY NOT NULL"] + table.columns.filter { $0.since <= version }.map(columnSQL)
        return "CREATE TABLE \(table.name.quotedDatabaseIdentifier) (\(columns.joined(separator: ", ")))"
    }

    /// Whether `db` holds the sync tables at all.
    public static func isReplica(_ db: Database) throws -> Bool {
        try db.tableExists("sync_state")
    }

    // MARK: State

    /// Writes the first state of a new replica.
    public func initialize(_ db: Database, replicaID: ReplicaID, createdAt: String, server: String? = nil) throws {
        try db.execute(
            sql: "INSERT INTO sync_state (id, replica_id, counter, hlc, created_at, server) VALUES (1, ?, 0, 0, ?, ?)",
            arguments: [replicaID.description, createdAt, server])
        _ = try peerIndex(db, replicaID)
    }

    public func state(_ db: Database) throws -> SyncState {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT replica_id, counter, hlc, created_at, server, cursor, last_sync_at, last_error_code, last_error, last_error_at,
                   cursor_hash, acknowledged, refused_code, refused_at, clock_skew_ms, max_clock_skew_ms, sealed, server_signing_key
            FROM sync_state WHERE id = 1
            """)) else {
            throw SyncError(.notAReplica, "the replica has no sync state row")
        }
        let idText: String = row[0]
        guard let id = ReplicaID(idText) else {
            throw SyncError(.corruptData, "the replica's id \(idText) is not a UUID")
        }
        return SyncState(
            replicaID: id,
            counter: UInt64(max(0, row[1] as Int64)),
            clock: HLC(rawValue: UInt64(max(0, row[2] as Int64))),
            createdAt: row[3], server: row[4], cursor: row[5],
            cursorHash: (row[10] as Data?).flatMap { LogHash(bytes: $0) },
            acknowledged: UInt64(max(0, row[11] as Int64)),
            lastSyncAt: row[6], refusedCode: row[12], refusedAt: row[13], clockSkewMs: row[14],
            maxClockSkewMs: UInt64(max(0, row[15] as Int64)), lastErrorCode: row[7], lastError: row[8], lastErrorAt: row[9],
            sealed: UInt64(max(0, row[16] as Int64)), serverSigningKey: row[17])
    }

    /// What sealing needs of the state, read cheaply (every signed transaction reads it twice):
    /// the counter, how far this replica's changes are sealed, the server's signing key.
    public func sealState(_ db: Database) throws -> (counter: UInt64, sealed: UInt64, serverSigningKey: String?) {
        let select = try RawStatement(db, "SELECT counter, sealed, server_signing_key FROM sync_state WHERE id = 1")
        guard let row = try select.oneRow({ ($0.int64(0), $0.int64(1), $0.optionalText(2)) }) else {
            throw SyncError(.notAReplica, "the replica has no sync state row")
        }
        return (UInt64(max(0, row.0)), UInt64(max(0, row.1)), row.2)
    }

    public func storeIdentity(_ db: Database, _ identity: StoredIdentity) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO sync_identity (id, certificate, private_key, ca) VALUES (1, ?, ?, ?)",
                       arguments: [identity.certificatePEM, identity.privateKeyPEM, identity.caPEM])
    }

    public func identity(_ db: Database) throws -> StoredIdentity? {
        try Row.fetchOne(db, sql: "SELECT certificate, private_key, ca FROM sync_identity WHERE id = 1").map {
            StoredIdentity(certificatePEM: $0["certificate"], privateKeyPEM: $0["private_key"], caPEM: $0["ca"])
        }
    }

    /// Records the end of a sync session: success moves the cursor's time stamp and clears the
    /// error; failure keeps the error (code, message, time) for `status`.
    public func recordSync(_ db: Database, at: String, errorCode: String?, error: String?) throws {
        if let errorCode {
            try db.execute(sql: "UPDATE sync_state SET last_error_code = ?, last_error = ?, last_error_at = ? WHERE id = 1",
                           arguments: [errorCode, error, at])
            if Self.refusals.contains(errorCode) {
                try db.execute(sql: "UPDATE sync_state SET refused_code = ?, refused_at = ? WHERE id = 1", arguments: [errorCode, at])
            }
        } else {
            try db.execute(sql: """
                UPDATE sync_state SET last_sync_at = ?, last_error_code = NULL, last_error = NULL, last_error_at = NULL,
                    refused_code = NULL, refused_at = NULL WHERE id = 1
                """, arguments: [at])
        }
    }

    /// Runs `body` as one bookkeeping transaction on a writer connection outside any transaction:
    /// committed with `synchronous = NORMAL` (atomic, not flushed: a power cut may lose it, never
    /// half of it), the connection set back to FULL after, whatever happened. The workstation's record
    /// of a session and the server's record of a visit use it; nothing else.
    public static func inBookkeepingTransaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        try db.execute(sql: "PRAGMA synchronous = NORMAL")
        defer { restoreFullSynchronous(db) }
        var result: T?
        try db.inTransaction(.immediate) {
            result = try body(db)
            return .commit
        }
        return result!
    }

    /// Sets a connection back to `synchronous = FULL` after a bookkeeping transaction, through
    /// SQLite itself: GRDB throws `CancellationError` for every statement of a cancelled task (its
    /// cancel handler), and the connection must never stay at NORMAL for the records that follow
    /// because an error was swallowed. Checked, and tried again.
    public static func restoreFullSynchronous(_ db: Database) {
        guard let connection = db.sqliteConnection else { return }
        for _ in 0..<3 {
            _ = sqlite3_exec(connection, "PRAGMA synchronous = FULL", nil, nil, nil)
            if synchronousLevel(connection) == 2 { return }
        }
    }

    /// A connection's `PRAGMA synchronous`, read through SQLite itself (-1 when it cannot be read).
    static func synchronousLevel(_ connection: OpaquePointer) -> Int32 {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, "PRAGMA synchronous", -1, &statement, nil) == SQLITE_OK, let statement else { return -1 }
        defer { sqlite3_finalize(statement) }
        return sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int(statement, 0) : -1
    }

    /// The server's answers that mean this replica as it is cannot sync again: it must be rescued.
    public static let refusals: Set<String> = ["replicaForked", "replicaRewound", "revoked"]

    /// Keeps the server's public signing key, as its welcome said (written only when it differs:
    /// a session that changes nothing writes nothing).
    public func recordServerKey(_ db: Database, _ key: [UInt8]) throws {
        let text = Data(key).base64EncodedString()
        guard try sealState(db).serverSigningKey != text else { return }
        try db.execute(sql: "UPDATE sync_state SET server_signing_key = ? WHERE id = 1", arguments: [text])
    }

    /// Keeps the server's workstation names as its welcome sent them (its registry is the whole
    /// truth: the names replace those known before).
    public func recordWorkstations(_ db: Database, _ names: [ReplicaID: String]) throws {
        guard try workstations(db) != names else { return }
        try db.execute(sql: "DELETE FROM sync_workstations")
        let insert = try db.cachedStatement(sql: "INSERT INTO sync_workstations (replica_id, name) VALUES (?, ?)")
        for (replica, name) in names { try insert.execute(arguments: [replica.description, name]) }
    }

    /// The workstation names the server last sent, by replica id (an empty name: one of the
    /// server's own writers); empty before the first sync with a server that sends them.
    public func workstations(_ db: Database) throws -> [ReplicaID: String] {
        var names: [ReplicaID: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT replica_id, name FROM sync_workstations") {
            if let id = ReplicaID(row["replica_id"] as String) { names[id] = row["name"] }
        }
        return names
    }

    /// Keeps what the last hello measured: this clock against the server's, and the server's bound.
    /// `unlessWarningStays`: leave the stored skew when the bound is the same and the skew stays on
    /// the same side of it (the clock warning `status` shows would not change): a session's start
    /// then writes nothing, and its end writes the exact skew.
    public func recordClock(_ db: Database, skewMilliseconds: Int64, maximumSkewMilliseconds: UInt64, unlessWarningStays: Bool = false) throws {
        let bound = Int64(min(maximumSkewMilliseconds, UInt64(Int64.max)))
        if unlessWarningStays, let stored = try Row.fetchOne(db.cachedStatement(sql: "SELECT clock_skew_ms, max_clock_skew_ms FROM sync_state WHERE id = 1")),
           let storedSkew = stored[0] as Int64?, stored[1] as Int64 == bound,
           (storedSkew.magnitude > maximumSkewMilliseconds) == (skewMilliseconds.magnitude > maximumSkewMilliseconds) {
            return
        }
        try db.execute(sql: "UPDATE sync_state SET clock_skew_ms = ?, max_clock_skew_ms = ? WHERE id = 1",
                       arguments: [skewMilliseconds, bound])
    }

    /// Stamps again this replica's unsynced changes that a wrong clock stamped more than
    /// `maximumAhead` ms past `wallMilliseconds`, before they are pushed: no one has them yet, so the
    /// log entry and the cells they still hold take a stamp of now, and the transaction is signed
    /// again — only a transaction whose signer `signers` can sign for (her session on this
    /// workstation); the others are pushed as they are and the server refuses them (`clockSkew`).
    /// Returns how many changes were stamped again.
    /// `shift`: the values the wrong clock wrote (a moment such as an admission time taken from it),
    /// given the change's table, values, old and new stamp in milliseconds; nil leaves them as they are.
    @discardableResult
    public func restampFuture(_ db: Database, wallMilliseconds: UInt64, maximumAhead: UInt64,
                              signers: [any TransactionSigner] = [],
                              shift: ((_ table: String, _ values: [String: SyncValue], _ old: UInt64, _ new: UInt64,
                                       _ row: [String: SyncValue]?) -> [String: SyncValue]?)? = nil) throws -> Int {
        let limit = HLC(milliseconds: min(wallMilliseconds &+ maximumAhead, HLC.maximum.milliseconds), logical: HLC.logicalMask)
        let own = try peerIndex(db, try state(db).replicaID)
        // `+peer`: the outbox's partial index, not (peer, counter), which would read every change
        // this replica ever wrote (at every sync's hello: the no-op sync grew with the log).
        guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sync_log WHERE state = 0 AND +peer = ? AND hlc > ?)",
                                arguments: [own, Int64(limit.rawValue)]) == true else { return 0 }
        // The unsynced transactions (each ends with its sealed change) holding a change stamped ahead.
        let unsynced = try loggedChanges(db, where: "state = 0 AND +peer = ?", arguments: [.integer(own)], order: "counter ASC", limit: .max)
        var transactions: [[LoggedChange]] = [], current: [LoggedChange] = []
        for entry in unsynced {
            current.append(entry)
            if entry.change.seal != nil { transactions.append(current); current = [] }
        }
        var future: [LoggedChange] = []
        var resign: [(changes: [LoggedChange], signer: any TransactionSigner)] = []
        for transaction in transactions where transaction.contains(where: { $0.change.hlc > limit }) {
            guard let seal = transaction.last?.change.seal, let signer = signers.first(where: { $0.signer == seal.signer }) else { continue }
            future += transaction.filter { $0.change.hlc > limit }
            resign.append((transaction, signer))
        }
        guard !future.isEmpty else { return 0 }
        func resealAll() throws {
            for (transaction, signer) in resign {
                guard let first = transaction.first, let last = transaction.last, var seal = last.change.seal else { continue }
                let changes = try loggedChanges(db, where: "peer = ? AND counter >= ? AND counter <= ?",
                                                arguments: [.integer(own), .integer(Int64(first.change.dot.counter)), .integer(Int64(last.change.dot.counter))],
                                                order: "counter ASC", limit: .max).map(\.change)
                seal.version = Seal.currentVersion
                seal.signature = try signer.sign(Seal.digest(signer: seal.signer, changes: changes))
                try storeSeal(db, seal, peer: own, counter: Int64(last.change.dot.counter))
            }
        }
        var clock = HybridLogicalClock(last: HLC(milliseconds: wallMilliseconds, logical: 0))
        var rows: [(table: SyncSchema.Table, row: String)] = [], seenRows = Set<String>()
        let restamped = Set(future.map(\.change.dot))
        // The values this restamp gave each row so far (a later change of the row reads them).
        var shiftedRows: [String: [String: SyncValue]] = [:]
        for entry in future {
            var stamp = clock.tick(wallMilliseconds: wallMilliseconds)
            // After every write of its row that its wrong stamp put it after — every one it had seen
            // (as in `write`), and every other this replica holds stamped before it (a write pulled
            // from a clock a little ahead of this one, or held by the server when a rescue re-issued
            // it): clamping keeps the order the stamps gave, so a discharge never lands before the
            // admission the row holds.
            let table = try self.table(entry.change.table)
            let rowKey = entry.change.table + "\u{1F}" + entry.change.rowID
            let others = try loggedChanges(db, where: "tbl = ? AND row = ?", arguments: [.integer(Int64(table.code)), .text(entry.change.rowID)],
                                           order: "seq ASC", limit: .max)
                .filter { $0.change.dot != entry.change.dot && !restamped.contains($0.change.dot) }
            // The row's cells too: a replica that began with a snapshot logs none of the writes
            // before it, and its writes saw every one of them.
            // Its own writes are in the log; of others', only the cells' stamps may say.
            let cells = try rowMeta(db, table: table, rowID: entry.change.rowID)?.cells.values.filter { $0.dot.replica != entry.change.dot.replica } ?? []
            let seen = (others.filter { entry.change.context.contains($0.change.dot) }.map(\.change.hlc)
                + cells.filter { entry.change.context.contains($0.dot) }.map(\.hlc)).max()
            // A write it did not see counts only if the server may hold it (not refused), and never
            // carries the stamp past the bound (an unsent write of another signer still ahead).
            let held = (others.filter { $0.state != .rejected && !entry.change.context.contains($0.change.dot) && $0.change.hlc < entry.change.hlc }
                .map(\.change.hlc) + cells.filter { !entry.change.context.contains($0.dot) && $0.hlc < entry.change.hlc }.map(\.hlc))
                .max().map { min($0, HLC(rawValue: limit.rawValue - 1)) }
            if let before = [seen, held].compactMap({ $0 }).max(), before >= stamp {
                stamp = HLC(rawValue: before.rawValue + 1)
                clock = HybridLogicalClock(last: stamp)
            }
            try db.execute(sql: "UPDATE sync_log SET hlc = ? WHERE seq = ?", arguments: [Int64(stamp.rawValue), entry.sequence])
            if let shift {
                // The moments the wrong clock wrote move with its stamp (the row's cells follow below),
                // read against the row as it stands with what this restamp moved so far.
                let readable = entry.change.values.filter { entry.change.erased[$0.key] == nil }
                var row = try currentRow(db, table: table.name, id: entry.change.rowID)
                if let moved = shiftedRows[rowKey] { row = (row ?? [:]).merging(moved) { $1 } }
                if let shifted = shift(entry.change.table, readable, entry.change.hlc.milliseconds, stamp.milliseconds, row), !shifted.isEmpty {
                    let values = entry.change.values.merging(shifted) { $1 }
                    try db.execute(sql: "UPDATE sync_log SET vals = ? WHERE seq = ?",
                                   arguments: [Data(encodeValues(values, table: table)), entry.sequence])
                    shiftedRows[rowKey, default: [:]].merge(shifted) { $1 }
                }
            }
            if seenRows.insert(entry.change.table + "\u{1F}" + entry.change.rowID).inserted {
                rows.append((try self.table(entry.change.table), entry.change.rowID))
            }
        }
        // A cell may hold its value only thanks to a wrong stamp — a restamped write's, or that of a
        // later write of this replica that replaced it (a causal successor, whose own stamp a right
        // clock would have put after it). Decide every cell of those rows again among the writes no
        // other write to it has seen, as every other replica will (the larger stamp and replica id
        // wins). A keep-both column is decided again only where a restamped write holds it.
        for (table, rowID) in rows {
            guard var meta = try rowMeta(db, table: table, rowID: rowID) else { continue }
            var writes = try loggedChanges(db, where: "tbl = ? AND row = ?", arguments: [.integer(Int64(table.code)), .text(rowID)],
                                           order: "seq ASC", limit: .max).map(\.change)
            // Writes a snapshot brought that a re-issued change displaced here: candidates too, as
            // having seen none of the log's (a write that saw one carries a later stamp anyway).
            let logged = Set(writes.map(\.dot))
            writes += try displaced(db, table: table, rowID: rowID).filter { !logged.contains($0.dot) }
            var values: [String: SyncValue] = [:]
            for (column, held) in meta.cells where table.column(named: column)?.keepBoth != true || restamped.contains(held.dot) {
                let candidates = writes.filter { $0.values[column] != nil }
                let frontier = candidates.filter { candidate in !candidates.contains { $0.dot != candidate.dot && $0.context.contains(candidate.dot) } }
                guard let winner = frontier.max(by: { CellStamp(dot: $1.dot, hlc: $1.hlc).wins(over: CellStamp(dot: $0.dot, hlc: $0.hlc)) }) else { continue }
                // A holder this log does not have (the snapshot this replica began with brought it):
                // it stays unless a logged write saw it, or wins over it as every replica decides.
                if !candidates.contains(where: { $0.dot == held.dot || $0.context.contains(held.dot) }),
                   !CellStamp(dot: winner.dot, hlc: winner.hlc).wins(over: held) { continue }
                meta.cells[column] = CellStamp(dot: winner.dot, hlc: winner.hlc)
                if winner.dot != held.dot || restamped.contains(winner.dot) { values[column] = winner.values[column] }
            }
            if !values.isEmpty { try applyValues(db, table: table, rowID: rowID, values: values) }
            try saveMeta(db, table: table, rowID: rowID, meta: meta)
        }
        try db.execute(sql: "UPDATE sync_state SET hlc = ? WHERE id = 1", arguments: [Int64(clock.last.rawValue)])
        try resealAll()
        return future.count
    }

    /// Points the replica at a new sync server address (`HOST:PORT`), its identity and data unchanged.
    public func setServer(_ db: Database, _ server: String) throws {
        try db.execute(sql: "UPDATE sync_state SET server = ? WHERE id = 1", arguments: [server])
    }

    /// Marks this replica's own changes up to `counter` as merged by the server, and the refused
    /// ones as rejected with the server's reason (they stay in the log, never dropped).
    public func acknowledge(_ db: Database, upTo counter: UInt64, rejected: [(counter: UInt64, reason: String)]) throws {
        let own = try peerIndex(db, try state(db).replicaID)
        for rejection in rejected {
            try db.execute(sql: "UPDATE sync_log SET state = ?, rejection = ? WHERE peer = ? AND counter = ?",
                           arguments: [LoggedChange.State.rejected.rawValue, rejection.reason, own, Int64(rejection.counter)])
        }
        // `state = 0` written out and `+peer`: SQLite then walks the outbox's partial index up to
        // `counter`, not every change of this replica by (peer, counter) — which made each push's
        // acknowledgement cost as much as the whole log (push at 1,000,000 changes ran at 0.4 of
        // the rate at 100,000).
        try db.execute(sql: "UPDATE sync_log SET state = \(LoggedChange.State.acknowledged.rawValue) WHERE state = 0 AND +peer = ? AND counter <= ?",
                       arguments: [own, Int64(counter)])
        try db.execute(sql: "UPDATE sync_state SET acknowledged = MAX(acknowledged, ?) WHERE id = 1", arguments: [Int64(counter)])
    }

    /// Local changes the server refused.
    public func rejectedCount(_ db: Database) throws -> Int {
        // `state = 2` written out: the partial index `sync_log_rejected` serves only that literal (a
        // bound `?` read the whole log at every `status`).
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_log WHERE state = 2") ?? 0
    }

    // MARK: Writes

    /// A local write: one change with a new dot of this replica, stamped now, whose context is the
    /// row's history as this replica knows it. Call inside the action's transaction.
    @discardableResult
    public func write(_ db: Database, table tableName: String, rowID: String, values: [String: SyncValue],
                      author: String, wallMilliseconds: UInt64) throws -> CellChange {
        let table = try self.table(tableName)
        try checkColumns(values.keys, of: table)
        guard !values.isEmpty else { throw SyncError(.unknownColumn, "a write to \(tableName) must set at least one column") }
        for (column, value) in values where !value.fits {
            throw SyncError(.valueTooLarge, "the \(column) of \(tableName) is \(value.textValue?.utf8.count ?? 0) bytes long; a text may be at most \(SyncValue.maximumTextBytes / 1024) KiB (nothing was written)")
        }
        let select = try RawStatement(db, "SELECT replica_id, counter, hlc, max_clock_skew_ms FROM sync_state WHERE id = 1")
        guard let (idText, lastCounter, lastClock, maximumAhead) = try select.oneRow({ ($0.text(0), $0.int64(1), $0.int64(2), $0.int64(3)) }) else {
            throw SyncError(.notAReplica, "the replica has no sync state row")
        }
        guard let replicaID = ReplicaID(idText) else { throw SyncError(.corruptData, "the replica's id \(idText) is not a UUID") }
        var clock = HybridLogicalClock(last: HLC(rawValue: UInt64(max(0, lastClock))))
        let meta = try rowMeta(db, table: table, rowID: rowID)
        var hlc = clock.tick(wallMilliseconds: wallMilliseconds, maximumAhead: UInt64(max(0, maximumAhead)))
        // Stamped after every write this one replaces, even when the clock was set back (a stored
        // clock far ahead of the wall clock restarts from it): a later write of a cell must never
        // carry an earlier stamp than the one it saw, or replicas would pick different winners.
        if let seen = meta?.cells.values.map(\.hlc).max(), seen >= hlc {
            hlc = HLC(rawValue: seen.rawValue + 1)
            clock = HybridLogicalClock(last: max(clock.last, hlc))
        }
        let counter = UInt64(max(0, lastCounter)) + 1
        if journal.isRecording, !journal.hasBefore(table: tableName, row: rowID) {
            journal.keepBefore(table: tableName, row: rowID, meta == nil ? nil : try currentRow(db, table: tableName, id: rowID))
        }
        let change = CellChange(table: tableName, rowID: rowID, values: values,
                                dot: Dot(replica: replicaID, counter: counter), hlc: hlc,
                                author: author, context: meta?.versionVector ?? VersionVector())
        guard case .merged(let apply, let newMeta, _) = Merge.merge(change, into: meta) else {
            throw SyncError(.corruptData, "a local write to \(tableName) \(rowID) could not be merged: its dot is already known")
        }
        try applyValues(db, table: table, rowID: rowID, values: apply)
        try saveMeta(db, table: table, rowID: rowID, meta: newMeta)
        _ = try appendLog(db, change: change, table: table, state: .unsynced)
        let update = try RawStatement(db, "UPDATE sync_state SET counter = ?, hlc = ? WHERE id = 1")
        update.bind(1, Int64(counter))
        update.bind(2, Int64(clock.last.rawValue))
        try update.execute()
        journal.append(change)
        return change
    }

    /// Keeps, until this transaction ends, the changes its local writes make and each row as it was
    /// before the first of them: `sealTail` then signs them without reading them back, and
    /// `rowsBefore` gives the shelter's rules the rows as they stood before the transaction (a rule
    /// that compares before and after — anonymity is one-way — holds on the workstation too).
    public func recordWrites(_ db: Database) {
        journal.start()
        let forget: @Sendable (Database) -> Void = { [journal] _ in journal.stop() }
        db.afterNextTransaction(onCommit: forget, onRollback: forget)
    }

    /// The rows as they stood before this transaction's local writes (`recordWrites`); rows it did
    /// not write as they stand.
    public func rowsBefore(_ db: Database) -> BeforeRows {
        BeforeRows(current: StoreRows(store: self, db: db), before: journal.beforeImages())
    }

    /// Seals this replica's own changes written since the last seal (one transaction): `signer`
    /// signs their canonical encoding and the seal is stored on the last of them. Returns the
    /// transaction's changes, the last with its seal (none when nothing was written). Call at the end
    /// of the transaction that wrote them.
    @discardableResult
    public func sealTail(_ db: Database, signer: some TransactionSigner) throws -> [CellChange] {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT replica_id, counter, sealed FROM sync_state WHERE id = 1")) else { return [] }
        let counter = row["counter"] as Int64, sealed = row["sealed"] as Int64
        guard counter > sealed, let replica = ReplicaID(row["replica_id"] as String),
              let peer = try knownPeerIndex(db, replica) else { return [] }
        // The changes this transaction wrote, as `write` kept them; else read back from the log.
        var changes = journal.takeChanges()
        if changes.count != Int(counter - sealed) || changes.first?.dot.counter != UInt64(sealed + 1) || changes.last?.dot.counter != UInt64(counter) {
            changes = try loggedChanges(db, where: "peer = ? AND counter > ? AND counter <= ?",
                                        arguments: [.integer(peer), .integer(sealed), .integer(counter)], order: "counter ASC", limit: .max).map(\.change)
        }
        guard let first = changes.first, changes.count == Int(counter - sealed) else {
            throw SyncError(.corruptData, "this replica's changes \(sealed + 1)…\(counter) are not all in its log")
        }
        let seal = Seal(first: first.dot.counter, signer: signer.signer,
                        signature: try signer.sign(Seal.digest(signer: signer.signer, changes: changes)))
        try storeSeal(db, seal, peer: peer, counter: counter)
        try db.cachedStatement(sql: "UPDATE sync_state SET sealed = ? WHERE id = 1").execute(arguments: [counter])
        changes[changes.count - 1].seal = seal
        return changes
    }

    /// Stores `seal` on the change `counter` of the replica with peer number `peer`.
    func storeSeal(_ db: Database, _ seal: Seal, peer: Int64, counter: Int64) throws {
        var writer = BinaryWriter(capacity: 96)
        ChangeCodec.encode(seal, into: &writer)
        try db.cachedStatement(sql: "UPDATE sync_log SET seal = ? WHERE peer = ? AND counter = ?").execute(arguments: [Data(writer.bytes), peer, counter])
    }

    /// This replica's own changes after counter `counter`, in counter order.
    public func ownChanges(_ db: Database, after counter: UInt64) throws -> [CellChange] {
        guard let own = try knownPeerIndex(db, try state(db).replicaID) else { return [] }
        return try loggedChanges(db, where: "peer = ? AND counter > ?", arguments: [.integer(own), .integer(Int64(counter))],
                                 order: "counter ASC", limit: .max).map(\.change)
    }

    /// Whether this replica wrote changes since its last seal (a transaction not yet signed).
    public func hasUnsealed(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT counter > sealed FROM sync_state WHERE id = 1")) ?? false
    }

    /// Merges a change made on another replica. Call inside a transaction.
    public func merge(_ db: Database, _ change: CellChange, wallMilliseconds: UInt64) throws -> MergeReport {
        var clock = try loadClock(db)
        let report = try merge(db, change, clock: &clock, wallMilliseconds: wallMilliseconds)
        try saveClock(db, clock)
        return report
    }

    /// The replica's clock, for merging a batch: load once, merge each change, save once.
    public func loadClock(_ db: Database) throws -> HybridLogicalClock {
        HybridLogicalClock(last: HLC(rawValue: UInt64(max(0, try Int64.fetchOne(db.cachedStatement(sql: "SELECT hlc FROM sync_state WHERE id = 1")) ?? 0))))
    }

    public func saveClock(_ db: Database, _ clock: HybridLogicalClock) throws {
        try db.cachedStatement(sql: "UPDATE sync_state SET hlc = ? WHERE id = 1").execute(arguments: [Int64(clock.last.rawValue)])
    }

    /// Merges a change made on another replica, moving `clock` past its stamp; the caller saves the
    /// clock (`saveClock`) before the transaction ends: a batch of one (`merge(_:_:clock:…)` of many
    /// changes merges a batch in one pass).
    /// `digest`: the change's `LogHash.of`, when the caller has it already (the server's rules
    /// made it to check the signature): the hash chain uses it instead of making it again.
    public func merge(_ db: Database, _ change: CellChange, clock: inout HybridLogicalClock, wallMilliseconds: UInt64, digest: LogHash? = nil) throws -> MergeReport {
        try merge(db, [change], clock: &clock, wallMilliseconds: wallMilliseconds, digests: [digest])[0]
    }

    // MARK: Reading

    /// The metadata of one row, nil when the row has never been written here.
    public func rowMeta(_ db: Database, table: SyncSchema.Table, rowID: String) throws -> RowMeta? {
        let select = try RawStatement(db, "SELECT meta FROM sync_rows WHERE tbl = ? AND id = ?")
        select.bind(1, table.code)
        select.bind(2, rowID)
        guard let bytes = try select.oneRow({ $0.blob(0) }) else { return nil }
        return try decodeMeta(db, bytes, table: table)
    }

    /// The current values of some columns of a row.
    public func values(_ db: Database, table: SyncSchema.Table, rowID: String, columns: some Collection<String>) throws -> [String: SyncValue] {
        guard !columns.isEmpty else { return [:] }
        // The whole row by the one statement of its table (no text made per read), then the columns asked.
        guard let row = try currentRow(db, table: table.name, id: rowID) else { return [:] }
        var result: [String: SyncValue] = [:]
        for name in columns { result[name] = row[name] ?? .null }
        return result
    }

    /// The rows of this store as the shelter's rules read them, inside `db`'s transaction.
    public func rows(_ db: Database) -> StoreRows { StoreRows(store: self, db: db) }

    /// One row of a synced table as it stands: every column's value, nil when there is no such row.
    public func currentRow(_ db: Database, table tableName: String, id: String) throws -> [String: SyncValue]? {
        guard let (sql, columns) = selectRow[tableName] else { return nil }
        let select = try RawStatement(db, sql)
        select.bind(1, id)
        return try select.oneRow { row in
            var values: [String: SyncValue] = [:]
            for (index, column) in columns.enumerated() { values[column] = row.value(Int32(index)) }
            return values
        }
    }

    /// The ids of the rows of a synced table whose `column` holds `value`.
    public func rowIDs(_ db: Database, table tableName: String, where column: String, is value: SyncValue) throws -> [String] {
        guard let table = schema.table(named: tableName), table.column(named: column) != nil else { return [] }
        return try String.fetchAll(db, sql: "SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE \(column.quotedDatabaseIdentifier) = ?",
                                   arguments: [value.databaseValue])
    }

    /// Local changes not yet acknowledged by the server, oldest first.
    public func outbox(_ db: Database, after counter: UInt64 = 0, limit: Int = .max) throws -> [LoggedChange] {
        try loggedChanges(db, where: "state = 0 AND counter > ?", arguments: [.integer(Int64(counter))], order: "counter ASC", limit: limit)
    }

    public func outboxCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_log WHERE state = 0") ?? 0
    }

    /// The change log, newest first; only changes to `rows` when given.
    public func log(_ db: Database, rows: [String]? = nil, limit: Int = .max) throws -> [LoggedChange] {
        if let rows {
            guard !rows.isEmpty else { return [] }
            let marks = Array(repeating: "?", count: rows.count).joined(separator: ", ")
            return try loggedChanges(db, where: "row IN (\(marks))", arguments: rows.map { .text($0) }, order: "seq DESC", limit: limit)
        }
        return try loggedChanges(db, where: "1", arguments: [], order: "seq DESC", limit: limit)
    }

    /// Up to `limit` changes (and `WireMessage.maximumBatchBytes`) logged after position `sequence`
    /// that `replica` did not write (it has them), in log order, and how far the log was read: the last change's position when the
    /// batch is full, else the log's head, so the reader's cursor skips its own writes without
    /// anyone decoding them. Call inside one read transaction.
    ///
    /// `chain` is the log's hash chain at `readUpTo` (nil in a log that keeps no chain).
    public func changes(_ db: Database, after sequence: Int64, notFrom replica: ReplicaID, limit: Int)
        throws -> (changes: [LoggedChange], readUpTo: Int64, chain: LogHash?, more: Bool) {
        let own = try knownPeerIndex(db, replica)
        let read = try loggedChanges(db, where: "seq > ? AND peer != ?", arguments: [.integer(sequence), .integer(own ?? -1)], order: "seq ASC", limit: limit)
        let batch = WireMessage.byteLimited(read, change: \.change)
        if batch.count < read.count || batch.count == limit, let last = batch.last { return (batch, last.sequence, last.chain, true) }
        let readUpTo = max(sequence, try head(db))
        return (batch, readUpTo, try chain(db, at: readUpTo), false)
    }

    /// The log's last position (0 when empty).
    public func head(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(seq) FROM sync_log")) ?? 0
    }

    func loggedChanges(_ db: Database, where condition: String, arguments: [SyncValue],
                               order: String, limit: Int) throws -> [LoggedChange] {
        let limitSQL = limit == .max ? "" : " LIMIT \(limit)"
        let select = try RawStatement(db, """
            SELECT seq, peer, counter, tbl, row, hlc, author, context, vals, state, rejection, chain, seal, erased
            FROM sync_log WHERE \(condition) ORDER BY \(order)\(limitSQL)
            """)
        for (index, argument) in arguments.enumerated() { select.bind(Int32(index + 1), argument) }
        // Rows are read in full first: decoding a vector may look up a peer with another statement.
        var rows: [(sequence: Int64, peer: Int64, counter: Int64, table: Int, row: String, hlc: Int64, author: String,
                    context: [UInt8], values: [UInt8], state: Int, rejection: String?, chain: [UInt8]?, seal: [UInt8]?, erased: [UInt8]?)] = []
        while try select.step() {
            rows.append((select.int64(0), select.int64(1), select.int64(2), Int(select.int64(3)), select.text(4), select.int64(5),
                         select.text(6), select.blob(7), select.blob(8), Int(select.int64(9)), select.optionalText(10),
                         select.isNull(11) ? nil : select.blob(11), select.isNull(12) ? nil : select.blob(12),
                         select.isNull(13) ? nil : select.blob(13)))
        }
        var peers = PeerCache(cache: self.peers, local: true)
        return try rows.map { row in
            guard let table = schema.table(code: row.table) else {
                throw SyncError(.corruptData, "the change log names table code \(row.table), which this version does not know")
            }
            var change = CellChange(
                table: table.name, rowID: row.row,
                values: try decodeValues(row.values, table: table),
                dot: Dot(replica: try peers.id(db, row.peer), counter: UInt64(row.counter)),
                hlc: HLC(rawValue: UInt64(row.hlc)),
                author: row.author,
                context: try decodeVector(db, row.context, peers: &peers))
            if let seal = row.seal {
                var reader = BinaryReader(seal)
                change.seal = try corrupt("the signature of change \(row.counter)") { try ChangeCodec.decodeSeal(from: &reader) }
            }
            if let erased = row.erased {
                var reader = BinaryReader(erased)
                change.erased = try corrupt("the erased digests of change \(row.counter)") { try ChangeCodec.decodeErased(from: &reader) }
            }
            return LoggedChange(sequence: row.sequence, change: change,
                                state: LoggedChange.State(rawValue: row.state) ?? .received, rejection: row.rejection,
                                chain: row.chain.flatMap { LogHash(bytes: $0) })
        }
    }

    // MARK: Internals

    func table(_ name: String) throws -> SyncSchema.Table {
        guard let table = schema.table(named: name) else {
            throw SyncError(.unknownTable, "table \(name) is not a synced table of schema version \(schema.version)")
        }
        return table
    }

    func checkColumns(_ columns: some Sequence<String>, of table: SyncSchema.Table) throws {
        for column in columns where table.column(named: column) == nil {
            throw SyncError(.unknownColumn, "column \(column) is not a synced column of table \(table.name)")
        }
    }

    /// A value with its column's name and code.
    struct CodedCell {
        var code: Int
        var name: String
        var value: SyncValue
    }

    /// A change's values with their columns' codes, in code order; an unknown column is an error.
    func codedCells(_ values: [String: SyncValue], of table: SyncSchema.Table) throws -> [CodedCell] {
        var cells: [CodedCell] = []
        cells.reserveCapacity(values.count)
        for (name, value) in values {
            guard let column = table.column(named: name) else {
                throw SyncError(.unknownColumn, "column \(name) is not a synced column of table \(table.name)")
            }
            cells.append(CodedCell(code: column.code, name: name, value: value))
        }
        if cells.count > 1 { cells.sort { $0.code < $1.code } }
        return cells
    }

    func applyValues(_ db: Database, table: SyncSchema.Table, rowID: String, values: [String: SyncValue]) throws {
        try applyCells(db, table: table, rowID: rowID, cells: codedCells(values, of: table))
    }

    /// Upserts a row's cells (in code order). `statements`: a batch's statements, kept between rows.
    func applyCells(_ db: Database, table: SyncSchema.Table, rowID: String, cells: [CodedCell], statements: MergeStatements? = nil) throws {
        let codes = cells.map(\.code)
        if let statements, let upsert = statements.upsert(table: table.code, codes: codes) {
            upsert.bind(1, rowID)
            for (index, cell) in cells.enumerated() { upsert.bind(Int32(index + 2), cell.value) }
            return try upsert.execute()
        }
        let sql = upserts.text(table: table, codes: codes) {
            let quotedTable = table.name.quotedDatabaseIdentifier
            if cells.isEmpty { return "INSERT OR IGNORE INTO \(quotedTable) (id) VALUES (?)" }
            let columns = cells.map(\.name.quotedDatabaseIdentifier)
            return """
                INSERT INTO \(quotedTable) (id, \(columns.joined(separator: ", ")))
                VALUES (?\(String(repeating: ", ?", count: cells.count)))
                ON CONFLICT (id) DO UPDATE SET \(columns.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
                """
        }
        let upsert = try RawStatement(db, sql)
        statements?.keep(upsert, table: table.code, codes: codes)
        upsert.bind(1, rowID)
        for (index, cell) in cells.enumerated() { upsert.bind(Int32(index + 2), cell.value) }
        try upsert.execute()
    }

    static let saveMetaSQL = "INSERT OR REPLACE INTO sync_rows (tbl, id, meta) VALUES (?, ?, ?)"

    func saveMeta(_ db: Database, table: SyncSchema.Table, rowID: String, meta: RowMeta, statements: MergeStatements? = nil) throws {
        let bytes = try encodeMeta(db, meta, table: table)
        let insert = try statements?.statement(db, Self.saveMetaSQL) ?? RawStatement(db, Self.saveMetaSQL)
        insert.bind(1, table.code)
        insert.bind(2, rowID)
        insert.bind(3, blob: bytes)
        try insert.execute()
    }

    /// `encodedValues`: the change's values as `encodeValues` makes them, when the caller has them.
    static let appendLogSQL = """
        INSERT INTO sync_log (peer, counter, tbl, row, hlc, author, context, vals, state, chain, seal, erased, digest)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    func appendLog(_ db: Database, change: CellChange, table: SyncSchema.Table, state: LoggedChange.State, digest: LogHash? = nil,
                   encodedValues: [UInt8]? = nil, statements: MergeStatements? = nil) throws -> Int64 {
        var context = BinaryWriter()
        try encodeVector(db, change.context, into: &context)
        let values = encodedValues ?? encodeValues(change.values, table: table)
        let peer = try peerIndex(db, change.dot.replica)
        let insert = try statements?.statement(db, Self.appendLogSQL) ?? RawStatement(db, Self.appendLogSQL)
        insert.bind(1, peer)
        insert.bind(2, Int64(change.dot.counter))
        insert.bind(3, table.code)
        insert.bind(4, change.rowID)
        insert.bind(5, Int64(change.hlc.rawValue))
        insert.bind(6, change.author)
        insert.bind(7, blob: context.bytes)
        insert.bind(8, blob: values)
        insert.bind(9, state.rawValue)
        var chain: LogHash?, chainDigest: LogHash?, tip: (sequence: Int64, hash: LogHash)?
        if chained {
            let digest = digest ?? LogHash.of(change)
            tip = try chainTip.tip(db)
            chain = tip!.hash.chained(with: digest)
            chainDigest = digest
            insert.bind(10, blob: chain!.bytes)
            insert.bind(13, blob: digest.bytes)
        }
        if let seal = change.seal {
            var writer = BinaryWriter(capacity: 96)
            ChangeCodec.encode(seal, into: &writer)
            insert.bind(11, blob: writer.bytes)
        }
        if !change.erased.isEmpty {
            var erased = BinaryWriter(capacity: 48 * change.erased.count)
            ChangeCodec.encode(erased: change.erased, into: &erased)
            insert.bind(12, blob: erased.bytes)
        }
        try insert.execute()
        let sequence = db.lastInsertedRowID
        if var chain, let tip, let chainDigest {
            if sequence != tip.sequence + 1 {
                // The tip in memory was not this entry's predecessor: it outlived a transaction that
                // SQLite rolled back by itself (an interrupt, a full disk — GRDB then calls the
                // hook that forgets it only when the next transaction ends). Chained again from
                // the entry before it, as the log holds it.
                chain = try chainTip.tip(db, before: sequence).hash.chained(with: chainDigest)
                let update = try RawStatement(db, "UPDATE sync_log SET chain = ? WHERE seq = ?")
                update.bind(1, blob: chain.bytes)
                update.bind(2, sequence)
                try update.execute()
            }
            chainTip.moved(to: sequence, chain)
        }
        return sequence
    }

    /// Coded cells (in code order) as the log keeps a change's values: `encodeValues`' bytes.
    func encodeCells(_ cells: [CodedCell]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 8 + 24 * cells.count)
        writer.write(varint: UInt64(cells.count))
        for cell in cells {
            writer.write(varint: UInt64(cell.code))
            writer.write(value: cell.value)
        }
        return writer.bytes
    }

    /// A change's values as the log keeps them: by column code, in code order.
    func encodeValues(_ values: [String: SyncValue], table: SyncSchema.Table) -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(varint: UInt64(values.count))
        var cells: [(code: Int, value: SyncValue)] = values.map { (table.column(named: $0.key)!.code, $0.value) }
        cells.sort { $0.code < $1.code }
        for cell in cells {
            writer.write(varint: UInt64(cell.code))
            writer.write(value: cell.value)
        }
        return writer.bytes
    }

    /// The local number of a replica id if this store has one, without making one.
    func knownPeerIndex(_ db: Database, _ replica: ReplicaID) throws -> Int64? {
        if let idx = peers.number(of: replica, in: db) { return idx }
        guard let idx = try Int64.fetchOne(db.cachedStatement(sql: "SELECT idx FROM sync_peers WHERE replica_id = ?"),
                                           arguments: [replica.description]) else { return nil }
        peers.remember(idx, replica, in: db)
        return idx
    }

    /// The local number of a replica id, made on first use. Peers only grow and never change
    /// number, so the answer is memoised for the connection.
    func peerIndex(_ db: Database, _ replica: ReplicaID) throws -> Int64 {
        if let idx = try knownPeerIndex(db, replica) { return idx }
        try db.cachedStatement(sql: "INSERT INTO sync_peers (replica_id) VALUES (?)").execute(arguments: [replica.description])
        // Remembered for this transaction alone: a rollback gives the number back to SQLite, and
        // then perhaps to another replica.
        let idx = db.lastInsertedRowID
        peers.inserted(idx, replica, in: db)
        return idx
    }

    /// After rolling back a savepoint inside `withMergeMemo`: the peer numbers it inserted are
    /// SQLite's to give out again, and the held-back changes it released are back.
    public func forgetMergeMemo(_ db: Database) {
        peers.forgetUncommitted(in: db)
        pending.forget(in: db)
    }

    /// Runs `body` — a merge of many changes, inside one write transaction — remembering for `db`,
    /// until `body` returns or throws, the peer numbers the transaction inserts (`PeerNumbers`) and
    /// that no change is held back (`PendingFlag`). Call it only inside the transaction, and roll
    /// back no savepoint in it without `forgetMergeMemo`.
    public func withMergeMemo<T>(_ db: Database, _ body: () throws -> T) rethrows -> T {
        peers.beginScope(in: db)
        pending.beginScope(in: db)
        defer {
            pending.endScope(in: db)
            peers.endScope(in: db)
        }
        return try body()
    }

    /// Peer ids by number for one read. `local`: for a long read (a batch of the log), each number
    /// is asked of the shared memo once — it takes a lock, and fifty sessions pulling at once
    /// contended on it once per change and per vector entry (a tenth of the server's pull work in
    /// a catch-up). A row's metadata asks the memo directly (a dictionary per row costs more).
    struct PeerCache {
        let cache: PeerNumbers
        private let memoizes: Bool
        private var local: [Int64: ReplicaID] = [:]

        init(cache: PeerNumbers, local: Bool = false) {
            self.cache = cache
            memoizes = local
        }

        mutating func id(_ db: Database, _ idx: Int64) throws -> ReplicaID {
            if memoizes, let id = local[idx] { return id }
            if let id = cache.id(of: idx, in: db) {
                if memoizes { local[idx] = id }
                return id
            }
            guard let text = try String.fetchOne(db.cachedStatement(sql: "SELECT replica_id FROM sync_peers WHERE idx = ?"), arguments: [idx]),
                  let id = ReplicaID(text) else {
                throw SyncError(.corruptData, "the replica's metadata names peer \(idx), which is not in sync_peers")
            }
            cache.remember(idx, id, in: db)
            if memoizes { local[idx] = id }
            return id
        }
    }

    private func encodeVector(_ db: Database, _ vector: VersionVector, into writer: inout BinaryWriter,
                              number: ((ReplicaID) throws -> Int64)? = nil) throws {
        writer.write(varint: UInt64(vector.entries.count))
        for (replica, counter) in vector.entries.sorted(by: { $0.key < $1.key }) {
            writer.write(varint: UInt64(try number?(replica) ?? peerIndex(db, replica)))
            writer.write(varint: counter)
        }
    }

    private func decodeVector(_ db: Database, _ bytes: [UInt8], peers: inout PeerCache) throws -> VersionVector {
        var reader = BinaryReader(bytes)
        return try corrupt("a version vector") { () throws -> VersionVector in
            let count = try reader.readCount()
            var entries: [ReplicaID: UInt64] = [:]
            for _ in 0..<count {
                let idx = Int64(bitPattern: try reader.readVarint())
                entries[try peers.id(db, idx)] = try reader.readVarint()
            }
            return VersionVector(entries)
        }
    }

    /// The first bytes of row metadata in the compact format (2): a varint that no canonical
    /// encoder writes (zero with a continuation byte), so it cannot begin a format-1 blob, whose
    /// first byte is the canonical count of its version vector.
    static let compactMetaMarker: [UInt8] = [0x80, 0x00]

    /// Row metadata, format 2: the version vector, then each distinct cell stamp once, then each
    /// cell as a column code and the number of its stamp. The cells of a row are mostly written
    /// together (an admission writes all of a resident's at once), so each stamp — a dot and an HLC,
    /// ≈ 14 bytes — is stored once rather than per cell.
    /// `number`: the peer numbers to use instead of `peerIndex` (a bulk write that knows them).
    func encodeMeta(_ db: Database, _ meta: RowMeta, table: SyncSchema.Table, number: ((ReplicaID) throws -> Int64)? = nil) throws -> [UInt8] {
        var writer = BinaryWriter(capacity: 24 + meta.cells.count * 3)
        writer.write(raw: Self.compactMetaMarker)
        try encodeVector(db, meta.versionVector, into: &writer, number: number)
        var cells: [(code: Int, stamp: CellStamp)] = meta.cells.map { (table.column(named: $0.key)!.code, $0.value) }
        cells.sort { $0.code < $1.code }
        var stamps: [CellStamp] = []
        var numbers: [Int] = []
        for cell in cells {
            if let number = stamps.firstIndex(of: cell.stamp) { numbers.append(number) } else {
                numbers.append(stamps.count)
                stamps.append(cell.stamp)
            }
        }
        writer.write(varint: UInt64(stamps.count))
        for stamp in stamps {
            writer.write(varint: UInt64(try number?(stamp.dot.replica) ?? peerIndex(db, stamp.dot.replica)))
            writer.write(varint: stamp.dot.counter)
            writer.write(varint: stamp.hlc.rawValue)
        }
        writer.write(varint: UInt64(cells.count))
        for (cell, number) in zip(cells, numbers) {
            writer.write(varint: UInt64(cell.code))
            writer.write(varint: UInt64(number))
        }
        return writer.bytes
    }

    /// Reads row metadata in either format: 2 (compact, written since 0.4) or 1 (a stamp per cell).
    func decodeMeta(_ db: Database, _ bytes: [UInt8], table: SyncSchema.Table) throws -> RowMeta {
        var peers = PeerCache(cache: self.peers)
        let compact = bytes.starts(with: Self.compactMetaMarker)
        var reader = BinaryReader(compact ? Array(bytes.dropFirst(Self.compactMetaMarker.count)) : bytes)
        return try corrupt("the metadata of a \(table.name) row") { () throws -> RowMeta in
            let vectorCount = try reader.readCount()
            var entries: [ReplicaID: UInt64] = [:]
            for _ in 0..<vectorCount {
                let idx = Int64(bitPattern: try reader.readVarint())
                entries[try peers.id(db, idx)] = try reader.readVarint()
            }
            func stamp() throws -> CellStamp {
                let replica = try peers.id(db, Int64(bitPattern: try reader.readVarint()))
                let counter = try reader.readVarint()
                return CellStamp(dot: Dot(replica: replica, counter: counter), hlc: HLC(rawValue: try reader.readVarint()))
            }
            func column(_ code: Int) throws -> String {
                guard let column = table.column(code: code) else {
                    throw SyncError(.corruptData, "column code \(code) of \(table.name) is unknown")
                }
                return column.name
            }
            var stamps: [CellStamp] = []
            if compact {
                for _ in 0..<(try reader.readCount()) { stamps.append(try stamp()) }
            }
            let cellCount = try reader.readCount()
            var cells: [String: CellStamp] = [:]
            for _ in 0..<cellCount {
                let name = try column(Int(truncatingIfNeeded: try reader.readVarint()))
                if compact {
                    let number = Int(truncatingIfNeeded: try reader.readVarint())
                    guard stamps.indices.contains(number) else {
                        throw SyncError(.corruptData, "a \(table.name) row's metadata names stamp \(number) of \(stamps.count)")
                    }
                    cells[name] = stamps[number]
                } else {
                    cells[name] = try stamp()
                }
            }
            guard reader.isAtEnd else { throw SyncError(.corruptData, "the metadata of a \(table.name) row has trailing bytes") }
            return RowMeta(versionVector: VersionVector(entries), cells: cells)
        }
    }

    private func decodeValues(_ bytes: [UInt8], table: SyncSchema.Table) throws -> [String: SyncValue] {
        var reader = BinaryReader(bytes)
        return try corrupt("the values of a \(table.name) change") { () throws -> [String: SyncValue] in
            let count = try reader.readCount()
            var values = [String: SyncValue](minimumCapacity: count)
            for _ in 0..<count {
                let code = Int(truncatingIfNeeded: try reader.readVarint())
                guard let column = table.column(code: code) else {
                    throw SyncError(.corruptData, "column code \(code) of \(table.name) is unknown")
                }
                values[column.name] = try reader.readValue()
            }
            return values
        }
    }

    func decodeChange(_ data: Data) throws -> CellChange {
        // Held back before version 0.7: without the seal flag.
        if let change = try? ChangeCodec.decodeSealed([UInt8](data)) { return change }
        do { return try ChangeCodec.decode([UInt8](data)) } catch {
            throw SyncError(.corruptData, "a held-back change cannot be decoded: \(error)", underlying: error)
        }
    }

    func corrupt<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as BinaryReader.Error {
            throw SyncError(.corruptData, "\(what) is corrupt: \(error)", underlying: error)
        }
    }
}

/// What each connection's merge under way (`SyncStore.withMergeMemo`) remembers, nested merges
/// counted: made when the outermost begins, dropped when it returns or throws.
struct MergeScopes<State> {
    private var scopes: [ObjectIdentifier: (depth: Int, state: State)] = [:]

    var isEmpty: Bool { scopes.isEmpty }

    func state(_ connection: ObjectIdentifier) -> State? { scopes[connection]?.state }

    mutating func begin(_ connection: ObjectIdentifier, _ initial: @autoclosure () -> State) {
        if scopes[connection] != nil { scopes[connection]!.depth += 1 } else { scopes[connection] = (1, initial()) }
    }

    mutating func end(_ connection: ObjectIdentifier) {
        guard let depth = scopes[connection]?.depth else { return }
        if depth <= 1 { scopes[connection] = nil } else { scopes[connection]!.depth = depth - 1 }
    }

    /// Changes the connection's state, if a merge of it is under way.
    mutating func update(_ connection: ObjectIdentifier, _ body: (inout State) -> Void) {
        guard scopes[connection] != nil else { return }
        body(&scopes[connection]!.state)
    }

    mutating func updateAll(_ body: (inout State) -> Void) {
        for connection in scopes.keys { body(&scopes[connection]!.state) }
    }
}

/// The peer numbers of one database file, memoised: peers only grow and never change number.
/// Only committed numbers are shared by every connection; a number the open write transaction
/// inserted is SQLite's to give out again if that transaction rolls back.
///
/// Inside a merge (`SyncStore.withMergeMemo`), the numbers the transaction inserts or reads are also
/// remembered for that connection until the merge's body returns or throws — strictly inside its
/// transaction. Without that, every lookup of a peer new in the transaction went to SQLite again: in
/// a fan-in the pusher's own id once per change, in a catch-up each new peer's once per change and
/// vector entry, the id's text made by `snprintf` each time. The scope, not a hook at the end of the
/// transaction, bounds it: GRDB does not call the rollback hooks when SQLite itself rolls a
/// transaction back (an interrupt, a full disk), and they then fire at the next transaction's end.
final class PeerNumbers: Sendable {
    private struct Scope {
        var byID: [ReplicaID: Int64] = [:]
        var byNumber: [Int64: ReplicaID] = [:]
    }

    private struct Maps {
        var byID: [ReplicaID: Int64] = [:]
        var byNumber: [Int64: ReplicaID] = [:]
        /// A write transaction has inserted peers and not ended: what is read now may roll back.
        var uncommittedInserts = false
        /// The merges under way, by connection.
        var scopes = MergeScopes<Scope>()
    }

    private let maps = Mutex(Maps())

    func number(of id: ReplicaID, in db: Database) -> Int64? {
        let connection = ObjectIdentifier(db)
        return maps.withLock { maps in
            if let number = maps.byID[id] { return number }
            return maps.scopes.isEmpty ? nil : maps.scopes.state(connection)?.byID[id]
        }
    }

    func id(of number: Int64, in db: Database) -> ReplicaID? {
        let connection = ObjectIdentifier(db)
        return maps.withLock { maps in
            if let id = maps.byNumber[number] { return id }
            return maps.scopes.isEmpty ? nil : maps.scopes.state(connection)?.byNumber[number]
        }
    }

    /// Remembers a pair read from `sync_peers` in `db`: for every connection unless it may be an
    /// uncommitted insert; then for `db`'s merge alone, if one is under way.
    func remember(_ number: Int64, _ id: ReplicaID, in db: Database) {
        let connection = ObjectIdentifier(db)
        maps.withLock {
            if !$0.uncommittedInserts {
                $0.byID[id] = number
                $0.byNumber[number] = id
            } else {
                $0.scopes.update(connection) { scope in
                    scope.byID[id] = number
                    scope.byNumber[number] = id
                }
            }
        }
    }

    /// A peer was inserted in `db`'s current transaction: shared memos remember nothing until it
    /// ends; `db`'s merge, if one is under way, remembers this one until it returns.
    func inserted(_ number: Int64, _ id: ReplicaID, in db: Database) {
        let connection = ObjectIdentifier(db)
        let first = maps.withLock { maps -> Bool in
            maps.scopes.update(connection) { scope in
                scope.byID[id] = number
                scope.byNumber[number] = id
            }
            defer { maps.uncommittedInserts = true }
            return !maps.uncommittedInserts
        }
        guard first else { return }
        db.afterNextTransaction(onCommit: { [self] _ in maps.withLock { $0.uncommittedInserts = false } },
                                onRollback: { [self] _ in maps.withLock { $0.uncommittedInserts = false } })
    }

    func beginScope(in db: Database) { maps.withLock { $0.scopes.begin(ObjectIdentifier(db), Scope()) } }
    func endScope(in db: Database) { maps.withLock { $0.scopes.end(ObjectIdentifier(db)) } }

    /// Forgets what `db`'s merge remembered of uncommitted peers (a savepoint rolled back).
    func forgetUncommitted(in db: Database) {
        let connection = ObjectIdentifier(db)
        maps.withLock { $0.scopes.update(connection) { $0 = Scope() } }
    }
}

/// The chain hash at the last entry of a chained log, read once per write transaction and moved with
/// each append; forgotten when the transaction ends (a rolled-back append must not leave its hash).
final class ChainTip: Sendable {
    private let known = Mutex<(sequence: Int64, hash: LogHash)?>(nil)

    /// The log's last entry and its chain hash (position 0 and `genesis` in an empty log); with
    /// `before`, the last entry before that position, read from the log.
    func tip(_ db: Database, before: Int64? = nil) throws -> (sequence: Int64, hash: LogHash) {
        if before == nil, let tip = known.withLock({ $0 }) { return tip }
        let select = try RawStatement(db, before == nil ? "SELECT seq, chain FROM sync_log ORDER BY seq DESC LIMIT 1"
                                                        : "SELECT seq, chain FROM sync_log WHERE seq < ? ORDER BY seq DESC LIMIT 1")
        if let before { select.bind(1, before) }
        let row = try select.oneRow { ($0.int64(0), $0.isNull(1) ? nil : LogHash(bytes: $0.blob(1))) }
        var tip = (sequence: Int64(0), hash: LogHash.genesis)
        if let row {
            guard let hash = row.1 else {
                throw SyncError(.corruptData, "the log's entry \(row.0) carries no chain hash")
            }
            tip = (row.0, hash)
        }
        guard before == nil else { return tip }
        known.withLock { $0 = tip }
        let forget: @Sendable (Database) -> Void = { [self] _ in known.withLock { $0 = nil } }
        db.afterNextTransaction(onCommit: forget, onRollback: forget)
        return tip
    }

    func moved(to sequence: Int64, _ hash: LogHash) { known.withLock { $0 = (sequence, hash) } }
}

/// Whether a database's `sync_pending` is known to be empty, so a merge need not look for the
/// held-back changes of its row: one look per merged batch, not per change. Known only inside a
/// merge's body (`SyncStore.withMergeMemo`), strictly inside its transaction: another process may
/// hold changes back between two transactions, and a transaction rolled back — by SQLite itself
/// too, when GRDB calls no hook — brings back the held-back changes it had released.
final class PendingFlag: Sendable {
    /// Whether `sync_pending` is known empty, for each merge under way.
    private let scopes = Mutex(MergeScopes<Bool>())

    func isKnownEmpty(_ db: Database) throws -> Bool {
        let connection = ObjectIdentifier(db)
        if scopes.withLock({ $0.state(connection) == true }) { return true }
        guard try !Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM sync_pending)"))! else { return false }
        scopes.withLock { $0.update(connection) { $0 = true } }
        return true
    }

    /// A change is being held back.
    func inserted() { scopes.withLock { $0.updateAll { $0 = false } } }

    func beginScope(in db: Database) { scopes.withLock { $0.begin(ObjectIdentifier(db), false) } }
    func endScope(in db: Database) { scopes.withLock { $0.end(ObjectIdentifier(db)) } }

    /// A savepoint rolled back: what it released of `sync_pending` is back.
    func forget(in db: Database) { scopes.withLock { $0.update(ObjectIdentifier(db)) { $0 = false } } }
}

/// The SQL text of the domain upserts, made once per table and set of columns.
final class UpsertTexts: Sendable {
    private struct Key: Hashable {
        var table: Int
        var codes: [Int]
    }

    private let texts = Mutex([Key: String]())

    func text(table: SyncSchema.Table, codes: [Int], make: () -> String) -> String {
        let key = Key(table: table.code, codes: codes)
        if let text = texts.withLock({ $0[key] }) { return text }
        let text = make()
        texts.withLock { $0[key] = text }
        return text
    }
}

/// The rows a rule reads: the current state of a replica (the server's store, a workstation's
/// replica) as the rules need it. The rules never query; each side hands them its rows.
public protocol RowSource {
    /// The row's current values (all columns), nil when the row does not exist.
    func row(_ table: String, _ id: String) throws -> [String: SyncValue]?
    /// The ids of the rows of `table` whose `column` is `value`.
    func ids(_ table: String, where column: String, is value: SyncValue) throws -> [String]
}

/// The rows before a transaction's own local writes: the images `write` kept of the rows it
/// touched, over the rows as they stand.
public struct BeforeRows: RowSource {
    let current: StoreRows
    let before: [TransactionJournal.RowKey: [String: SyncValue]?]

    public func row(_ table: String, _ id: String) throws -> [String: SyncValue]? {
        if let image = before[TransactionJournal.RowKey(table: table, id: id)] { return image }
        return try current.row(table, id)
    }

    public func ids(_ table: String, where column: String, is value: SyncValue) throws -> [String] {
        var ids = Set(try current.ids(table, where: column, is: value))
        for (key, image) in before where key.table == table {
            if image?[column] == value { ids.insert(key.id) } else { ids.remove(key.id) }
        }
        return ids.sorted()
    }
}

/// What one signed local transaction has written (`SyncStore.recordWrites`), dropped when it ends.
public final class TransactionJournal: Sendable {
    public struct RowKey: Hashable, Sendable {
        var table: String
        var id: String
    }
    private struct State {
        var recording = false
        var changes: [CellChange] = []
        var before: [RowKey: [String: SyncValue]?] = [:]
    }
    private let state = Mutex(State())

    var isRecording: Bool { state.withLock { $0.recording } }
    func start() { state.withLock { $0 = State(); $0.recording = true } }
    func stop() { state.withLock { $0 = State() } }
    func hasBefore(table: String, row: String) -> Bool { state.withLock { $0.before[RowKey(table: table, id: row)] != nil } }
    func keepBefore(table: String, row: String, _ image: [String: SyncValue]?) {
        state.withLock { $0.before[RowKey(table: table, id: row)] = .some(image) }
    }
    func append(_ change: CellChange) { state.withLock { if $0.recording { $0.changes.append(change) } } }
    /// The changes kept since the last call (a rescue seals several transactions in one).
    func takeChanges() -> [CellChange] {
        state.withLock { state in
            defer { state.changes = [] }
            return state.changes
        }
    }
    func beforeImages() -> [RowKey: [String: SyncValue]?] { state.withLock { $0.before } }
}

/// A store's rows inside one transaction.
public struct StoreRows: RowSource {
    let store: SyncStore
    let db: Database

    public func row(_ table: String, _ id: String) throws -> [String: SyncValue]? { try store.currentRow(db, table: table, id: id) }
    public func ids(_ table: String, where column: String, is value: SyncValue) throws -> [String] {
        try store.rowIDs(db, table: table, where: column, is: value)
    }
}
