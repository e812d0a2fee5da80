import ShelterDomain
import SyncCore
import Testing

@Suite struct DeadlineTests {
    @Test(arguments: [
        (2024, "2024-03-31"), (2025, "2025-04-20"), (2026, "2026-04-05"), (2027, "2027-03-28"),
        (2000, "2000-04-23"), (2038, "2038-04-25"), (1818, "1818-03-22"), (2285, "2285-03-22"), (1943, "1943-04-25"),
    ])
    func easterByTheGregorianComputus(_ year: Int, _ expected: String) {
        #expect(Deadlines.easterSunday(year).description == expected)
    }

    @Test func theHolidaysOf2027() {
        let holidays = Deadlines.holidays(2027).keys.map(\.description).sorted()
        #expect(holidays == [
            "2027-01-01", "2027-03-25", "2027-03-26", "2027-03-28", "2027-03-29", "2027-05-06",
            "2027-05-16", "2027-05-17", "2027-06-05", "2027-12-24", "2027-12-25", "2027-12-26", "2027-12-31",
        ])
    }

    @Test(arguments: [
        // An admission on 23 December 2026 (Wednesday): 24, 25, 26 Dec and the weekend are not hverdage.
        ("2026-12-23", "2026-12-26", "2026-12-30"),
        // Maundy Thursday 2027: Good Friday, the Easter weekend and Easter Monday follow.
        ("2027-03-25", "2027-03-28", "2027-04-01"),
        // A Friday: the weekend is skipped.
        ("2026-11-27", "2026-11-30", "2026-12-02"),
        // Before Ascension Day 2027 (Thursday 6 May).
        ("2027-05-04", "2027-05-07", "2027-05-10"),
        // Whitsun 2027 and Constitution Day (Saturday 5 June).
        ("2027-05-13", "2027-05-16", "2027-05-19"),
        // New Year's Eve and New Year's Day.
        ("2027-12-29", "2028-01-01", "2028-01-04"),
        // An ordinary Monday.
        ("2026-11-23", "2026-11-26", "2026-11-26"),
    ])
    func notificationDeadlines(_ event: String, _ due: String, _ legal: String) throws {
        let date = try #require(CivilDate(event))
        #expect(Deadlines.notificationDue(after: date).description == due)
        #expect(Deadlines.notificationLegalDeadline(after: date).description == legal)
    }

    @Test func holidaysThatFallOnOneDay() {
        // Whit Monday 2028 is 5 June, Constitution Day.
        #expect(Deadlines.holidays(2028)[CivilDate(year: 2028, month: 6, day: 5)] == "2. pinsedag og Grundlovsdag")
        // Every year from 1900 to 2300 has a table (no year traps).
        for year in 1900...2300 { #expect(Deadlines.holidays(year).count >= 12) }
    }

    @Test func workingDaysAreNeverWeekendsOrHolidays() {
        var date = CivilDate(year: 2026, month: 1, day: 1)
        for _ in 0..<800 {
            let next = Deadlines.workingDays(1, after: date)
            #expect(next.weekday <= 5 && Deadlines.holidays(next.year)[next] == nil)
            #expect(next > date)
            date = next
        }
    }

    @Test func complaintsAndMeetings() {
        #expect(Deadlines.complaintDeadline(decidedOn: CivilDate(year: 2027, month: 3, day: 26)).description == "2027-04-23")
        let first = CivilDate(year: 2026, month: 11, day: 2)
        #expect(Deadlines.meetings(first: first, from: CivilDate(year: 2026, month: 11, day: 26), count: 3).map(\.description)
                == ["2026-11-30", "2026-12-14", "2026-12-28"])
        #expect(Deadlines.meetings(first: first, from: first, count: 1) == [first], "the first meeting itself")
        #expect(Deadlines.meetings(first: first, from: CivilDate(year: 2026, month: 10, day: 1), count: 1) == [first])
    }
}

@Suite struct BillingTests {
    let march2022 = (year: 2022, month: 3)

    @Test func theDaysRule() {
        let d = { (s: String) in CivilDate(s)! }
        // A whole month.
        #expect(Billing.days(admitted: d("2022-02-20"), discharged: nil, year: 2022, month: 3) == 31)
        // From admission day, to the end of the month.
        #expect(Billing.days(admitted: d("2022-03-10"), discharged: nil, year: 2022, month: 3) == 22)
        // The discharge day is not a day of stay.
        #expect(Billing.days(admitted: d("2022-03-10"), discharged: d("2022-03-12"), year: 2022, month: 3) == 2)
        #expect(Billing.days(admitted: d("2022-03-10"), discharged: d("2022-04-05"), year: 2022, month: 4) == 4)
        // A stay that begins and ends on one day counts one.
        #expect(Billing.days(admitted: d("2022-03-10"), discharged: d("2022-03-10"), year: 2022, month: 3) == 1)
        // Outside the month.
        #expect(Billing.days(admitted: d("2022-04-01"), discharged: nil, year: 2022, month: 3) == 0)
        #expect(Billing.days(admitted: d("2022-01-01"), discharged: d("2022-03-01"), year: 2022, month: 3) == 0)
    }

    @Test func theRateOf2022TimesDays() {
        // 2022: 2,839 kr per day (Køge). 22 days of March.
        #expect(Billing.amount(days: 22, rate: 2839) == 62_458)
        #expect(Billing.amount(days: 31, rate: 2839) == 88_009)
    }
}

@Suite struct LetterTests {
    @Test func anAnonymousLetterHasNoNameAndNoCPR() {
        let letter = NotificationLetter(kind: .admission, municipality: "Roskilde", date: CivilDate(year: 2027, month: 3, day: 25),
                                        reason: "vold i hjemmet", subject: .anonymous(children: 2)).text
        #expect(letter.contains("Til Roskilde Kommune") && letter.contains("25. marts 2027") && letter.contains("anonymt"))
        #expect(letter.contains("2 børn"))
        #expect(letter.range(of: #"\d{6}-?\d{4}"#, options: .regularExpression) == nil, "no CPR-like number")
        #expect(letter.range(of: #"cpr\.nr\. \d"#, options: .regularExpression) == nil, "no CPR number follows cpr.nr.")
    }

    @Test func anIdentifiedLetterNamesHerAndHerChildren() {
        let letter = NotificationLetter(kind: .discharge, municipality: "Køge", date: CivilDate(year: 2026, month: 12, day: 30), reason: nil,
                                        subject: .identified(woman: .init(name: "Anna Jensen", cpr: "010190-1234"),
                                                             children: [.init(name: "Mia Jensen", cpr: "150815-4321")])).text
        #expect(letter.contains("Anna Jensen, cpr.nr. 010190-1234") && letter.contains("Mia Jensen, cpr.nr. 150815-4321"))
        #expect(letter.contains("fraflyttet 30. december 2026"))
    }

    @Test func roles() throws {
        #expect(throws: DomainError.self) { try Roles.requireLeader("jonas", role: .socialWorker, for: "x") }
        #expect(throws: DomainError.self) { try Roles.requireLeader("stranger", role: nil, for: "x") }
        try Roles.requireLeader("mette", role: .leader, for: "x")
        #expect(Roles.staffID("  Mette ") == "mette")
        #expect(throws: DomainError.self) { try StaffRole.named("boss") }
    }
}

import Foundation

@Suite struct RoomRuleTests {
    @Test func theRoomRuleReturnsItsRepairs() {
        let replica = ReplicaID.random()
        func placed(_ stay: String, _ room: Int?, at position: Int64) -> RoomRules.Placement {
            RoomRules.Placement(stay: stay, room: room, dot: Dot(replica: replica, counter: UInt64(position)), position: position)
        }
        let repairs = RoomRules.repairs(rooms: [1: true, 2: false, 3: true, 4: true], active: [
            placed("a", 1, at: 5), placed("b", 1, at: 3), placed("c", 2, at: 1), placed("d", 9, at: 2), placed("e", nil, at: 4),
            placed("f", 4, at: 6),
        ])
        #expect(repairs.roomless == ["d", "e"], "a room that does not exist, or none")
        #expect(repairs.reopen == [2], "nobody is put out of a room taken out of service")
        #expect(repairs.displaced.map { [$0.room.description, $0.keeper.stay, $0.displaced.stay] } == [["1", "b", "a"]], "the first placement keeps the room")
        #expect(repairs.freeRoom == 3)
        let settled = RoomRules.repairs(rooms: [1: true], active: [placed("a", 1, at: 1)])
        #expect(settled.roomless.isEmpty && settled.reopen.isEmpty && settled.displaced.isEmpty && settled.freeRoom == nil)
    }
}
