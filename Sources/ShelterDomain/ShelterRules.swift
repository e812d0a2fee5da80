import Foundation
import SyncCore

/// What a member of staff who signs a transaction is, by the staff table at that point.
public struct Signatory: Hashable, Sendable {
    public var id: String
    public var role: StaffRole?
    public var removed: Bool
    public var signingKey: String?
    public var isServer: Bool { id == Seal.serverSigner }
}

/// Why the rules refuse a transaction: a stable code and a reason for staff and the admin that
/// names ids, tables and columns, never a value.
public struct Refusal: Hashable, Sendable, Error {
    public var code: String
    public var reason: String
    public init(_ code: String, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// The shelter's rules over a proposed transaction (DESIGN §4 "one rule set"): who signed it, whether
/// her role allows each change, and what each change may write given the current rows and the
/// transaction's earlier changes. Pure: the caller reads the rows; the server calls it before
/// merging a pushed or given-back transaction, the workstation before it commits one.
public enum ShelterRules {
    /// The whole transaction is refused, or nil. `serverKey`: the server's public signing key.
    /// `verifySignature: false`: the signer's own workstation, which has just signed it.
    /// `digests`: the changes' `LogHash.of`, when the caller has them already. `signatures`:
    /// verifications made ahead (`SignatureChecks`).
    public static func check(_ changes: [CellChange], rows: any RowSource, serverKey: String?, verifySignature: Bool = true,
                             digests: [LogHash]? = nil, signatures: SignatureChecks? = nil) throws -> Refusal? {
        func verify(_ signature: [UInt8], of digest: [UInt8], signingKey: String) -> Bool {
            signatures?.verify(signature, of: digest, signingKey: signingKey) ?? StaffKeys.verify(signature, of: digest, signingKey: signingKey)
        }
        guard let last = changes.last, let first = changes.first else { return nil }
        guard let seal = last.seal else {
            return Refusal("badSignature", "changes \(first.dot.counter)…\(last.dot.counter) carry no signature")
        }
        let counters = changes.map(\.dot.counter)
        guard seal.first == first.dot.counter, zip(counters, counters.dropFirst()).allSatisfy({ $1 == $0 + 1 }),
              changes.allSatisfy({ $0.dot.replica == last.dot.replica }) else {
            return Refusal("badSignature", "the signature on change \(last.dot.counter) does not cover its transaction (\(seal.first)…\(last.dot.counter))")
        }
        let signatory = try self.signatory(seal.signer, rows: rows)
        if signatory.isServer {
            guard !verifySignature || serverKey.map({ seal.isCheckable(over: changes) && verify(seal.signature, of: Seal.digest(signer: seal.signer, changes: changes, version: seal.version, digests: digests), signingKey: $0) }) == true else {
                return Refusal("badSignature", "transaction \(seal.first)…\(last.dot.counter) is not signed by this server's key")
            }
        } else {
            guard let key = signatory.signingKey, signatory.role != nil else {
                return Refusal("unknownSigner", "transaction \(seal.first)…\(last.dot.counter) is signed by \(seal.signer), who is not a member of staff with keys")
            }
            guard !verifySignature || (seal.isCheckable(over: changes)
                                         && verify(seal.signature, of: Seal.digest(signer: seal.signer, changes: changes, version: seal.version, digests: digests), signingKey: key)) else {
                return Refusal("badSignature", "the signature of transaction \(seal.first)…\(last.dot.counter) is not \(seal.signer)'s")
            }
            if signatory.removed {
                return Refusal("staffRemoved", "transaction \(seal.first)…\(last.dot.counter) is signed by \(seal.signer), who was removed from the staff")
            }
        }
        var overlay = Overlay(base: rows)
        var authorChecked: String?  // a transaction's changes name one author: checked once
        for change in changes {
            let byItsSigner = signatory.isServer || change.author == authorChecked || Roles.staffID(change.author) == signatory.id
            if byItsSigner { authorChecked = change.author }
            guard change.dot.counter <= last.dot.counter, byItsSigner else {
                return Refusal("invalidChange", "change \(change.dot.counter) names another author than its signer \(signatory.id)")
            }
            if let refusal = try check(change, by: signatory, rows: overlay) { return refusal }
            overlay.apply(change)
        }
        return nil
    }

    public static func signatory(_ signer: String, rows: any RowSource) throws -> Signatory {
        if signer == Seal.serverSigner { return Signatory(id: signer, role: .leader, removed: false, signingKey: nil) }
        let row = try rows.row(ShelterSchema.staff.name, signer)
        return Signatory(id: signer, role: row?["role"]?.textValue.flatMap(StaffRole.init(rawValue:)),
                         removed: row?["removed"]?.integerValue.map { $0 != 0 } ?? false,
                         signingKey: row?["signing_key"]?.textValue)
    }

    /// One change, by its signatory, against the rows as the transaction's earlier changes left them.
    public static func check(_ change: CellChange, by signatory: Signatory, rows: any RowSource) throws -> Refusal? {
        guard let table = ShelterSchema.schema.table(named: change.table) else {
            return Refusal("invalidChange", "table \(change.table) is not part of schema version \(ShelterSchema.version)")
        }
        for column in change.values.keys.sorted() where table.column(named: column) == nil {
            return Refusal("invalidChange", "column \(column) is not part of table \(change.table)")
        }
        for (column, value) in change.values where !value.fits {
            return Refusal("valueTooLarge", "\(change.table) \(change.rowID): the \(column) is over the \(SyncValue.maximumTextBytes / 1024) KiB a text may hold")
        }
        // Every value of the column's own type; NULL only where the column has no default (a status
        // written as a number, or cleared, would pass every check below and be stored all the same).
        for (column, value) in change.values.sorted(by: { $0.key < $1.key }) {
            guard let type = table.column(named: column) else { continue }
            let fits: Bool = switch (type.type, value) {
            case (_, .null): type.defaultValue.isNull
            case (.text, .text), (.integer, .integer), (.real, .real), (.real, .integer): true
            default: false
            }
            if !fits {
                return Refusal("invalidValue", "\(change.table) \(change.rowID): the \(column) is not a \(type.type.rawValue.lowercased()) value\(value.isNull ? " (it cannot be empty)" : "")")
            }
        }
        let current = try rows.row(change.table, change.rowID)
        if let current, let once = writtenOnce[change.table] {
            for column in once {
                guard let value = change.values[column], let stored = current[column], value != stored else { continue }
                if stored.isNull || stored == .text("") { continue }
                // The same woman admitted twice: her decisions and complaints move to the stay kept.
                if column == "stay", try sameWoman(stored.textValue ?? "", value.textValue ?? "", rows: rows) { continue }
                return Refusal("invalidChange", "\(change.table) \(change.rowID): the \(column) is written once and never changed")
            }
        }
        if let reason = Permissions.refusal(table: change.table, rowID: change.rowID, columns: Set(change.values.keys),
                                            values: change.values, signatory: signatory) {
            return Refusal("notPermitted", reason)
        }
        func text(_ column: String) -> String? { (change.values[column] ?? current?[column])?.textValue }
        func sets(_ column: String) -> Bool {
            guard let value = change.values[column] else { return false }
            return !(value.isNull || value == .text(""))
        }
        func has(_ row: [String: SyncValue]?, _ column: String) -> Bool {
            guard let value = row?[column] else { return false }
            return !(value.isNull || value == .text(""))
        }
        let id = change.rowID
        switch change.table {
        case ShelterSchema.staff.name:
            if let role = change.values["role"], StaffRole(rawValue: role.textValue ?? "") == nil {
                return Refusal("invalidChange", "staff \(id): the role is not one of \(StaffRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            for column in ["signing_key", "agreement_key"] where change.values[column] != nil {
                if has(current, column) && current?[column] != change.values[column] {
                    return Refusal("invalidChange", "staff \(id): a member's public keys never change")
                }
                guard let key = change.values[column]?.textValue, let raw = Data(base64Encoded: key), raw.count == 32 else {
                    return Refusal("invalidChange", "staff \(id): \(column) is not a 32-byte public key")
                }
            }
            if let sealed = change.values["sealed_keys"] {
                guard let cost = sealed.textValue.flatMap(StaffKeys.cost(ofSealed:)) else {
                    return Refusal("invalidValue", "staff \(id): the sealed keys are not keys sealed with scrypt")
                }
                guard StaffKeys.isAcceptable(cost) else {
                    let least = StaffKeys.minimumCost
                    return Refusal("invalidValue", "staff \(id): the keys are sealed with scrypt N=2^\(cost.logN), r=\(cost.r), p=\(cost.p); the least the shelter accepts is N=2^\(least.logN), r=\(least.r), p=\(least.p)")
                }
            }
            if current == nil && !(sets("signing_key") && sets("agreement_key") && sets("sealed_keys") && sets("role")) {
                return Refusal("invalidChange", "staff \(id) is added without a role and keys")
            }
            if current?["removed"]?.integerValue == 1, change.values["removed"]?.integerValue == 0 {
                return Refusal("invalidChange", "staff \(id) was removed; a removed member of staff does not come back")
            }
        case ShelterSchema.residents.name:
            let wasAnonymous = current?["anonymous"]?.integerValue.map { $0 != 0 } ?? false
            let anonymous = change.values["anonymous"].map { $0.integerValue.map { $0 != 0 } ?? false } ?? wasAnonymous
            if wasAnonymous && !anonymous {
                return Refusal("anonymity", "resident \(id) is anonymous; an anonymous stay never becomes named")
            }
            if let index = change.values["cpr_index"]?.textValue, !index.isEmpty, !RecordKeys.isCPRIndex(index) {
                return Refusal("invalidValue", "resident \(id): the CPR index is not a blind index")
            }
            // Her key and index only under a shelter key the signer was given: a key only its maker
            // holds (a rotation whose grants were refused) would leave her unreadable to the rest.
            for (column, keyID) in [("key", change.values["key"]?.textValue.flatMap(RecordKeys.keyID(ofWrapped:))),
                                    ("cpr_index", change.values["cpr_index"]?.textValue.flatMap(RecordKeys.keyID(ofIndex:)))] {
                if let keyID, !signatory.isServer,
                   try rows.row(ShelterSchema.keyGrants.name, ShelterSchema.grantID(staff: signatory.id, shelterKey: keyID)) == nil {
                    return Refusal("invalidValue", "resident \(id): the \(column == "key" ? "key" : "CPR index") is under a shelter key \(signatory.id) was not given")
                }
            }
            if anonymous {
                if sets("name") || sets("cpr") || sets("cpr_index") {
                    return Refusal("anonymity", "resident \(id) is anonymous: a name or CPR number is refused")
                }
                let keepsName = change.values["name"] == nil && has(current, "name")
                let keepsCPR = (change.values["cpr"] == nil && has(current, "cpr")) || (change.values["cpr_index"] == nil && has(current, "cpr_index"))
                if keepsName || keepsCPR {
                    return Refusal("anonymity", "resident \(id) has a name or CPR number and cannot become anonymous without clearing them")
                }
                if !wasAnonymous {
                    for child in try rows.ids(ShelterSchema.children.name, where: "resident", is: .text(id)) {
                        let row = try rows.row(ShelterSchema.children.name, child)
                        if has(row, "name") || has(row, "cpr") {
                            return Refusal("anonymity", "resident \(id) cannot become anonymous while her child \(child) has a name or CPR number")
                        }
                    }
                }
            }
            if let municipality = change.values["municipality"], !Municipality.isValidStored(municipality.textValue ?? "", anonymous: anonymous) {
                return Refusal("invalidValue", "resident \(id): the home municipality is not one of the 98 (by its official name)"
                               + (anonymous ? ", nor unknown" : "; unknown is an anonymous stay's choice only"))
            }
            if let key = change.values["key"] {
                if let reason = residentKeyRefusal(key, current: current?["key"], id: id, signatory: signatory) { return reason }
                if let text = key.textValue, !text.isEmpty, try rows.row(ShelterSchema.erasures.name, id) != nil {
                    return Refusal("erased", "resident \(id) was erased: she is given no key again")
                }
            }
        case ShelterSchema.children.name:
            let named = sets("name") || sets("cpr") || (change.values["name"] == nil && has(current, "name"))
                || (change.values["cpr"] == nil && has(current, "cpr"))
            if named, let resident = text("resident"),
               try rows.row(ShelterSchema.residents.name, resident)?["anonymous"]?.integerValue.map({ $0 != 0 }) == true {
                return Refusal("anonymity", "child \(id) belongs to an anonymous resident: a name or CPR number is refused")
            }
        case ShelterSchema.stays.name:
            if let status = change.values["status"], Stay.Status(rawValue: status.textValue ?? "") == nil {
                return Refusal("invalidValue", "stay \(id): status is not one of \(Stay.Status.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if change.values["status"]?.textValue == Stay.Status.merged.rawValue {
                // Merged only into another (unmerged) stay of a resident with the same CPR number (index).
                let into = (change.values["merged_into"] ?? current?["merged_into"])?.textValue ?? ""
                let target = try rows.row(ShelterSchema.stays.name, into)
                let index = { (stay: [String: SyncValue]?) throws -> String? in
                    guard let resident = stay?["resident"]?.textValue else { return nil }
                    return try rows.row(ShelterSchema.residents.name, resident)?["cpr_index"]?.textValue
                }
                // (The stay merged into may have ended since, at another workstation: the merge still
                // stands — it was made while both were current, which the workstation checks.)
                guard into != id, let target, target["status"]?.textValue != Stay.Status.merged.rawValue,
                      let mine = try index(current ?? change.values), !mine.isEmpty, try index(target) == mine else {
                    return Refusal("invalidChange", "stay \(id): a stay is merged only into another stay of a resident with the same CPR number")
                }
            }
            if let refusal = timeRefusal(change, columns: ["admitted_at", "discharged_at"]) { return refusal }
            if current == nil, (text("admitted_at") ?? "").isEmpty || (text("resident") ?? "").isEmpty {
                return Refusal("invalidValue", "stay \(id): a stay has a resident and an admission time")
            }
            if change.values["admitted_at"] != nil || change.values["discharged_at"] != nil,
               let admitted = moment(text("admitted_at")), let discharged = moment(text("discharged_at")), discharged < admitted {
                return Refusal("invalidValue", "stay \(id): the discharge is before the admission")
            }
            if let room = change.values["room"], !room.isNull {
                guard let number = room.integerValue,
                      !(try rows.ids(ShelterSchema.rooms.name, where: "number", is: .integer(number))).isEmpty else {
                    return Refusal("invalidValue", "stay \(id): the room does not exist")
                }
            }
        case ShelterSchema.conflicts.name where !signatory.isServer:
            guard current != nil else {
                return Refusal("notPermitted", "conflict \(id): only the server records a conflict")
            }
            if let status = change.values["status"], status.textValue != Conflict.Status.resolved.rawValue {
                return Refusal("invalidValue", "conflict \(id): staff may only resolve a conflict")
            }
        case ShelterSchema.complaints.name:
            if let status = change.values["status"]?.textValue, !["received", "upheld", "maintained", "forwarded"].contains(status) {
                return Refusal("invalidValue", "complaint \(id): the status is not a complaint's")
            }
            if let refusal = try complaintRefusal(change, current: current, rows: rows) { return refusal }
        case ShelterSchema.decisions.name:
            if let refusal = dayRefusal(change, columns: ["decided_on"]) { return refusal }
            if current == nil, try rows.row(ShelterSchema.stays.name, text("stay") ?? "") == nil {
                return Refusal("invalidValue", "decision \(id): there is no such stay")
            }
            if let stay = text("stay"), let decided = text("decided_on").flatMap(CivilDate.init),
               let admitted = moment(try rows.row(ShelterSchema.stays.name, stay)?["admitted_at"]?.textValue),
               decided < Timestamp.civilDate(of: admitted) {
                return Refusal("invalidValue", "decision \(id): it is dated before the stay began")
            }
            if let status = change.values["status"]?.textValue, !["standing", "overturned"].contains(status) || (current == nil && status != "standing") {
                return Refusal("invalidValue", "decision \(id): a decision is made standing, and only a complaint overturns it")
            }
            let was = current?["status"]?.textValue ?? "standing"
            if let status = change.values["status"]?.textValue, status != was {
                guard was == "standing", status == "overturned", text("outcome") != "eligible", current?["house_rules"]?.integerValue != 1 else {
                    return Refusal("invalidChange", "decision \(id): a decision only goes from standing to overturned")
                }
                let upheld = try rows.ids(ShelterSchema.complaints.name, where: "decision", is: .text(id)).contains {
                    try rows.row(ShelterSchema.complaints.name, $0)?["status"]?.textValue == "upheld"
                }
                // A complaint made before schema 8 names its decision only by date.
                let upheldByDate = try rows.ids(ShelterSchema.complaints.name, where: "stay", is: .text(text("stay") ?? "")).contains {
                    let complaint = try rows.row(ShelterSchema.complaints.name, $0)
                    return complaint?["status"]?.textValue == "upheld" && (complaint?["decision"]?.textValue ?? "").isEmpty
                        && complaint?["decision_on"]?.textValue == text("decided_on")
                }
                guard upheld || upheldByDate else {
                    return Refusal("invalidChange", "decision \(id): it is overturned only by an upheld complaint about it")
                }
            }
        case ShelterSchema.goals.name:
            if let status = change.values["status"], !["open", "done", "dropped"].contains(status.textValue ?? "") {
                return Refusal("invalidValue", "goal \(id): the status is not open, done or dropped")
            }
        case ShelterSchema.offers.name:
            let hours: Double? = switch change.values["hours"] {
            case .real(let value)?: value
            case .integer(let value)?: Double(value)
            case nil: 0
            default: nil
            }
            if !(hours.map { $0 >= 0 && $0 <= 10_000 } ?? false) {
                return Refusal("invalidValue", "offer \(id): the hours are not a number of hours")
            }
            if let person = change.values["person"]?.textValue, person != "woman",
               try rows.row(ShelterSchema.children.name, person) == nil {
                return Refusal("invalidValue", "offer \(id): the person is neither the woman nor a child")
            }
        case ShelterSchema.notifications.name:
            if let kind = change.values["kind"], !["admission", "discharge"].contains(kind.textValue ?? "") {
                return Refusal("invalidValue", "notification \(id): the kind is not admission or discharge")
            }
            if let refusal = timeRefusal(change, columns: ["sent_at"]) { return refusal }
            if let municipality = change.values["municipality"], !Municipality.isValidStored(municipality.textValue ?? "", anonymous: true) {
                return Refusal("invalidValue", "notification \(id): the municipality is not one of the 98 (by its official name), nor unknown")
            }
        case ShelterSchema.meetings.name:
            if let held = change.values["held_on"], CivilDate(held.textValue ?? "") == nil {
                return Refusal("invalidValue", "meeting \(id): the date is not a date")
            }
            if let refusal = dayRefusal(change, columns: ["held_on"]) { return refusal }
        case ShelterSchema.keyGrants.name:
            if let refusal = try grantRefusal(change, current: current, rows: rows) { return refusal }
        case ShelterSchema.erasures.name:
            if current != nil {
                return Refusal("invalidChange", "erasure \(id): a resident is erased once")
            }
            guard try rows.row(ShelterSchema.residents.name, id) != nil else {
                return Refusal("invalidValue", "erasure \(id): there is no such resident")
            }
            guard let at = change.values["erased_at"]?.textValue, (try? Timestamp.parse(at, timeZone: TimeZone(identifier: "UTC")!)) != nil else {
                return Refusal("invalidValue", "erasure \(id): the time of the erasure is not a time")
            }
            // Who erased her: the signer, or — for an erasure a rescue signs again — another leader.
            let erasedBy = change.values["erased_by"]?.textValue ?? ""
            let eraserRole = try rows.row(ShelterSchema.staff.name, erasedBy)?["role"]?.textValue
            guard erasedBy == signatory.id || eraserRole == StaffRole.leader.rawValue else {
                return Refusal("invalidValue", "erasure \(id): it must name a leader (its signer \(signatory.id)) as the one who erased")
            }
            guard let reason = change.values["reason"]?.textValue, Erasure.Reason(rawValue: reason) != nil else {
                return Refusal("invalidValue", "erasure \(id): the reason is not one of \(Erasure.Reason.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        case ShelterSchema.retiredKeys.name:
            if let current, change.values.contains(where: { current[$0.key] != $0.value }) {
                return Refusal("invalidChange", "retired key \(id): a key is retired once")
            }
            guard !(try rows.ids(ShelterSchema.keyGrants.name, where: "shelter_key", is: .text(id))).isEmpty else {
                return Refusal("invalidValue", "retired key \(id): no shelter key has that id")
            }
            if let at = change.values["retired_at"], (try? Timestamp.parse(at.textValue ?? "", timeZone: TimeZone(identifier: "UTC")!)) == nil {
                return Refusal("invalidValue", "retired key \(id): the time it was retired is not a time")
            }
        case ShelterSchema.rates.name:
            for column in ["amount", "amount_ore"] {
                if let value = change.values[column], !value.isNull, !(value.integerValue.map { $0 > 0 } ?? false) {
                    return Refusal("invalidValue", "rate \(id): the \(column) is not a positive whole number")
                }
            }
        case ShelterSchema.settings.name where id == "language":
            if let value = change.values["value"], !value.isNull, Language(rawValue: value.textValue ?? "") == nil {
                return Refusal("invalidValue", "setting \(id): the language is da or en")
            }
        case ShelterSchema.settings.name where id == Erasure.retentionSetting:
            if let value = change.values["value"], !(value.textValue.flatMap { Int($0) }.map { (1...100).contains($0) } ?? false) {
                return Refusal("invalidValue", "setting \(id): the retention period is a whole number of years from 1 to 100")
            }
        default:
            break
        }
        // Personal data leaves a workstation only encrypted (a CPR number's form is checked there,
        // before it is); the server's conflict rows copy cells as they are.
        if change.table != ShelterSchema.conflicts.name {
            for column in table.columns where column.personal {
                guard let value = change.values[column.name], !value.isNull else { continue }
                guard let text = value.textValue else {
                    return Refusal("invalidValue", "\(change.table) \(id): the \(column.name) is personal data and must be an encrypted text")
                }
                if !text.isEmpty && !RecordKeys.isSealedCell(text) {
                    return Refusal("invalidValue", "\(change.table) \(id): the \(column.name) is personal data and must be encrypted on the workstation")
                }
            }
        }
        return nil
    }

    /// Columns written once, by table: what a later change may not move (a record would contradict
    /// itself, or a concurrent write could win one cell and not the other of a pair checked together).
    public static let writtenOnce: [String: [String]] = [
        ShelterSchema.stays.name: ["resident", "admitted_at"],
        ShelterSchema.decisions.name: ["stay", "kind", "outcome", "house_rules", "decided_on"],
        ShelterSchema.complaints.name: ["stay", "decision", "decision_on", "received_on"],
        ShelterSchema.notifications.name: ["stay", "kind", "event_on"],
    ]

    /// Whether two stays are of residents with the same CPR number (the blind index): a merge.
    static func sameWoman(_ first: String, _ second: String, rows: any RowSource) throws -> Bool {
        func index(_ stay: String) throws -> String? {
            guard let resident = try rows.row(ShelterSchema.stays.name, stay)?["resident"]?.textValue else { return nil }
            return try rows.row(ShelterSchema.residents.name, resident)?["cpr_index"]?.textValue
        }
        guard let a = try index(first), !a.isEmpty else { return false }
        return try index(second) == a
    }

    /// The admission time when a discharge would fall before it (she left, but not before she came),
    /// else nil: how a rescue and a restamp bring a moved discharge into line with its stay.
    public static func dischargeBroughtToAdmission(discharged: String?, admitted: String?) -> String? {
        guard let left = moment(discharged), let came = moment(admitted), left < came else { return nil }
        return admitted
    }

    /// A stored moment (UTC ISO 8601), or nil.
    static func moment(_ text: String?) -> Date? {
        guard let text, !text.isEmpty else { return nil }
        return try? Timestamp.parse(text, timeZone: utc)
    }

    /// Made once: the rules read a moment in every change that records one.
    static let utc = TimeZone(identifier: "UTC")!

    /// The latest moment a change may record: its own clock stamp and `EventTime.maximumAhead`.
    /// (The stamp is the workstation's clock when it wrote, which the server bounds at sync.)
    static func latest(_ change: CellChange) -> Date {
        Date(timeIntervalSince1970: Double(change.hlc.milliseconds) / 1000 + EventTime.maximumAhead)
    }

    /// Moments in `columns` that are not times or lie after the change was made.
    static func timeRefusal(_ change: CellChange, columns: [String]) -> Refusal? {
        for column in columns {
            guard let text = change.values[column]?.textValue, !text.isEmpty else { continue }
            guard let at = moment(text), Timestamp.format(at) == text else {
                return Refusal("invalidValue", "\(change.table) \(change.rowID): the \(column) is not a time as the records write one")
            }
            if at > latest(change) {
                return Refusal("invalidValue", "\(change.table) \(change.rowID): the \(column) is after the change was made (an event in the future)")
            }
        }
        return nil
    }

    /// Days in `columns` that are not dates or lie after the day the change was made.
    static func dayRefusal(_ change: CellChange, columns: [String]) -> Refusal? {
        for column in columns {
            guard let text = change.values[column]?.textValue, !text.isEmpty else { continue }
            guard let day = CivilDate(text), day.description == text else {
                return Refusal("invalidValue", "\(change.table) \(change.rowID): the \(column) is not a date")
            }
            // The calendar day in Danish time, where the shelter is, when the change was made.
            if day > Timestamp.civilDate(of: latest(change)) {
                return Refusal("invalidValue", "\(change.table) \(change.rowID): the \(column) is after the change was made (a day in the future)")
            }
        }
        return nil
    }

    /// A complaint: about an appealable decision of its stay, received on or after it; its status
    /// goes one way — received, then upheld or maintained, and only a maintained one forwarded.
    static func complaintRefusal(_ change: CellChange, current: [String: SyncValue]?, rows: any RowSource) throws -> Refusal? {
        let id = change.rowID
        if let refusal = dayRefusal(change, columns: ["received_on", "reviewed_on", "forwarded_on"]) { return refusal }
        let value = { (column: String) in (change.values[column] ?? current?[column])?.textValue }
        if current == nil {
            guard value("status") ?? "received" == "received" else {
                return Refusal("invalidChange", "complaint \(id): a complaint begins as received")
            }
            guard let decisionID = value("decision"), !decisionID.isEmpty, let decision = try rows.row(ShelterSchema.decisions.name, decisionID) else {
                return Refusal("invalidValue", "complaint \(id): it does not name a decision")
            }
            guard decision["stay"]?.textValue == value("stay") else {
                return Refusal("invalidValue", "complaint \(id): the decision is about another stay")
            }
            if decision["outcome"]?.textValue == "eligible" || decision["house_rules"]?.integerValue == 1 {
                return Refusal("notPermitted", "complaint \(id): the decision cannot be appealed (an eligible decision, or an expulsion for breaking the house rules)")
            }
            if (decision["status"]?.textValue ?? "standing") != "standing" {
                return Refusal("invalidValue", "complaint \(id): the decision was overturned already")
            }
            if let received = value("received_on").flatMap(CivilDate.init), let decided = decision["decided_on"]?.textValue.flatMap(CivilDate.init), received < decided {
                return Refusal("invalidValue", "complaint \(id): it is received before the decision was made")
            }
        } else if let decision = change.values["decision"], decision != current?["decision"] {
            return Refusal("invalidChange", "complaint \(id): the decision a complaint is about never changes")
        }
        let received = value("received_on").flatMap(CivilDate.init), reviewed = value("reviewed_on").flatMap(CivilDate.init)
        if let reviewed, let received, reviewed < received {
            return Refusal("invalidValue", "complaint \(id): it is reconsidered before it was received")
        }
        if let forwarded = value("forwarded_on").flatMap(CivilDate.init), let reviewed, forwarded < reviewed {
            return Refusal("invalidValue", "complaint \(id): it is forwarded before it was reconsidered")
        }
        let was = current?["status"]?.textValue ?? "received"
        if let status = change.values["status"]?.textValue, status != was, current != nil {
            let allowed: Set<String> = switch was {
            case "received": ["upheld", "maintained"]
            case "maintained": ["forwarded"]
            default: []
            }
            guard allowed.contains(status) else {
                return Refusal("invalidChange", "complaint \(id): it was \(was) and cannot become \(status) (received, then upheld or maintained; only a maintained one is forwarded)")
            }
        }
        return nil
    }

    /// A resident's key: written once, as a wrapped key; never replaced by staff (erasure and
    /// rotation are the leader's, in a later version).
    static func residentKeyRefusal(_ key: SyncValue, current: SyncValue?, id: String, signatory: Signatory) -> Refusal? {
        if let text = key.textValue, !text.isEmpty, RecordKeys.keyID(ofWrapped: text) == nil {
            return Refusal("invalidValue", "resident \(id): the key is not a wrapped resident key")
        }
        // A leader wraps it again after a rotation (under another shelter key): still a wrapped key.
        if let stored = current?.textValue, !stored.isEmpty, current != key, !signatory.isServer,
           !(signatory.role == .leader && key.textValue.flatMap(RecordKeys.keyID(ofWrapped:)) != nil) {
            return Refusal("invalidChange", "resident \(id): her key is set once and never replaced (only a leader wraps it again)")
        }
        return nil
    }

    /// A shelter key granted to a member of staff: to a member with keys who is not removed, under
    /// the row id naming both, as a sealed grant of the key it names; written once.
    static func grantRefusal(_ change: CellChange, current: [String: SyncValue]?, rows: any RowSource) throws -> Refusal? {
        let id = change.rowID
        let staff = (change.values["staff"] ?? current?["staff"])?.textValue ?? ""
        let keyID = (change.values["shelter_key"] ?? current?["shelter_key"])?.textValue ?? ""
        let sealed = (change.values["sealed"] ?? current?["sealed"])?.textValue ?? ""
        guard id == ShelterSchema.grantID(staff: staff, shelterKey: keyID), RecordKeys.keyID(ofGrant: sealed) == keyID else {
            return Refusal("invalidValue", "key grant \(id): not a grant of the key it names to the member it names")
        }
        if let current, current["sealed"]?.textValue.map({ !$0.isEmpty }) == true {
            if change.values.contains(where: { current[$0.key] != $0.value }) {
                return Refusal("invalidChange", "key grant \(id): a grant is written once")
            }
        }
        let member = try rows.row(ShelterSchema.staff.name, staff)
        guard let member, member["agreement_key"]?.textValue.map({ !$0.isEmpty }) == true else {
            return Refusal("invalidValue", "key grant \(id): \(staff) is not a member of staff with keys")
        }
        if member["removed"]?.integerValue == 1 {
            return Refusal("invalidValue", "key grant \(id): \(staff) was removed from the staff")
        }
        return nil
    }
}

/// Which role may write what (DESIGN §4): the server (its own repairs, conflict rows, staff the
/// admin made) anything; a leader the staff, decisions, rates and settings and a complaint's
/// reconsideration; every member of staff the rest, and her own sealed keys (`passwd`).
public enum Permissions {
    /// Nil when `signatory` may write `columns` of that row; else why not (no values named).
    public static func refusal(table: String, rowID: String, columns: Set<String>, values: [String: SyncValue], signatory: Signatory) -> String? {
        if signatory.isServer { return nil }
        let role = signatory.role
        func leaderOnly(_ what: String) -> String? {
            role == .leader ? nil : "only a leader may \(what); \(signatory.id) is \(role?.rawValue ?? "not a member of staff")"
        }
        switch table {
        case ShelterSchema.staff.name:
            if rowID == signatory.id && columns == ["sealed_keys"] { return nil }
            return leaderOnly("add, remove or change staff")
        case ShelterSchema.decisions.name:
            return leaderOnly("record a decision")
        case ShelterSchema.rates.name, ShelterSchema.settings.name:
            return leaderOnly("set rates and settings")
        case ShelterSchema.complaints.name:
            if let status = values["status"]?.textValue, status == "upheld" || status == "maintained" {
                return leaderOnly("reconsider a complaint")
            }
        case ShelterSchema.rooms.name:
            if columns.contains("number") { return leaderOnly("create rooms") }
        case ShelterSchema.keyGrants.name:
            return leaderOnly("give the shelter's key to a member of staff")
        case ShelterSchema.erasures.name:
            return leaderOnly("erase a resident")
        case ShelterSchema.retiredKeys.name:
            return leaderOnly("retire the shelter's key")
        case ShelterSchema.conflicts.name:
            let resolution: Set<String> = ["status", "resolved_by", "resolved_at"]
            if !columns.isSubset(of: resolution) { return "only the server records a conflict; staff resolve it" }
        default:
            break
        }
        return role == nil ? "\(signatory.id) is not a member of staff" : nil
    }
}

/// The rows with a transaction's earlier changes (or earlier transactions) applied on top.
public struct Overlay: RowSource {
    let base: any RowSource
    var written: [String: [String: [String: SyncValue]]] = [:]
    /// The base's rows read so far: nothing is written to the base while rules are checked over an
    /// overlay, so a row read once (the signer's grant, read for each of a transaction's changes)
    /// is read once.
    private let read = ReadRows()

    final class ReadRows: @unchecked Sendable {
        var rows: [String: [String: SyncValue]?] = [:]
    }

    public init(base: any RowSource, applying changes: [CellChange] = []) {
        self.base = base
        for change in changes { apply(change) }
    }

    public mutating func apply(_ change: CellChange) {
        written[change.table, default: [:]][change.rowID, default: [:]].merge(change.values) { $1 }
    }

    /// The same writes over another base (the rows before a transaction, read again after it).
    public func rebased(on base: any RowSource) -> Overlay {
        var overlay = Overlay(base: base)
        overlay.written = written
        return overlay
    }

    public func row(_ table: String, _ id: String) throws -> [String: SyncValue]? {
        let key = table + "\u{1F}" + id
        let stored: [String: SyncValue]?
        if let cached = read.rows[key] {
            stored = cached
        } else {
            stored = try base.row(table, id)
            read.rows[key] = .some(stored)
        }
        guard let mine = written[table]?[id] else { return stored }
        return (stored ?? [:]).merging(mine) { $1 }
    }

    public func ids(_ table: String, where column: String, is value: SyncValue) throws -> [String] {
        var ids = Set(try base.ids(table, where: column, is: value))
        for (id, values) in written[table] ?? [:] {
            if let written = values[column] { if written == value { ids.insert(id) } else { ids.remove(id) } }
        }
        return ids.sorted()
    }
}

/// What `verify` found in a log: every transaction's signature checked against its signer's key
/// (the staff table's, or the server's).
public struct VerifyReport: Hashable, Sendable {
    public struct Invalid: Hashable, Sendable {
        public var replica: String
        public var counter: UInt64
        public var reason: String

        public init(replica: String, counter: UInt64, reason: String) {
            self.replica = replica
            self.counter = counter
            self.reason = reason
        }
    }
    public var transactions = 0
    public var verified = 0
    /// Transactions signed before 0.9 (seal version 1) whose values were since erased: their
    /// signature was made over values that are gone, so it cannot be checked (neither is it wrong).
    public var erasedUnchecked = 0
    /// Transactions begun before the snapshot this replica's history starts with: their first
    /// changes came in the snapshot's rows (which the server's signature covers), not in this log.
    public var beforeSnapshot = 0
    public var invalid: [Invalid] = []
    /// The snapshot this replica's pulled history begins with, and whether the server's signature
    /// of it checks; nil when it pulled the whole log.
    public var snapshot: SnapshotCheck?

    public struct SnapshotCheck: Hashable, Sendable {
        public var position: Int64
        public var rows: UInt64
        /// When the server read it (ms since 1970).
        public var takenAt: UInt64
        public var valid: Bool

        public init(position: Int64, rows: UInt64, takenAt: UInt64, valid: Bool) {
            self.position = position
            self.rows = rows
            self.takenAt = takenAt
            self.valid = valid
        }
    }

    /// Checks every transaction of `changes` (a whole log, in any order). A transaction is a
    /// replica's changes up to the one carrying the seal; a change no seal covers, a gap in a
    /// transaction, an unknown signer or a signature that does not match is invalid.
    ///
    /// `snapshotHoldings`: what the snapshot this log begins after holds; a transaction begun in it
    /// is counted in `beforeSnapshot`, not as incomplete.
    public static func of(_ changes: [CellChange], rows: some RowSource, serverKey: String?, snapshotHoldings: VersionVector? = nil) throws -> VerifyReport {
        var report = VerifyReport()
        let byReplica = Dictionary(grouping: changes, by: \.dot.replica)
        var keys: [String: String?] = [:]
        func key(of signer: String) throws -> String? {
            if signer == Seal.serverSigner { return serverKey }
            if let known = keys[signer] { return known }
            let found = try rows.row(ShelterSchema.staff.name, signer)?["signing_key"]?.textValue
            keys[signer] = found
            return found
        }
        for replica in byReplica.keys.sorted() {
            let log = byReplica[replica]!.sorted { $0.dot.counter < $1.dot.counter }
            var index = 0
            while index < log.count {
                guard let end = log[index...].firstIndex(where: { $0.seal != nil }) else {
                    report.transactions += 1
                    report.invalid.append(Invalid(replica: replica.description, counter: log[index].dot.counter,
                                                  reason: "changes \(log[index].dot.counter)…\(log.last!.dot.counter) carry no signature"))
                    break
                }
                let seal = log[end].seal!
                // The transaction: from the seal's first counter to the sealed change.
                let start = log[index...end].firstIndex { $0.dot.counter >= seal.first } ?? end
                if start > index {
                    report.transactions += 1
                    report.invalid.append(Invalid(replica: replica.description, counter: log[index].dot.counter,
                                                  reason: "changes \(log[index].dot.counter)…\(log[start - 1].dot.counter) carry no signature"))
                }
                let transaction = Array(log[start...end])
                index = end + 1
                report.transactions += 1
                let counters = transaction.map(\.dot.counter)
                let contiguous = zip(counters, counters.dropFirst()).allSatisfy { $1 == $0 + 1 }
                // Begun in the snapshot and ended in this log: exactly the counters before this log's
                // first are the snapshot's (its holdings end there), and the seal began among them.
                if contiguous, counters.first! > seal.first, let holdings = snapshotHoldings,
                   seal.first <= holdings[replica], holdings[replica] == counters.first! - 1 {
                    report.beforeSnapshot += 1
                    continue
                }
                guard counters.first == seal.first, contiguous else {
                    report.invalid.append(Invalid(replica: replica.description, counter: seal.first,
                                                  reason: "transaction \(seal.first)…\(counters.last!) is incomplete in this log"))
                    continue
                }
                guard let signingKey = try key(of: seal.signer) else {
                    report.invalid.append(Invalid(replica: replica.description, counter: seal.first,
                                                  reason: "signed by \(seal.signer), whose key this log does not know"))
                    continue
                }
                guard seal.isCheckable(over: transaction) else {
                    // Signed before 0.9 over values since erased: nothing left to check it against.
                    report.erasedUnchecked += 1
                    continue
                }
                guard StaffKeys.verify(seal.signature, of: Seal.digest(signer: seal.signer, changes: transaction, version: seal.version), signingKey: signingKey) else {
                    report.invalid.append(Invalid(replica: replica.description, counter: seal.first,
                                                  reason: "the signature of transaction \(seal.first)…\(counters.last!) does not match its changes and \(seal.signer)'s key"))
                    continue
                }
                report.verified += 1
            }
        }
        return report
    }
}
