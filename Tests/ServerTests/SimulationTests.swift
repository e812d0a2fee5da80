import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import Synchronization
import SyncCore
import Testing
import TestSupport

/// A wall clock the simulation moves, forward and back.
final class SimClock: Sendable {
    let milliseconds = Mutex<Int64>(1_800_000_000_000)
    var now: Date { Date(timeIntervalSince1970: Double(milliseconds.withLock { $0 }) / 1000) }
    func advance(_ delta: Int64) { milliseconds.withLock { $0 = max(0, $0 + delta) } }
}

/// Row ids from a seeded generator, so a simulated run replays exactly.
final class SeededIDs: Sendable {
    let rng: Mutex<SeededRandom>
    init(seed: UInt64) { rng = Mutex(SeededRandom(seed: seed)) }
    func next() -> String {
        rng.withLock { rng in (0..<2).map { _ in String(rng.next(), radix: 16) }.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined() }
    }
}

/// A deterministic simulation of K workstations and the server's merge (DESIGN §8): random staff
/// actions, random sync sessions with duplicated, lost and cut batches, partitions, crashes (reopen
/// from disk), and wall clocks that jump. Everything runs through the real stores; only the network
/// is replaced by direct calls, so a seed replays exactly.
struct Simulation {
    struct Workstation {
        var replica: Replica
        let id: ReplicaID
        let path: String
        let clock: SimClock
        let ids: SeededIDs
        var partitioned = false

        var configuration: Replica.Configuration {
            let clock = self.clock, ids = self.ids
            return .init(now: { clock.now }, makeID: { ids.next() })
        }
    }

    struct Stats: CustomStringConvertible {
        var steps = 0, actions = 0, refused = 0, sessions = 0, duplicatedPushes = 0, lostAcks = 0, droppedPushes = 0
        var duplicatedPulls = 0, cutPulls = 0, crashes = 0, serverCrashes = 0, clockJumps = 0, writesChecked = 0, conflicts = 0
        var description: String {
            "steps \(steps), actions \(actions) (refused \(refused)), sessions \(sessions), pushes duplicated \(duplicatedPushes) / acks lost \(lostAcks) / dropped \(droppedPushes), pulls duplicated \(duplicatedPulls) / cut \(cutPulls), crashes \(crashes) + server \(serverCrashes), clock jumps \(clockJumps), conflicts \(conflicts), writes checked \(writesChecked)"
        }
    }

    let seed: UInt64
    var rng: SeededRandom
    let folder: TemporaryDirectory
    let rooms: Int
    var server: ServerStore
    let serverClock = SimClock()
    var stations: [Workstation] = []
    var stats = Stats()

    init(seed: UInt64, workstations: Int, rooms: Int) throws {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        folder = try TemporaryDirectory("sim")
        self.rooms = rooms
        server = try ServerStore.create(at: folder.file("server.db"), rooms: rooms, now: serverClock.now,
                                        serverID: ReplicaID(UUID(uuid: (0xFF, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0))))
        for index in 0..<workstations {
            let id = ReplicaID(UUID(uuid: (UInt8(index), 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, UInt8(seed & 0xFF))))
            try server.enroll(name: "w\(index)", replicaID: id, serial: "sim")
            let clock = SimClock()
            clock.advance(Int64(index) * 7)
            let path = folder.file("w\(index).replica")
            var station = Workstation(replica: try Replica.inMemory(rooms: 0), id: id, path: path, clock: clock, ids: SeededIDs(seed: seed &* 31 &+ UInt64(index)))
            station.replica = try Replica.create(at: path, rooms: 0, author: "setup", replicaID: id, configuration: station.configuration)
            stations.append(station)
        }
    }

    func remove() { folder.remove() }

    mutating func run(steps: Int) async throws {
        for _ in 0..<steps {
            stats.steps += 1
            let index = Int.random(in: 0..<stations.count, using: &rng)
            for station in stations {
                station.clock.advance(Int64.random(in: 0...3_000, using: &rng))
            }
            switch Double.random(in: 0..<1, using: &rng) {
            case ..<0.55: act(on: index)
            case ..<0.85: if !stations[index].partitioned { try await session(index, faults: true) }
            case ..<0.90: stations[index].partitioned.toggle()
            case ..<0.94:
                // Crash: the process dies; only what was committed is on disk.
                stations[index].replica = try Replica.open(at: stations[index].path, configuration: stations[index].configuration)
                stats.crashes += 1
            case ..<0.96:
                server = try ServerStore.open(at: folder.file("server.db"))
                stats.serverCrashes += 1
            default:
                // NTP steps a clock back up to an hour, or a laptop wakes a day ahead.
                let jump = rng.chance(0.5) ? -Int64.random(in: 1...3_600_000, using: &rng) : Int64.random(in: 1...86_400_000, using: &rng)
                stations[index].clock.advance(jump)
                stats.clockJumps += 1
            }
        }
        // Heal: every workstation syncs twice, without faults.
        for index in stations.indices { stations[index].partitioned = false }
        for _ in 0..<2 { for index in stations.indices { try await session(index, faults: false) } }
    }

    mutating func act(on index: Int) {
        let replica = stations[index].replica
        let author = "s\(index)"
        stats.actions += 1
        do {
            let stays = try replica.stays()
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...2:
                let anonymous = rng.chance(0.25)
                let room = rng.chance(0.6) ? Int.random(in: 1...rooms, using: &rng) : nil
                try replica.admit(Admission(anonymous: anonymous, name: anonymous ? nil : "N\(stats.actions)", alias: anonymous ? "A\(stats.actions)" : nil,
                                            municipality: ["Køge", "Greve", "Solrød"].randomElement(using: &rng)!,
                                            children: rng.chance(0.3) ? [.init(alias: "c")] : [], room: room), by: author)
            case 3...4:
                guard let stay = stays.randomElement(using: &rng) else { return }
                try replica.assign(stay: stay.id, room: Int.random(in: 1...rooms, using: &rng), by: author)
            case 5:
                guard let stay = stays.randomElement(using: &rng) else { return }
                try replica.discharge(stay: stay.id, reason: "r", by: author)
            case 6...8:
                guard let stay = stays.randomElement(using: &rng) else { return }
                let field = ["phone", "language", "notes"].randomElement(using: &rng)!
                try replica.setResident(stay.resident, fields: [(field, "\(field)-\(Int.random(in: 0...2, using: &rng))")], by: author)
            default:
                guard let conflict = try replica.conflicts().randomElement(using: &rng) else { return }
                if conflict.kind == .room {
                    try replica.resolveConflict(conflict.id, keep: 0, by: author)
                } else {
                    try replica.resolveConflict(conflict.id, keep: Int.random(in: 0..<conflict.candidates.count, using: &rng), by: author)
                }
            }
        } catch {
            stats.refused += 1  // a rule refused it (room taken, already discharged…): nothing written
        }
    }

    /// One sync session through the real stores, with the network's faults when `faults`.
    mutating func session(_ index: Int, faults: Bool) async throws {
        stats.sessions += 1
        let station = stations[index]
        // Push, batch by batch.
        while true {
            let batch = try station.replica.outboxBatch(limit: faults ? Int.random(in: 1...12, using: &rng) : 500)
            guard !batch.isEmpty else { break }
            if faults && rng.chance(0.05) { stats.droppedPushes += 1; return }
            let result = try await server.mergePush(from: station.id, changes: batch, at: serverClock.now)
            if faults && rng.chance(0.08) {
                // The server committed, but the acknowledgement was lost: the batch will be sent again.
                stats.lostAcks += 1
                return
            }
            if faults && rng.chance(0.08) {
                stats.duplicatedPushes += 1
                let again = try await server.mergePush(from: station.id, changes: batch, at: serverClock.now)
                #expect(again.merged == 0, "seed \(seed): a duplicated batch merged again")
            }
            try station.replica.acknowledge(upTo: result.upToCounter, rejected: result.rejected)
        }
        // Pull, batch by batch; each batch lands with its cursor.
        var cursor = try station.replica.syncState().cursor
        var more = true
        while more {
            let (batch, next, hasMore) = try await server.changes(for: station.id, after: cursor, limit: faults ? Int.random(in: 1...10, using: &rng) : 500)
            if faults && rng.chance(0.05) { stats.cutPulls += 1; return }
            try station.replica.applyPulled(batch, nextCursor: next)
            if faults && rng.chance(0.08) {
                stats.duplicatedPulls += 1
                try station.replica.applyPulled(batch, nextCursor: next)
            }
            cursor = next
            more = hasMore
        }
        try await server.recordReport(station.id, cursor: cursor, outbox: 0, databaseBytes: 0, at: serverClock.now)
    }

    // MARK: Checks

    mutating func check() throws {
        let serverSnapshot = try ReplicaInspector(path: folder.file("server.db")).domainSnapshot()
        for station in stations {
            let snapshot = try ReplicaInspector(path: station.path).domainSnapshot()
            for table in serverSnapshot.keys.sorted() where snapshot[table] != serverSnapshot[table] {
                Issue.record("seed \(seed): \(table) on \(station.id.description.prefix(8)) differs from the server (replay with SIM_SEED=\(seed))")
            }
            #expect(try station.replica.status().unsynced == 0, "seed \(seed): changes left unsynced")
        }
        let queue = try DatabaseQueue(path: folder.file("server.db"))
        try queue.read { db in
            // One family per room; never more active stays than rooms in service.
            let doubled = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (SELECT room FROM stays WHERE status = 'active' AND room IS NOT NULL GROUP BY room HAVING COUNT(*) > 1)") ?? 0
            #expect(doubled == 0, "seed \(seed): two active stays in one room")
            let active = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM stays WHERE status = 'active'") ?? 0
            let inService = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rooms WHERE in_service = 1") ?? 0
            #expect(active <= inService, "seed \(seed): more active stays than rooms")
            // No conflict reported twice: one row per pair of competing writes, however often the
            // pair was seen (resent batches, duplicated pulls, crashes).
            let conflicts = try Row.fetchAll(db, sql: "SELECT kind, tbl, row, col, dots FROM conflicts")
            stats.conflicts = conflicts.count
            #expect(conflicts.allSatisfy { ($0["dots"] as String?)?.contains("|") == true }, "seed \(seed): a conflict without its dots")
            #expect(Set(conflicts.map(\.description)).count == conflicts.count, "seed \(seed): a conflict was reported twice")
            try checkLedger(db)
        }
    }

    /// Every accepted write is the current value, was overwritten by a write that saw it, is kept in
    /// a conflict row for its cell, or had a twin of the same value that is.
    mutating func checkLedger(_ db: Database) throws {
        let store = SyncStore(schema: ShelterSchema.schema)
        let log = try store.log(db).reversed()
        var seenBy: [String: [Dot]] = [:]      // "table/row/column" → dots some later write to the cell saw
        var writes: [(key: String, dot: Dot, value: SyncValue)] = []
        for entry in log {
            for (column, value) in entry.change.values {
                let key = "\(entry.change.table)/\(entry.change.rowID)/\(column)"
                writes.append((key, entry.change.dot, value))
                seenBy[key, default: []].append(contentsOf: entry.change.context.entries.map { Dot(replica: $0.key, counter: $0.value) })
            }
        }
        var inConflict: Set<String> = []
        for row in try Row.fetchAll(db, sql: "SELECT tbl, row, col, candidates FROM conflicts WHERE kind = 'field'") {
            for candidate in Conflict.decode(row["candidates"]) {
                inConflict.insert("\(row["tbl"] as String)/\(row["row"] as String)/\(row["col"] as String? ?? "")=\(candidate.value)")
            }
        }
        var current: [String: Dot] = [:]
        var currentValue: [String: SyncValue] = [:]
        for table in ShelterSchema.schema.tables {
            for rowID in try String.fetchAll(db, sql: "SELECT id FROM \(table.name)") {
                guard let meta = try store.rowMeta(db, table: table, rowID: rowID) else { continue }
                let values = try store.values(db, table: table, rowID: rowID, columns: meta.cells.keys)
                for (column, stamp) in meta.cells {
                    current["\(table.name)/\(rowID)/\(column)"] = stamp.dot
                    currentValue["\(table.name)/\(rowID)/\(column)"] = values[column]
                }
            }
        }
        func preserved(_ key: String, _ dot: Dot, _ value: SyncValue) -> Bool {
            if current[key] == dot { return true }
            // Seen: a write to the same cell whose context holds this dot (its vector covers the counter).
            if seenBy[key, default: []].contains(where: { $0.replica == dot.replica && $0.counter >= dot.counter }) { return true }
            return inConflict.contains("\(key)=\(value)")
        }
        for write in writes {
            stats.writesChecked += 1
            let kept = preserved(write.key, write.dot, write.value)
                || currentValue[write.key] == write.value
                || writes.contains { $0.key == write.key && $0.value == write.value && $0.dot != write.dot && preserved($0.key, $0.dot, $0.value) }
            #expect(kept, "seed \(seed): write \(write.dot) to \(write.key) was silently lost (replay with SIM_SEED=\(seed))")
        }
    }
}

@Suite(.serialized) struct SimulationTests {
    /// Seeds a long run once failed on (an active stay left without a room by two concurrent
    /// writes, fixed by the server holding the stays' invariants); kept in the fast set.
    static let regressionSeeds: [UInt64] = [9, 133, 145, 205, 218]

    /// A fast set of seeds in `swift test`; `SIM_SEEDS=N` (and `SIM_STEPS=M`) for a long run,
    /// `SIM_SEED=S` to replay one seed.
    static var seeds: [UInt64] {
        let env = ProcessInfo.processInfo.environment
        if let one = env["SIM_SEED"].flatMap(UInt64.init) { return [one] }
        if let count = env["SIM_SEEDS"].flatMap(Int.init) { return (1...UInt64(count)).map { $0 } }
        return Array(1...12) + regressionSeeds
    }

    @Test func aSeedReplaysExactly() async throws {
        var snapshots: [[String: [String]]] = []
        for _ in 0..<2 {
            var simulation = try Simulation(seed: 4, workstations: 3, rooms: 3)
            defer { simulation.remove() }
            try await simulation.run(steps: 60)
            snapshots.append(try ReplicaInspector(path: simulation.folder.file("server.db")).domainSnapshot())
        }
        #expect(snapshots[0] == snapshots[1], "the same seed gave two different worlds")
    }

    @Test func convergenceInvariantsAndNoLostWrite() async throws {
        let steps = ProcessInfo.processInfo.environment["SIM_STEPS"].flatMap(Int.init) ?? 200
        var totals = Simulation.Stats()
        for seed in Self.seeds {
            var rng = SeededRandom(seed: seed)
            var simulation = try Simulation(seed: seed, workstations: Int.random(in: 2...8, using: &rng), rooms: Int.random(in: 2...9, using: &rng))
            defer { simulation.remove() }
            try await simulation.run(steps: steps)
            try simulation.check()
            totals.steps += simulation.stats.steps
            totals.actions += simulation.stats.actions
            totals.sessions += simulation.stats.sessions
            totals.writesChecked += simulation.stats.writesChecked
            totals.conflicts += simulation.stats.conflicts
            totals.crashes += simulation.stats.crashes
            totals.serverCrashes += simulation.stats.serverCrashes
            totals.lostAcks += simulation.stats.lostAcks
            totals.duplicatedPushes += simulation.stats.duplicatedPushes
            totals.duplicatedPulls += simulation.stats.duplicatedPulls
            totals.cutPulls += simulation.stats.cutPulls
            totals.droppedPushes += simulation.stats.droppedPushes
            totals.clockJumps += simulation.stats.clockJumps
            totals.refused += simulation.stats.refused
        }
        print("simulation: \(Self.seeds.count) seeds; \(totals)")
    }
}
