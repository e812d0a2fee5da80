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
        let server: ServerStore
        let replica = ReplicaID.random()

        init() throws {
            folder = try TemporaryDirectory("fork")
            server = try ServerStore.create(at: folder.file("server.db"), rooms: 3).beginRun()
            try server.enroll(name: "a", replicaID: replica, serial: "s")
        }

        func session(acknowledged: UInt64 = 0, counter: UInt64 = 100, cursor: Int64 = 0, checkpoints: [Checkpoint] = []) async -> (ServerSession, WireMessage) {
            var session = ServerSession(store: server, maximumBatch: 100, peer: .init(replicaID: replica, serial: "s"))
            let (answers, _) = await session.receive(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: replica,
                                                                   clientVersion: "t", hlcNow: .zero, counter: counter,
                                                                   acknowledged: acknowledged, cursor: cursor, checkpoints: checkpoints)))
            return (session, answers[0])
        }

        func change(_ counter: UInt64, phone: String, row: String = "r1") -> CellChange {
            CellChange(table: "residents", rowID: row, values: ["phone": .text(phone), "municipality": .text("Køge")],
                       dot: Dot(replica: replica, counter: counter), hlc: HLC(milliseconds: 1_800_000_000_000 + counter, logical: 0),
                       author: "mette", context: VersionVector())
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
        #expect(try world.count("SELECT COUNT(*) FROM residents WHERE phone IN ('99', '44')") == 0)
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
        let first = await session.receive(.push([anonymous])).answers
        guard case .pushAck(1, let rejected) = first[0], rejected.first?.code == "anonymity" else { Issue.record("\(first)"); return }
        #expect(await session.receive(.push([anonymous])).answers == first, "the refusal is reported again")
        var other = anonymous
        other.values["name"] = .text("Other")
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

    /// Recovery is allowed only after a welcome that carried the server's holdings, and only for
    /// changes of enrolled workstations or of the server's own runs.
    @Test func recoveryIsBounded() async throws {
        let world = try World()
        defer { world.folder.remove() }
        var (session, welcome) = await world.session()
        guard case .welcome(let calm) = welcome else { return }
        #expect(calm.holdings == nil && calm.resume == 0)
        guard case .error("protocolViolation", _) = await session.receive(.recover([world.change(1, phone: "1")])).answers[0] else {
            Issue.record("recover without holdings was accepted")
            return
        }
        // A workstation that knows of more acknowledged changes than the server has: holdings.
        var healing: ServerSession
        (healing, welcome) = await world.session(acknowledged: 4, counter: 4)
        guard case .welcome(let heal) = welcome, let holdings = heal.holdings else { Issue.record("no holdings: \(welcome)"); return }
        #expect(holdings[world.replica] == 0)
        var stranger = world.change(1, phone: "1")
        stranger.dot = Dot(replica: .random(), counter: 1)
        guard case .error("foreignDot", _) = await healing.receive(.recover([stranger])).answers[0] else {
            Issue.record("a change of a replica that is neither enrolled nor the server's was taken")
            return
        }
        (healing, _) = await world.session(acknowledged: 4, counter: 4)
        var serverWrite = stranger
        serverWrite.author = "server"
        let own = (1...4).map { world.change($0, phone: "p\($0)", row: "r\($0)") }
        #expect(await healing.receive(.recover(own + [serverWrite])).answers == [.recoverAck(merged: 5, rejected: [])])
        #expect(await healing.receive(.recover(own)).answers == [.recoverAck(merged: 0, rejected: [])], "a second recovery is a resend")
        #expect(try world.count("SELECT recovered FROM server_replicas") == 5)
        #expect(try world.count("SELECT COUNT(*) FROM server_runs WHERE writer = '\(serverWrite.dot.replica)'") == 1)
    }

    /// Each run writes under its own id, so a store restored from a backup never reuses a dot.
    @Test func eachRunWritesUnderItsOwnID() throws {
        let folder = try TemporaryDirectory("runs")
        defer { folder.remove() }
        let created = try ServerStore.create(at: folder.file("server.db"), rooms: 2)
        let first = try created.beginRun(), second = try ServerStore.open(at: folder.file("server.db")).beginRun()
        #expect(Set([created.serverID, first.serverID, second.serverID]).count == 3)
        #expect(try second.shelterID() == created.serverID.description, "the shelter keeps the id of the store's first run")
        #expect(try ReplicaInspector(path: folder.file("server.db")).count("SELECT COUNT(*) FROM server_runs") == 3)
    }
}
