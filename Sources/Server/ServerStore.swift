import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import ShelterDomain
import Synchronization
import SyncCore

/// The server's store: a replica of its own (domain and sync tables, written with the server's
/// replica id) plus the registry of enrolled workstations. One SQLite file, mode 0600, WAL, so the
/// admin commands read it while the server runs.
///
/// Its log is hash-chained (`SyncStore(chained: true)`), and each run of the server writes under a
/// replica id of its own (`beginRun`): a store restored from a backup never issues a dot that an
/// earlier run already gave to a workstation.
public struct ServerStore: Sendable {
    public let path: String
    /// The replica id the server writes under in this run (conflict rows, compensations).
    public let serverID: ReplicaID
    let pool: DatabasePool
    let store: SyncStore
    /// The server's public signing key once read (`signingKey(_:)`).
    let publicSigningKey = Remembered<String>()

    /// The author of the server's own writes (conflicts, compensations).
    public static let author = "server"

    private init(path: String, serverID: ReplicaID, pool: DatabasePool) {
        self.path = path
        self.serverID = serverID
        self.pool = pool
        self.store = SyncStore(schema: ShelterSchema.schema, chained: true)
    }

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        SyncStore(schema: ShelterSchema.schema).registerMigrations(in: &migrator)
        migrator.registerMigration("server-1") { db in
            try db.execute(sql: """
                CREATE TABLE server_replicas (
                    replica_id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL UNIQUE,
                    serial TEXT NOT NULL,
                    enrolled_at TEXT NOT NULL,
                    revoked_at TEXT,
                    first_seen TEXT,
                    last_seen TEXT,
                    last_sync TEXT,
                    last_error_code TEXT,
                    last_error_at TEXT,
                    cursor INTEGER NOT NULL DEFAULT 0,
                    acknowledged INTEGER NOT NULL DEFAULT 0,
                    unsynced INTEGER NOT NULL DEFAULT 0,
                    rejected INTEGER NOT NULL DEFAULT 0,
                    client_version TEXT,
                    schema_version INTEGER,
                    clock_skew_ms INTEGER,
                    database_bytes INTEGER
                );
                CREATE TABLE server_rejections (
                    replica_id TEXT NOT NULL,
                    counter INTEGER NOT NULL,
                    code TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    at TEXT NOT NULL,
                    PRIMARY KEY (replica_id, counter)
                ) WITHOUT ROWID;
                CREATE INDEX stays_by_status ON stays (status, room);
                """)
        }
        migrator.registerMigration("server-2") { db in
            try db.execute(sql: """
                CREATE TABLE server_settings (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    behind_lag INTEGER NOT NULL,
                    stale_after_seconds INTEGER NOT NULL,
                    health_checked_at TEXT
                );
                """)
        }
        migrator.registerMigration("server-3") { db in
            // The server never looks its log up by row (only workstations do, for `history`); the
            // index cost ≈ 40 bytes and a random b-tree insert per merged change.
            try db.execute(sql: "DROP INDEX IF EXISTS sync_log_row")
        }
        migrator.registerMigration("server-4") { db in
            // Copies and restores: the log's hash chain, each run's writer id, the shelter's
            // identity (a restore must bring back this shelter's store, not another's), forks and
            // recovered changes per workstation, and the digest of every refused change.
            try db.execute(sql: """
                CREATE TABLE server_runs (
                    writer TEXT PRIMARY KEY NOT NULL,
                    started_at TEXT
                );
                INSERT INTO server_runs (writer, started_at) SELECT replica_id, created_at FROM sync_state;
                CREATE TABLE server_identity (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    shelter TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    ca_fingerprint TEXT,
                    restored_at TEXT
                );
                INSERT INTO server_identity (id, shelter, created_at) SELECT 1, replica_id, created_at FROM sync_state;
                ALTER TABLE server_replicas ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE server_replicas ADD COLUMN forked_at TEXT;
                ALTER TABLE server_replicas ADD COLUMN relayed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE server_replicas ADD COLUMN certificate_expires TEXT;
                ALTER TABLE server_replicas ADD COLUMN pending_serial TEXT;
                ALTER TABLE server_replicas ADD COLUMN pending_expires TEXT;
                ALTER TABLE server_rejections ADD COLUMN digest BLOB;
                """)
            try SyncStore(schema: ShelterSchema.schema, chained: true).extendChain(db)
        }
        migrator.registerMigration("server-5") { db in
            // The server's Ed25519 key: it signs the server's own transactions (room repairs,
            // conflict rows, staff the admin made). Kept in the store, so a restored backup signs on.
            try db.execute(sql: "CREATE TABLE server_keys (id INTEGER PRIMARY KEY CHECK (id = 1), signing BLOB NOT NULL)")
            try db.execute(sql: "INSERT INTO server_keys (id, signing) VALUES (1, ?)",
                           arguments: [Data(Curve25519.Signing.PrivateKey().rawRepresentation)])
        }
        migrator.registerMigration("server-6") { db in
            // When a workstation was revoked, to the millisecond (`revoked_at` and the journal keep
            // seconds): which shelter keys were made before it (version 7).
            try db.execute(sql: "ALTER TABLE server_replicas ADD COLUMN revoked_ms INTEGER")
        }
        return migrator
    }

    /// How long a write waits for another connection's lock (seconds) before it fails with SQLITE_BUSY.
    static let busyTimeout: TimeInterval = 10

    static func configuration(observer: (@Sendable (String) -> Void)? = nil) -> Configuration {
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        // What SQLite frees (an erased value) is overwritten with zeros, so it lingers nowhere.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        if let observer {
            config.prepareDatabase { db in db.trace { event in observer(event.expandedDescription) } }
        }
        config.busyMode = .timeout(busyTimeout)
        config.label = "ShelterSync.ServerStore"
        return config
    }

    /// A pool whose writer commits with `synchronous = FULL`: an acknowledged push survives a power
    /// cut. (GRDB's pool sets `NORMAL` after `prepareDatabase` when it turns WAL on, so it is set
    /// again here; readers never write.)
    static func makePool(path: String, configuration: Configuration) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }

    /// Creates the store (mode 0600) with rooms 1…`rooms`, written once, by the server.
    public static func create(at path: String, rooms: Int, now: Date = Date(), serverID: ReplicaID = .random()) throws -> ServerStore {
        do { try PrivateFile.create(at: path) } catch {
            throw ServerError(.directory, t("err.ServerStore.45", ("p1", path), ("p2", error)))
        }
        let pool = try makePool(path: path, configuration: configuration())
        try migrator().migrate(pool)
        let server = ServerStore(path: path, serverID: serverID, pool: pool)
        try pool.write { db in
            try server.store.initialize(db, replicaID: serverID, createdAt: Timestamp.format(now))
            try db.execute(sql: "INSERT INTO server_runs (writer, started_at) VALUES (?, ?)", arguments: [serverID.description, Timestamp.format(now)])
            try db.execute(sql: "INSERT INTO server_identity (id, shelter, created_at) VALUES (1, ?, ?)", arguments: [serverID.description, Timestamp.format(now)])
            for number in stride(from: 1, through: rooms, by: 1) {
                try server.store.write(db, table: "rooms", rowID: Room.rowID(number),
                                       values: ["number": .integer(Int64(number)), "in_service": .bool(true)],
                                       author: author, wallMilliseconds: Self.milliseconds(now))
            }
            try server.sealOwn(db)
        }
        return server
    }

    /// Opens the store; `statementObserver` sees the SQL of every statement (tests check query plans).
    /// A server that will write calls `beginRun` on the result.
    public static func open(at path: String, statementObserver: (@Sendable (String) -> Void)? = nil) throws -> ServerStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ServerError(.directory, t("err.ServerStore.46", ("p1", path)))
        }
        let pool = try makePool(path: path, configuration: configuration(observer: statementObserver))
        let migrator = migrator()
        let (id, upToDate): (ReplicaID, Bool) = try pool.read { db in
            guard try db.tableExists("server_replicas") else {
                throw ServerError(.directory, t("err.ServerStoreBackup.40", ("p1", path)))
            }
            if try migrator.hasBeenSuperseded(db) {
                throw ServerError(.directory, t("err.ServerStoreBackup.41", ("p1", path)))
            }
            return (try SyncStore(schema: ShelterSchema.schema).state(db).replicaID, try migrator.hasCompletedMigrations(db))
        }
        // Only an older store is written to on opening: a read command leaves the file as it was.
        if !upToDate { try migrator.migrate(pool) }
        let server = ServerStore(path: path, serverID: id, pool: pool)
        // A crash after an erasing merge may have left the old pages in the WAL: the next merge
        // truncates it.
        if try pool.read({ db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sync_erasures)") }) == true {
            server.store.erasureCheckpoint.set()
        }
        return server
    }

    /// The server's signer (its Ed25519 key, kept in the store).
    static func signer(_ db: Database) throws -> KeySigner {
        guard let raw = try Data.fetchOne(db, sql: "SELECT signing FROM server_keys WHERE id = 1"),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw ServerError(.directory, "the server store has no signing key")
        }
        return KeySigner(server: key)
    }

    /// The server's public signing key (base64), which workstations use to verify its transactions.
    static func signingKey(_ db: Database) throws -> String {
        Data(try signer(db).publicKey.rawRepresentation).base64EncodedString()
    }

    /// The public half, made once per store (the key is written when the store is made and never
    /// changes; making it from the private key at every hello and every pushed batch cost a
    /// scalar multiplication each).
    func signingKey(_ db: Database) throws -> String {
        if let known = publicSigningKey.value { return known }
        let key = try Self.signingKey(db)
        publicSigningKey.value = key
        return key
    }

    /// The server's signer, for tools that write to the store as the server (and tests).
    public func signer() throws -> KeySigner { try pool.read { db in try Self.signer(db) } }

    // MARK: Staff

    /// The server admin adds a member of staff (how the first leader comes to exist): her keys,
    /// sealed under her passphrase, in a transaction the server signs. A name already used is refused.
    public func addStaff(name: String, role: StaffRole, passphrase: String, at: Date = Date()) throws {
        let keys = StaffKeys()
        let sealed = try keys.sealed(passphrase: passphrase, staffID: Roles.staffID(name))
        try addStaff(name: name, role: role, keys: keys, sealedKeys: sealed, at: at)
    }

    public func addStaff(name: String, role: StaffRole, keys: StaffKeys, sealedKeys: String, at: Date = Date()) throws {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100 else { throw ServerError(.directory, t("err.ServerStore.50")) }
        try pool.write { db in
            let id = Roles.staffID(trimmed)
            if try store.currentRow(db, table: ShelterSchema.staff.name, id: id) != nil {
                throw ServerError(.directory, t("err.ServerStore.51", ("p1", trimmed)))
            }
            try store.write(db, table: ShelterSchema.staff.name, rowID: id, values: [
                "name": .text(trimmed), "role": .text(role.rawValue),
                "signing_key": .text(keys.signingKey), "agreement_key": .text(keys.agreementKey),
                "sealed_keys": .text(sealedKeys), "removed": .integer(0),
            ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
            try sealOwn(db)
        }
    }

    /// Stores shelter key grants made elsewhere — sealed to each member's agreement key by whoever
    /// holds the shelter key; the server cannot open them — as one transaction signed by the server
    /// (the test harness gives its staff the test shelter key this way).
    public func storeGrants(_ grants: [(staff: String, shelterKey: String, sealed: String)], at: Date = Date()) throws {
        try pool.write { db in
            for grant in grants {
                try store.write(db, table: ShelterSchema.keyGrants.name, rowID: ShelterSchema.grantID(staff: grant.staff, shelterKey: grant.shelterKey),
                                values: ["staff": .text(grant.staff), "shelter_key": .text(grant.shelterKey), "sealed": .text(grant.sealed)],
                                author: Self.author, wallMilliseconds: Self.milliseconds(at))
            }
            try sealOwn(db)
        }
    }

    /// Checks every signature in the server's log (`shelter server verify`).
    public func verify() throws -> VerifyReport {
        try pool.read { db in
            let rows = store.rows(db)
            return try VerifyReport.of(try store.log(db).map(\.change), rows: rows, serverKey: try signingKey(db))
        }
    }

    /// Every member of staff the store knows, by name.
    public func staff() throws -> [(name: String, role: String, removed: Bool, hasKeys: Bool)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, role, removed, signing_key FROM staff ORDER BY name").map {
                ($0["name"] ?? "", $0["role"] ?? "", ($0["removed"] as Int64? ?? 0) != 0, ($0["signing_key"] as String?) != nil)
            }
        }
    }

    /// A change that builds on one of its workstation's own changes the server refused: merged, it
    /// would wait for that change for ever (held back, neither stored nor reported). Refused too,
    /// so the workstation shows it.
    func refusedDependency(_ db: Database, _ transaction: [CellChange]) throws -> Refusal? {
        var written: [String: UInt64] = [:]
        for change in transaction {
            let origin = change.dot.replica, key = change.table + "\u{1F}" + change.rowID
            let seen = change.context[origin]
            defer { written[key] = change.dot.counter }
            guard seen > (written[key] ?? 0), let table = ShelterSchema.schema.table(named: change.table) else { continue }
            let known = max(try store.rowMeta(db, table: table, rowID: change.rowID)?.versionVector[origin] ?? 0, written[key] ?? 0)
            guard seen > known else { continue }
            if let refused = try Int64.fetchOne(db, sql: "SELECT MIN(counter) FROM server_rejections WHERE replica_id = ? AND counter > ? AND counter <= ?",
                                                arguments: [origin.description, Int64(known), Int64(seen)]) {
                return Refusal("invalidChange", "change \(change.dot.counter) builds on change \(refused) of this workstation, which the server refused")
            }
        }
        return nil
    }

    /// Seals the server's own changes written in this transaction.
    func sealOwn(_ db: Database) throws {
        guard try store.hasUnsealed(db) else { return }
        try store.sealTail(db, signer: try Self.signer(db))
    }

    static func milliseconds(_ date: Date) -> UInt64 { UInt64(max(0, date.timeIntervalSince1970 * 1000)) }

    /// Starts a run of the server: from now on it writes under a new replica id (`writer`), with
    /// counters from 1. A store restored from a backup has forgotten the dots its later runs gave
    /// out; a new id per run means it can never give one out again with other content.
    public func beginRun(writer: ReplicaID = .random(), at: Date = Date()) throws -> ServerStore {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO server_runs (writer, started_at) VALUES (?, ?)", arguments: [writer.description, Timestamp.format(at)])
            try store.beginWriter(db, replicaID: writer)
            try retireKeysOfRevoked(db)
        }
        return ServerStore(path: path, serverID: writer, pool: pool)
    }

    /// Records a run of the server this store does not know (the registry journal's `run` lines,
    /// applied to a store restored from before that run).
    public func rememberRun(_ writer: ReplicaID, at: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO server_runs (writer, started_at) VALUES (?, ?)", arguments: [writer.description, at])
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2: FULL).
    public func writerSynchronous() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Closes the store's connections (a restore replaces the file under a closed store).
    public func close() throws { try pool.close() }

    // MARK: Registry

    /// One enrolled workstation as the registry holds it.
    public struct Registration: Hashable, Sendable {
        public var replicaID: ReplicaID
        public var name: String
        public var serial: String
        public var enrolledAt: String
        public var revokedAt: String?
        /// A renewed certificate not used yet: the old one works until this one is first used.
        public var pendingSerial: String?
        public var acknowledged: UInt64
        /// When the server first saw two histories under this replica id (a copied replica file, a
        /// second replica from one bundle, a workstation restored from its own backup).
        public var forkedAt: String?
        /// The registry knows when its certificate expires (enrolled by 0.5 or later, or seen since).
        public var knowsCertificateExpiry: Bool = true
    }

    public func checkNameIsFree(_ name: String) throws {
        try pool.read { db in try Self.checkNameIsFree(db, name) }
    }

    static func checkNameIsFree(_ db: Database, _ name: String) throws {
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM server_replicas WHERE name = ?", arguments: [name]) == true {
            throw ServerError(.duplicateName, t("err.ServerStore.52", ("p1", name)))
        }
    }

    public func enroll(name: String, replicaID: ReplicaID, serial: String, expires: Date? = nil, at: Date = Date()) throws {
        try pool.write { db in
            try Self.checkNameIsFree(db, name)
            try db.execute(sql: "INSERT INTO server_replicas (replica_id, name, serial, enrolled_at, certificate_expires) VALUES (?, ?, ?, ?, ?)",
                           arguments: [replicaID.description, name, serial, Timestamp.format(at), expires.map(Timestamp.format)])
        }
    }

    /// Records a renewed certificate for a workstation: the old one keeps working until the new one
    /// is first used, and stops then.
    public func renew(name: String, serial: String, expires: Date) throws -> ReplicaID {
        try pool.write { db in
            guard let id = try String.fetchOne(db, sql: "SELECT replica_id FROM server_replicas WHERE name = ?", arguments: [name]),
                  let replica = ReplicaID(id) else {
                throw ServerError(.unknownName, t("err.ServerDirectory.14", ("p1", name)))
            }
            try db.execute(sql: "UPDATE server_replicas SET pending_serial = ?, pending_expires = ? WHERE replica_id = ?",
                           arguments: [serial, Timestamp.format(expires), id])
            return replica
        }
    }

    /// The renewed certificate was used: it replaces the old one, which stops working.
    func promotePendingCertificate(_ replicaID: ReplicaID) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE server_replicas SET serial = pending_serial, certificate_expires = pending_expires,
                    pending_serial = NULL, pending_expires = NULL WHERE replica_id = ? AND pending_serial IS NOT NULL
                """, arguments: [replicaID.description])
        }
    }

    /// The replica id of the workstation enrolled under `name`.
    public func replicaID(named name: String) throws -> ReplicaID? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT replica_id FROM server_replicas WHERE name = ?", arguments: [name]).flatMap(ReplicaID.init) }
    }

    /// Revokes a workstation's certificate; returns its replica id.
    @discardableResult
    public func revoke(name: String, at: Date = Date()) throws -> ReplicaID {
        try pool.write { db in
            guard let id = try String.fetchOne(db, sql: "SELECT replica_id FROM server_replicas WHERE name = ?", arguments: [name]),
                  let replica = ReplicaID(id) else {
                throw ServerError(.unknownName, t("err.ServerDirectory.14", ("p1", name)))
            }
            try db.execute(sql: "UPDATE server_replicas SET revoked_at = COALESCE(revoked_at, ?), revoked_ms = COALESCE(revoked_ms, ?) WHERE name = ?",
                           arguments: [Timestamp.format(at), Int64(Self.milliseconds(at)), name])
            // Under a writer a restore rewound, the server's own changes would reuse its counters:
            // the next run (a new writer) retires the keys then.
            if try !writerRewound(db) { try retireKeysOfRevoked(db, now: (name, Timestamp.format(at))) }
            return replica
        }
    }

    /// How many shelter keys are retired (`retired_keys`).
    public func retiredKeyCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM retired_keys") ?? 0 }
    }

    /// Whether the store was restored since its current writer's run began: a change the server
    /// wrote now would reuse a counter that writer used before the restore.
    func writerRewound(_ db: Database) throws -> Bool {
        guard let restored = try String.fetchOne(db, sql: "SELECT restored_at FROM server_identity WHERE id = 1") else { return false }
        let started = try String.fetchOne(db, sql: """
            SELECT started_at FROM server_runs WHERE writer = (SELECT replica_id FROM sync_state WHERE id = 1)
            """)
        // (Stamps are to the second: a restore in the same second as the run began counts as after.)
        return started.map { restored >= $0 } ?? true
    }

    /// A revoked workstation's replica holds grants of the shelter keys made before its
    /// revocation to the staff who worked there — and maybe a session, or a passphrase written down
    /// beside it. Every such key not retired yet is retired, in a transaction the server signs:
    /// the next sync of a leader's session makes a new one and wraps every resident's key again
    /// under it (`retired_keys`). Called at the revocation, when a run begins (a revocation the
    /// journal gave back to a restored store), and after a merge that brought grants (a key given
    /// back to a restored store by the workstations: made before the revocation, it is retired
    /// too). A key is "made before" when its first grant is stamped before the revocation. The
    /// values depend only on the revocation, so a row given back after a restore is the same row.
    ///
    /// `now`: the revocation being made (its name and stamp): every key the store knows now is
    /// retired, whatever its stamps say.
    func retireKeysOfRevoked(_ db: Database, now: (name: String, at: String)? = nil) throws {
        let revoked = try Row.fetchAll(db, sql: "SELECT name, revoked_at, revoked_ms FROM server_replicas WHERE revoked_at IS NOT NULL ORDER BY revoked_at, name")
        guard !revoked.isEmpty || now != nil else { return }
        let keys = try Row.fetchAll(db, sql: """
            SELECT g.shelter_key, MIN(l.hlc) AS first FROM key_grants g JOIN sync_log l ON l.row = g.id AND l.tbl = ?
            WHERE g.shelter_key <> '' AND NOT EXISTS (SELECT 1 FROM retired_keys r WHERE r.id = g.shelter_key)
            GROUP BY g.shelter_key ORDER BY g.shelter_key
            """, arguments: [ShelterSchema.keyGrants.code])
        guard !keys.isEmpty else { return }
        // Each revocation's moment: exact when it was made here, else its second + 1 s.
        let revocations: [(name: String, at: String, until: UInt64)] = revoked.compactMap { row in
            let exact = (row["revoked_ms"] as Int64?).map { UInt64(max(0, $0)) }
            let second = (try? Timestamp.parse(row["revoked_at"], timeZone: TimeZone(identifier: "UTC")!)).map { Self.milliseconds($0) + 1000 }
            return (exact ?? second).map { (row["name"], row["revoked_at"], $0) }
        }
        var retired = false
        for key in keys {
            let made = HLC(rawValue: UInt64(max(0, key["first"] as Int64))).milliseconds
            // The earliest revocation after the key was made retires it. A revocation the journal
            // gave back knows only its second: a key made in that second counts as made before.
            let name: String, at: String
            if let now {
                (name, at) = now
            } else if let revocation = revocations.first(where: { $0.until > made }) {
                (name, at) = (revocation.name, revocation.at)
            } else {
                continue
            }
            let milliseconds = (try? Timestamp.parse(at, timeZone: TimeZone(identifier: "UTC")!)).map(Self.milliseconds) ?? Self.milliseconds(Date())
            try store.write(db, table: ShelterSchema.retiredKeys.name, rowID: key["shelter_key"],
                            values: ["retired_at": .text(at), "reason": .text("workstation \(name) revoked")],
                            author: Self.author, wallMilliseconds: milliseconds)
            retired = true
        }
        if retired { try sealOwn(db) }
    }

    /// The registry as journal entries: every enrollment, and every revocation.
    func registryEntries() throws -> [RegistryEntry] {
        try pool.read { db in
            var entries: [RegistryEntry] = []
            for row in try Row.fetchAll(db, sql: "SELECT replica_id, name, serial, enrolled_at, revoked_at FROM server_replicas ORDER BY enrolled_at, name") {
                guard let id = ReplicaID(row["replica_id"] as String) else { continue }
                entries.append(.enroll(replicaID: id, name: row["name"], serial: row["serial"], at: row["enrolled_at"]))
                if let revoked = row["revoked_at"] as String? { entries.append(.revoke(replicaID: id, at: revoked)) }
            }
            for row in try Row.fetchAll(db, sql: "SELECT writer, started_at FROM server_runs ORDER BY started_at") {
                if let writer = ReplicaID(row["writer"] as String) { entries.append(.run(writer: writer, at: row["started_at"] ?? "")) }
            }
            return entries
        }
    }

    /// Applies journal entries the registry lacks: enrollments of replica ids it does not know
    /// (unless the name is taken by another), revocations it does not have, runs of the server it
    /// does not know. Returns how many enrollments and revocations.
    func apply(_ entries: [RegistryEntry]) throws -> (enrolled: Int, revoked: Int) {
        try pool.write { db in
            var enrolled = 0, revoked = 0
            for entry in entries {
                switch entry {
                case .enroll(let id, let name, let serial, let at):
                    guard try Bool.fetchOne(db, sql: "SELECT 1 FROM server_replicas WHERE replica_id = ? OR name = ?",
                                            arguments: [id.description, name]) != true else { continue }
                    try db.execute(sql: "INSERT INTO server_replicas (replica_id, name, serial, enrolled_at) VALUES (?, ?, ?, ?)",
                                   arguments: [id.description, name, serial, at])
                    enrolled += 1
                case .revoke(let id, let at):
                    try db.execute(sql: "UPDATE server_replicas SET revoked_at = ? WHERE replica_id = ? AND revoked_at IS NULL",
                                   arguments: [at, id.description])
                    // Its keys are retired when the next run begins, under a new writer.
                    revoked += db.changesCount
                case .run(let writer, let at):
                    try db.execute(sql: "INSERT OR IGNORE INTO server_runs (writer, started_at) VALUES (?, ?)", arguments: [writer.description, at])
                case .renew(let id, let serial, let expires, _):
                    // A renewal the store lacks: the new certificate becomes usable (pending until first use).
                    try db.execute(sql: """
                        UPDATE server_replicas SET pending_serial = ?, pending_expires = ?
                        WHERE replica_id = ? AND serial != ? AND (pending_serial IS NULL OR pending_serial != ?)
                        """, arguments: [serial, expires, id.description, serial, serial])
                }
            }
            return (enrolled, revoked)
        }
    }

    public func registration(_ replicaID: ReplicaID) async throws -> Registration? {
        try await pool.read { db in try Self.registration(db, replicaID) }
    }

    static func registration(_ db: Database, _ replicaID: ReplicaID) throws -> Registration? {
        try Row.fetchOne(db, sql: "SELECT * FROM server_replicas WHERE replica_id = ?", arguments: [replicaID.description]).map {
            Registration(replicaID: replicaID, name: $0["name"], serial: $0["serial"], enrolledAt: $0["enrolled_at"],
                         revokedAt: $0["revoked_at"], pendingSerial: $0["pending_serial"], acknowledged: UInt64($0["acknowledged"] as Int64),
                         forkedAt: $0["forked_at"], knowsCertificateExpiry: ($0["certificate_expires"] as String?) != nil)
        }
    }

    /// What a hello needs read, in one read: the workstation's registration, where it stands
    /// against the log, the server's signing key and the workstations' names (a version-5 hello or
    /// later). A session pays one trip to the store for them (each trip costs a thread's wake-up).
    /// `admits`: whether the hello passes the checks that need only its registration (the standing
    /// is worked out only then: a refused hello — a revoked laptop's, a copy's — costs no more).
    public func greeting(_ hello: WireMessage.Hello, replica: ReplicaID, at: Date = Date(),
                         admits: @escaping @Sendable (Registration) -> Bool = { _ in true }) async throws -> Greeting {
        try await pool.read { db in
            guard let registration = try Self.registration(db, replica) else {
                return Greeting(registration: nil, standing: .failure(ServerError(.unknownCertificate, "not enrolled")), signingKey: "", names: nil)
            }
            // Its failure is kept, not thrown: the hello's own refusals (revoked, rewound…) come first.
            let position: Result<Standing, any Error> = admits(registration)
                ? Result { try self.standing(db, of: hello, replica: replica, processed: registration.acknowledged, at: at) }
                : .failure(ServerError(.internalError, "the hello is refused"))
            return Greeting(registration: registration, standing: position,
                            signingKey: try signingKey(db), names: hello.protocolVersion >= 5 ? try Self.workstationNames(db) : nil)
        }
    }

    public struct Greeting: Sendable {
        public var registration: Registration?
        public var standing: Result<Standing, any Error>
        public var signingKey: String
        public var names: [ReplicaID: String]?
    }

    /// The registry's names by replica id, for a welcome: every workstation ever enrolled (revoked
    /// ones too, whose writes stay in the records), and each of the server's own writers (its runs)
    /// with an empty name.
    static func workstationNames(_ db: Database) throws -> [ReplicaID: String] {
        var names: [ReplicaID: String] = [:]
        for writer in try String.fetchAll(db, sql: "SELECT writer FROM server_runs") {
            if let id = ReplicaID(writer) { names[id] = "" }
        }
        for row in try Row.fetchAll(db, sql: "SELECT replica_id, name FROM server_replicas") {
            if let id = ReplicaID(row["replica_id"] as String) { names[id] = row["name"] }
        }
        return names
    }

    /// A write of the registry's bookkeeping — when a workstation was last seen, what it reported —
    /// committed without waiting for the disk (`synchronous = NORMAL` for this one transaction): a
    /// power cut may lose it, never half of it, and the next session writes it again. A no-op sync
    /// then costs the server no flush to disk; every change to the records still commits `FULL`.
    func writeBookkeeping<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.writeWithoutTransaction { db in try SyncStore.inBookkeepingTransaction(db, body) }
    }

    /// Records that a workstation showed up (also when it is then refused), and when the
    /// certificate it presented expires if the registry did not know (`expires`: a workstation
    /// enrolled before 0.5). Bookkeeping (`writeBookkeeping`).
    public func recordSeen(_ replicaID: ReplicaID, at: Date, hello: WireMessage.Hello?,
                           expires: (serial: String, at: Date)? = nil) async throws {
        try await writeBookkeeping { db in
            if let expires {
                try db.execute(sql: "UPDATE server_replicas SET certificate_expires = ? WHERE replica_id = ? AND serial = ? AND certificate_expires IS NULL",
                               arguments: [Timestamp.format(expires.at), replicaID.description, expires.serial])
            }
            let now = Timestamp.format(at)
            try db.execute(sql: "UPDATE server_replicas SET first_seen = COALESCE(first_seen, ?), last_seen = ? WHERE replica_id = ?",
                           arguments: [now, now, replicaID.description])
            if let hello {
                // The workstation's wall clock against the server's (not its hybrid clock, which a
                // wrong clock elsewhere may have moved).
                let skew = Int64(clamping: hello.wallNow) - Int64(Self.milliseconds(at))
                try db.execute(sql: "UPDATE server_replicas SET client_version = ?, schema_version = ?, clock_skew_ms = ? WHERE replica_id = ?",
                               arguments: [hello.clientVersion, Int64(hello.schemaVersion), skew, replicaID.description])
            }
        }
    }

    /// Records that two histories were seen under one replica id: the admin view shows it `forked`.
    public func recordFork(_ replicaID: ReplicaID, at: Date) async {
        _ = try? await pool.write { db in try Self.recordFork(db, replicaID, at: at) }
    }

    static func recordFork(_ db: Database, _ replicaID: ReplicaID, at: Date) throws {
        try db.execute(sql: "UPDATE server_replicas SET forked_at = COALESCE(forked_at, ?) WHERE replica_id = ?",
                       arguments: [Timestamp.format(at), replicaID.description])
    }

    /// Records a failed or refused session: a code and a time, never personal data.
    public func recordError(_ replicaID: ReplicaID, code: String, at: Date) async {
        _ = try? await pool.write { db in
            try db.execute(sql: "UPDATE server_replicas SET last_error_code = ?, last_error_at = ? WHERE replica_id = ?",
                           arguments: [code, Timestamp.format(at), replicaID.description])
        }
    }

    /// Records a completed session: where the workstation's cursor now is, what it still has to push.
    /// Bookkeeping (`writeBookkeeping`): a report lost to a power cut is made again by the next session.
    public func recordReport(_ replicaID: ReplicaID, cursor: Int64, outbox: UInt64, databaseBytes: UInt64, at: Date) async throws {
        try await writeBookkeeping { db in
            try db.execute(sql: "UPDATE server_replicas SET cursor = ?, unsynced = ?, database_bytes = ?, last_sync = ? WHERE replica_id = ?",
                           arguments: [cursor, Int64(outbox), Int64(databaseBytes), Timestamp.format(at), replicaID.description])
            // A restored store stops taking other replicas' changes back once every workstation
            // that may hold some (not revoked, not a refused copy) has synced since the restore, and
            // at the latest after `restoreWindow`.
            if let restored = try String.fetchOne(db, sql: "SELECT restored_at FROM server_identity WHERE id = 1") {
                let expired = (try? Date(restored, strategy: .iso8601)).map { at.timeIntervalSince($0) > Self.restoreWindow } ?? true
                let waiting = try !expired && (Bool.fetchOne(db, sql: """
                    SELECT 1 FROM server_replicas WHERE revoked_at IS NULL AND forked_at IS NULL AND (last_sync IS NULL OR last_sync < ?) LIMIT 1
                    """, arguments: [restored]) ?? false)
                if !waiting { try db.execute(sql: "UPDATE server_identity SET restored_at = NULL WHERE id = 1") }
            }
        }
        // An erasure's truncation of the WAL that readers held off is tried again after every session.
        await checkpointAfterErasure()
    }

    /// The last position of the server's log, read now (for commands; the server reads it async).
    public func logHead() throws -> Int64 {
        try pool.read { db in try store.head(db) }
    }

    /// The last position of the server's log.
    public func head() async throws -> Int64 {
        try await pool.read { db in try store.head(db) }
    }

    /// Where a workstation stands against this log.
    public struct Standing: Sendable {
        public var head: Int64
        /// The last position its history and the server's share (its cursor when nothing diverged).
        public var resume: Int64
        /// When the server may lack changes the workstation holds (the histories diverged, or the
        /// server processed less of this replica than the replica knows it acknowledged): the
        /// highest counter of the workstation's own changes in the shared history. It sends back its
        /// own changes above it, and the server compares each one with what it holds.
        public var ownCommon: UInt64?
        /// When, besides, this store is a restored backup: the highest counter it holds of every
        /// replica, so the workstation gives back other replicas' changes it lacks.
        public var holdings: VersionVector?
    }

    /// How long a restored store takes other replicas' changes back at most, whoever has not synced.
    public static let restoreWindow: TimeInterval = 7 * 86_400

    func standing(_ db: Database, of hello: WireMessage.Hello, replica: ReplicaID, processed: UInt64, at: Date) throws -> Standing {
        let head = try store.head(db)
        let cursor = max(0, hello.cursor)
        var resume = cursor
        if cursor > head {
            resume = try store.lastCommonPosition(db, of: hello.checkpoints.filter { $0.position <= head })
        } else if !hello.checkpoints.isEmpty {
            // No checkpoints at all: a replica from before 0.5, whose cursor is trusted as before.
            resume = min(cursor, try store.lastCommonPosition(db, of: hello.checkpoints.filter { $0.position <= head }))
        }
        var standing = Standing(head: head, resume: resume)
        // What the workstation last saw acknowledged must be what the server holds under that
        // number: if not, the server lost it, or a copy of the workstation put something else there.
        var acknowledgedHeld = true
        if hello.acknowledged > 0, hello.acknowledged <= processed, let digest = hello.acknowledgedDigest {
            if case .same = try sameContent(db, dot: Dot(replica: replica, counter: hello.acknowledged), digest: digest) {} else {
                acknowledgedHeld = false
            }
        }
        guard resume < cursor || processed < hello.acknowledged || !acknowledgedHeld else { return standing }
        standing.ownCommon = try store.highestCounter(db, of: replica, upTo: resume)
        if let restored = try String.fetchOne(db, sql: "SELECT restored_at FROM server_identity WHERE id = 1"),
           let since = try? Date(restored, strategy: .iso8601), at.timeIntervalSince(since) <= Self.restoreWindow {
            var held = try store.holdings(db)
            // What the registry says it processed counts too (refused changes are not in the log).
            for row in try Row.fetchAll(db, sql: "SELECT replica_id, MAX(acknowledged, relayed) FROM server_replicas") {
                guard let id = ReplicaID(row[0] as String) else { continue }
                held.absorb(Dot(replica: id, counter: UInt64(max(0, row[1] as Int64))))
            }
            standing.holdings = held
        }
        return standing
    }

    // MARK: Merge

    /// What merging one pushed (or recovered) batch did.
    public struct PushResult: Hashable, Sendable {
        /// The batch's last counter: every change of the batch up to it is merged, refused or a resend.
        public var upToCounter: UInt64
        public var rejected: [WireMessage.Rejection]
        public var merged: Int
        public var conflictsCreated: Int
        /// Of a recovery batch: the refused changes, with whose they are.
        public var recoveryRejections: [WireMessage.RecoveryRejection] = []
        /// Of a recovery batch: changes of other replicas whose dot the server already held with
        /// other content (their replica forked); skipped.
        public var divergent: Int = 0
        /// Of a recovery batch: changes of replicas the server does not know (or of its current
        /// run); skipped.
        public var skipped: Int = 0
    }

    /// Merges one pushed batch in one transaction: each change of `replicaID` in counter order,
    /// refusing (and reporting) changes that break the shelter's rules, recording a conflict row for
    /// each concurrent write, then holding the one-family-per-room invariant.
    ///
    /// A change the server has processed before is a resend when its content is the same (skipped,
    /// an earlier refusal reported again) and a fork when it differs: the batch is refused with
    /// `replicaForked` and nothing of it is kept.
    /// `signatures`: verifications made ahead (`preverify`), taken by the rules' check.
    public func mergePush(from replicaID: ReplicaID, changes: [CellChange], at: Date = Date(), maxClockSkew: TimeInterval? = nil,
                          signatures: SignatureChecks? = nil) async throws -> PushResult {
        // The digests `preverify` made of this very batch, by dot (when its dots are distinct).
        var known: [Dot: LogHash]?
        if let digests = signatures?.takeDigests(of: changes) {
            known = Dictionary(zip(changes.map(\.dot), digests), uniquingKeysWith: { first, _ in first })
            if known?.count != changes.count { known = nil }
        }
        let result = try await pool.write { [known] db in
            try store.withMergeMemo(db) {
                try merge(db, from: replicaID, changes: changes.sorted(by: { $0.dot.counter < $1.dot.counter }), recovering: false,
                          maxClockSkew: maxClockSkew, at: at, signatures: signatures, digests: known)
            }
        }
        await checkpointAfterErasure()
        return result
    }

    /// After a merge that erased: the WAL's old frames (the pages as they were, with her values)
    /// are checkpointed and the WAL truncated; while readers hold old pages, at a later merge.
    func checkpointAfterErasure() async {
        guard store.erasureCheckpoint.isPending else { return }
        try? await pool.writeWithoutTransaction { [store] db in store.erasureCheckpoint.checkpoint(db) }
    }

    /// Merges a recovery batch: changes a server that went back in time lacks and a workstation
    /// sends again — its own it had acknowledged, and (`relays`: the store is a restored backup)
    /// other replicas' it had pulled — in the workstation's log order (causal). Each is merged as if
    /// it had arrived late: the same rules, the room rule, conflicts. A change the server holds as
    /// sent is skipped (an earlier refusal reported again); one whose dot it holds with other
    /// content is a fork (refused for the pusher's own, skipped and counted for another replica's).
    /// Another replica's change is taken only from an enrolled workstation or an earlier run of
    /// this server, never under the current run's id; others are skipped and counted.
    public func mergeRecovery(from replicaID: ReplicaID, changes: [CellChange], relays: Bool, at: Date = Date(),
                              maxClockSkew: TimeInterval? = nil) async throws -> PushResult {
        let result = try await pool.write { db in
            try store.withMergeMemo(db) { try merge(db, from: replicaID, changes: changes, recovering: true, relays: relays, maxClockSkew: maxClockSkew, at: at) }
        }
        await checkpointAfterErasure()
        return result
    }

    /// `digests`: each change's `LogHash.of` by dot, made by `preverify` from these very changes.
    func merge(_ db: Database, from pusher: ReplicaID, changes: [CellChange], recovering: Bool, relays: Bool = false,
               maxClockSkew: TimeInterval? = nil, at: Date, signatures: SignatureChecks? = nil, digests known: [Dot: LogHash]? = nil) throws -> PushResult {
        let wall = Self.milliseconds(at)
        var processed = Processed(db: db, store: store)
        var result = PushResult(upToCounter: 0, rejected: [], merged: 0, conflictsCreated: 0)
        var touchedStays = false
        var touchedPersons = false
        var newlyRejected: [ReplicaID: Int] = [:]
        var clock = try store.loadClock(db)
        var openConflicts = OpenFieldConflicts()
        var merged: [CellChange] = []
        func refuse(_ change: CellChange, code: String, reason: String) {
            if change.dot.replica == pusher && !recovering {
                result.rejected.append(.init(counter: change.dot.counter, code: code, reason: reason))
            } else {
                result.recoveryRejections.append(.init(dot: change.dot, code: code, reason: reason))
            }
        }
        // Transactions: each origin's changes up to and including the one that carries the seal.
        var open: [ReplicaID: [CellChange]] = [:]
        var transactions: [[CellChange]] = []
        for change in changes {
            let origin = change.dot.replica
            if origin != pusher {
                guard recovering else {
                    throw ServerError(.foreignDot, "replica \(pusher) pushed a change with a dot of replica \(origin)")
                }
                guard relays else {
                    throw ServerError(.protocolViolation, "replica \(pusher) sent back a change of replica \(origin), but this server was not restored from a backup")
                }
                guard origin != serverID, try processed.isRegistered(origin) || (try processed.isEarlierRun(origin)) else {
                    // The current run's id (the server has every change it wrote), or a replica
                    // it does not know (an enrollment its registry lost): skipped, never written.
                    result.skipped += 1
                    continue
                }
            }
            open[origin, default: []].append(change)
            if change.seal != nil { transactions.append(open.removeValue(forKey: origin)!) }
        }
        // A batch that ends inside a transaction: the workstation's own changes are refused (it
        // never splits one); another's given back are skipped (a later batch brings them whole).
        for (origin, tail) in open {
            if origin == pusher { transactions.append(tail) } else { result.skipped += tail.count }
        }
        let serverKey = try signingKey(db)
        let rows = store.rows(db)
        for transaction in transactions {
            var fresh: [CellChange] = []
            for change in transaction {
                let origin = change.dot.replica
                if change.dot.counter <= (try processed.bound(of: origin)) {
                    // A number the server processed before: a resend if the content is the same, a fork
                    // if it is not; a number it never stored is new after all.
                    switch try sameContent(db, change) {
                    case .same(let refusal):
                        if origin == pusher, let refusal { refuse(change, code: refusal.code, reason: refusal.reason) }
                        // Its own change, which another had given back on its behalf: now its own counter says so.
                        processed.advance(origin, to: change.dot.counter)
                        continue
                    case .different:
                        if origin == pusher {
                            throw ServerError(.replicaForked, "change \(change.dot.counter) of this replica is not the change the server already holds under that number: this replica file is a copy, or was restored from a backup, and another copy already sent other changes under the same numbers")
                        }
                        result.divergent += 1
                        continue
                    case .absent:
                        break
                    }
                }
                fresh.append(change)
            }
            guard !fresh.isEmpty else { continue }
            // One verdict for the whole transaction (DESIGN §4): its signature, its signer's role by
            // the staff table as it stands, and every rule of the shelter; then the clock bound.
            // Each change's digest, made once: for the signature and for the hash chain.
            let digests = transaction.map { known?[$0.dot] ?? LogHash.of($0) }
            let digestOf = Dictionary(zip(transaction.map(\.dot), digests), uniquingKeysWith: { first, _ in first })
            var refusal = try ShelterRules.check(transaction, rows: rows, serverKey: serverKey, digests: digests, signatures: signatures)
            if refusal == nil { refusal = try refusedDependency(db, transaction) }
            if refusal == nil { refusal = fresh.lazy.compactMap { Self.erasedRefusal($0, recovering: recovering) }.first }
            if refusal == nil, let maxClockSkew,
               let ahead = fresh.first(where: { Double($0.hlc.milliseconds) > Double(wall) + maxClockSkew * 1000 }) {
                // Stamped past the server's clock and the bound: merged, it would pull every clock
                // that sees it ahead (DESIGN §2: the HLC never decides causality, but it orders).
                refusal = Refusal("clockSkew", "change \(ahead.dot.counter) is stamped \(ServerSession.span(milliseconds: ahead.hlc.milliseconds - wall)) ahead of the server's clock")
            }
            // Change by change, not as one batch: each change's conflict bookkeeping (its open
            // conflicts, the pairs it made, the server's own writes settling them) must see the row
            // as that change left it, before the next change of the transaction is merged — done
            // after the whole transaction, a seed of the simulation left a conflict listing a value
            // a later write had replaced (DESIGN-NOTES "The batch merge").
            for change in fresh {
                let origin = change.dot.replica
                if let refusal {
                    refuse(change, code: refusal.code, reason: refusal.reason)
                    newlyRejected[origin, default: 0] += 1
                    try db.execute(sql: "INSERT OR REPLACE INTO server_rejections (replica_id, counter, code, reason, at, digest) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [origin.description, Int64(change.dot.counter), refusal.code, refusal.reason, Timestamp.format(at),
                                               Data((digestOf[change.dot] ?? LogHash.of(change)).bytes)])
                } else {
                    let report = try store.merge(db, change, clock: &clock, wallMilliseconds: wall, digest: digestOf[change.dot])
                    if case .merged(_, _, let released) = report { merged.append(contentsOf: released) }
                    if case .merged(_, let concurrent, _) = report {
                        let fields = try openConflicts.on(db, change)
                        if !fields.isEmpty || concurrent.contains(where: { !$0.sameValue }) {
                            // The server's own writes tick from the stored clock: save it first, reload after.
                            try store.saveClock(db, clock)
                            let created = try updateConflicts(db, change, open: fields, concurrent: concurrent, at: at)
                            if created > 0 { openConflicts.created() }
                            result.conflictsCreated += created
                            clock = try store.loadClock(db)
                        }
                    }
                    if case .duplicate = report {} else {
                        result.merged += 1
                        merged.append(change)
                    }
                    if change.table == ShelterSchema.stays.name || change.table == ShelterSchema.rooms.name { touchedStays = true }
                    if change.table == ShelterSchema.stays.name || change.values["cpr_index"] != nil { touchedPersons = true }
                }
                processed.advance(origin, to: change.dot.counter)
            }
        }
        // Saved before the server's own writes (conflicts, compensations), which tick from it.
        try store.saveClock(db, clock)
        if touchedStays { result.conflictsCreated += try holdRoomInvariant(db, at: at) }
        // Erasures merged now are carried out, and what this push brought to a resident erased
        // before is cleared, conflict rows included (erasure wins over a concurrent edit).
        try Erasure.afterMerge(db, store: store, changes: merged, keepUnsynced: false)
        if touchedPersons { result.conflictsCreated += try findSamePerson(db, at: at) }
        // A shelter key given back after a restore, made before a revocation, is retired too.
        if merged.contains(where: { $0.table == ShelterSchema.keyGrants.name }) { try retireKeysOfRevoked(db) }
        try sealOwn(db)
        // Acknowledged: this batch, not everything processed under this replica id. A copy of the
        // replica resending its shared past must not have its own later changes marked as taken
        // because another copy sent other changes under those numbers.
        result.upToCounter = recovering ? 0 : (changes.last?.dot.counter ?? 0)
        for (replica, counter) in processed.advanced where try processed.isRegistered(replica) {
            // A workstation's own processed counter moves only with its own changes; another's
            // given back on its behalf moves `relayed`, which never makes it look rewound.
            let column = replica == pusher ? "acknowledged" : "relayed"
            try db.execute(sql: "UPDATE server_replicas SET \(column) = MAX(\(column), ?), rejected = rejected + ? WHERE replica_id = ?",
                           arguments: [Int64(counter), newlyRejected[replica] ?? 0, replica.description])
        }
        if recovering && result.merged > 0 {
            try db.execute(sql: "UPDATE server_replicas SET recovered = recovered + ? WHERE replica_id = ?",
                           arguments: [result.merged, pusher.description])
        }
        return result
    }

    /// Checks the signatures of a pushed batch ahead of its merge, against the signers' keys as the
    /// store holds them now, and keeps each success in `checks` (the TLS server calls it as a batch
    /// arrives, on another core, while the batch before it merges). Nothing is decided here: the
    /// merge's rules check every signature still, and find these already done.
    public func preverify(_ changes: [CellChange], checks: SignatureChecks) async {
        // Each change's digest, made once: for its transaction's signature here, and kept for the
        // merge (its rules and the hash chain), which takes them by this very batch.
        let digests = changes.map(LogHash.of)
        checks.keep(digests, of: changes)
        var transactions: [[(change: CellChange, digest: LogHash)]] = [], current: [(change: CellChange, digest: LogHash)] = []
        for (change, digest) in zip(changes, digests).sorted(by: { $0.0.dot.counter < $1.0.dot.counter }) {
            current.append((change, digest))
            if change.seal != nil { transactions.append(current); current = [] }
        }
        let signers = Set(transactions.compactMap { $0.last?.change.seal?.signer })
        guard !signers.isEmpty, let keys = try? await pool.read({ db -> [String: String] in
            var keys: [String: String] = [:]
            for signer in signers {
                if signer == Seal.serverSigner { keys[signer] = try signingKey(db); continue }
                if let key = try String.fetchOne(db, sql: "SELECT signing_key FROM staff WHERE id = ?", arguments: [signer]) { keys[signer] = key }
            }
            return keys
        }) else { return }
        for transaction in transactions {
            let changes = transaction.map(\.change)
            guard let seal = changes.last?.seal, let key = keys[seal.signer], seal.isCheckable(over: changes) else { continue }
            checks.check(seal.signature, of: Seal.digest(signer: seal.signer, changes: changes, version: seal.version, digests: transaction.map(\.digest)),
                         signingKey: key)
        }
    }

    /// A change that says values of it were erased: only a store erases, so a workstation never
    /// pushes one of its own unsent changes erased; one given back to a restored server may be (the
    /// resident was erased since), and then only her erasable cells, each back at its default —
    /// every other value is still bound by the signature through its digest.
    static func erasedRefusal(_ change: CellChange, recovering: Bool) -> Refusal? {
        guard !change.erased.isEmpty else { return nil }
        guard recovering else {
            return Refusal("invalidChange", "change \(change.dot.counter) is pushed with erased values; only a store erases, after a leader's erasure")
        }
        return Erasure.erasedRefusal(change).map { Refusal("invalidChange", $0) }
    }

    /// How far the server has processed each replica's changes, inside one merge: for an enrolled
    /// workstation the registry (its own pushes, and changes given back on its behalf), for the
    /// server's runs the log.
    struct Processed {
        let db: Database
        let store: SyncStore
        private var bounds: [ReplicaID: UInt64] = [:]
        private var registered: [ReplicaID: Bool] = [:]
        private(set) var advanced: [ReplicaID: UInt64] = [:]

        init(db: Database, store: SyncStore) {
            self.db = db
            self.store = store
        }

        mutating func isRegistered(_ replica: ReplicaID) throws -> Bool {
            if let known = registered[replica] { return known }
            let known = try Bool.fetchOne(db, sql: "SELECT 1 FROM server_replicas WHERE replica_id = ?", arguments: [replica.description]) ?? false
            registered[replica] = known
            return known
        }

        func isEarlierRun(_ replica: ReplicaID) throws -> Bool {
            try Bool.fetchOne(db, sql: "SELECT 1 FROM server_runs WHERE writer = ?", arguments: [replica.description]) ?? false
        }

        /// Every counter of `replica` at or below this may be held already: compared by content.
        mutating func bound(of replica: ReplicaID) throws -> UInt64 {
            if let bound = bounds[replica] { return bound }
            var bound: UInt64
            if try isRegistered(replica) {
                bound = UInt64(max(0, try Int64.fetchOne(db, sql: "SELECT MAX(acknowledged, relayed) FROM server_replicas WHERE replica_id = ?",
                                                         arguments: [replica.description]) ?? 0))
            } else {
                bound = try store.highestCounter(db, of: replica)
            }
            bounds[replica] = bound
            return bound
        }

        mutating func advance(_ replica: ReplicaID, to counter: UInt64) {
            bounds[replica] = max(bounds[replica] ?? 0, counter)
            advanced[replica] = max(advanced[replica] ?? 0, counter)
        }
    }

    enum Comparison {
        /// Held as sent; with the refusal when it was refused.
        case same(refusal: (code: String, reason: String)?)
        case different
        /// Not held at all.
        case absent
    }

    /// Whether `change` is the change the server already processed under its dot.
    func sameContent(_ db: Database, _ change: CellChange) throws -> Comparison {
        try sameContent(db, dot: change.dot, digest: LogHash.of(change))
    }

    /// Whether the change with `digest` is what the server holds under `dot`.
    func sameContent(_ db: Database, dot: Dot, digest: LogHash) throws -> Comparison {
        if let logged = try store.logEntry(db, of: dot) {
            return LogHash.of(logged.change) == digest ? .same(refusal: nil) : .different
        }
        if let held = try store.heldBack(db, of: dot) {
            return LogHash.of(held) == digest ? .same(refusal: nil) : .different
        }
        if let row = try Row.fetchOne(db, sql: "SELECT code, reason, digest FROM server_rejections WHERE replica_id = ? AND counter = ?",
                                      arguments: [dot.replica.description, Int64(dot.counter)]) {
            let refusal = (code: row["code"] as String, reason: row["reason"] as String)
            // A refusal stored before 0.5 has no digest: taken for the same change, as before.
            guard let stored = (row["digest"] as Data?).flatMap({ LogHash(bytes: $0) }) else { return .same(refusal: refusal) }
            return stored == digest ? .same(refusal: refusal) : .different
        }
        return .absent
    }

    /// The competing writes of a conflict, as stored in its `dots` column (`replica:counter|…`).
    static func dots(_ dots: [Dot]) -> String { dots.map(\.description).joined(separator: "|") }

    /// The id of a conflict: derived from the competing dots, so one found twice is one row.
    static func conflictID(_ parts: [String]) -> String {
        let digest = SHA256.hash(data: Data(parts.sorted().joined(separator: "|").utf8))
        return digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    private func exists(_ db: Database, conflict id: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM conflicts WHERE id = ?", arguments: [id]) ?? false
    }

    /// Author and time of a logged write, by its dot.
    private func origin(_ db: Database, _ dot: Dot) throws -> (author: String, at: String) {
        let logged = try store.logPosition(db, of: dot)
        let hlc = logged?.hlc ?? .zero
        return (logged?.author ?? "unknown", Timestamp.format(Date(timeIntervalSince1970: Double(hlc.milliseconds) / 1000)))
    }

    /// The open field conflicts of a batch's cells, looked up only while some exist (most batches
    /// meet none: one query per batch).
    struct OpenFieldConflicts {
        private var anyOpen: Bool?

        mutating func on(_ db: Database, _ change: CellChange) throws -> [String: [String]] {
            if anyOpen == nil {
                anyOpen = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM conflicts WHERE status = 'open' AND kind = 'field')") ?? false
            }
            guard anyOpen == true else { return [:] }
            var found: [String: [String]] = [:]
            for row in try Row.fetchAll(db.cachedStatement(sql: """
                SELECT id, col FROM conflicts WHERE status = 'open' AND kind = 'field' AND tbl = ? AND row = ? ORDER BY id
                """), arguments: [change.table, change.rowID]) {
                guard let column = row["col"] as String?, change.values[column] != nil else { continue }
                found[column, default: []].append(row["id"])
            }
            return found
        }

        mutating func created() { anyOpen = true }
    }

    /// Keeps every field conflict listing values of its cell's frontier — the writes no later write
    /// to the cell has seen — after `change` was merged, so no one resolves a conflict by picking a
    /// value a later write had already replaced (DESIGN §2: nothing silently reverted). For each
    /// column the change writes, an open conflict one or more of whose values the change's writer
    /// had seen drops them and lists the change's own value instead; when the values left are equal
    /// (the writer saw every other), the conflict is settled by that write and closed. Two concurrent
    /// writes with different values that no open conflict lists yet make a new conflict, as before.
    /// Returns the conflicts created.
    func updateConflicts(_ db: Database, _ change: CellChange, open: [String: [String]], concurrent: [ConcurrentWrite], at: Date) throws -> Int {
        var created = 0
        guard let table = ShelterSchema.schema.table(named: change.table) else { return 0 }
        let current = try store.rowMeta(db, table: table, rowID: change.rowID)
        for column in change.values.keys.sorted() where !Self.uncontested(table: change.table, column: column) {
            var listed: [Set<Dot>] = []
            for id in open[column] ?? [] {
                guard let row = try Row.fetchOne(db, sql: "SELECT candidates, dots FROM conflicts WHERE id = ?", arguments: [id]) else { continue }
                let candidates = Conflict.decode(row["candidates"])
                let dots = (row["dots"] as String? ?? "").split(separator: "|").compactMap { Dot(String($0)) }
                guard dots.count == candidates.count else { continue }  // written before dots were kept: left as it is
                let unseen = zip(candidates, dots).filter { !change.context.contains($0.1) && $0.1 != change.dot }
                guard unseen.count < candidates.count else {
                    listed.append(Set(dots))  // concurrent with every value it lists: it stays as it is
                    continue
                }
                let origin = Timestamp.format(Date(timeIntervalSince1970: Double(change.hlc.milliseconds) / 1000))
                let frontier = unseen + [(Conflict.Candidate(value: change.values[column] ?? .null, author: change.author,
                                                             replica: change.dot.replica.description, at: origin), change.dot)]
                if Set(frontier.map(\.0.value)).count < 2 {
                    // The writer saw every other value (or wrote an equal one): it settled the conflict.
                    // Only the status is written: a resolution made with `conflicts resolve` writes the
                    // same status and its own resolver and time, which nothing contests.
                    try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
                        "status": .text(Conflict.Status.resolved.rawValue),
                    ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
                    continue
                }
                if try listsPair(db, table: change.table, rowID: change.rowID, column: column, dots: Set(frontier.map(\.1)), except: id) {
                    // Another conflict of the cell lists these values already: this one is settled
                    // into it rather than become its twin.
                    try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
                        "status": .text(Conflict.Status.resolved.rawValue),
                    ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
                    listed.append(Set(frontier.map(\.1)))
                    continue
                }
                let winner = table.keepBoth.contains(column) ? nil : frontier.firstIndex { $0.1 == current?.cells[column]?.dot }
                try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
                    "candidates": .text(Conflict.encode(frontier.map(\.0))),
                    "dots": .text(Self.dots(frontier.map(\.1))),
                    "winner": winner.map { .integer(Int64($0)) } ?? .null,
                ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
                listed.append(Set(frontier.map(\.1)))
            }
            for pair in concurrent where pair.column == column && !pair.sameValue {
                guard !listed.contains(where: { $0.contains(pair.current.dot) && $0.contains(pair.incoming.dot) }) else { continue }
                if try recordFieldConflict(db, pair, at: at) { created += 1 }
            }
        }
        return created
    }

    /// Cells two writes never contest: a resident's wrapped key and CPR index, written again by
    /// leaders rotating the shelter key — concurrent rotations write equally valid values (the
    /// later stamp stays; the next leader's sync puts any under a retired key right), and a
    /// conflict row would only keep an old wrapping or index where a retired key reads it.
    static func uncontested(table: String, column: String) -> Bool {
        table == ShelterSchema.residents.name && Erasure.supersededColumns.contains(column)
    }

    /// Whether a conflict of the cell (other than `except`) lists exactly `dots`.
    private func listsPair(_ db: Database, table: String, rowID: String, column: String, dots: Set<Dot>, except: String?) throws -> Bool {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT id, dots FROM conflicts WHERE tbl = ? AND row = ? AND col = ? AND dots IS NOT NULL"),
                         arguments: [table, rowID, column]).contains { row in
            (row["id"] as String) != except && Set((row["dots"] as String).split(separator: "|").compactMap { Dot(String($0)) }) == dots
        }
    }

    private func recordFieldConflict(_ db: Database, _ pair: ConcurrentWrite, at: Date) throws -> Bool {
        let id = Self.conflictID(["field", pair.table, pair.rowID, pair.column, pair.current.dot.description, pair.incoming.dot.description])
        guard try !exists(db, conflict: id) else { return false }
        // Another conflict of the cell may list this very pair already: one whose values moved to
        // the frontier (its id names the pair it began with), made by an earlier run of the server
        // and given back after a restore. Open or resolved, the pair is not reported twice.
        if try listsPair(db, table: pair.table, rowID: pair.rowID, column: pair.column, dots: [pair.current.dot, pair.incoming.dot], except: nil) {
            return false
        }
        let current = try origin(db, pair.current.dot)
        let incoming = try origin(db, pair.incoming.dot)
        let candidates = [
            Conflict.Candidate(value: pair.currentValue, author: current.author, replica: pair.current.dot.replica.description, at: current.at),
            Conflict.Candidate(value: pair.incomingValue, author: incoming.author, replica: pair.incoming.dot.replica.description, at: incoming.at),
        ]
        try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
            "kind": .text(Conflict.Kind.field.rawValue), "tbl": .text(pair.table), "row": .text(pair.rowID),
            "col": .text(pair.column), "status": .text(Conflict.Status.open.rawValue),
            "candidates": .text(Conflict.encode(candidates)),
            "winner": pair.keepBoth ? .null : .integer(pair.incomingWins ? 1 : 0),
            "detected_at": .text(Timestamp.format(at)),
            "dots": .text(Self.dots([pair.current.dot, pair.incoming.dot])),
        ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
        return true
    }

    /// The invariants of stays and rooms, held after every merge that touched them (DESIGN §2).
    /// Field-level merge decides each cell on its own, so concurrent writes can leave a row that no
    /// single write made (an `assign` and the server's compensation, say); the server repairs that
    /// with writes of its own:
    /// 1. an active stay with no room, or a room that does not exist, goes back to awaiting a room;
    /// 2. a room taken out of service while a family lives in it is put back in service (a confirmed
    ///    placement never moves);
    /// 3. one family per room: of two active stays in one room, the one the server confirmed first
    ///    keeps it; the others go back to awaiting a room, with a `room` conflict naming both stays
    ///    and suggesting a free room.
    /// Returns the conflicts created.
    func holdRoomInvariant(_ db: Database, at: Date) throws -> Int {
        // The rule's inputs: the rooms, the active stays and when each placement reached the log.
        let rooms = Dictionary(try Row.fetchAll(db, sql: "SELECT number, in_service FROM rooms").map { ($0["number"] as Int, ($0["in_service"] as Int? ?? 1) != 0) },
                               uniquingKeysWith: { a, b in a || b })
        var active: [RoomRules.Placement] = []
        for row in try Row.fetchAll(db, sql: "SELECT id, room FROM stays WHERE status = 'active'") {
            let stay: String = row["id"], room: Int? = row["room"]
            var placement = RoomRules.Placement(stay: stay, room: room, dot: nil, position: .max)
            if room != nil, let stamp = try store.rowMeta(db, table: ShelterSchema.stays, rowID: stay)?.cells["room"] {
                placement.dot = stamp.dot
                placement.position = try store.logPosition(db, of: stamp.dot)?.sequence ?? .max
            }
            active.append(placement)
        }
        let repairs = RoomRules.repairs(rooms: rooms, active: active)
        // Its answer, written as the server's own changes.
        for stay in repairs.roomless {
            try repair(db, table: ShelterSchema.stays.name, rowID: stay, at: at, values: [
                "status": .text(Stay.Status.awaitingRoom.rawValue), "room": .null,
            ])
        }
        for number in repairs.reopen {
            try repair(db, table: ShelterSchema.rooms.name, rowID: Room.rowID(number), at: at, values: ["in_service": .bool(true)])
        }
        var created = 0
        for displacement in repairs.displaced {
            let (room, keeper, displaced) = (displacement.room, displacement.keeper, displacement.displaced)
            try repair(db, table: ShelterSchema.stays.name, rowID: displaced.stay, at: at, values: [
                "status": .text(Stay.Status.awaitingRoom.rawValue), "room": .null,
            ])
            guard let keeperDot = keeper.dot, let displacedDot = displaced.dot else { continue }
            let id = Self.conflictID(["room", String(room), keeperDot.description, displacedDot.description])
            guard try !exists(db, conflict: id) else { continue }
            let keeperOrigin = try origin(db, keeperDot)
            let displacedOrigin = try origin(db, displacedDot)
            try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
                "kind": .text(Conflict.Kind.room.rawValue), "tbl": .text(ShelterSchema.stays.name), "row": .text(displaced.stay),
                "col": .null, "status": .text(Conflict.Status.open.rawValue),
                "candidates": .text(Conflict.encode([
                    .init(value: .text(keeper.stay), author: keeperOrigin.author, replica: keeperDot.replica.description, at: keeperOrigin.at),
                    .init(value: .text(displaced.stay), author: displacedOrigin.author, replica: displacedDot.replica.description, at: displacedOrigin.at),
                ])),
                "winner": .integer(0),
                "suggestion": .optionalInteger(repairs.freeRoom),
                "detected_at": .text(Timestamp.format(at)),
                "dots": .text(Self.dots([keeperDot, displacedDot])),
            ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
            created += 1
        }
        return created
    }

    /// The same woman admitted twice: two current stays (awaiting a room or active) of residents
    /// whose CPR numbers have the same blind index. The server cannot read the numbers; it compares
    /// the indexes. It records one `person` conflict per pair: the stay it merged first is kept
    /// (`winner` 0), the later one suggested for merging into it (`suggestion` 1); staff resolve it
    /// with `conflicts resolve ID --merge`. Returns the conflicts created.
    func findSamePerson(_ db: Database, at: Date) throws -> Int {
        var byIndex: [String: [(stay: String, resident: String)]] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT r.cpr_index, s.id, s.resident FROM stays s JOIN residents r ON r.id = s.resident
            WHERE s.status IN ('active', 'awaitingRoom') AND r.cpr_index IS NOT NULL AND r.cpr_index <> '' AND r.anonymous = 0
              AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.id = r.id)
            """) {
            byIndex[row[0], default: []].append((row[1], row[2]))
        }
        var created = 0
        for stays in byIndex.values where Set(stays.map(\.resident)).count > 1 {
            var placed: [(stay: String, resident: String, dot: Dot, position: Int64)] = []
            for stay in stays {
                guard let dot = try store.rowMeta(db, table: ShelterSchema.stays, rowID: stay.stay)?.cells["admitted_at"]?.dot else { continue }
                placed.append((stay.stay, stay.resident, dot, try store.logPosition(db, of: dot)?.sequence ?? .max))
            }
            placed.sort { ($0.position, $0.stay) < ($1.position, $1.stay) }
            guard let keeper = placed.first else { continue }
            for other in placed.dropFirst() where other.resident != keeper.resident {
                let id = Self.conflictID(["person", keeper.stay, other.stay])
                guard try !exists(db, conflict: id) else { continue }
                let keeperOrigin = try origin(db, keeper.dot), otherOrigin = try origin(db, other.dot)
                try store.write(db, table: ShelterSchema.conflicts.name, rowID: id, values: [
                    "kind": .text(Conflict.Kind.person.rawValue), "tbl": .text(ShelterSchema.stays.name), "row": .text(other.stay),
                    "col": .null, "status": .text(Conflict.Status.open.rawValue),
                    "candidates": .text(Conflict.encode([
                        .init(value: .text(keeper.stay), author: keeperOrigin.author, replica: keeper.dot.replica.description, at: keeperOrigin.at),
                        .init(value: .text(other.stay), author: otherOrigin.author, replica: other.dot.replica.description, at: otherOrigin.at),
                    ])),
                    "winner": .integer(0),
                    "suggestion": .integer(1),
                    "detected_at": .text(Timestamp.format(at)),
                    "dots": .text(Self.dots([keeper.dot, other.dot])),
                ], author: Self.author, wallMilliseconds: Self.milliseconds(at))
                created += 1
            }
        }
        return created
    }

    /// A write of the server's own that repairs an invariant: like any write to a cell, it settles
    /// or narrows an open field conflict whose values it has seen.
    private func repair(_ db: Database, table: String, rowID: String, at: Date, values: [String: SyncValue]) throws {
        let change = try store.write(db, table: table, rowID: rowID, values: values, author: Self.author, wallMilliseconds: Self.milliseconds(at))
        var open = OpenFieldConflicts()
        let fields = try open.on(db, change)
        if !fields.isEmpty { _ = try updateConflicts(db, change, open: fields, concurrent: [], at: at) }
    }

    // MARK: Pull

    /// The next batch of the log after `cursor`, leaving out the replica's own changes (it has them).
    /// A read: the workstation's cursor is recorded once, by `recordReport` at the session's end.
    public func changes(for replicaID: ReplicaID, after cursor: Int64, limit: Int) async throws
        -> (batch: [WireMessage.Logged], next: Int64, nextHash: LogHash?, more: Bool) {
        try await pool.read { db in
            let read = try store.changes(db, after: cursor, notFrom: replicaID, limit: limit)
            return (read.changes.map { WireMessage.Logged(sequence: $0.sequence, change: $0.change) }, read.readUpTo, read.chain, read.more)
        }
    }
}

// MARK: - Snapshot

extension ServerStore {
    /// The rows of every synced table as they stand, with their metadata, in batches of at most
    /// `limit` rows (and `WireMessage.maximumBatchBytes`); then every change the log holds by dot and
    /// digest; then the seal: the log position they stand at, their digest, signed with the server's key. One read transaction: the rows and the
    /// position agree, whatever merges meanwhile (WAL).
    public func snapshot(limit: Int, at: Date = Date()) async throws -> [WireMessage] {
        let collected = Mutex<[WireMessage]>([])
        try await snapshot(limit: limit, at: at) { message in collected.withLock { $0.append(message) } }
        return collected.withLock { $0 }
    }

    /// The same, each message handed to `emit` as soon as it is made (the server sends a batch
    /// while it reads the next, and the workstation decodes it meanwhile).
    /// `emit` may throw to stop the read (the connection is gone).
    public func snapshot(limit: Int, at: Date = Date(), emit: @escaping @Sendable (WireMessage) throws -> Void) async throws {
        try await pool.read { db in
            let head = try store.head(db)
            var digest = SnapshotDigest()
            var batch: [SnapshotRow] = []
            var bytes = 0
            try store.snapshotRows(db) { row in
                var writer = BinaryWriter(capacity: 256)
                row.encode(into: &writer)
                digest.add(row, encoded: writer.bytes)
                if !batch.isEmpty && (batch.count >= limit || bytes + writer.bytes.count > WireMessage.maximumBatchBytes) {
                    try emit(.snapshotRows(batch))
                    batch = []
                    bytes = 0
                }
                batch.append(row)
                bytes += writer.bytes.count
            }
            if !batch.isEmpty { try emit(.snapshotRows(batch)) }
            // What the log held, by dot and digest, in batches of the byte limit.
            let perBatch = WireMessage.maximumBatchBytes / HeldChange.maximumBytes
            var held: [HeldChange] = []
            try store.heldChanges(db, upTo: head) { change in
                digest.add(change)
                held.append(change)
                if held.count == perBatch {
                    try emit(.snapshotHeld(held))
                    held = []
                }
            }
            if !held.isEmpty { try emit(.snapshotHeld(held)) }
            var seal = SnapshotSeal(position: head, chain: try store.chain(db, at: head), rows: digest.rows, held: digest.held,
                                    digest: digest.finish(), holdings: digest.holdings, takenAt: Self.milliseconds(at))
            seal.signature = try Self.signer(db).sign(seal.signedBytes(server: serverID))
            try emit(.snapshotEnd(seal))
        }
    }
}

// MARK: - Health

extension ServerStore {
    /// Stores the thresholds `shelter server run` was started with, so every reader of the store
    /// (`shelter server replicas`, the admin page) computes the same states.
    public func saveThresholds(_ thresholds: ReplicaHealth.Thresholds) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO server_settings (id, behind_lag, stale_after_seconds) VALUES (1, ?, ?)
                ON CONFLICT (id) DO UPDATE SET behind_lag = excluded.behind_lag, stale_after_seconds = excluded.stale_after_seconds
                """, arguments: [thresholds.behindLag, Int64(thresholds.staleAfter)])
        }
    }

    static func thresholds(_ db: Database) throws -> ReplicaHealth.Thresholds {
        guard let row = try Row.fetchOne(db, sql: "SELECT behind_lag, stale_after_seconds FROM server_settings WHERE id = 1") else {
            return ReplicaHealth.Thresholds()
        }
        return ReplicaHealth.Thresholds(behindLag: row["behind_lag"], staleAfter: TimeInterval(row["stale_after_seconds"] as Int64))
    }

    /// Every enrolled workstation's health, read in one transaction. Safe while the server runs.
    public func healthReport(now: Date = Date(), serverCertificateExpires: Date? = nil) throws -> HealthReport {
        try pool.read { db in try Self.healthReport(db, now: now, serverCertificateExpires: serverCertificateExpires) }
    }

    public func healthReport(now: Date = Date(), serverCertificateExpires: Date? = nil) async throws -> HealthReport {
        try await pool.read { db in try Self.healthReport(db, now: now, serverCertificateExpires: serverCertificateExpires) }
    }

    static func healthReport(_ db: Database, now: Date, serverCertificateExpires: Date? = nil) throws -> HealthReport {
        let thresholds = try thresholds(db)
        let head = try SyncStore(schema: ShelterSchema.schema).head(db)
        // Open conflicts per replica that wrote one of their values (few rows: open conflicts only).
        var openConflicts: [String: Int] = [:]
        for text in try String.fetchAll(db, sql: "SELECT candidates FROM conflicts WHERE status = 'open'") {
            for replica in Set(Conflict.decode(text).map(\.replica)) { openConflicts[replica, default: 0] += 1 }
        }
        // Where each erasure is in the log (few rows; found by the log's row index).
        let erasures = try Int64.fetchAll(db, sql: """
            SELECT (SELECT MIN(l.seq) FROM sync_log l WHERE l.row = e.id AND l.tbl = ?) FROM erasures e
            """, arguments: [ShelterSchema.erasures.code])
        let replicas = try Row.fetchAll(db, sql: "SELECT * FROM server_replicas ORDER BY name").map { row -> ReplicaHealth in
            let id: String = row["replica_id"]
            let lastSync: String? = row["last_sync"]
            let revoked = (row["revoked_at"] as String?) != nil
            let (difference, overflow) = head.subtractingReportingOverflow(row["cursor"] as Int64)
            let lag = overflow ? 0 : max(0, difference)
            let errorCode: String? = row["last_error_code"]
            let errorAt: String? = row["last_error_at"]
            let cursor: Int64 = row["cursor"]
            var health = ReplicaHealth(
                name: row["name"], replicaID: id, serial: row["serial"], enrolledAt: row["enrolled_at"],
                firstSeen: row["first_seen"], lastSeen: row["last_seen"], lastSync: lastSync,
                lastError: errorCode.map { ReplicaHealth.LastError(code: $0, at: errorAt ?? "") },
                lag: lastSync == nil ? head : lag, unsynced: row["unsynced"], rejected: row["rejected"],
                clientVersion: row["client_version"], schemaVersion: row["schema_version"], clockSkewMs: row["clock_skew_ms"],
                openConflicts: openConflicts[id] ?? 0, recovered: row["recovered"], forkedAt: row["forked_at"],
                certificateExpires: row["certificate_expires"], revoked: revoked,
                state: ReplicaHealth.state(revoked: revoked, forked: (row["forked_at"] as String?) != nil,
                                           clockRefused: errorCode == "clockSkew" && (lastSync == nil || (errorAt ?? "") >= (lastSync ?? "")),
                                           lastSync: lastSync.flatMap { try? Date($0, strategy: .iso8601) },
                                           lag: lag, certificateExpires: (row["certificate_expires"] as String?).flatMap { try? Date($0, strategy: .iso8601) },
                                           now: now, thresholds: thresholds))
            health.erasuresPending = erasures.filter { $0 > cursor }.count
            return health
        }
        let restoredAt = try db.tableExists("server_identity") ? try String.fetchOne(db, sql: "SELECT restored_at FROM server_identity WHERE id = 1") : nil
        return HealthReport(head: head, generatedAt: Timestamp.format(now), restoredAt: restoredAt,
                            serverCertificateExpires: serverCertificateExpires.map(Timestamp.format), replicas: replicas)
    }

    /// Whether the store takes writes (for `/healthz`); returns the log head. It waits at most
    /// `busyTimeout` for another connection's write lock (not the store's 10 s), so a locked store
    /// fails it quickly. It may still wait its turn behind the server's own writes: `/healthz` puts a
    /// deadline on the whole call.
    public func checkWritable(now: Date = Date(), busyTimeout: Duration = .seconds(1)) async throws -> Int64 {
        let (seconds, attoseconds) = busyTimeout.components
        let milliseconds = max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        return try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA busy_timeout = \(milliseconds)")
            defer { try? db.execute(sql: "PRAGMA busy_timeout = \(Int(Self.busyTimeout * 1000))") }
            var head: Int64 = 0
            try db.inTransaction(.immediate) {
                try db.execute(sql: """
                    INSERT INTO server_settings (id, behind_lag, stale_after_seconds, health_checked_at) VALUES (1, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET health_checked_at = excluded.health_checked_at
                    """, arguments: [ReplicaHealth.Thresholds().behindLag, Int64(ReplicaHealth.Thresholds().staleAfter), Timestamp.format(now)])
                head = try store.head(db)
                return .commit
            }
            return head
        }
    }
}

/// One line of the registry journal (`registry.journal` in the server directory): tab-separated.
enum RegistryEntry: Hashable, Sendable {
    case enroll(replicaID: ReplicaID, name: String, serial: String, at: String)
    case revoke(replicaID: ReplicaID, at: String)
    /// A run of the server started, writing under `writer`: a restored store then still knows it.
    case run(writer: ReplicaID, at: String)
    /// A workstation's certificate was renewed: the new serial, until when it is valid.
    case renew(replicaID: ReplicaID, serial: String, expires: String, at: String)

    var line: String {
        switch self {
        case .enroll(let id, let name, let serial, let at): ["enroll", id.description, name, serial, at].joined(separator: "\t")
        case .revoke(let id, let at): ["revoke", id.description, at].joined(separator: "\t")
        case .run(let writer, let at): ["run", writer.description, at].joined(separator: "\t")
        case .renew(let id, let serial, let expires, let at): ["renew", id.description, serial, expires, at].joined(separator: "\t")
        }
    }

    init?(line: String) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        switch fields.first {
        case "enroll" where fields.count == 5:
            guard let id = ReplicaID(fields[1]), !fields[2].isEmpty else { return nil }
            self = .enroll(replicaID: id, name: fields[2], serial: fields[3], at: fields[4])
        case "revoke" where fields.count == 3:
            guard let id = ReplicaID(fields[1]) else { return nil }
            self = .revoke(replicaID: id, at: fields[2])
        case "run" where fields.count == 3:
            guard let writer = ReplicaID(fields[1]) else { return nil }
            self = .run(writer: writer, at: fields[2])
        case "renew" where fields.count == 5:
            guard let id = ReplicaID(fields[1]), !fields[2].isEmpty else { return nil }
            self = .renew(replicaID: id, serial: fields[2], expires: fields[3], at: fields[4])
        default:
            return nil
        }
    }
}

/// A value read once and kept, shared by every copy of the struct that holds it.
final class Remembered<Value: Sendable>: Sendable {
    private let stored = Mutex<Value?>(nil)
    var value: Value? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
