/// The synced tables of an application, as SyncCore needs to know them: names, stable codes,
/// column types, and which columns are personal data or never decided by a clock.
///
/// Every synced table has a text primary key `id`. Tables and columns are only ever added; `since`
/// names the schema version that added them, and the migration of that version creates them.
public struct SyncSchema: Sendable {
    public var version: Int
    public var tables: [Table]

    public init(version: Int, tables: [Table]) {
        self.version = version
        self.tables = tables
        precondition(Set(tables.map(\.code)).count == tables.count, "table codes must be unique")
        precondition(Set(tables.map(\.name)).count == tables.count, "table names must be unique")
    }

    public func table(named name: String) -> Table? { tables.first { $0.name == name } }
    public func table(code: Int) -> Table? { tables.first { $0.code == code } }

    public enum ColumnType: String, Sendable {
        case integer = "INTEGER", real = "REAL", text = "TEXT"
    }

    public struct Column: Sendable {
        public var name: String
        /// Stable number of the column inside its table, used in stored metadata.
        public var code: Int
        public var type: ColumnType
        public var defaultValue: SyncValue
        /// Names, CPR numbers, free-text notes: never logged, shown only on request.
        public var personal: Bool
        /// Concurrent writes stay an open conflict with both values readable (DESIGN §2).
        public var keepBoth: Bool
        public var since: Int

        public init(_ name: String, code: Int, _ type: ColumnType, default defaultValue: SyncValue = .null,
                    personal: Bool = false, keepBoth: Bool = false, since: Int = 1) {
            self.name = name
            self.code = code
            self.type = type
            self.defaultValue = defaultValue
            self.personal = personal
            self.keepBoth = keepBoth
            self.since = since
        }
    }

    public struct Table: Sendable {
        public var name: String
        /// Stable number of the table, used in stored metadata and on the wire.
        public var code: Int
        public var columns: [Column]
        public var since: Int

        public init(_ name: String, code: Int, since: Int = 1, columns: [Column]) {
            self.name = name
            self.code = code
            self.columns = columns
            self.since = since
            precondition(Set(columns.map(\.code)).count == columns.count, "column codes must be unique in \(name)")
            precondition(!columns.contains { $0.name == "id" }, "id is implicit in \(name)")
        }

        public func column(named name: String) -> Column? { columns.first { $0.name == name } }
        public func column(code: Int) -> Column? { columns.first { $0.code == code } }
        public var keepBoth: Set<String> { Set(columns.filter(\.keepBoth).map(\.name)) }
        public var personalColumns: Set<String> { Set(columns.filter(\.personal).map(\.name)) }
    }
}
