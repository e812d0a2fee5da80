import ClientKit
import Foundation
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// Real processes killed with SIGKILL in the middle of a sync: nothing lost, nothing applied twice.
@Suite(.serialized) struct KillTests {
    struct World {
        let dir: TemporaryDirectory
        let srv: String
        var server: ServerProcess

        init() throws {
            dir = try TemporaryDirectory("kill")
            srv = dir.file("srv")
            #expect(try ShelterProcess.run(["server", "init", "--dir", srv, "--rooms", "9"]).status == 0)
            // The staff whose keys sign the admissions written below through ClientKit.
            try ServerStore.open(at: srv + "/server.db").addTestStaff()
            server = try ServerProcess.start(directory: srv, extra: ["--max-batch", "40"])
        }

        /// A bound replica for a new workstation, synced once (`shelter init` makes the first sync),
        /// with `admissions` admissions unsynced; without `firstSync`, made through ClientKit and
        /// never synced.
        func workstation(_ name: String, admissions: Int, firstSync: Bool = true) throws -> (path: String, id: String) {
            let bundle = dir.file("\(name).bundle")
            #expect(try ShelterProcess.run(["server", "enroll", "--dir", srv, "--name", name, "--out", bundle]).status == 0)
            let path = dir.file("\(name).replica")
            let id: String
            if firstSync {
                let created = try ShelterProcess.run(["init", "--replica", path, "--bundle", bundle, "--server", "127.0.0.1:\(server.port)"])
                #expect(created.status == 0, "\(created)")
                id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                let pem = try String(contentsOfFile: bundle, encoding: .utf8)
                id = try Replica.create(at: path, bundlePEM: pem, bundleSource: bundle, server: "127.0.0.1:\(server.port)").id.description
            }
            let replica = try Replica.open(at: path)
            for n in 0..<admissions { try replica.admit(Admission(name: "N\(n)", municipality: "Køge"), by: staff("s")) }
            return (path, id)
        }

        func onServer(_ replicaID: String) throws -> Int {
            try ReplicaInspector(path: srv + "/server.db").count("""
                SELECT COUNT(*) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE p.replica_id = '\(replicaID)'
                """)
        }

        func ownChanges(_ path: String) throws -> Int {
            try ReplicaInspector(path: path).count("""
                SELECT COUNT(*) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE p.replica_id = (SELECT replica_id FROM sync_state)
                """)
        }
    }

    @Test(.timeLimit(.minutes(3))) func theClientKilledMidPushAndMidPull() throws {
        var world = try World()
        defer { world.server.stop(); world.dir.remove() }
        let (a, aID) = try world.workstation("a", admissions: 400)
        // b's first sync (init) takes the server's snapshot before a pushes: it pulls a's changes from the log.
        let (b, _) = try world.workstation("b", admissions: 0)
        let total = try world.ownChanges(a)
        #expect(total == 1200, "400 admissions of resident, stay and notification")

        // Mid-push: some batches are on the server, not all.
        let serverReader = try LiveReader(path: world.srv + "/server.db")
        let onServer = "SELECT COUNT(*) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE p.replica_id = '\(aID)'"
        let push = try ShelterProcess.start(["sync", "--replica", a])
        let midPush = try waitUntil(interval: 200) { let n = try serverReader.int(onServer); return n > 0 && n < total }
        kill(push.processIdentifier, SIGKILL)
        push.waitUntilExit()
        #expect(midPush, "the push was not caught in the middle")
        #expect(push.terminationReason == .uncaughtSignal)
        // The next sync completes: every change once on the server, none left unsynced.
        let again = try ShelterProcess.run(["sync", "--replica", a, "--json"])
        #expect(again.status == 0, "\(again)")
        #expect(try world.onServer(aID) == total, "nothing lost, nothing twice")
        #expect(try ReplicaInspector(path: a).count("SELECT COUNT(*) FROM sync_log WHERE state = 0") == 0)
        // What the killed push had sent is resent, recognised by its content: a silent, harmless skip.
        #expect(try ReplicaInspector(path: world.srv + "/server.db").count("SELECT COUNT(*) FROM server_replicas WHERE forked_at IS NOT NULL") == 0)

        // Mid-pull: b pulls the 1,200 changes in batches of 40 and is killed halfway.
        let head = try ReplicaInspector(path: world.srv + "/server.db").count("SELECT MAX(seq) FROM sync_log")
        let replicaReader = try LiveReader(path: b)
        let pull = try ShelterProcess.start(["sync", "--replica", b])
        let midPull = try waitUntil(interval: 200) { let c = try replicaReader.int("SELECT cursor FROM sync_state"); return c > 0 && c < head }
        kill(pull.processIdentifier, SIGKILL)
        pull.waitUntilExit()
        #expect(midPull, "the pull was not caught in the middle")
        let halfway = try ReplicaInspector(path: b).problems()
        print("mid-pull state: \(halfway)")
        #expect(halfway.allSatisfy { $0.contains("without a stay") || $0.contains("without their resident") }, "\(halfway)")
        #expect(try ShelterProcess.run(["sync", "--replica", b]).status == 0)
        #expect(try ReplicaInspector(path: b).problems() == [], "whole again after the next sync")
        #expect(try ReplicaInspector(path: b).domainSnapshot() == ReplicaInspector(path: world.srv + "/server.db").domainSnapshot())
        #expect(try ReplicaInspector(path: b).count("SELECT COUNT(*) FROM residents") == 400)

        // A new workstation takes the snapshot in one transaction: killed on the way, it holds
        // nothing of it or all of it, never a part; the next sync makes it whole.
        let (c, _) = try world.workstation("c", admissions: 0, firstSync: false)
        let snapshot = try ShelterProcess.start(["sync", "--replica", c])
        usleep(useconds_t(Int.random(in: 50_000...400_000)))
        kill(snapshot.processIdentifier, SIGKILL)
        snapshot.waitUntilExit()
        let (cursor, residents) = (try ReplicaInspector(path: c).count("SELECT cursor FROM sync_state"),
                                   try ReplicaInspector(path: c).count("SELECT COUNT(*) FROM residents"))
        print("killed taking the snapshot: cursor \(cursor), residents \(residents)")
        #expect((cursor == 0 && residents == 0) || (cursor == head && residents == 400), "cursor \(cursor), residents \(residents)")
        #expect(try ShelterProcess.run(["sync", "--replica", c]).status == 0)
        #expect(try ReplicaInspector(path: c).domainSnapshot() == ReplicaInspector(path: world.srv + "/server.db").domainSnapshot())
    }

    @Test(.timeLimit(.minutes(3))) func theServerKilledMidMerge() throws {
        var world = try World()
        defer { world.server.stop(); world.dir.remove() }
        let (a, aID) = try world.workstation("a", admissions: 400)
        // b's first sync (init) takes the server's snapshot before a pushes: it pulls a's changes from the log.
        let (b, _) = try world.workstation("b", admissions: 0)
        let total = try world.ownChanges(a)
        let serverReader = try LiveReader(path: world.srv + "/server.db")
        let onServer = "SELECT COUNT(*) FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE p.replica_id = '\(aID)'"
        let sync = try ShelterProcess.start(["sync", "--replica", a])
        let midMerge = try waitUntil(interval: 200) { let n = try serverReader.int(onServer); return n > 0 && n < total }
        world.server.kill9()
        sync.waitUntilExit()
        #expect(midMerge, "the merge was not caught in the middle")
        #expect(sync.terminationStatus != 0, "the interrupted sync fails")
        // The store is consistent after the crash, and the server comes back on the same port.
        #expect(try ReplicaInspector(path: world.srv + "/server.db").integrityCheck() == ["ok"])
        let committed = try world.onServer(aID)
        world.server = try ServerProcess.start(directory: world.srv, port: world.server.port, extra: ["--max-batch", "40"])
        let again = try ShelterProcess.run(["sync", "--replica", a])
        #expect(again.status == 0, "\(again)")
        #expect(try world.onServer(aID) == total && committed <= total)
        #expect(try ReplicaInspector(path: world.srv + "/server.db").count("SELECT COUNT(*) FROM server_replicas WHERE forked_at IS NOT NULL") == 0)
        #expect(try ReplicaInspector(path: a).count("SELECT COUNT(*) FROM sync_log WHERE state = 0") == 0)
        #expect(try ReplicaInspector(path: world.srv + "/server.db").count("SELECT COUNT(*) FROM residents") == 400)
    }
}
