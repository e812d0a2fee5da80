import Foundation
import GRDB
import ShelterDomain
import SyncCore

extension Replica {
    // MARK: Clock and helpers

    /// Today in Danish time (the shelter's calendar).
    public func today() -> CivilDate { Timestamp.civilDate(of: configuration.now()) }

    static func civilDate(ofStored text: String?) -> CivilDate? {
        guard let text, let date = try? Timestamp.parse(text) else { return nil }
        return Timestamp.civilDate(of: date)
    }

    func role(_ db: Database, of author: String) throws -> StaffRole? {
        try String.fetchOne(db, sql: "SELECT role FROM staff WHERE id = ?", arguments: [Roles.staffID(author)]).flatMap(StaffRole.init(rawValue:))
    }

    func requireLeader(_ db: Database, _ author: String, for what: String) throws {
        try Roles.requireLeader(author, role: try role(db, of: author), for: what)
    }

    /// Creates the notification to the home municipality for an admission or a discharge.
    func writeNotification(_ db: Database, stay: String, kind: NotificationLetter.Kind, municipality: String, on event: CivilDate, author: String) throws {
        try write(db, ShelterSchema.notifications, newID(), [
            "stay": .text(stay), "kind": .text(kind.rawValue), "municipality": .text(municipality),
            "event_on": .text(event.description),
            "due": .text(Deadlines.notificationDue(after: event).description),
            "legal_deadline": .text(Deadlines.notificationLegalDeadline(after: event).description),
        ], author: author)
    }

    func municipality(_ db: Database, ofStay stay: Stay) throws -> String {
        try String.fetchOne(db, sql: "SELECT municipality FROM residents WHERE id = ?", arguments: [stay.resident]) ?? ""
    }

    /// Ends a stay and notifies the home municipality, inside the caller's transaction.
    func end(_ db: Database, _ stay: Stay, reason: String, at: Date, author: String) throws {
        try stay.checkDischargeable()
        try write(db, ShelterSchema.stays, stay.id, [
            "status": .text(Stay.Status.discharged.rawValue),
            "discharged_at": .text(Timestamp.format(at)),
            "discharge_reason": .text(reason),
        ], author: author)
        try writeNotification(db, stay: stay.id, kind: .discharge, municipality: try municipality(db, ofStay: stay),
                              on: Timestamp.civilDate(of: at), author: author)
    }

    // MARK: Staff

    /// A leader adds a member of staff: new keys, sealed under her initial `passphrase` (she
    /// changes it with `passwd`). Names are unique; a removed member's name is not used again.
    public func addStaff(name: String, role: StaffRole, passphrase: String, by session: any TransactionSigner) throws {
        let keys = StaffKeys()
        let trimmed = try Self.checkedStaffName(name)
        let sealed = try Self.checked { try keys.sealed(passphrase: passphrase, staffID: Roles.staffID(trimmed)) }
        try addStaff(name: trimmed, role: role, keys: keys, sealedKeys: sealed, by: session)
    }

    /// `addStaff` with keys already made and sealed. The shelter keys the leader holds are granted
    /// to the new member in the same transaction.
    public func addStaff(name: String, role: StaffRole, keys: StaffKeys, sealedKeys: String, by session: any TransactionSigner) throws {
        let trimmed = try Self.checkedStaffName(name)
        try perform(signedBy: session) { db in
            try requireLeader(db, session.signer, for: "adding staff")
            if try store.currentRow(db, table: ShelterSchema.staff.name, id: Roles.staffID(trimmed)) != nil {
                throw ReplicaError(.invalidArgument, "there is already a member of staff named \(trimmed); names are unique")
            }
            try write(db, ShelterSchema.staff, Roles.staffID(trimmed), [
                "name": .text(trimmed), "role": .text(role.rawValue),
                "signing_key": .text(keys.signingKey), "agreement_key": .text(keys.agreementKey),
                "sealed_keys": .text(sealedKeys), "removed": .integer(0),
            ], author: session.author)
            try grantHeldKeys(db, author: session.author, only: Roles.staffID(trimmed))
        }
    }

    /// A leader removes a member of staff: from then on the server refuses her signature, and a new
    /// shelter key — granted to everyone else in the same transaction — takes over for residents
    /// admitted later, so her passphrase and a copy of a replica never open them.
    public func removeStaff(name: String, by session: any TransactionSigner) throws {
        let rotated = try perform(signedBy: session) { db -> Bool in
            try requireLeader(db, session.signer, for: "removing staff")
            let id = try staffRow(db, name)
            guard id != session.signer else { throw ReplicaError(.invalidArgument, "a leader cannot remove herself; another leader can") }
            try write(db, ShelterSchema.staff, id, ["removed": .integer(1)], author: session.author)
            if let opener = keys.opener,
               try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM key_grants WHERE staff = ?)", arguments: [opener.signer]) == true {
                let rotated = RecordKeys.ShelterKey()
                keys.remember(rotated)
                try grant(db, rotated, toAllBut: [], author: session.author)
                return true
            }
            return false
        }
        // The residents admitted before: their keys wrapped again under the new one, in
        // transactions of their own (a leader's next sync finishes what a crash cut short).
        if rotated { _ = try continueRotation(by: session) }
    }

    /// A leader changes a member's role.
    public func setRole(name: String, role: StaffRole, by session: any TransactionSigner) throws {
        try perform(signedBy: session) { db in
            try requireLeader(db, session.signer, for: "changing roles")
            try write(db, ShelterSchema.staff, try staffRow(db, name), ["role": .text(role.rawValue)], author: session.author)
        }
    }

    func staffRow(_ db: Database, _ name: String) throws -> String {
        let id = Roles.staffID(name)
        guard let row = try store.currentRow(db, table: ShelterSchema.staff.name, id: id) else {
            throw ReplicaError(.unknownID, "no member of staff named \(name) on this replica")
        }
        guard row["removed"]?.integerValue != 1 else { throw ReplicaError(.invalidArgument, "\(name) was removed from the staff") }
        return id
    }

    /// Opens a member's keys with her passphrase (`shelter login`): refused for an unknown or
    /// removed member and for a wrong passphrase, after a short delay; nothing is written.
    public func unlock(name: String, passphrase: String) throws -> (keys: StaffKeys, member: StaffMember) {
        let id = Roles.staffID(name)
        let row = try read { db in try store.currentRow(db, table: ShelterSchema.staff.name, id: id) }
        guard let row, let sealed = row["sealed_keys"]?.textValue else {
            Thread.sleep(forTimeInterval: 1)
            throw ReplicaError(.notLoggedIn, "no member of staff named \(name) with keys on this replica (sync first if she was added elsewhere)")
        }
        guard row["removed"]?.integerValue != 1 else {
            throw ReplicaError(.notLoggedIn, "\(name) was removed from the staff; nothing was unlocked")
        }
        do {
            let keys = try StaffKeys.open(sealed, passphrase: passphrase, staffID: id)
            guard keys.signingKey == row["signing_key"]?.textValue else {
                throw ReplicaError(.notLoggedIn, "the stored keys of \(name) do not match her public key; nothing was unlocked")
            }
            return (keys, StaffMember(id: id, name: row["name"]?.textValue ?? name, role: row["role"]?.textValue.flatMap(StaffRole.init(rawValue:))))
        } catch let error as DomainError {
            Thread.sleep(forTimeInterval: 1)
            throw ReplicaError(.notLoggedIn, error.message, underlying: error)
        }
    }

    /// A member changes her own passphrase: her keys sealed again, signed by her.
    public func changePassphrase(old: String, new: String, by session: any TransactionSigner) throws {
        let (keys, member) = try unlock(name: session.author, passphrase: old)
        let sealed = try Self.checked { try keys.sealed(passphrase: new, staffID: member.id) }
        try perform(signedBy: session) { db in
            try write(db, ShelterSchema.staff, member.id, ["sealed_keys": .text(sealed)], author: session.author)
        }
    }

    public func staff() throws -> [StaffMember] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, role, removed FROM staff ORDER BY name").map(Self.staffMember)
        }
    }

    static func staffMember(_ row: Row) -> StaffMember {
        StaffMember(id: row["id"], name: row["name"], role: StaffRole(rawValue: row["role"] ?? ""), removed: (row["removed"] as Int64? ?? 0) != 0)
    }

    /// A member of staff as this replica knows her (nil: unknown).
    public func staffMember(_ id: String) throws -> StaffMember? {
        try read { db in try staffMember(db, Roles.staffID(id)) }
    }

    // MARK: Decisions

    /// The leader's eligibility decision. A not-eligible decision ends the stay (and notifies the
    /// home municipality); its date starts the complaint clock.
    @discardableResult
    public func decide(stay: String, eligible: Bool, reason: String? = nil, referTo: String? = nil, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        if !eligible && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw ReplicaError(.invalidArgument, "a not-eligible decision needs a reason (--reason)")
        }
        let when = at ?? configuration.now()
        return try perform(signedBy: session) { db in
            try requireLeader(db, author, for: "an eligibility decision")
            let stay = try requireStay(db, stay)
            guard stay.status != .discharged else {
                throw ReplicaError(DomainError(.invalidTransition, "stay \(stay.id.prefix(8)) is discharged; decide before the stay ends"))
            }
            let code = reason.flatMap { IneligibilityReason(rawValue: $0) }
            let id = newID()
            try write(db, ShelterSchema.decisions, id, [
                "stay": .text(stay.id), "kind": .text("eligibility"), "outcome": .text(eligible ? "eligible" : "notEligible"),
                "reason": eligible ? .null : .text((code ?? .other).rawValue),
                "note": code == nil ? .optionalText(reason) : .null,
                "refer_to": .optionalText(referTo), "decided_on": .text(Timestamp.civilDate(of: when).description),
            ], author: author)
            if !eligible {
                try end(db, stay, reason: "not eligible" + (referTo.map { "; referred to \($0)" } ?? ""), at: when, author: author)
            }
            return id
        }
    }

    /// A move-out the leader requires; with `houseRules` it is an expulsion for breaking the house
    /// rules, which cannot be appealed. Ends the stay.
    @discardableResult
    public func requireMoveOut(stay: String, reason: String, houseRules: Bool, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ReplicaError(.invalidArgument, "a required move-out needs a reason (--reason)") }
        let when = at ?? configuration.now()
        return try perform(signedBy: session) { db in
            try requireLeader(db, author, for: "a required move-out")
            let stay = try requireStay(db, stay)
            let id = newID()
            try write(db, ShelterSchema.decisions, id, [
                "stay": .text(stay.id), "kind": .text("moveOut"), "outcome": .text("moveOut"),
                "reason": .text(houseRules ? "houseRules" : "other"), "note": .text(reason), "house_rules": .bool(houseRules),
                "decided_on": .text(Timestamp.civilDate(of: when).description),
            ], author: author)
            try end(db, stay, reason: houseRules ? "required move-out (house rules)" : "required move-out", at: when, author: author)
            return id
        }
    }

    public func decisions(stay: String? = nil) throws -> [DecisionRecord] {
        try read { db in
            let filter = try stay.map { try resolve(db, $0, in: ShelterSchema.stays, kind: "stay") }
            return try Row.fetchAll(db, sql: "SELECT * FROM decisions \(filter == nil ? "" : "WHERE stay = ?") ORDER BY decided_on, id",
                                    arguments: StatementArguments(filter.map { [$0] } ?? [])).map {
                DecisionRecord(id: $0["id"], stay: $0["stay"], kind: $0["kind"], outcome: $0["outcome"], reason: $0["reason"],
                               referTo: $0["refer_to"], houseRules: $0["house_rules"], decidedOn: $0["decided_on"], status: $0["status"])
            }
        }
    }

    // MARK: Notifications

    public func notifications(pendingOnly: Bool = false) throws -> [NotificationRecord] {
        let today = today()
        return try read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM notifications
                WHERE stay NOT IN (SELECT id FROM stays WHERE status = 'merged') \(pendingOnly ? "AND sent_at IS NULL" : "")
                ORDER BY due, event_on, CASE kind WHEN 'admission' THEN 0 ELSE 1 END, id
                """).compactMap { row in
                guard let event = CivilDate(row["event_on"]), let due = CivilDate(row["due"]), let legal = CivilDate(row["legal_deadline"]) else { return nil }
                let sent: String? = row["sent_at"]
                return NotificationRecord(id: row["id"], stay: row["stay"], kind: NotificationLetter.Kind(rawValue: row["kind"]) ?? .admission,
                                          municipality: row["municipality"], eventOn: event, due: due, legalDeadline: legal,
                                          sentAt: sent, overdue: sent == nil && today > due)
            }
        }
    }

    /// The notification's letter in Danish. For an anonymous stay it is built without any name or
    /// CPR number (`NotificationLetter.Subject.anonymous` has none to print).
    public func notificationLetter(_ id: String) throws -> String {
        try read { db in
            let id = try resolve(db, id, in: ShelterSchema.notifications, kind: "notification")
            let row = try Row.fetchOne(db, sql: """
                SELECT n.kind, n.municipality, n.event_on, s.id AS stay, s.reason, s.discharge_reason, r.id AS resident, r.anonymous, r.name, r.cpr
                FROM notifications n JOIN stays s ON s.id = n.stay JOIN residents r ON r.id = s.resident WHERE n.id = ?
                """, arguments: [id])
            guard let row else { throw ReplicaError(.unknownID, "notification \(id.prefix(8)) names a stay this replica does not hold") }
            let kind = NotificationLetter.Kind(rawValue: row["kind"]) ?? .admission
            let resident: String = row["resident"]
            let subject: NotificationLetter.Subject
            if row["anonymous"] as Bool {
                subject = .anonymous(children: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM children WHERE resident = ?", arguments: [resident]) ?? 0)
            } else {
                let childTable = ShelterSchema.children, residents = ShelterSchema.residents
                let children = try Row.fetchAll(db, sql: "SELECT id, name, cpr FROM children WHERE resident = ? ORDER BY id", arguments: [resident]).map {
                    NotificationLetter.Person(name: plain(db, $0, "name", table: childTable), cpr: plain(db, $0, "cpr", table: childTable))
                }
                subject = .identified(woman: .init(name: plain(db, row, "name", table: residents, id: resident),
                                                   cpr: plain(db, row, "cpr", table: residents, id: resident)), children: children)
            }
            let stay: String = row["stay"]
            let reason = plain(db, row, kind == .admission ? "reason" : "discharge_reason", table: ShelterSchema.stays, id: stay)
            let letter = NotificationLetter(kind: kind, municipality: row["municipality"], date: CivilDate(row["event_on"]) ?? today(),
                                            reason: reason, subject: subject)
            return letter.text
        }
    }

    public func markNotificationSent(_ id: String, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            let id = try resolve(db, id, in: ShelterSchema.notifications, kind: "notification")
            if try String.fetchOne(db, sql: "SELECT sent_at FROM notifications WHERE id = ?", arguments: [id]) != nil {
                throw ReplicaError(.invalidArgument, "notification \(id.prefix(8)) is already recorded as sent")
            }
            try write(db, ShelterSchema.notifications, id, ["sent_at": .text(Timestamp.format(at ?? configuration.now()))], author: author)
        }
    }

    // MARK: Stay plan

    @discardableResult
    public func addGoal(stay: String, text: String, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw ReplicaError(.invalidArgument, "a goal needs a text") }
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            let id = newID()
            try write(db, ShelterSchema.goals, id, ["stay": .text(stay.id), "text": .text(text), "status": .text("open"),
                                                    "created_on": .text(today().description)], author: author)
            return id
        }
    }

    public static let goalStatuses = ["open", "done", "dropped"]

    public func setGoal(_ goal: String, status: String, by session: any TransactionSigner) throws {
        let author = session.author
        guard Self.goalStatuses.contains(status) else {
            throw ReplicaError(.invalidArgument, "a goal's status is open, done or dropped, not '\(status)'")
        }
        try perform(signedBy: session) { db in
            let id = try resolve(db, goal, in: ShelterSchema.goals, kind: "goal")
            try write(db, ShelterSchema.goals, id, ["status": .text(status)], author: author)
        }
    }

    /// Records a psychologist offer to the woman, or to one of her children (`child`: an id or prefix).
    @discardableResult
    public func recordOffer(stay: String, child: String? = nil, accepted: Bool, hours: Double, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard hours >= 0, hours.isFinite else { throw ReplicaError(.invalidArgument, "hours must be 0 or more") }
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            var person = "woman"
            if let child {
                let id = try resolve(db, child, in: ShelterSchema.children, kind: "child")
                guard try String.fetchOne(db, sql: "SELECT resident FROM children WHERE id = ?", arguments: [id]) == stay.resident else {
                    throw ReplicaError(.invalidArgument, "child \(id.prefix(8)) does not belong to stay \(stay.id.prefix(8))")
                }
                person = id
            }
            let id = newID()
            try write(db, ShelterSchema.offers, id, ["stay": .text(stay.id), "person": .text(person), "offered": .bool(true),
                                                     "accepted": .bool(accepted), "hours": .real(hours)], author: author)
            return id
        }
    }

    public func plan(stay: String) throws -> StayPlan {
        try read { db in
            let stay = try requireStay(db, stay)
            let contact = try String.fetchOne(db, sql: "SELECT contact_person FROM stays WHERE id = ?", arguments: [stay.id])
            let goals = try Row.fetchAll(db, sql: "SELECT * FROM goals WHERE stay = ? ORDER BY created_on, id", arguments: [stay.id]).map {
                StayPlan.Goal(id: $0["id"], text: plain(db, $0, "text", table: ShelterSchema.goals) ?? "", status: $0["status"], createdOn: $0["created_on"])
            }
            let offers = try Row.fetchAll(db, sql: "SELECT * FROM offers WHERE stay = ? ORDER BY id", arguments: [stay.id]).map {
                StayPlan.Offer(id: $0["id"], person: $0["person"], offered: $0["offered"], accepted: $0["accepted"], hours: $0["hours"])
            }
            return StayPlan(stay: stay.id, contactPerson: contact, goals: goals, offers: offers)
        }
    }

    /// `shelter stay set`: the stay's contact person (a registered staff member) and self-payment (kr).
    public func setStay(_ stay: String, fields: [(field: String, value: String)], by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            var values: [String: SyncValue] = [:]
            for (field, text) in fields {
                switch field {
                case "self-payment":
                    if text.isEmpty { values["self_payment"] = .null; continue }
                    guard let amount = Int(text), amount >= 0 else {
                        throw ReplicaError(.invalidArgument, "self-payment is a whole number of kroner, not '\(text)'")
                    }
                    values["self_payment"] = .integer(Int64(amount))
                case "contact-person":
                    if text.isEmpty { values["contact_person"] = .null; continue }
                    guard try role(db, of: text) != nil else {
                        throw ReplicaError(.invalidArgument, "\(text) is not registered as staff (shelter staff add)")
                    }
                    values["contact_person"] = .text(text)
                default:
                    throw ReplicaError(DomainError(.unknownField, "unknown stay field '\(field)'; fields are self-payment, contact-person"))
                }
            }
            guard !values.isEmpty else { throw ReplicaError(.invalidArgument, "give at least one FIELD=VALUE") }
            try write(db, ShelterSchema.stays, stay.id, values, author: author)
        }
    }

    // MARK: Complaints

    /// Records a complaint about a decision of `decisionOn`. Its deadline is 4 weeks after the
    /// decision; a later complaint is recorded and marked late. An expulsion for breaking the house
    /// rules cannot be appealed: such a complaint is refused.
    @discardableResult
    public func addComplaint(stay: String, decisionOn: CivilDate, written: Bool, text: String, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        let received = Timestamp.civilDate(of: at ?? configuration.now())
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            let houseRules = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM decisions WHERE stay = ? AND decided_on = ? AND kind = 'moveOut' AND house_rules = 1
                """, arguments: [stay.id, decisionOn.description]) ?? false
            if houseRules {
                throw ReplicaError(DomainError(.notPermitted, "the decision of \(decisionOn) was an expulsion for breaking the house rules, which cannot be appealed; the complaint is not recorded"))
            }
            let deadline = Deadlines.complaintDeadline(decidedOn: decisionOn)
            let id = newID()
            try write(db, ShelterSchema.complaints, id, [
                "stay": .text(stay.id), "decision_on": .text(decisionOn.description), "form": .text(written ? "written" : "oral"),
                "text": .optionalText(text.isEmpty ? nil : text), "received_on": .text(received.description),
                "deadline": .text(deadline.description), "late": .bool(received > deadline), "status": .text("received"),
            ], author: author)
            return id
        }
    }

    /// The leader's reconsideration: upheld changes the decision (it no longer stands); maintained
    /// sends the complaint on to Ankestyrelsen.
    public func reviewComplaint(_ complaint: String, upheld: Bool, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: "a complaint's reconsideration")
            let id = try resolve(db, complaint, in: ShelterSchema.complaints, kind: "complaint")
            let row = try Row.fetchOne(db, sql: "SELECT stay, decision_on, status FROM complaints WHERE id = ?", arguments: [id])!
            guard row["status"] as String == "received" else {
                throw ReplicaError(DomainError(.invalidTransition, "complaint \(id.prefix(8)) was already reconsidered (\(row["status"] as String))"))
            }
            let on = Timestamp.civilDate(of: at ?? configuration.now()).description
            try write(db, ShelterSchema.complaints, id, ["status": .text(upheld ? "upheld" : "maintained"), "reviewed_on": .text(on)], author: author)
            if upheld {
                for decision in try String.fetchAll(db, sql: "SELECT id FROM decisions WHERE stay = ? AND decided_on = ? AND status = 'standing'",
                                                    arguments: [row["stay"] as String, row["decision_on"] as String]) {
                    try write(db, ShelterSchema.decisions, decision, ["status": .text("overturned")], author: author)
                }
            }
        }
    }

    public func complaintForwarded(_ complaint: String, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            let id = try resolve(db, complaint, in: ShelterSchema.complaints, kind: "complaint")
            guard try String.fetchOne(db, sql: "SELECT status FROM complaints WHERE id = ?", arguments: [id]) == "maintained" else {
                throw ReplicaError(DomainError(.invalidTransition, "only a complaint whose decision the leader maintained is forwarded to Ankestyrelsen"))
            }
            try write(db, ShelterSchema.complaints, id, ["status": .text("forwarded"),
                                                         "forwarded_on": .text(Timestamp.civilDate(of: at ?? configuration.now()).description)], author: author)
        }
    }

    public func complaints() throws -> [ComplaintRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM complaints ORDER BY received_on, id").map {
                ComplaintRecord(id: $0["id"], stay: $0["stay"], decisionOn: $0["decision_on"], form: $0["form"], text: plain(db, $0, "text", table: ShelterSchema.complaints),
                                receivedOn: $0["received_on"], deadline: $0["deadline"], late: $0["late"], status: $0["status"],
                                reviewedOn: $0["reviewed_on"], forwardedOn: $0["forwarded_on"])
            }
        }
    }

    // MARK: Billing

    public func setRate(year: Int, amount: Int, by session: any TransactionSigner) throws {
        let author = session.author
        guard (1970...2200).contains(year) else { throw ReplicaError(.invalidArgument, "\(year) is not a year ShelterSync bills") }
        guard amount > 0 else { throw ReplicaError(.invalidArgument, "a daily rate is a positive number of kroner") }
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: "a daily rate")
            try write(db, ShelterSchema.rates, String(year), ["year": .integer(Int64(year)), "amount": .integer(Int64(amount))], author: author)
        }
    }

    /// What each paying (home) municipality owes for `month`, under `Billing`'s days rule.
    public func billing(year: Int, month: Int) throws -> BillingReport {
        guard (1...12).contains(month) else { throw ReplicaError(.invalidArgument, "month must be 01–12") }
        return try read { db in
            let rate = try Int.fetchOne(db, sql: "SELECT amount FROM rates WHERE id = ?", arguments: [String(year)])
            let rows = try Row.fetchAll(db, sql: """
                SELECT s.id, s.admitted_at, s.discharged_at, s.self_payment, r.id AS resident, r.anonymous, r.name, r.municipality
                FROM stays s JOIN residents r ON r.id = s.resident WHERE s.status <> 'merged' ORDER BY r.municipality, s.admitted_at, s.id
                """)
            var byMunicipality: [String: [BillingReport.Line]] = [:]
            for row in rows {
                guard let admitted = Self.civilDate(ofStored: row["admitted_at"]) else { continue }
                let days = Billing.days(admitted: admitted, discharged: Self.civilDate(ofStored: row["discharged_at"]), year: year, month: month)
                guard days > 0 else { continue }
                let anonymous: Bool = row["anonymous"]
                byMunicipality[row["municipality"] ?? "", default: []].append(BillingReport.Line(
                    stay: row["id"], display: anonymous ? "anonymous" : (plain(db, row, "name", table: ShelterSchema.residents, id: row["resident"]) ?? "(no name)"), anonymous: anonymous,
                    days: days, selfPayment: row["self_payment"]))
            }
            let municipalities = byMunicipality.keys.sorted().map { name in
                let lines = byMunicipality[name]!
                let days = lines.reduce(0) { $0 + $1.days }
                return BillingReport.Municipality(municipality: name, stays: lines, days: days, rate: rate ?? 0,
                                                  amount: Billing.amount(days: days, rate: rate ?? 0),
                                                  selfPayment: lines.reduce(0) { $0 + ($1.selfPayment ?? 0) })
            }
            return BillingReport(month: String(format: "%04d-%02d", year, month), rate: rate, municipalities: municipalities)
        }
    }

    // MARK: House meetings

    public func configureMeetings(first: CivilDate, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: "the house meetings' dates")
            try write(db, ShelterSchema.settings, "meetings.first", ["value": .text(first.description)], author: author)
        }
    }

    /// The next `count` house meetings (every 14 days from the configured first one), from `from`.
    public func meetings(from: CivilDate? = nil, count: Int = 5) throws -> [MeetingRecord] {
        try read { db in
            guard let first = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE id = 'meetings.first'").flatMap(CivilDate.init) else {
                throw ReplicaError(.invalidArgument, "house meetings are not set up: shelter meetings configure --first YYYY-MM-DD")
            }
            let held = try Dictionary(Row.fetchAll(db, sql: "SELECT id, held_on, notes FROM meetings").map { ($0["held_on"] as String, plain(db, $0, "notes", table: ShelterSchema.meetings)) },
                                      uniquingKeysWith: { a, _ in a })
            return Deadlines.meetings(first: first, from: from ?? today(), count: count).map {
                MeetingRecord(date: $0, held: held[$0.description] != nil, notes: held[$0.description] ?? nil)
            }
        }
    }

    public func meetingHeld(on date: CivilDate, notes: String?, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            try write(db, ShelterSchema.meetings, date.description, ["held_on": .text(date.description), "notes": .optionalText(notes)], author: author)
        }
    }

    // MARK: What is due

    /// Everything with a date within `days` days: unsent notifications, complaints to reconsider or
    /// forward (4 weeks after receipt), the next house meeting, and stays awaiting a decision or a
    /// room. Overdue first, then by date. Texts carry ids, never names.
    public func due(days horizon: Int = 7) throws -> [DueItem] {
        let today = today()
        let limit = today.adding(days: horizon)
        var items: [DueItem] = []
        for notification in try notifications(pendingOnly: true) where notification.due <= limit || notification.legalDeadline <= limit {
            items.append(DueItem(kind: .notification, date: notification.due, overdue: notification.overdue, subject: notification.id,
                                 text: "send the \(notification.kind.rawValue) notification for stay \(notification.stay.prefix(8)) to \(notification.municipality) (legal deadline \(notification.legalDeadline))"))
        }
        for complaint in try complaints() where complaint.status == "received" || complaint.status == "maintained" {
            guard let received = CivilDate(complaint.receivedOn) else { continue }
            let date = received.adding(days: 28)
            guard date <= limit else { continue }
            let text = complaint.status == "received"
                ? "the leader reconsiders complaint \(complaint.id.prefix(8)) (stay \(complaint.stay.prefix(8)))"
                : "forward complaint \(complaint.id.prefix(8)) to Ankestyrelsen"
            items.append(DueItem(kind: .complaintForwarding, date: date, overdue: today > date, subject: complaint.id, text: text))
        }
        if let next = (try? meetings(from: today, count: 1))?.first, next.date <= limit, !next.held {
            items.append(DueItem(kind: .meeting, date: next.date, overdue: false, subject: next.date.description, text: "house meeting"))
        }
        let decided = Set(try decisions().filter { $0.kind == "eligibility" }.map(\.stay))
        for stay in try stays() {
            let admitted = Self.civilDate(ofStored: stay.admittedAt) ?? today
            if !decided.contains(stay.id) {
                items.append(DueItem(kind: .awaitingDecision, date: admitted, overdue: false, subject: stay.id,
                                     text: "stay \(stay.id.prefix(8)) awaits the leader's eligibility decision"))
            }
            if stay.status == .awaitingRoom {
                items.append(DueItem(kind: .awaitingRoom, date: admitted, overdue: false, subject: stay.id,
                                     text: "stay \(stay.id.prefix(8)) awaits a room"))
            }
        }
        return items.sorted { ($0.overdue ? 0 : 1, $0.date, $0.kind.rawValue) < ($1.overdue ? 0 : 1, $1.date, $1.kind.rawValue) }
    }
}

extension Replica {
    /// Checks every signature in this replica's log against the staff keys it holds and the
    /// server's key (`shelter verify`).
    public func verify() throws -> VerifyReport {
        try read { db in
            try VerifyReport.of(try store.log(db).map(\.change), rows: store.rows(db), serverKey: try store.state(db).serverSigningKey)
        }
    }
}
