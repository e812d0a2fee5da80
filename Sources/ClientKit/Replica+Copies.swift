import Foundation
import GRDB
import ShelterDomain
import SyncCore

/// What `rescue` did.
public struct RescueReport: Hashable, Sendable {
    /// The replica the changes came from.
    public var from: ReplicaID
    /// Its changes re-issued here, as new changes of this replica (unsynced until the next sync).
    public var rescued: Int
    /// Its changes the server already holds as they were written (nothing to do).
    public var alreadyOnServer: Int
    /// Its changes rescued into this replica before.
    public var rescuedBefore: Int
    /// Its changes the server refused by a rule (kept there, marked rejected; not rescued).
    public var refused: Int
    /// Its transactions not rescued because, written now over what the server holds, they would
    /// break a rule of the shelter (`ShelterRules`) — a discharge before the admission the server
    /// holds, say. Each is left out whole, named with the rule's reason; the old file keeps it.
    public var leftOut: [LeftOut] = []

    /// One transaction of the old replica a rescue left out, and why.
    public struct LeftOut: Hashable, Sendable {
        /// Its changes, by their dots in the old replica.
        public var changes: [Dot]
        /// The rule that refuses it now (no personal data: ids and columns only).
        public var reason: String
    }
}

extension Replica {
    // MARK: Moving the server

    /// Points this workstation at the sync server's new address; its identity, data and unsynced
    /// changes stay as they are. The server's certificate must name the new host
    /// (`shelter server certify --host NAME`).
    @discardableResult
    public func setServer(_ address: String) throws -> (old: String?, new: String) {
        let server = try ServerAddress(address)
        return try perform { db in
            let state = try store.state(db)
            guard try store.identity(db) != nil else {
                throw ReplicaError(.invalidArgument, t("copy.standalone", ("path", path)))
            }
            try store.setServer(db, server.description)
            return (state.server, server.description)
        }
    }

    // MARK: Rescue

    /// Re-issues, as new changes of this replica, the changes of a forked or otherwise refused
    /// replica (`old`) that the server lacks — a copied replica file, a second replica from one
    /// bundle, a workstation restored from its own backup. Nothing is discarded: the old file is
    /// only read.
    ///
    /// This replica must be bound to the server and have synced, so it holds what the server holds:
    /// each change of `old` that the server has exactly as written is skipped; every other one
    /// (never sent, refused as a fork, or lost) is written here with its values and clock stamp,
    /// as a change of the rescuing member of staff (`session`, who signs it), and the context of what its writer had seen — limited to writes that really reached
    /// the server — so a write made meanwhile on the server is concurrent with it, never silently
    /// overwritten: the server keeps both as a conflict. The next sync sends them.
    /// Rescuing the same file again re-issues nothing twice.
    ///
    /// Refused: a file of another shelter (another CA), a standalone replica, and — unless `force` —
    /// a replica the server never refused (`replicaForked`, `replicaRewound`, `revoked`): its
    /// changes reach the server by its own sync.
    public func rescue(from old: Replica, force: Bool = false, by session: any TransactionSigner) throws -> RescueReport {
        guard old.id != id else {
            throw ReplicaError(.invalidArgument, t("rescue.same", ("old", old.path), ("path", path), ("id", id)))
        }
        let (oldState, oldIdentity, oldEntries) = try old.read { db in
            (try old.store.state(db), try old.store.identity(db), try old.store.log(db).reversed().filter { $0.change.dot.replica == old.id })
        }
        let (newState, newIdentity) = try read { db in (try store.state(db), try store.identity(db)) }
        guard newState.server != nil else {
            throw ReplicaError(.invalidArgument, t("rescue.notBound", ("path", path)))
        }
        guard newState.lastSyncAt != nil else {
            throw ReplicaError(.invalidArgument, t("rescue.neverSynced", ("path", path)))
        }
        if let newIdentity {
            guard let oldIdentity, oldState.server != nil else {
                throw ReplicaError(.invalidArgument, t("rescue.standalone", ("old", old.path)))
            }
            guard oldIdentity.caPEM == newIdentity.caPEM else {
                throw ReplicaError(.invalidArgument, t("rescue.otherShelter", ("old", old.path)))
            }
        }
        guard force || oldState.refusedCode != nil else {
            throw ReplicaError(.invalidArgument, t("rescue.notRefused", ("old", old.path), ("code", oldState.lastErrorCode ?? "-")))
        }
        let wall = wallMilliseconds()
        return try perform(signedBy: session) { db in
            let state = try store.state(db)
            guard state.server != nil else {
                throw ReplicaError(.invalidArgument, t("rescue.notBound", ("path", path)))
            }
            guard state.lastSyncAt != nil else {
                throw ReplicaError(.invalidArgument, t("rescue.neverSynced", ("path", path)))
            }
            var report = RescueReport(from: old.id, rescued: 0, alreadyOnServer: 0, rescuedBefore: 0, refused: 0)
            var lacking: [LoggedChange] = []
            var rescued: [CellChange] = []
            var firstDivergent = UInt64.max
            // What the server's log held of the old replica when this one took its snapshot.
            let heldByServer = try store.heldDigests(db, of: old.id)
            for entry in oldEntries {
                let dot = entry.change.dot
                if entry.state == .rejected {
                    report.refused += 1
                } else if try store.reissuedCounter(db, of: entry.change) != nil {
                    report.rescuedBefore += 1
                    firstDivergent = min(firstDivergent, dot.counter)
                } else if let held = try store.logEntry(db, of: dot), LogHash.of(held.change) == LogHash.of(entry.change) {
                    report.alreadyOnServer += 1
                } else if let digest = heldByServer[dot.counter], digest == LogHash.of(entry.change) {
                    // Held by the server before the snapshot this replica began with.
                    report.alreadyOnServer += 1
                } else {
                    lacking.append(entry)
                    firstDivergent = min(firstDivergent, dot.counter)
                }
            }
            // Per row: which of old's counters were re-issued here, under which of this replica's.
            var reissuedByRow: [String: [(old: UInt64, new: UInt64)]] = [:]
            let byCounter = Dictionary(oldEntries.map { ($0.change.dot.counter, $0) }, uniquingKeysWith: { a, _ in a })
            for earlier in try store.reissued(db, from: old.id) {
                if let entry = byCounter[earlier.counter], LogHash.of(entry.change) == earlier.digest {
                    reissuedByRow[entry.change.table + "/" + entry.change.rowID, default: []].append((earlier.counter, earlier.reissued))
                }
            }
            // One original transaction at a time, each checked against the shelter's rules over what
            // the server holds and what was rescued before it: a transaction the rules refuse now is
            // left out whole, and the others are rescued. Transactions are found over the whole old
            // log (a signed one ends at its seal, whatever its length; one of a replica that kept no
            // signatures has at most 100 changes), then cut down to what the server lacks.
            let lackingDots = Set(lacking.map(\.change.dot))
            let signed = oldEntries.contains { $0.change.seal != nil }
            var transactions: [[LoggedChange]] = [], pending: [LoggedChange] = []
            for entry in oldEntries {
                pending.append(entry)
                if entry.change.seal != nil || (!signed && pending.count >= 100) {
                    transactions.append(pending.filter { lackingDots.contains($0.change.dot) })
                    pending = []
                }
            }
            transactions.append(pending.filter { lackingDots.contains($0.change.dot) })
            transactions.removeAll { $0.isEmpty }
            let serverKey = try store.state(db).serverSigningKey
            var accepted = Overlay(base: store.rowsBefore(db))
            for transaction in transactions {
                var rescuedHere: [CellChange] = [], mappedHere: [(key: String, new: UInt64)] = [], skipped = 0
                var refusal: Refusal?
                try db.inSavepoint {
                    for entry in transaction {
                        let change = entry.change
                        guard let values = try rescuedValues(db, of: change) else {
                            skipped += 1
                            continue
                        }
                        let key = change.table + "/" + change.rowID
                        let table = try checkedTable(change.table)
                        let held = try store.rowMeta(db, table: table, rowID: change.rowID)?.versionVector ?? VersionVector()
                        var context: [ReplicaID: UInt64] = [:]
                        for (replica, counter) in change.context.entries {
                            if replica == old.id {
                                // Old's own writes count as seen only where the server holds them as written.
                                context[replica] = min(counter, firstDivergent &- 1, held[replica])
                                if let mapped = reissuedByRow[key]?.filter({ $0.old <= counter }).map(\.new).max() {
                                    context[id] = max(context[id] ?? 0, min(mapped, held[id]))
                                }
                            } else {
                                context[replica] = min(counter, held[replica])
                            }
                        }
                        // Re-issued as the rescuer's changes, signed by her: one transaction per original transaction.
                        let reissued = try store.reissue(db, change, values: values, context: VersionVector(context), author: session.author, wallMilliseconds: wall)
                        reissuedByRow[key, default: []].append((change.dot.counter, reissued.dot.counter))
                        mappedHere.append((key, reissued.dot.counter))
                    }
                    let sealed = try store.sealTail(db, signer: session)
                    rescuedHere = sealed
                    guard !sealed.isEmpty else { return .commit }
                    refusal = try ShelterRules.check(sealed, rows: accepted.rebased(on: store.rowsBefore(db)), serverKey: serverKey, verifySignature: false)
                    return refusal == nil ? .commit : .rollback
                }
                if let refusal {
                    // Rolled back: peer numbers it may have taken go back to SQLite.
                    store.forgetMergeMemo(db)
                    for mapped in mappedHere { reissuedByRow[mapped.key]?.removeAll { $0.new == mapped.new } }
                    report.leftOut.append(.init(changes: transaction.map(\.change.dot), reason: refusal.reason))
                    continue
                }
                for change in rescuedHere { accepted.apply(change) }
                report.alreadyOnServer += skipped
                report.rescued += rescuedHere.count
                rescued += rescuedHere
            }
            // What the copy wrote of a resident erased since is erased here too (and from the
            // re-issued changes once the server has them): erasure wins.
            try Erasure.afterMerge(db, store: store, changes: rescued, keepUnsynced: try keepsUnsynced(db))
            return report
        }
    }

    /// The values a copy's change is re-issued with, brought into line with what the server holds;
    /// nil when nothing is left to write (it is there already).
    private func rescuedValues(_ db: Database, of change: CellChange) throws -> [String: SyncValue]? {
        var values = change.values
        // An erasure of a resident erased since (by another workstation): done already.
        if change.table == ShelterSchema.erasures.name, try Erasure.isErased(db, change.rowID) { return nil }
        // What the copy wrote of a resident erased since is not written again (erasure wins).
        if let table = ShelterSchema.schema.table(named: change.table),
           let owner = try Erasure.owner(db, table: table, rowID: change.rowID, values: change.values), try Erasure.isErased(db, owner) {
            for column in Erasure.erasedColumns(of: table) where values[column] != nil {
                values[column] = table.column(named: column)?.defaultValue ?? .null
            }
        }
        // What a record is written with once stays as the server holds it (the copy's own version of
        // an admission time, say, stamped again elsewhere, is not written over it).
        guard let once = ShelterRules.writtenOnce[change.table],
              let current = try store.currentRow(db, table: change.table, id: change.rowID) else { return values }
        for column in once where values[column] != nil {
            if let held = current[column], !held.isNull, held != .text("") { values[column] = nil }
        }
        if values.isEmpty { return nil }
        // The copy's discharge of a stay whose admission the server holds later (its original was
        // stamped again): she left, but not before she came.
        if change.table == ShelterSchema.stays.name,
           let came = ShelterRules.dischargeBroughtToAdmission(discharged: values["discharged_at"]?.textValue, admitted: current["admitted_at"]?.textValue) {
            values["discharged_at"] = .text(came)
        }
        return values
    }

    private func checkedTable(_ name: String) throws -> SyncSchema.Table {
        guard let table = ShelterSchema.schema.table(named: name) else {
            throw ReplicaError(.storage, t("err.ReplicaCopies.101", ("p1", name)))
        }
        return table
    }
}
