import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// A resend is recognised by its content, not its position: the server's side of a session, driven
/// message by message (no network), against a real store.
@Suite struct ForkTests {
    struct World {
        let folder: TemporaryDirectory
        var server: ServerStore
        let replica = ReplicaID.random()
        let base = World.wall()
        let serverSigner: KeySigner

        init() throws {
            folder = try TemporaryDirectory("fork")
            let created = try ServerStore.create(at: folder.file("server.db"), rooms: 3)
            try created.addTestStaff()
            server = try created.beginRun()
            try server.enroll(name: "a", replicaID: replica, serial: "s")
            serverSigner = try server.signer()
        }

        /// `change` as a transaction of its own, signed by its author (the server's key for `server`).
        func sealed(_ change: CellChange) -> CellChange {
            if change.author == Seal.serverSigner { return change.sealed(by: serverSigner) }
            return change.sealed(by: staff(change.author))
        }

        func session(acknowledged: UInt64 = 0, counter: UInt64 = 100, cursor: Int64 = 0, checkpoints: [Checkpoint] = []) async -> (ServerSession, WireMessage) {
            var session = ServerSession(store: server, maximumBatch: 100, peer: .init(replicaID: replica, serial: "s"))
            let (answers, _) = await session.receive(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: replica,
                                                                   clientVersion: "t", hlcNow: .zero, wallNow: Self.wall(), counter: counter,
                                                                   acknowledged: acknowledged, cursor: cursor, checkpoints: checkpoints)))
            return (session, answers[0])
        }

        static func wall() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

        func change(_ counter: UInt64, phone: String, row: String = "r1") -> CellChange {
            CellChange(table: "residents", rowID: row, values: ["language": .text(phone), "municipality": .text("Køge")],
                       dot: Dot(replica: replica, counter: counter), hlc: HLC(milliseconds: base - 600_000 + counter, logical: 0),
                       author: "mette", context: VersionVector()).sealed(by: staff("mette"))
        }

        func count(_ sql: String) throws -> Int { try ReplicaInspector(path: folder.file("server.db")).count(sql) }
    }

    @Test func aResendIsSkippedAndAForkIsRefusedWithNothingKept() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, welcome) = await world.session()
        guard case .welcome = welcome else { Issue.record("not welcomed: \(welcome)"); return }
        let first = (1...3).map { world.change($0, phone: "1\($0)", row: "r\($0)") }
        #expect(await session.receive(.push(first)).answers == [.pushAck(upToCounter: 3, rejected: [])])
        // The same changes again (an acknowledgement that was lost): skipped, acknowledged again.
        #expect(await session.receive(.push(first)).answers == [.pushAck(upToCounter: 3, rejected: [])])
        #expect(try world.count("SELECT COUNT(*) FROM residents") == 3)
        // Another change under counter 2, with a new change 4 in the same batch: the whole batch is refused.
        let forked = [world.change(2, phone: "99", row: "r2"), world.change(4, phone: "44", row: "r4")]
        let (answers, ends) = await session.receive(.push(forked))
        guard case .error(let code, let message) = answers.first else { Issue.record("a fork was accepted: \(answers)"); return }
        #expect(code == "replicaForked" && ends && !message.contains("99"), "no value in the message: \(message)")
        #expect(try world.count("SELECT COUNT(*) FROM residents WHERE language IN ('99', '44')") == 0)
        #expect(try world.count("SELECT COUNT(*) FROM server_replicas WHERE forked_at IS NOT NULL AND last_error_code = 'replicaForked'") == 1)
        #expect(try await world.server.healthReport().replicas.first?.state == .forked)
    }

    /// The bug a forked copy would otherwise hit: its resent shared past must not acknowledge its
    /// own later changes because the other copy used those numbers.
    @Test func aResentBatchAcknowledgesOnlyItself() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, _) = await world.session()
        _ = await session.receive(.push((1...6).map { world.change($0, phone: "p\($0)", row: "r\($0)") }))
        let resent = (1...2).map { world.change($0, phone: "p\($0)", row: "r\($0)") }
        #expect(await session.receive(.push(resent)).answers == [.pushAck(upToCounter: 2, rejected: [])])
    }

    @Test func aRefusedChangeIsReportedAgainOnlyWhenItIsTheSame() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, _) = await world.session()
        var anonymous = world.change(1, phone: "1")
        anonymous.values = ["anonymous": .integer(1), "name": .text("Named"), "municipality": .text("Køge")]
        anonymous = world.sealed(anonymous)
        let first = await session.receive(.push([anonymous])).answers
        guard case .pushAck(1, let rejected) = first[0], rejected.first?.code == "anonymity" else { Issue.record("\(first)"); return }
        #expect(await session.receive(.push([anonymous])).answers == first, "the refusal is reported again")
        var other = anonymous
        other.values["name"] = .text("Other")
        other = world.sealed(other)
        guard case .error("replicaForked", _) = await session.receive(.push([other])).answers[0] else {
            Issue.record("another change under a refused change's number was taken for a resend")
            return
        }
    }

    @Test func aCounterBehindTheServersIsRefusedAtHello() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, _) = await world.session()
        _ = await session.receive(.push((1...5).map { world.change($0, phone: "p\($0)", row: "r\($0)") }))
        let (_, answer) = await world.session(counter: 3)
        guard case .error("replicaRewound", _) = answer else { Issue.record("\(answer)"); return }
        #expect(try await world.server.healthReport().replicas.first?.state == .forked)
    }

    /// Recovery is allowed only after a welcome that asked for it; other replicas' changes only
    /// when the store is a restored backup, and only of enrolled workstations or earlier runs.
    @Test func recoveryIsBounded() async throws {
        var world = try World()
        defer { world.folder.remove() }
        var (session, welcome) = await world.session()
        guard case .welcome(let calm) = welcome else { return }
        #expect(calm.ownCommon == nil && calm.holdings == nil && calm.resume == 0)
        guard case .error("protocolViolation", _) = await session.receive(.recover([world.change(1, phone: "1")])).answers[0] else {
            Issue.record("recover without being asked was accepted")
            return
        }
        // A workstation that knows of more acknowledged changes than the server has gives back its own.
        var healing: ServerSession
        (healing, welcome) = await world.session(acknowledged: 4, counter: 4)
        guard case .welcome(let heal) = welcome, heal.ownCommon == 0 else { Issue.record("no heal: \(welcome)"); return }
        #expect(heal.holdings == nil, "the store was not restored: no other replica's changes")
        let own = (1...4).map { world.change($0, phone: "p\($0)", row: "r\($0)") }
        #expect(await healing.receive(.recover(own)).answers == [.recoverAck(merged: 4, rejected: [])])
        #expect(await healing.receive(.recover(own)).answers == [.recoverAck(merged: 0, rejected: [])], "a second recovery is a resend")
        let other = ReplicaID.random()
        try world.server.enroll(name: "b", replicaID: other, serial: "t")
        try world.server.enroll(name: "c", replicaID: .random(), serial: "t")
        var relayed = world.change(1, phone: "b1", row: "b1")
        relayed.dot = Dot(replica: other, counter: 1)
        relayed = world.sealed(relayed)
        (healing, _) = await world.session(acknowledged: 5, counter: 5)
        guard case .error("protocolViolation", _) = await healing.receive(.recover([relayed])).answers[0] else {
            Issue.record("another replica's change was taken by a server that was not restored")
            return
        }

        // Restored from a backup: other replicas' changes come back, within bounds.
        let backup = world.folder.file("backup.db")
        _ = try world.server.backup(to: backup)
        try world.server.close()
        _ = try ServerStore.restore(backup: backup, at: world.folder.file("server.db"))
        let earlierRun = world.server.serverID
        world.server = try ServerStore.open(at: world.folder.file("server.db")).beginRun()
        (healing, welcome) = await world.session(acknowledged: 5, counter: 5)
        guard case .welcome(let restored) = welcome, let holdings = restored.holdings else { Issue.record("no holdings: \(welcome)"); return }
        #expect(holdings[world.replica] == 4 && holdings[other] == 0)
        var stranger = relayed, claimedByServer = relayed, currentRun = relayed, fromEarlierRun = relayed
        stranger.dot = Dot(replica: .random(), counter: 1)
        claimedByServer.dot = Dot(replica: .random(), counter: 1)
        claimedByServer.author = "server"
        currentRun.dot = Dot(replica: world.server.serverID, counter: 1)
        currentRun.author = "server"
        fromEarlierRun.dot = Dot(replica: earlierRun, counter: 1)
        fromEarlierRun.author = "server"
        fromEarlierRun.rowID = "e1"
        (stranger, claimedByServer, currentRun, fromEarlierRun) = (world.sealed(stranger), world.sealed(claimedByServer), world.sealed(currentRun), world.sealed(fromEarlierRun))
        let answers = await healing.receive(.recover([stranger, claimedByServer, currentRun, relayed, fromEarlierRun])).answers
        #expect(answers == [.recoverAck(merged: 2, rejected: [])], "only the enrolled workstation's and the earlier run's: \(answers)")
        #expect(try world.count("SELECT recovered FROM server_replicas WHERE name = 'a'") == 2 + 4)
        #expect(try world.count("SELECT acknowledged FROM server_replicas WHERE name = 'b'") == 0, "b's own counter does not move: it never looks rewound")
        #expect(try world.count("SELECT relayed FROM server_replicas WHERE name = 'b'") == 1)
        #expect(try world.count("SELECT COUNT(*) FROM server_runs WHERE writer IN ('\(stranger.dot.replica)', '\(claimedByServer.dot.replica)')") == 0)
        // b itself pushes its change 1 (the same) and 2: a resend and a new change, no fork.
        var bSession = ServerSession(store: world.server, maximumBatch: 100, peer: .init(replicaID: other, serial: "t"))
        _ = await bSession.receive(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: other, clientVersion: "t",
                                                hlcNow: .zero, wallNow: World.wall(), counter: 2)))
        var second = relayed
        second.dot.counter = 2
        second.rowID = "b2"
        second = world.sealed(second)
        #expect(await bSession.receive(.push([relayed, second])).answers == [.pushAck(upToCounter: 2, rejected: [])])
        #expect(try world.count("SELECT COUNT(*) FROM residents WHERE id IN ('b1', 'b2')") == 2)
        #expect(try world.count("SELECT acknowledged FROM server_replicas WHERE name = 'b'") == 2, "b's own counter covers what was given back for it")

        // The restore window: a workstation that never synced keeps it open, but not for ever.
        #expect(try world.server.restoredAt() != nil, "c (enrolled, never synced) may still hold changes")
        let later = Date().addingTimeInterval(ServerStore.restoreWindow + 3600)
        var late = ServerSession(store: world.server, maximumBatch: 100, peer: .init(replicaID: world.replica, serial: "s"), now: { later })
        guard case .welcome(let expired) = await late.receive(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: world.replica,
                                                                           clientVersion: "t", hlcNow: .zero, wallNow: UInt64(later.timeIntervalSince1970 * 1000), counter: 6, acknowledged: 6,
                                                                           cursor: 999))).answers[0] else { return }
        #expect(expired.ownCommon != nil && expired.holdings == nil, "after the window, only a workstation's own changes come back")
        _ = await late.receive(.report(cursor: 1, outbox: 0, databaseBytes: 0, lastError: nil))
        #expect(try world.server.restoredAt() == nil, "the window closed")
    }

    /// A refusal is reported again when the same change comes back in a recovery (its first
    /// report may have been lost with the connection).
    @Test func aRecoveredRefusalIsReportedAgain() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var anonymous = world.change(1, phone: "1")
        anonymous.values = ["anonymous": .integer(1), "name": .text("Named"), "municipality": .text("Køge")]
        anonymous = world.sealed(anonymous)
        // The server's history diverged from the one the workstation pulled (its cursor is beyond the head).
        var (session, _) = await world.session(acknowledged: 1, counter: 1, cursor: 50)
        let first = await session.receive(.recover([anonymous])).answers
        guard case .recoverAck(0, let rejected) = first[0], rejected.first?.dot == anonymous.dot else { Issue.record("\(first)"); return }
        (session, _) = await world.session(acknowledged: 1, counter: 1, cursor: 50)
        #expect(await session.receive(.recover([anonymous])).answers == first)
    }

    /// A modified workstation that writes past the 64 KiB cap is refused by the server.
    @Test func aTextPastTheCapIsRefused() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, _) = await world.session()
        var long = world.change(1, phone: "1")
        long.values["notes"] = .text(String(repeating: "x", count: 100_000))
        long = world.sealed(long)
        guard case .pushAck(1, let rejected) = await session.receive(.push([long])).answers[0] else { Issue.record("not acknowledged"); return }
        #expect(rejected.first?.code == "valueTooLarge" && rejected.first?.reason.contains("xxx") == false)
        #expect(try world.count("SELECT COUNT(*) FROM residents") == 0)
    }

    /// A workstation from before 0.5 has a cursor but no checkpoints: its cursor is trusted (no
    /// pulling everything again), unless it lies beyond the server's head.
    @Test func aCursorWithoutCheckpointsIsTrustedWithinTheHead() async throws {
        let world = try World()
        defer { world.folder.remove() }
        guard case .welcome(let upgraded) = await world.session(counter: 0, cursor: 2).1 else { return }
        #expect(upgraded.resume == 2 && upgraded.ownCommon == nil)
        guard case .welcome(let beyond) = await world.session(counter: 0, cursor: 50).1 else { return }
        #expect(beyond.resume == 0 && beyond.ownCommon == 0)
    }

    /// Each run writes under its own id, so a store restored from a backup never reuses a dot.
    @Test func eachRunWritesUnderItsOwnID() throws {
        let folder = try TemporaryDirectory("runs")
        defer { folder.remove() }
        let created = try ServerStore.create(at: folder.file("server.db"), rooms: 2)
        let first = try created.beginRun(), second = try ServerStore.open(at: folder.file("server.db")).beginRun()
        #expect(Set([created.serverID, first.serverID, second.serverID]).count == 3)
        #expect(try second.lineage().shelter == created.serverID.description, "the shelter keeps the id of the store's first run")
        #expect(try ReplicaInspector(path: folder.file("server.db")).count("SELECT COUNT(*) FROM server_runs") == 3)
    }
}
