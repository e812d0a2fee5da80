/// One write to one row, as it travels between replicas: the written columns with their values,
/// the write's dot and clock stamp, who made it, and the row's version vector as the writer saw it.
public struct CellChange: Hashable, Sendable {
    /// The synced table (its name in the schema).
    public var table: String
    /// The row's id: its primary key, as text.
    public var rowID: String
    /// The written columns and their new values.
    public var values: [String: SyncValue]
    public var dot: Dot
    public var hlc: HLC
    /// The staff member (or `server`) who made the write.
    public var author: String
    /// The row's version vector as the writer saw it just before writing.
    public var context: VersionVector

    public init(table: String, rowID: String, values: [String: SyncValue], dot: Dot, hlc: HLC,
                author: String, context: VersionVector) {
        self.table = table
        self.rowID = rowID
        self.values = values
        self.dot = dot
        self.hlc = hlc
        self.author = author
        self.context = context
    }
}

/// Where one cell's current value came from.
public struct CellStamp: Hashable, Sendable {
    public var dot: Dot
    public var hlc: HLC

    public init(dot: Dot, hlc: HLC) {
        self.dot = dot
        self.hlc = hlc
    }

    /// The deterministic order of concurrent writes: the larger `(HLC, replica id)` wins.
    public func wins(over other: CellStamp) -> Bool {
        (hlc, dot.replica) > (other.hlc, other.dot.replica)
    }
}

/// The sync metadata of one row: its causal history and the stamp of each cell.
public struct RowMeta: Hashable, Sendable {
    public var versionVector: VersionVector
    public var cells: [String: CellStamp]

    public init(versionVector: VersionVector = VersionVector(), cells: [String: CellStamp] = [:]) {
        self.versionVector = versionVector
        self.cells = cells
    }
}
