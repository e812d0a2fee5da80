import ClientKit
import Foundation
import GRDB
import ShelterDomain
import SyncCore
import Testing
import TestSupport

@Suite struct ReplicaTests {
    @Test func admissionPlacesHerAndTheBoardShowsIt() throws {
        let replica = try Replica.inMemory(rooms: 9)
        // Given an intake at night with a free room.
        let result = try replica.admit(Admission(name: "Anna Jensen", cpr: "0101901234", municipality: "Køge",
                                                 children: [.init(name: "Mia", cpr: "150815-4321")], room: 3), by: staff("mette"))
        // Then she is in room 3 with her child, and the other rooms are free.
        let board = try replica.roomBoard()
        #expect(board.capacity == 9 && board.occupied == 1)
        let room3 = try #require(board.rooms.first { $0.number == 3 })
        #expect(room3.status == .occupied && room3.stay == result.stay && room3.resident == "Anna Jensen" && room3.children == 1)
        #expect(board.rooms.filter { $0.status == .free }.count == 8)
        let record = try replica.resident(result.resident)
        #expect(record.cpr == "010190-1234", "CPR numbers are stored in the canonical form")
        #expect(record.children.first?.cpr == "150815-4321")
    }

    @Test func everyActionWritesItsChangeRecords() throws {
        let replica = try Replica.inMemory(rooms: 2)
        try replica.addStaff(name: "jonas", role: .socialWorker, by: staff("test"))
        let before = try replica.status().unsynced
        #expect(before == 2 * (TestStaff.leaders.count + 1) + 2, "the staff (the test leaders and jonas), the shelter key granted to each, and two rooms are one change each")
        let stay = try replica.admit(Admission(anonymous: true, alias: "Rose", municipality: "Roskilde",
                                               children: [.init(alias: "R1"), .init(alias: "R2")]), by: staff("mette"))
        // resident + 2 children + stay + the notification to her home municipality
        #expect(try replica.status().unsynced == before + 5)
        try replica.assign(stay: stay.stay, room: 1, by: staff("jonas"))
        try replica.discharge(stay: stay.stay, reason: "moved", by: staff("jonas"))
        let history = try replica.history(of: stay.stay)
        #expect(history.map(\.author) == ["jonas", "jonas", "mette"])
        #expect(try replica.notifications().map(\.kind) == [.admission, .discharge], "admission and discharge each notify")
        #expect(history.first?.columns.map(\.name) == ["discharge_reason", "discharged_at", "status"])
        #expect(history.first?.columns.first?.value == nil, "a discharge reason is free text: hidden by default")
        #expect(try replica.history(of: stay.stay, showPersonal: true).first?.columns.first?.value == "moved")
        let counters = try replica.history().map(\.counter)
        #expect(counters == counters.sorted(by: >) && Set(counters).count == counters.count, "dots are unique and grow")
    }

    @Test func roomRulesHoldOffline() throws {
        let replica = try Replica.inMemory(rooms: 3)
        let first = try replica.admit(Admission(name: "A", municipality: "Køge", room: 1), by: staff("s"))
        let second = try replica.admit(Admission(name: "B", municipality: "Køge"), by: staff("s"))
        #expect(try replica.stays().first { $0.id == second.stay }?.status == .awaitingRoom)
        // Occupied, missing and out-of-service rooms are refused.
        #expect(throws: ReplicaError.self) { try replica.assign(stay: second.stay, room: 1, by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.assign(stay: second.stay, room: 7, by: staff("s")) }
        try replica.setRoom(2, inService: false, by: staff("s"))
        #expect(throws: ReplicaError.self) { try replica.assign(stay: second.stay, room: 2, by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.setRoom(1, inService: false, by: staff("s")) }
        #expect(try replica.roomBoard().capacity == 2)
        // A move, then a discharge frees the room.
        try replica.assign(stay: first.stay, room: 3, by: staff("s"))
        try replica.assign(stay: second.stay, room: 1, by: staff("s"))
        try replica.discharge(stay: first.stay, reason: "home", by: staff("s"))
        #expect(throws: ReplicaError.self) { try replica.discharge(stay: first.stay, reason: "again", by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.assign(stay: first.stay, room: 3, by: staff("s")) }
        let board = try replica.roomBoard()
        #expect(board.rooms.map(\.status) == [.occupied, .outOfService, .free])
        #expect(try replica.stays().count == 1 && replica.stays(includeDischarged: true).count == 2)
    }

    @Test func anonymityIsEnforced() throws {
        let replica = try Replica.inMemory()
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(anonymous: true, name: "Eva", alias: "E", municipality: "Køge"), by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(anonymous: true, cpr: "010190-1234", alias: "E", municipality: "Køge"), by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(anonymous: true, alias: "E", municipality: "Køge", children: [.init(name: "Kid")]), by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(anonymous: true, municipality: "Køge"), by: staff("s")) }
        let stay = try replica.admit(Admission(anonymous: true, alias: "E", municipality: "Køge"), by: staff("s"))
        #expect(throws: ReplicaError.self) { try replica.setResident(stay.resident, fields: [("name", "Eva")], by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.setResident(stay.resident, fields: [("cpr", "010190-1234")], by: staff("s")) }
        try replica.setResident(stay.resident, fields: [("phone", "+45 11 22 33 44"), ("interpreter", "yes"), ("language", "ar")], by: staff("s"))
        let record = try replica.resident(String(stay.resident.prefix(7)))
        #expect(record.name == nil && record.cpr == nil && record.phone == "+45 11 22 33 44" && record.interpreter)
        #expect(throws: ReplicaError.self) { try replica.setResident(stay.resident, fields: [("colour", "red")], by: staff("s")) }
    }

    /// A text may hold 64 KiB: one byte more is refused at the source, clearly, and nothing is written.
    @Test func aTextOverSixtyFourKiBIsRefusedAtTheSource() throws {
        let replica = try Replica.inMemory()
        let admitted = try replica.admit(Admission(name: "Anna", municipality: "Køge"), by: staff("mette"))
        let counter = try replica.syncState().counter
        try replica.setResident(admitted.resident, fields: [("notes", String(repeating: "ø", count: 32 * 1024))], by: staff("mette"))
        #expect(try replica.resident(admitted.resident).notes?.utf8.count == 64 * 1024, "exactly 64 KiB fits")
        do {
            try replica.setResident(admitted.resident, fields: [("notes", String(repeating: "a", count: 64 * 1024 + 1))], by: staff("mette"))
            Issue.record("an oversized note was written")
        } catch let error as ReplicaError {
            #expect(error.code == .invalidArgument && error.message.contains("højst være 64 KiB") && error.message.contains("notes"))
            #expect(!error.message.contains("aaaa"), "the value is never repeated")
        }
        #expect(try replica.syncState().counter == counter + 1)
    }

    @Test func idPrefixes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("r.replica")
        let replica = try Replica.create(at: path, rooms: 2)
        let stay = try replica.admit(Admission(name: "A", municipality: "Køge"), by: staff("s"))
        #expect(try replica.resolveStay(String(stay.stay.prefix(6))) == stay.stay)
        #expect(try replica.resolveStay(stay.stay.uppercased()) == stay.stay)
        #expect(throws: ReplicaError.self) { try replica.resolveStay(String(stay.stay.prefix(5))) }
        #expect(throws: ReplicaError.self) { try replica.resolveStay("zzzzzzzz") }
        // Two stays sharing a prefix make it ambiguous.
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "INSERT INTO stays (id, resident) VALUES ('abcdef0000000000000000000000000a', 'x'), ('abcdef0000000000000000000000000b', 'x')")
        }
        do {
            _ = try replica.resolveStay("abcdef")
            Issue.record("expected an ambiguous prefix")
        } catch let error as ReplicaError {
            #expect(error.code == .ambiguousID)
        }
    }

    @Test func idAndCounterPersistAndFilesAreMode0600() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("front.replica")
        let created = try Replica.create(at: path, rooms: 3)
        try created.admit(Admission(name: "A", municipality: "Køge"), by: staff("s"))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        if FileManager.default.fileExists(atPath: path + "-wal") {
            #expect(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.posixPermissions] as? Int == 0o600)
        }
        let reopened = try Replica.open(at: path)
        #expect(reopened.id == created.id)
        try reopened.admit(Admission(name: "B", municipality: "Køge"), by: staff("s"))
        let counters = try reopened.history().map(\.counter)
        let expected = UInt64(2 * TestStaff.leaders.count) + 3 + 3 + 3
        #expect(counters.first == expected,
                "the counter continued after reopening (the test leaders and their key grants, 3 rooms, 2 admissions of resident, stay and notification)")
        #expect(try ReplicaInspector(path: path).problems() == [])
    }

    @Test func refusesWhatIsNotAReplicaAndTouchesNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        func code(_ body: () throws -> Void) -> ReplicaError.Code? {
            do { try body(); return nil } catch let error as ReplicaError { return error.code } catch { return nil }
        }
        #expect(code { _ = try Replica.open(at: dir.file("missing.replica")) } == .fileNotFound)
        let text = dir.file("notes.txt")
        try Data("not a database at all, just some text".utf8).write(to: URL(fileURLWithPath: text))
        #expect(code { _ = try Replica.open(at: text) } == .notAReplica)
        #expect(fileBytes(text) == Data("not a database at all, just some text".utf8))
        let other = dir.file("other.sqlite")
        try DatabaseQueue(path: other).write { db in try db.execute(sql: "CREATE TABLE x (a); INSERT INTO x VALUES (1)") }
        let before = fileBytes(other)
        #expect(code { _ = try Replica.open(at: other) } == .notAReplica)
        #expect(fileBytes(other) == before)
        #expect(code { _ = try Replica.create(at: text, rooms: 9) } == .fileExists)
        #expect(fileBytes(text) == Data("not a database at all, just some text".utf8))
        #expect(code { _ = try Replica.open(at: dir.path) } == .notAReplica)
    }

    @Test func refusedActionsChangeNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("r.replica")
        let replica = try Replica.create(at: path, rooms: 2)
        let stay = try replica.admit(Admission(name: "A", municipality: "Køge", room: 1), by: staff("s"))
        let before = try ReplicaInspector(path: path).snapshot()
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(name: "B", municipality: "Køge", room: 1), by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(name: "B", cpr: "310290-1234", municipality: "Køge"), by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.setResident(stay.resident, fields: [("phone", "1"), ("documented", "perhaps")], by: staff("s")) }
        #expect(throws: ReplicaError.self) { try replica.admit(Admission(name: "B", municipality: "Køge"), by: staff(" ")) }
        #expect(try ReplicaInspector(path: path).snapshot() == before)
    }
}
