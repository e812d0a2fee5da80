import ShelterDomain
import SyncCore
import Testing

@Suite struct CPRNumberTests {
    @Test(arguments: [
        ("010190-1234", "010190-1234", 1990),
        ("0101901234", "010190-1234", 1990),
        ("290200-4123", "290200-4123", 2000),  // 7th digit 4, yy ≤ 36 → 2000, a leap year
        ("290296-1234", "290296-1234", 1996),
        ("150815-5321", "150815-5321", 2015),  // 7th digit 5, yy ≤ 57 → 2000s
        ("150870-5321", "150870-5321", 1870),  // 7th digit 5, yy > 57 → 1800s
        ("311299-9999", "311299-9999", 1999),  // 7th digit 9, yy > 36 → 1900s
    ])
    func validNumbers(_ input: String, _ formatted: String, _ year: Int) throws {
        let cpr = try CPRNumber(input)
        #expect(cpr.formatted == formatted)
        #expect(cpr.birthYear == year)
    }

    @Test(arguments: [
        "310290-1234",   // 31 February
        "290201-1234",   // 1901 is not a leap year
        "290200-1234",   // 7th digit 1 → 1900, not a leap year (divisible by 100, not by 400)
        "001190-1234",   // day 0
        "011390-1234",   // month 13
        "31049-01234",   // dash in the wrong place
        "010190123",     // too short
        "010190-12345",  // too long
        "01019O-1234",   // a letter O
        "",
    ])
    func invalidNumbers(_ input: String) {
        #expect(throws: DomainError.self) { try CPRNumber(input) }
    }

    @Test func noModulus11Check() throws {
        // 010190-1235 fails the old modulus-11 check; numbers issued since 2007 may too.
        #expect(try CPRNumber("010190-1235").formatted == "010190-1235")
    }

    @Test func errorsNeverRepeatTheNumber() {
        do {
            _ = try CPRNumber("310290-4711")
            Issue.record("expected an error")
        } catch {
            #expect(!error.message.contains("4711") && !error.message.contains("310290"))
        }
    }
}

@Suite struct DomainRuleTests {
    @Test func anonymousResidentsHaveNoNameOrCPR() throws {
        #expect(throws: DomainError.self) { try Anonymity.check(anonymous: true, name: "Anna", cpr: nil) }
        #expect(throws: DomainError.self) { try Anonymity.check(anonymous: true, name: nil, cpr: "010190-1234") }
        try Anonymity.check(anonymous: true, name: nil, cpr: nil)
        try Anonymity.check(anonymous: false, name: "Anna", cpr: "010190-1234")
        #expect(throws: DomainError.self) { try ResidentField.name.value(from: "Anna", anonymous: true) }
        #expect(throws: DomainError.self) { try ResidentField.cpr.value(from: "010190-1234", anonymous: true) }
        #expect(try ResidentField.cpr.value(from: "0101901234", anonymous: false) == .text("010190-1234"))
        #expect(throws: DomainError.self) { try ResidentField.named("colour") }
        #expect(try ResidentField.interpreter.value(from: "ja", anonymous: false) == .integer(1))
    }

    @Test func roomAvailability() throws {
        let rooms = [Room(number: 1), Room(number: 2, inService: false), Room(number: 3)]
        let stays = [Stay(id: "s1", resident: "r1", admittedAt: "", room: 1, status: .active)]
        #expect(throws: DomainError.self) { try RoomRules.checkAvailable(1, rooms: rooms, activeStays: stays) }
        #expect(throws: DomainError.self) { try RoomRules.checkAvailable(2, rooms: rooms, activeStays: stays) }
        #expect(throws: DomainError.self) { try RoomRules.checkAvailable(4, rooms: rooms, activeStays: stays) }
        try RoomRules.checkAvailable(3, rooms: rooms, activeStays: stays)
        try RoomRules.checkAvailable(1, rooms: rooms, activeStays: stays, movingStay: "s1")
        let twice = stays + [Stay(id: "s2", resident: "r2", admittedAt: "", room: 1, status: .active)]
        #expect(RoomRules.doubleBooked(twice).keys.sorted() == [1])
        #expect(RoomRules.doubleBooked(stays).isEmpty)
    }

    @Test func stayTransitions() {
        let discharged = Stay(id: "s", resident: "r", admittedAt: "", room: nil, status: .discharged)
        #expect(throws: DomainError.self) { try discharged.checkAssignable() }
        #expect(throws: DomainError.self) { try discharged.checkDischargeable() }
    }

    @Test func schemaMarksPersonalColumns() {
        let personal = ShelterSchema.residents.personalColumns
        #expect(personal.isSuperset(of: ["name", "cpr", "phone", "notes"]))
        #expect(ShelterSchema.children.personalColumns.isSuperset(of: ["name", "cpr"]))
        #expect(ShelterSchema.residents.keepBoth == ["notes"])
    }
}

@Suite struct TimeTests {
    @Test func civilDateRoundTripsAndWeekdays() {
        for n in stride(from: -800_000, through: 800_000, by: 997) {
            #expect(CivilDate(dayNumber: n).dayNumber == n)
        }
        #expect(CivilDate(year: 1970, month: 1, day: 1).dayNumber == 0)
        #expect(CivilDate(year: 2026, month: 11, day: 26).weekday == 4)  // a Thursday
        #expect(CivilDate("2026-02-29") == nil)
        #expect(CivilDate("2024-02-29")?.adding(days: 1) == CivilDate(year: 2024, month: 3, day: 1))
    }

    @Test func timestampsParseWithAndWithoutZones() throws {
        let utc = TimeZone(identifier: "UTC")!
        #expect(Timestamp.format(try Timestamp.parse("2026-11-26T14:30:00Z")) == "2026-11-26T14:30:00Z")
        #expect(Timestamp.format(try Timestamp.parse("2026-11-26T14:30:00+01:00")) == "2026-11-26T13:30:00Z")
        #expect(Timestamp.format(try Timestamp.parse("2026-11-26T14:30", timeZone: utc)) == "2026-11-26T14:30:00Z")
        let copenhagen = TimeZone(identifier: "Europe/Copenhagen")!
        #expect(Timestamp.format(try Timestamp.parse("2026-07-01T12:00", timeZone: copenhagen)) == "2026-07-01T10:00:00Z")
        #expect(Timestamp.format(try Timestamp.parse("2026-11-26", timeZone: utc)) == "2026-11-26T00:00:00Z")
        for bad in ["yesterday", "2026-13-01", "2026-11-26T25:00", "2026-11-26T10:00+99:00", "2026-11-26X"] {
            #expect(throws: DomainError.self, "\(bad)") { try Timestamp.parse(bad) }
        }
        #expect(Timestamp.civilDate(of: try Timestamp.parse("2026-11-26T23:30:00Z")) == CivilDate(year: 2026, month: 11, day: 27))
    }
}

import Foundation
