import ClientKit
import Foundation
import GRDB
import ShelterDomain
import SyncCore
import Testing
import TestSupport

@Suite struct ShelterRulesTests {
    /// A replica whose clock says `now`, with a leader and a social worker.
    func replica(now: String = "2026-11-26T10:00:00Z", rooms: Int = 9) throws -> Replica {
        let date = try Timestamp.parse(now)
        let replica = try Replica.inMemory(rooms: rooms, configuration: .init(now: { date }))
        // Mette is one of the test leaders.
        try replica.addStaff(name: "Jonas", role: .socialWorker, by: staff("setup"))
        return replica
    }

    @Test func onlyALeaderDecides() throws {
        let replica = try replica()
        let stay = try replica.admit(Admission(name: "Anna", municipality: "Køge", room: 1), by: staff("Jonas")).stay
        let before = try replica.status().unsynced
        for author in ["Jonas", "stranger"] {
            do {
                try replica.decide(stay: stay, eligible: true, by: staff(author))
                Issue.record("\(author) recorded a decision")
            } catch let error as ReplicaError {
                #expect(error.domain?.code == .notPermitted)
            }
        }
        #expect(throws: ReplicaError.self) { try replica.requireMoveOut(stay: stay, reason: "r", houseRules: true, by: staff("Jonas")) }
        #expect(try replica.status().unsynced == before, "a refused action writes nothing")
        try replica.decide(stay: stay, eligible: true, by: staff("Mette"))
        #expect(try replica.decisions(stay: stay).map(\.outcome) == ["eligible"])
        #expect(try replica.history(of: try replica.decisions(stay: stay)[0].id).first?.author == "Mette")
    }

    @Test func aNotEligibleDecisionEndsTheStayAndNotifies() throws {
        let replica = try replica()
        let stay = try replica.admit(Admission(name: "Anna", municipality: "Køge", room: 1), by: staff("Jonas")).stay
        try replica.decide(stay: stay, eligible: false, reason: IneligibilityReason.severeMentalIllness.rawValue, referTo: "Psykiatrien", by: staff("Mette"))
        let summary = try #require(try replica.stays(includeDischarged: true).first)
        #expect(summary.status == .discharged)
        #expect(try replica.roomBoard().occupied == 0)
        let notifications = try replica.notifications()
        #expect(notifications.map(\.kind) == [.admission, .discharge])
        #expect(try replica.decisions(stay: stay).first?.referTo == "Psykiatrien")
        #expect(throws: ReplicaError.self) { try replica.decide(stay: stay, eligible: true, by: staff("Mette")) }
    }

    @Test func notificationsCarryBothDatesAndBecomeOverdue() throws {
        // Admitted on 23 December 2026; it is now 29 December, and nothing was sent.
        let replica = try replica(now: "2026-12-29T09:00:00Z")
        let stay = try replica.admit(Admission(name: "Anna Jensen", cpr: "010190-1234", municipality: "Køge",
                                               children: [.init(name: "Mia", cpr: "150815-4321")],
                                               admittedAt: try Timestamp.parse("2026-12-23T20:00:00+01:00")), by: staff("Jonas")).stay
        let notification = try #require(try replica.notifications(pendingOnly: true).first)
        #expect(notification.stay == stay && notification.municipality == "Køge")
        #expect(notification.due.description == "2026-12-26" && notification.legalDeadline.description == "2026-12-30")
        #expect(notification.overdue, "past its due date and not sent")
        let due = try replica.due()
        #expect(due.first?.kind == .notification && due.first?.overdue == true, "overdue first")
        let letter = try replica.notificationLetter(String(notification.id.prefix(8)))
        #expect(letter.contains("Anna Jensen, cpr.nr. 010190-1234") && letter.contains("Mia, cpr.nr. 150815-4321"))
        try replica.markNotificationSent(notification.id, by: staff("Jonas"))
        #expect(try replica.notifications(pendingOnly: true).isEmpty)
        #expect(throws: ReplicaError.self) { try replica.markNotificationSent(notification.id, by: staff("Jonas")) }
    }

    @Test func anAnonymousStaysLetterCannotCarryANameEvenIfOneWereStored() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let replica = try Replica.create(at: dir.file("r.replica"), rooms: 3)
        let admitted = try replica.admit(Admission(anonymous: true, alias: "Rose", municipality: "Roskilde", children: [.init(alias: "R1")]), by: staff("s"))
        // Even a name forced into the file around every rule does not reach the letter.
        try await DatabaseQueue(path: replica.path).write { db in
            try db.execute(sql: "UPDATE residents SET name = 'Rose Hansen', cpr = '010190-1234' WHERE id = ?", arguments: [admitted.resident])
            try db.execute(sql: "UPDATE children SET name = 'Lille Hansen', cpr = '150815-4321'")
        }
        let notification = try #require(try replica.notifications().first)
        let letter = try replica.notificationLetter(notification.id)
        for leaked in ["Rose", "Hansen", "010190", "150815", "R1"] { #expect(!letter.contains(leaked), "the letter leaks \(leaked)") }
        #expect(letter.contains("Roskilde Kommune") && letter.contains("1 barn"))
    }

    @Test func complaintsDeadlinesAndTheirPath() throws {
        let replica = try replica(now: "2027-04-30T09:00:00Z")
        let arrived = try Timestamp.parse("2027-03-20T12:00:00Z")
        let first = try replica.admit(Admission(name: "A", municipality: "Køge", room: 1, admittedAt: arrived), by: staff("Jonas")).stay
        let second = try replica.admit(Admission(name: "B", municipality: "Køge", room: 2, admittedAt: arrived), by: staff("Jonas")).stay
        let decision = try replica.decide(stay: first, eligible: false, reason: "notTargetGroup", at: try Timestamp.parse("2027-03-26T12:00:00Z"), by: staff("Mette"))
        let expulsion = try replica.requireMoveOut(stay: second, reason: "violence against another resident", houseRules: true,
                                                   at: try Timestamp.parse("2027-04-20T12:00:00Z"), by: staff("Mette"))
        // An expulsion for breaking the house rules cannot be appealed (by its own kind, not its date).
        do {
            try replica.addComplaint(decision: expulsion, written: true, text: "x", by: staff("Jonas"))
            Issue.record("a complaint about a house-rules expulsion was recorded")
        } catch let error as ReplicaError {
            #expect(error.message.contains("ikke kan påklages"))
        }
        // Received before the decision: refused.
        #expect(throws: ReplicaError.self) {
            try replica.addComplaint(decision: decision, written: true, text: "x", at: try Timestamp.parse("2027-03-20T12:00:00Z"), by: staff("Jonas"))
        }
        // Received 30 April about a decision of 26 March: deadline 23 April, so late, but recorded.
        let complaint = try replica.addComplaint(decision: String(decision.prefix(8)), written: false, text: "uenig", by: staff("Jonas"))
        // One complaint at a time about a decision.
        #expect(throws: ReplicaError.self) { try replica.addComplaint(decision: decision, written: true, text: "igen", by: staff("Jonas")) }
        let record = try #require(try replica.complaints().first)
        #expect(record.deadline == "2027-04-23" && record.late && record.form == "oral" && record.status == "received")
        #expect(record.decision == decision && record.stay == first && record.decisionOn == "2027-03-26")
        #expect(try replica.decisions(stay: first).first?.complaints == [complaint])
        #expect(throws: ReplicaError.self) { try replica.complaintForwarded(complaint, by: staff("Jonas")) }
        #expect(throws: ReplicaError.self) { try replica.reviewComplaint(complaint, upheld: false, by: staff("Jonas")) }
        try replica.reviewComplaint(complaint, upheld: false, by: staff("Mette"))
        #expect(try replica.due(days: 60).contains { $0.kind == .complaintForwarding && $0.subject == complaint })
        try replica.complaintForwarded(complaint, by: staff("Jonas"))
        #expect(try replica.complaints().first?.status == "forwarded")
        #expect(try replica.complaints().first?.forwardedOn == "2027-04-30")
        // Once forwarded, it is not reconsidered again, nor forwarded twice.
        #expect(throws: ReplicaError.self) { try replica.reviewComplaint(complaint, upheld: true, by: staff("Mette")) }
        #expect(throws: ReplicaError.self) { try replica.complaintForwarded(complaint, by: staff("Jonas")) }
    }

    @Test func anUpheldComplaintChangesTheDecision() throws {
        let replica = try replica(now: "2027-04-01T09:00:00Z")
        let stay = try replica.admit(Admission(name: "A", municipality: "Køge", room: 1, admittedAt: try Timestamp.parse("2027-03-20T12:00:00Z")), by: staff("Jonas")).stay
        let decision = try replica.decide(stay: stay, eligible: false, reason: "notTargetGroup", at: try Timestamp.parse("2027-03-26T12:00:00Z"), by: staff("Mette"))
        let complaint = try replica.addComplaint(decision: decision, written: true, text: "t", by: staff("Jonas"))
        try replica.reviewComplaint(complaint, upheld: true, by: staff("Mette"))
        #expect(try replica.decisions(stay: stay).first?.status == "overturned")
        #expect(try replica.complaints().first?.status == "upheld")
        #expect(throws: ReplicaError.self) { try replica.reviewComplaint(complaint, upheld: false, by: staff("Mette")) }
        // Upheld is never forwarded.
        #expect(throws: ReplicaError.self) { try replica.complaintForwarded(complaint, by: staff("Jonas")) }
        // The leader is told what comes next, until a new decision about her is made.
        let next = try #require(try replica.due(days: 7).first { $0.kind == .upheldComplaint })
        #expect(next.subject == complaint && next.text.contains(String(decision.prefix(8))))
        let again = try replica.admit(Admission(name: "A", municipality: "Køge", room: 2), by: staff("Jonas"))
        #expect(try replica.due(days: 7).contains { $0.kind == .upheldComplaint }, "readmitted, not yet decided")
        try replica.decide(stay: again.stay, eligible: true, by: staff("Mette"))
        #expect(try replica.due(days: 7).contains { $0.kind == .upheldComplaint }, "a decision about another woman's stay does not count")
    }

    @Test func billingAtTheRateOf2022() throws {
        let replica = try replica(now: "2022-05-01T09:00:00Z")
        try replica.setRate(year: 2022, øre: 283_950, by: staff("Mette"))
        let anna = try replica.admit(Admission(name: "Anna Jensen", municipality: "Køge", room: 1, admittedAt: try Timestamp.parse("2022-03-10T14:00:00+01:00")), by: staff("Jonas"))
        try replica.discharge(stay: anna.stay, reason: "egen bolig", at: try Timestamp.parse("2022-04-05T10:00:00+02:00"), by: staff("Jonas"))
        let rose = try replica.admit(Admission(anonymous: true, alias: "Rose", municipality: "Køge", room: 2, admittedAt: try Timestamp.parse("2022-02-01T10:00:00+01:00")), by: staff("Jonas"))
        try replica.setStay(rose.stay, fields: [("self-payment", "1200")], by: staff("Jonas"))
        try replica.admit(Admission(name: "Eva", municipality: "Greve", room: 3, admittedAt: try Timestamp.parse("2022-03-31T23:30:00+02:00")), by: staff("Jonas"))
        let march = try replica.billing(year: 2022, month: 3)
        #expect(try march.rateØre == 283_950 && replica.rates().map(\.øre) == [283_950])
        let koege = try #require(march.municipalities.first { $0.municipality == "Køge" })
        // Anna: 10–31 March = 22 days; Rose: all 31 days.
        #expect(koege.days == 22 + 31 && koege.amountØre == (22 + 31) * 283_950)
        #expect(march.amountØre == march.municipalities.reduce(0) { $0 + $1.amountØre } && march.days == 22 + 31 + 1 && march.selfPayment == 1200)
        #expect(koege.selfPayment == 1200)
        let anonymousLine = try #require(koege.stays.first { $0.anonymous })
        #expect(anonymousLine.display == "anonymous")
        let greve = try #require(march.municipalities.first { $0.municipality == "Greve" })
        #expect(greve.days == 1, "admitted at 23:30 Danish time on 31 March")
        let april = try replica.billing(year: 2022, month: 4)
        #expect(april.municipalities.first { $0.municipality == "Køge" }?.stays.first { !$0.anonymous }?.days == 4, "1–4 April; the 5th she left")
        #expect(try replica.billing(year: 2031, month: 1).rateØre == nil)
        #expect(throws: ReplicaError.self) { try replica.setStay(rose.stay, fields: [("self-payment", "lots")], by: staff("Jonas")) }
    }

    @Test func planMeetingsAndDue() throws {
        let replica = try replica(now: "2026-11-26T09:00:00Z")
        let admitted = try replica.admit(Admission(name: "Anna", municipality: "Køge", children: [.init(name: "Mia")]), by: staff("Jonas"))
        let goal = try replica.addGoal(stay: admitted.stay, text: "Find egen bolig", by: staff("Jonas"))
        try replica.setGoal(goal, status: "done", by: staff("Jonas"))
        #expect(throws: ReplicaError.self) { try replica.setGoal(goal, status: "finished", by: staff("Jonas")) }
        try replica.setStay(admitted.stay, fields: [("contact-person", "Jonas")], by: staff("Mette"))
        #expect(throws: ReplicaError.self) { try replica.setStay(admitted.stay, fields: [("contact-person", "Nobody")], by: staff("Mette")) }
        let child = try #require(try replica.resident(admitted.resident).children.first).id
        try replica.recordOffer(stay: admitted.stay, accepted: true, hours: 4, by: staff("Jonas"))
        try replica.recordOffer(stay: admitted.stay, child: String(child.prefix(8)), accepted: false, hours: 0, by: staff("Jonas"))
        let plan = try replica.plan(stay: admitted.stay)
        #expect(plan.contactPerson == "Jonas" && plan.goals.map(\.status) == ["done"])
        #expect(plan.offers.map(\.person).sorted() == [child, "woman"].sorted())
        #expect(throws: ReplicaError.self) { try replica.meetings() }
        try replica.configureMeetings(first: CivilDate(year: 2026, month: 11, day: 2), by: staff("Mette"))
        #expect(try replica.meetings(count: 2).map(\.date.description) == ["2026-11-30", "2026-12-14"])
        // Not in the future; a day off the schedule is an extra meeting.
        #expect(throws: ReplicaError.self) { try replica.meetingHeld(on: CivilDate(year: 2026, month: 11, day: 30), notes: "x", by: staff("Mette")) }
        #expect(try replica.meetingHeld(on: CivilDate(year: 2026, month: 11, day: 16), notes: "ny husorden", by: staff("Mette")))
        #expect(try !replica.meetingHeld(on: CivilDate(year: 2026, month: 11, day: 20), notes: "ekstra", by: staff("Mette")))
        #expect(try replica.pastMeetings().map { "\($0.date) \($0.scheduled) \($0.notes ?? "")" } == ["2026-11-20 false ekstra", "2026-11-16 true ny husorden"])
        // Awaiting a decision and a room; nothing overdue yet.
        let due = try replica.due()
        #expect(Set(due.map(\.kind)) == [.notification, .awaitingDecision, .awaitingRoom, .meeting])
        #expect(due.allSatisfy { !$0.overdue })
        #expect(due.allSatisfy { !$0.text.contains("Anna") }, "due texts carry ids, not names")
    }
}
