import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// A baseline that is not ours, in the same run: the same rows applied to an empty table with
/// SQLite's session extension (`sqlite3changeset_apply`, how SQLite itself replicates a change set)
/// when the system SQLite has it, else plain prepared inserts in one transaction.
enum PeerBaseline {
    typealias SessionCreate = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias SessionAttach = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32
    typealias SessionChangeset = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias SessionDelete = @convention(c) (OpaquePointer?) -> Void
    typealias Conflict = @convention(c) (UnsafeMutableRawPointer?, Int32, OpaquePointer?) -> Int32
    typealias ChangesetApply = @convention(c) (OpaquePointer?, Int32, UnsafeMutableRawPointer?,
                                               (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32)?,
                                               Conflict?, UnsafeMutableRawPointer?) -> Int32
    typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void

    struct Session {
        var create: SessionCreate, attach: SessionAttach, changeset: SessionChangeset, delete: SessionDelete
        var apply: ChangesetApply, free: Free
    }

    /// The session extension's functions, if the SQLite this process uses was built with it.
    static let session: Session? = {
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            guard let pointer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
            return unsafeBitCast(pointer, to: type)
        }
        guard let create = symbol("sqlite3session_create", as: SessionCreate.self),
              let attach = symbol("sqlite3session_attach", as: SessionAttach.self),
              let changeset = symbol("sqlite3session_changeset", as: SessionChangeset.self),
              let delete = symbol("sqlite3session_delete", as: SessionDelete.self),
              let apply = symbol("sqlite3changeset_apply", as: ChangesetApply.self),
              let free = symbol("sqlite3_free", as: Free.self) else { return nil }
        return Session(create: create, attach: attach, changeset: changeset, delete: delete, apply: apply, free: free)
    }()

    static let schema = "CREATE TABLE residents (id TEXT PRIMARY KEY NOT NULL, anonymous INTEGER, name TEXT, municipality TEXT, documented INTEGER, language TEXT)"

    /// Seconds to apply `count` new rows of six cells to an empty table, and how.
    static func measure(count: Int, folder: String) throws -> (seconds: Double, method: String) {
        let source = try DatabaseQueue(path: folder + "/peer-source-\(UUID().uuidString.prefix(6)).sqlite")
        let target = try DatabaseQueue(path: folder + "/peer-target-\(UUID().uuidString.prefix(6)).sqlite")
        for queue in [source, target] {
            try queue.writeWithoutTransaction { db in
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: schema)
            }
        }
        func insertAll(_ db: Database) throws {
            let statement = try db.makeStatement(sql: "INSERT INTO residents VALUES (?, ?, ?, ?, ?, ?)")
            for n in 0..<count {
                try statement.execute(arguments: [String(format: "pe%026d", n), 0, "ss1:Resident \(n) sealed", "Køge", 1, "da"])
            }
        }
        guard let session = Self.session else {
            return (try seconds { try target.write(insertAll) }, "prepared inserts, one transaction (this SQLite has no session extension)")
        }
        // The change set, recorded on the source as SQLite's session extension records writes.
        var blob: UnsafeMutableRawPointer?
        var size: Int32 = 0
        try source.writeWithoutTransaction { db in
            var handle: OpaquePointer?
            guard session.create(db.sqliteConnection, "main", &handle) == 0, let handle else { throw BenchError("sqlite3session_create failed") }
            defer { session.delete(handle) }
            guard session.attach(handle, "residents") == 0 else { throw BenchError("sqlite3session_attach failed") }
            try db.inTransaction { try insertAll(db); return .commit }
            guard session.changeset(handle, &size, &blob) == 0, blob != nil else { throw BenchError("sqlite3session_changeset failed") }
        }
        defer { session.free(blob) }
        let time = try seconds {
            try target.writeWithoutTransaction { db in
                let status = session.apply(db.sqliteConnection, size, blob, nil, { _, _, _ in 0 /* SQLITE_CHANGESET_OMIT */ }, nil)
                guard status == 0 else { throw BenchError("sqlite3changeset_apply failed (\(status))") }
            }
        }
        let applied = try target.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM residents") ?? 0 }
        guard applied == count else { throw BenchError("sqlite3changeset_apply applied \(applied) of \(count) rows") }
        return (time, "SQLite's session extension: sqlite3changeset_apply of one change set")
    }
}
