import ArgumentParser
import ClientKit
import Foundation
import ShelterDomain

func civilDate(_ text: String, option: String) throws -> CivilDate {
    guard let date = CivilDate(text) else { throw ValidationError(t("v.date", ("option", option), ("text", text))) }
    return date
}

struct StaffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: t("help.StaffCommand.abstract"),
        subcommands: [List.self, Add.self, Remove.self, Role.self], defaultSubcommand: List.self)

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", 
            abstract: t("help.StaffCommand.Add.abstract"),
            discussion: t("help.StaffCommand.Add.discussion"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.StaffCommand.Add.name"))) var name: String
        @Option(help: ArgumentHelp(t("help.StaffCommand.Add.role"))) var role: String
        @Option(help: ArgumentHelp(t("help.StaffCommand.Add.passphraseFile"), valueName: "file")) var passphraseFile: String?

        func run() throws {
            let parsed = try reportingErrors { try StaffRole.named(role) }
            let session = try reportingErrors { try options.session() }
            let passphrase = try Passphrase.read(file: passphraseFile, prompt: "Initial passphrase for \(name)", confirm: true)
            try reportingErrors { try options.open().addStaff(name: name, role: parsed, passphrase: passphrase, by: session) }
            print(t("staff.role", ("name", name), ("role", parsed.word)))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: t("help.StaffCommand.Remove.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.herName"))) var name: String

        func run() throws {
            try reportingErrors { try options.open().removeStaff(name: name, by: try options.session()) }
            print(t("staff.removed", ("name", name)))
        }
    }

    struct Role: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "role", abstract: t("help.StaffCommand.Role.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.herName"))) var name: String
        @Argument(help: ArgumentHelp(t("help.StaffCommand.Role.role"))) var role: String

        func run() throws {
            let parsed = try reportingErrors { try StaffRole.named(role) }
            try reportingErrors { try options.open().setRole(name: name, role: parsed, by: try options.session()) }
            print(t("staff.role", ("name", name), ("role", parsed.word)))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: t("help.StaffCommand.List.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
    static let configuration = CommandConfiguration(commandName: "decide", 
        abstract: t("help.Decide.abstract"),
        discussion: t("help.Decide.discussion"))
    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
    @Flag(exclusivity: .exclusive, help: ArgumentHelp(t("help.Decide.outcome"))) var outcome: Outcome
    @Option(help: ArgumentHelp(t("help.Decide.reason"))) var reason: String?
    @Option(name: .customLong("refer-to"), help: ArgumentHelp(t("help.Decide.referTo"), valueName: "shelter")) var referTo: String?
    @Option(help: ArgumentHelp(t("help.decidedAt"), valueName: "iso8601")) var at: String?

    enum Outcome: String, EnumerableFlag { case eligible, notEligible }

    func validate() throws {
        if outcome == .notEligible && reason == nil { throw ValidationError(t("v.needsReason")) }
        if outcome == .eligible && (reason != nil || referTo != nil) { throw ValidationError(t("v.reasonWithNotEligible")) }
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
        abstract: t("help.MoveOut.abstract"),
        discussion: t("help.MoveOut.discussion"))
    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
    @Option(help: ArgumentHelp(t("help.MoveOut.reason"))) var reason: String
    @Flag(name: .customLong("house-rules"), help: ArgumentHelp(t("help.MoveOut.houseRules"))) var houseRules = false
    @Option(help: ArgumentHelp(t("help.decidedAt"), valueName: "iso8601")) var at: String?

    func run() throws {
        let when = try timestamp(at)
        let replica = try reportingErrors { try options.open() }
        let id = try reportingErrors { try replica.requireMoveOut(stay: stay, reason: reason, houseRules: houseRules, at: when, by: try options.session()) }
        print(t("decide.moveOut", ("id", id.prefix(8))))
    }
}

struct Notifications: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "notifications", 
        abstract: t("help.Notifications.abstract"),
        discussion: t("help.Notifications.discussion"),
        subcommands: [List.self, Show.self, Sent.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: t("help.Notifications.List.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.Notifications.List.pending"))) var pending = false
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
        static let configuration = CommandConfiguration(commandName: "show", abstract: t("help.Notifications.Show.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.notificationID"))) var id: String

        func run() throws {
            print(try reportingErrors { try options.openUnlocked().notificationLetter(id) }, terminator: "")
        }
    }

    struct Sent: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sent", abstract: t("help.Notifications.Sent.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.notificationID"))) var id: String
        @Option(help: ArgumentHelp(t("help.Notifications.Sent.at"), valueName: "iso8601")) var at: String?

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().markNotificationSent(id, at: when, by: try options.session()) }
            print(t("notification.sent", ("id", id)))
        }
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", 
        abstract: t("help.Plan.abstract"),
        subcommands: [Show.self, Add.self, SetGoal.self, Offer.self], defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: t("help.Plan.Show.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
                let hours = offer.hours == offer.hours.rounded() ? String(Int(offer.hours))
                    : String(format: "%.1f", offer.hours).replacingOccurrences(of: ".", with: Language.current == .da ? "," : ".")
                print(t("plan.offer", ("who", offer.person == "woman" ? t("plan.her") : t("plan.child", ("child", offer.childName ?? String(offer.person.prefix(8))))),
                        ("state", t(offer.accepted ? "plan.accepted" : "plan.offered")), ("hours", hours)))
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: t("help.Plan.Add.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
        @Argument(help: ArgumentHelp(t("help.Plan.Add.text"))) var text: String

        func run() throws {
            let id = try reportingErrors { try options.open().addGoal(stay: stay, text: text, by: try options.session()) }
            print(t("plan.goalAdded", ("id", id)))
        }
    }

    struct SetGoal: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: t("help.Plan.SetGoal.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.Plan.SetGoal.goal"))) var goal: String
        @Option(help: ArgumentHelp(t("help.Plan.SetGoal.status"))) var status: String

        func run() throws {
            let code = Replica.goalStatus(named: status) ?? status
            try reportingErrors { try options.open().setGoal(goal, status: code, by: try options.session()) }
            print(t("plan.goalSet", ("id", goal), ("status", t("goalStatus.\(code)"))))
        }
    }

    struct Offer: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "offer", abstract: t("help.Plan.Offer.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
        @Option(help: ArgumentHelp(t("help.Plan.Offer.child"))) var child: String?
        @Flag(help: ArgumentHelp(t("help.Plan.Offer.accepted"))) var accepted = false
        @Option(help: ArgumentHelp(t("help.Plan.Offer.hours"))) var hours: Double = 0

        func run() throws {
            let id = try reportingErrors { try options.open().recordOffer(stay: stay, child: child, accepted: accepted, hours: hours, by: try options.session()) }
            print(t("plan.offerAdded", ("id", id)))
        }
    }
}

struct StayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stay", abstract: t("help.StayCommand.abstract"), subcommands: [Set.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", 
            abstract: t("help.StayCommand.Set.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
        @Argument(help: ArgumentHelp(t("help.fieldValuePairs"), valueName: "field=value")) var assignments: [String]

        func validate() throws {
            if assignments.isEmpty { throw ValidationError(t("v.oneField")) }
            for assignment in assignments where !assignment.contains("=") { throw ValidationError(t("v.notPair", ("text", assignment))) }
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
        commandName: "complaint", abstract: t("help.ComplaintCommand.abstract"),
        subcommands: [Add.self, Review.self, Forwarded.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", 
            abstract: t("help.ComplaintCommand.Add.abstract"),
            discussion: t("help.ComplaintCommand.Add.discussion"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.ComplaintCommand.Add.decision"))) var decision: String
        @Flag(exclusivity: .exclusive, help: ArgumentHelp(t("help.ComplaintCommand.Add.form"))) var form: Form
        @Argument(help: ArgumentHelp(t("help.ComplaintCommand.Add.text"))) var text: String
        @Option(help: ArgumentHelp(t("help.ComplaintCommand.Add.at"), valueName: "iso8601")) var at: String?

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
        static let configuration = CommandConfiguration(commandName: "review", abstract: t("help.ComplaintCommand.Review.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.complaintID"))) var id: String
        @Flag(exclusivity: .exclusive, help: ArgumentHelp(t("help.ComplaintCommand.Review.outcome"))) var outcome: Outcome
        @Option(help: ArgumentHelp(t("help.when"), valueName: "iso8601")) var at: String?

        enum Outcome: String, EnumerableFlag { case upheld, maintained }

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().reviewComplaint(id, upheld: outcome == .upheld, at: when, by: try options.session()) }
            print(t(outcome == .upheld ? "complaint.upheld" : "complaint.maintained", ("id", id)))
        }
    }

    struct Forwarded: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "forwarded", abstract: t("help.ComplaintCommand.Forwarded.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.complaintID"))) var id: String
        @Option(help: ArgumentHelp(t("help.when"), valueName: "iso8601")) var at: String?

        func run() throws {
            let when = try timestamp(at)
            try reportingErrors { try options.open().complaintForwarded(id, at: when, by: try options.session()) }
            print(t("complaint.forwarded", ("id", id)))
        }
    }
}

struct Complaints: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "complaints", abstract: t("help.Complaints.abstract"))
    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
    static let configuration = CommandConfiguration(commandName: "decisions", abstract: t("help.Decisions.abstract"))
    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp(t("help.Decisions.stay"))) var stay: String?
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
    static let configuration = CommandConfiguration(commandName: "rates", abstract: t("help.Rates.abstract"), subcommands: [List.self, Set.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: t("help.Rates.List.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
        static let configuration = CommandConfiguration(commandName: "set", abstract: t("help.Rates.Set.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.Rates.Set.year"))) var year: Int
        @Argument(help: ArgumentHelp(t("help.Rates.Set.amount"))) var amount: String

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
        abstract: t("help.BillingCommand.abstract"),
        discussion: t("help.BillingCommand.discussion"))
    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp(t("help.BillingCommand.month"), valueName: "yyyy-mm")) var month: String
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let parts = month.split(separator: "-")
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let m = Int(parts[1]), (1...12).contains(m) else {
            throw ValidationError(t("v.month", ("month", month)))
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
    static let configuration = CommandConfiguration(commandName: "meetings", 
        abstract: t("help.Meetings.abstract"),
        subcommands: [List.self, Held.self, Configure.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: t("help.Meetings.List.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Option(help: ArgumentHelp(t("help.Meetings.List.count"))) var count = 5
        @Flag(help: ArgumentHelp(t("help.Meetings.List.past"))) var past = false
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
        static let configuration = CommandConfiguration(commandName: "held", abstract: t("help.Meetings.Held.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.Meetings.Held.date"), valueName: "yyyy-mm-dd")) var date: String
        @Option(help: ArgumentHelp(t("help.Meetings.Held.notes"))) var notes: String?

        func run() throws {
            let day = try civilDate(date, option: "DATE")
            let scheduled = try reportingErrors { try options.open().meetingHeld(on: day, notes: notes, by: try options.session()) }
            print(t(scheduled ? "meetings.recorded" : "meetings.recordedExtra", ("date", LocalTime.date(day))))
        }
    }

    struct Configure: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "configure", abstract: t("help.Meetings.Configure.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Option(help: ArgumentHelp(t("help.Meetings.Configure.first"), valueName: "yyyy-mm-dd")) var first: String

        func run() throws {
            let day = try civilDate(first, option: "--first")
            try reportingErrors { try options.open().configureMeetings(first: day, by: try options.session()) }
            print(t("meetings.configured", ("date", LocalTime.date(day))))
        }
    }
}

struct Due: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "due", 
        abstract: t("help.Due.abstract"))
    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp(t("help.Due.days"))) var days = 7
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

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
