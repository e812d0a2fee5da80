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

    /// The digests `preverify` makes of a batch are taken by the merge of that very batch (its
    /// storage, not an equal copy), once: a batch with the same dots and other content never gets
    /// them, so the log's digests (the hash chain) are always of what was merged.
    @Test func digestsMadeAheadServeOnlyTheBatchTheyWereMadeOf() async throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let server = try ServerStore.create(at: folder.file("server.db"), rooms: 3)
        try server.addTestStaff()
        let id = ReplicaID.random()
        try server.enroll(name: "w", replicaID: id, serial: "w")
        let queue = try DatabaseQueue()
        var migrator = DatabaseMigrator()
        let store = SyncStore(schema: ShelterSchema.schema)
        store.registerMigrations(in: &migrator)
        try migrator.migrate(queue)
        let wall = UInt64(Date().timeIntervalSince1970 * 1000)
        let changes = try await queue.write { db -> [CellChange] in
            try store.initialize(db, replicaID: id, createdAt: Timestamp.format(Date()))
            try store.write(db, table: "settings", rowID: "name", values: ["value": .text("Krisecenter A")], author: "s", wallMilliseconds: wall)
            try store.write(db, table: "settings", rowID: "address", values: ["value": .text("Vej 1")], author: "s", wallMilliseconds: wall + 1)
            return try store.sealTail(db, signer: staff("s"))
        }
        #expect(changes.count == 2)

        let checks = SignatureChecks()
        let digests = changes.map(LogHash.of)
        checks.keep(digests, of: changes)
        var copy = changes
        copy.append(changes[0])
        copy.removeLast()
        #expect(copy == changes)
        #expect(checks.takeDigests(of: copy) == nil, "an equal batch in other storage gets nothing")
        #expect(checks.takeDigests(of: changes) == digests)
        #expect(checks.takeDigests(of: changes) == nil, "taken once")

        // Checked ahead; then a batch with the same dots and another value pushed with those checks
        // (to another server: this one would take it as a fork of the batch that follows).
        await server.preverify(changes, checks: checks)
        var tampered = changes
        tampered[0].values["value"] = .text("Krisecenter B")
        let other = try ServerStore.create(at: folder.file("other.db"), rooms: 3)
        try other.addTestStaff()
        try other.enroll(name: "w", replicaID: id, serial: "w")
        let refused = try await other.mergePush(from: id, changes: tampered, signatures: checks)
        #expect(refused.merged == 0 && refused.rejected.first?.code == "badSignature", "\(refused)")
        // The batch itself, its digests still kept: merged, its log's digests those of its changes.
        let merged = try await server.mergePush(from: id, changes: changes, signatures: checks)
        #expect(merged.merged == 2 && merged.rejected.isEmpty, "\(merged)")
        try server.close()
        let logged = try await DatabaseQueue(path: folder.file("server.db")).read { db in
            try Row.fetchAll(db, sql: "SELECT l.counter, l.digest FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE p.replica_id = ? ORDER BY l.counter",
                             arguments: [id.description]).map { (UInt64($0["counter"] as Int64), [UInt8]($0["digest"] as Data)) }
        }
        #expect(logged.map(\.0) == changes.map(\.dot.counter))
        #expect(logged.map(\.1) == digests.map(\.bytes), "the log keeps the digests of what was merged")
    }
}
