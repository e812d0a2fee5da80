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
    @discardableResult
    func writeNotification(_ db: Database, stay: String, kind: NotificationLetter.Kind, municipality: String, on event: CivilDate, author: String) throws -> String {
        let id = newID()
        try write(db, ShelterSchema.notifications, id, [
            "stay": .text(stay), "kind": .text(kind.rawValue), "municipality": .text(municipality),
            "event_on": .text(event.description),
            "due": .text(Deadlines.notificationDue(after: event).description),
            "legal_deadline": .text(Deadlines.notificationLegalDeadline(after: event).description),
        ], author: author)
        return id
    }

    func municipality(_ db: Database, ofStay stay: Stay) throws -> String {
        try String.fetchOne(db, sql: "SELECT municipality FROM residents WHERE id = ?", arguments: [stay.resident]) ?? ""
    }

    /// Ends a stay and notifies the home municipality, inside the caller's transaction.
    func end(_ db: Database, _ stay: Stay, reason: String, at: Date, author: String) throws {
        try stay.checkDischargeable()
        try Self.checked {
            try EventTime.check(at, now: configuration.now(), what: t("event.discharge"),
                                notBefore: try? Timestamp.parse(stay.admittedAt, timeZone: TimeZone(identifier: "UTC")!), startWhat: t("event.theAdmission"))
        }
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
            try requireLeader(db, session.signer, for: t("what.addStaff"))
            if try store.currentRow(db, table: ShelterSchema.staff.name, id: Roles.staffID(trimmed)) != nil {
                throw ReplicaError(.invalidArgument, t("staff.exists", ("name", trimmed)))
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
            try requireLeader(db, session.signer, for: t("what.removeStaff"))
            let id = try staffRow(db, name)
            guard id != session.signer else { throw ReplicaError(.invalidArgument, t("staff.removeSelf")) }
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
            try requireLeader(db, session.signer, for: t("what.roles"))
            try write(db, ShelterSchema.staff, try staffRow(db, name), ["role": .text(role.rawValue)], author: session.author)
        }
    }

    func staffRow(_ db: Database, _ name: String) throws -> String {
        let id = Roles.staffID(name)
        guard let row = try store.currentRow(db, table: ShelterSchema.staff.name, id: id) else {
            throw ReplicaError(.unknownID, t("staff.unknown", ("name", name)))
        }
        guard row["removed"]?.integerValue != 1 else { throw ReplicaError(.invalidArgument, t("staff.wasRemoved", ("name", name))) }
        return id
    }

    /// Opens a member's keys with her passphrase (`shelter login`): refused for an unknown or
    /// removed member and for a wrong passphrase, after a short delay; nothing is written.
    public func unlock(name: String, passphrase: String) throws -> (keys: StaffKeys, member: StaffMember) {
        let id = Roles.staffID(name)
        let row = try read { db in try store.currentRow(db, table: ShelterSchema.staff.name, id: id) }
        guard let row, let sealed = row["sealed_keys"]?.textValue else {
            Thread.sleep(forTimeInterval: 1)
            throw ReplicaError(.notLoggedIn, t("login.unknown", ("name", name)))
        }
        guard row["removed"]?.integerValue != 1 else {
            throw ReplicaError(.notLoggedIn, t("login.removed", ("name", name)))
        }
        do {
            let keys = try StaffKeys.open(sealed, passphrase: passphrase, staffID: id)
            guard keys.signingKey == row["signing_key"]?.textValue else {
                throw ReplicaError(.notLoggedIn, t("err.ReplicaRules.75", ("p1", name)))
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
            throw ReplicaError(.invalidArgument, t("decide.needsReason"))
        }
        let when = at ?? configuration.now()
        return try perform(signedBy: session) { db in
            try requireLeader(db, author, for: t("what.eligibility"))
            let stay = try requireStay(db, stay)
            try checkDecisionTime(when, stay: stay)
            guard stay.status != .discharged else {
                throw ReplicaError(DomainError(.invalidTransition, t("err.ReplicaRules.76", ("p1", stay.id.prefix(8)))))
            }
            let code = reason.flatMap { IneligibilityReason.named($0) }
            let id = newID()
            try write(db, ShelterSchema.decisions, id, [
                "stay": .text(stay.id), "kind": .text("eligibility"), "outcome": .text(eligible ? "eligible" : "notEligible"),
                "reason": eligible ? .null : .text((code ?? .other).rawValue),
                "note": code == nil ? .optionalText(reason) : .null,
                "refer_to": .optionalText(referTo), "decided_on": .text(Timestamp.civilDate(of: when).description),
            ], author: author)
            if !eligible {
                // The discharge reason is the letter's reason: in Danish, from the decision's own words.
                let words = code.map { $0 == .other ? (reason ?? "") : $0.danishWords } ?? (reason ?? "")
                try end(db, stay, reason: "ikke optaget: \(words)" + (referTo.map { "; henvist til \($0)" } ?? ""), at: when, author: author)
            }
            return id
        }
    }

    /// A move-out the leader requires; with `houseRules` it is an expulsion for breaking the house
    /// rules, which cannot be appealed. Ends the stay.
    @discardableResult
    public func requireMoveOut(stay: String, reason: String, houseRules: Bool, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ReplicaError(.invalidArgument, t("moveOut.needsReason")) }
        let when = at ?? configuration.now()
        return try perform(signedBy: session) { db in
            try requireLeader(db, author, for: t("what.moveOut"))
            let stay = try requireStay(db, stay)
            try checkDecisionTime(when, stay: stay)
            let id = newID()
            try write(db, ShelterSchema.decisions, id, [
                "stay": .text(stay.id), "kind": .text("moveOut"), "outcome": .text("moveOut"),
                "reason": .text(houseRules ? "houseRules" : "other"), "note": .text(reason), "house_rules": .bool(houseRules),
                "decided_on": .text(Timestamp.civilDate(of: when).description),
            ], author: author)
            try end(db, stay, reason: houseRules ? "krav om fraflytning (brud på husordenen)" : "krav om fraflytning", at: when, author: author)
            return id
        }
    }

    /// A decision is made after the stay began, and not in the future.
    func checkDecisionTime(_ when: Date, stay: Stay) throws {
        // A decision is dated by its day (as the server checks it): the admission day itself is fine.
        try Self.checked {
            try EventTime.check(when, now: configuration.now(), what: t("event.decision"))
            if let admitted = try? Timestamp.parse(stay.admittedAt, timeZone: TimeZone(identifier: "UTC")!) {
                try EventTime.check(day: Timestamp.civilDate(of: when), today: Timestamp.civilDate(of: configuration.now()).adding(days: 1), what: t("event.decision"),
                                    notBefore: Timestamp.civilDate(of: admitted), startWhat: t("event.theAdmission"))
            }
        }
    }

    public func decisions(stay: String? = nil) throws -> [DecisionRecord] {
        try read { db in
            let filter = try stay.map { try resolve(db, $0, in: ShelterSchema.stays, kind: "stay") }
            return try Row.fetchAll(db, sql: "SELECT * FROM decisions \(filter == nil ? "" : "WHERE stay = ?") ORDER BY decided_on, id",
                                    arguments: StatementArguments(filter.map { [$0] } ?? [])).map { try Self.decisionRecord(db, $0) }
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
                SELECT n.kind, n.municipality, n.event_on, n.sent_at, r.municipality AS current_municipality,
                       s.id AS stay, s.reason, s.discharge_reason, r.id AS resident, r.anonymous, r.name, r.cpr
                FROM notifications n JOIN stays s ON s.id = n.stay JOIN residents r ON r.id = s.resident WHERE n.id = ?
                """, arguments: [id])
            guard let row else { throw ReplicaError(.unknownID, t("err.ReplicaRules.77", ("p1", id.prefix(8)))) }
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
            // Made from the records as they are now: a letter not sent yet goes to her home
            // municipality as it stands (a sent one keeps the one it went to).
            let municipality: String = (row["sent_at"] as String?) == nil ? (row["current_municipality"] ?? row["municipality"]) : row["municipality"]
            let settings = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, value FROM settings WHERE id IN ('name', 'address') AND value IS NOT NULL")
                .map { ($0["id"] as String, $0["value"] as String) })
            let letter = NotificationLetter(kind: kind, municipality: municipality, date: CivilDate(row["event_on"]) ?? today(),
                                            reason: reason, subject: subject, shelter: settings["name"] ?? "Krisecentret", address: settings["address"])
            return letter.text
        }
    }

    public func markNotificationSent(_ id: String, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            let id = try resolve(db, id, in: ShelterSchema.notifications, kind: "notification")
            let row = try Row.fetchOne(db, sql: "SELECT sent_at, event_on FROM notifications WHERE id = ?", arguments: [id])
            if (row?["sent_at"] as String?) != nil {
                throw ReplicaError(.invalidArgument, t("notification.alreadySent", ("id", id.prefix(8))))
            }
            let when = at ?? configuration.now()
            try Self.checked { try EventTime.check(when, now: configuration.now(), what: t("event.notificationSent")) }
            try write(db, ShelterSchema.notifications, id, ["sent_at": .text(Timestamp.format(when))], author: author)
        }
    }

    // MARK: Stay plan

    @discardableResult
    public func addGoal(stay: String, text: String, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw ReplicaError(.invalidArgument, t("goal.needsText")) }
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            let id = newID()
            try write(db, ShelterSchema.goals, id, ["stay": .text(stay.id), "text": .text(text), "status": .text("open"),
                                                    "created_on": .text(today().description)], author: author)
            return id
        }
    }

    public static let goalStatuses = ["open", "done", "dropped"]

    /// A goal's status as staff type it: the code, or the Danish word.
    public static func goalStatus(named text: String) -> String? {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "open", "åben", "aaben", "åbent": "open"
        case "done", "opnået", "opnaaet", "nået", "færdig": "done"
        case "dropped", "droppet", "opgivet": "dropped"
        default: nil
        }
    }

    public func setGoal(_ goal: String, status: String, by session: any TransactionSigner) throws {
        let author = session.author
        guard Self.goalStatuses.contains(status) else {
            throw ReplicaError(.invalidArgument, t("goal.badStatus", ("status", status)))
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
        guard hours >= 0, hours.isFinite else { throw ReplicaError(.invalidArgument, t("offer.hours")) }
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            var person = "woman"
            if let child { person = try findChild(db, child, of: stay) }
            let id = newID()
            try write(db, ShelterSchema.offers, id, ["stay": .text(stay.id), "person": .text(person), "offered": .bool(true),
                                                     "accepted": .bool(accepted), "hours": .real(hours)], author: author)
            return id
        }
    }

    /// One of her children, as staff name them within a stay: an alias or a name (in any case), or
    /// an id or unique prefix of one of hers.
    func findChild(_ db: Database, _ typed: String, of stay: Stay) throws -> String {
        let rows = try Row.fetchAll(db, sql: "SELECT id, name, alias FROM children WHERE resident = ? ORDER BY id", arguments: [stay.resident])
        let wanted = typed.trimmingCharacters(in: .whitespaces).lowercased()
        let named = rows.filter { row in
            [row["alias"] as String?, plain(db, row, "name", table: ShelterSchema.children)].contains { name in
                guard let name = name?.lowercased(), !name.isEmpty else { return false }
                return name == wanted || name.split(separator: " ").first.map(String.init) == wanted
            }
        }
        let matches = named.isEmpty && wanted.count >= 6 ? rows.filter { ($0["id"] as String).hasPrefix(wanted) } : named
        guard matches.count == 1 else {
            // Aliases or id prefixes only: an error message never carries a name.
            let known = rows.map { row in (row["alias"] as String?) ?? String((row["id"] as String).prefix(8)) }
            throw ReplicaError(matches.isEmpty ? .unknownID : .ambiguousID,
                               t(matches.isEmpty ? "child.notFound" : "child.ambiguous", ("child", typed), ("stay", stay.id.prefix(8)),
                                 ("children", known.isEmpty ? "-" : known.joined(separator: ", "))))
        }
        return matches[0]["id"]
    }

    public func plan(stay: String) throws -> StayPlan {
        try read { db in
            let stay = try requireStay(db, stay)
            let contact = try String.fetchOne(db, sql: "SELECT contact_person FROM stays WHERE id = ?", arguments: [stay.id])
            let goals = try Row.fetchAll(db, sql: "SELECT * FROM goals WHERE stay = ? ORDER BY created_on, id", arguments: [stay.id]).map {
                StayPlan.Goal(id: $0["id"], text: plain(db, $0, "text", table: ShelterSchema.goals) ?? "", status: $0["status"], createdOn: $0["created_on"])
            }
            let offers = try Row.fetchAll(db, sql: "SELECT * FROM offers WHERE stay = ? ORDER BY id", arguments: [stay.id]).map {
                let person: String = $0["person"]
                let child = person == "woman" ? nil : try Row.fetchOne(db, sql: "SELECT id, name, alias FROM children WHERE id = ?", arguments: [person])
                return StayPlan.Offer(id: $0["id"], person: person, offered: $0["offered"], accepted: $0["accepted"], hours: $0["hours"],
                                      childName: child.flatMap { (($0["alias"] as String?) ?? plain(db, $0, "name", table: ShelterSchema.children)) })
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
                        throw ReplicaError(.invalidArgument, t("stay.selfPayment", ("text", text)))
                    }
                    values["self_payment"] = .integer(Int64(amount))
                case "contact-person":
                    if text.isEmpty { values["contact_person"] = .null; continue }
                    guard try role(db, of: text) != nil else {
                        throw ReplicaError(.invalidArgument, t("stay.notStaff", ("name", text)))
                    }
                    values["contact_person"] = .text(text)
                default:
                    throw ReplicaError(DomainError(.unknownField, t("err.ReplicaRules.78", ("p1", field))))
                }
            }
            guard !values.isEmpty else { throw ReplicaError(.invalidArgument, t("v.oneField")) }
            try write(db, ShelterSchema.stays, stay.id, values, author: author)
        }
    }

    // MARK: Complaints

    /// Records a complaint about a decision (`decision`: its id or a unique prefix). Its deadline is
    /// 4 weeks after the decision; a later complaint is recorded and marked late. An expulsion for
    /// breaking the house rules cannot be appealed, nor can an eligible decision; a decision has one
    /// complaint at a time.
    @discardableResult
    public func addComplaint(decision: String, written: Bool, text: String, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        let when = at ?? configuration.now()
        return try perform(signedBy: session) { db in
            let id = try resolve(db, decision, in: ShelterSchema.decisions, kind: "decision")
            let decision = try decisionRecord(db, id)
            guard decision.isAppealable else {
                throw ReplicaError(DomainError(.notPermitted, decision.houseRules ? t("complaint.houseRules", ("decision", id.prefix(8)))
                                                                                  : t("complaint.eligible", ("decision", id.prefix(8)))))
            }
            if let open = try String.fetchOne(db, sql: "SELECT id FROM complaints WHERE decision = ? AND status IN ('received', 'maintained') LIMIT 1", arguments: [id]) {
                throw ReplicaError(DomainError(.invalidTransition, t("complaint.alreadyOpen", ("decision", id.prefix(8)), ("complaint", open.prefix(8)))))
            }
            guard let decidedOn = CivilDate(decision.decidedOn) else {
                throw ReplicaError(.invalidArgument, t("err.ReplicaRules.79", ("p1", id.prefix(8))))
            }
            let received = Timestamp.civilDate(of: when)
            try Self.checked {
                try EventTime.check(when, now: configuration.now(), what: t("event.complaintReceived"))
                try EventTime.check(day: received, today: today(), what: t("event.complaintReceived"), notBefore: decidedOn, startWhat: t("event.theDecision"))
            }
            let deadline = Deadlines.complaintDeadline(decidedOn: decidedOn)
            let complaint = newID()
            try write(db, ShelterSchema.complaints, complaint, [
                "stay": .text(decision.stay), "decision": .text(id), "decision_on": .text(decidedOn.description), "form": .text(written ? "written" : "oral"),
                "text": .optionalText(text.isEmpty ? nil : text), "received_on": .text(received.description),
                "deadline": .text(deadline.description), "late": .bool(received > deadline), "status": .text("received"),
            ], author: author)
            return complaint
        }
    }

    func decisionRecord(_ db: Database, _ id: String) throws -> DecisionRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM decisions WHERE id = ?", arguments: [id]) else {
            throw ReplicaError(.unknownID, t("decision.unknown", ("id", id.prefix(8))))
        }
        return try Self.decisionRecord(db, row)
    }

    static func decisionRecord(_ db: Database, _ row: Row) throws -> DecisionRecord {
        DecisionRecord(id: row["id"], stay: row["stay"], kind: row["kind"], outcome: row["outcome"], reason: row["reason"],
                       referTo: row["refer_to"], houseRules: row["house_rules"], decidedOn: row["decided_on"], status: row["status"],
                       complaints: try String.fetchAll(db, sql: "SELECT id FROM complaints WHERE decision = ? ORDER BY received_on, id", arguments: [row["id"] as String]))
    }

    /// The leader's reconsideration: upheld changes the decision (it no longer stands); maintained
    /// sends the complaint on to Ankestyrelsen. Once, and only after the complaint was received.
    public func reviewComplaint(_ complaint: String, upheld: Bool, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        let when = at ?? configuration.now()
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: t("what.review"))
            let id = try resolve(db, complaint, in: ShelterSchema.complaints, kind: "complaint")
            let row = try Row.fetchOne(db, sql: "SELECT stay, decision, decision_on, status, received_on FROM complaints WHERE id = ?", arguments: [id])!
            guard row["status"] as String == "received" else {
                throw ReplicaError(DomainError(.invalidTransition, t("complaint.alreadyReviewed", ("complaint", id.prefix(8)), ("status", complaintStatusWord(row["status"])))))
            }
            let on = Timestamp.civilDate(of: when)
            try Self.checked {
                try EventTime.check(when, now: configuration.now(), what: t("event.complaintReviewed"))
                if let received = CivilDate(row["received_on"] as String) {
                    try EventTime.check(day: on, today: today(), what: t("event.complaintReviewed"), notBefore: received, startWhat: t("event.complaintReceived").lowercased())
                }
            }
            try write(db, ShelterSchema.complaints, id, ["status": .text(upheld ? "upheld" : "maintained"), "reviewed_on": .text(on.description)], author: author)
            if upheld {
                // The decision it was about, by id (a complaint from before schema 8: by its date).
                let decisions = if let decision = row["decision"] as String? {
                    try String.fetchAll(db, sql: "SELECT id FROM decisions WHERE id = ? AND status = 'standing'", arguments: [decision])
                } else {
                    try String.fetchAll(db, sql: "SELECT id FROM decisions WHERE stay = ? AND decided_on = ? AND status = 'standing'",
                                        arguments: [row["stay"] as String, row["decision_on"] as String])
                }
                for decision in decisions {
                    try write(db, ShelterSchema.decisions, decision, ["status": .text("overturned")], author: author)
                }
            }
        }
    }

    public func complaintForwarded(_ complaint: String, at: Date? = nil, by session: any TransactionSigner) throws {
        let author = session.author
        let when = at ?? configuration.now()
        try perform(signedBy: session) { db in
            let id = try resolve(db, complaint, in: ShelterSchema.complaints, kind: "complaint")
            let row = try Row.fetchOne(db, sql: "SELECT status, reviewed_on FROM complaints WHERE id = ?", arguments: [id])!
            guard row["status"] as String == "maintained" else {
                throw ReplicaError(DomainError(.invalidTransition, t("complaint.forwardOnlyMaintained", ("complaint", id.prefix(8)), ("status", complaintStatusWord(row["status"])))))
            }
            let on = Timestamp.civilDate(of: when)
            try Self.checked {
                try EventTime.check(when, now: configuration.now(), what: t("event.complaintForwarded"))
                if let reviewed = CivilDate((row["reviewed_on"] as String?) ?? "") {
                    try EventTime.check(day: on, today: today(), what: t("event.complaintForwarded"), notBefore: reviewed, startWhat: t("event.theReview"))
                }
            }
            try write(db, ShelterSchema.complaints, id, ["status": .text("forwarded"), "forwarded_on": .text(on.description)], author: author)
        }
    }

    /// A complaint's status as staff read it.
    public func complaintStatusWord(_ status: String) -> String {
        Catalogue.word("complaintStatus.\(status)", else: status)
    }

    public func complaints() throws -> [ComplaintRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM complaints ORDER BY received_on, id").map {
                ComplaintRecord(id: $0["id"], stay: $0["stay"], decision: $0["decision"], decisionOn: $0["decision_on"], form: $0["form"], text: plain(db, $0, "text", table: ShelterSchema.complaints),
                                receivedOn: $0["received_on"], deadline: $0["deadline"], late: $0["late"], status: $0["status"],
                                reviewedOn: $0["reviewed_on"], forwardedOn: $0["forwarded_on"])
            }
        }
    }

    // MARK: Billing

    /// Sets the daily rate of a year, in øre (2839,50 kr = 283950).
    public func setRate(year: Int, øre: Int, by session: any TransactionSigner) throws {
        let author = session.author
        guard (1970...2200).contains(year) else { throw ReplicaError(.invalidArgument, t("rate.year", ("year", year))) }
        guard øre >= 100 else { throw ReplicaError(.invalidArgument, t("rate.positive")) }
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: t("what.rate"))
            try write(db, ShelterSchema.rates, String(year), ["year": .integer(Int64(year)), "amount": .integer(Int64(øre / 100)),
                                                              "amount_ore": .integer(Int64(øre))], author: author)
        }
    }

    /// The daily rates set, by year.
    public func rates() throws -> [RateRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT year, COALESCE(amount_ore, amount * 100) AS ore FROM rates ORDER BY year").map {
                RateRecord(year: $0["year"], øre: $0["ore"])
            }
        }
    }

    /// What each paying (home) municipality owes for `month`, under `Billing`'s days rule.
    public func billing(year: Int, month: Int) throws -> BillingReport {
        guard (1...12).contains(month) else { throw ReplicaError(.invalidArgument, t("err.ReplicaRules.80")) }
        return try read { db in
            let rate = try Int.fetchOne(db, sql: "SELECT COALESCE(amount_ore, amount * 100) FROM rates WHERE id = ?", arguments: [String(year)])
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
                    stay: row["id"], display: anonymous ? "anonymous" : (plain(db, row, "name", table: ShelterSchema.residents, id: row["resident"]) ?? Self.noNameMark), anonymous: anonymous,
                    days: days, selfPayment: row["self_payment"]))
            }
            let municipalities = byMunicipality.keys.sorted().map { name in
                let lines = byMunicipality[name]!
                let days = lines.reduce(0) { $0 + $1.days }
                return BillingReport.Municipality(municipality: name, stays: lines, days: days, rateØre: rate ?? 0,
                                                  amountØre: Billing.amount(days: days, rate: rate ?? 0),
                                                  selfPayment: lines.reduce(0) { $0 + ($1.selfPayment ?? 0) })
            }
            return BillingReport(month: String(format: "%04d-%02d", year, month), rateØre: rate, municipalities: municipalities)
        }
    }

    // MARK: House meetings

    public func configureMeetings(first: CivilDate, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            try requireLeader(db, author, for: t("what.meetings"))
            try write(db, ShelterSchema.settings, "meetings.first", ["value": .text(first.description)], author: author)
        }
    }

    /// The next `count` house meetings (every 14 days from the configured first one), from `from`.
    public func meetings(from: CivilDate? = nil, count: Int = 5) throws -> [MeetingRecord] {
        try read { db in
            guard let first = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE id = 'meetings.first'").flatMap(CivilDate.init) else {
                throw ReplicaError(.invalidArgument, t("meetings.notSetUp"))
            }
            let held = try Dictionary(Row.fetchAll(db, sql: "SELECT id, held_on, notes FROM meetings").map { ($0["held_on"] as String, plain(db, $0, "notes", table: ShelterSchema.meetings)) },
                                      uniquingKeysWith: { a, _ in a })
            return Deadlines.meetings(first: first, from: from ?? today(), count: count).map {
                MeetingRecord(date: $0, held: held[$0.description] != nil, notes: held[$0.description] ?? nil)
            }
        }
    }

    /// Whether `date` is on the schedule of house meetings (every 14 days from the first).
    func isScheduledMeeting(_ db: Database, _ date: CivilDate) throws -> Bool {
        guard let first = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE id = 'meetings.first'").flatMap(CivilDate.init) else { return false }
        return date >= first && (date.dayNumber - first.dayNumber) % 14 == 0
    }

    /// The house meetings held, newest first, with their notes; `scheduled` false for an extra one.
    public func pastMeetings() throws -> [MeetingRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, held_on, notes FROM meetings ORDER BY held_on DESC").compactMap { row in
                guard let date = CivilDate(row["held_on"]) else { return nil }
                return MeetingRecord(date: date, held: true, notes: plain(db, row, "notes", table: ShelterSchema.meetings), scheduled: try isScheduledMeeting(db, date))
            }
        }
    }

    /// Records a house meeting held on `date`; returns whether it was on the schedule (false: an
    /// extra meeting, recorded as such).
    @discardableResult
    public func meetingHeld(on date: CivilDate, notes: String?, by session: any TransactionSigner) throws -> Bool {
        let author = session.author
        try Self.checked { try EventTime.check(day: date, today: today(), what: t("event.meeting")) }
        return try perform(signedBy: session) { db in
            try write(db, ShelterSchema.meetings, date.description, ["held_on": .text(date.description), "notes": .optionalText(notes)], author: author)
            return try isScheduledMeeting(db, date)
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
                                 text: t(notification.kind == .admission ? "due.notificationAdmission" : "due.notificationDischarge",
                                         ("id", notification.id.prefix(8)), ("stay", notification.stay.prefix(8)),
                                         ("municipality", Self.municipalityWords(notification.municipality)),
                                         ("deadline", LocalTime.date(notification.legalDeadline)))))
        }
        let complaints = try complaints()
        for complaint in complaints where complaint.status == "received" || complaint.status == "maintained" {
            guard let received = CivilDate(complaint.receivedOn) else { continue }
            let date = received.adding(days: 28)
            guard date <= limit else { continue }
            let text = complaint.status == "received"
                ? t("due.reconsider", ("id", complaint.id.prefix(8)), ("stay", complaint.stay.prefix(8)))
                : t("due.forward", ("id", complaint.id.prefix(8)))
            items.append(DueItem(kind: .complaintForwarding, date: date, overdue: today > date, subject: complaint.id, text: text))
        }
        let decisions = try decisions()
        // An upheld complaint: the decision no longer stands. The leader tells her and decides again
        // (she may come back); due until a decision about her is made after the reconsideration.
        // Each stay's resident, read once (not twice per upheld complaint).
        let residentOfStay = complaints.contains { $0.status == "upheld" }
            ? try read { db in Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, resident FROM stays").map { ($0["id"] as String, $0["resident"] as String) }) }
            : [:]
        for complaint in complaints where complaint.status == "upheld" {
            guard let reviewed = complaint.reviewedOn.flatMap(CivilDate.init) else { continue }
            let resident = residentOfStay[complaint.stay]
            let decidedSince = resident != nil && decisions.contains { residentOfStay[$0.stay] == resident && (CivilDate($0.decidedOn).map { $0 >= reviewed } ?? false) && $0.id != complaint.decision }
            guard !decidedSince else { continue }
            // A week to act; after four weeks it is no longer listed (she may not come back).
            guard today <= reviewed.adding(days: 28) else { continue }
            items.append(DueItem(kind: .upheldComplaint, date: reviewed.adding(days: 7), overdue: today > reviewed.adding(days: 7), subject: complaint.id,
                                 text: t("due.upheld", ("id", complaint.id.prefix(8)), ("decision", (complaint.decision ?? "").prefix(8)), ("stay", complaint.stay.prefix(8)))))
        }
        if let next = (try? meetings(from: today, count: 1))?.first, next.date <= limit, !next.held {
            items.append(DueItem(kind: .meeting, date: next.date, overdue: false, subject: next.date.description, text: t("due.meeting")))
        }
        let decided = Set(decisions.filter { $0.kind == "eligibility" && $0.status == "standing" }.map(\.stay))
        for stay in try stays() {
            let admitted = Self.civilDate(ofStored: stay.admittedAt) ?? today
            if !decided.contains(stay.id) {
                items.append(DueItem(kind: .awaitingDecision, date: admitted, overdue: false, subject: stay.id,
                                     text: t("due.awaitingDecision", ("stay", stay.id.prefix(8)))))
            }
            if stay.status == .awaitingRoom {
                items.append(DueItem(kind: .awaitingRoom, date: admitted, overdue: false, subject: stay.id,
                                     text: t("due.awaitingRoom", ("stay", stay.id.prefix(8)))))
            }
        }
        return items.sorted { ($0.overdue ? 0 : 1, $0.date, $0.kind.rawValue) < ($1.overdue ? 0 : 1, $1.date, $1.kind.rawValue) }
    }

    /// A stored home municipality in words ("Køge Kommune"; "unknown municipality").
    public static func municipalityWords(_ stored: String?) -> String {
        guard let stored, !stored.isEmpty else { return "-" }
        if stored == Municipality.unknownValue { return t("municipality.unknownWords") }
        return Language.current == .da ? (Municipality.stored(stored)?.officialName ?? "\(stored) Kommune") : t("municipality.named", ("name", stored))
    }
}

extension Replica {
    /// Checks every signature in this replica's log against the staff keys it holds and the
    /// server's key (`shelter verify`).
    public func verify() throws -> VerifyReport {
        try read { db in
            let serverKey = try store.state(db).serverSigningKey
            let snapshot = try store.snapshot(db)
            var report = try VerifyReport.of(try store.log(db).map(\.change), rows: store.rows(db), serverKey: serverKey,
                                             snapshotHoldings: snapshot?.seal.holdings)
            if let (server, seal) = snapshot {
                // The record as the server signed it: a hand-edited position, digest or holdings fails here.
                let valid = serverKey.map { StaffKeys.verify(seal.signature, of: seal.signedBytes(server: server), signingKey: $0) } ?? false
                report.snapshot = .init(position: seal.position, rows: seal.rows, takenAt: seal.takenAt, valid: valid)
                if !valid {
                    report.invalid.append(.init(replica: server.description, counter: 0,
                                                reason: "the snapshot at position \(seal.position) does not carry the server's signature"))
                }
            }
            return report
        }
    }
}
