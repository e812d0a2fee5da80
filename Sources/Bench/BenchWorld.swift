import ClientKit
import Crypto
import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore

/// A bench failure, said plainly.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The bench's world: a server directory, a `shelter server run` child process on loopback, and
/// workstation replicas enrolled with it.
final class BenchWorld {
    let folder: String
    let directory: ServerDirectory
    var server: Process?
    var port = 0
    var enrolled = 0

    /// The server's `--max-batch` (nil: its default).
    let maxBatch: Int?
    /// Changes per signed transaction in the outboxes the bench makes: a staff action's size (an
    /// admission is a resident, a stay, a child or two and a notification).
    let perTransaction: Int

    init(maxBatch: Int? = nil, perTransaction: Int = 6) throws {
        self.maxBatch = maxBatch
        self.perTransaction = max(1, perTransaction)
        folder = FileManager.default.temporaryDirectory.path + "/shelter-bench-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        directory = try ServerDirectory.initialize(at: folder + "/srv", rooms: 9)
        // The member of staff whose session signs every benchmark write (keys in memory, as in an agent).
        try directory.store().addStaff(name: "bench", role: .leader, keys: Self.keys,
                                       sealedKeys: try Self.keys.sealed(passphrase: "bench passphrase", staffID: "bench"))
        // The shelter key she holds (the server refuses a resident key wrapped under one no one was given).
        try directory.store().storeGrants([(staff: "bench", shelterKey: Self.shelterKey.id,
                                            sealed: try RecordKeys.grant(Self.shelterKey, to: Self.keys.agreementKey, staffID: "bench"))])
        try startServer()
    }

    func remove() {
        if let server, server.isRunning { kill(server.processIdentifier, SIGTERM); server.waitUntilExit() }
        if let keep = ProcessInfo.processInfo.environment["BENCH_KEEP_LOG"] {
            try? FileManager.default.removeItem(atPath: keep)
            try? FileManager.default.copyItem(atPath: folder + "/server.log", toPath: keep)
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The `shelter` binary built next to this one.
    var shelterBinary: String { Self.shelterBinary }

    static var shelterBinary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shelter").path
    }

    /// The bench runs `shelter` as its server and its fan-in workstations; `swift run shelter-bench`
    /// builds only the bench. Builds it (same configuration, same build folder) when this is run from
    /// the package's folder; else says what is missing.
    static func ensureShelterBinary() throws {
        let binary = shelterBinary
        guard !FileManager.default.isExecutableFile(atPath: binary) else { return }
        let folder = URL(fileURLWithPath: binary).deletingLastPathComponent()
        let configuration = folder.lastPathComponent == "debug" ? "debug" : "release"
        guard FileManager.default.fileExists(atPath: "Package.swift") else {
            throw BenchError("the bench needs the `shelter` binary beside it (\(binary)), and this is not the package's folder to build it in: run `swift build -c \(configuration) --product shelter` there first")
        }
        FileHandle.standardError.write(Data("shelter-bench: building the `shelter` binary it runs (swift build -c \(configuration) --product shelter)…\n".utf8))
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        build.arguments = ["swift", "build", "-c", configuration, "--product", "shelter"]
        build.standardOutput = FileHandle.standardError
        try build.run()
        build.waitUntilExit()
        guard build.terminationStatus == 0, FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("could not build the `shelter` binary the bench runs (swift build -c \(configuration) --product shelter exited \(build.terminationStatus)); expected it at \(binary)")
        }
    }

    func startServer() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: shelterBinary)
        process.arguments = ["server", "run", "--dir", directory.path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--idle-timeout", "120"] + (maxBatch.map { ["--max-batch", String($0)] } ?? [])
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let handle = errors.fileHandleForReading
        var line = ""
        while !line.hasPrefix("listening on 127.0.0.1:") {
            var bytes: [UInt8] = []
            while true {
                let byte = handle.readData(ofLength: 1)
                guard let b = byte.first else { throw CocoaError(.fileReadUnknown) }
                if b == 10 { break }
                bytes.append(b)
            }
            line = String(decoding: bytes, as: UTF8.self)
        }
        port = Int(line.dropFirst("listening on 127.0.0.1:".count)) ?? 0
        // The rest of the server's log goes to server.log in the world's folder.
        let logPath = folder + "/server.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        Thread.detachNewThread {
            while case let data = handle.availableData, !data.isEmpty { log?.write(data) }
        }
        server = process
    }

    /// The server's peak resident memory so far (VmHWM), in MB.
    func serverPeakRSS() -> Double? {
        guard let pid = server?.processIdentifier,
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }

    static let keys = StaffKeys()
    static let session = KeySigner(name: "bench", keys: keys)
    static let shelterKey = RecordKeys.ShelterKey()

    /// A sync whose every pushed change the server took: a benchmark of refused changes measures
    /// nothing (it once printed 0 changes/s without failing).
    func checkedSync(_ replica: Replica) async throws -> SyncReport {
        let report = try await replica.sync()
        guard report.rejected == 0 else {
            let reason = (try? replica.history().first { $0.state == "rejected" }?.rejection) ?? nil
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey:
                "the server refused \(report.rejected) of the benchmark's changes: \(reason ?? "?")"])
        }
        return report
    }

    func workstation(takesSnapshot: Bool = true) throws -> Replica {
        enrolled += 1
        let name = "w\(enrolled)"
        let enrollment = try directory.enroll(name: name, bundlePath: folder + "/\(name).bundle")
        let pem = String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self)
        var configuration = Replica.Configuration()
        configuration.takesSnapshot = takesSnapshot
        return try Replica.create(at: folder + "/\(name).replica", bundlePEM: pem, bundleSource: enrollment.bundlePath, server: "127.0.0.1:\(port)",
                                  configuration: configuration)
    }

    /// Writes `count` tracked changes (new residents) into a replica in one transaction: the outbox
    /// the push benchmarks send, made quickly.
    /// `edits` > 1: `count` changes over `count / edits` residents, each written `edits` times (the
    /// first writes her row, the others her language), as a record is edited through a stay.
    func fill(_ replica: Replica, count: Int, tag: String, edits: Int = 1) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: replica.path, configuration: config)
        let store = SyncStore(schema: ShelterSchema.schema)
        // As a workstation writes them: her name encrypted under her own key, the key wrapped under
        // the shelter key (one key for all of them here; the server treats both as opaque text).
        let made = try RecordKeys.newResidentKey(residentID: tag, under: Self.shelterKey)
        // Stamped in the last moments, never ahead of the server's clock (it refuses those).
        let start = UInt64(Date().timeIntervalSince1970 * 1000) - UInt64(count)
        try queue.write { db in
            let rows = max(1, count / edits)
            for n in 0..<count {
                let row = String(format: "%@%026d", tag, n % rows)
                if n < rows {
                    let name = try RecordKeys.seal("Resident \(n)", key: made.key, reference: row, table: "residents", row: row, column: "name")
                    try store.write(db, table: "residents", rowID: row,
                                    values: ["anonymous": .integer(0), "name": .text(name), "municipality": .text("Køge"),
                                             "documented": .integer(1), "language": .text("da"), "key": .text(made.wrapped)],
                                    author: "bench", wallMilliseconds: start + UInt64(n))
                } else {
                    try store.write(db, table: "residents", rowID: row, values: ["language": .text(["da", "en", "ar", "so"][(n / rows) % 4])],
                                    author: "bench", wallMilliseconds: start + UInt64(n))
                }
                // Signed by the bench's member of staff, `perTransaction` changes to a transaction.
                if n % perTransaction == perTransaction - 1 || n == count - 1 { try store.sealTail(db, signer: Self.session) }
            }
        }
    }

    /// The same rows inserted into a plain SQLite table (no change tracking), in one transaction.
    func plainInsert(count: Int) throws -> Double {
        let path = folder + "/plain-\(UUID().uuidString.prefix(6)).sqlite"
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try queue.write { db in
            try db.execute(sql: PeerBaseline.schema)
        }
        return try seconds {
            try queue.write { db in
                let statement = try db.makeStatement(sql: "INSERT INTO residents VALUES (?, ?, ?, ?, ?, ?)")
                for n in 0..<count {
                    try statement.execute(arguments: [String(format: "pl%026d", n), 0, "Resident \(n)", "Køge", 1, "da"])
                }
            }
        }
    }

    // MARK: 1. local-write

    func localWrite(actions: Int) async throws -> [ShelterBench.Result] {
        let replica = try workstation()
        _ = try await replica.sync()
        let admissions = actions / 2
        var residents: [String] = []
        let tracked = try seconds {
            for n in 0..<admissions {
                residents.append(try replica.admit(Admission(name: "N\(n)", municipality: "Køge"), by: Self.session).resident)
            }
            for n in 0..<(actions - admissions) {
                try replica.setResident(residents[n % residents.count], fields: [("phone", "\(n)")], by: Self.session)
            }
        }
        let plain = try plainActions(replica: replica, residents: residents, edits: actions - admissions)
        let perAction = tracked / Double(actions) * 1e6, basePerAction = plain / Double(actions) * 1e6
        return [.init(name: "local-write", value: perAction, unit: "µs/action", baseline: basePerAction, ratio: perAction / basePerAction,
                      note: "\(actions) actions (admit + field edit), one transaction each")]
    }

    /// The same rows as `localWrite`'s actions — same tables, ids and values, read back from the
    /// replica — written with plain GRDB: each action one transaction, no change tracking.
    func plainActions(replica: Replica, residents: [String], edits: Int) throws -> Double {
        let tables = ["residents", "stays", "notifications"]
        let source = try DatabaseQueue(path: replica.path)
        var schema: [String] = []
        var residentRows: [String: Row] = [:], stayOf: [String: Row] = [:], notificationOf: [String: Row] = [:]
        try source.read { db in
            for table in tables {
                schema.append(try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table])!)
            }
            for row in try Row.fetchAll(db, sql: "SELECT * FROM residents") { residentRows[row["id"]] = row }
            for row in try Row.fetchAll(db, sql: "SELECT * FROM stays") { stayOf[row["resident"]] = row }
            for row in try Row.fetchAll(db, sql: "SELECT * FROM notifications") { notificationOf[row["stay"]] = row }
        }
        let path = folder + "/plain-actions.sqlite"
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try queue.write { db in for sql in schema { try db.execute(sql: sql) } }
        func insert(_ db: Database, _ table: String, _ row: Row, without: Set<String> = []) throws {
            let columns = row.columnNames.filter { !without.contains($0) }
            try db.execute(sql: "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))",
                           arguments: StatementArguments(columns.map { row[$0] as DatabaseValue }))
        }
        return try seconds {
            for resident in residents {
                try queue.write { db in
                    let stay = stayOf[resident]!
                    try insert(db, "residents", residentRows[resident]!, without: ["phone"])
                    try insert(db, "stays", stay)
                    try insert(db, "notifications", notificationOf[stay["id"]]!)
                }
            }
            for n in 0..<edits {
                try queue.write { db in
                    try db.execute(sql: "UPDATE residents SET phone = ? WHERE id = ?", arguments: ["\(n)", residents[n % residents.count]])
                }
            }
        }
    }

    // MARK: erase

    /// Erasing one resident with `history` changes of hers (an admission, then edits of her phone
    /// and notes) on a replica of `rows` residents: the erasing action, her cells, log entries and
    /// conflict rows. Baseline: clearing the same cells of one row of a plain SQLite table of as
    /// many rows (no log to clear).
    func erase(rows: Int, history: Int) async throws -> [ShelterBench.Result] {
        let replica = try workstation()
        // The staff and the shelter key's grants come with the first sync.
        _ = try await replica.sync()
        try fill(replica, count: rows, tag: "er")
        let resident = try replica.admit(Admission(name: "Erased Resident", cpr: "120388-1234", municipality: "Køge"), by: Self.session).resident
        for n in 0..<(history - 3) {
            try replica.setResident(resident, fields: [(n % 2 == 0 ? "phone" : "notes", "value \(n)")], by: Self.session)
        }
        let erasing = try seconds { try replica.erase(resident: resident, by: Self.session) }
        let path = folder + "/plain-erase.sqlite"
        let queue = try DatabaseQueue(path: path)
        try await queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try await queue.write { db in
            try db.execute(sql: "CREATE TABLE residents (id TEXT PRIMARY KEY NOT NULL, name TEXT, cpr TEXT, phone TEXT, notes TEXT, municipality TEXT)")
            let insert = try db.makeStatement(sql: "INSERT INTO residents VALUES (?, ?, ?, ?, ?, ?)")
            for n in 0..<rows { try insert.execute(arguments: [String(format: "pl%026d", n), "Resident \(n)", "120388-1234", "+45 1234", "a note", "Køge"]) }
        }
        let plain = try seconds {
            try queue.write { db in
                try db.execute(sql: "UPDATE residents SET name = NULL, cpr = NULL, phone = NULL, notes = NULL WHERE id = ?", arguments: [String(format: "pl%026d", rows / 2)])
            }
        }
        return [.init(name: "erase", value: erasing * 1000, unit: "ms", baseline: plain * 1000, ratio: erasing / plain,
                      note: "one resident with \(history) changes in her history, on a replica of \(rows) rows")]
    }

    // MARK: 2–3. push and bootstrap

    /// Pushes `changes` new changes from a new workstation; its rate in changes/s.
    func push(changes: Int, tag: String) async throws -> Double {
        let writer = try workstation()
        _ = try await writer.sync()
        try fill(writer, count: changes, tag: tag)
        var report: SyncReport?
        let push = try await seconds { report = try await checkedSync(writer) }
        return Double(report?.pushed ?? 0) / push
    }

    /// Ed25519 verifications per second on one core, in this run: the server checks the signature
    /// of every pushed transaction once, so at `perTransaction` changes to a transaction this
    /// machine's cores take at most `verify-ceiling` changes/s even if merging cost nothing.
    func signatureCeiling() throws -> [ShelterBench.Result] {
        let key = Curve25519.Signing.PrivateKey()
        let digest = [UInt8](repeating: 7, count: 32)
        let signature = try key.signature(for: digest)
        let publicKey = key.publicKey
        let count = 5_000
        var valid = 0
        let time = seconds { for _ in 0..<count where publicKey.isValidSignature(signature, for: digest) { valid += 1 } }
        guard valid == count else { throw CocoaError(.featureUnsupported) }
        let perSecond = Double(count) / time, cores = ProcessInfo.processInfo.activeProcessorCount
        return [
            .init(name: "verify", value: perSecond, unit: "verifies/s", baseline: nil, ratio: nil,
                  note: "Ed25519 signature checks on one core (\(String(format: "%.1f", 1e6 / perSecond)) µs each)"),
            .init(name: "verify-ceiling", value: perSecond * Double(cores) * Double(perTransaction), unit: "changes/s", baseline: nil, ratio: nil,
                  note: "push can be no faster: \(cores) cores doing nothing but check one signature per \(perTransaction) changes"),
        ]
    }

    func pushAndBootstrap(changes: Int) async throws -> [ShelterBench.Result] {
        let pushRate = try await push(changes: changes, tag: "pu")
        let baseline = try plainInsert(count: changes)
        let peer = try PeerBaseline.measure(count: changes, folder: folder)
        let reader = try workstation()
        var pulled: SyncReport?
        let bootstrap = try await seconds { pulled = try await reader.sync() }
        // A new workstation takes the server's rows in a signed snapshot (and the log after it):
        // the rows it then holds, each a resident of 6 cells here, over the whole session's time.
        let rows = (pulled?.snapshotRows ?? 0) + (pulled?.pulled ?? 0)
        let pullRate = Double(rows) / bootstrap
        let cells = try await DatabaseQueue(path: reader.path).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) * 6 FROM residents") ?? 0
        }
        // The same, replaying the whole log (as every new workstation did before 2026-11-28).
        let replayer = try workstation(takesSnapshot: false)
        var replayed: SyncReport?
        let replay = try await seconds { replayed = try await replayer.sync() }
        let replayRate = Double(replayed?.pulled ?? 0) / replay
        let baseRate = Double(changes) / baseline, peerRate = Double(changes) / peer.seconds
        return [
            .init(name: "push", value: pushRate, unit: "changes/s", baseline: baseRate, ratio: baseRate / pushRate,
                  peer: peerRate, note: "\(changes) changes over mTLS, merged and committed"),
            .init(name: "bootstrap", value: pullRate, unit: "rows/s", baseline: baseRate, ratio: baseRate / pullRate,
                  peer: peerRate, note: "a new replica: a snapshot of \(pulled?.snapshotRows ?? 0) rows, then \(pulled?.pulled ?? 0) changes of the log"),
            .init(name: "bootstrap-cells", value: Double(cells) / bootstrap, unit: "cells/s", baseline: baseRate * 6, ratio: baseRate * 6 * bootstrap / Double(max(1, cells)),
                  note: "the same, counting the \(cells) resident cells it holds (6 a row)"),
            .init(name: "bootstrap-log", value: replayRate, unit: "rows/s", baseline: baseRate, ratio: baseRate / replayRate,
                  peer: peerRate, note: "the same replica replaying the log: \(replayed?.pulled ?? 0) changes, one a row"),
            .init(name: "peer-apply", value: peerRate, unit: "rows/s", baseline: baseRate, ratio: baseRate / peerRate,
                  note: peer.method),
        ]
    }

    /// A new workstation's first sync on a store whose records were edited: `changes` changes over
    /// `changes / edits` residents, on top of what the bench wrote before. Its time by snapshot, with
    /// the time replaying the log (as before 2026-11-28) as its baseline, in the same run.
    func bootstrapEdited(changes: Int, edits: Int) async throws -> [ShelterBench.Result] {
        let writer = try workstation()
        _ = try await writer.sync()
        try fill(writer, count: changes, tag: "ed", edits: edits)
        _ = try await checkedSync(writer)
        let snapshotReader = try workstation(), replayReader = try workstation(takesSnapshot: false)
        var taken: SyncReport?, replayed: SyncReport?
        let snapshot = try await seconds { taken = try await snapshotReader.sync() }
        let replay = try await seconds { replayed = try await replayReader.sync() }
        return [.init(name: "bootstrap-edited", value: snapshot * 1000, unit: "ms", baseline: replay * 1000, ratio: snapshot / replay,
                      note: "first sync of a new replica after \(changes) changes to \(changes / edits) residents: a snapshot of \(taken?.snapshotRows ?? 0) rows; baseline: replaying \(replayed?.pulled ?? 0) changes")]
    }

    /// Push into a store `factor` times larger: the rate of pushing `changes × factor` changes over
    /// the rate of pushing `changes` (1: the cost per change does not grow with the store).
    func pushGrowth(changes: Int, factor: Int, base: Double?) async throws -> [ShelterBench.Result] {
        let small: Double
        if let base { small = base } else { small = try await push(changes: changes, tag: "gs") }
        let large = try await push(changes: changes * factor, tag: "gl")
        return [
            .init(name: "push-\(changes * factor)", value: large, unit: "changes/s", baseline: nil, ratio: nil,
                  note: "push of \(changes * factor) changes, after the others"),
            .init(name: "push-growth", value: large / small, unit: "x", baseline: nil, ratio: nil,
                  note: "push at \(changes * factor) over push at \(changes) changes (1: flat)"),
        ]
    }

    // MARK: 4. noop-sync

    func noopSync(smallRows: Int, largeRows: Int) async throws -> [ShelterBench.Result] {
        func median(_ replica: Replica) async throws -> Double {
            var times: [Double] = []
            for _ in 0..<21 { times.append(try await seconds { _ = try await replica.sync() }) }
            return times.sorted()[times.count / 2] * 1000
        }
        let small = try workstation()
        try fill(small, count: smallRows, tag: "ns")
        _ = try await checkedSync(small)
        let large = try workstation()
        try fill(large, count: largeRows, tag: "nl")
        _ = try await checkedSync(large)
        _ = try await small.sync()
        let smallTime = try await median(small), largeTime = try await median(large)
        return [
            .init(name: "noop-sync-\(smallRows)", value: smallTime, unit: "ms", baseline: nil, ratio: nil, note: "median of 21 syncs with nothing to do"),
            .init(name: "noop-sync-\(largeRows)", value: largeTime, unit: "ms", baseline: smallTime, ratio: largeTime / smallTime,
                  note: "ratio: large against small replica"),
        ]
    }

    // MARK: 5 and 7. fan-in, server RSS

    func fanIn(replicas count: Int, perReplica: Int) async throws -> [ShelterBench.Result] {
        var replicas: [Replica] = []
        for _ in 0..<count { replicas.append(try workstation()) }
        // Every replica is up to date first; the measured sessions push their own changes.
        for replica in replicas { _ = try await replica.sync() }
        for (n, replica) in replicas.enumerated() { try fill(replica, count: perReplica, tag: String(format: "f%03d", n)) }
        /// Every replica syncs at once, each in its own `shelter sync` process as on its own
        /// workstation; returns the total time and each session's time as the client measured it.
        func allAtOnce(pull: Bool) async throws -> (total: Double, sessions: [Double]) {
            var processes: [(Process, Pipe)] = []
            let started = ContinuousClock.now
            for replica in replicas {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: shelterBinary)
                process.arguments = ["sync", "--replica", replica.path, "--json"] + (pull ? [] : ["--push-only"])
                let output = Pipe()
                process.standardOutput = output
                try process.run()
                processes.append((process, output))
            }
            var sessions: [Double] = []
            for (process, output) in processes {
                let data = output.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                guard process.terminationStatus == 0,
                      let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let ms = json["durationMs"] as? Int else {
                    throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "a fan-in sync failed (exit \(process.terminationStatus))"])
                }
                sessions.append(Double(ms) / 1000)
            }
            let elapsed = ContinuousClock.now - started
            return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, sessions.sorted())
        }
        func percentile(_ sorted: [Double], _ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        // The fan-in: every workstation's changes reach the server at once (push-only sessions:
        // on this machine the 50 workstations share the server's two cores, so pulling here would
        // mostly measure their work, not the server's).
        let fanIn = try await allAtOnce(pull: false)
        // Then every workstation catches up at once: full sessions pulling the others' changes.
        let catchUp = try await allAtOnce(pull: true)
        for replica in replicas where try replica.status().rejected > 0 {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "the server refused \(try replica.status().rejected) of a fan-in workstation's changes"])
        }
        var results: [ShelterBench.Result] = [
            .init(name: "fan-in", value: Double(count * perReplica) / fanIn.total, unit: "changes/s", baseline: nil, ratio: nil,
                  note: "\(count) replicas × \(perReplica) changes pushed at once (sync --push-only)"),
            .init(name: "fan-in-p50", value: percentile(fanIn.sessions, 0.5), unit: "ms/session", baseline: nil, ratio: nil, note: ""),
            .init(name: "fan-in-p99", value: percentile(fanIn.sessions, 0.99), unit: "ms/session", baseline: nil, ratio: nil, note: ""),
            .init(name: "catch-up-p50", value: percentile(catchUp.sessions, 0.5), unit: "ms/session", baseline: nil, ratio: nil,
                  note: "then all \(count) sync at once, each pulling the other \((count - 1) * perReplica) changes"),
            .init(name: "catch-up-p99", value: percentile(catchUp.sessions, 0.99), unit: "ms/session", baseline: nil, ratio: nil, note: ""),
        ]
        if let rss = serverPeakRSS() {
            results.append(.init(name: "server-rss", value: rss, unit: "MB", baseline: nil, ratio: nil, note: "the server's peak resident memory (VmHWM) up to and during fan-in and catch-up"))
        }
        return results
    }

    // MARK: 6. metadata

    func metadata() throws -> [ShelterBench.Result] {
        let queue = try DatabaseQueue(path: directory.storePath)
        return try queue.read { db in
            // Pages on disk (SQLite's dbstat) of every table and index, sorted into three parts.
            let sizes = try Row.fetchAll(db, sql: "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name")
            let indexes = try Row.fetchAll(db, sql: "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'")
            let owner = Dictionary(uniqueKeysWithValues: indexes.map { ($0["name"] as String, $0["tbl_name"] as String) })
            let domain = Set(ShelterSchema.schema.tables.map(\.name))
            var meta = 0.0, log = 0.0, data = 0.0
            for row in sizes {
                let name: String = row["name"]
                let table = owner[name] ?? name
                let bytes = Double(row["bytes"] as Int64)
                if ProcessInfo.processInfo.environment["BENCH_DETAIL"] != nil { FileHandle.standardError.write(Data("\(name) (\(table)) \(Int(bytes))\n".utf8)) }
                if table == "sync_log" { log += bytes } else if table.hasPrefix("sync_") { meta += bytes } else if domain.contains(table) { data += bytes }
            }
            let rows = Double(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sync_rows") ?? 1)
            return [
                .init(name: "metadata", value: meta / rows, unit: "bytes/row", baseline: data / rows, ratio: meta / data,
                      note: "server store on disk: sync metadata (version vectors, cell stamps, peers, state) against the records"),
                .init(name: "change-log", value: log / rows, unit: "bytes/row", baseline: data / rows, ratio: log / data,
                      note: "the change log (every write's values, author, dot, HLC, context) and its indexes: the audit trail and the pull stream"),
            ]
        }
    }
}
