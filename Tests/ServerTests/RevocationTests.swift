@testable import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// A stolen workstation: its replica holds grants of the shelter key to the staff who worked there
/// (and maybe a session still open, or a passphrase on a note). Revoking it retires every shelter
/// key the server knows; the next sync of a leader's session makes a new one, and from then on no
/// resident — earlier or later — opens with the old key from any copy made afterwards.
@Suite struct RevocationTests {
    /// The hex part of `cpr`'s blind index under `key`: what to search the files for.
    func indexDigits(_ cpr: String, under key: RecordKeys.ShelterKey) -> String {
        String(RecordKeys.cprIndex(cpr, under: key).split(separator: ":").last!)
    }

    @Test(.timeLimit(.minutes(3))) func revokingAWorkstationRotatesTheShelterKeyAtTheNextLeaderSession() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let office = try await server.workstation("office")
        let stolen = try await server.workstation("stolen")
        let old = TestStaff.shelterKey
        let annaCPR = "120388-1234", bodilCPR = "010190-4321", carlaCPR = "150575-2468"
        let anna = try office.admit(Admission(name: "Anna Before", cpr: annaCPR, municipality: "Køge", room: 1), by: staff("Jonas")).resident
        _ = try await office.sync()
        _ = try await stolen.sync()
        let annaOldWrapping = try #require(try ReplicaInspector(path: office.path).rows("SELECT key FROM residents WHERE id = '\(anna)'")[0][0])
        #expect(RecordKeys.keyID(ofWrapped: annaOldWrapping) == old.id)

        // The laptop is stolen: the admin revokes it. The server retires the key, signed by itself.
        try server.directory.revoke(name: "stolen")
        #expect(try ReplicaInspector(path: server.directory.storePath).count("SELECT COUNT(*) FROM retired_keys WHERE id = '\(old.id)' AND reason = 'workstation stolen revoked'") == 1)
        await #expect(throws: (any Error).self) { _ = try await stolen.sync() }

        // The night goes on without a leader: Jonas admits Bodil, under the retired key (the only one he holds).
        #expect(try !office.status().keyRotationDue)
        _ = try await office.sync()
        #expect(try office.status().keyRotationDue, "status says a leader's sync is due")
        let bodil = try office.admit(Admission(name: "Bodil Night", cpr: bodilCPR, municipality: "Køge", room: 2), by: staff("Jonas")).resident
        _ = try await office.sync()

        // The leader's session syncs: a new shelter key, granted to everyone, both residents' keys
        // wrapped again under it and their CPR indexes computed again; the old ones leave every log.
        #expect(try office.rewrapResidentKeys(by: staff("mette")) == 2)
        #expect(try office.rewrapResidentKeys(by: staff("mette")) == 0, "nothing is left to do")
        #expect(try !office.status().keyRotationDue)
        _ = try await office.sync(session: staff("mette"))
        let carla = try office.admit(Admission(name: "Carla After", cpr: carlaCPR, municipality: "Køge", room: 3), by: staff("Jonas")).resident
        _ = try await office.sync()
        let other = try await server.workstation("reception")

        for replica in [office, other] {
            replica.useSession(staff("Jonas"))
            #expect(try replica.resident(anna).name == "Anna Before" && replica.resident(bodil).name == "Bodil Night"
                    && replica.resident(carla).name == "Carla After", "the staff read every resident")
            #expect(try replica.verify().invalid.isEmpty)
        }
        #expect(try server.directory.store().verify().invalid.isEmpty)
        // What the old key opens in any copy made now: no resident's key, no CPR index to guess through.
        for path in [server.directory.storePath, office.path, other.path] {
            for row in try ReplicaInspector(path: path).rows("SELECT id, key, cpr_index FROM residents") {
                let id = try #require(row[0]), wrapped = try #require(row[1]), index = try #require(row[2])
                #expect(RecordKeys.keyID(ofWrapped: wrapped) != old.id, "\(path): \(id) is still wrapped under the retired key; anna \(anna) bodil \(bodil) carla \(carla); \((try? office.history(of: id).map { "\($0.author) \($0.state) \($0.columns.filter { $0.name == "key" }.map { String(($0.value ?? "-").prefix(24)) })" }) ?? [])")
                #expect((try? RecordKeys.unwrap(wrapped, residentID: id, with: old)) == nil)
                #expect(!index.contains(old.id), "\(path): \(id)'s index is still under the retired key")
            }
            let secrets = [String(annaOldWrapping.split(separator: ":").last!)] + [annaCPR, bodilCPR, carlaCPR].map { indexDigits($0, under: old) }
            for file in [path, path + "-wal"] {
                guard let bytes = FileManager.default.contents(atPath: file) else { continue }
                for secret in secrets {
                    #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds \(secret.prefix(12))…, which the retired key opens")
                }
            }
        }
        // The same woman is still found: a second admission of Anna is caught offline at the desk.
        #expect(throws: ReplicaError.self) {
            _ = try other.admit(Admission(name: "Anna Again", cpr: annaCPR, municipality: "Køge"), by: staff("Jonas"))
        }
    }

    /// The server is restored from a backup taken before the revocation: the journal revokes the
    /// laptop again at once, but the store's writer was rewound with it (a change the server wrote
    /// now would reuse a counter the workstations already hold), so the keys are retired when the
    /// next run begins, under its new writer.
    @Test func aRevocationGivenBackToARestoredServerRetiresTheKeysAtTheNextRun() throws {
        let folder = try TemporaryDirectory("revoke-restore")
        defer { folder.remove() }
        let directory = try ServerDirectory.initialize(at: folder.file("srv"), rooms: 3)
        try directory.store().addTestStaff()
        _ = try directory.enroll(name: "laptop", bundlePath: folder.file("laptop.bundle"))
        _ = try directory.enroll(name: "garden", bundlePath: folder.file("garden.bundle"))
        let running = try directory.storeForServing()
        let backup = folder.file("before.db")
        _ = try running.backup(to: backup)
        try directory.revoke(name: "laptop")
        #expect(try running.retiredKeyCount() == 1, "retired at once, under the running writer")
        try running.close()

        let restored = try directory.restore(from: backup)
        #expect(restored.revoked == 1, "the journal revokes it again")
        #expect(try directory.store().retiredKeyCount() == 0, "not under the rewound writer")
        // The admin revokes another before starting the server: the same wait.
        try directory.revoke(name: "garden")
        #expect(try directory.store().retiredKeyCount() == 0, "not under the rewound writer either")
        let next = try directory.storeForServing()
        #expect(try next.retiredKeyCount() == 1, "the next run retires the keys")
        #expect(try next.verify().invalid.isEmpty)
        let again = try directory.storeForServing()
        #expect(try again.retiredKeyCount() == 1, "once")
        #expect(try ReplicaInspector(path: directory.storePath).count("SELECT COUNT(*) FROM sync_log WHERE tbl = \(ShelterSchema.retiredKeys.code)") == 1)
    }

    /// A rotation the server refuses (its new key was granted to a member removed meanwhile at
    /// another workstation): the refused key is never used — not for the residents it wrapped here,
    /// not for the next admission — and the next sync puts them under the key the others hold.
    @Test(.timeLimit(.minutes(3))) func aRefusedRotationLeavesNoResidentUnderAKeyOnlyItsMakerHolds() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let office = try await server.workstation("office")
        let desk = try await server.workstation("desk")
        _ = try await server.workstation("laptop")
        let anna = try office.admit(Admission(name: "Anna", cpr: "120388-1234", municipality: "Køge", room: 1), by: staff("Jonas")).resident
        _ = try await office.sync()
        try server.directory.revoke(name: "laptop")
        _ = try await office.sync()
        _ = try await desk.sync()
        // At the desk a leader removes Jonas (a rotation of its own, which the server takes) …
        try desk.removeStaff(name: "Jonas", by: staff("s"))
        _ = try await desk.sync()
        // … while the office, not having pulled it, rotates for the revocation and pushes first.
        #expect(try office.rewrapResidentKeys(by: staff("mette")) >= 1)
        let rotated = try #require(try ReplicaInspector(path: office.path).rows("SELECT key FROM residents WHERE id = '\(anna)'")[0][0])
        let refusedKey = try #require(RecordKeys.keyID(ofWrapped: rotated))
        let pushed = try await office.sync(pull: false)
        #expect(pushed.rejected >= 2, "the new key's grants (one to Jonas, removed) and the wrapping under it are refused")
        // The next syncs: the refused key is set aside, Anna goes under the key the desk made.
        _ = try await office.sync(session: staff("mette"))
        #expect(try office.rewrapResidentKeys(by: staff("mette")) >= 1)
        _ = try await office.sync()
        let bodil = try office.admit(Admission(name: "Bodil", municipality: "Køge", room: 2), by: staff("mette")).resident
        let after = try await office.sync()
        #expect(after.rejected == 0)
        _ = try await desk.sync()
        for replica in [office, desk] {
            for row in try ReplicaInspector(path: replica.path).rows("SELECT id, key FROM residents") {
                #expect(RecordKeys.keyID(ofWrapped: row[1] ?? "") != refusedKey, "\(row[0] ?? "") is under the refused key")
            }
        }
        desk.useSession(staff("s"))
        #expect(try desk.resident(anna).name == "Anna" && desk.resident(bodil).name == "Bodil", "another leader reads both")
        #expect(try !office.status().keyRotationDue && !desk.status().keyRotationDue)
    }

    /// A rotation over more residents than a batch holds goes in transactions of `rotationChunk`;
    /// a transaction longer than the outbox slice a push reads still goes whole.
    @Test(.timeLimit(.minutes(3))) func aLargeRotationAndALargeTransactionReachTheServer() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let office = try await server.workstation("office")
        _ = try await server.workstation("laptop")
        let count = Replica.rotationChunk + 30
        try office.perform(signedBy: staff("mette")) { db in
            for index in 0..<count {
                try office.write(db, ShelterSchema.residents, "r\(index)", ["municipality": .text("Køge"), "name": .text("N\(index)")], author: "mette")
            }
        }
        // One transaction of 1,400 house meetings: more than a batch (1,000) and its slice (1,256).
        try office.perform(signedBy: staff("mette")) { db in
            for index in 0..<1_400 {
                try office.write(db, ShelterSchema.meetings, "m\(index)", ["held_on": .text("2026-11-27")], author: "mette")
            }
        }
        let first = try await office.sync()
        #expect(first.rejected == 0 && first.pushed == count + 1_400, "\(first)")
        try server.directory.revoke(name: "laptop")
        _ = try await office.sync()
        #expect(try office.rewrapResidentKeys(by: staff("mette")) == count)
        let history = try office.history().filter { $0.table == "residents" && $0.state == "unsynced" }
        #expect(history.count == count)
        let second = try await office.sync()
        #expect(second.rejected == 0 && second.pushed >= count, "\(second)")
        #expect(try ReplicaInspector(path: server.directory.storePath).count("SELECT COUNT(*) FROM meetings") == 1_400)
        #expect(try !office.status().keyRotationDue)
    }
}
