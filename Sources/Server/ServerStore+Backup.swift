import Foundation
import GRDB
import ShelterDomain
import SyncCore
#if canImport(Glibc)
import Glibc
#endif

/// Backups and restores of the server's store.
extension ServerStore {
    /// What ties a store to its shelter: the id of its first run, and the fingerprint of the CA
    /// whose certificates it serves (nil in a store made before 0.5 or without a directory).
    public struct Lineage: Hashable, Sendable {
        public var shelter: String
        public var caFingerprint: String?
    }

    public func lineage() throws -> Lineage {
        try pool.read { db in try Self.lineage(db) }
    }

    static func lineage(_ db: Database) throws -> Lineage {
        if try db.tableExists("server_identity"), let row = try Row.fetchOne(db, sql: "SELECT shelter, ca_fingerprint FROM server_identity WHERE id = 1") {
            return Lineage(shelter: row["shelter"], caFingerprint: row["ca_fingerprint"])
        }
        return Lineage(shelter: try String.fetchOne(db, sql: "SELECT replica_id FROM sync_state WHERE id = 1") ?? "", caFingerprint: nil)
    }

    /// Records the fingerprint of the shelter CA this store serves (once; a store already tied to
    /// another CA is refused).
    public func bind(toCA fingerprint: String) throws {
        try pool.write { db in
            let current = try String.fetchOne(db, sql: "SELECT ca_fingerprint FROM server_identity WHERE id = 1")
            if let current, current != fingerprint {
                throw ServerError(.directory, t("err.ServerStoreBackup.24", ("p1", path)))
            }
            if current == nil {
                try db.execute(sql: "UPDATE server_identity SET ca_fingerprint = ? WHERE id = 1", arguments: [fingerprint])
            }
        }
    }

    /// Since when this store is a restored backup that workstations may still be giving changes
    /// back to (nil: not restored, or every active workstation has synced since).
    public func restoredAt() throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT restored_at FROM server_identity WHERE id = 1") }
    }

    /// A consistent copy of the store, taken while the server runs (SQLite's online backup, one
    /// step, inside one read transaction), written beside `destination` first and renamed into
    /// place once it passes its integrity check: mode 0600, never over an existing file, never a
    /// half-written file under the name the admin chose. Returns the copy's log head.
    public func backup(to destination: String) throws -> Int64 {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw ServerError(.directory, t("err.ServerStoreBackup.25", ("p1", destination)))
        }
        let partial = destination + ".partial"
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(partial + suffix) }
        do { try PrivateFile.create(at: partial) } catch {
            throw ServerError(.directory, t("err.ServerStoreBackup.26", ("p1", partial), ("p2", error)))
        }
        do {
            let copy = try DatabaseQueue(path: partial)
            try pool.backup(to: copy)
            let (check, head) = try copy.read { db in
                (try String.fetchAll(db, sql: "PRAGMA integrity_check"), try store.head(db))
            }
            try copy.close()
            guard check == ["ok"] else { throw ServerError(.directory, t("err.ServerStoreBackup.27", ("p1", check.prefix(3).joined(separator: "; ")))) }
            guard link(partial, destination) == 0 else {
                throw ServerError(.directory, errno == EEXIST ? "\(destination) already exists; a backup never overwrites a file"
                                                              : "cannot write \(destination): \(String(cString: strerror(errno)))")
            }
            unlink(partial)
            Self.syncDirectory(of: destination)
            return head
        } catch {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(partial + suffix) }
            if let error = error as? ServerError { throw error }
            throw ServerError(.directory, t("err.ServerStoreBackup.28", ("p1", destination), ("p2", error)), underlying: error)
        }
    }

    /// Puts a backup in place of the store at `storePath` (no server may have it open). The backup
    /// must be a whole server store (integrity intact) of this shelter: tied to the CA with
    /// `caFingerprint` when given, else with the current store's shelter id. The replaced store, and
    /// any write-ahead log or journal left beside it, are moved aside (`server.db.replaced-TIME…`,
    /// never deleted, never applied to the backup). The restored store is marked restored: until
    /// every active workstation has synced, they may give back changes of other replicas.
    ///
    /// A backup made before 0.5 carries no CA fingerprint: it is taken when its shelter id is the
    /// current store's, or one of `knownShelters` (the runs in the registry journal); with neither at
    /// hand, only with `force`.
    public static func restore(backup: String, at storePath: String, caFingerprint: String? = nil, knownShelters: Set<String>? = nil,
                               force: Bool = false, now: Date = Date()) throws -> ServerDirectory.Restore {
        guard FileManager.default.fileExists(atPath: backup) else { throw ServerError(.directory, t("err.ServerStoreBackup.29", ("p1", backup))) }
        if FileManager.default.fileExists(atPath: backup + "-wal") {
            throw ServerError(.directory, t("err.ServerStoreBackup.30", ("p1", backup), ("p2", backup)))
        }
        let staged = storePath + ".restoring"
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(staged + suffix) }
        defer { for suffix in ["-wal", "-shm", "-journal"] { unlink(staged + suffix) } }
        do {
            try copyFile(backup, to: staged)
            let lineage = try checkStore(at: staged, source: backup)
            if let expected = caFingerprint, let found = lineage.caFingerprint {
                guard found == expected else {
                    throw ServerError(.directory, t("err.ServerStoreBackup.31", ("p1", backup)))
                }
            } else if FileManager.default.fileExists(atPath: storePath), let current = try? checkStore(at: storePath, source: storePath, integrity: false),
                      !current.shelter.isEmpty {
                guard current.shelter == lineage.shelter else {
                    throw ServerError(.directory, t("err.ServerStoreBackup.32", ("p1", backup), ("p2", lineage.shelter.prefix(8)), ("p3", current.shelter.prefix(8))))
                }
            } else if let knownShelters, !force, !knownShelters.contains(lineage.shelter) {
                throw ServerError(.directory, t("err.ServerStoreBackup.33", ("p1", backup)))
            }
        } catch {
            unlink(staged)
            if let error = error as? ServerError { throw error }
            throw ServerError(.directory, t("err.ServerStoreBackup.34", ("p1", backup), ("p2", error)), underlying: error)
        }
        // Everything of the store being replaced moves aside — the file, and a WAL or journal that
        // may be there without it (a killed restore, a store moved by hand): SQLite would otherwise
        // apply another database's log to the backup.
        var replaced: String?
        let leftovers = ["", "-wal", "-shm", "-journal"].filter { FileManager.default.fileExists(atPath: storePath + $0) }
        if !leftovers.isEmpty {
            let stamp = Timestamp.format(now).replacingOccurrences(of: ":", with: "")
            var aside = storePath + ".replaced-" + stamp
            var attempt = 1
            while ["", "-wal", "-shm", "-journal"].contains(where: { FileManager.default.fileExists(atPath: aside + $0) }) {
                attempt += 1
                aside = storePath + ".replaced-" + stamp + "-\(attempt)"
            }
            for suffix in leftovers {
                guard rename(storePath + suffix, aside + suffix) == 0 else {
                    throw ServerError(.directory, t("err.ServerStoreBackup.35", ("p1", aside + suffix), ("p2", String(cString: strerror(errno)))))
                }
            }
            syncDirectory(of: storePath)
            if leftovers.contains("") { replaced = aside }
        }
        guard rename(staged, storePath) == 0 else {
            throw ServerError(.directory, t("err.ServerStoreBackup.36", ("p1", String(cString: strerror(errno)))))
        }
        syncDirectory(of: storePath)
        let restored = try ServerStore.open(at: storePath)
        defer { try? restored.close() }
        try restored.pool.write { db in
            try db.execute(sql: "UPDATE server_identity SET restored_at = ? WHERE id = 1", arguments: [Timestamp.format(now)])
        }
        if let caFingerprint { try restored.bind(toCA: caFingerprint) }
        return ServerDirectory.Restore(head: try restored.logHead(), replacedPath: replaced, reenrolled: 0, revoked: 0)
    }

    static func syncDirectory(of path: String) {
        let directory = Glibc.open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                                   O_RDONLY | O_DIRECTORY)
        if directory >= 0 { fsync(directory); Glibc.close(directory) }
    }

    /// Checks that `path` is a whole server store this version can use; returns its lineage.
    static func checkStore(at path: String, source: String, integrity: Bool = true) throws -> Lineage {
        let queue: DatabaseQueue
        do { queue = try DatabaseQueue(path: path) } catch {
            throw ServerError(.directory, t("err.ServerStoreBackup.37", ("p1", source), ("p2", error)), underlying: error)
        }
        defer { try? queue.close() }
        return try queue.read { db in
            var check = ["ok"]
            do { if integrity { check = try String.fetchAll(db, sql: "PRAGMA integrity_check") } else { _ = try db.tableExists("sync_state") } } catch {
                throw ServerError(.directory, t("err.ServerStoreBackup.38", ("p1", source)))
            }
            guard check == ["ok"] else {
                throw ServerError(.directory, t("err.ServerStoreBackup.39", ("p1", source), ("p2", check.prefix(2).joined(separator: "; "))))
            }
            guard try db.tableExists("server_replicas"), try db.tableExists("sync_state") else {
                throw ServerError(.directory, t("err.ServerStoreBackup.40", ("p1", source)))
            }
            if try ServerStore.migrator().hasBeenSuperseded(db) {
                throw ServerError(.directory, t("err.ServerStoreBackup.41", ("p1", source)))
            }
            return try lineage(db)
        }
    }

    private static func copyFile(_ source: String, to destination: String) throws {
        guard let input = FileHandle(forReadingAtPath: source) else { throw ServerError(.directory, t("err.ServerDirectory.9", ("p1", source))) }
        defer { try? input.close() }
        do { try PrivateFile.create(at: destination) } catch {
            throw ServerError(.directory, t("err.ServerDirectory.3", ("p1", destination), ("p2", error)))
        }
        guard let output = FileHandle(forWritingAtPath: destination) else { throw ServerError(.directory, t("err.ServerStoreBackup.44", ("p1", destination))) }
        defer { try? output.close() }
        while true {
            let chunk = input.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            try output.write(contentsOf: chunk)
        }
        try output.synchronize()
    }
}
