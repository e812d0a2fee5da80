import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// The server checks a pushed batch's signatures as it arrives, ahead of the merge: that may
/// spare the merge the work, never change its verdict.
@Suite struct SignatureLookaheadTests {
    @Test func aSignatureCheckedAheadIsTakenOnceAndNeverStandsForAnother() throws {
        let signer = staff("s")
        let digest = Array(repeating: UInt8(7), count: 32), other = Array(repeating: UInt8(8), count: 32)
        let signature = try signer.sign(digest)
        let key = TestStaff.keys("s").signingKey
        let checks = SignatureChecks()
        checks.check(signature, of: digest, signingKey: key)
        var forged = signature
        forged[0] ^= 1
        checks.check(forged, of: digest, signingKey: key)
        #expect(!checks.verify(forged, of: digest, signingKey: key), "a failed check is not kept")
        #expect(!checks.verify(signature, of: other, signingKey: key), "nor does a success stand for another digest")
        #expect(!checks.verify(signature, of: digest, signingKey: TestStaff.keys("mette").signingKey), "or another key")
        #expect(checks.verify(signature, of: digest, signingKey: key))
        #expect(checks.verify(signature, of: digest, signingKey: key), "taken once, then verified again: still valid")
    }

    @Test func aForgedTransactionCheckedAheadIsStillRefusedAndTheRestMerged() async throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let server = try ServerStore.create(at: folder.file("server.db"), rooms: 3)
        try server.addTestStaff()
        let id = ReplicaID.random()
        try server.enroll(name: "w", replicaID: id, serial: "w")
        // Three signed transactions of a leader's settings; the second's signature flipped by hand.
        let queue = try DatabaseQueue()
        var migrator = DatabaseMigrator()
        let store = SyncStore(schema: ShelterSchema.schema)
        store.registerMigrations(in: &migrator)
        try migrator.migrate(queue)
        let wall = UInt64(Date().timeIntervalSince1970 * 1000)
        let changes = try await queue.write { db -> [CellChange] in
            try store.initialize(db, replicaID: id, createdAt: Timestamp.format(Date()))
            var changes: [CellChange] = []
            // The forged one (the second) writes another row than the others: nothing builds on it.
            for (n, (row, value)) in [("name", "Krisecenter A"), ("address", "Vej 1, 4600 Køge"), ("name", "Krisecenter C")].enumerated() {
                try store.write(db, table: "settings", rowID: row, values: ["value": .text(value)], author: "s", wallMilliseconds: wall + UInt64(n))
                changes += try store.sealTail(db, signer: staff("s"))
            }
            return changes
        }
        #expect(changes.count == 3)
        var pushed = changes
        pushed[1].seal!.signature[0] ^= 1
        let checks = SignatureChecks()
        await server.preverify(pushed, checks: checks)
        let result = try await server.mergePush(from: id, changes: pushed, signatures: checks)
        #expect(result.merged == 2 && result.rejected.map(\.counter) == [2] && result.rejected.first?.code == "badSignature", "\(result)")
        // And the same batch without the checks made ahead: the same verdict.
        let again = try ServerStore.create(at: folder.file("again.db"), rooms: 3)
        try again.addTestStaff()
        try again.enroll(name: "w", replicaID: id, serial: "w")
        let plain = try await again.mergePush(from: id, changes: pushed)
        #expect(plain.merged == result.merged && plain.rejected == result.rejected)
    }
}
