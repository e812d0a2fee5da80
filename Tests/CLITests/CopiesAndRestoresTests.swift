import Foundation
import GRDB
import Testing
import TestSupport

/// Copies and restores, through real processes (`shelter server run` on port 0, real certificates,
/// every step a `shelter` command as the admin and staff would type it): a server restored from
/// last night's backup, a copied replica file, a workstation restored from its own backup, a
/// second replica from one bundle, and a server that moved. Nothing a workstation still holds is lost.
@Suite(.serialized) struct CopiesAndRestoresTests {
    final class World {
        let dir: TemporaryDirectory
        let srv: String
        var server: ServerProcess

        init() throws {
            dir = try TemporaryDirectory("copies")
            srv = dir.file("srv")
            #expect(try ShelterProcess.run(["server", "init", "--dir", srv, "--rooms", "9"]).status == 0)
            #expect(try ShelterProcess.addServerStaff(srv).status == 0)
            server = try ServerProcess.start(directory: srv)
            // The leader's first login makes the shelter's key; every workstation made later pulls
            // her grant of it at its first sync.
            let keys = try workstation("keys")
            try ensureLogin(keys)
            try shelter("sync", "--replica", keys)
        }

        /// The replica files a session is open on (a session belongs to one file; a copy needs its own).
        var sessions: Set<String> = []

        /// Logs the tester in on `path` unless her session there is open.
        func ensureLogin(_ path: String) throws {
            let status = try ShelterProcess.run(["status", "--replica", path, "--json"])
            guard status.status == 0, (try status.json()["replica"] as? String) != nil else { return }
            guard !sessions.contains(path) else { return }
            #expect(try ShelterProcess.login(path).status == 0, "login on \(path)")
            sessions.insert(path)
        }

        var address: String { "127.0.0.1:\(server.port)" }

        @discardableResult
        func shelter(_ arguments: String..., expect status: Int32? = 0) throws -> ShelterProcess.Result {
            // Writes, and reads that show personal data, need a session on that file.
            let writes: Set<String> = ["admit", "resident", "rescue", "assign", "discharge", "conflicts", "stays"]
            if writes.contains(arguments[0]) || writes.contains(arguments.prefix(2).joined(separator: " ")),
               let index = arguments.firstIndex(of: "--replica"), index + 1 < arguments.count {
                try ensureLogin(arguments[index + 1])
            }
            let result = try ShelterProcess.run(arguments)
            if let status { #expect(result.status == status, "shelter \(arguments.joined(separator: " ")): \(result)") }
            return result
        }

        /// Enrolls a workstation, makes its replica and syncs it once; returns the replica's path.
        @discardableResult
        func workstation(_ name: String, sync: Bool = true) throws -> String {
            try shelter("server", "enroll", "--dir", srv, "--name", name, "--out", dir.file("\(name).bundle"))
            let path = dir.file("\(name).replica")
            try shelter("init", "--replica", path, "--bundle", dir.file("\(name).bundle"), "--server", address)
            if sync { try shelter("sync", "--replica", path) }
            return path
        }

        func admit(_ name: String, on path: String, room: Int? = nil) throws {
            if let room {
                try shelter("admit", "--replica", path, "--name", name, "--alias", name, "--municipality", "Køge", "--room", String(room))
            } else {
                try shelter("admit", "--replica", path, "--name", name, "--alias", name, "--municipality", "Køge")
            }
        }

        /// How many residents of this name a replica (or the server's store) holds: by her alias,
        /// the same word (her name is ciphertext; the server cannot read it).
        func count(_ name: String, on path: String) throws -> Int {
            try ReplicaInspector(path: path).count("SELECT COUNT(*) FROM residents WHERE alias = '\(name)' AND name LIKE 'ss1:%'")
        }

        var store: String { srv + "/server.db" }

        func replicas() throws -> [String: [String: Any]] {
            let json = try shelter("server", "replicas", "--dir", srv, "--json").json()
            let replicas = try #require(json["replicas"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: replicas.map { ($0["name"] as! String, $0) })
        }

        /// A file copied the way an admin would copy it with the program closed (its WAL, if any, too).
        func copy(_ source: String, to destination: String) throws {
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: source + suffix) {
                try? FileManager.default.removeItem(atPath: destination + suffix)
                try FileManager.default.copyItem(atPath: source + suffix, toPath: destination + suffix)
            }
            try? FileManager.default.removeItem(atPath: destination + "-shm")
            // Another file at that path: the session of the one it replaced has ended.
            sessions.remove(destination)
        }

        func remove() {
            server.stop()
            dir.remove()
        }
    }

    @Test(.timeLimit(.minutes(3))) func aServerRestoredFromLastNightsBackupIsHealedByItsWorkstations() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a"), b = try world.workstation("b"), c = try world.workstation("c")
        // Given last night's backup, taken while the server runs.
        let backup = world.dir.file("last-night.db")
        let made = try world.shelter("server", "backup", "--dir", world.srv, "--to", backup)
        #expect(made.stdout.contains("log head 11"), "9 rooms, the leader and her grant of the shelter key: \(made)")
        #expect(try world.shelter("server", "backup", "--dir", world.srv, "--to", backup, expect: 1).stderr.contains("already exists"))
        // This morning a admits Anna and d admits Dina; both sync (acknowledged). c pulls them; then
        // d's laptop is stolen: its admission now exists only on c.
        try world.admit("Anna", on: a)
        try world.shelter("sync", "--replica", a)
        let d = try world.workstation("d")
        try world.admit("Dina", on: d, room: 4)
        try world.shelter("sync", "--replica", d)
        try world.shelter("sync", "--replica", c)
        #expect(try world.count("Anna", on: c) == 1 && world.count("Dina", on: c) == 1)

        // When the server's disk dies and the admin restores last night's backup.
        world.server.kill9()
        let refused = try world.shelter("server", "restore", "--dir", world.srv, "--from", world.dir.file("missing.db"), expect: 1)
        #expect(refused.stderr.contains("no backup file"))
        let restored = try world.shelter("server", "restore", "--dir", world.srv, "--from", backup)
        #expect(restored.stdout.contains("log head 11") && restored.stdout.contains("replaced store is kept"), "\(restored)")
        #expect(try world.count("Anna", on: world.store) == 0, "the backup predates the admission")
        world.server = try ServerProcess.start(directory: world.srv, port: world.server.port)
        // And b admits Beate after the restore and syncs first: the restored server gives her the
        // log positions that a and c believe they already have.
        try world.admit("Beate", on: b)
        try world.shelter("sync", "--replica", b)

        // Then a's next sync gives Anna back and pulls again from the last common position.
        let healed = try world.shelter("sync", "--replica", a, "--json").json()
        #expect(healed["recovered"] as? Int == 3, "Anna's resident, stay and notification: \(healed)")
        #expect(healed["resumedFrom"] as? Int == 11, "\(healed)")
        #expect(healed["pulled"] as? Int ?? 0 >= 3, "Beate reached a")
        // c gives back Dina, whom only it still holds; everyone catches up.
        let relayed = try world.shelter("sync", "--replica", c)
        #expect(relayed.stdout.contains("gave back 3 changes"), "Dina's resident, stay and notification: \(relayed)")
        for path in [b, a, c] { try world.shelter("sync", "--replica", path) }
        for path in [a, b, c, world.store] {
            for name in ["Anna", "Beate", "Dina"] {
                #expect(try world.count(name, on: path) == 1, "\(name) once on \(path)")
            }
            #expect(try ReplicaInspector(path: path).count("SELECT COUNT(*) FROM stays WHERE room = 4 AND status = 'active'") == 1)
        }
        #expect(try ReplicaInspector(path: a).domainSnapshot() == ReplicaInspector(path: world.store).domainSnapshot())
        #expect(try ReplicaInspector(path: c).domainSnapshot() == ReplicaInspector(path: world.store).domainSnapshot())
        let health = try world.replicas()
        #expect(health["a"]?["recoveredChanges"] as? Int == 3 && health["c"]?["recoveredChanges"] as? Int == 3)
        #expect(health.values.allSatisfy { $0["state"] as? String != "forked" })
        // A later sync has nothing to heal.
        let calm = try world.shelter("sync", "--replica", a, "--json").json()
        #expect(calm["recovered"] as? Int == 0 && calm["resumedFrom"] is NSNull && calm["pulled"] as? Int == 0)
    }

    @Test(.timeLimit(.minutes(3))) func aCopiedReplicaIsRefusedKeepsItsAdmissionAndIsRescued() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a"), b = try world.workstation("b")
        // Given a's replica file copied to a second machine.
        let copy = world.dir.file("a-copy.replica")
        try world.copy(a, to: copy)
        // When both copies admit a woman and sync, the original first.
        try world.admit("Anna", on: a, room: 2)
        try world.admit("Clara", on: copy, room: 2)
        try world.shelter("sync", "--replica", a)
        let refused = try world.shelter("sync", "--replica", copy, expect: 1)
        // Then the copy is refused in plain words, and keeps its admission unsynced.
        #expect(refused.stderr.contains("another copy of it already sent the server other changes") && refused.stderr.contains("replicaForked"),
                "\(refused)")
        #expect(refused.stderr.contains("shelter rescue --from \(copy)"))
        #expect(!refused.stdout.contains("pushed"))
        let status = try world.shelter("status", "--replica", copy, "--json").json()
        #expect(status["unsynced"] as? Int == 3)
        #expect((status["lastError"] as? [String: Any])?["code"] as? String == "replicaForked")
        #expect(try world.replicas()["a"]?["state"] as? String == "forked")
        #expect(try world.count("Clara", on: world.store) == 0)

        // Later the copy cannot reach the server at all: it still counts as refused.
        try world.shelter("set-server", "127.0.0.1:1", "--replica", copy)
        #expect(try world.shelter("sync", "--replica", copy, expect: 1).stderr.contains("cannot reach"))
        // The admin enrolls a new workstation; its replica syncs, then rescues the copy's records.
        let rescuer = try world.workstation("a2")
        let rescued = try world.shelter("rescue", "--from", copy, "--replica", rescuer, "--json").json()
        #expect(rescued["rescued"] as? Int == 3 && rescued["refused"] as? Int == 0, "\(rescued)")
        #expect(rescued["alreadyOnServer"] as? Int == 0, "the copy had made no change of its own before it was copied")
        let again = try world.shelter("rescue", "--from", copy, "--replica", rescuer, "--json").json()
        #expect(again["rescued"] as? Int == 0 && again["rescuedBefore"] as? Int == 3, "a second rescue re-issues nothing")
        let sent = try world.shelter("sync", "--replica", rescuer, "--json").json()
        #expect(sent["pushed"] as? Int == 3 && sent["conflicts"] as? Int == 1, "Clara's placement in room 2 meets Anna's: \(sent)")
        for path in [a, b] { try world.shelter("sync", "--replica", path) }
        for path in [a, b, rescuer, world.store] {
            #expect(try world.count("Anna", on: path) == 1 && world.count("Clara", on: path) == 1, "\(path)")
            #expect(try ReplicaInspector(path: path).count("SELECT COUNT(*) FROM stays WHERE room = 2 AND status = 'active'") == 1,
                    "Anna was confirmed first and keeps room 2")
        }
        // The copy's file is untouched by the rescue: still refused, still holding its changes.
        #expect(try world.shelter("status", "--replica", copy, "--json").json()["unsynced"] as? Int == 3)
    }

    /// A rescue checks each of the copy's transactions against the shelter's rules over what the
    /// server holds now: a complaint the copy upheld, which the original meanwhile maintained and
    /// forwarded, cannot go back. That transaction is left out whole and named (the copy keeps it);
    /// the rest is rescued.
    @Test(.timeLimit(.minutes(3))) func aRescueLeavesOutWhatTheRulesRefuseNowAndRescuesTheRest() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        try world.ensureLogin(a)
        let stay = try #require(try world.shelter("admit", "--replica", a, "--name", "Dora", "--alias", "Dora", "--municipality", "Køge", "--json").json()["stay"] as? String)
        try world.shelter("decide", stay, "--not-eligible", "--reason", "notTargetGroup", "--replica", a)
        let decision = try #require((try world.shelter("decisions", "--stay", stay, "--json", "--replica", a).json()["decisions"] as? [[String: Any]])?.first?["id"] as? String)
        try world.shelter("complaint", "add", decision, "--written", "uenig", "--replica", a)
        let complaint = try #require((try world.shelter("complaints", "--json", "--replica", a).json()["complaints"] as? [[String: Any]])?.first?["id"] as? String)
        try world.shelter("sync", "--replica", a)
        // Given a's file copied; the original maintains and forwards the complaint and syncs.
        let copy = world.dir.file("a-copy.replica")
        try world.copy(a, to: copy)
        try world.shelter("complaint", "review", complaint, "--maintained", "--replica", a)
        try world.shelter("complaint", "forwarded", complaint, "--replica", a)
        try world.shelter("sync", "--replica", a)
        // The copy upholds it, and admits another woman; its sync is refused.
        try world.ensureLogin(copy)
        try world.shelter("complaint", "review", complaint, "--upheld", "--replica", copy)
        try world.admit("Edith", on: copy)
        try world.shelter("sync", "--replica", copy, expect: 1)
        // The rescue leaves out the upheld complaint, with the rule's reason, and rescues Edith.
        let rescuer = try world.workstation("r")
        let rescued = try world.shelter("rescue", "--from", copy, "--replica", rescuer, "--json").json()
        let leftOut = try #require(rescued["leftOut"] as? [[String: Any]])
        #expect(leftOut.count == 1 && (leftOut.first?["reason"] as? String ?? "").contains("complaint \(complaint)")
                && (leftOut.first?["changes"] as? [Int])?.isEmpty == false, "\(rescued)")
        #expect((rescued["rescued"] as? Int ?? 0) >= 3, "Edith's admission: \(rescued)")
        let words = try world.shelter("rescue", "--from", copy, "--replica", rescuer)
        #expect(words.stdout.contains("left out: ") && words.stdout.contains("would break a rule now") && words.stdout.contains(copy), "\(words)")
        let sent = try world.shelter("sync", "--replica", rescuer, "--json").json()
        #expect((sent["rejected"] as? Int) == 0 && (sent["pushed"] as? Int ?? 0) >= 3, "\(sent)")
        #expect(try world.count("Edith", on: world.store) == 1)
        #expect(try ReplicaInspector(path: world.store).rows("SELECT status FROM complaints WHERE id = '\(complaint)'") == [["forwarded"]])
        // The copy's file still holds what was left out.
        #expect(try ReplicaInspector(path: copy).rows("SELECT status FROM complaints WHERE id = '\(complaint)'") == [["upheld"]])
    }

    @Test(.timeLimit(.minutes(3))) func aWorkstationRestoredFromItsOwnBackupIsRefusedKeptAndRescued() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a"), b = try world.workstation("b")
        try world.admit("Anna", on: a)
        try world.shelter("sync", "--replica", a)
        let backup = world.dir.file("a.backup")
        try world.copy(a, to: backup)
        try world.admit("Beate", on: a)
        try world.shelter("sync", "--replica", a)

        // Restored from the backup: a third admission reuses the numbers of the second.
        try world.copy(backup, to: a)
        try world.admit("Clara", on: a)
        let refused = try world.shelter("sync", "--replica", a, expect: 1)
        #expect(refused.stderr.contains("replicaForked"), "\(refused)")
        #expect(try world.shelter("status", "--replica", a, "--json").json()["unsynced"] as? Int == 3)

        // Restored again, and this time it only edits one field: its counter is still behind the
        // server's, so the refusal comes at hello.
        let behind = world.dir.file("a-behind.replica")
        try world.copy(backup, to: behind)
        let anna = try world.shelter("stays", "--replica", behind, "--json").json()
        let resident = try #require((anna["stays"] as? [[String: Any]])?.first?["resident"] as? String)
        try world.shelter("resident", "set", resident, "language=ar", "--replica", behind)
        let rewound = try world.shelter("sync", "--replica", behind, expect: 1)
        #expect(rewound.stderr.contains("replicaRewound"), "\(rewound)")

        // Both are rescued into a new workstation, and the old identity is retired.
        let rescuer = try world.workstation("a2")
        #expect(try world.shelter("rescue", "--from", a, "--replica", rescuer, "--json").json()["rescued"] as? Int == 3)
        let edit = try world.shelter("rescue", "--from", behind, "--replica", rescuer, "--json").json()
        #expect(edit["rescued"] as? Int == 1 && edit["alreadyOnServer"] as? Int == 3, "\(edit)")
        try world.shelter("server", "revoke", "--dir", world.srv, "--name", "a")
        try world.shelter("sync", "--replica", rescuer)
        try world.shelter("sync", "--replica", b)
        for path in [b, rescuer, world.store] {
            for name in ["Anna", "Beate", "Clara"] { #expect(try world.count(name, on: path) == 1, "\(name) once on \(path)") }
            #expect(try ReplicaInspector(path: path).count("SELECT COUNT(*) FROM residents WHERE language = 'ar'") == 1)
        }
        let health = try world.replicas()
        #expect(health["a"]?["state"] as? String == "revoked" && health["a"]?["forkedAt"] is String)
        #expect(try world.shelter("sync", "--replica", a, expect: 1).stderr.contains("revoked"))
    }

    /// A double fault: the server restored from a backup *and* a copy of a workstation made before
    /// its last admission, which the original sent with `--push-only` (its cursor stays inside the
    /// restored history) and the copy matches change for change (the server's counter for it ends
    /// where the original's did). The copy reaches the restored server first; the original, told by
    /// its hello's digest that the server holds something else under its last number, is refused as a
    /// fork — never told `ok` while its admission is gone — and is rescued.
    @Test(.timeLimit(.minutes(3))) func aRestoredServerAndACopiedReplicaNeverHideALostAdmission() throws {
        let world = try World()
        defer { world.remove() }
        let original = try world.workstation("o"), b = try world.workstation("b")
        try world.admit("First", on: original)
        try world.shelter("sync", "--replica", original)
        let backup = world.dir.file("backup.db")
        try world.shelter("server", "backup", "--dir", world.srv, "--to", backup)
        let copy = world.dir.file("o-image.replica")
        try world.copy(original, to: copy)
        try world.admit("Second", on: original)
        try world.shelter("sync", "--replica", original, "--push-only")
        world.server.kill9()
        try world.shelter("server", "restore", "--dir", world.srv, "--from", backup)
        world.server = try ServerProcess.start(directory: world.srv, port: world.server.port)
        try world.admit("Imposter", on: copy)
        try world.shelter("sync", "--replica", copy)
        let refused = try world.shelter("sync", "--replica", original, expect: 1)
        #expect(refused.stderr.contains("replicaForked"), "\(refused)")
        #expect(try world.replicas()["o"]?["state"] as? String == "forked")
        let rescuer = try world.workstation("o2")
        let rescued = try world.shelter("rescue", "--from", original, "--replica", rescuer, "--json").json()
        #expect(rescued["rescued"] as? Int == 3 && rescued["alreadyOnServer"] as? Int == 3, "\(rescued)")
        try world.shelter("sync", "--replica", rescuer)
        try world.shelter("sync", "--replica", b)
        for path in [b, rescuer, world.store] {
            for name in ["First", "Second", "Imposter"] { #expect(try world.count(name, on: path) == 1, "\(name) once on \(path)") }
        }
    }

    /// A restore never applies a write-ahead log left beside a missing store, never takes another
    /// shelter's backup into an empty directory, and a rescue takes only a refused copy of this shelter.
    @Test(.timeLimit(.minutes(3))) func leftoversForeignBackupsAndStrangersAreRefused() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        let backup = world.dir.file("backup.db")
        try world.shelter("server", "backup", "--dir", world.srv, "--to", backup)
        try world.admit("After", on: a)
        try world.shelter("sync", "--replica", a)
        world.server.kill9()
        #expect(FileManager.default.fileExists(atPath: world.store + "-wal"), "a killed server leaves its WAL")
        try FileManager.default.moveItem(atPath: world.store, toPath: world.store + ".moved-by-hand")
        let restored = try world.shelter("server", "restore", "--dir", world.srv, "--from", backup)
        #expect(restored.stdout.contains("log head 11"), "the stray WAL was not applied: \(restored)")
        #expect(try world.count("After", on: world.store) == 0)

        // A backup from before 0.5 (no CA fingerprint), into a directory that cannot tell its shelter.
        let old = world.dir.file("old.db")
        try FileManager.default.copyItem(atPath: backup, toPath: old)
        try DatabaseQueue(path: old).write { db in try db.execute(sql: "UPDATE server_identity SET ca_fingerprint = NULL") }
        let bare = world.dir.file("bare")
        try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: false)
        for file in ["ca.pem", "server.pem", "server-key.pem"] { try FileManager.default.copyItem(atPath: world.srv + "/" + file, toPath: bare + "/" + file) }
        #expect(try world.shelter("server", "restore", "--dir", bare, "--from", old, expect: 1).stderr.contains("--force"))
        try FileManager.default.copyItem(atPath: world.srv + "/registry.journal", toPath: bare + "/registry.journal")
        #expect(try world.shelter("server", "restore", "--dir", bare, "--from", old).stdout.contains("log head 11"), "the journal knows its shelter")

        // Another shelter's backup, into a directory holding this shelter's certificates only.
        let other = world.dir.file("other")
        try world.shelter("server", "init", "--dir", other)
        let foreign = world.dir.file("foreign.db")
        try world.shelter("server", "backup", "--dir", other, "--to", foreign)
        let fresh = world.dir.file("fresh")
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: false)
        for file in ["ca.pem", "server.pem", "server-key.pem"] { try FileManager.default.copyItem(atPath: world.srv + "/" + file, toPath: fresh + "/" + file) }
        #expect(try world.shelter("server", "restore", "--dir", fresh, "--from", foreign, expect: 1).stderr.contains("another shelter"))
        #expect(!FileManager.default.fileExists(atPath: fresh + "/server.db"))

        // Rescue refuses a standalone replica, another shelter's workstation, and one never refused.
        world.server = try ServerProcess.start(directory: world.srv, port: world.server.port)
        let rescuer = try world.workstation("a2")
        let standalone = world.dir.file("standalone.replica")
        try ShelterProcess.initStandalone(standalone, rooms: 2)
        #expect(try world.shelter("rescue", "--from", standalone, "--replica", rescuer, expect: 1).stderr.contains("standalone"))
        try world.shelter("server", "enroll", "--dir", other, "--name", "x", "--out", world.dir.file("x.bundle"))
        let stranger = world.dir.file("x.replica")
        try world.shelter("init", "--replica", stranger, "--bundle", world.dir.file("x.bundle"), "--server", world.address)
        #expect(try world.shelter("rescue", "--from", stranger, "--replica", rescuer, expect: 1).stderr.contains("another shelter"))
        let notRefused = try world.shelter("rescue", "--from", a, "--replica", rescuer, expect: 1)
        #expect(notRefused.stderr.contains("has not refused") && notRefused.stderr.contains("--force"), "\(notRefused)")
        #expect(try world.shelter("rescue", "--from", a, "--replica", rescuer, "--force", "--json").json()["rescued"] is Int)
    }

    @Test(.timeLimit(.minutes(3))) func aSecondReplicaFromOneBundleIsRefusedAtItsFirstPush() throws {
        let world = try World()
        defer { world.remove() }
        let first = try world.workstation("a")
        let second = world.dir.file("a-second.replica")
        try world.shelter("init", "--replica", second, "--bundle", world.dir.file("a.bundle"), "--server", world.address)
        try world.shelter("sync", "--replica", second)  // nothing to push: welcome
        try world.admit("Anna", on: first)
        try world.admit("Beate", on: second)
        try world.shelter("sync", "--replica", first)
        #expect(try world.shelter("sync", "--replica", second, expect: 1).stderr.contains("replicaForked"))
        #expect(try world.count("Beate", on: world.store) == 0 && world.count("Anna", on: world.store) == 1)
        #expect(try world.replicas()["a"]?["state"] as? String == "forked")
    }

    @Test(.timeLimit(.minutes(3))) func theAdminsMistakesAreRefusedAndTheRegistrySurvivesARestore() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        try world.workstation("b")
        let backup = world.dir.file("backup.db")
        try world.shelter("server", "backup", "--dir", world.srv, "--to", backup)
        // After the backup: c is enrolled, b is revoked (its laptop was stolen).
        let c = try world.workstation("c")
        try world.shelter("server", "revoke", "--dir", world.srv, "--name", "b")

        // A restore while the server runs, a file that is not a store, another shelter's backup.
        #expect(try world.shelter("server", "restore", "--dir", world.srv, "--from", backup, expect: 1).stderr.contains("a server is running"))
        world.server.stop()
        let before = fileBytes(world.store)
        let garbage = world.dir.file("garbage.db")
        FileManager.default.createFile(atPath: garbage, contents: Data(repeating: 0x41, count: 8192))
        #expect(try world.shelter("server", "restore", "--dir", world.srv, "--from", garbage, expect: 1).stderr.contains("not"))
        let other = world.dir.file("other")
        try world.shelter("server", "init", "--dir", other)
        let foreign = world.dir.file("foreign.db")
        try world.shelter("server", "backup", "--dir", other, "--to", foreign)
        #expect(try world.shelter("server", "restore", "--dir", world.srv, "--from", foreign, expect: 1).stderr.contains("another shelter"))
        #expect(fileBytes(world.store) == before, "a refused restore changes nothing")

        // The restore itself: c is enrolled again and b stays revoked.
        let restored = try world.shelter("server", "restore", "--dir", world.srv, "--from", backup)
        #expect(restored.stdout.contains("1 enrollment(s), 1 revocation(s)"), "\(restored)")
        world.server = try ServerProcess.start(directory: world.srv, port: world.server.port)
        let health = try world.replicas()
        #expect(health["b"]?["state"] as? String == "revoked" && health["c"] != nil)
        try world.shelter("sync", "--replica", c)
        try world.shelter("sync", "--replica", a)
        #expect(try world.shelter("sync", "--replica", world.dir.file("b.replica"), expect: 1).stderr.contains("revoked"))
    }

    @Test(.timeLimit(.minutes(3))) func aServerRestoredOnANewMachine() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        let backup = world.dir.file("backup.db")
        try world.shelter("server", "backup", "--dir", world.srv, "--to", backup)
        try world.admit("Anna", on: a)
        try world.shelter("sync", "--replica", a)
        world.server.kill9()
        // A new machine: an empty directory is refused; with the shelter's certificates and the
        // registry journal copied in, the backup is restored there.
        let fresh = world.dir.file("new-machine")
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        #expect(try world.shelter("server", "restore", "--dir", fresh, "--from", backup, expect: 1).stderr.contains("certificates"))
        for file in ["ca.pem", "server.pem", "server-key.pem", "registry.journal"] {
            try FileManager.default.copyItem(atPath: world.srv + "/" + file, toPath: fresh + "/" + file)
        }
        let restored = try world.shelter("server", "restore", "--dir", fresh, "--from", backup)
        #expect(!restored.stdout.contains("replaced store"), "nothing was replaced: \(restored)")
        world.server = try ServerProcess.start(directory: fresh)
        try world.shelter("set-server", world.address, "--replica", a)
        let healed = try world.shelter("sync", "--replica", a, "--json").json()
        #expect(healed["recovered"] as? Int == 3, "\(healed)")
        #expect(try world.count("Anna", on: fresh + "/server.db") == 1)
        #expect(try FileManager.default.attributesOfItem(atPath: fresh + "/server.db")[.posixPermissions] as? Int == 0o600)
    }

    /// A workstation's certificate renewed: the old one works until the new one is first used, and
    /// stops then; the admin sees when each certificate expires.
    @Test(.timeLimit(.minutes(3))) func aRenewedCertificateReplacesTheOldAtItsFirstUse() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        let before = try #require(world.replicas()["a"]?["certificateExpires"] as? String)
        let renewed = world.dir.file("a-renewed.bundle")
        #expect(try world.shelter("server", "renew", "--dir", world.srv, "--name", "a", "--out", renewed, "--ca-key", world.dir.file("nope"), expect: 1)
            .stderr.contains("no CA key"))
        #expect(try world.shelter("server", "renew", "--dir", world.srv, "--name", "ghost", "--out", renewed, expect: 1).stderr.contains("no workstation named ghost"))
        try world.shelter("server", "renew", "--dir", world.srv, "--name", "a", "--out", renewed)
        try world.shelter("sync", "--replica", a)  // the old certificate still works
        #expect(try world.shelter("renew", "--replica", a, "--bundle", world.dir.file("missing.bundle"), expect: 1).stderr.contains("cannot read"))
        let other = try world.workstation("b")
        #expect(try world.shelter("renew", "--replica", other, "--bundle", renewed, expect: 1).stderr.contains("not of this one"))
        #expect(try world.shelter("renew", "--replica", a, "--bundle", renewed).stdout.contains("installed"))
        try world.admit("Anna", on: a)
        #expect(try world.shelter("sync", "--replica", a, "--json").json()["pushed"] as? Int == 3, "records and outbox kept")
        let after = try #require(world.replicas()["a"]?["certificateExpires"] as? String)
        #expect(after >= before)
        let status = try world.shelter("status", "--replica", a, "--json").json()
        #expect(status["certificateExpires"] as? String == after)
        // The old certificate, installed again, no longer works.
        try world.shelter("renew", "--replica", a, "--bundle", world.dir.file("a.bundle"))
        #expect(try world.shelter("sync", "--replica", a, expect: 1).stderr.contains("renewed"))
        #expect(try world.shelter("server", "replicas", "--dir", world.srv, "--json").json()["serverCertificateExpires"] is String)
    }

    @Test(.timeLimit(.minutes(3))) func aServerThatMovedIsFoundAgain() throws {
        let world = try World()
        defer { world.remove() }
        let a = try world.workstation("a")
        try world.admit("Anna", on: a)
        // The server moves to another address (127.0.0.2: loopback on Linux, not in its certificate).
        world.server.stop()
        world.server = try ServerProcess.start(directory: world.srv, host: "127.0.0.2")
        try world.shelter("set-server", "127.0.0.2:\(world.server.port)", "--replica", a)
        let mismatch = try world.shelter("sync", "--replica", a, expect: 1)
        #expect(mismatch.stderr.contains("does not name 127.0.0.2") && mismatch.stderr.contains("shelter server certify --host 127.0.0.2"),
                "the old certificate does not name the new address, said in plain words: \(mismatch)")
        #expect(!mismatch.stderr.contains(".cc") && !mismatch.stderr.contains("BoringSSL"), "no raw TLS error: \(mismatch)")
        #expect(try world.shelter("server", "certify", "--dir", world.srv, "--host", "127.0.0.2", "--ca-key", world.dir.file("nope.pem"), expect: 1)
            .stderr.contains("no CA key"))
        let issued = try world.shelter("server", "certify", "--dir", world.srv, "--host", "127.0.0.2")
        #expect(issued.stdout.contains("127.0.0.2") && issued.stdout.contains("restart"))
        world.server.stop()
        world.server = try ServerProcess.start(directory: world.srv, host: "127.0.0.2")
        try world.shelter("set-server", "127.0.0.2:\(world.server.port)", "--replica", a)
        #expect(try world.shelter("sync", "--replica", a, "--json").json()["pushed"] as? Int == 3, "identity, data and outbox unchanged")
        #expect(try world.shelter("set-server", "nowhere", "--replica", a, expect: 1).stderr.contains("HOST:PORT"))
    }
}

/// Clocks, with `faketime` (Debian's; `.ci/run` installs it): a workstation years ahead is refused in
/// plain words and poisons no one's clock; what it wrote meanwhile is stamped again once the clock is
/// right; one years behind is told its clock is wrong.
@Suite(.serialized) struct ClockTests {
    static let faketime = ["/usr/bin/faketime", "/usr/local/bin/faketime"].first { FileManager.default.isExecutableFile(atPath: $0) }

    func run(_ arguments: [String], clock: String) throws -> ShelterProcess.Result {
        let faketime = try #require(Self.faketime, "faketime is not installed (apt-get install faketime)")
        return try ShelterProcess.run(arguments, wrapper: [faketime, "-f", clock])
    }

    @Test(.timeLimit(.minutes(3))) func aClockYearsOffIsRefusedAndPoisonsNoOne() throws {
        let world = try CopiesAndRestoresTests.World()
        defer { world.remove() }
        let a = try world.workstation("a"), b = try world.workstation("b")
        let ahead = "+1640d"  // about 4½ years
        try world.ensureLogin(a)
        #expect(try run(["admit", "--replica", a, "--name", "Future", "--alias", "Future", "--municipality", "Køge"], clock: ahead).status == 0)
        let refused = try run(["sync", "--replica", a], clock: ahead)
        #expect(refused.status == 1 && refused.stderr.contains("this workstation's clock is 4 years") && refused.stderr.contains("ahead of the server's")
                && refused.stderr.contains("nothing was sent"), "\(refused)")
        #expect(try world.replicas()["a"]?["state"] as? String == "clockSkew")
        #expect(try world.count("Future", on: world.store) == 0)
        // Until it is fixed, every write warns first (offline too: the skew measured at the last sync).
        let warned = try run(["admit", "--replica", a, "--name", "Later", "--alias", "Later", "--municipality", "Køge"], clock: ahead)
        #expect(warned.status == 0 && warned.stderr.contains("this workstation's clock was"), "\(warned)")
        // The clock is set right: the next sync stamps those changes again, with today's time.
        let fixed = try world.shelter("sync", "--replica", a, "--json").json()
        #expect(fixed["restamped"] as? Int == 6 && fixed["pushed"] as? Int == 6, "\(fixed)")
        let history = try world.shelter("history", "--replica", a, "--json", "--limit", "3").json()
        let stamps = try #require(history["changes"] as? [[String: Any]]).compactMap { $0["at"] as? String }
        let tomorrow = Date().addingTimeInterval(86_400)
        #expect(stamps.count == 3 && stamps.allSatisfy { (try? Date($0, strategy: .iso8601)).map { $0 < tomorrow } == true }, "\(stamps)")
        // Everyone's clock stays right: b pulls them and writes; its own stamp is today's.
        try world.shelter("sync", "--replica", b)
        try world.admit("Today", on: b)
        let own = try world.shelter("history", "--replica", b, "--json", "--limit", "1").json()
        let stamp = try #require((own["changes"] as? [[String: Any]])?.first?["at"] as? String)
        #expect((try? Date(stamp, strategy: .iso8601)).map { $0 < tomorrow } == true, "b's clock was not pulled ahead: \(stamp)")
        let health = try world.replicas()
        #expect(abs(health["b"]?["clockSkewMs"] as? Int ?? .max) < 60_000 && abs(health["a"]?["clockSkewMs"] as? Int ?? .max) < 60_000,
                "skew is the wall clocks' difference at hello")
        // Years behind: the workstation's own certificate is not valid yet by its clock; said plainly.
        let behind = try run(["sync", "--replica", b], clock: "@2020-01-01 00:00:00")
        #expect(behind.status == 1 && behind.stderr.contains("clock says 2020-01-01") && !behind.stderr.contains("BoringSSL"), "\(behind)")
    }

    /// A clock years ahead, then one minutes ahead and one minutes behind (both within the server's
    /// bound): a copy's discharge of an admission made before the copy, rescued and stamped again by
    /// the clock behind, still comes after the admission the original stamped again, ahead. (The simulation's seed 96 of 100: the server
    /// refused the discharge as before the admission, and the rescued write was kept back.)
    @Test(.timeLimit(.minutes(3))) func aRescuedDischargeStampedAgainNeverLandsBeforeItsAdmission() throws {
        let world = try CopiesAndRestoresTests.World()
        defer { world.remove() }
        let a = try world.workstation("a")
        try world.ensureLogin(a)
        let admitted = try run(["admit", "--replica", a, "--name", "Ahead", "--alias", "Ahead", "--municipality", "Køge", "--json"], clock: "+1640d")
        #expect(admitted.status == 0, "\(admitted)")
        let stay = try #require(try admitted.json()["stay"] as? String)
        let copy = world.dir.file("a-copy.replica")
        try world.copy(a, to: copy)
        try world.ensureLogin(copy)
        let discharged = try run(["discharge", stay, "--replica", copy, "--reason", "moved out"], clock: "+1640d")
        #expect(discharged.status == 0, "\(discharged)")
        // The original's clock is set a few minutes ahead: its admission and discharge are stamped again.
        #expect(try run(["sync", "--replica", a], clock: "+200s").status == 0)
        #expect(try run(["sync", "--replica", copy], clock: "+200s").status == 1, "the copy is refused")
        // A new workstation, its clock a few minutes behind, rescues the copy's discharge.
        let rescuer = try world.workstation("r")
        let rescued = try world.shelter("rescue", "--from", copy, "--replica", rescuer, "--json").json()
        #expect((rescued["rescued"] as? Int ?? 0) > 0, "\(rescued)")
        let synced = try run(["sync", "--replica", rescuer, "--json"], clock: "-200s")
        #expect(synced.status == 0, "\(synced)")
        let report = try synced.json()
        #expect((report["restamped"] as? Int ?? 0) > 0 && (report["rejected"] as? Int ?? 0) == 0, "\(report)")
        let row = try ReplicaInspector(path: world.store).rows("SELECT admitted_at, discharged_at FROM stays WHERE id = '\(stay)'")
        let came = try #require(row.first?[0]), left = try #require(row.first?[1])
        #expect(left >= came && left < "2027", "the server holds the discharge after the admission, stamped today: \(row)")
    }
}
