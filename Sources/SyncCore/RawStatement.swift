import GRDB
import GRDBSQLite

/// One of GRDB's cached statements, bound and stepped through SQLite's C API.
///
/// The merge runs a handful of statements for every change. Profiles of `shelter-bench` showed
/// GRDB's generic argument and row decoding (key paths, dynamic casts, existentials) costing more
/// than SQLite itself there, so the hot statements bind plain values by position and read columns
/// by position. Everything else — transactions, hooks, tracing, the statement cache — stays GRDB's:
/// the statement comes from `Database.cachedStatement`, and SQL used here is never run through
/// GRDB's own execution as well.
public struct RawStatement {
    private let statement: Statement
    private let db: Database
    private var handle: OpaquePointer { statement.sqliteStatement }

    /// The cached statement for `sql`, reset and with no bindings.
    public init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        self.db = db
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// The same statement again, reset and with no bindings: a batch that runs one statement per
    /// change keeps it, rather than find it in GRDB's cache (a hash of its whole text) every time.
    public func again() -> RawStatement {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        return self
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    public func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }

    public func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 {
                _ = sqlite3_bind_text(handle, index, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), Int32(bytes.count), Self.transient)
            } else {
                // An empty text, not NULL: SQLite needs a pointer for that.
                _ = sqlite3_bind_text(handle, index, "", 0, Self.transient)
            }
        }
    }

    public func bind(_ index: Int32, blob: [UInt8]) {
        blob.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 {
                _ = sqlite3_bind_blob(handle, index, base, Int32(bytes.count), Self.transient)
            } else {
                _ = sqlite3_bind_zeroblob(handle, index, 0)
            }
        }
    }

    public func bind(_ index: Int32, _ value: SyncValue) {
        switch value {
        case .null: sqlite3_bind_null(handle, index)
        case .integer(let v): sqlite3_bind_int64(handle, index, v)
        case .real(let v): sqlite3_bind_double(handle, index, v)
        case .text(let v): bind(index, v)
        }
    }

    /// Steps once: true when a row is ready to read, false when the statement is done.
    public func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
    }

    /// Steps once and reads the row with `read`, or returns nil when there is none; the statement
    /// is reset afterwards, so it holds no read lock.
    public func oneRow<T>(_ read: (RawStatement) throws -> T) throws -> T? {
        defer { sqlite3_reset(handle) }
        return try step() ? try read(self) : nil
    }

    /// Runs a statement that returns no rows.
    public func execute() throws {
        while try step() {}
        sqlite3_reset(handle)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    public func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
    }

    public func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    public func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// A column as a synced value; nil for a blob, which no synced column holds.
    public func value(_ column: Int32) -> SyncValue? {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, column))
        case SQLITE_TEXT: return .text(text(column))
        default: return nil
        }
    }
}
