@testable import ClientKit
import Crypto
import Foundation
import GRDB
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// The workstation checks a transaction with the server's rules against the rows as they stood
/// *before* it, as the server will: a rule that compares before and after holds offline too, and a
/// member's role is the one she had when the transaction began. (No command writes these; a
/// modified ClientKit could, through the same `perform` every action uses.)
@Suite struct BeforeWriteRulesTests {
    func replica() throws -> Replica {
        let replica = try Replica.inMemory()
        try replica.addStaff(name: "Jonas", role: .socialWorker, by: staff("setup"))
        return replica
    }

    @Test func anAnonymousResidentIsNeverNamedAgain() throws {
        let replica = try replica()
        let resident = try replica.admit(Admission(anonymous: true, alias: "A", municipality: "Køge", room: 1), by: staff("Jonas")).resident
        let before = try replica.status().unsynced
        do {
            try replica.perform(signedBy: staff("Jonas")) { db in
                try replica.write(db, ShelterSchema.residents, resident, ["anonymous": .integer(0), "name": .text("Anna")], author: "Jonas")
            }
            Issue.record("an anonymous resident was named")
        } catch let error as ReplicaError {
            #expect(error.domain?.code == .anonymityViolation, "\(error)")
        }
        #expect(try replica.status().unsynced == before, "nothing was written")
        let record = try replica.resident(resident)
        #expect(record.anonymous && record.name == nil)
        #expect(try replica.verify().invalid.isEmpty)
    }

    @Test func aRoleIsTheOneSheHadWhenTheTransactionBegan() throws {
        let replica = try replica()
        let before = try replica.status().unsynced
        do {
            try replica.perform(signedBy: staff("Jonas")) { db in
                try replica.write(db, ShelterSchema.staff, "jonas", ["role": .text(StaffRole.leader.rawValue)], author: "Jonas")
                try replica.write(db, ShelterSchema.rates, "2031", ["year": .integer(2031), "amount": .integer(9999)], author: "Jonas")
            }
            Issue.record("a social worker made herself leader and set a rate")
        } catch let error as ReplicaError {
            #expect(error.domain?.code == .notPermitted, "\(error)")
        }
        #expect(try replica.status().unsynced == before, "nothing was written")
        #expect(try replica.staffMember("jonas")?.role == .socialWorker)
    }

    @Test func keysSealedMoreCheaplyThanTheShelterAllowsAreRefused() throws {
        let replica = try replica()
        let cheap = try TestStaff.keys("Jonas").sealed(passphrase: "a short-lived one", staffID: "jonas", cost: .init(logN: 12, r: 8, p: 1))
        #expect(throws: ReplicaError.self) {
            try replica.perform(signedBy: staff("Jonas")) { db in
                try replica.write(db, ShelterSchema.staff, "jonas", ["sealed_keys": .text(cheap)], author: "Jonas")
            }
        }
        _ = try replica.unlock(name: "Jonas", passphrase: TestStaff.passphrase("Jonas"))
        #expect(throws: ReplicaError.self) { try replica.unlock(name: "Jonas", passphrase: "a short-lived one") }
    }

    @Test func aTransactionThatWritesARowTwiceIsCheckedAgainstTheFirstImage() throws {
        let replica = try replica()
        let resident = try replica.admit(Admission(anonymous: true, alias: "A", municipality: "Køge", room: 1), by: staff("Jonas")).resident
        // Named in the first write, anonymous again in the second: the row ends as it began, but the
        // transaction carries a name for an anonymous resident and is refused whole.
        #expect(throws: ReplicaError.self) {
            try replica.perform(signedBy: staff("Jonas")) { db in
                try replica.write(db, ShelterSchema.residents, resident, ["anonymous": .integer(0), "name": .text("Anna")], author: "Jonas")
                try replica.write(db, ShelterSchema.residents, resident, ["anonymous": .integer(1), "name": .null], author: "Jonas")
            }
        }
        #expect(try replica.history(of: resident, showPersonal: true).allSatisfy { $0.columns.allSatisfy { $0.value != "Anna" } })
    }
}

/// Personal data under the keys of DESIGN §4: ciphertext in the file, plain text to a session.
@Suite struct RecordKeyTests {
    @Test func aRemovedMemberCannotReadAnyResidentFromACopyMadeAfterHerRemoval() throws {
        let dir = try TemporaryDirectory("keys")
        defer { dir.remove() }
        let path = dir.file("desk.replica")
        let replica = try Replica.create(at: path, rooms: 3)
        try replica.addStaff(name: "Jonas", role: .socialWorker, by: staff("mette"))
        let before = try replica.admit(Admission(name: "Anna Before", cpr: "120388-1234", municipality: "Køge"), by: staff("mette")).resident
        let oldWrapping = try #require(try ReplicaInspector(path: path).rows("SELECT key FROM residents WHERE id = '\(before)'")[0][0])
        try replica.removeStaff(name: "Jonas", by: staff("mette"))
        let after = try replica.admit(Admission(name: "Bodil After", cpr: "010190-4321", municipality: "Køge"), by: staff("mette")).resident
        #expect(try replica.resident(after).name == "Bodil After", "a member of staff reads her")
        // Both CPR indexes are under the new key, as both residents' keys are: the old key (his)
        // computes no index to guess a number through.
        for row in try ReplicaInspector(path: path).rows("SELECT key, cpr_index FROM residents WHERE id IN ('\(before)', '\(after)')") {
            let wrapped = try #require(row[0])
            let keyID = try #require(RecordKeys.keyID(ofWrapped: wrapped))
            #expect(keyID != RecordKeys.keyID(ofWrapped: oldWrapping) && row[1]?.hasPrefix(RecordKeys.indexPrefix + keyID + ":") == true, "\(row)")
        }

        // Jonas keeps his keys (his passphrase) and takes a copy of the file.
        let copy = dir.file("copy.replica")
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        if FileManager.default.fileExists(atPath: path + "-wal") { try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "-wal") }
        let stolen = try Replica.open(at: copy)
        stolen.useSession(staff("Jonas"))
        #expect(try stolen.resident(before).name == nil, "the removal wrapped her key again, under the new shelter key")
        #expect(try stolen.resident(after).name == nil, "a resident admitted after his removal stays closed to him")
        #expect(try replica.resident(before).name == "Anna Before", "the staff who remain read her")
        // Her key's old wrapping is gone from the log (its digest kept) and from every byte of the files.
        #expect(try replica.verify().invalid.isEmpty)
        let history = try replica.history(of: before)
        #expect(history.contains { $0.erased && $0.columns.contains { $0.name == "key" && $0.value == Replica.erasedMark } }, "\(history)")
        // Without any session nothing opens, and the file holds no name.
        let locked = try Replica.open(at: copy)
        #expect(try locked.resident(before).name == nil && locked.resident(after).cpr == nil)
        for file in [copy, copy + "-wal", path, path + "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            #expect(bytes.range(of: Data("Bodil".utf8)) == nil && bytes.range(of: Data("Anna Before".utf8)) == nil, "\(file)")
            #expect(bytes.range(of: Data(String(oldWrapping.split(separator: ":").last!).utf8)) == nil, "\(file) holds her key's old wrapping")
        }
    }

    @Test func typedTextThatLooksLikeCiphertextIsEncryptedToo() throws {
        let dir = try TemporaryDirectory("disguise")
        defer { dir.remove() }
        let replica = try Replica.create(at: dir.file("r.replica"), rooms: 1)
        let resident = try replica.admit(Admission(name: "Anna", municipality: "Køge"), by: staff("mette")).resident
        let disguised = "ss1:hiding at her sister's in Aarhus:" + String(repeating: "A", count: 40)
        try replica.setResident(resident, fields: [("notes", disguised)], by: staff("mette"))
        #expect(try replica.resident(resident).notes == disguised, "shown as typed")
        #expect(try ReplicaInspector(path: replica.path).count("SELECT COUNT(*) FROM residents WHERE notes LIKE '%Aarhus%'") == 0, "stored encrypted")
        let stored = try #require(try replica.history(of: resident).first { $0.columns.contains { $0.name == "notes" } })
        #expect(stored.columns.first { $0.name == "notes" }?.value == nil, "a personal value, hidden in history")
        let raw = try replica.history(of: resident, showPersonal: true).first { $0.columns.contains { $0.name == "notes" } }
        #expect(raw?.columns.first { $0.name == "notes" }?.value == disguised)
    }

    /// A key made inside a transaction that rolls back was never stored: it is not used afterwards
    /// (a resident from before version 5, whose first personal write makes her key).
    @Test func aKeyMadeInARolledBackTransactionIsForgotten() throws {
        let dir = try TemporaryDirectory("rollback")
        defer { dir.remove() }
        let replica = try Replica.create(at: dir.file("r.replica"), rooms: 1)
        let resident = try replica.admit(Admission(anonymous: true, alias: "Old", municipality: "Køge"), by: staff("mette")).resident
        // As a resident written before version 5: no key of her own.
        try DatabaseQueue(path: replica.path).write { db in try db.execute(sql: "UPDATE residents SET key = NULL WHERE id = ?", arguments: [resident]) }
        let fresh = try Replica.open(at: replica.path)
        struct Stop: Error {}
        #expect(throws: (any Error).self) {
            try fresh.perform(signedBy: staff("mette")) { db in
                try fresh.write(db, ShelterSchema.residents, resident, ["phone": .text("1")], author: "mette")
                throw Stop()
            }
        }
        try fresh.setResident(resident, fields: [("phone", "2")], by: staff("mette"))
        let reader = try Replica.open(at: replica.path)
        reader.useSession(staff("mette"))
        #expect(try reader.resident(resident).phone == "2", "her key was stored with the write that used it")
    }

    @Test func cellsOpenOnlyInTheirOwnPlace() throws {
        let key = SymmetricKey(size: .bits256)
        let sealed = try RecordKeys.seal("Anna", key: key, reference: "r1", table: "residents", row: "r1", column: "name")
        #expect(try RecordKeys.open(cell: sealed, key: key, table: "residents", row: "r1", column: "name") == "Anna")
        // Moved to another row or column, or opened with another key: refused.
        #expect(throws: DomainError.self) { try RecordKeys.open(cell: sealed, key: key, table: "residents", row: "r2", column: "name") }
        #expect(throws: DomainError.self) { try RecordKeys.open(cell: sealed, key: key, table: "residents", row: "r1", column: "notes") }
        #expect(throws: DomainError.self) { try RecordKeys.open(cell: sealed, key: SymmetricKey(size: .bits256), table: "residents", row: "r1", column: "name") }
        // A grant opens only with its member's key.
        let shelterKey = RecordKeys.ShelterKey()
        let grant = try RecordKeys.grant(shelterKey, to: TestStaff.keys("mette").agreementKey, staffID: "mette")
        #expect(try staff("mette").openGrant(grant) == shelterKey)
        #expect(throws: (any Error).self) { try staff("jonas").openGrant(grant) }
    }
}
