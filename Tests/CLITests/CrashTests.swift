import Foundation
import Testing
import TestSupport

/// A kill -9 in the middle of a write leaves the whole action or none of it.
@Suite(.serialized) struct CrashTests {
    @Test func killedInsideTheTransactionLeavesNothing() throws {
        let dir = try TemporaryDirectory("crash")
        defer { dir.remove() }
        let replica = dir.file("r.replica")
        let marker = dir.file("in-transaction")
        #expect(try ShelterProcess.initStandalone(replica, rooms: 3).status == 0)
        let before = try ReplicaInspector(path: replica).snapshot()

        // Given an admission that has written its rows and change records but not committed.
        let process = try ShelterProcess.start(
            ["admit", "--replica", replica, "--name", "Anna", "--municipality", "Køge", "--child", "Mia", "--room", "2"],
            environment: ["SHELTER_TEST_PAUSE_BEFORE_COMMIT": marker])
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: marker) && Date() < deadline { usleep(10_000) }
        #expect(FileManager.default.fileExists(atPath: marker), "the admission never reached its commit")
        // When the process is killed there.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)

        // Then none of it is in the replica, and the next admission works.
        #expect(try ReplicaInspector(path: replica).snapshot() == before)
        #expect(try ReplicaInspector(path: replica).problems() == [])
        let again = try ShelterProcess.run(["admit", "--replica", replica, "--name", "Anna", "--municipality", "Køge", "--child", "Mia", "--room", "2"])
        #expect(again.status == 0, "\(again)")
        #expect(try ReplicaInspector(path: replica).count("SELECT COUNT(*) FROM stays WHERE room = 2 AND status = 'active'") == 1)
        #expect(try ReplicaInspector(path: replica).problems() == [])
    }

    @Test func killedAtRandomMomentsLeavesWholeActionsOnly() throws {
        let seed = SeededRandom.seed(from: "CRASH_SEED", default: 4242)
        var rng = SeededRandom(seed: seed)
        let dir = try TemporaryDirectory("crash")
        defer { dir.remove() }
        let replica = dir.file("r.replica")
        #expect(try ShelterProcess.initStandalone(replica, rooms: 3).status == 0)
        var completed = 0
        for _ in 0..<25 {
            let process = try ShelterProcess.start(
                ["admit", "--replica", replica, "--name", "N", "--municipality", "Køge", "--child", "C1", "--child", "C2"])
            // Anywhere from start-up to after the commit.
            usleep(UInt32.random(in: 0...60_000, using: &rng))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .exit && process.terminationStatus == 0 { completed += 1 }
        }
        let inspector = ReplicaInspector(path: replica)
        #expect(try inspector.problems() == [], "seed \(seed)")
        // Every admission is whole: a stay, its resident and both children, or nothing.
        let stays = try inspector.count("SELECT COUNT(*) FROM stays")
        #expect(try inspector.count("SELECT COUNT(*) FROM residents") == stays, "seed \(seed)")
        #expect(try inspector.count("SELECT COUNT(*) FROM children") == 2 * stays, "seed \(seed)")
        #expect(stays >= completed, "seed \(seed): a completed admission was lost")
        #expect(try inspector.count("SELECT COUNT(*) FROM notifications") == stays, "seed \(seed)")
        // The first leader, 3 rooms and her grant of the shelter key, then per admission: resident, 2 children, stay, notification.
        #expect(try inspector.count("SELECT COUNT(*) FROM sync_log") == 1 + 3 + 1 + 5 * stays, "seed \(seed): change records and rows disagree")
        print("crash loop seed \(seed): \(stays) admissions kept, \(completed) ran to exit")
    }
}
