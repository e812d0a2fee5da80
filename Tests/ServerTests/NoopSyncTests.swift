@testable import ClientKit
import Foundation
import GRDB
@testable import Server
import ShelterDomain
import Synchronization
import SyncCore
import Testing
import TestSupport

/// A sync with nothing to do must not scan tables: its cost does not grow with the database.
@Suite struct NoopSyncTests {
    final class Recorder: Sendable {
        let statements = Mutex<[String]>([])
        let recording = Mutex(false)
        func observe(_ sql: String) { if recording.withLock({ $0 }) { statements.withLock { $0.append(sql) } } }
        func record<T>(_ body: () async throws -> T) async rethrows -> T {
            statements.withLock { $0 = [] }
            recording.withLock { $0 = true }
            defer { recording.withLock { $0 = false } }
            return try await body()
        }
    }

    /// The tables a statement scans (SQLite's `SCAN t`), tiny single-row tables aside. Walking the
    /// partial index `sync_log_outbox` is allowed: it holds only the unsynced changes (empty here);
    /// so is `sync_checkpoints`, which thins itself to a few tens of rows whatever the log's size; so
    /// are the registry of workstations the welcome names (`server_replicas`, `server_runs`) and the
    /// workstation's copy of it (`sync_workstations`): a row per workstation ever enrolled, whatever
    /// the records' size; and the erasures a workstation carried out (`sync_erasures`, read when a
    /// push is acknowledged): a row per erased resident.
    ///
    /// A search of the log by its (peer, counter) index with no lower bound on the counter counts as
    /// a scan too: it reads every change one replica ever wrote (the restamp's check at every hello
    /// and each push's acknowledgement did, until `+peer` sent them to the outbox's index).
    static func scans(_ statements: [String], in path: String) throws -> [String] {
        var config = Configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: config)
        return try queue.read { db in
            var found: [String] = []
            for sql in Set(statements) where sql.hasPrefix("SELECT") || sql.hasPrefix("UPDATE") || sql.hasPrefix("INSERT") || sql.hasPrefix("DELETE") {
                let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String }
                for detail in plan where detail.contains("sqlite_autoindex_sync_log_1 (peer=?)") || detail.contains("sqlite_autoindex_sync_log_1 (peer=? AND counter<?)") {
                    found.append("\(detail)  ←  \(sql)")
                }
                for detail in plan where detail.hasPrefix("SCAN") && !detail.contains("sync_state") && !detail.contains("sync_identity") && !detail.contains("CONSTANT ROW")
                    && !detail.contains("INDEX sync_log_outbox") && !detail.contains("sync_checkpoints")
                    && !["server_replicas", "server_runs", "sync_workstations", "sync_erasures"].contains(where: { detail.contains("SCAN \($0)") }) {
                    found.append("\(detail)  ←  \(sql)")
                }
            }
            return found
        }
    }

    @Test func aNoopSyncScansNoTableOnEitherSide() async throws {
        let serverRecorder = Recorder(), clientRecorder = Recorder()
        let server = try await TestServer.start(statementObserver: { serverRecorder.observe($0) })
        defer { server.remove() }
        let a = try await server.workstation("a", configuration: .init(statementObserver: { clientRecorder.observe($0) }))
        let b = try await server.workstation("b")
        // Given some records on both sides.
        for n in 0..<40 { try b.admit(Admission(name: "N\(n)", municipality: "Køge"), by: staff("s")) }
        _ = try await b.sync()
        _ = try await a.sync()
        // When a syncs with nothing to do.
        let report = try await serverRecorder.record { try await clientRecorder.record { try await a.sync() } }
        #expect(report.pushed == 0 && report.pulled == 0)
        // Then no statement on either side reads a table from end to end.
        let clientStatements = clientRecorder.statements.withLock { $0 }
        let serverStatements = serverRecorder.statements.withLock { $0 }
        #expect(!clientStatements.isEmpty && !serverStatements.isEmpty, "the observers saw the sync")
        let clientScans = try Self.scans(clientStatements, in: a.path)
        let serverScans = try Self.scans(serverStatements, in: server.directory.storePath)
        #expect(clientScans.isEmpty, "the workstation scans: \(clientScans)")
        #expect(serverScans.isEmpty, "the server scans: \(serverScans)")
        // And a sync that pushes a's own admission reads no more of a's log than it sends.
        try a.admit(Admission(name: "Own", municipality: "Køge"), by: staff("s"))
        let pushed = try await clientRecorder.record { try await a.sync() }
        #expect(pushed.pushed > 0)
        let pushScans = try Self.scans(clientRecorder.statements.withLock { $0 }, in: a.path)
        #expect(pushScans.isEmpty, "the workstation scans while pushing: \(pushScans)")
        try await server.stop()
    }

    /// A no-op sync changes nothing durable: the workstation's only writes are its bookkeeping (when
    /// it synced, the clock it measured), committed without a flush to disk, as are the server's
    /// (when it saw the workstation, what it reported). Every other write of either side is a
    /// record, a change or a cursor, committed `FULL`.
    @Test func aNoopSyncWritesOnlyBookkeepingWithoutAFlush() async throws {
        let serverRecorder = Recorder(), clientRecorder = Recorder()
        let server = try await TestServer.start(statementObserver: { serverRecorder.observe($0) })
        defer { server.remove() }
        let a = try await server.workstation("a", configuration: .init(statementObserver: { clientRecorder.observe($0) }))
        let b = try await server.workstation("b")
        for n in 0..<5 { try b.admit(Admission(name: "N\(n)", municipality: "Køge"), by: staff("s")) }
        _ = try await b.sync()
        _ = try await a.sync()
        // Given a sync with nothing to do,
        let report = try await serverRecorder.record { try await clientRecorder.record { try await a.sync() } }
        #expect(report.pushed == 0 && report.pulled == 0)
        for (side, statements) in [("workstation", clientRecorder.statements.withLock { $0 }), ("server", serverRecorder.statements.withLock { $0 })] {
            // its writes are the bookkeeping's UPDATEs only,
            let writes = statements.filter { $0.hasPrefix("UPDATE") || $0.hasPrefix("INSERT") || $0.hasPrefix("DELETE") || $0.hasPrefix("REPLACE") }
            let bookkeeping = side == "workstation" ? ["UPDATE sync_state SET clock_skew_ms", "UPDATE sync_state SET last_sync_at"]
                                                    : ["UPDATE server_replicas SET first_seen", "UPDATE server_replicas SET client_version", "UPDATE server_replicas SET cursor"]
            let other = writes.filter { write in !bookkeeping.contains(where: { write.hasPrefix($0) }) }
            #expect(other.isEmpty, "the \(side) wrote more than its bookkeeping: \(other)")
            #expect(!writes.isEmpty, "the \(side) recorded the session")
            // each inside a transaction committed with synchronous = NORMAL, set back to FULL after.
            // (A transaction that wrote nothing, a read's, commits no page and flushes nothing.)
            var synchronous = "FULL", wrote = false
            for statement in statements {
                if statement.hasPrefix("PRAGMA synchronous = ") { synchronous = String(statement.dropFirst("PRAGMA synchronous = ".count)) }
                if statement.hasPrefix("BEGIN") { wrote = false }
                if writes.contains(statement) {
                    wrote = true
                    #expect(synchronous == "NORMAL", "the \(side)'s \(statement) waited for a flush")
                }
                if statement.hasPrefix("COMMIT") && wrote { #expect(synchronous == "NORMAL", "the \(side) committed a write with a flush") }
            }
            #expect(synchronous == "FULL", "the \(side)'s connection is back to FULL")
        }
        // And the writer still commits records FULL: an admission synced now is flushed.
        _ = try await clientRecorder.record { () async throws -> Void in
            try a.admit(Admission(name: "Own", municipality: "Køge"), by: staff("s"))
        }
        #expect(!clientRecorder.statements.withLock { $0 }.contains { $0.hasPrefix("PRAGMA synchronous = NORMAL") })
        try await server.stop()
    }

    /// A task cancelled inside a bookkeeping transaction (GRDB then refuses every statement of it)
    /// still leaves its connection at `synchronous = FULL`: the records that follow are flushed. The
    /// restore goes through SQLite itself, which a cancellation cannot refuse (a restore that did
    /// nothing leaves the writer at NORMAL here: tried).
    @Test func aCancelledBookkeepingTransactionLeavesTheWriterAtFull() async throws {
        let folder = try TemporaryDirectory("bookkeeping")
        let store = try ServerStore.create(at: folder.file("server.sqlite"), rooms: 1)
        let replica = try Replica.create(at: folder.file("r.replica"), rooms: 1)
        final class Running: Sendable {
            let task = Mutex<Task<Void, any Error>?>(nil)
            let refusedRestore = Mutex<Bool?>(nil)
            /// Cancels the task running the transaction from inside it: GRDB refuses its statements.
            func cancel() {
                var running: Task<Void, any Error>?
                for _ in 0..<2_000 where running == nil {
                    running = task.withLock { $0 }
                    if running == nil { Thread.sleep(forTimeInterval: 0.001) }
                }
                running?.cancel()
            }
        }
        for side in ["server", "workstation"] {
            let running = Running()
            // The transaction itself cancelled: its next statement is refused and it rolls back.
            let cancelThenWrite: @Sendable (Database) throws -> Void = { db in
                running.cancel()
                try db.execute(sql: "SELECT 1")
            }
            let started: Task<Void, any Error> = side == "server"
                ? Task { try await store.writeBookkeeping(cancelThenWrite) }
                : Task { try await replica.performBookkeeping(cancelThenWrite) }
            running.task.withLock { $0 = started }
            await #expect(throws: (any Error).self) { try await started.value }
            var level = side == "server" ? try await store.writerSynchronous()
                                         : try replica.perform { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
            #expect(level == 2, "the \(side)'s writer stayed at synchronous \(level)")

            // Cancelled after NORMAL was set, outside any transaction: GRDB throws for the statement
            // that would set FULL again (whether or not SQLite ran it); the restore does not depend
            // on GRDB, and the writer is at FULL after it.
            let again = Running()
            let writer: any DatabaseWriter = side == "server" ? store.pool : replica.writer
            let cancelled = Task {
                try await writer.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA synchronous = NORMAL")
                    again.cancel()
                    again.refusedRestore.withLock { $0 = (try? db.execute(sql: "PRAGMA synchronous = FULL")) == nil }
                    SyncStore.restoreFullSynchronous(db)
                }
            }
            again.task.withLock { $0 = cancelled }
            _ = try? await cancelled.value
            #expect(again.refusedRestore.withLock { $0 } == true, "GRDB took a statement of a cancelled task without an error")
            level = try await writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
            #expect(level == 2, "restoreFullSynchronous left the \(side)'s writer at synchronous \(level)")
        }
    }
}
