import Foundation
import GRDB
import ShelterDomain
import SyncCore
import SyncTransport
import X509

/// A workstation's replica: one SQLite file holding the shelter's records and their sync metadata.
///
/// Every staff action is one method and one transaction that writes the domain rows *and* their
/// change records together (GRDB's `AppDatabase` pattern), so a crash leaves the whole action or
/// none of it. Works with no network at all.
public struct Replica: Sendable {
    public struct Configuration: Sendable {
        /// The wall clock (tests set their own).
        public var now: @Sendable () -> Date
        /// Runs inside every action's transaction just before it commits. Crash tests use it to
        /// stop a process mid-write; nothing else should.
        public var beforeCommit: (@Sendable () -> Void)?
        /// Sees the SQL of every statement the replica runs (tests check query plans with it).
        public var statementObserver: (@Sendable (String) -> Void)?
        /// Makes new row ids (128 random bits as 32 hex digits); a simulation sets a seeded one so a
        /// run replays exactly.
        public var makeID: @Sendable () -> String
        /// Whether the first pull takes the server's signed snapshot (default) or replays the whole
        /// log. A replica that replays the log keeps every change it pulled: its history reaches
        /// back to the start, and it can give other replicas' changes back to a server restored
        /// from a backup older than its first sync.
        public var takesSnapshot = true

        public init(now: @escaping @Sendable () -> Date = { Date() }, beforeCommit: (@Sendable () -> Void)? = nil,
                    statementObserver: (@Sendable (String) -> Void)? = nil,
                    makeID: @escaping @Sendable () -> String = Replica.randomID) {
            self.now = now
            self.beforeCommit = beforeCommit
            self.statementObserver = statementObserver
            self.makeID = makeID
        }
    }

    /// The file, or `:memory:`.
    public let path: String
    public let id: ReplicaID
    let writer: any DatabaseWriter
    let store: SyncStore
    let configuration: Configuration
    /// The keys the session using this replica has opened (in memory only).
    let keys = KeyRing()

    private init(path: String, id: ReplicaID, writer: any DatabaseWriter, configuration: Configuration) {
        self.path = path
        self.id = id
        self.writer = writer
        self.store = SyncStore(schema: ShelterSchema.schema)
        self.configuration = configuration
    }

    static func makeMigrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        SyncStore(schema: ShelterSchema.schema).registerMigrations(in: &migrator)
        return migrator
    }

    static func databaseConfiguration(readonly: Bool = false, observer: (@Sendable (String) -> Void)? = nil) -> GRDB.Configuration {
        var config = GRDB.Configuration()
        // Durability is a promise here (a committed action survives a power cut), not a default.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        // What SQLite frees (an erased value, an overwritten ciphertext) is overwritten with zeros,
        // so no old value lingers in a free page or cell of the file.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        if let observer {
            config.prepareDatabase { db in db.trace { event in observer(event.expandedDescription) } }
        }
        config.readonly = readonly
        config.busyMode = .timeout(10)
        config.label = "ShelterSync.Replica"
        return config
    }

    // MARK: Create and open

    /// Creates a new replica file (mode 0600). With `rooms > 0` it is a standalone replica holding
    /// rooms 1…`rooms`; a replica bound to a server gets its rooms from the first sync.
    /// Refuses to touch a file that already exists.
    ///
    /// Its first leader is made with it: her keys, sealed under `passphrase`, written in the replica's
    /// first transaction, which she signs.
    public static func create(at path: String, rooms: Int, leader: String, passphrase: String, server: String? = nil,
                              replicaID: ReplicaID = .random(), configuration: Configuration = Configuration()) throws -> Replica {
        let keys = StaffKeys()
        let sealed = try checked { try keys.sealed(passphrase: passphrase, staffID: Roles.staffID(leader)) }
        return try create(at: path, rooms: rooms, leader: leader, keys: keys, sealedKeys: sealed, server: server,
                          replicaID: replicaID, configuration: configuration)
    }

    /// `create` with keys already made and sealed (tests and the benchmark seal with a lower cost).
    public static func create(at path: String, rooms: Int, leader: String, keys: StaffKeys, sealedKeys: String, server: String? = nil,
                              replicaID: ReplicaID = .random(), configuration: Configuration = Configuration()) throws -> Replica {
        guard (0...999).contains(rooms) else {
            throw ReplicaError(.invalidArgument, t("err.ServerDirectory.0", ("p1", rooms)))
        }
        let name = try checkedStaffName(leader)
        return try createFile(at: path, replicaID: replicaID, configuration: configuration) { replica in
            try replica.setUp(rooms: rooms, leader: (name, keys, sealedKeys), server: server)
        }
    }

    static func checkedStaffName(_ name: String) throws -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100, !trimmed.contains(where: \.isNewline) else {
            throw ReplicaError(.invalidArgument, t("err.Replica.59"))
        }
        guard Roles.staffID(trimmed) != Seal.serverSigner else {
            throw ReplicaError(.invalidArgument, t("err.Replica.60"))
        }
        return trimmed
    }

    /// Creates the file (0600, never over an existing one) in WAL mode and runs `setUp` on the new
    /// replica; if anything fails, nothing is left behind.
    private static func createFile(at path: String, replicaID: ReplicaID, configuration: Configuration,
                                   setUp: (Replica) throws -> Void) throws -> Replica {
        do {
            try PrivateFile.create(at: path)
        } catch .exists {
            throw ReplicaError(.fileExists, t("err.Replica.61", ("p1", path)))
        } catch {
            throw ReplicaError(.storage, t("err.Replica.62", ("p1", path), ("p2", error)))
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: databaseConfiguration(observer: configuration.statementObserver))
            try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
            let replica = Replica(path: path, id: replicaID, writer: queue, configuration: configuration)
            try setUp(replica)
            return replica
        } catch {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
            throw mapError(error, path: path)
        }
    }

    /// Creates a replica bound to an enrolled workstation identity: its replica id comes from the
    /// bundle's certificate, and the key is kept inside the replica file (mode 0600). It holds no
    /// rooms until the first sync brings them.
    public static func create(at path: String, bundlePEM: String, bundleSource: String, server: String,
                              configuration: Configuration = Configuration()) throws -> Replica {
        let bundle: WorkstationBundle
        do { bundle = try WorkstationBundle(pem: bundlePEM, source: bundleSource) } catch let error as TransportError {
            throw ReplicaError(.invalidArgument, error.message, underlying: error)
        }
        _ = try ServerAddress(server)
        return try createFile(at: path, replicaID: bundle.replicaID, configuration: configuration) { replica in
            let identity = StoredIdentity(certificatePEM: try bundle.identity.certificatePEM, privateKeyPEM: try bundle.identity.privateKeyPEM,
                                          caPEM: try bundle.caPEM)
            try replica.setUp(rooms: 0, leader: nil, server: server, identity: identity)
        }
    }

    /// Creates a replica bound to a server reached over a transport of the embedder's own
    /// (`sync(over:)`): no identity, no rooms and no staff until the first sync brings them.
    public static func createBound(at path: String, server: String, replicaID: ReplicaID = .random(),
                                   configuration: Configuration = Configuration()) throws -> Replica {
        try createFile(at: path, replicaID: replicaID, configuration: configuration) { replica in
            try replica.setUp(rooms: 0, leader: nil, server: server)
        }
    }

    /// An in-memory standalone replica (tests, previews).
    public static func inMemory(rooms: Int = 9, leader: String, keys: StaffKeys, sealedKeys: String, replicaID: ReplicaID = .random(),
                                configuration: Configuration = Configuration()) throws -> Replica {
        let queue = try DatabaseQueue(configuration: databaseConfiguration())
        let replica = Replica(path: ":memory:", id: replicaID, writer: queue, configuration: configuration)
        try replica.setUp(rooms: rooms, leader: (leader, keys, sealedKeys), server: nil)
        return replica
    }

    private func setUp(rooms: Int, leader: (name: String, keys: StaffKeys, sealed: String)?, server: String?, identity: StoredIdentity? = nil) throws {
        try Self.makeMigrator().migrate(writer)
        try perform { db in
            try store.initialize(db, replicaID: id, createdAt: Timestamp.format(configuration.now()), server: server)
            if let identity { try store.storeIdentity(db, identity) }
        }
        guard let leader else { return }
        let session = KeySigner(name: leader.name, keys: leader.keys)
        try perform(signedBy: session, founding: true) { db in
            try write(db, ShelterSchema.staff, session.signer, [
                "name": .text(leader.name), "role": .text(StaffRole.leader.rawValue),
                "signing_key": .text(leader.keys.signingKey), "agreement_key": .text(leader.keys.agreementKey),
                "sealed_keys": .text(leader.sealed), "removed": .integer(0),
            ], author: session.author)
            for number in stride(from: 1, through: rooms, by: 1) {
                try write(db, ShelterSchema.rooms, Room.rowID(number),
                          ["number": .integer(Int64(number)), "in_service": .bool(true)], author: session.author)
            }
        }
    }

    /// Opens an existing replica file. A file that does not exist, is not a replica, or was written
    /// by a newer version is refused with a clear error and is not modified.
    public static func open(at path: String, configuration: Configuration = Configuration()) throws -> Replica {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ReplicaError(.fileNotFound, t("replica.missing", ("path", path)))
        }
        guard !isDirectory.boolValue else {
            throw ReplicaError(.notAReplica, t("err.Replica.63", ("p1", path)))
        }
        let migrator = makeMigrator()
        // Look first, read-only, so that a file that is not a replica is never written to.
        let needsMigration: Bool
        let replicaID: ReplicaID
        do {
            let reader = try DatabaseQueue(path: path, configuration: databaseConfiguration(readonly: true))
            (needsMigration, replicaID) = try reader.read { db in
                guard try SyncStore.isReplica(db) else {
                    throw ReplicaError(.notAReplica, t("err.Replica.64", ("p1", path)))
                }
                if try migrator.hasBeenSuperseded(db) {
                    throw ReplicaError(.schemaTooNew, t("err.Replica.65", ("p1", path)))
                }
                let state = try SyncStore(schema: ShelterSchema.schema).state(db)
                return (try !migrator.hasCompletedMigrations(db), state.replicaID)
            }
            try reader.close()
        } catch {
            throw mapError(error, path: path)
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: databaseConfiguration(observer: configuration.statementObserver))
            if needsMigration { try migrator.migrate(queue) }
            let replica = Replica(path: path, id: replicaID, writer: queue, configuration: configuration)
            // A crash after an erasing commit may have left the old pages in the WAL: the next
            // write truncates it (a read leaves the file as it is).
            if try queue.read({ db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sync_erasures)") }) == true {
                replica.store.erasureCheckpoint.set()
            }
            return replica
        } catch {
            throw mapError(error, path: path)
        }
    }

    // MARK: Transactions

    /// Runs one staff action as one transaction.
    func perform<T>(_ body: (Database) throws -> T) throws -> T {
        defer { checkpointAfterErasure() }
        do {
            return try writer.write { db in
                let result = try body(db)
                configuration.beforeCommit?()
                return result
            }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try writer.read(body)
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// Runs one staff action as one transaction signed by `session`: the changes it wrote are
    /// sealed with her signature, and the shelter's rules (`ShelterRules`, the ones the server
    /// holds) are checked over them — against the rows as they stood before it, as the server will
    /// — before the transaction commits. Nothing is written when she is not a member of staff here,
    /// was removed, or the rules refuse it. `founding`: the transaction that creates a standalone
    /// replica's first leader, checked over the rows it made (no one could have signed before her).
    func perform<T>(signedBy session: any TransactionSigner, founding: Bool = false, _ body: (Database) throws -> T) throws -> T {
        let known = keys.begin()
        defer { checkpointAfterErasure() }
        do {
            return try writer.write { db in
                let sealedBefore = try store.sealState(db).sealed
                store.recordWrites(db)
                if let opener = session as? any GrantOpener { keys.use(opener) }
                let result = try body(db)
                try sealAndCheck(db, after: sealedBefore, session: session, founding: founding)
                configuration.beforeCommit?()
                return result
            }
        } catch {
            keys.rollback(to: known)
            throw Self.mapError(error, path: path)
        }
    }

    /// Seals what this transaction wrote and checks every transaction sealed in it (one, unless a
    /// rescue sealed several as it went). Her own fresh signature is not verified again: the rules
    /// check who she is, her role, and every rule.
    func sealAndCheck(_ db: Database, after sealedBefore: UInt64, session: any TransactionSigner, founding: Bool = false) throws {
        let state = try store.sealState(db)
        guard state.counter - state.sealed <= UInt64(WireMessage.maximumTransaction) else {
            throw ReplicaError(.invalidArgument, t("err.Replica.66", ("p1", state.counter - state.sealed), ("p2", WireMessage.maximumTransaction)))
        }
        let tail = state.counter > state.sealed ? try store.sealTail(db, signer: session) : []
        let transactions: [[CellChange]]
        if state.sealed == sealedBefore {
            transactions = tail.isEmpty ? [] : [tail]
        } else {
            var split: [[CellChange]] = [], current: [CellChange] = []
            for change in try store.ownChanges(db, after: sealedBefore) {
                current.append(change)
                if change.seal != nil { split.append(current); current = [] }
            }
            transactions = split
        }
        var rows = Overlay(base: founding ? store.rows(db) as any RowSource : store.rowsBefore(db))
        for transaction in transactions {
            defer { for change in transaction { rows.apply(change) } }
            guard let refusal = try ShelterRules.check(transaction, rows: rows, serverKey: state.serverSigningKey, verifySignature: false) else { continue }
            switch refusal.code {
            case "notPermitted": throw ReplicaError(DomainError(.notPermitted, refusal.reason))
            case "anonymity": throw ReplicaError(DomainError(.anonymityViolation, refusal.reason))
            case "unknownSigner", "staffRemoved", "badSignature":
                throw ReplicaError(.notLoggedIn, refusal.reason + t("common.semicolonNothingWritten"))
            default: throw ReplicaError(.invalidArgument, refusal.reason + t("common.semicolonNothingWritten"))
            }
        }
    }

    /// `perform` for async callers: the transaction runs on the database's own queue while the task
    /// waits, so a long one never holds a thread of Swift's cooperative pool (a sync session's
    /// batches: with many sessions in one process, blocking that pool starved some sessions past
    /// their read timeout).
    func performAsync<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { checkpointAfterErasure() }
        do {
            return try await writer.write { db in
                let result = try body(db)
                configuration.beforeCommit?()
                return result
            }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// `performAsync` for the replica's bookkeeping (when it last synced, what it measured):
    /// committed with `synchronous = NORMAL` for this one transaction, so it waits for no flush to
    /// disk. A power cut may lose it — never half of it — and the next sync writes it again; every
    /// record and change still commits `FULL`.
    func performBookkeeping<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.writeWithoutTransaction { db in try SyncStore.inBookkeepingTransaction(db, body) }
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// `read` for async callers, likewise off the cooperative pool.
    func readAsync<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.read(body)
        } catch {
            throw Self.mapError(error, path: path)
        }
    }

    /// After a transaction that erased: the WAL's old frames (the pages as they were, her values in
    /// them) are checkpointed and the WAL truncated, so the file keeps nothing of what was erased.
    func checkpointAfterErasure() {
        guard store.erasureCheckpoint.isPending else { return }
        try? writer.writeWithoutTransaction { db in store.erasureCheckpoint.checkpoint(db) }
    }

    /// One local write through the sync layer, stamped with this replica's next dot.
    /// Personal texts are encrypted first (`sealPersonal`), with the keys of the session the
    /// transaction is signed by.
    func write(_ db: Database, _ table: SyncSchema.Table, _ rowID: String, _ values: [String: SyncValue], author: String) throws {
        var values = values
        for (column, value) in values where (value.textValue?.utf8.count ?? 0) > SyncValue.maximumPlainTextBytes
            && !(RecordKeys.isSealedCell(value.textValue!) && table.personalColumns.contains(column)) {
            throw ReplicaError(.invalidArgument, t("err.Replica.67", ("p1", column), ("p2", table.name), ("p3", value.textValue!.utf8.count), ("p4", SyncValue.maximumPlainTextBytes / 1024)))
        }
        if !table.personalColumns.isEmpty {
            guard let session = keys.opener else {
                throw ReplicaError(.notLoggedIn, t("login.first"))
            }
            // Her CPR number's blind index goes with every write of it (cleared with it).
            if table.name == ShelterSchema.residents.name, let cpr = values["cpr"], values["cpr_index"] == nil {
                let text = cpr.textValue.flatMap { RecordKeys.isSealedCell($0) ? plain(db, $0, table: table.name, row: rowID, column: "cpr") : $0 }
                values["cpr_index"] = try text.flatMap { $0.isEmpty ? nil : SyncValue.text(try cprIndex(db, $0, session: session)) } ?? .null
            }
            values = try sealPersonal(db, table: table, rowID: rowID, values: values, session: session)
        }
        try store.write(db, table: table.name, rowID: rowID, values: values, author: author, wallMilliseconds: wallMilliseconds())
    }

    /// Runs checks outside a transaction, turning a broken rule into a `ReplicaError`.
    static func checked<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw mapError(error, path: "") }
    }

    static func mapError(_ error: any Error, path: String) -> ReplicaError {
        switch error {
        case let error as ReplicaError:
            return error
        case let error as DomainError:
            return ReplicaError(error)
        case let error as SyncError:
            if error.code == .valueTooLarge { return ReplicaError(.invalidArgument, error.message, underlying: error) }
            if error.code == .notAReplica { return ReplicaError(.notAReplica, t("err.Replica.68", ("p1", path), ("p2", error.message)), underlying: error) }
            return ReplicaError(.storage, t("err.Replica.69", ("p1", path), ("p2", error.message)), underlying: error)
        case let error as DatabaseError:
            switch error.resultCode {
            case .SQLITE_NOTADB:
                return ReplicaError(.notAReplica, t("err.Replica.70", ("p1", path)), underlying: error)
            case .SQLITE_CORRUPT:
                return ReplicaError(.notAReplica, t("err.Replica.71", ("p1", path), ("p2", error.message ?? "corrupt")), underlying: error)
            case .SQLITE_READONLY:
                return ReplicaError(.readOnly, t("replica.readOnly", ("path", path)), underlying: error)
            case .SQLITE_CANTOPEN:
                return ReplicaError(.storage, t("err.Replica.72", ("p1", path)), underlying: error)
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return ReplicaError(.storage, t("replica.busy", ("path", path)), underlying: error)
            default:
                return ReplicaError(.storage, t("err.Replica.73", ("p1", path), ("p2", error.resultCode.rawValue), ("p3", error.message ?? "")), underlying: error)
            }
        default:
            return ReplicaError(.storage, t("err.Replica.69", ("p1", path), ("p2", error)), underlying: error)
        }
    }

    /// A new row id: 128 random bits as 32 lower-case hex digits.
    @Sendable public static func randomID() -> String {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return withUnsafeBytes(of: UUID().uuid) { bytes in
            String(unsafeUninitializedCapacity: 32) { out in
                for (i, byte) in bytes.enumerated() {
                    out[2 * i] = hex[Int(byte >> 4)]
                    out[2 * i + 1] = hex[Int(byte & 0x0f)]
                }
                return 32
            }
        }
    }

    /// A new row id from the configured generator.
    func newID() -> String { configuration.makeID() }
}

extension Replica {
    /// Parses an ISO 8601 time typed by staff, as a `ReplicaError` when it is not one.
    public static func checkedTimestamp(_ text: String) throws -> Date {
        try checked { try Timestamp.parse(text, timeZone: LocalTime.zone) }
    }
}
