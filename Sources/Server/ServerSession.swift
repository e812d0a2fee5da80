import Foundation
import GRDB
import Logging
import ShelterDomain
import SyncCore
import Synchronization

/// The server's side of one sync session, without the network (DESIGN §3): it takes each message
/// the workstation sent and returns the answers. `SyncServer` runs it over TLS; the deterministic
/// simulation runs it in memory, so both go through the same rules.
public struct ServerSession: Sendable {
    /// The workstation as the TLS handshake authenticated it: what its certificate says.
    public struct Peer: Hashable, Sendable {
        /// The replica id in the certificate; nil when it carries none.
        public var replicaID: ReplicaID?
        public var serial: String
        /// When the certificate expires.
        public var notValidAfter: Date?

        public init(replicaID: ReplicaID?, serial: String, notValidAfter: Date? = nil) {
            self.replicaID = replicaID
            self.serial = serial
            self.notValidAfter = notValidAfter
        }
    }

    /// What the session did, for its one log line and the metrics: ids and counts only.
    public struct Summary: Sendable {
        public var replica: ReplicaID?
        public var name: String?
        public var outcome = "incomplete"
        public var pushed = 0
        public var pulled = 0
        /// Rows sent in a snapshot instead of the log.
        public var snapshotRows = 0
        public var conflicts = 0
        public var rejected = 0
        /// Changes a server that went back in time got back from this workstation.
        public var recovered = 0
    }

    public let store: ServerStore
    let peer: Peer?
    let logger: Logger
    /// The most a workstation's clock may differ from the server's (`server run --max-clock-skew`).
    let maxClockSkew: TimeInterval
    let now: @Sendable () -> Date
    let onMerge: @Sendable (Duration) -> Void
    var machine: SyncSessionStateMachine
    /// The welcome carried the server's holdings (it is a restored backup): the workstation may give
    /// back other replicas' changes.
    var relays = false
    public private(set) var summary = Summary()
    /// Whether `snapshot` is answered by `snapshotStream()` (the TLS server: batches leave as they
    /// are read) rather than with `receive`'s answers (all at once, as the simulation takes them).
    public var streamsSnapshots = false
    /// Signatures of pushed batches checked as they arrived (`SignatureLookahead`), if any.
    public var signatures: SignatureChecks?
    private var pendingSnapshot: Int?

    public init(store: ServerStore, maximumBatch: Int, peer: Peer?, now: @escaping @Sendable () -> Date = { Date() },
                maxClockSkew: TimeInterval = 300, logger: Logger = Logger(label: "shelter.server"),
                onMerge: @escaping @Sendable (Duration) -> Void = { _ in }) {
        self.store = store
        self.peer = peer
        self.maxClockSkew = maxClockSkew
        self.logger = logger
        self.now = now
        self.onMerge = onMerge
        machine = SyncSessionStateMachine(maximumBatch: maximumBatch)
    }

    public var isOver: Bool { machine.state == .closed || summary.outcome != "incomplete" }

    /// Answers one message; after the answers of the last one, `ends` is true and the connection closes.
    public mutating func receive(_ message: WireMessage) async -> (answers: [WireMessage], ends: Bool) {
        do {
            switch machine.receive(message) {
            case .greet(let hello):
                switch await greet(hello) {
                case .success(let welcome):
                    machine.established(healing: welcome.ownCommon != nil)
                    relays = welcome.holdings != nil
                    return ([.welcome(welcome)], false)
                case .failure(let error):
                    return ([await refuse(error.code, error.message)], true)
                }
            case .merge(let changes):
                let started = ContinuousClock.now
                let result = try await store.mergePush(from: summary.replica!, changes: changes, at: now(), maxClockSkew: maxClockSkew, signatures: signatures)
                onMerge(ContinuousClock.now - started)
                summary.pushed += result.merged
                summary.rejected += result.rejected.count
                summary.conflicts += result.conflictsCreated
                return ([.pushAck(upToCounter: result.upToCounter, rejected: result.rejected)], false)
            case .recover(let changes):
                let started = ContinuousClock.now
                let result = try await store.mergeRecovery(from: summary.replica!, changes: changes, relays: relays, at: now(), maxClockSkew: maxClockSkew)
                onMerge(ContinuousClock.now - started)
                summary.recovered += result.merged
                summary.rejected += result.recoveryRejections.count
                summary.conflicts += result.conflictsCreated
                if result.divergent + result.skipped > 0 {
                    // Ids and counts only.
                    logger.warning("changes given back were skipped", metadata: [
                        "sync.replica": "\(summary.name ?? "?")",
                        "sync.divergent": "\(result.divergent)",
                        "sync.unknownOrigin": "\(result.skipped)",
                    ])
                }
                return ([.recoverAck(merged: UInt64(result.merged), rejected: result.recoveryRejections)], false)
            case .pull(let cursor, let limit):
                let read = try await store.changes(for: summary.replica!, after: cursor, limit: limit)
                summary.pulled += read.batch.count
                return ([.changes(read.batch, nextCursor: read.next, nextHash: read.nextHash, more: read.more)], false)
            case .snapshot(let limit) where streamsSnapshots:
                pendingSnapshot = limit
                return ([], false)
            case .snapshot(let limit):
                let messages = try await store.snapshot(limit: limit, at: now())
                if case .snapshotEnd(let seal)? = messages.last { summary.snapshotRows += Int(seal.rows) }
                return (messages, false)
            case .report(let cursor, let outbox, let bytes, _):
                try await store.recordReport(summary.replica!, cursor: cursor, outbox: outbox, databaseBytes: bytes, at: now())
                summary.outcome = "ok"
                return ([.bye], true)
            case .fail(let code, let message):
                return ([await refuse(code, message)], true)
            }
        } catch let error as ServerError {
            if error.code == .replicaForked, let replica = summary.replica { await store.recordFork(replica, at: now()) }
            return ([await refuse(error.code, error.message)], true)
        } catch {
            // The store failed (a full disk, an I/O error): nothing of the batch was kept; the
            // workstation keeps its changes and tries again later. The details go to the admin's log:
            // the error's kind and SQLite's message, which names tables and constraints, never values.
            var metadata: Logger.Metadata = ["sync.replica": "\(summary.name ?? "?")", "error.type": "\(type(of: error))"]
            if let error = error as? DatabaseError {
                metadata["error.code"] = "\(error.resultCode.rawValue)"
                metadata["error.message"] = "\(error.message ?? "")"
            }
            logger.error("the store failed during a sync session", metadata: metadata)
            return ([await refuse(.internalError, "the server could not store or read the changes; nothing was kept, try again later")], true)
        }
    }

    /// After `receive` answered a `snapshot` with nothing (`streamsSnapshots`): its messages, as
    /// they are read; nil when none is asked for. The rows sent are counted when the stream ends.
    public mutating func snapshotStream() -> AsyncThrowingStream<WireMessage, any Error>? {
        guard let limit = pendingSnapshot else { return nil }
        pendingSnapshot = nil
        let (stream, continuation) = AsyncThrowingStream<WireMessage, any Error>.makeStream()
        let store = self.store, at = now()
        // The connection gone, the read stops at its next batch (it holds a reader and the WAL).
        let ended = EndFlag()
        continuation.onTermination = { _ in ended.set() }
        Task {
            do {
                try await store.snapshot(limit: limit, at: at) { message in
                    if ended.isSet { throw CancellationError() }
                    continuation.yield(message)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }

    /// The rows a streamed snapshot sent.
    public mutating func sentSnapshot(rows: Int) { summary.snapshotRows += rows }

    /// Ends the session with an error: recorded for the admin's view first, then the message to send.
    public mutating func refuse(_ code: ServerError.Code, _ message: String) async -> WireMessage {
        machine.close()
        summary.outcome = code.rawValue
        if let replica = summary.replica { await store.recordError(replica, code: code.rawValue, at: now()) }
        return .error(code: code.rawValue, message: message)
    }

    /// The connection broke before the session ended (`outcome`: why, as a code).
    public mutating func disconnected(outcome: String) async {
        guard summary.outcome == "incomplete" else { return }
        machine.close()
        summary.outcome = outcome
        if let replica = summary.replica { await store.recordError(replica, code: outcome, at: now()) }
    }

    /// A time span in words a person reads at a glance: "4 years 6 months", "3 days 2 hours", "7 minutes".
    static func span(milliseconds: UInt64) -> String {
        let seconds = milliseconds / 1000
        let units: [(String, UInt64)] = [("year", 365 * 86_400), ("month", 30 * 86_400), ("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1)]
        var rest = seconds, parts: [String] = []
        for (name, size) in units where rest >= size && parts.count < 2 {
            let count = rest / size
            parts.append("\(count) \(name)\(count == 1 ? "" : "s")")
            rest -= count * size
        }
        return parts.isEmpty ? "\(milliseconds) ms" : parts.joined(separator: " ")
    }

    /// Checks a hello against the peer's certificate and the registry, and says where the
    /// workstation stands against the server's log.
    mutating func greet(_ hello: WireMessage.Hello) async -> Result<WireMessage.Welcome, ServerError> {
        let now = now()
        do {
            guard let peer, let certified = peer.replicaID else {
                return .failure(ServerError(.unknownCertificate, "the client certificate carries no replica id"))
            }
            // Two trips to the store for a hello: one read (registration, standing, key, names), then
            // the bookkeeping write; a renewal's promotion or a fork adds one. The standing is worked
            // out only for a hello the checks below admit (the same function, run in the read).
            let maxClockSkew = self.maxClockSkew
            let greeting = try await store.greeting(hello, replica: certified, at: now) { registration in
                Self.refusal(of: hello, registration: registration, peer: peer, now: now, maxClockSkew: maxClockSkew) == nil
            }
            guard let registration = greeting.registration else {
                return .failure(ServerError(.unknownCertificate, "this certificate is not enrolled with this server"))
            }
            summary.replica = certified
            summary.name = registration.name
            // The certificate's expiry, when the registry lacks it (enrolled before 0.5): with the
            // visit when this is the registered certificate, after its promotion when it is the renewal.
            let expiry = registration.knowsCertificateExpiry ? nil : peer.notValidAfter.map { (serial: peer.serial, at: $0) }
            try await store.recordSeen(certified, at: now, hello: hello, expires: peer.serial == registration.serial ? expiry : nil)
            if registration.revokedAt == nil, peer.serial != registration.serial, peer.serial == registration.pendingSerial {
                // A renewed certificate: from its first use on, the old one stops working.
                try await store.promotePendingCertificate(certified)
                // The renewal's expiry, if its registration lacked one (it is written only where missing).
                if let at = peer.notValidAfter { try await store.recordSeen(certified, at: now, hello: hello, expires: (serial: peer.serial, at: at)) }
            }
            if let refusal = Self.refusal(of: hello, registration: registration, peer: peer, now: now, maxClockSkew: maxClockSkew) {
                if refusal.code == .replicaRewound { await store.recordFork(certified, at: now) }
                return .failure(refusal)
            }
            let standing = try greeting.standing.get()
            var welcome = WireMessage.Welcome(server: store.serverID, head: standing.head, acknowledged: registration.acknowledged,
                                              maxBatch: UInt64(machine.maximumBatch), resume: standing.resume,
                                              ownCommon: standing.ownCommon, holdings: standing.holdings)
            welcome.serverWallNow = ServerStore.milliseconds(now)
            welcome.maxClockSkew = UInt64(max(0, maxClockSkew * 1000))
            welcome.serverSigningKey = Data(base64Encoded: greeting.signingKey).map { Array($0) }
            // Version 5 reads the workstations' names (a version-4 workstation would refuse the bytes).
            welcome.workstations = greeting.names
            welcome.snapshots = hello.protocolVersion >= 6
            return .success(welcome)
        } catch {
            return .failure(ServerError(.internalError, "the server could not check this workstation", underlying: error))
        }
    }
}

extension ServerSession {
    /// The first reason to refuse a hello, by what the hello, its certificate and its registration
    /// say (nothing is read or written here): a revoked workstation, a certificate that is neither
    /// the enrolled one nor its renewal, another replica id, protocol, schema, a clock beyond the
    /// bound, a replica behind what the server holds of it. Nil: admitted.
    static func refusal(of hello: WireMessage.Hello, registration: ServerStore.Registration, peer: Peer, now: Date,
                        maxClockSkew: TimeInterval) -> ServerError? {
        if registration.revokedAt != nil {
            return ServerError(.revoked, "the certificate of workstation \(registration.name) was revoked")
        }
        if peer.serial != registration.serial && peer.serial != registration.pendingSerial {
            return ServerError(.unknownCertificate, "this certificate is not the one enrolled for \(registration.name) (it was renewed, or the workstation was enrolled again)")
        }
        if hello.replicaID != peer.replicaID {
            return ServerError(.replicaMismatch, "the replica id in hello does not match the certificate's")
        }
        if !(WireMessage.oldestProtocolVersion...WireMessage.protocolVersion).contains(hello.protocolVersion) {
            return ServerError(.incompatibleProtocol, "protocol \(hello.protocolVersion) is not spoken here (this server speaks \(WireMessage.oldestProtocolVersion) to \(WireMessage.protocolVersion)); upgrade ShelterSync")
        }
        if hello.schemaVersion != UInt64(ShelterSchema.version) {
            return ServerError(.incompatibleSchema, "schema version \(hello.schemaVersion) does not match the server's \(ShelterSchema.version); upgrade ShelterSync")
        }
        let skew = Int64(clamping: hello.wallNow) - Int64(ServerStore.milliseconds(now))
        if Double(skew.magnitude) > maxClockSkew * 1000 {
            return ServerError(.clockSkew, "this workstation's clock is \(span(milliseconds: skew.magnitude)) \(skew > 0 ? "ahead of" : "behind") the server's; fix the clock — nothing was sent")
        }
        if hello.counter < registration.acknowledged {
            return ServerError(.replicaRewound, "the server already holds \(registration.acknowledged) changes of this replica but it has made only \(hello.counter): this replica file is an old copy (restored from a backup, or a second replica made from one bundle)")
        }
        return nil
    }
}

/// Set once, from any thread: a streamed snapshot's connection is gone.
final class EndFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
