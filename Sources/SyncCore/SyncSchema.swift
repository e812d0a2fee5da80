/// The synced tables of an application, as SyncCore needs to know them: names, stable codes,
/// column types, and which columns are personal data or never decided by a clock.
///
/// Every synced table has a text primary key `id`. Tables and columns are only ever added; `since`
/// names the schema version that added them, and the migration of that version creates them.
public struct SyncSchema: Sendable {
    public let version: Int
    public let tables: [Table]
    /// Positions in `tables`, by name and by code: looked up for every change merged.
    private let byName: [String: Int]
    private let byCode: [Int: Int]

    public init(version: Int, tables: [Table]) {
        self.version = version
        self.tables = tables
        precondition(Set(tables.map(\.code)).count == tables.count, "table codes must be unique")
        precondition(Set(tables.map(\.name)).count == tables.count, "table names must be unique")
        byName = Dictionary(uniqueKeysWithValues: tables.enumerated().map { ($1.name, $0) })
        byCode = Dictionary(uniqueKeysWithValues: tables.enumerated().map { ($1.code, $0) })
    }

    public func table(named name: String) -> Table? { byName[name].map { tables[$0] } }
    public func table(code: Int) -> Table? { byCode[code].map { tables[$0] } }

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

    /// A class, not a struct: tables are looked up for every change, and copying one (its arrays,
    /// sets and dictionaries) showed up in the merge's profile.
    public final class Table: Sendable {
        public let name: String
        /// Stable number of the table, used in stored metadata and on the wire.
        public let code: Int
        public let columns: [Column]
        public let since: Int
        /// Columns never decided by a clock.
        public let keepBoth: Set<String>
        public let personalColumns: Set<String>
        /// Positions in `columns`, by name and by code: looked up for every cell merged.
        private let byName: [String: Int]
        private let byCode: [Int: Int]

        public init(_ name: String, code: Int, since: Int = 1, columns: [Column]) {
            self.name = name
            self.code = code
            self.columns = columns
            self.since = since
            precondition(Set(columns.map(\.code)).count == columns.count, "column codes must be unique in \(name)")
            precondition(!columns.contains { $0.name == "id" }, "id is implicit in \(name)")
            keepBoth = Set(columns.filter(\.keepBoth).map(\.name))
            personalColumns = Set(columns.filter(\.personal).map(\.name))
            byName = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.name, $0) })
            byCode = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.code, $0) })
        }

        public func column(named name: String) -> Column? { byName[name].map { columns[$0] } }
        public func column(code: Int) -> Column? { byCode[code].map { columns[$0] } }
    }
}
