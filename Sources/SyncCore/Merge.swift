/// Two writes to one cell that did not see each other.
public struct ConcurrentWrite: Hashable, Sendable {
    public var table: String
    public var rowID: String
    public var column: String
    /// The write that held the cell before the merge.
    public var current: CellStamp
    public var currentValue: SyncValue
    /// The write being merged.
    public var incoming: CellStamp
    public var incomingValue: SyncValue
    /// Which of the two is the cell's value after the merge.
    public var incomingWins: Bool
    /// The column may not be decided by a clock (DESIGN §2 `keepBoth`): the conflict stays open
    /// with both values readable, whatever the deterministic pick shows meanwhile.
    public var keepBoth: Bool

    public var winner: CellStamp { incomingWins ? incoming : current }
    /// Both writes stored the same value: nothing to resolve, so no conflict row is needed.
    public var sameValue: Bool { currentValue == incomingValue }
    public var loser: CellStamp { incomingWins ? current : incoming }
}

/// What merging one change into one row decided.
public enum MergeOutcome: Hashable, Sendable {
    /// The change's dot is already in the row's history: no effect.
    case duplicate
    /// The change's context names writes to this row that have not arrived here yet; applying it
    /// now could shadow them, so it must wait (causal delivery).
    case notReady(missing: VersionVector)
    /// The change was merged: write `apply` to the row, store `meta`, and report `concurrent`.
    case merged(apply: [String: SyncValue], meta: RowMeta, concurrent: [ConcurrentWrite])
}

/// The one merge of ShelterSync (DESIGN §2), used by workstations and the server alike.
///
/// Pure: it reads the row's metadata and current values and says what to write. Applying every
/// change of a set once, in any causal order, leaves the same values and metadata on every replica.
public enum Merge {
    /// Merges `change` into a row whose metadata is `row` (nil when the row does not exist here).
    ///
    /// - Parameters:
    ///   - currentValues: the row's current values, read for the columns the change writes; only
    ///     used to report concurrent writes.
    ///   - keepBoth: columns that are never decided by a clock.
    public static func merge(
        _ change: CellChange,
        into row: RowMeta?,
        currentValues: [String: SyncValue] = [:],
        keepBoth: Set<String> = []
    ) -> MergeOutcome {
        var meta = row ?? RowMeta()
        // 1. Idempotence: a write already in the history has no effect.
        if meta.versionVector.contains(change.dot) { return .duplicate }
        // Causal readiness: everything the writer saw of this row must be here first.
        if !change.context.isDominated(by: meta.versionVector) {
            var missing = VersionVector()
            for (replica, counter) in change.context.entries where counter > meta.versionVector[replica] {
                missing.absorb(Dot(replica: replica, counter: counter))
            }
            return .notReady(missing: missing)
        }
        let incoming = CellStamp(dot: change.dot, hlc: change.hlc)
        if row == nil {
            // A new row (its writer saw nothing of it, or it would have waited above): every cell
            // is simply set. The most common merge of all — bootstraps, admissions — so it skips
            // the cell-by-cell loop below, which would reach the same result.
            meta.cells = change.values.mapValues { _ in incoming }
            meta.versionVector.absorb(change.dot)
            return .merged(apply: change.values, meta: meta, concurrent: [])
        }
        var apply: [String: SyncValue] = [:]
        var concurrent: [ConcurrentWrite] = []
        for (column, value) in change.values {
            guard let current = meta.cells[column] else {
                // Never written: the change simply sets it.
                apply[column] = value
                meta.cells[column] = incoming
                continue
            }
            // 2. The writer saw the current cell: the new value supersedes it.
            if change.context.contains(current.dot) {
                apply[column] = value
                meta.cells[column] = incoming
                continue
            }
            // 3. Concurrent: the larger (HLC, replica id) holds the cell on every replica.
            let incomingWins = incoming.wins(over: current)
            if incomingWins {
                apply[column] = value
                meta.cells[column] = incoming
            }
            concurrent.append(ConcurrentWrite(
                table: change.table, rowID: change.rowID, column: column,
                current: current, currentValue: currentValues[column] ?? .null,
                incoming: incoming, incomingValue: value,
                incomingWins: incomingWins, keepBoth: keepBoth.contains(column)))
        }
        // 4. The row's history absorbs the write.
        meta.versionVector.absorb(change.dot)
        // Reported in column order, whatever the dictionary's order.
        if concurrent.count > 1 { concurrent.sort { $0.column < $1.column } }
        return .merged(apply: apply, meta: meta, concurrent: concurrent)
    }
}
