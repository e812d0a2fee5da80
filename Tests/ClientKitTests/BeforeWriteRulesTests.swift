@testable import ClientKit
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
