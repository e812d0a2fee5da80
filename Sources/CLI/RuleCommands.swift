import ArgumentParser
import ClientKit
import Foundation
import ShelterDomain

func civilDate(_ text: String, option: String) throws -> CivilDate {
    guard let date = CivilDate(text) else { throw ValidationError("\(option) takes a date YYYY-MM-DD, not '\(text)'") }
    return date
}

struct StaffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: "The shelter's staff and their roles.",
        subcommands: [List.self, Add.self, Remove.self, Role.self], defaultSubcommand: List.self)

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A leader adds a member of staff, with her initial passphrase.",
            discussion: "Roles: leader, socialWorker, contactPerson, houseGuard, office, caretaker. Only a leader adds, removes and changes staff, and records an eligibility decision, a required move-out, a complaint's reconsideration, rates and settings.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Her name (she logs in with it).") var name: String
        @Option(help: "Her role.") var role: String
        @Option(help: ArgumentHelp("A file whose first line is her initial passphrase.", valueName: "file")) var passphraseFile: String?

        func run() throws {
            let parsed = try reportingErrors { try StaffRole.named(role) }
            let session = try reportingErrors { try options.session() }
            let passphrase = try Passphrase.read(file: passphraseFile, prompt: "Initial passphrase for \(name)", confirm: true)
            try reportingErrors { try options.open().addStaff(name: name, role: parsed, passphrase: passphrase, by: session) }
            print(t("staff.role", ("name", name), ("role", parsed.word)))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A leader removes a member of staff: her signature is refused from then on.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Her name.") var name: String

        func run() throws {
            try reportingErrors { try options.open().removeStaff(name: name, by: try options.session()) }
            print(t("staff.removed", ("name", name)))
        }
    }

    struct Role: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A leader changes a member's role.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Her name.") var name: String
        @Argument(help: "Her new role.") var role: String

        func run() throws {
            let parsed = try reportingErrors { try StaffRole.named(role) }
            try reportingErrors { try options.open().setRole(name: name, role: parsed, by: try options.session()) }
            print(t("staff.role", ("name", name), ("role", parsed.word)))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The registered staff.")
        @OptionGroup var options: ReplicaOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let staff = try reportingErrors { try options.open().staff() }
            if json {
                printJSON(.object([("staff", .array(staff.map { .object([("id", .string($0.id)), ("name", .string($0.name)), ("role", .string($0.role?.rawValue)), ("removed", .bool($0.removed))]) }))]))
                return
            }
            var table = TextTable(header: [t("col.name"), t("col.role"), t("col.removed")])
            for member in staff { table.add([member.name, member.role?.word ?? "?", member.removed ? t("common.yes") : ""]) }
            print(table.text)
        }
    }
}

struct Decide: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The leader's eligibility decision for a stay (leaders only).",
        discussion: """
            --not-eligible needs --reason: one of notTargetGroup, severeMentalIllness, substanceAbuse (the \
            last two: refer to another shelter with --refer-to), or a text. A not-eligible decision ends the \
            stay and notifies the home municipality; its date starts the 4-week complaint clock.
            """)
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The stay (id or unique prefix).") var stay: String
    @Flag(exclusivity: .exclusive, help: "The decision.") var outcome: Outcome
    @Option(help: "Why she is not eligible.") var reason: String?
    @Option(name: .customLong("refer-to"), help: ArgumentHelp("The shelter she is referred to.", valueName: "shelter")) var referTo: String?
    @Option(help: ArgumentHelp("When it was decided (ISO 8601).", valueName: "iso8601")) var at: String?

    enum Outcome: String, EnumerableFlag { case eligible, notEligible }

    func validate() throws {
        if outcome == .notEligible && reason == nil { throw ValidationError("--not-eligible needs --reason") }
        if outcome == .eligible && (reason != nil || referTo != nil) { throw ValidationError("--reason and --refer-to go with --not-eligible") }
    }

    func run() throws {
        let when = try timestamp(at)
        let replica = try reportingErrors { try options.open() }
        let id = try reportingErrors { try replica.decide(stay: stay, eligible: outcome == .eligible, reason: reason, referTo: referTo, at: when, by: try options.session()) }
        print(t(outcome == .eligible ? "decide.eligible" : "decide.notEligible", ("id", id.prefix(8))))
    }
}

struct MoveOut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "move-out",
        abstract: "Record a move-out the leader requires (leaders only); it ends the stay.",
        discussion: "With --house-rules it is an expulsion for breaking the house rules, which cannot be appealed.")
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The stay (id or unique prefix).") var stay: String
    @Option(help: "Why.") var reason: String
    @Flag(name: .customLong("house-rules"), help: "An expulsion for breaking the house rules.") var houseRules = false
    @Option(help: ArgumentHelp("When it was decided (ISO 8601).", valueName: "iso8601")) var at: String?

    func run() throws {
        let when = try timestamp(at)
        let replica = try reportingErrors { try options.open() }
        let id = try reportingErrors { try replica.requireMoveOut(stay: stay, reason: reason, houseRules: houseRules, at: when, by: try options.session()) }
        print(t("decide.moveOut", ("id", id.prefix(8))))
    }
}

struct Notifications: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Notifications to the home municipality (orientering): made on admission and discharge.",
        discussion: "due: 3 days after moving in or out (the Køge standard); legalDeadline: 3 working days (Monday–Friday, not Danish public holidays, Constitution Day, 24 or 31 December). overdue: not sent and past due.",
        subcommands: [List.self, Show.self, Sent.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every notification (--pending: those not sent).")
        @OptionGroup var options: ReplicaOptions
        @Flag(help: "Only those not sent yet.") var pending = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let list = try reportingErrors { try options.open().notifications(pendingOnly: pending) }
            if json {
                printJSON(.object([("notifications", .array(list.map { n in
                    .object([("id", .string(n.id)), ("stay", .string(n.stay)), ("kind", .string(n.kind.rawValue)),
                             ("municipality", .string(n.municipality)), ("municipalityCode", .int(Municipality.stored(n.municipality)?.code)), ("due", .string(n.due.description)),
                             ("legalDeadline", .string(n.legalDeadline.description)), ("sentAt", .string(n.sentAt)), ("overdue", .bool(n.overdue))])
                }))]))
                return
            }
            var table = TextTable(header: [t("col.id"), t("col.stay"), t("col.kind"), t("col.municipality"), t("col.due"), t("col.legalDeadline"), t("col.sent")])
            for n in list {
                table.add([String(n.id.prefix(8)), String(n.stay.prefix(8)), t("notificationKind.\(n.kind.rawValue)"), Replica.municipalityWords(n.municipality),
                           LocalTime.date(n.due) + (n.overdue ? " " + t("due.overdue") : ""), LocalTime.date(n.legalDeadline), n.sentAt.map { LocalTime.dateTime(stored: $0) } ?? "-"])
            }
            print(table.text)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the letter in Danish, ready to send (an anonymous stay's letter holds no name and no CPR number).")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The notification (id or unique prefix).") var id: String

        func run() throws {
            print(try reportingErrors { try options.openUnlocked().notificationLetter(id) }, terminator: "")
        }
    }

    struct Sent: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record that the notification was sent.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The notification (id or unique prefix).") var id: String
        @Option(help: ArgumentHelp("When it was sent (ISO 8601).", valueName: "iso8601")) var at: String?

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().markNotificationSent(id, at: when, by: try options.session()) }
            print(t("notification.sent", ("id", id)))
        }
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The stay plan: goals agreed with her, her contact person, psychologist offers.",
        subcommands: [Show.self, Add.self, SetGoal.self, Offer.self], defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a stay's plan.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The stay (id or unique prefix).") var stay: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let plan = try reportingErrors { try options.openUnlocked().plan(stay: stay) }
            if json {
                printJSON(.object([
                    ("stay", .string(plan.stay)), ("contactPerson", .string(plan.contactPerson)),
                    ("goals", .array(plan.goals.map { .object([("id", .string($0.id)), ("text", .string($0.text)), ("status", .string($0.status)), ("createdOn", .string($0.createdOn))]) })),
                    ("offers", .array(plan.offers.map { .object([("id", .string($0.id)), ("person", .string($0.person)), ("offered", .bool($0.offered)), ("accepted", .bool($0.accepted)), ("hours", .double($0.hours))]) })),
                ]))
                return
            }
            print(t("plan.contact", ("person", plan.contactPerson ?? "-")))
            for goal in plan.goals { print(t("plan.goal", ("id", goal.id.prefix(8)), ("status", t("goalStatus.\(goal.status)")), ("text", goal.text))) }
            for offer in plan.offers {
                print(t("plan.offer", ("who", offer.person == "woman" ? t("plan.her") : t("plan.child", ("child", offer.person.prefix(8)))),
                        ("state", t(offer.accepted ? "plan.accepted" : "plan.offered")), ("hours", offer.hours)))
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a goal agreed with her.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The stay (id or unique prefix).") var stay: String
        @Argument(help: "The goal.") var text: String

        func run() throws {
            let id = try reportingErrors { try options.open().addGoal(stay: stay, text: text, by: try options.session()) }
            print(t("plan.goalAdded", ("id", id)))
        }
    }

    struct SetGoal: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a goal's status: open, done or dropped.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The goal (id or unique prefix).") var goal: String
        @Option(help: "open, done or dropped (åben, opnået, droppet).") var status: String

        func run() throws {
            let code = Replica.goalStatus(named: status) ?? status
            try reportingErrors { try options.open().setGoal(goal, status: code, by: try options.session()) }
            print(t("plan.goalSet", ("id", goal), ("status", t("goalStatus.\(code)"))))
        }
    }

    struct Offer: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a psychologist offer to her, or to a child (--child).")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The stay (id or unique prefix).") var stay: String
        @Option(help: "The child: her alias or name within the stay (or an id); without it the offer is to her.") var child: String?
        @Flag(help: "The offer was accepted.") var accepted = false
        @Option(help: "Hours given.") var hours: Double = 0

        func run() throws {
            let id = try reportingErrors { try options.open().recordOffer(stay: stay, child: child, accepted: accepted, hours: hours, by: try options.session()) }
            print(t("plan.offerAdded", ("id", id)))
        }
    }
}

struct StayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stay", abstract: "Change a stay.", subcommands: [Set.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set fields of a stay: self-payment=AMOUNT (kr, as set by the home municipality), contact-person=STAFF.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The stay (id or unique prefix).") var stay: String
        @Argument(help: ArgumentHelp("FIELD=VALUE pairs.", valueName: "field=value")) var assignments: [String]

        func validate() throws {
            if assignments.isEmpty { throw ValidationError("give at least one FIELD=VALUE") }
            for assignment in assignments where !assignment.contains("=") { throw ValidationError("'\(assignment)' is not FIELD=VALUE") }
        }

        func run() throws {
            let fields = assignments.map { assignment -> (field: String, value: String) in
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
            try reportingErrors { try options.open().setStay(stay, fields: fields, by: try options.session()) }
            print(t("resident.updated", ("fields", fields.map(\.field).joined(separator: ", "))))
        }
    }
}

struct ComplaintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complaint", abstract: "Complaints about a decision: record, reconsider, forward.",
        subcommands: [Add.self, Review.self, Forwarded.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record a complaint about a decision (within 4 weeks of it; a later one is marked late).",
            discussion: "The decision is named by its id (shelter decisions). An expulsion for breaking the house rules cannot be appealed, nor an eligible decision: such a complaint is refused.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The decision (id or unique prefix, from shelter decisions).") var decision: String
        @Flag(exclusivity: .exclusive, help: "How the complaint came.") var form: Form
        @Argument(help: "The complaint.") var text: String
        @Option(help: ArgumentHelp("When it was received (ISO 8601).", valueName: "iso8601")) var at: String?

        enum Form: String, EnumerableFlag { case written, oral }

        func run() throws {
            let when = try timestamp(at)
            let replica = try reportingErrors { try options.open() }
            let id = try reportingErrors { try replica.addComplaint(decision: decision, written: form == .written, text: text, at: when, by: try options.session()) }
            let record = try reportingErrors { try replica.complaints().first { $0.id == id } }
            print(t(record?.late == true ? "complaint.addedLate" : "complaint.added", ("id", id), ("deadline", LocalTime.date(stored: record?.deadline))))
        }
    }

    struct Review: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The leader's reconsideration (leaders only): upheld changes the decision; maintained sends it on to Ankestyrelsen.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The complaint (id or unique prefix).") var id: String
        @Flag(exclusivity: .exclusive, help: "The outcome.") var outcome: Outcome
        @Option(help: ArgumentHelp("When (ISO 8601).", valueName: "iso8601")) var at: String?

        enum Outcome: String, EnumerableFlag { case upheld, maintained }

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().reviewComplaint(id, upheld: outcome == .upheld, at: when, by: try options.session()) }
            print(t(outcome == .upheld ? "complaint.upheld" : "complaint.maintained", ("id", id)))
        }
    }

    struct Forwarded: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record that a maintained complaint was forwarded to Ankestyrelsen.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The complaint (id or unique prefix).") var id: String
        @Option(help: ArgumentHelp("When (ISO 8601).", valueName: "iso8601")) var at: String?

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().complaintForwarded(id, at: when, by: try options.session()) }
            print(t("complaint.forwarded", ("id", id)))
        }
    }
}

struct Complaints: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every complaint with its decision, deadline and status.")
    @OptionGroup var options: ReplicaOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let replica = try reportingErrors { try options.openUnlocked() }
        let list = try reportingErrors { try replica.complaints() }
        if json {
            printJSON(.object([("complaints", .array(list.map { c in
                .object([("id", .string(c.id)), ("stay", .string(c.stay)), ("decision", .string(c.decision)), ("decisionOn", .string(c.decisionOn)), ("form", .string(c.form)),
                         ("text", .string(c.text)), ("receivedOn", .string(c.receivedOn)), ("deadline", .string(c.deadline)), ("late", .bool(c.late)),
                         ("status", .string(c.status)), ("reviewedOn", .string(c.reviewedOn)), ("forwardedOn", .string(c.forwardedOn))])
            }))]))
            return
        }
        var table = TextTable(header: [t("col.id"), t("col.stay"), t("col.decision"), t("col.received"), t("col.deadline"), t("col.status")])
        for c in list {
            table.add([String(c.id.prefix(8)), String(c.stay.prefix(8)), c.decision.map { String($0.prefix(8)) + " (" + LocalTime.date(stored: c.decisionOn) + ")" } ?? LocalTime.date(stored: c.decisionOn),
                       LocalTime.date(stored: c.receivedOn), LocalTime.date(stored: c.deadline) + (c.late ? " (\(t("complaint.late")))" : ""), replica.complaintStatusWord(c.status)])
        }
        print(table.text)
    }
}

struct Decisions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The leader's decisions, with their ids (a complaint names one) and what became of them.")
    @OptionGroup var options: ReplicaOptions
    @Option(help: "Only this stay's (id or unique prefix).") var stay: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let list = try reportingErrors { try options.open().decisions(stay: stay) }
        if json {
            printJSON(.object([("decisions", .array(list.map { d in
                .object([("id", .string(d.id)), ("stay", .string(d.stay)), ("kind", .string(d.kind)), ("outcome", .string(d.outcome)),
                         ("reason", .string(d.reason)), ("referTo", .string(d.referTo)), ("houseRules", .bool(d.houseRules)),
                         ("decidedOn", .string(d.decidedOn)), ("status", .string(d.status)), ("appealable", .bool(d.isAppealable)),
                         ("complaints", .array(d.complaints.map { .string($0) }))])
            }))]))
            return
        }
        if list.isEmpty { print(t("decisions.none")); return }
        var table = TextTable(header: [t("col.id"), t("col.stay"), t("col.date"), t("col.decision"), t("col.status"), t("col.complaints")])
        for d in list {
            let outcome = d.kind == "moveOut" ? t(d.houseRules ? "decision.expelled" : "decision.moveOut")
                : d.outcome == "eligible" ? t("decision.eligible") : t("decision.notEligible", ("reason", Words.reason(d.reason)))
            table.add([String(d.id.prefix(8)), String(d.stay.prefix(8)), LocalTime.date(stored: d.decidedOn), outcome,
                       t("decisionStatus.\(d.status == "overturned" ? "overturned" : "standing")"),
                       d.complaints.isEmpty ? (d.isAppealable ? "-" : t("decision.notAppealable")) : d.complaints.map { String($0.prefix(8)) }.joined(separator: ", ")])
        }
        print(table.text)
    }
}

struct Rates: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Daily rates (døgntakst) per year.", subcommands: [List.self, Set.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The daily rate of each year.")
        @OptionGroup var options: ReplicaOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let rates = try reportingErrors { try options.open().rates() }
            if json {
                printJSON(.object([("rates", .array(rates.map { .object([("year", .int($0.year)), ("amount", .kroner(øre: $0.øre)), ("amountOre", .int($0.øre))]) }))]))
                return
            }
            if rates.isEmpty { print(t("rates.none")); return }
            var table = TextTable(header: [t("col.year"), t("col.dailyRate")])
            for rate in rates { table.add([String(rate.year), Kroner.format(øre: rate.øre)]) }
            print(table.text)
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the daily rate of a year, in kroner (2839, 2839,50 or 2.839,50).")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "The year.") var year: Int
        @Argument(help: "Kroner per day.") var amount: String

        func run() throws {
            let øre = try reportingErrors { try Kroner.parseØre(amount) }
            try reportingErrors { try options.open().setRate(year: year, øre: øre, by: try options.session()) }
            print(t("rates.set", ("year", year), ("amount", Kroner.format(øre: øre))))
        }
    }
}

struct BillingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing",
        abstract: "What each home municipality owes for a month.",
        discussion: "Days rule: each calendar day from the admission day up to, not including, the discharge day (a same-day stay counts one day); a stay that has not ended counts to the end of the month. Amount = days × the year's rate. Anonymous stays appear without names.")
    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp("The month.", valueName: "yyyy-mm")) var month: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let parts = month.split(separator: "-")
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let m = Int(parts[1]), (1...12).contains(m) else {
            throw ValidationError("--month takes YYYY-MM, not '\(month)'")
        }
        let report = try reportingErrors { try options.openUnlocked().billing(year: year, month: m) }
        guard let rate = report.rateØre else {
            printError(t("billing.noRate", ("year", year)))
            throw ExitCode(1)
        }
        if json {
            printJSON(.object([("month", .string(report.month)), ("rate", .kroner(øre: rate)), ("municipalities", .array(report.municipalities.map { m in
                .object([("municipality", .string(m.municipality)), ("municipalityCode", .int(Municipality.stored(m.municipality)?.code)),
                         ("stays", .array(m.stays.map { line in
                    .object([("stay", .string(line.stay)), ("display", .string(line.display)), ("anonymous", .bool(line.anonymous)),
                             ("days", .int(line.days)), ("selfPayment", .int(line.selfPayment))])
                })), ("days", .int(m.days)), ("rate", .kroner(øre: m.rateØre)), ("amount", .kroner(øre: m.amountØre)), ("selfPayment", .int(m.selfPayment))])
            })), ("days", .int(report.days)), ("amount", .kroner(øre: report.amountØre)), ("selfPayment", .int(report.selfPayment))]))
            return
        }
        if report.municipalities.isEmpty { print(t("billing.none", ("month", report.month))); return }
        print(t("billing.heading", ("month", report.month), ("rate", Kroner.format(øre: rate))))
        var table = TextTable(header: [t("col.municipality"), t("col.code"), t("col.days"), t("col.amount"), t("col.selfPayment")], rightAligned: [1, 2, 3, 4])
        for m in report.municipalities {
            table.add([Replica.municipalityWords(m.municipality), Municipality.stored(m.municipality).map { String($0.code) } ?? "-", String(m.days),
                       Kroner.format(øre: m.amountØre), m.selfPayment > 0 ? Kroner.format(øre: m.selfPayment * 100) : "-"])
            for line in m.stays {
                table.add(["  " + t("billing.stay", ("stay", line.stay.prefix(8)), ("who", line.anonymous ? t("word.anonymous") : line.display)), "", String(line.days),
                           "", line.selfPayment.map { Kroner.format(øre: $0 * 100) } ?? ""])
            }
        }
        table.add([t("billing.total"), "", String(report.days), Kroner.format(øre: report.amountØre), report.selfPayment > 0 ? Kroner.format(øre: report.selfPayment * 100) : "-"])
        print(table.text)
        if report.selfPayment > 0 { print(t("billing.selfPaymentNote")) }
    }
}

struct Meetings: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "House meetings, every 14 days from a configured first date.",
        subcommands: [List.self, Held.self, Configure.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The next house meetings, or (--past) those held, with their notes.")
        @OptionGroup var options: ReplicaOptions
        @Option(help: "How many.") var count = 5
        @Flag(help: "The meetings held, newest first, with their notes.") var past = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let replica = try reportingErrors { try options.openUnlocked() }
            let list = try reportingErrors { past ? Array(try replica.pastMeetings().prefix(count)) : try replica.meetings(count: count) }
            if json {
                printJSON(.object([("meetings", .array(list.map { .object([("date", .string($0.date.description)), ("held", .bool($0.held)),
                                                                            ("scheduled", .bool($0.scheduled)), ("notes", .string($0.notes))]) }))]))
                return
            }
            if list.isEmpty { print(t(past ? "meetings.noneHeld" : "meetings.none")); return }
            for meeting in list {
                var line = LocalTime.date(meeting.date)
                if meeting.held { line += "  " + t("meetings.held") }
                if !meeting.scheduled { line += "  " + t("meetings.extra") }
                if past, let notes = meeting.notes, !notes.isEmpty { line += "  " + notes }
                print(line)
            }
        }
    }

    struct Held: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a house meeting that was held (a day off the schedule is recorded as an extra meeting).")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp("Its date.", valueName: "yyyy-mm-dd")) var date: String
        @Option(help: "Notes.") var notes: String?

        func run() throws {
            let day = try civilDate(date, option: "DATE")
            let scheduled = try reportingErrors { try options.open().meetingHeld(on: day, notes: notes, by: try options.session()) }
            print(t(scheduled ? "meetings.recorded" : "meetings.recordedExtra", ("date", LocalTime.date(day))))
        }
    }

    struct Configure: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the date of the first house meeting.")
        @OptionGroup var options: ReplicaOptions
        @Option(help: ArgumentHelp("The first meeting.", valueName: "yyyy-mm-dd")) var first: String

        func run() throws {
            let day = try civilDate(first, option: "--first")
            try reportingErrors { try options.open().configureMeetings(first: day, by: try options.session()) }
            print(t("meetings.configured", ("date", LocalTime.date(day))))
        }
    }
}

struct Due: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Everything with a date in the next days: notifications, complaints, meetings, stays awaiting a decision or a room; overdue first. Each line names the id to act on.")
    @OptionGroup var options: ReplicaOptions
    @Option(help: "How many days ahead.") var days = 7
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let items = try reportingErrors { try options.openWithAnySession().due(days: days) }
        if json {
            printJSON(.object([("due", .array(items.map { .object([("kind", .string($0.kind.rawValue)), ("date", .string($0.date.description)),
                                                                    ("overdue", .bool($0.overdue)), ("subject", .string($0.subject)), ("text", .string($0.text))]) }))]))
            return
        }
        if items.isEmpty { print(t("due.nothing", ("days", days))) }
        for item in items { print("\(item.overdue ? t("due.overdue") + " " : "")\(LocalTime.date(item.date))  \(item.text)") }
    }
}
