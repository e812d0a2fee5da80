import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// A hostile or faulty workstation, through the real server (TLS, real certificates): each change
/// it forges is refused as a whole transaction with a stable code, no other workstation ever
/// receives it, and an honest workstation keeps syncing throughout.
@Suite struct HostileStaffTests {
    struct World {
        let server: TestServer
        let mallory: Replica
        let honest: Replica

        static func start() async throws -> World {
            let server = try await TestServer.start()
            try server.directory.store().addStaff(name: "Gerda", role: .houseGuard, keys: TestStaff.keys("Gerda"), sealedKeys: TestStaff.sealed("Gerda"))
            try server.directory.store().storeGrants([TestStaff.grant("Gerda")])
            return World(server: server, mallory: try await server.workstation("mallory"), honest: try await server.workstation("honest"))
        }

        /// What a modified client writes around the workstation's own checks: one change, sealed
        /// by `signer` as `author`, straight into the replica's SQLite file.
        func forge(on replica: Replica, _ table: String, _ row: String, _ values: [String: SyncValue], author: String,
                   signer: some TransactionSigner) async throws {
            try await DatabaseQueue(path: replica.path).write { db in
                let store = SyncStore(schema: ShelterSchema.schema)
                try store.write(db, table: table, rowID: row, values: values, author: author,
                                wallMilliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
                try store.sealTail(db, signer: signer)
            }
        }

        /// Syncs `replica`, then the honest workstation; returns the codes the server refused with.
        func syncAndRefusals(_ replica: Replica) async throws -> [String] {
            let before = Set(try replica.history().filter { $0.state == "rejected" }.map(\.counter))
            _ = try await replica.sync()
            #expect(try await honest.sync().pushed >= 0, "the honest workstation keeps syncing")
            return try replica.history().filter { $0.state == "rejected" && !before.contains($0.counter) }
                .compactMap { $0.rejection?.components(separatedBy: ":").first }
        }

        /// Whether the server or the honest workstation holds `sql`'s rows.
        func anywhere(_ sql: String) throws -> Bool {
            try ReplicaInspector(path: server.directory.storePath).count(sql) > 0 || ReplicaInspector(path: honest.path).count(sql) > 0
        }
    }

    @Test func aHouseGuardWhoMakesHerselfLeaderInHerSQLiteIsRefused() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        let stay = try world.mallory.admit(Admission(name: "Anna", municipality: "Køge", room: 1), by: staff("Gerda")).stay
        // Offline, as herself: refused by her own workstation.
        #expect(throws: ReplicaError.self) { try world.mallory.decide(stay: stay, eligible: true, by: staff("Gerda")) }
        // She edits her role in the replica file; now her workstation lets her decide.
        try await DatabaseQueue(path: world.mallory.path).write { db in
            try db.execute(sql: "UPDATE staff SET role = 'leader' WHERE id = 'gerda'")
        }
        let decision = try world.mallory.decide(stay: stay, eligible: true, by: staff("Gerda"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["notPermitted"])
        #expect(try !world.anywhere("SELECT COUNT(*) FROM decisions WHERE id = '\(decision)'"))
        #expect(try ReplicaInspector(path: world.server.directory.storePath).count("SELECT COUNT(*) FROM stays WHERE id = '\(stay)'") == 1,
                "her own transactions within her role were taken")
        try await world.server.stop()
    }

    @Test func anOutboxChangeRewrittenToUndoAnonymityIsRefused() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        let rose = try world.mallory.admit(Admission(anonymous: true, alias: "Rose", municipality: "Roskilde"), by: staff("s"))
        _ = try await world.mallory.sync()
        _ = try await world.honest.sync()
        // A modified client, signing properly: anonymous → named.
        try await world.forge(on: world.mallory, "residents", rose.resident,
                              ["anonymous": .integer(0), "name": .text("Rose Hansen"), "cpr": .text("010190-1234")], author: "s", signer: staff("s"))
        // A child with a name moved under her.
        let anna = try world.mallory.admit(Admission(name: "Anna", municipality: "Køge", children: [.init(name: "Mia Jensen")]), by: staff("s"))
        let child = try #require(try world.mallory.resident(anna.resident).children.first?.id)
        try await world.forge(on: world.mallory, "children", child, ["resident": .text(rose.resident)], author: "s", signer: staff("s"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["anonymity", "anonymity"])
        // An honest change signed, then its values rewritten in the outbox: the signature no longer matches.
        try world.mallory.setResident(rose.resident, fields: [("language", "da")], by: staff("s"))
        try await DatabaseQueue(path: world.mallory.path).write { db in
            let seq = try #require(try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM sync_log WHERE state = 0"))
            var writer = BinaryWriter()
            writer.write(varint: 2)
            writer.write(varint: UInt64(ShelterSchema.residents.column(named: "anonymous")!.code))
            writer.write(value: .integer(0))
            writer.write(varint: UInt64(ShelterSchema.residents.column(named: "name")!.code))
            writer.write(value: .text("Rose Hansen"))
            try db.execute(sql: "UPDATE sync_log SET vals = ? WHERE seq = ?", arguments: [Data(writer.bytes), seq])
        }
        #expect(try await world.syncAndRefusals(world.mallory) == ["badSignature"])
        #expect(try !world.anywhere("SELECT COUNT(*) FROM residents WHERE name = 'Rose Hansen' OR cpr = '010190-1234'"))
        #expect(try !world.anywhere("SELECT COUNT(*) FROM children WHERE resident = '\(rose.resident)'"))
        #expect(try world.mallory.verify().invalid.count == 1, "verify finds the rewritten change")
        try await world.server.stop()
    }

    @Test func forgedSignaturesAndRemovedStaffAreRefused() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        // Signed with s's key but claiming to be mette's.
        struct Impostor: TransactionSigner {
            let signer = "mette", author = "mette"
            func sign(_ digest: [UInt8]) throws -> [UInt8] { try staff("s").sign(digest) }
        }
        try await world.forge(on: world.mallory, "rates", "2031", ["year": .integer(2031), "amount": .integer(9999)], author: "mette", signer: Impostor())
        #expect(try await world.syncAndRefusals(world.mallory) == ["badSignature"])
        // Someone who is not staff at all.
        try await world.forge(on: world.mallory, "rates", "2032", ["year": .integer(2032), "amount": .integer(1)], author: "eve", signer: staff("eve"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["unknownSigner"])
        // Signed by mette, authored as s.
        try await world.forge(on: world.mallory, "rates", "2033", ["year": .integer(2033), "amount": .integer(1)], author: "s", signer: staff("mette"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["invalidChange"])
        // One flipped byte in a stored signature.
        try world.mallory.setRate(year: 2034, øre: 300_000, by: staff("mette"))
        let invalidBefore = try world.mallory.verify().invalid.count
        #expect(invalidBefore == 2, "the impostor's and eve's forgeries")
        try await DatabaseQueue(path: world.mallory.path).write { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT seq, seal FROM sync_log WHERE state = 0 AND seal IS NOT NULL ORDER BY seq DESC LIMIT 1"))
            var seal = [UInt8](row["seal"] as Data)
            seal[seal.count - 1] ^= 0x01
            try db.execute(sql: "UPDATE sync_log SET seal = ? WHERE seq = ?", arguments: [Data(seal), row["seq"] as Int64])
        }
        #expect(try world.mallory.verify().invalid.count == invalidBefore + 1, "one flipped byte shows up in verify")
        #expect(try await world.syncAndRefusals(world.mallory) == ["badSignature"])
        #expect(try !world.anywhere("SELECT COUNT(*) FROM rates"))

        // A leader removes Gerda at the honest workstation; Gerda's workstation has not heard yet.
        try world.honest.removeStaff(name: "Gerda", by: staff("mette"))
        _ = try await world.honest.sync()
        let late = try world.mallory.admit(Admission(name: "Late", municipality: "Køge"), by: staff("Gerda"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["staffRemoved", "staffRemoved", "staffRemoved"])
        #expect(try !world.anywhere("SELECT COUNT(*) FROM stays WHERE id = '\(late.stay)'"))
        // Now it knows: she cannot log in there, nor write.
        #expect(throws: ReplicaError.self) { try world.mallory.unlock(name: "Gerda", passphrase: TestStaff.passphrase("Gerda")) }
        #expect(throws: ReplicaError.self) { try world.mallory.admit(Admission(name: "Later", municipality: "Køge"), by: staff("Gerda")) }
        // Every signature the server holds checks out; so does the honest workstation's log.
        #expect(try world.server.directory.store().verify().invalid.isEmpty)
        #expect(try world.honest.verify().invalid.isEmpty)
        try await world.server.stop()
    }

    @Test func keysSealedBelowTheShelterScryptCostAreRefused() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        // Gerda re-seals her own keys (her passphrase, as `passwd` does) with a cheap scrypt: a
        // stolen copy of any replica would then give up her passphrase fast.
        let cheap = try TestStaff.keys("Gerda").sealed(passphrase: "a short-lived one", staffID: "gerda", cost: .init(logN: 10, r: 8, p: 1))
        try await world.forge(on: world.mallory, "staff", "gerda", ["sealed_keys": .text(cheap)], author: "Gerda", signer: staff("Gerda"))
        try await world.forge(on: world.mallory, "staff", "gerda", ["sealed_keys": .text("scrypt:15:8:1:not-a-key")], author: "Gerda", signer: staff("Gerda"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["invalidValue", "invalidValue"])
        // Only a leader gives the shelter's key: a grant from a house guard (which could lock a
        // colleague out with a key that does not open) is refused.
        let fake = try RecordKeys.grant(RecordKeys.ShelterKey(), to: TestStaff.keys("Jonas").agreementKey, staffID: "jonas")
        let fakeID = try #require(RecordKeys.keyID(ofGrant: fake))
        try await world.forge(on: world.mallory, "key_grants", "jonas/\(fakeID)",
                              ["staff": .text("jonas"), "shelter_key": .text(fakeID), "sealed": .text(fake)], author: "Gerda", signer: staff("Gerda"))
        #expect(try await world.syncAndRefusals(world.mallory) == ["notPermitted"])
        #expect(try ReplicaInspector(path: world.server.directory.storePath).count("SELECT COUNT(*) FROM staff WHERE id = 'gerda' AND sealed_keys LIKE 'scrypt:15:%'") == 1)
        // At the shelter's cost (at a workstation whose copy of her row is not the forged one), her new passphrase is taken.
        try world.honest.changePassphrase(old: TestStaff.passphrase("Gerda"), new: "a new passphrase of hers", by: staff("Gerda"))
        #expect(try await world.syncAndRefusals(world.honest) == [])
        _ = try world.honest.unlock(name: "Gerda", passphrase: "a new passphrase of hers")
        #expect(try ReplicaInspector(path: world.server.directory.storePath).count("SELECT COUNT(*) FROM staff WHERE id = 'gerda' AND sealed_keys LIKE 'scrypt:15:%'") == 1)
        try await world.server.stop()
    }

    /// A modified client writes records that contradict themselves, around every check of the
    /// workstation: the server refuses each, and nobody else ever holds it.
    @Test func recordsThatContradictThemselvesAreRefusedByTheServer() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        let now = Date()
        let anna = try world.mallory.admit(Admission(name: "Anna", municipality: "Køge", room: 1, admittedAt: now.addingTimeInterval(-86_400)), by: staff("s"))
        let expulsion = try world.mallory.requireMoveOut(stay: anna.stay, reason: "vold", houseRules: true, by: staff("s"))
        let rose = try world.mallory.admit(Admission(anonymous: true, alias: "Rose", municipality: "Greve"), by: staff("s"))
        let refusal = try world.mallory.decide(stay: rose.stay, eligible: false, reason: "notTargetGroup", by: staff("s"))
        let complaint = try world.mallory.addComplaint(decision: refusal, written: true, text: "uenig", by: staff("s"))
        try world.mallory.reviewComplaint(complaint, upheld: true, by: staff("s"))
        #expect(try await world.syncAndRefusals(world.mallory) == [], "the honest path goes through")
        let today = Timestamp.civilDate(of: now).description
        let forged: [(String, String, [String: SyncValue], String)] = [
            // An admission in the future, a discharge before the admission.
            ("stays", "f0", ["resident": .text(anna.resident), "admitted_at": .text(Timestamp.format(now.addingTimeInterval(3 * 86_400))), "status": .text("awaitingRoom")], "invalidValue"),
            ("stays", anna.stay, ["discharged_at": .text(Timestamp.format(now.addingTimeInterval(-3 * 86_400)))], "invalidValue"),
            // A municipality that is none of the 98, and "unknown" for a named woman.
            ("residents", anna.resident, ["municipality": .text("ukendt")], "invalidValue"),
            ("residents", anna.resident, ["municipality": .text("Atlantis")], "invalidValue"),
            // A complaint about no decision, about a house-rules expulsion, received before its decision.
            ("complaints", "f1", ["stay": .text(anna.stay), "decision_on": .text(today), "received_on": .text(today), "status": .text("received")], "invalidValue"),
            ("complaints", "f2", ["stay": .text(anna.stay), "decision": .text(expulsion), "received_on": .text(today), "status": .text("received")], "notPermitted"),
            ("complaints", "f3", ["stay": .text(rose.stay), "decision": .text(refusal), "received_on": .text("2020-01-01"), "status": .text("received")], "invalidValue"),
            // The upheld complaint forwarded after all, and a decision overturned with no upheld complaint.
            ("complaints", complaint, ["status": .text("forwarded"), "forwarded_on": .text(today)], "invalidChange"),
            ("decisions", expulsion, ["status": .text("overturned")], "invalidChange"),
            // A decision dated before the stay began, a meeting held next year.
            ("decisions", "f4", ["stay": .text(anna.stay), "kind": .text("eligibility"), "outcome": .text("eligible"), "decided_on": .text("2020-01-01")], "invalidValue"),
            ("meetings", "f5", ["held_on": .text(Timestamp.civilDate(of: now.addingTimeInterval(365 * 86_400)).description)], "invalidValue"),
            // A status written as a number, or cleared; a decision made overturned; what is written once moved.
            ("complaints", complaint, ["status": .integer(1)], "invalidValue"),
            ("decisions", "f6", ["stay": .text(anna.stay), "kind": .text("eligibility"), "outcome": .text("eligible"), "decided_on": .text(today), "status": .text("overturned")], "invalidValue"),
            ("complaints", complaint, ["stay": .text(anna.stay)], "invalidChange"),
            ("decisions", refusal, ["outcome": .text("eligible")], "invalidChange"),
            ("stays", anna.stay, ["admitted_at": .text(Timestamp.format(now.addingTimeInterval(-10 * 86_400)))], "invalidChange"),
            ("stays", anna.stay, ["admitted_at": .integer(9_999_999_999)], "invalidValue"),
            ("notifications", anna.notification, ["sent_at": .text(today)], "invalidValue"),
        ]
        for (table, row, values, _) in forged {
            try await world.forge(on: world.mallory, table, row.count == 2 ? row + String(repeating: "0", count: 30) : row, values, author: "s", signer: staff("s"))
        }
        let refused = try await world.syncAndRefusals(world.mallory)
        #expect(refused.sorted() == forged.map(\.3).sorted(), "\(refused)")
        // The forged ids exactly: a random id of an honest row may begin with "f" too.
        let forgedID = { (prefix: String) in prefix + String(repeating: "0", count: 30) }
        #expect(try !world.anywhere("SELECT COUNT(*) FROM stays WHERE id = '\(forgedID("f0"))'"))
        #expect(try !world.anywhere("SELECT COUNT(*) FROM complaints WHERE id IN ('\(forgedID("f1"))', '\(forgedID("f2"))', '\(forgedID("f3"))') OR status = 'forwarded'"))
        #expect(try !world.anywhere("SELECT COUNT(*) FROM decisions WHERE id IN ('\(forgedID("f4"))', '\(forgedID("f6"))')"))
        #expect(try !world.anywhere("SELECT COUNT(*) FROM residents WHERE municipality IN ('ukendt', 'Atlantis')"))
        #expect(try !world.anywhere("SELECT COUNT(*) FROM decisions WHERE id = '\(expulsion)' AND status = 'overturned'"))
        #expect(try world.anywhere("SELECT COUNT(*) FROM decisions WHERE id = '\(refusal)' AND status = 'overturned'"), "the upheld complaint's decision is overturned")
        try await world.server.stop()
    }

    @Test func valuesNoActionWritesAreRefusedInEveryTable() async throws {
        let world = try await World.start()
        defer { world.server.remove() }
        let anna = try world.mallory.admit(Admission(name: "Anna", municipality: "Køge", room: 1), by: staff("s"))
        let forged: [(String, [String: SyncValue])] = [
            ("goals", ["stay": .text(anna.stay), "text": .text("x"), "status": .text("bogus")]),
            ("offers", ["stay": .text(anna.stay), "person": .text("woman"), "hours": .real(-5)]),
            ("offers", ["stay": .text(anna.stay), "person": .text("nobody-at-all"), "hours": .real(1)]),
            ("notifications", ["stay": .text(anna.stay), "kind": .text("invented")]),
            ("meetings", ["held_on": .text("yesterday")]),
            ("stays", ["resident": .text(anna.resident), "status": .text("active"), "room": .integer(42)]),
            ("conflicts", ["kind": .text("field"), "tbl": .text("residents"), "row": .text(anna.resident), "status": .text("open")]),
            // Personal data in the clear: a number, and a text dressed as ciphertext is fine only when well formed.
            ("residents", ["municipality": .text("Køge"), "phone": .integer(20304050)]),
            ("residents", ["municipality": .text("Køge"), "name": .text("Sofie Dobbelt")]),
        ]
        for (index, (table, values)) in forged.enumerated() {
            try await world.forge(on: world.mallory, table, "f\(index)0000000000000000000000000000000", values, author: "s", signer: staff("s"))
        }
        let refused = try await world.syncAndRefusals(world.mallory)
        #expect(refused.sorted() == Array(repeating: "invalidValue", count: 8) + ["notPermitted"], "\(refused)")
        // The forged ids exactly: a random id of Anna's own rows may begin with "f" too.
        for (index, (table, _)) in forged.enumerated() {
            #expect(try !world.anywhere("SELECT COUNT(*) FROM \(table) WHERE id = 'f\(index)0000000000000000000000000000000'"), "\(table)")
        }
        #expect(try ReplicaInspector(path: world.honest.path).count("SELECT COUNT(*) FROM stays WHERE id = '\(anna.stay)'") == 1, "the honest admission went through")
        try await world.server.stop()
    }
}
