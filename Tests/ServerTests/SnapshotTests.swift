import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// A new workstation takes the server's rows as they stand, signed, instead of replaying the log.
@Suite struct SnapshotTests {
    /// Every synced row's metadata, decoded (peer numbers differ from file to file).
    static func metas(_ path: String) throws -> [String: String] {
        let store = SyncStore(schema: ShelterSchema.schema)
        var config = Configuration()
        config.readonly = true
        return try DatabaseQueue(path: path, configuration: config).read { db in
            var result: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT tbl, id FROM sync_rows") {
                let table = ShelterSchema.schema.table(code: row["tbl"])!
                let meta = try store.rowMeta(db, table: table, rowID: row["id"])!
                result["\(table.name)/\(row["id"] as String)"] = "\(meta.versionVector) " + meta.cells.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.dot)@\($0.value.hlc.rawValue)" }.joined(separator: ",")
            }
            return result
        }
    }

    @Test func aNewWorkstationTakesTheSignedSnapshotAndHoldsWhatTheLogWouldHaveGiven() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let (a, b) = (try await server.workstation("a"), try await server.workstation("b"))
        // b took the snapshot of rooms and staff at its first sync; from here it pulls the log.
        let anna = try a.admit(Admission(name: "Anna", municipality: "Køge", room: 1), by: staff("mette")).resident
        let bente = try a.admit(Admission(name: "Bente", municipality: "Greve", room: 2), by: staff("mette")).resident
        _ = try await a.sync()
        #expect(try await b.sync().pulled > 0)
        // The same field edited at both, offline: a conflict row on the server.
        try a.setResident(anna, fields: [("phone", "11111111")], by: staff("mette"))
        try b.setResident(anna, fields: [("phone", "22222222")], by: staff("jonas"))
        try b.setResident(bente, fields: [("language", "ar")], by: staff("jonas"))
        _ = try await a.sync()
        _ = try await b.sync()
        _ = try await a.sync()
        _ = try await b.sync()
        #expect(try b.conflicts().count == 1)

        // c comes now: a snapshot, no change of the log.
        let c = try await server.workstation("c", firstSync: false)
        let report = try await c.sync()
        let serverRows = try ReplicaInspector(path: server.directory.storePath).count("SELECT COUNT(*) FROM sync_rows")
        #expect(report.snapshotRows == serverRows && report.pulled == 0 && report.conflicts == 1)
        let (cRows, bRows) = (try ReplicaInspector(path: c.path).domainSnapshot(), try ReplicaInspector(path: b.path).domainSnapshot())
        let (cMetas, bMetas) = (try Self.metas(c.path), try Self.metas(b.path))
        // Row for row, cell for cell, stamp for stamp what b holds by pulling the log.
        #expect(cRows == bRows)
        #expect(cMetas == bMetas)
        // One that replays the whole log instead holds the same, and every change of it.
        var replaying = Replica.Configuration()
        replaying.takesSnapshot = false
        let e = try await server.workstation("e", configuration: replaying, firstSync: false)
        let replayed = try await e.sync()
        let eBegins = try e.historyBegins()
        #expect(replayed.snapshotRows == 0 && replayed.pulled > 0 && eBegins == nil)
        let (eRows, eMetas) = (try ReplicaInspector(path: e.path).domainSnapshot(), try Self.metas(e.path))
        #expect(eRows == cRows)
        #expect(eMetas == cMetas)
        #expect(try c.resident(anna).name == "Anna" && c.resident(bente).language == "ar")
        // Its local history begins at the snapshot; verify checks the server's signature of it.
        #expect(try c.history().isEmpty)
        let begins = try #require(try c.historyBegins())
        #expect(begins.position == report.cursor)
        let verified = try c.verify()
        #expect(verified.invalid.isEmpty && verified.snapshot?.valid == true && verified.snapshot?.rows == UInt64(serverRows))

        // From then on it pulls the log, and writes like any other.
        try a.setResident(anna, fields: [("language", "so")], by: staff("mette"))
        _ = try await a.sync()
        let later = try await c.sync()
        let language = try c.resident(anna).language
        #expect(later.snapshotRows == 0 && later.pulled > 0 && language == "so")
        #expect(try !c.history().isEmpty && c.verify().invalid.isEmpty)
        try c.setResident(bente, fields: [("phone", "33333333")], by: staff("jonas"))
        _ = try await c.sync()
        _ = try await b.sync()
        #expect(try b.resident(bente).phone == "33333333")
        try await server.stop()
    }

    /// The network between a workstation and an in-process server session, with a hand on the
    /// answers: `alter` sees each one and returns what arrives instead (nil: the connection is cut).
    final class AlteringConnection: SyncConnection {
        var inner: MemoryConnection
        let alter: (WireMessage) -> WireMessage?
        var cut = false

        init(_ inner: MemoryConnection, alter: @escaping (WireMessage) -> WireMessage?) {
            self.inner = inner
            self.alter = alter
        }

        func send(_ message: WireMessage) async throws {
            if cut { throw MemoryConnection.Cut() }
            try await inner.send(message)
        }

        func receive() async throws -> WireMessage? {
            guard !cut, let message = try await inner.receive() else { return nil }
            guard let altered = alter(message) else {
                cut = true
                return nil
            }
            return altered
        }
    }

    @Test func aSnapshotAlteredOrCutOnTheWayWritesNothingAndTheNextSessionTakesItWhole() async throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let server = try ServerStore.create(at: folder.file("server.db"), rooms: 3)
        let id = ReplicaID.random()
        try server.enroll(name: "w", replicaID: id, serial: "w")
        let replica = try Replica.createBound(at: folder.file("w.replica"), server: "sim:1", replicaID: id)
        func connection(_ alter: @escaping (WireMessage) -> WireMessage?) -> AlteringConnection {
            AlteringConnection(MemoryConnection(session: ServerSession(store: server, maximumBatch: 2, peer: .init(replicaID: id, serial: "w"))), alter: alter)
        }
        let tables = Set(ShelterSchema.schema.tables.map(\.name) + ["sync_rows", "sync_log", "sync_snapshot", "sync_held", "sync_checkpoints"])
        let before = try ReplicaInspector(path: replica.path).snapshot().filter { tables.contains($0.key) }

        // A value changed in a row, the position moved in the seal, the rows cut short, the
        // connection cut before the end: each refused, nothing written.
        var changedValue = false
        let attacks: [(String, (WireMessage) -> WireMessage?)] = [
            ("a value changed", { message in
                guard case .snapshotRows(var rows) = message, !changedValue, let cell = rows[0].cells.indices.first else { return message }
                changedValue = true
                rows[0].cells[cell].value = .text("forged")
                return .snapshotRows(rows)
            }),
            ("the position moved", { message in
                guard case .snapshotEnd(var seal) = message else { return message }
                seal.position += 1
                return .snapshotEnd(seal)
            }),
            ("rows left out", { message in
                guard case .snapshotRows(let rows) = message, rows.count > 1 else { return message }
                return .snapshotRows(Array(rows.dropFirst()))
            }),
            ("a row repeated", { message in
                guard case .snapshotRows(let rows) = message, let first = rows.first else { return message }
                return .snapshotRows([first] + rows)
            }),
            ("cut before the end", { message in
                if case .snapshotEnd = message { return nil }
                return message
            }),
        ]
        for (what, alter) in attacks {
            await #expect(throws: ReplicaError.self, "\(what)") { try await replica.sync(over: connection(alter)) }
            let after = try ReplicaInspector(path: replica.path).snapshot().filter { tables.contains($0.key) }
            #expect(after == before, "\(what): the replica is as it was")
            #expect(try replica.syncState().cursor == 0)
        }

        // One snapshot a session: a second is a protocol violation.
        var machine = SyncSessionStateMachine(maximumBatch: 10)
        _ = machine.receive(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: id, clientVersion: "t", hlcNow: .zero, counter: 0)))
        machine.established()
        #expect(machine.receive(.snapshot(limit: 5)) == .snapshot(limit: 5))
        guard case .fail(.protocolViolation, _) = machine.receive(.snapshot(limit: 5)) else { Issue.record("a second snapshot was answered"); return }

        // Untouched, it is taken whole.
        let report = try await replica.sync(over: connection { $0 })
        let head = try server.logHead()
        #expect(report.snapshotRows == 3 && report.cursor == head, "the 3 rooms, standing at the log's head")
        #expect(try replica.roomBoard().capacity == 3 && replica.verify().snapshot?.valid == true)
        // The record of it, edited by hand, no longer checks.
        try await DatabaseQueue(path: replica.path).write { db in try db.execute(sql: "UPDATE sync_snapshot SET position = position - 1") }
        let tampered = try replica.verify()
        #expect(tampered.snapshot?.valid == false && !tampered.invalid.isEmpty)
    }

    @Test func snapshotMessagesRoundTripAndMalformedOnesAreRefused() throws {
        let replica = ReplicaID.random(), other = ReplicaID.random()
        let stamp = CellStamp(dot: Dot(replica: replica, counter: 3), hlc: HLC(milliseconds: 1_800_000_000_000, logical: 0))
        let row = SnapshotRow(table: ShelterSchema.residents.code, id: "r1", versionVector: VersionVector([replica: 3, other: 1]),
                              cells: [.init(code: 2, value: .text("x"), stamp: stamp), .init(code: 1, value: .integer(0), stamp: stamp),
                                      .init(code: 4, value: .null, stamp: CellStamp(dot: Dot(replica: other, counter: 1), hlc: stamp.hlc))])
        let held = HeldChange(dot: Dot(replica: replica, counter: 3), digest: LogHash.genesis)
        let seal = SnapshotSeal(position: 42, chain: LogHash.genesis, rows: 1, held: 1, digest: LogHash.genesis,
                                holdings: VersionVector([replica: 3]), takenAt: 1, signature: Array(repeating: 7, count: 64))
        for message in [WireMessage.snapshot(limit: 500), .snapshotRows([row, row]), .snapshotHeld([held]), .snapshotEnd(seal)] {
            let bytes = message.encoded()
            #expect(try WireMessage.decode(bytes) == message)
            for cut in 1..<bytes.count {
                #expect(throws: BinaryReader.Error.self, "\(message.name) cut at \(cut)") { try WireMessage.decode(Array(bytes.prefix(cut))) }
            }
        }
        // A cell naming a stamp the row does not have, and cells out of order, are refused.
        var bytes = WireMessage.snapshotRows([row]).encoded()
        let stampNumber = bytes.count - 2  // the last cell: code, stamp number, null value (1 byte)
        bytes[stampNumber] = 9
        #expect(throws: BinaryReader.Error.self) { try WireMessage.decode(bytes) }
    }
}
