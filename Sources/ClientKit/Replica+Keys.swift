import Crypto
import Foundation
import GRDB
import ShelterDomain
import SyncCore
import Synchronization

/// The keys a replica has opened for the session using it: shelter keys (from the grants to her)
/// and resident keys (unwrapped from the residents' rows), in memory only, for this process.
final class KeyRing: Sendable {
    struct State {
        var opener: (any GrantOpener)?
        var shelterKeys: [String: RecordKeys.ShelterKey] = [:]
        var residentKeys: [String: SymmetricKey] = [:]
        /// What was learnt since `begin()`: forgotten again by `rollback`.
        var learntShelterKeys: [String] = []
        var learntResidentKeys: [String] = []
    }
    let state = Mutex(State())

    var opener: (any GrantOpener)? { state.withLock { $0.opener } }

    /// Uses `session` from now on; another member's session forgets what the last one opened.
    func use(_ session: any GrantOpener) {
        state.withLock { state in
            if state.opener?.signer != session.signer { state = State() }
            state.opener = session
        }
    }

    /// Where a transaction began: what it learns is forgotten when it rolls back (a key made in it
    /// was never stored, and must not be used after). Only what was learnt is recorded — copying
    /// every key known at each transaction cost a copy of thousands of keys per write.
    struct Mark { let opener: (any GrantOpener)? }

    func begin() -> Mark {
        state.withLock { state in
            state.learntShelterKeys = []
            state.learntResidentKeys = []
            return Mark(opener: state.opener)
        }
    }

    func rollback(to mark: Mark) {
        state.withLock { state in
            for id in state.learntShelterKeys { state.shelterKeys[id] = nil }
            for id in state.learntResidentKeys { state.residentKeys[id] = nil }
            state.learntShelterKeys = []
            state.learntResidentKeys = []
            if state.opener?.signer != mark.opener?.signer {
                state = State()
                state.opener = mark.opener
            } else {
                state.opener = mark.opener
            }
        }
    }

    func remember(_ key: RecordKeys.ShelterKey) {
        state.withLock { state in
            if state.shelterKeys.updateValue(key, forKey: key.id) == nil { state.learntShelterKeys.append(key.id) }
        }
    }
    func remember(residentKey key: SymmetricKey, of resident: String) {
        state.withLock { state in
            if state.residentKeys.updateValue(key, forKey: resident) == nil { state.learntResidentKeys.append(resident) }
        }
    }
    func knownShelterKey(_ id: String) -> RecordKeys.ShelterKey? { state.withLock { $0.shelterKeys[id] } }
    func knownResidentKey(_ id: String) -> SymmetricKey? { state.withLock { $0.residentKeys[id] } }
    /// Forgets the keys of erased residents.
    func forget(residents: some Sequence<String>) { state.withLock { state in for id in residents { state.residentKeys[id] = nil } } }
}

extension Replica {
    /// Uses `session` to open the shelter's records for reading (ClientKit's reads show personal
    /// data only to a session; without one they show none). Every signed action does this too.
    public func useSession(_ session: any GrantOpener) {
        keys.use(session)
    }

    /// Whether a session is in use here (`useSession`, or a signed action).
    public var hasSession: Bool { keys.opener != nil }

    // MARK: Shelter keys

    /// The shelter key `id` as the session's grant holds it; nil without a session or a grant.
    func shelterKey(_ db: Database, id: String) throws -> RecordKeys.ShelterKey? {
        if let known = keys.knownShelterKey(id) { return known }
        guard let opener = keys.opener else { return nil }
        guard let grant = try String.fetchOne(db.cachedStatement(sql: "SELECT sealed FROM key_grants WHERE id = ?"),
                                              arguments: [ShelterSchema.grantID(staff: opener.signer, shelterKey: id)]) else { return nil }
        let key = try opener.openGrant(grant)
        keys.remember(key)
        return key
    }

    /// The shelter keys no resident is to stay under: those a removed member of staff holds (her
    /// removal rotates the key), those in `retired_keys` (a workstation revoked), and those whose
    /// grants the server refused here (a rotation refused: a key no one else holds).
    struct RetiredKeys {
        var removed: Set<String> = [], revoked: Set<String> = [], refused: Set<String> = []
        var all: Set<String> { removed.union(revoked).union(refused) }
    }

    func retiredShelterKeys(_ db: Database) throws -> RetiredKeys {
        let (removed, revoked) = try removedAndRevokedKeys(db)
        // Refused: keys none of whose grants the server took (grants of one key made in one
        // transaction share its fate; a later grant refused alone does not make the key refused).
        let refused = try String.fetchAll(db.cachedStatement(sql: """
            SELECT DISTINCT g.shelter_key FROM key_grants g
            WHERE EXISTS (SELECT 1 FROM sync_log l WHERE l.row = g.id AND l.tbl = ?1 AND l.state = ?2)
              AND NOT EXISTS (SELECT 1 FROM key_grants g2 JOIN sync_log l ON l.row = g2.id AND l.tbl = ?1 AND l.state <> ?2
                              WHERE g2.shelter_key = g.shelter_key)
            """), arguments: [ShelterSchema.keyGrants.code, LoggedChange.State.rejected.rawValue])
        return RetiredKeys(removed: removed, revoked: revoked, refused: Set(refused))
    }

    /// The shelter keys a removed member of staff holds, and those in `retired_keys`.
    func removedAndRevokedKeys(_ db: Database) throws -> (removed: Set<String>, revoked: Set<String>) {
        let removed = try String.fetchAll(db.cachedStatement(sql: """
            SELECT DISTINCT g.shelter_key FROM key_grants g JOIN staff s ON s.id = g.staff WHERE s.removed = 1
            """))
        let revoked = try String.fetchAll(db.cachedStatement(sql: "SELECT id FROM retired_keys"))
        return (Set(removed), Set(revoked))
    }

    /// The shelter key new resident keys are wrapped under and CPR numbers are indexed under: of
    /// the shelter keys granted to her, one not retired, the lowest id first (every workstation
    /// picks the same one once it knows the same grants). Nil when none was granted to her.
    /// `allowingRevoked`: when she holds no such key, one retired only by a workstation's
    /// revocation will do (never one a removed member holds) — until a leader's session makes the
    /// new one, staff go on admitting.
    func currentShelterKey(_ db: Database, allowingRevoked: Bool = false) throws -> RecordKeys.ShelterKey? {
        guard let opener = keys.opener else { return nil }
        let (removed, revoked) = try removedAndRevokedKeys(db)
        let held = try String.fetchAll(db.cachedStatement(sql: "SELECT shelter_key FROM key_grants WHERE staff = ? ORDER BY shelter_key"),
                                       arguments: [opener.signer]).filter { !removed.contains($0) }
        let candidates = held.filter { !revoked.contains($0) } + (allowingRevoked ? held.filter { revoked.contains($0) } : [])
        for id in candidates {
            // Only her own grant's fate matters here (a key whose grants the server refused was
            // refused to everyone in one transaction).
            guard try !grantRefused(db, ShelterSchema.grantID(staff: opener.signer, shelterKey: id)) else { continue }
            // A grant that does not open (damaged) is passed over, not fatal.
            if let key = try? shelterKey(db, id: id) { return key }
        }
        return nil
    }

    /// Whether every log entry of a grant here was refused by the server.
    func grantRefused(_ db: Database, _ grant: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT EXISTS (SELECT 1 FROM sync_log WHERE row = ?1 AND tbl = ?2 AND state = ?3)
               AND NOT EXISTS (SELECT 1 FROM sync_log WHERE row = ?1 AND tbl = ?2 AND state <> ?3)
            """), arguments: [grant, ShelterSchema.keyGrants.code, LoggedChange.State.rejected.rawValue]) ?? false
    }

    /// The shelter key for a write by `session`: the current one; or — when this replica knows no
    /// shelter key at all, or every one she holds is retired — a new one made by a leader, granted
    /// in this transaction to every member of staff with keys; or, for the rest of the staff, one
    /// retired only by a workstation's revocation.
    func shelterKeyForWriting(_ db: Database, session: any TransactionSigner) throws -> RecordKeys.ShelterKey {
        if let key = try currentShelterKey(db) { return key }
        guard keys.opener != nil else { throw ReplicaError(.notLoggedIn, t("login.first")) }
        let anyGrant = try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM key_grants)")) ?? false
        guard try staffMember(db, session.signer)?.role == .leader else {
            if let key = try currentShelterKey(db, allowingRevoked: true) { return key }
            throw ReplicaError(.notLoggedIn, anyGrant
                ? "\(session.author) has not been given the shelter's current key yet; a leader's workstation gives it at its next sync with her logged in (nothing was written)"
                : "the shelter's key is made at a leader's first login; ask a leader to log in (nothing was written)")
        }
        let key = RecordKeys.ShelterKey()
        keys.remember(key)
        try grant(db, key, toAllBut: [], author: session.author)
        return key
    }

    /// The shelter key CPR numbers are indexed under (`RecordKeys.cprIndex`): the current one, so
    /// that every workstation gives one number the same index once the grants have synced, and a
    /// removed member's old key computes nothing about a later resident's number (an index is
    /// cheap to guess through: a CPR number has some 10^8 values).
    func indexShelterKey(_ db: Database, session: any TransactionSigner) throws -> RecordKeys.ShelterKey {
        try shelterKeyForWriting(db, session: session)
    }

    /// The blind index of a CPR number as this session computes it.
    func cprIndex(_ db: Database, _ cpr: String, session: any TransactionSigner) throws -> String {
        RecordKeys.cprIndex(cpr, under: try indexShelterKey(db, session: session))
    }

    /// The blind indexes of a CPR number under every shelter key the session holds (the admission's
    /// check: residents indexed before a rotation reached them are found too).
    func cprIndexes(_ db: Database, _ cpr: String) throws -> [String] {
        guard let opener = keys.opener else { return [] }
        return try String.fetchAll(db.cachedStatement(sql: "SELECT shelter_key FROM key_grants WHERE staff = ? ORDER BY shelter_key"),
                                   arguments: [opener.signer])
            .compactMap { id in (try? shelterKey(db, id: id)).flatMap { $0 }.map { RecordKeys.cprIndex(cpr, under: $0) } }
    }

    /// Grants `key` to every member of staff with keys who is not removed and has no grant of it.
    @discardableResult
    func grant(_ db: Database, _ key: RecordKeys.ShelterKey, toAllBut excluded: Set<String>, author: String) throws -> Int {
        let staff = try Row.fetchAll(db, sql: """
            SELECT id, agreement_key FROM staff WHERE removed = 0 AND agreement_key IS NOT NULL AND agreement_key <> ''
              AND NOT EXISTS (SELECT 1 FROM key_grants g WHERE g.staff = staff.id AND g.shelter_key = ?)
            ORDER BY id
            """, arguments: [key.id])
        var count = 0
        for row in staff {
            let id: String = row["id"]
            guard !excluded.contains(id) else { continue }
            let sealed = try Self.checked { try RecordKeys.grant(key, to: row["agreement_key"], staffID: id) }
            try write(db, ShelterSchema.keyGrants, ShelterSchema.grantID(staff: id, shelterKey: key.id),
                      ["staff": .text(id), "shelter_key": .text(key.id), "sealed": .text(sealed)], author: author)
            count += 1
        }
        return count
    }

    /// Makes the shelter key when this replica knows none (a leader's first login: `shelter
    /// login`), granted to every member of staff with keys, as one signed transaction. Returns
    /// whether it made one.
    @discardableResult
    public func createShelterKeyIfNone(by session: any GrantOpener) throws -> Bool {
        useSession(session)
        guard try read({ db in try !(Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM key_grants)")) ?? false) }) else { return false }
        return try perform(signedBy: session) { db in
            guard try staffMember(db, session.signer)?.role == .leader else { return false }
            let key = RecordKeys.ShelterKey()
            keys.remember(key)
            try grant(db, key, toAllBut: [], author: session.author)
            return true
        }
    }

    /// A leader's session gives every shelter key she holds to the members of staff who have keys
    /// and lack it (staff the server admin made, or added where the key was not yet known), as one
    /// signed transaction. Returns how many grants it wrote.
    @discardableResult
    public func grantMissingKeys(by session: any GrantOpener) throws -> Int {
        useSession(session)
        let missing = try read { db -> Bool in
            guard try staffMember(db, session.signer)?.role == .leader else { return false }
            return try Bool.fetchOne(db.cachedStatement(sql: """
                SELECT EXISTS (SELECT 1 FROM staff s, (SELECT DISTINCT shelter_key FROM key_grants WHERE staff = ?) k
                  WHERE s.removed = 0 AND s.agreement_key IS NOT NULL AND s.agreement_key <> ''
                    AND NOT EXISTS (SELECT 1 FROM key_grants g WHERE g.staff = s.id AND g.shelter_key = k.shelter_key))
                """), arguments: [session.signer]) ?? false
        }
        guard missing else { return 0 }
        return try perform(signedBy: session) { db in
            let before = try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM key_grants")) ?? 0
            try grantHeldKeys(db, author: session.author)
            return (try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM key_grants")) ?? 0) - before
        }
    }

    // MARK: Rotation

    /// How many residents one transaction of a rotation writes again: small enough that a refusal
    /// (a resident erased meanwhile elsewhere) costs little, and that a batch carries it whole.
    static let rotationChunk = 200

    /// What a rotation still has to write: for each resident (not erased) whose key is wrapped
    /// under a retired shelter key, her key wrapped under `current`; for each whose CPR index is
    /// not her number's index under `current` (a retired key; a CPR number corrected while the
    /// index was computed again elsewhere), the right one. At most `limit` residents.
    func rotationWork(_ db: Database, current: RecordKeys.ShelterKey, limit: Int) throws -> [(resident: String, values: [String: SyncValue])] {
        let retired = try retiredShelterKeys(db).all
        var work: [(String, [String: SyncValue])] = []
        for row in try Row.fetchAll(db, sql: """
            SELECT id, key, cpr, cpr_index FROM residents WHERE key IS NOT NULL AND key <> ''
              AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.id = residents.id) ORDER BY id
            """) {
            guard work.count < limit else { break }
            let id: String = row["id"], wrapped: String = row["key"]
            guard let keyID = RecordKeys.keyID(ofWrapped: wrapped) else { continue }
            var values: [String: SyncValue] = [:]
            if keyID != current.id && retired.contains(keyID), let key = try? residentKey(db, id) {
                values["key"] = .text(try Self.checked { try RecordKeys.wrap(key, residentID: id, under: current) })
            }
            if let index = row["cpr_index"] as String?, !index.isEmpty,
               let cpr = plain(db, row, "cpr", table: ShelterSchema.residents), !cpr.isEmpty {
                let right = RecordKeys.cprIndex(cpr, under: current)
                if index != right { values["cpr_index"] = .text(right) }
            }
            if !values.isEmpty { work.append((id, values)) }
        }
        return work
    }

    /// After a rotation (a member of staff removed, a workstation revoked), the residents admitted
    /// before it: `rotationWork`, written, and the old values erased from the log (here, and on
    /// every replica that merges the new ones: `Erasure.afterMerge`). A copy of a replica made
    /// afterwards gives a retired key nothing. Returns how many residents were written.
    @discardableResult
    func rewrapResidentKeys(_ db: Database, author: String, limit: Int = rotationChunk) throws -> Int {
        guard keys.opener != nil, let current = try currentShelterKey(db) else { return 0 }
        let work = try rotationWork(db, current: current, limit: limit)
        let keep = try keepsUnsynced(db)
        for (id, values) in work {
            try write(db, ShelterSchema.residents, id, values, author: author)
            try Erasure.eraseSuperseded(db, store: store, resident: id, keepUnsynced: keep)
        }
        return work.count
    }

    /// Whether a rotation is still to be carried out here (no session needed): a shelter key was
    /// retired, and no key that is not retired is known yet, or a resident's key or CPR index is
    /// still under a retired one.
    func rotationDue(_ db: Database) throws -> Bool {
        let all = try retiredShelterKeys(db).all
        guard !all.isEmpty else { return false }
        let list = String(decoding: try JSONEncoder().encode(all.sorted()), as: UTF8.self)
        return try Bool.fetchOne(db, sql: """
            SELECT NOT EXISTS (SELECT 1 FROM key_grants WHERE shelter_key NOT IN (SELECT value FROM json_each(?1)))
              OR EXISTS (SELECT 1 FROM residents r WHERE NOT EXISTS (SELECT 1 FROM erasures e WHERE e.id = r.id)
                           AND (substr(r.key, 5, 16) IN (SELECT value FROM json_each(?1))
                                OR substr(r.cpr_index, 5, 16) IN (SELECT value FROM json_each(?1))))
            """, arguments: [list]) ?? false
    }

    /// Whether a leader's session has a rotation to carry out here: a new key (every one she holds
    /// is retired), or `rotationWork`.
    func pendingRotation(_ db: Database, leader: String) throws -> Bool {
        guard try staffMember(db, leader)?.role == .leader,
              try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM key_grants WHERE staff = ?)"), arguments: [leader]) == true
        else { return false }
        guard let current = try currentShelterKey(db) else { return true }
        return try !rotationWork(db, current: current, limit: 1).isEmpty
    }

    /// A leader's session carries out a rotation made elsewhere (a removal made where no leader was
    /// logged in, a workstation the server admin revoked, a rotation the server refused): a new
    /// shelter key when every one she holds is retired, granted to every member of staff, in a
    /// transaction of its own; then `rotationWork`, in signed transactions of `rotationChunk`
    /// residents. Returns how many residents it wrote (and 1 for a new key with none to write).
    @discardableResult
    public func rewrapResidentKeys(by session: any GrantOpener) throws -> Int {
        useSession(session)
        guard try read({ db in try pendingRotation(db, leader: session.signer) }) else { return 0 }
        let made = try perform(signedBy: session) { db -> Int in
            guard try currentShelterKey(db) == nil else { return 0 }
            _ = try shelterKeyForWriting(db, session: session)
            return 1
        }
        return max(made, try continueRotation(by: session))
    }

    /// `rotationWork` in transactions of `rotationChunk` residents, until none is left.
    func continueRotation(by session: any TransactionSigner) throws -> Int {
        var total = 0
        while true {
            let written = try perform(signedBy: session) { db in try rewrapResidentKeys(db, author: session.author) }
            total += written
            if written < Self.rotationChunk { return total }
        }
    }

    /// Grants every shelter key the session holds to member `only` (or to everyone lacking it).
    func grantHeldKeys(_ db: Database, author: String, only member: String? = nil) throws {
        guard let opener = keys.opener else { return }
        for id in try String.fetchAll(db.cachedStatement(sql: "SELECT shelter_key FROM key_grants WHERE staff = ? ORDER BY shelter_key"), arguments: [opener.signer]) {
            guard let key = try shelterKey(db, id: id) else { continue }
            if let member {
                let excluded = Set(try String.fetchAll(db.cachedStatement(sql: "SELECT id FROM staff WHERE id <> ?"), arguments: [member]))
                try grant(db, key, toAllBut: excluded, author: author)
            } else {
                try grant(db, key, toAllBut: [], author: author)
            }
        }
    }

    func staffMember(_ db: Database, _ id: String) throws -> StaffMember? {
        try Row.fetchOne(db, sql: "SELECT id, name, role, removed FROM staff WHERE id = ?", arguments: [id]).map(Self.staffMember)
    }

    // MARK: Resident keys

    /// A resident's key, unwrapped; nil when she has none here or the session cannot open it.
    func residentKey(_ db: Database, _ resident: String) throws -> SymmetricKey? {
        if let known = keys.knownResidentKey(resident) { return known }
        guard keys.opener != nil,
              let wrapped = try String.fetchOne(db.cachedStatement(sql: "SELECT key FROM residents WHERE id = ?"), arguments: [resident]),
              let shelterKeyID = RecordKeys.keyID(ofWrapped: wrapped),
              let shelterKey = try shelterKey(db, id: shelterKeyID) else { return nil }
        let key = try Self.checked { try RecordKeys.unwrap(wrapped, residentID: resident, with: shelterKey) }
        keys.remember(residentKey: key, of: resident)
        return key
    }

    /// `values` with every personal text encrypted for its cell (texts already encrypted — a
    /// conflict's candidate, a rescued change — stay as they are). A resident gets her key at her
    /// first write here (its wrapped form joins `values`), and so does one written before version 5
    /// when a row of hers is written with personal data.
    func sealPersonal(_ db: Database, table: SyncSchema.Table, rowID: String, values: [String: SyncValue], session: any TransactionSigner) throws -> [String: SyncValue] {
        // A text already sealed for this very cell (a conflict's candidate kept) stays as it is;
        // anything else — including typed text that merely looks like ciphertext — is encrypted.
        let personal = values.filter { name, value in
            guard table.personalColumns.contains(name), let text = value.textValue, !text.isEmpty else { return false }
            return !(RecordKeys.isSealedCell(text) && plain(db, text, table: table.name, row: rowID, column: name) != nil)
        }
        let isResident = table.name == ShelterSchema.residents.name
        let newResident = try isResident && values["key"] == nil && !rowExists(db, table, rowID)
        guard !personal.isEmpty || newResident else { return values }
        var sealed = values
        let reference: String, key: SymmetricKey
        if let resident = try Erasure.owner(db, table: table, rowID: rowID, values: values) {
            if try Erasure.isErased(db, resident) {
                throw ReplicaError(DomainError(.invalidTransition, t("err.ReplicaKeys.100", ("p1", resident.prefix(8)))))
            }
            if let known = try residentKey(db, resident) {
                key = known
            } else {
                let stored = try String.fetchOne(db.cachedStatement(sql: "SELECT key FROM residents WHERE id = ?"), arguments: [resident]) ?? ""
                guard stored.isEmpty else {
                    throw ReplicaError(.notLoggedIn, t("keys.notOpen", ("resident", resident.prefix(8)), ("author", session.author)))
                }
                let shelterKey = try shelterKeyForWriting(db, session: session)
                let made = try Self.checked { try RecordKeys.newResidentKey(residentID: resident, under: shelterKey) }
                keys.remember(residentKey: made.key, of: resident)
                if isResident && resident == rowID {
                    sealed["key"] = .text(made.wrapped)
                } else {
                    try write(db, ShelterSchema.residents, resident, ["key": .text(made.wrapped)], author: session.author)
                }
                key = made.key
            }
            reference = resident
        } else {
            let shelterKey = try shelterKeyForWriting(db, session: session)
            key = shelterKey.key
            reference = RecordKeys.shelterReference(shelterKey)
        }
        for (column, value) in personal {
            sealed[column] = .text(try Self.checked {
                try RecordKeys.seal(value.textValue!, key: key, reference: reference, table: table.name, row: rowID, column: column)
            })
        }
        return sealed
    }

    func rowExists(_ db: Database, _ table: SyncSchema.Table, _ rowID: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM \(table.name.quotedDatabaseIdentifier) WHERE id = ?)"), arguments: [rowID]) ?? false
    }

    // MARK: Reading

    /// A personal cell's text for the session: decrypted when it is encrypted and the session can
    /// open its key, nil when it cannot; a text that is not encrypted (written before version 5) as
    /// it is.
    func plain(_ db: Database, _ value: String?, table: String, row: String, column: String) -> String? {
        guard let value, RecordKeys.isSealedCell(value), let reference = RecordKeys.reference(ofCell: value) else { return value }
        let key: SymmetricKey?
        if reference.hasPrefix("*") {
            key = (try? shelterKey(db, id: String(reference.dropFirst())))??.key
        } else {
            key = (try? residentKey(db, reference)) ?? nil
        }
        guard let key else { return nil }
        return try? RecordKeys.open(cell: value, key: key, table: table, row: row, column: column)
    }

    /// `plain` of a column of a fetched row whose id is `row["id"]`.
    func plain(_ db: Database, _ row: Row, _ column: String, table: SyncSchema.Table, id: String? = nil) -> String? {
        plain(db, row[column] as String?, table: table.name, row: id ?? row["id"], column: column)
    }
}
