import Foundation
import GRDB
import NIOCore
import NIOPosix
import NIOSSL
import ShelterDomain
import SyncCore
import Synchronization
import SyncTransport
import X509

/// What one sync session did.
public struct SyncReport: Hashable, Sendable {
    public var pushed: Int
    public var pulled: Int
    /// Conflicts this sync brought to light (new open conflict rows it received).
    public var conflicts: Int
    /// Of the pushed changes, those the server refused (kept in the outbox, marked rejected).
    public var rejected: Int
    public var cursor: Int64
    public var durationMs: Int
    /// Changes the server had lost (it was restored from a backup) that this replica gave back:
    /// its own, and other replicas' it had pulled.
    public var recovered: Int = 0
    /// Where this replica pulled again from, when the server's history had diverged from the one
    /// it had pulled (the server went back in time); nil when nothing diverged.
    public var resumedFrom: Int64?
    /// This replica's unsynced changes that a wrong clock had stamped ahead, stamped again before the push.
    public var restamped: Int = 0
    /// Rows this replica took in the server's signed snapshot instead of pulling the whole log (its
    /// first pull only); `pulled` counts the changes logged after the snapshot.
    public var snapshotRows: Int = 0
    /// This clock against the server's as the welcome measured it, and the server's bound (ms):
    /// recorded exactly when the session ends.
    var measuredClock: MeasuredClock?

    struct MeasuredClock: Hashable, Sendable {
        var skew: Int64
        var bound: UInt64
    }
}

/// A connection to the sync server that carries whole protocol messages: TLS in `sync()`, memory
/// in a simulation or an app's own transport. Used by one session at a time, from one task.
public protocol SyncConnection: AnyObject {
    func send(_ message: WireMessage) async throws
    /// The next message, or nil when the server closed the connection.
    func receive() async throws -> WireMessage?
}

extension Replica {
    /// The version this client reports to the server.
    public static let clientVersion = "shelter/0.5.0"

    /// One sync session: hello, push every unsynced change in batches, pull everything new, report.
    ///
    /// Each pushed batch is marked acknowledged only after the server committed it, and each pulled
    /// batch is applied together with the new cursor in one transaction: a session cut at any point
    /// loses nothing and repeats no effect. When the server cannot be reached or refuses, the replica
    /// keeps its changes unsynced and records the error (never personal data) for `status`.
    ///
    /// A server that went back in time (restored from a backup) is healed on the way: this replica
    /// gives back the changes it lacks and pulls again from the last position both share.
    ///
    /// With `pull: false` the session only pushes (and reports): this replica's changes are safe on
    /// the server sooner, and it catches up at the next full sync.
    ///
    /// `session`: the member of staff logged in here, if any; what she wrote while the clock was
    /// wrong is stamped again and signed again by her before it is sent.
    public func sync(pull: Bool = true, session: (any TransactionSigner)? = nil, connectTimeout: TimeAmount = .seconds(10), readTimeout: TimeAmount = .seconds(60)) async throws -> SyncReport {
        let (state, stored) = try await readAsync { db in (try store.state(db), try store.identity(db)) }
        guard let serverText = state.server, let stored else {
            throw ReplicaError(.invalidArgument, t("err.ReplicaSync.96", ("p1", path)))
        }
        let server = try ServerAddress(serverText)
        let now = configuration.now()
        return try await recordingOutcome(server: server.description) {
            let bundle = try WorkstationBundle(pem: stored.certificatePEM + "\n" + stored.privateKeyPEM + "\n" + stored.caPEM,
                                               source: "the identity stored in \(path)")
            if let problem = certificateProblem(bundle) { throw CertificateProblem(message: problem) }
            do {
                return try await connect(to: server, bundle: bundle, connectTimeout: connectTimeout, readTimeout: readTimeout) { connection in
                    try await exchange(over: connection, pull: pull, session: session)
                }
            } catch where Self.isHandshakeFailure(error) {
                // Say why in plain words, never with a TLS library's raw error.
                throw HandshakeRefused(diagnosis: await Self.diagnoseHandshake(server: server, bundle: bundle, now: now))
            }
        }
    }

    /// This workstation's own certificate cannot be used (expired, or not yet valid by this clock).
    struct CertificateProblem: Error { var message: String }

    /// The TLS handshake failed; `diagnosis` says why when the server's certificate shows it.
    struct HandshakeRefused: Error { var diagnosis: String? }

    static func isHandshakeFailure(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError || error is TLSFailureRecorder.TLSError
    }

    /// One sync session over a connection the caller made (an app's own transport, a simulation):
    /// the same session as `sync()`, recorded the same way for `status`.
    public func sync(over connection: some SyncConnection, pull: Bool = true, session: (any TransactionSigner)? = nil) async throws -> SyncReport {
        try await recordingOutcome(server: "the sync server") { try await exchange(over: connection, pull: pull, session: session) }
    }

    private func recordingOutcome(server: String, _ body: () async throws -> SyncReport) async throws -> SyncReport {
        do {
            let report = try await body()
            let at = Timestamp.format(configuration.now())
            // The session's end: when it ended and the clock it measured, exactly. Bookkeeping: a
            // power cut may lose it (the next sync writes it again), so it waits for no disk flush.
            let clock = report.measuredClock
            try await performBookkeeping { db in
                if let clock { try store.recordClock(db, skewMilliseconds: clock.skew, maximumSkewMilliseconds: clock.bound) }
                try store.recordSync(db, at: at, errorCode: nil, error: nil)
            }
            return report
        } catch {
            let failure = Self.syncFailure(error, server: server, path: path)
            let at = Timestamp.format(configuration.now())
            _ = try? await performAsync { db in
                try store.recordSync(db, at: at, errorCode: failure.code, error: failure.message)
                if failure.code == "clockSkew" {
                    // How far off is in the server's message; for the warning, "beyond the bound" is enough.
                    let state = try store.state(db)
                    try store.recordClock(db, skewMilliseconds: .max, maximumSkewMilliseconds: state.maxClockSkewMs)
                }
            }
            throw ReplicaError(.syncFailed, failure.message, underlying: error)
        }
    }

    struct ServerRefusal: Error {
        var code: String
        var message: String
    }

    struct ProtocolFailure: Error {
        var message: String
    }

    /// The TLS connection to the server, as a `SyncConnection`.
    final class ChannelConnection: SyncConnection {
        let outbound: NIOAsyncChannelOutboundWriter<WireMessage>
        var inbound: NIOAsyncChannelInboundStream<WireMessage>.AsyncIterator
        let tlsFailure: TLSFailureRecorder

        init(_ inbound: NIOAsyncChannelInboundStream<WireMessage>, _ outbound: NIOAsyncChannelOutboundWriter<WireMessage>,
             tlsFailure: TLSFailureRecorder) {
            self.inbound = inbound.makeAsyncIterator()
            self.outbound = outbound
            self.tlsFailure = tlsFailure
        }

        func send(_ message: WireMessage) async throws {
            do { try await outbound.write(message) } catch {
                if let tls = tlsFailure.error { throw tls }
                throw error
            }
        }

        func receive() async throws -> WireMessage? {
            do {
                let message = try await inbound.next()
                // A failed handshake closes the channel; the stream may end before its error arrives.
                if message == nil, let tls = tlsFailure.error { throw tls }
                return message
            } catch {
                if let tls = tlsFailure.error { throw tls }
                throw error
            }
        }
    }

    /// Keeps the TLS error a failed handshake raised, so the session reports it as such even when the
    /// connection closes before the error reaches the message stream.
    final class TLSFailureRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = WireMessage
        typealias InboundOut = WireMessage
        private let recorded = Mutex<TLSError?>(nil)

        struct TLSError: Error, CustomStringConvertible {
            var description: String
        }

        var error: TLSError? { recorded.withLock { $0 } }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
                let text = "\(error)"
                recorded.withLock { if $0 == nil { $0 = TLSError(description: text) } }
            }
            context.fireErrorCaught(error)
        }
    }

    private func connect<T: Sendable>(to server: ServerAddress, bundle: WorkstationBundle, connectTimeout: TimeAmount, readTimeout: TimeAmount,
                                      _ body: (ChannelConnection) async throws -> T) async throws -> T {
        let sslContext = try NIOSSLContext(configuration: TLSSettings.client(identity: bundle.identity, ca: bundle.caCertificate))
        let hostname = server.isIPAddress ? nil : server.host
        let tlsFailure = TLSFailureRecorder()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: server.host, port: server.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    try sync.addHandler(IdleStateHandler(readTimeout: readTimeout))
                    try sync.addHandler(ReadIdleTimeout())
                    try sync.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(WireFrameEncoder()))
                    try sync.addHandler(tlsFailure)
                    return try NIOAsyncChannel<WireMessage, WireMessage>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(ChannelConnection(inbound, outbound, tlsFailure: tlsFailure))
        }
    }

    /// The session's steps over any connection.
    private func exchange(over connection: some SyncConnection, pull: Bool, session: (any TransactionSigner)?) async throws -> SyncReport {
        let started = ContinuousClock.now
        func receive() async throws -> WireMessage {
            guard let message = try await connection.receive() else {
                throw ProtocolFailure(message: "the server closed the connection")
            }
            if case .error(let code, let message) = message { throw ServerRefusal(code: code, message: message) }
            return message
        }
        let (state, checkpoints, acknowledgedDigest) = try await readAsync { db in
            let state = try store.state(db)
            let acknowledged = state.acknowledged > 0 ? try store.logEntry(db, of: Dot(replica: id, counter: state.acknowledged)) : nil
            return (state, try store.checkpoints(db, limit: WireMessage.maximumCheckpoints), acknowledged.map { LogHash.of($0.change) })
        }
        var clock = HybridLogicalClock(last: state.clock)
        let wallAtHello = wallMilliseconds()
        try await connection.send(.hello(.init(schemaVersion: UInt64(ShelterSchema.version), replicaID: id,
                                               clientVersion: Self.clientVersion,
                                               hlcNow: clock.tick(wallMilliseconds: wallAtHello, maximumAhead: state.maxClockSkewMs),
                                               wallNow: wallAtHello, counter: state.counter,
                                               acknowledged: state.acknowledged, acknowledgedDigest: acknowledgedDigest,
                                               cursor: state.cursor, checkpoints: checkpoints)))
        guard case .welcome(let welcome) = try await receive() else { throw ProtocolFailure(message: "expected welcome") }
        let batchSize = Int(max(1, min(welcome.maxBatch, 10_000)))
        // The server accepted this clock. Keep what it measured, and stamp again what a wrong clock
        // stamped ahead while offline (nobody has those changes yet), before anything is pushed.
        let bound = welcome.maxClockSkew
        let skew = Int64(clamping: wallAtHello) - Int64(clamping: welcome.serverWallNow)
        let wall = wallMilliseconds()
        let signers = session.map { [$0] } ?? []
        let serverKey = welcome.serverSigningKey, workstations = welcome.workstations
        // Written only what changed: a session with nothing to do commits nothing here. The skew is
        // kept now when it changes the clock warning (a session cut later still leaves that for
        // `status`), and exactly at the session's end.
        let restamped = try await performAsync { db in
            try store.recordClock(db, skewMilliseconds: skew, maximumSkewMilliseconds: bound, unlessWarningStays: true)
            if let serverKey { try store.recordServerKey(db, serverKey) }
            if let workstations { try store.recordWorkstations(db, workstations) }
            return try store.restampFuture(db, wallMilliseconds: wall, maximumAhead: bound, signers: signers, shift: Self.shiftMoment)
        }
        var report = SyncReport(pushed: 0, pulled: 0, conflicts: 0, rejected: 0, cursor: state.cursor, durationMs: 0)
        report.restamped = restamped
        report.measuredClock = .init(skew: skew, bound: bound)

        // The server lacks changes this replica holds (it went back in time): give them back, in
        // this log's order, before anything else. Only then is the cursor moved back (below): a
        // session cut before that finds the divergence again next time and finishes the job.
        if let ownCommon = welcome.ownCommon {
            var after: Int64 = 0
            while true {
                let from = after
                let batch = try await readAsync { db in
                    WireMessage.transactionAligned(try store.recoveryBatch(db, ownCommon: ownCommon, holdings: welcome.holdings, after: from, limit: batchSize + 256),
                                                   limit: batchSize, change: \.change)
                }
                guard let last = batch.last else { break }
                try await connection.send(.recover(batch.map(\.change)))
                guard case .recoverAck(let merged, let rejected) = try await receive() else { throw ProtocolFailure(message: "expected recoverAck") }
                let own = batch.map(\.change.dot).filter { $0.replica == id }.map(\.counter)
                let refused = rejected.filter { $0.dot.replica == id }.map { (counter: $0.dot.counter, reason: "\($0.code): \($0.reason)") }
                if !own.isEmpty { try await performAsync { db in try store.acknowledgeRecovered(db, own: own, rejected: refused) } }
                report.recovered += Int(merged)
                report.rejected += refused.count
                after = last.sequence
            }
        }
        if welcome.resume < state.cursor {
            let resume = welcome.resume
            try await performAsync { db in try store.rewindCursor(db, to: resume) }
            report.cursor = resume
            report.resumedFrom = resume
        }

        // Push the outbox, oldest first. Two batches are in flight: the server merges one while
        // this replica reads the next and records the last acknowledgement. Each batch is
        // marked acknowledged only after the server committed it.
        var sentUpTo: UInt64 = 0
        var inFlight: [(last: UInt64, count: Int)] = []
        while true {
            while inFlight.count < Self.pushWindow {
                let after = sentUpTo
                let batch = try await readAsync { db in try outboxBatch(db, after: after, limit: batchSize) }
                guard let last = batch.last else { break }
                try await connection.send(.push(batch))
                inFlight.append((last.dot.counter, batch.count))
                sentUpTo = last.dot.counter
            }
            guard let (expected, count) = inFlight.first else { break }
            guard case .pushAck(let upTo, let rejected) = try await receive() else { throw ProtocolFailure(message: "expected pushAck") }
            guard upTo >= expected else {
                throw ProtocolFailure(message: "the server acknowledged up to \(upTo) of a batch ending at \(expected)")
            }
            inFlight.removeFirst()
            try await performAsync { db in try acknowledge(db, upTo: upTo, rejected: rejected) }
            report.pushed += count - rejected.count
            report.rejected += rejected.count
        }

        // A replica that has pulled nothing takes the server's rows as they stand, signed, instead
        // of replaying the whole log; then it pulls on from where the snapshot stands.
        if pull, configuration.takesSnapshot, welcome.snapshots, report.cursor == 0, let serverKey,
           try await readAsync({ db in try store.mayTakeSnapshot(db) }) {
            if let taken = try await takeSnapshot(over: connection, welcome: welcome, serverKey: serverKey, bound: bound, receive: receive) {
                report.snapshotRows = taken.rows
                report.conflicts += taken.conflicts
                report.cursor = taken.position
            }
        }

        // Pull everything new; each batch lands with its cursor in one transaction. The next
        // batch is asked for before this one is applied, so the server reads it meanwhile.
        var more = pull
        if more { try await connection.send(.pull(cursor: report.cursor, limit: UInt64(batchSize))) }
        while more {
            guard case .changes(let batch, let next, let nextHash, let hasMore) = try await receive() else { throw ProtocolFailure(message: "expected changes") }
            more = hasMore
            if more { try await connection.send(.pull(cursor: next, limit: UInt64(batchSize))) }
            // Never let a change stamped far past this clock move it (the server refuses them; this
            // guards against a server whose own clock went wrong).
            let latest = wallMilliseconds() &+ 2 &* bound
            if let ahead = batch.first(where: { $0.change.hlc.milliseconds > latest }) {
                throw ProtocolFailure(message: "the server sent a change stamped \(Timestamp.format(Date(timeIntervalSince1970: Double(ahead.change.hlc.milliseconds) / 1000))), far ahead of this workstation's clock; is the server's clock wrong? Nothing of that batch was applied")
            }
            report.conflicts += try await performAsync { db in try applyPulled(db, batch, nextCursor: next, nextHash: nextHash) }
            report.pulled += batch.count
            report.cursor = next
        }

        let (outbox, lastError) = try await readAsync { db in (try store.outboxCount(db), try store.state(db).lastErrorCode) }
        // By stat(2), never by opening the file: closing any descriptor of it drops every POSIX lock
        // this process holds on it, SQLite's included — another process could then checkpoint under
        // this connection's feet (it corrupted a replica in the bench when tried).
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        try await connection.send(.report(cursor: report.cursor, outbox: UInt64(outbox), databaseBytes: UInt64(bytes), lastError: lastError))
        guard case .bye = try await receive() else { throw ProtocolFailure(message: "expected bye") }
        let elapsed = ContinuousClock.now - started
        report.durationMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        return report
    }

    /// Asks for the server's snapshot, checks it (every row's digest, the server's signature, no
    /// stamp far ahead) and writes it in one transaction, with the cursor where it stands. Nothing
    /// is written unless the whole snapshot arrived and checks: a session cut on the way leaves the
    /// replica as it was, and the next one asks again. Nil when this replica came to hold something
    /// meanwhile (then it pulls the log).
    private func takeSnapshot(over connection: some SyncConnection, welcome: WireMessage.Welcome, serverKey: [UInt8], bound: UInt64,
                              receive: () async throws -> WireMessage) async throws -> (rows: Int, conflicts: Int, position: Int64)? {
        try await connection.send(.snapshot(limit: UInt64(max(1, min(welcome.maxBatch, 10_000)))))
        var rows: [SnapshotRow] = []
        var held: [HeldChange] = []
        var digest = SnapshotDigest()
        var sealed: SnapshotSeal?
        while sealed == nil {
            switch try await receive() {
            case .snapshotRows(let batch) where held.isEmpty:
                for row in batch {
                    // In (table, id) order, each row once: a repeated row would silently replace the first.
                    if let last = rows.last, (last.table, last.id) >= (row.table, row.id) {
                        throw ProtocolFailure(message: "the server's snapshot repeats a row or sends rows out of order; nothing of it was applied")
                    }
                    digest.add(row)
                    rows.append(row)
                }
            case .snapshotHeld(let batch):
                for change in batch { digest.add(change) }
                held += batch
            case .snapshotEnd(let end):
                sealed = end
            default:
                throw ProtocolFailure(message: "expected snapshotRows, snapshotHeld or snapshotEnd")
            }
        }
        guard let seal = sealed else { throw ProtocolFailure(message: "expected snapshotEnd") }
        guard digest.rows == seal.rows, digest.held == seal.held, digest.finish() == seal.digest, digest.holdings == seal.holdings else {
            throw ProtocolFailure(message: "the server's snapshot does not match its own digest (\(digest.rows) rows received of \(seal.rows)); nothing of it was applied")
        }
        guard StaffKeys.verify(seal.signature, of: seal.signedBytes(server: welcome.server), signingKey: Data(serverKey).base64EncodedString()) else {
            throw ProtocolFailure(message: "the server's snapshot does not carry the server's signature; nothing of it was applied")
        }
        let latest = wallMilliseconds() &+ 2 &* bound
        if rows.contains(where: { $0.cells.contains { $0.stamp.hlc.milliseconds > latest } }) {
            throw ProtocolFailure(message: "the server's snapshot holds a value stamped far ahead of this workstation's clock; is the server's clock wrong? Nothing of it was applied")
        }
        let conflicts = ShelterSchema.conflicts, status = ShelterSchema.conflicts.column(named: "status")!.code
        let open = rows.filter { row in
            row.table == conflicts.code && row.cells.contains { $0.code == status && $0.value == .text(Conflict.Status.open.rawValue) }
        }.count
        let wall = wallMilliseconds(), received = rows, heldChanges = held
        let taken = try await performAsync { db -> Bool in
            guard try store.mayTakeSnapshot(db) else { return false }
            var clock = try store.loadClock(db)
            try store.applySnapshot(db, rows: received, held: heldChanges, seal: seal, server: welcome.server, clock: &clock, wallMilliseconds: wall)
            // Erasures the snapshot carries were carried out on the server: its rows hold nothing of them.
            for row in received where row.table == ShelterSchema.erasures.code {
                try store.recordErasure(db, subject: row.id, complete: true)
            }
            try store.saveClock(db, clock)
            return true
        }
        return taken ? (rows.count, open, seal.position) : nil
    }

    // MARK: The steps of a session, without the network

    /// Batches of the outbox in flight at once during a push.
    static let pushWindow = 2

    /// The next batch of this replica's unsynced changes after counter `after`, oldest first.
    public func outboxBatch(after counter: UInt64 = 0, limit: Int) throws -> [CellChange] {
        try read { db in try outboxBatch(db, after: counter, limit: limit) }
    }

    func outboxBatch(_ db: Database, after counter: UInt64, limit: Int) throws -> [CellChange] {
        var read = try store.outbox(db, after: counter, limit: limit + 256).map(\.change)
        // A transaction longer than the slice (a rotation over many residents): read on to its
        // seal, so that it goes whole (a part of one is refused, and would be for ever).
        if read.count == limit + 256, !read.contains(where: { $0.seal != nil }) {
            read = try store.outbox(db, after: counter, limit: WireMessage.maximumTransaction + 1).map(\.change)
        }
        return WireMessage.transactionAligned(read, limit: limit, change: { $0 })
    }

    /// After the server committed a push: this replica's changes up to `upTo` are acknowledged, the
    /// refused ones marked rejected with the server's reason.
    public func acknowledge(upTo: UInt64, rejected: [WireMessage.Rejection]) throws {
        try perform { db in try acknowledge(db, upTo: upTo, rejected: rejected) }
    }

    func acknowledge(_ db: Database, upTo: UInt64, rejected: [WireMessage.Rejection]) throws {
        try store.acknowledge(db, upTo: upTo, rejected: rejected.map { ($0.counter, "\($0.code): \($0.reason)") })
        // Her own changes that waited for the server (an erasure arrived or was made before they
        // were pushed) are erased now that the server has them.
        try Erasure.completeWaiting(db, store: store)
    }

    /// Applies one pulled batch and stores `nextCursor` (and the server's chain hash there), in one
    /// transaction; returns how many new open conflicts it brought.
    @discardableResult
    public func applyPulled(_ batch: [WireMessage.Logged], nextCursor: Int64, nextHash: LogHash?) throws -> Int {
        try perform { db in try applyPulled(db, batch, nextCursor: nextCursor, nextHash: nextHash) }
    }

    func applyPulled(_ db: Database, _ batch: [WireMessage.Logged], nextCursor: Int64, nextHash: LogHash?) throws -> Int {
        try store.withMergeMemo(db) { try applyPulledInMemo(db, batch, nextCursor: nextCursor, nextHash: nextHash) }
    }

    private func applyPulledInMemo(_ db: Database, _ batch: [WireMessage.Logged], nextCursor: Int64, nextHash: LogHash?) throws -> Int {
        if batch.isEmpty {
            // Nothing new, and the cursor stays: nothing to write (a no-op sync commits nothing here).
            let state = try store.state(db)
            if state.cursor == nextCursor && state.cursorHash == nextHash { return 0 }
        }
        for logged in batch {
            if let reason = Erasure.erasedRefusal(logged.change) {
                throw ReplicaError(.syncFailed, "the server sent a change with values erased outside an erasure (\(reason)); nothing of this batch was applied")
            }
        }
        // Conflict rows an open conflict of the batch writes and this replica does not hold yet: the
        // first change merged into one makes it (a new conflict for staff only when that change opens it).
        let open = SyncValue.text(Conflict.Status.open.rawValue)
        var absent = Set<String>()
        for logged in batch where logged.change.table == ShelterSchema.conflicts.name && logged.change.values["status"] == open {
            if try store.rowMeta(db, table: ShelterSchema.conflicts, rowID: logged.change.rowID) == nil { absent.insert(logged.change.rowID) }
        }
        var found = 0
        var released: [CellChange] = []
        var clock = try store.loadClock(db)
        // The whole batch in one pass (SyncStore+Batch): each touched row read once and written once.
        let reports = try store.merge(db, batch.map(\.change), clock: &clock, wallMilliseconds: wallMilliseconds())
        for (logged, report) in zip(batch, reports) {
            guard case .merged(_, _, let held) = report else { continue }
            let change = logged.change
            if change.table == ShelterSchema.conflicts.name, absent.remove(change.rowID) != nil, change.values["status"] == open { found += 1 }
            for change in held where change.table == ShelterSchema.conflicts.name { absent.remove(change.rowID) }
            released += held
        }
        // Changes held back until now count as merged now too (a rotation that waited for the
        // admission it follows: the admission's old wrapping leaves the log).
        let erased = try Erasure.afterMerge(db, store: store, changes: batch.map(\.change) + released, keepUnsynced: true)
        keys.forget(residents: erased)
        try store.saveClock(db, clock)
        try store.setCursor(db, nextCursor, hash: nextHash)
        return found
    }

    /// The replica's sync state (cursor, counter, clock), as `hello` reports it.
    public func syncState() throws -> SyncState {
        try read { db in try store.state(db) }
    }

    /// What the wrong clock wrote into a change, brought back to its new stamp: a moment after the
    /// new stamp (an admission "now" by a clock a day ahead) becomes the new stamp, and a day after the
    /// new stamp's day becomes that day (a decision, a complaint received, a notification's event day
    /// with its due dates worked out again). Clamping keeps the order of a log's moments: stamps are
    /// given again in log order, so a discharge never lands before its admission. What was not ahead of
    /// the new stamp — a time staff typed with `--at` — stays.
    static func shiftMoment(table: String, values: [String: SyncValue], old: UInt64, new: UInt64, row: [String: SyncValue]?) -> [String: SyncValue]? {
        let utc = TimeZone(identifier: "UTC")!
        let newMoment = Date(timeIntervalSince1970: Double(new / 1000))
        let newDay = Timestamp.civilDate(of: newMoment)
        let moments: [String: [String]] = [ShelterSchema.stays.name: ["admitted_at", "discharged_at"], ShelterSchema.notifications.name: ["sent_at"]]
        let days: [String: [String]] = [ShelterSchema.decisions.name: ["decided_on"], ShelterSchema.complaints.name: ["received_on", "reviewed_on", "forwarded_on"],
                                        ShelterSchema.notifications.name: ["event_on"]]
        var shifted: [String: SyncValue] = [:]
        for column in moments[table] ?? [] {
            guard let text = values[column]?.textValue, let moment = try? Timestamp.parse(text, timeZone: utc), moment > newMoment else { continue }
            shifted[column] = .text(Timestamp.format(newMoment))
        }
        for column in days[table] ?? [] {
            guard let day = values[column]?.textValue.flatMap(CivilDate.init), day > newDay else { continue }
            shifted[column] = .text(newDay.description)
            if table == ShelterSchema.notifications.name && column == "event_on" {
                shifted["due"] = .text(Deadlines.notificationDue(after: newDay).description)
                shifted["legal_deadline"] = .text(Deadlines.notificationLegalDeadline(after: newDay).description)
            }
        }
        // A discharge brought back to the new stamp stays after the admission the row holds (one
        // stamped a little ahead at another workstation, or the server's, met by a rescue): she
        // left, but not before she came — and never after the new stamp allows.
        if table == ShelterSchema.stays.name,
           let came = ShelterRules.dischargeBroughtToAdmission(discharged: (shifted["discharged_at"] ?? values["discharged_at"])?.textValue,
                                                               admitted: (shifted["admitted_at"] ?? values["admitted_at"] ?? row?["admitted_at"])?.textValue),
           let cameAt = try? Timestamp.parse(came, timeZone: utc), cameAt <= newMoment.addingTimeInterval(EventTime.maximumAhead) {
            shifted["discharged_at"] = .text(came)
        }
        return shifted.isEmpty ? nil : shifted
    }

    func wallMilliseconds() -> UInt64 { UInt64(max(0, configuration.now().timeIntervalSince1970 * 1000)) }

    /// A failed sync as a code and a message for staff (no personal data: the server sends none).
    static func syncFailure(_ error: any Error, server: String, path: String) -> (code: String, message: String) {
        switch error {
        case let refusal as ServerRefusal where refusal.code == "clockSkew":
            return (refusal.code, t("syncFail.refused", ("server", server), ("message", refusal.message), ("code", "clockSkew")))
        case let refusal as ServerRefusal where refusal.code == "replicaForked" || refusal.code == "replicaRewound":
            return (refusal.code, t("syncFail.forked", ("server", server), ("path", path), ("code", refusal.code)))
        case let refusal as ServerRefusal:
            return (refusal.code, t("syncFail.refused", ("server", server), ("message", refusal.message), ("code", refusal.code)))
        case let failure as ProtocolFailure:
            return ("protocol", t("syncFail.failed", ("server", server), ("error", failure.message)))
        case let error as ReplicaError:
            return ("local", error.message)
        case let error as TransportError:
            return ("identity", t("syncFail.identity", ("error", error.message)))
        case let problem as CertificateProblem:
            return ("certificate", problem.message)
        case let refused as HandshakeRefused:
            return ("tls", t("syncFail.tls", ("server", server), ("why", refused.diagnosis ?? t("syncFail.tlsNotAccepted"))))
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError, is TLSFailureRecorder.TLSError:
            return ("tls", t("syncFail.tlsFailed", ("server", server)))
        case is ReadIdleTimeout.Timeout:
            return ("timeout", t("syncFail.timeout", ("server", server)))
        case let error as NIOConnectionError:
            if error.dnsAAAAError != nil || error.dnsAError != nil, error.connectionErrors.isEmpty {
                return ("unreachable", t("syncFail.dns", ("server", server)))
            }
            let reasons = error.connectionErrors.map { attempt in
                (attempt.error as? IOError).map { String(cString: strerror($0.errnoCode)).lowercased() } ?? "\(attempt.error)"
            }.joined(separator: "; ")
            return ("unreachable", t("syncFail.unreachable", ("server", server), ("why", reasons.isEmpty ? t("syncFail.noAddress") : reasons)))
        case ChannelError.connectTimeout:
            return ("unreachable", t("syncFail.unreachable", ("server", server), ("why", t("syncFail.connectTimeout"))))
        case let error as WireError:
            return ("protocol", t("syncFail.notShelterSync", ("server", server), ("error", "\(error)")))
        default:
            return ("unreachable", t("syncFail.failed", ("server", server), ("error", "\(error)")))
        }
    }
}
