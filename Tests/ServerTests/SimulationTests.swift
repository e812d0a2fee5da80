import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import Logging
import Synchronization
import SyncCore
import Testing
import TestSupport

/// A wall clock the simulation moves, forward and back.
final class SimClock: Sendable {
    let milliseconds = Mutex<Int64>(1_800_000_000_000)
    var now: Date { Date(timeIntervalSince1970: Double(milliseconds.withLock { $0 }) / 1000) }
    func advance(_ delta: Int64) { milliseconds.withLock { $0 = max(0, $0 + delta) } }
    func set(to other: SimClock, plus delta: Int64 = 0) {
        let target = other.milliseconds.withLock { $0 } + delta
        milliseconds.withLock { $0 = max(0, target) }
    }
}

/// Row ids from a seeded generator, so a simulated run replays exactly.
final class SeededIDs: Sendable {
    let rng: Mutex<SeededRandom>
    init(seed: UInt64) { rng = Mutex(SeededRandom(seed: seed)) }
    func next() -> String {
        rng.withLock { rng in (0..<2).map { _ in String(rng.next(), radix: 16) }.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined() }
    }
}

/// The network between one workstation and the server, in memory, with its faults: the server
/// takes only the first `delivered` messages (the rest are lost with the connection), and the
/// workstation gets only the answers to the first `answered` (an acknowledgement lost after the
/// server committed). Both sides run their real session code: `Replica.sync(over:)` and `ServerSession`.
final class MemoryConnection: SyncConnection {
    struct Cut: Error {}

    var session: ServerSession
    let delivered: Int
    let answered: Int
    private var handled = 0
    private var answers: [WireMessage] = []
    private var broken = false

    init(session: ServerSession, delivered: Int = .max, answered: Int = .max) {
        self.session = session
        self.delivered = delivered
        self.answered = answered
    }

    func send(_ message: WireMessage) async throws {
        guard !broken else { throw Cut() }
        guard handled < delivered else {
            broken = true
            await session.disconnected(outcome: "disconnected")
            throw Cut()
        }
        handled += 1
        let (replies, ends) = await session.receive(message)
        if handled <= answered {
            answers += replies
        } else {
            broken = true
            await session.disconnected(outcome: "disconnected")
        }
        if ends { broken = true }
    }

    func receive() async throws -> WireMessage? {
        if !answers.isEmpty { return answers.removeFirst() }
        if broken { throw Cut() }
        return nil
    }
}

/// A deterministic simulation of K workstations and the server (DESIGN §8): random staff actions,
/// random sync sessions over an in-memory network that cuts connections and loses
/// acknowledgements, partitions, crashes (reopen from disk), wall clocks that jump — and the admin's
/// bad days: the server restored from one of its backups, a replica file copied to a second
/// machine, a workstation restored from its own backup, and the rescue of a refused copy under a
/// new identity. Everything runs through the real stores and the real session code on both sides;
/// only the network is memory, so a seed replays exactly.
struct Simulation {
    struct Workstation {
        var replica: Replica
        let id: ReplicaID
        let name: String
        let path: String
        let clock: SimClock
        let ids: SeededIDs
        var partitioned = false
        /// Another copy of this replica id exists (a copied file, a restore from its own backup),
        /// so the server may rightly refuse it as a fork. No other workstation may ever be refused.
        var sharesIdentity = false
        /// The server refused it as a copy: it keeps working offline until it is rescued.
        var refused = false
        /// Rescued under another identity: no longer used, its file kept for the checks.
        var retired = false
        /// A copy of its file taken earlier (its own backup), to restore later.
        var backup: String?

        var configuration: Replica.Configuration {
            let clock = self.clock, ids = self.ids
            return .init(now: { clock.now }, makeID: { ids.next() })
        }
    }

    struct Stats: CustomStringConvertible {
        var steps = 0, actions = 0, refused = 0, sessions = 0, failedSessions = 0, cutSessions = 0, lostAnswers = 0
        var crashes = 0, serverCrashes = 0, clockJumps = 0, writesChecked = 0, conflicts = 0
        var serverBackups = 0, serverRestores = 0, recovered = 0, resumed = 0, clones = 0, workstationRestores = 0
        var forkRefusals = 0, rescues = 0, rescued = 0, leftOut = 0, copiesChecked = 0, frontiersChecked = 0, clockRefusals = 0, restamped = 0, clocksChecked = 0, tampered = 0, contradictions = 0, signaturesChecked = 0, cellsChecked = 0
        var erasures = 0, erasedChecked = 0, merges = 0, revocations = 0, rotations = 0, rotationsChecked = 0
        var description: String {
            "steps \(steps), actions \(actions) (refused \(refused)), sessions \(sessions) (failed \(failedSessions): cut \(cutSessions), answers lost \(lostAnswers)), "
                + "crashes \(crashes) + server \(serverCrashes), clock jumps \(clockJumps) (sessions refused for the clock \(clockRefusals), changes stamped again \(restamped)), conflicts \(conflicts); "
                + "server backups \(serverBackups), restores \(serverRestores) (changes recovered \(recovered), pulls resumed \(resumed)); "
                + "copied replicas \(clones), workstation restores \(workstationRestores), fork refusals \(forkRefusals), rescues \(rescues) (changes \(rescued), left out by a rule \(leftOut)); "
                + "writes checked \(writesChecked), copies of writes checked \(copiesChecked), conflict values checked against their frontier \(frontiersChecked), replicas' clocks checked \(clocksChecked), signatures flipped on a workstation \(tampered), records contradicting themselves written around the checks \(contradictions), transactions on the server verified \(signaturesChecked), personal columns checked to be ciphertext \(cellsChecked); erasures \(erasures) (stores checked to hold nothing of an erased resident: \(erasedChecked)), same-woman stays merged \(merges); workstations revoked \(revocations) (key rotations by a leader's session \(rotations), stores checked to hold nothing under a retired key \(rotationsChecked))"
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
    /// The server's backups, oldest first.
    var serverBackups: [String] = []
    /// The changes of transactions whose signature was flipped by hand: refused, or (if the server
    /// took them before the flip) kept as first sent; either way a copy may diverge there.
    var tamperedDots: Set<Dot> = []
    /// Changes a modified client wrote that contradict themselves (an admission in the future, a
    /// discharge before the admission): the server must never hold one.
    var forgedDots: Set<Dot> = []
    /// Changes of refused copies a rescue left out, named, because a rule refuses them now.
    var leftOutDots: Set<Dot> = []
    /// Every workstation identity ever enrolled, and every run of the server (the registry
    /// journal's part in a restore).
    var enrollments: [(name: String, id: ReplicaID)] = []
    var revocations: [(name: String, at: Date)] = []
    var runs: [ReplicaID] = []
    var serverPath: String { folder.file("server.db") }

    init(seed: UInt64, workstations: Int, rooms: Int) throws {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        folder = try TemporaryDirectory("sim")
        self.rooms = rooms
        server = try ServerStore.create(at: folder.file("server.db"), rooms: rooms, now: serverClock.now,
                                        serverID: ReplicaID(UUID(uuid: (0xFF, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0))))
        try server.addTestStaff()
        try beginRun()
        for index in 0..<workstations {
            let id = ReplicaID(UUID(uuid: (UInt8(index), 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, UInt8(seed & 0xFF))))
            let clock = SimClock()
            clock.advance(Int64(index) * 7)
            try addStation(name: "w\(index)", id: id, clock: clock)
        }
    }

    /// The server starts: a new run, under a new writer id, journaled.
    mutating func beginRun() throws {
        let writer = Self.id(&rng)
        runs.append(writer)
        server = try server.beginRun(writer: writer, at: serverClock.now)
    }

    /// A replica id from the seeded generator.
    static func id(_ rng: inout SeededRandom) -> ReplicaID {
        let (a, b) = (rng.next(), rng.next())
        let bytes = withUnsafeBytes(of: a.bigEndian) { Array($0) } + withUnsafeBytes(of: b.bigEndian) { Array($0) }
        return ReplicaID(bytes: bytes)!
    }

    /// Enrolls a workstation and makes its replica (bound to the server, no rooms until it syncs).
    /// The member of staff who works at station `index` (logged in there: her session signs its
    /// writes, and at its syncs stamps again what she wrote while its clock was wrong).
    static func author(of index: Int) -> KeySigner { staff(["s", "mette", "setup"][index % 3]) }

    mutating func addStation(name: String, id: ReplicaID, clock: SimClock) throws {
        try server.enroll(name: name, replicaID: id, serial: "sim")
        enrollments.append((name, id))
        let path = folder.file("\(name).replica")
        var station = Workstation(replica: try Replica.inMemory(rooms: 0), id: id, name: name, path: path, clock: clock,
                                  ids: SeededIDs(seed: seed &* 31 &+ UInt64(stations.count)))
        station.replica = try Replica.createBound(at: path, server: "sim:1", replicaID: id, configuration: station.configuration)
        stations.append(station)
    }

    func remove() { folder.remove() }

    var live: [Int] { stations.indices.filter { !stations[$0].retired } }

    static let trace = ProcessInfo.processInfo.environment["SIM_TRACE"] != nil
    func note(_ text: @autoclosure () -> String) { if Self.trace { print("[sim \(seed) step \(stats.steps)] \(text())") } }

    mutating func run(steps: Int) async throws {
        for _ in 0..<steps {
            stats.steps += 1
            let index = live.randomElement(using: &rng)!
            for station in stations {
                station.clock.advance(Int64.random(in: 0...3_000, using: &rng))
            }
            serverClock.advance(Int64.random(in: 0...3_000, using: &rng))
            switch Double.random(in: 0..<1, using: &rng) {
            case ..<0.495: act(on: index)
            case ..<0.4975: try tamper(index)
            case ..<0.50: try await contradict(index)
            case ..<0.80: if !stations[index].partitioned { await session(index, faults: true) }
            case ..<0.85: stations[index].partitioned.toggle()
            case ..<0.89:
                // Crash: the process dies; only what was committed is on disk.
                stations[index].replica = try Replica.open(at: stations[index].path, configuration: stations[index].configuration)
                stats.crashes += 1
            case ..<0.91:
                try server.close()
                server = try ServerStore.open(at: serverPath)
                try beginRun()
                stats.serverCrashes += 1
            case ..<0.925:
                let backup = folder.file("server-backup-\(serverBackups.count).db")
                _ = try server.backup(to: backup)
                serverBackups.append(backup)
                stats.serverBackups += 1
            case ..<0.945: try await restoreServer()
            case ..<0.950: try copyReplica(of: index)
            case ..<0.952: await revoke(index)
            case ..<0.958: try restoreWorkstation(index)
            case ..<0.965:
                if let refused = live.first(where: { stations[$0].refused }) { try await rescue(refused) }
            case ..<0.98:
                // NTP steps a clock back up to an hour, or a laptop wakes a day ahead: beyond the
                // server's bound (5 minutes), its sessions are refused until the clock is set right.
                let jump = rng.chance(0.5) ? -Int64.random(in: 1...3_600_000, using: &rng) : Int64.random(in: 1...86_400_000, using: &rng)
                stations[index].clock.advance(jump)
                stats.clockJumps += 1
            default:
                // Someone sets the clock right (within a few seconds of the server's).
                stations[index].clock.set(to: serverClock, plus: Int64.random(in: -5_000...5_000, using: &rng))
            }
        }
        // Heal: every workstation syncs without faults; copies the server refuses are rescued under
        // a new identity; then everyone syncs twice more.
        for index in stations.indices {
            stations[index].partitioned = false
            stations[index].clock.set(to: serverClock, plus: Int64.random(in: -5_000...5_000, using: &rng))
        }
        for _ in 0..<8 {
            // A copy may be refused only after the other copy sent more, later in the same round or
            // in the next: go on until a whole round has refused no one and nobody sent anything.
            var quiet = true
            for index in live {
                guard let report = await session(index, faults: false), report.pushed + report.recovered == 0 else {
                    quiet = false
                    continue
                }
            }
            let refused = live.filter { stations[$0].refused }
            if quiet && refused.isEmpty { break }
            for index in refused { try await rescue(index) }
        }
        for _ in 0..<2 {
            for index in live {
                let ok = await session(index, faults: false) != nil
                #expect(ok, "seed \(seed): \(stations[index].name) cannot sync after the faults ended (replay with SIM_SEED=\(seed))")
            }
        }
    }

    mutating func act(on index: Int) {
        let replica = stations[index].replica
        let author = Self.author(of: index)
        stats.actions += 1
        do {
            let stays = try replica.stays()
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...2:
                let anonymous = rng.chance(0.25)
                let room = rng.chance(0.6) ? Int.random(in: 1...rooms, using: &rng) : nil
                // A few CPR numbers come back: the same woman admitted at two workstations offline
                // (a `person` conflict on the server), or again where she is staying (asked first).
                let cpr = !anonymous && rng.chance(0.3) ? ["120388-1234", "010190-2345", "311299-3456"].randomElement(using: &rng) : nil
                var admission = Admission(anonymous: anonymous, name: anonymous ? nil : "N\(stats.actions)", cpr: cpr, alias: anonymous ? "A\(stats.actions)" : nil,
                                          municipality: ["Køge", "Greve", "Solrød"].randomElement(using: &rng)!,
                                          children: rng.chance(0.3) ? [.init(alias: "c")] : [], room: room)
                admission.admitAgain = rng.chance(0.2)
                try replica.admit(admission, by: author)
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
                if rng.chance(0.15) {
                    // A leader erases a resident (at her request): erasure must win over every
                    // edit of hers made anywhere, before or after, and reach every copy.
                    guard let stay = try replica.stays(includeDischarged: true).randomElement(using: &rng) else { return }
                    if ProcessInfo.processInfo.environment["SIM_NO_ERASE"] == nil { try replica.erase(resident: stay.resident, by: author) }
                    stats.erasures += 1
                    return
                }
                guard let conflict = try replica.conflicts().randomElement(using: &rng) else { return }
                if conflict.kind == .person {
                    try replica.resolveConflict(conflict.id, merge: true, by: author)
                    stats.merges += 1
                } else if conflict.kind == .room {
                    try replica.resolveConflict(conflict.id, keep: 0, by: author)
                } else {
                    try replica.resolveConflict(conflict.id, keep: Int.random(in: 0..<conflict.candidates.count, using: &rng), by: author)
                }
            }
        } catch {
            note("action refused: \(error)")
            stats.refused += 1  // a rule refused it (room taken, already discharged…): nothing written
        }
    }

    /// One sync session through the real session code on both sides, over a network that cuts
    /// the connection or loses answers when `faults`. Returns its report when it completed.
    @discardableResult
    mutating func session(_ index: Int, faults: Bool) async -> SyncReport? {
        stats.sessions += 1
        var delivered = Int.max, answered = Int.max
        if faults && rng.chance(0.25) {
            if rng.chance(0.5) {
                delivered = Int.random(in: 1...8, using: &rng)
                stats.cutSessions += 1
            } else {
                answered = Int.random(in: 0...7, using: &rng)
                stats.lostAnswers += 1
            }
        }
        let clock = serverClock
        var quiet = Logger(label: "sim")
        quiet.logLevel = .critical
        let serverSession = ServerSession(store: server, maximumBatch: faults ? Int.random(in: 1...12, using: &rng) : 500,
                                          peer: .init(replicaID: stations[index].id, serial: "sim"), now: { clock.now }, logger: quiet)
        let connection = MemoryConnection(session: serverSession, delivered: delivered, answered: answered)
        do {
            let report = try await stations[index].replica.sync(over: connection, pull: !(faults && rng.chance(0.1)), session: Self.author(of: index))
            note("\(index) \(stations[index].name) synced: pushed \(report.pushed) pulled \(report.pulled) restamped \(report.restamped) rejected \(report.rejected) \((try? stations[index].replica.history().filter { $0.state == "rejected" }.compactMap(\.rejection).prefix(2)) ?? []) recovered \(report.recovered) resumed \(report.resumedFrom.map(String.init) ?? "-") counter \((try? stations[index].replica.syncState().counter) ?? 0)")
            stats.recovered += report.recovered
            stats.restamped += report.restamped
            // A leader's session carries out a rotation (a workstation revoked): as `shelter sync` does.
            do {
                if try stations[index].replica.rewrapResidentKeys(by: Self.author(of: index)) > 0 {
                    stats.rotations += 1
                    note("\(index) \(stations[index].name) rotated the shelter key")
                }
            } catch {
                Issue.record("seed \(seed): \(stations[index].name) could not carry out a rotation: \(error) (replay with SIM_SEED=\(seed))")
            }
            if report.resumedFrom != nil { stats.resumed += 1 }
            return report
        } catch {
            stats.failedSessions += 1
            let code = (try? stations[index].replica.status().lastError?.code) ?? nil
            note("\(index) \(stations[index].name) sync failed: \(code ?? "?")")
            if code == "clockSkew" {
                stats.clockRefusals += 1
            } else if code == "replicaForked" || code == "replicaRewound" {
                if !stations[index].refused { stats.forkRefusals += 1 }
                stations[index].refused = true
                #expect(stations[index].sharesIdentity,
                        "seed \(seed): \(stations[index].name) was refused as a copy (\(code!)) but no copy of it exists (replay with SIM_SEED=\(seed))")
            } else if !faults {
                Issue.record("seed \(seed): \(stations[index].name) failed to sync without faults: \(error) (replay with SIM_SEED=\(seed))")
            }
            return nil
        }
    }

    // MARK: The admin's bad days

    /// A consistent copy of a live replica file (SQLite's backup, WAL included).
    static func copyFile(_ source: String, to destination: String) throws {
        let copy = try DatabaseQueue(path: destination)
        try DatabaseQueue(path: source).backup(to: copy)
        try copy.close()
    }

    /// The server's disk dies; the admin restores one of its backups (usually the latest) and
    /// starts the server again. Workstations heal it at their next syncs. Not while a copy of a
    /// workstation from an earlier point exists: that double fault is a known limit (docs/RELIABILITY.md).
    mutating func restoreServer() async throws {
        guard !serverBackups.isEmpty, !stations.contains(where: { !$0.retired && ($0.sharesIdentity || $0.backup != nil) }) else { return }
        let backup = rng.chance(0.7) ? serverBackups.last! : serverBackups.randomElement(using: &rng)!
        try server.close()
        _ = try ServerStore.restore(backup: backup, at: serverPath, now: serverClock.now)
        server = try ServerStore.open(at: serverPath)
        // The registry journal brings back the workstations enrolled and the runs started since the backup.
        for (name, id) in enrollments where try await server.registration(id) == nil {
            try server.enroll(name: name, replicaID: id, serial: "sim")
        }
        for run in runs { try server.rememberRun(run, at: "journal") }
        for revoked in revocations { try server.revoke(name: revoked.name, at: revoked.at) }
        try beginRun()
        stats.serverRestores += 1
        note("server restored from \(backup)")
    }

    /// A replica file copied to a second machine, which works on with the same identity.
    mutating func copyReplica(of index: Int) throws {
        guard stats.clones < 2, !stations[index].refused else { return }
        let source = stations[index]
        let path = folder.file("\(source.name)-copy\(stats.clones).replica")
        try Self.copyFile(source.path, to: path)
        let clock = SimClock()
        clock.advance(source.clock.milliseconds.withLock { $0 } - clock.milliseconds.withLock { $0 })
        var copy = Workstation(replica: try Replica.inMemory(rooms: 0), id: source.id, name: source.name, path: path, clock: clock,
                               ids: SeededIDs(seed: seed &* 131 &+ UInt64(stations.count)))
        copy.replica = try Replica.open(at: path, configuration: copy.configuration)
        copy.sharesIdentity = true
        stations[index].sharesIdentity = true
        stations.append(copy)
        stats.clones += 1
        note("\(index) \(source.name) copied to \(stations.count - 1)")
    }

    /// A laptop is stolen the morning after its last sync (everything it wrote reached the server):
    /// the admin revokes it. The server retires the shelter key; the next leader's session at any
    /// workstation makes a new one, and nothing under the old one stays in any store.
    mutating func revoke(_ index: Int) async {
        let station = stations[index]
        guard stats.revocations < 1, live.count > 2, !station.sharesIdentity, !station.refused, station.backup == nil, !station.partitioned,
              await session(index, faults: false) != nil, (try? stations[index].replica.status().unsynced) == 0 else { return }
        do {
            try server.revoke(name: station.name, at: serverClock.now)
        } catch {
            Issue.record("seed \(seed): revoking \(station.name) failed: \(error) (replay with SIM_SEED=\(seed))")
            return
        }
        revocations.append((station.name, serverClock.now))
        stations[index].retired = true
        stats.revocations += 1
        note("\(index) \(station.name) revoked")
    }

    /// A workstation backs up its own file; later its disk dies and the backup is restored.
    mutating func restoreWorkstation(_ index: Int) throws {
        let station = stations[index]
        guard let backup = station.backup else {
            let backup = folder.file("\(station.name)-\(index)-backup.replica")
            try Self.copyFile(station.path, to: backup)
            stations[index].backup = backup
            note("\(index) \(station.name) backed up at counter \((try? station.replica.syncState().counter) ?? 0)")
            return
        }
        stations[index].replica = try Replica.inMemory(rooms: 0)  // the process is gone
        for suffix in ["", "-wal", "-shm"] { unlink(station.path + suffix) }
        try Self.copyFile(backup, to: station.path)
        unlink(backup)
        stations[index].replica = try Replica.open(at: station.path, configuration: station.configuration)
        stations[index].backup = nil
        stations[index].sharesIdentity = true
        stats.workstationRestores += 1
        note("\(index) \(station.name) restored from its backup, counter now \((try? stations[index].replica.syncState().counter) ?? 0)")
    }

    /// The admin enrolls a new identity; staff make a replica from it, sync it, rescue the refused
    /// copy into it, and stop using the copy.
    mutating func rescue(_ index: Int) async throws {
        let old = stations[index]
        let clock = SimClock()
        clock.set(to: serverClock)  // a machine set up today, its clock right
        try addStation(name: "\(old.name)-r\(stats.rescues)", id: Self.id(&rng), clock: clock)
        let new = stations.count - 1
        let synced = await session(new, faults: false) != nil
        #expect(synced, "seed \(seed): a new replica for the rescue could not sync")
        let report = try stations[new].replica.rescue(from: old.replica, by: Self.author(of: new))
        stats.rescues += 1
        stats.rescued += report.rescued
        for left in report.leftOut {
            leftOutDots.formUnion(left.changes)
            stats.leftOut += left.changes.count
        }
        stations[index].retired = true
        note("\(index) \(old.name) rescued into \(new): \(report)")
    }

    // MARK: Checks

    /// No stamp a replica holds (the server's included) is ahead of the server's wall clock by more
    /// than the bound: a workstation whose clock ran ahead neither pulled anyone's clock along nor
    /// kept its own future stamps (they were stamped again before they were sent).
    mutating func checkClocks() throws {
        let limit = UInt64(serverClock.milliseconds.withLock { $0 }) + 300_000
        for path in [serverPath] + stations.filter { !$0.retired }.map(\.path) {
            let latest = try DatabaseQueue(path: path).read { db in
                try Int64.fetchOne(db, sql: "SELECT MAX(hlc) FROM sync_log WHERE state <> 2") ?? 0
            }
            stats.clocksChecked += 1
            #expect(HLC(rawValue: UInt64(latest)).milliseconds <= limit,
                    "seed \(seed): \(path) holds a stamp \(HLC(rawValue: UInt64(latest)).milliseconds - limit + 300_000) ms ahead of the server's clock (replay with SIM_SEED=\(seed))")
        }
    }

    /// A hostile hand edits the replica file: one byte of the signature of its newest unsynced
    /// transaction flipped. The server must refuse it (`badSignature`) — never hold it.
    mutating func tamper(_ index: Int) throws {
        let station = stations[index]
        let byte = Int.random(in: 0..<64, using: &rng)
        let flipped = try DatabaseQueue(path: station.path).write { db -> [Dot] in
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, counter, seal FROM sync_log WHERE state = 0 AND seal IS NOT NULL ORDER BY seq DESC LIMIT 1") else { return [] }
            var seal = [UInt8](row["seal"] as Data)
            var reader = BinaryReader(seal)
            guard let decoded = try ChangeCodec.decodeSeal(from: &reader) else { return [] }
            seal[seal.count - 1 - byte] ^= 0x01
            try db.execute(sql: "UPDATE sync_log SET seal = ? WHERE seq = ?", arguments: [Data(seal), row["seq"] as Int64])
            return (decoded.first...UInt64(row["counter"] as Int64)).map { Dot(replica: station.id, counter: $0) }
        }
        tamperedDots.formUnion(flipped)
        if !flipped.isEmpty {
            stats.tampered += 1
            note("\(index) \(stations[index].name): a signature flipped by hand")
        }
    }

    /// A modified client writes, around the workstation's checks, a record that contradicts itself:
    /// an admission days after its own clock, or a discharge before a stay's admission. Signed by
    /// its member of staff; the server must refuse it (`invalidValue`) — never hold it.
    mutating func contradict(_ index: Int) async throws {
        let station = stations[index]
        // Sent at once (so that no later rescue of a copy carries it: a rescue re-signs what it
        // carries, and its own rules refuse this). If that session cannot run, it never happened.
        guard !station.refused, !station.partitioned else { return }
        let before = folder.file("\(station.name).before-contradiction")
        try? FileManager.default.removeItem(atPath: before)
        try FileManager.default.copyItem(atPath: station.path, toPath: before)
        let wall = UInt64(max(0, station.clock.now.timeIntervalSince1970 * 1000))
        let stays = try station.replica.stays()
        let target = rng.chance(0.5) ? stays.randomElement(using: &rng) : nil
        let newRow = "ff" + String(format: "%030x", stats.steps)
        let written = try await DatabaseQueue(path: station.path).write { db -> [Dot] in
            let store = SyncStore(schema: ShelterSchema.schema)
            if let stay = target, let admitted = try? Timestamp.parse(stay.admittedAt) {
                try store.write(db, table: ShelterSchema.stays.name, rowID: stay.id,
                                values: ["status": .text("discharged"), "discharged_at": .text(Timestamp.format(admitted.addingTimeInterval(-86_400)))],
                                author: Self.author(of: index).author, wallMilliseconds: wall)
            } else {
                try store.write(db, table: ShelterSchema.stays.name, rowID: newRow,
                                values: ["resident": .text("nobody"), "status": .text("awaitingRoom"),
                                         "admitted_at": .text(Timestamp.format(station.clock.now.addingTimeInterval(3 * 86_400)))],
                                author: Self.author(of: index).author, wallMilliseconds: wall)
            }
            return try store.sealTail(db, signer: Self.author(of: index)).map(\.dot)
        }
        // The workstation's process starts again (its counter is in the file).
        stations[index].replica = try Replica.open(at: station.path, configuration: station.configuration)
        await session(index, faults: false)
        let rejected = try await DatabaseQueue(path: station.path).read { db in
            try SyncStore(schema: ShelterSchema.schema).log(db).filter { written.contains($0.change.dot) }.allSatisfy { $0.state == .rejected }
        }
        guard rejected, !written.isEmpty else {
            try FileManager.default.removeItem(atPath: station.path)
            try FileManager.default.moveItem(atPath: before, toPath: station.path)
            stations[index].replica = try Replica.open(at: station.path, configuration: station.configuration)
            return
        }
        try? FileManager.default.removeItem(atPath: before)
        tamperedDots.formUnion(written)
        forgedDots.formUnion(written)
        stats.contradictions += 1
        note("\(index) \(station.name): a record contradicting itself written around the checks")
    }

    mutating func check() throws {
        let serverSnapshot = try ReplicaInspector(path: folder.file("server.db")).domainSnapshot()
        for station in stations where !station.retired {
            // A change the server refused stays on its workstation (marked rejected): its rows may differ.
            let refusedRows = try DatabaseQueue(path: station.path).read { db in
                let refused = try SyncStore(schema: ShelterSchema.schema).log(db).filter { $0.state == .rejected || tamperedDots.contains($0.change.dot) }
                var rows = Set(refused.map { "id:\"\($0.change.rowID)\"" })
                // An erasure the server refused was carried out here all the same (erasing cannot
                // wait, nor be undone): every row of hers may differ.
                for erasure in refused where erasure.change.table == ShelterSchema.erasures.name {
                    let resident = erasure.change.rowID
                    rows.insert("resident:\"\(resident)\"")
                    for stay in try String.fetchAll(db, sql: "SELECT id FROM stays WHERE resident = ?", arguments: [resident]) {
                        rows.insert("stay:\"\(stay)\"")
                    }
                    for id in try String.fetchAll(db, sql: "SELECT id FROM children WHERE resident = ? UNION SELECT id FROM stays WHERE resident = ?",
                                                  arguments: [resident, resident]) {
                        rows.insert("row:\"\(id)\"")
                    }
                    rows.insert("row:\"\(resident)\"")
                }
                return rows
            }
            func comparable(_ rows: [String]?) -> [String] { (rows ?? []).filter { row in !refusedRows.contains { row.contains($0) } } }
            let snapshot = try ReplicaInspector(path: station.path).domainSnapshot()
            for table in serverSnapshot.keys.sorted() where comparable(snapshot[table]) != comparable(serverSnapshot[table]) {
                let mine = Set(comparable(snapshot[table])), theirs = Set(comparable(serverSnapshot[table]))
                note("differs: here \(mine.subtracting(theirs)) server \(theirs.subtracting(mine))")
                if Self.trace, let row = mine.subtracting(theirs).first?.split(separator: "\"").dropFirst().first.map(String.init) {
                    for (label, path) in [("here", station.path), ("server", serverPath)] {
                        let erasureSeqs = try DatabaseQueue(path: path).read { db in try Row.fetchAll(db, sql: "SELECT l.seq, l.row, p.replica_id FROM sync_log l JOIN sync_peers p ON p.idx = l.peer WHERE tbl = 16").map(\.description) }
                        note("  \(label) erasures at \(erasureSeqs)")
                        let entries = try DatabaseQueue(path: path).read { db in try SyncStore(schema: ShelterSchema.schema).log(db, rows: [row]) }
                        for e in entries.reversed() {
                            note("  \(label) seq \(e.sequence) \(e.change.dot) \(e.state) hlc \(e.change.hlc) \(e.change.values) ctx \(e.change.context) author \(e.change.author)")
                        }
                    }
                }
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
            var seen: Set<String> = []
            for row in conflicts where !seen.insert(row.description).inserted {
                Issue.record("seed \(seed): a conflict was reported twice: \(row) (replay with SIM_SEED=\(seed))")
            }
            try checkLedger(db)
            // The server holds personal data only as ciphertext: every personal cell, in its rows
            // and in every value of its log (the conflict rows copy those).
            let store = SyncStore(schema: ShelterSchema.schema)
            for table in ShelterSchema.schema.tables where !table.personalColumns.isEmpty && table.name != ShelterSchema.conflicts.name {
                for column in table.personalColumns {
                    let plain = try String.fetchAll(db, sql: "SELECT \(column) FROM \(table.name) WHERE \(column) IS NOT NULL AND \(column) <> ''")
                        .filter { !RecordKeys.isSealedCell($0) }
                    #expect(plain.isEmpty, "seed \(seed): \(plain.count) plain \(table.name).\(column) on the server (replay with SIM_SEED=\(seed))")
                    stats.cellsChecked += 1
                }
            }
            for logged in try store.log(db) {
                let personal = ShelterSchema.schema.table(named: logged.change.table)?.personalColumns ?? []
                for (column, value) in logged.change.values where personal.contains(column) && logged.change.table != ShelterSchema.conflicts.name {
                    if let text = value.textValue, !text.isEmpty, !RecordKeys.isSealedCell(text) {
                        Issue.record("seed \(seed): the server's log holds a plain \(logged.change.table).\(column) (replay with SIM_SEED=\(seed))")
                    }
                }
            }
        }
        for path in [serverPath] + stations.filter({ !$0.retired }).map(\.path) {
            try checkErasures(in: path)
            try checkRotation(in: path)
        }
        try checkCopies()
        try checkClocks()
        // Every transaction the server holds is signed, by a member of staff or the server itself.
        let verified = try server.verify()
        stats.signaturesChecked += verified.verified
        #expect(verified.invalid.isEmpty, "seed \(seed): the server holds transactions that do not verify: \(verified.invalid.prefix(3)) (replay with SIM_SEED=\(seed))")
    }

    /// Every erased resident (a row of `erasures`) is gone from the store at `path`: her key and
    /// every personal cell of her row, her children and her stays, in the rows, in every log entry
    /// of those rows, and in the conflict rows about them.
    mutating func checkErasures(in path: String) throws {
        let store = SyncStore(schema: ShelterSchema.schema)
        try DatabaseQueue(path: path).read { db in
            for resident in try String.fetchAll(db, sql: "SELECT id FROM erasures") {
                var rows: [(table: SyncSchema.Table, id: String)] = [(ShelterSchema.residents, resident)]
                rows += try String.fetchAll(db, sql: "SELECT id FROM children WHERE resident = ?", arguments: [resident]).map { (ShelterSchema.children, $0) }
                rows += try String.fetchAll(db, sql: "SELECT id FROM stays WHERE resident = ?", arguments: [resident]).map { (ShelterSchema.stays, $0) }
                for (table, id) in rows {
                    var columns = table.personalColumns
                    if table.name == ShelterSchema.residents.name { columns.insert("key") }
                    if table.name != ShelterSchema.stays.name { columns.insert("alias") }
                    let current = try store.currentRow(db, table: table.name, id: id) ?? [:]
                    for column in columns where !(current[column] ?? .null).isNull {
                        Issue.record("seed \(seed): \(path.split(separator: "/").last!) keeps \(table.name).\(column) of erased resident \(resident.prefix(8)) (replay with SIM_SEED=\(seed))")
                    }
                    for entry in try store.log(db, rows: [id]) where entry.change.table == table.name {
                        for column in columns where !(entry.change.values[column] ?? .null).isNull {
                            Issue.record("seed \(seed): \(path.split(separator: "/").last!) logs \(table.name).\(column) of erased resident \(resident.prefix(8)) at \(entry.change.dot) (\(entry.state)) (replay with SIM_SEED=\(seed))")
                        }
                    }
                    // Conflicts about a personal cell of hers (a room's or a status's hold nothing of hers).
                    let personal = table.personalColumns.map { "'\($0)'" }.joined(separator: ", ")
                    for candidates in try String.fetchAll(db, sql: "SELECT candidates FROM conflicts WHERE tbl = ? AND row = ? AND col IN (\(personal))",
                                                          arguments: [table.name, id])
                    where candidates != "[]" {
                        Issue.record("seed \(seed): \(path.split(separator: "/").last!) keeps a conflict's values about erased \(table.name) \(id.prefix(8)): \(candidates.prefix(20)) (replay with SIM_SEED=\(seed))")
                    }
                }
                stats.erasedChecked += 1
            }
        }
    }

    /// After a workstation's revocation, no store holds a resident's key wrapped under a retired
    /// shelter key, nor a CPR index computed under one — not in a row, not in the log, not in a
    /// conflict: a copy made now gives the old key nothing.
    mutating func checkRotation(in path: String) throws {
        let store = SyncStore(schema: ShelterSchema.schema)
        try DatabaseQueue(path: path).read { db in
            let retired = try String.fetchAll(db, sql: "SELECT id FROM retired_keys")
            guard !retired.isEmpty else { return }
            let name = path.split(separator: "/").last!
            func underRetired(_ text: String?) -> Bool {
                guard let text, !text.isEmpty else { return false }
                return retired.contains { text.hasPrefix("rk1:\($0):") || text.hasPrefix(RecordKeys.indexPrefix + $0 + ":") }
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, key, cpr_index FROM residents") where underRetired(row["key"]) || underRetired(row["cpr_index"]) {
                Issue.record("seed \(seed): \(name) keeps resident \((row["id"] as String).prefix(8)) under a retired shelter key (replay with SIM_SEED=\(seed))")
            }
            for entry in try store.log(db) where entry.change.table == ShelterSchema.residents.name && entry.state != .rejected {
                for column in ["key", "cpr_index"] where underRetired(entry.change.values[column]?.textValue) {
                    Issue.record("seed \(seed): \(name) logs residents.\(column) of \(entry.change.rowID.prefix(8)) under a retired shelter key at \(entry.change.dot) (replay with SIM_SEED=\(seed))")
                }
            }
            for candidates in try String.fetchAll(db, sql: "SELECT candidates FROM conflicts WHERE tbl = 'residents' AND col IN ('key', 'cpr_index')")
            where retired.contains(where: { candidates.contains($0) }) {
                Issue.record("seed \(seed): \(name) keeps a conflict's values under a retired shelter key: \(candidates.prefix(20)) (replay with SIM_SEED=\(seed))")
            }
            stats.rotationsChecked += 1
        }
    }

    /// No write that any copy still holds is missing from the server: every change in a live
    /// workstation's log (its own, acknowledged; others', pulled) is on the server with the same
    /// content — after server restores too — and every change of a retired (refused) copy is on the
    /// server as written or was rescued under the new identity.
    mutating func checkCopies() throws {
        let held: [Dot: LogHash] = try DatabaseQueue(path: serverPath).read { db in
            Dictionary(try SyncStore(schema: ShelterSchema.schema).log(db).map { ($0.change.dot, LogHash.of($0.change)) }, uniquingKeysWith: { a, _ in a })
        }
        for dot in forgedDots {
            #expect(held[dot] == nil, "seed \(seed): the server holds \(dot), a record contradicting itself (replay with SIM_SEED=\(seed))")
        }
        struct Rescued: Hashable { var dot: Dot; var digest: LogHash }
        var reissued: [Rescued: Dot] = [:]
        for station in stations where !station.retired {
            try DatabaseQueue(path: station.path).read { db in
                for row in try Row.fetchAll(db, sql: "SELECT replica, counter, digest, reissued FROM sync_rescued") {
                    let original = Dot(replica: ReplicaID(row[0] as String)!, counter: UInt64(row[1] as Int64))
                    reissued[Rescued(dot: original, digest: LogHash(bytes: row[2] as Data)!)] = Dot(replica: station.id, counter: UInt64(row[3] as Int64))
                }
                for entry in try SyncStore(schema: ShelterSchema.schema).log(db) where entry.state != .rejected && !tamperedDots.contains(entry.change.dot) {
                    stats.copiesChecked += 1
                    #expect(held[entry.change.dot] == LogHash.of(entry.change),
                            "seed \(seed): \(station.name) holds \(entry.change.dot) (\(entry.state)) that the server \(held[entry.change.dot] == nil ? "lacks" : "holds otherwise") (replay with SIM_SEED=\(seed))")
                }
            }
        }
        let erasedOnServer = Set(try DatabaseQueue(path: serverPath).read { db in try String.fetchAll(db, sql: "SELECT id FROM erasures") })
        // Rows the server holds, by table: a copy's change of only what a record is written with once
        // (`ShelterRules.writtenOnce`) has nothing to add to a row the server holds.
        let storePath = serverPath
        let serverRows = { (table: String, row: String) throws -> Bool in
            try DatabaseQueue(path: storePath).read { db in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM \(table.quotedDatabaseIdentifier) WHERE id = ?)", arguments: [row]) ?? false
            }
        }
        for station in stations where station.retired {
            try DatabaseQueue(path: station.path).read { db in
                for entry in try SyncStore(schema: ShelterSchema.schema).log(db)
                where entry.change.dot.replica == station.id && entry.state != .rejected && !tamperedDots.contains(entry.change.dot) {
                    stats.copiesChecked += 1
                    let writtenOnceHeld = Set(entry.change.values.keys).isSubset(of: ShelterRules.writtenOnce[entry.change.table] ?? [])
                        ? try serverRows(entry.change.table, entry.change.rowID) : false
                    let kept = held[entry.change.dot] == LogHash.of(entry.change) || reissued[Rescued(dot: entry.change.dot, digest: LogHash.of(entry.change))].map { held[$0] != nil } == true
                        // An erasure another workstation made meanwhile: the rescue has nothing to add.
                        || (entry.change.table == ShelterSchema.erasures.name && erasedOnServer.contains(entry.change.rowID))
                        || writtenOnceHeld
                        // Left out by the rescue, named in its report with the rule that refuses it now.
                        || leftOutDots.contains(entry.change.dot)
                    #expect(kept, "seed \(seed): \(entry.change.dot) of the refused copy \(station.name) is neither on the server nor rescued (replay with SIM_SEED=\(seed))")
                }
            }
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
                // Erased on purpose (a resident's erasure), audited: not a lost write.
                if entry.change.erased[column] == nil { writes.append((key, entry.change.dot, value)) }
                seenBy[key, default: []].append(contentsOf: entry.change.context.entries.map { Dot(replica: $0.key, counter: $0.value) })
            }
        }
        // Every open field conflict lists only its cell's frontier: values no other write to the
        // cell has seen (so resolving with one never reverts a later write).
        var contexts: [String: [(dot: Dot, context: VersionVector)]] = [:]
        for entry in log {
            for column in entry.change.values.keys {
                contexts["\(entry.change.table)/\(entry.change.rowID)/\(column)", default: []].append((entry.change.dot, entry.change.context))
            }
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, tbl, row, col, dots FROM conflicts WHERE kind = 'field' AND status = 'open' AND candidates <> '[]'") {
            let key = "\(row["tbl"] as String)/\(row["row"] as String)/\(row["col"] as String? ?? "")"
            for dot in (row["dots"] as String? ?? "").split(separator: "|").compactMap({ Dot(String($0)) }) {
                let seen = contexts[key, default: []].contains { $0.dot != dot && $0.context.contains(dot) }
                #expect(!seen, "seed \(seed): open conflict \(row["id"] as String) lists \(dot), which a later write to \(key) replaced (replay with SIM_SEED=\(seed))")
                stats.frontiersChecked += 1
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
            snapshots.append(try ReplicaInspector(path: simulation.folder.file("server.db")).domainSnapshot(opaqueKeys: true))
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
            totals.failedSessions += simulation.stats.failedSessions
            totals.cutSessions += simulation.stats.cutSessions
            totals.lostAnswers += simulation.stats.lostAnswers
            totals.clockJumps += simulation.stats.clockJumps
            totals.refused += simulation.stats.refused
            totals.serverBackups += simulation.stats.serverBackups
            totals.serverRestores += simulation.stats.serverRestores
            totals.recovered += simulation.stats.recovered
            totals.resumed += simulation.stats.resumed
            totals.clones += simulation.stats.clones
            totals.workstationRestores += simulation.stats.workstationRestores
            totals.forkRefusals += simulation.stats.forkRefusals
            totals.rescues += simulation.stats.rescues
            totals.rescued += simulation.stats.rescued
            totals.copiesChecked += simulation.stats.copiesChecked
            totals.frontiersChecked += simulation.stats.frontiersChecked
            totals.clocksChecked += simulation.stats.clocksChecked
            totals.tampered += simulation.stats.tampered
            totals.contradictions += simulation.stats.contradictions
            totals.signaturesChecked += simulation.stats.signaturesChecked
            totals.cellsChecked += simulation.stats.cellsChecked
            totals.clockRefusals += simulation.stats.clockRefusals
            totals.restamped += simulation.stats.restamped
            totals.erasures += simulation.stats.erasures
            totals.erasedChecked += simulation.stats.erasedChecked
            totals.merges += simulation.stats.merges
            totals.revocations += simulation.stats.revocations
            totals.rotations += simulation.stats.rotations
            totals.rotationsChecked += simulation.stats.rotationsChecked
        }
        print("simulation: \(Self.seeds.count) seeds; \(totals)")
    }
}
