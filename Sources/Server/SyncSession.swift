import SyncCore

/// The rules of one sync session (DESIGN §3), as a plain state machine: it takes each message the
/// peer sent and says what to do. The channel code only turns NIO callbacks into these events, and
/// the tests drive it directly.
public struct SyncSessionStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case awaitingHello
        case established
        case reported
        case closed
    }

    public enum Action: Sendable, Equatable {
        /// Check the hello against the certificate and the registry, then answer `welcome` or `error`.
        case greet(WireMessage.Hello)
        /// Merge and commit the batch, then answer `pushAck`.
        case merge([CellChange])
        /// Merge and commit a recovery batch (changes a restored server lost), then answer `recoverAck`.
        case recover([CellChange])
        /// Answer one `changes` batch.
        case pull(cursor: Int64, limit: Int)
        /// Answer the server's rows as they stand (`snapshotRows` batches of at most `limit`, then `snapshotEnd`).
        case snapshot(limit: Int)
        /// Record the report, answer `bye` and close.
        case report(cursor: Int64, outbox: UInt64, databaseBytes: UInt64, lastError: String?)
        /// Send `error` with this code and close.
        case fail(ServerError.Code, String)
    }

    public private(set) var state: State = .awaitingHello
    public let maximumBatch: Int
    /// The welcome told the workstation what the server holds: it may send changes back (`recover`).
    public private(set) var healing = false
    /// The session asked for its snapshot.
    public private(set) var snapshotTaken = false

    public init(maximumBatch: Int) { self.maximumBatch = maximumBatch }

    /// The most changes one transaction may hold, sent whole even when it exceeds the batch limit.
    public static let maximumTransaction = WireMessage.maximumTransaction

    /// A batch within the limit, or a single transaction (workstations never split one) within
    /// `maximumTransaction`.
    static func fits(_ changes: [CellChange], _ maximumBatch: Int) -> Bool {
        changes.count <= maximumBatch
            || (changes.count <= maximumTransaction && changes.last?.seal != nil && changes.dropLast().allSatisfy { $0.seal == nil })
    }

    public mutating func receive(_ message: WireMessage) -> Action {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            return .greet(hello)
        case (.awaitingHello, _):
            return fail(.protocolViolation, "expected hello, got \(message.name)")
        case (.established, .push(let changes)):
            guard Self.fits(changes, maximumBatch) else {
                return fail(.protocolViolation, "a push of \(changes.count) changes exceeds the batch limit of \(maximumBatch)")
            }
            return .merge(changes)
        case (.established, .recover(let changes)):
            guard healing else {
                return fail(.protocolViolation, "recover is only allowed after a welcome that asked for it")
            }
            guard Self.fits(changes, maximumBatch) else {
                return fail(.protocolViolation, "a recovery batch of \(changes.count) changes exceeds the batch limit of \(maximumBatch)")
            }
            return .recover(changes)
        case (.established, .pull(let cursor, let limit)):
            guard cursor >= 0 else { return fail(.protocolViolation, "a negative cursor") }
            return .pull(cursor: cursor, limit: Int(min(limit == 0 ? UInt64(maximumBatch) : limit, UInt64(maximumBatch))))
        case (.established, .snapshot(let limit)):
            // Once per session: a snapshot is a long read of everything.
            guard !snapshotTaken else { return fail(.protocolViolation, "a second snapshot in one session") }
            snapshotTaken = true
            return .snapshot(limit: Int(min(limit == 0 ? UInt64(maximumBatch) : limit, UInt64(maximumBatch))))
        case (.established, .report(let cursor, let outbox, let bytes, let lastError)):
            guard cursor >= 0 else { return fail(.protocolViolation, "a negative cursor in the report") }
            state = .reported
            return .report(cursor: cursor, outbox: outbox, databaseBytes: bytes, lastError: lastError)
        case (.established, _), (.reported, _):
            return fail(.protocolViolation, "unexpected \(message.name) in state \(state)")
        case (.closed, _):
            return fail(.protocolViolation, "the session is closed")
        }
    }

    /// The hello was accepted; `healing` when the welcome carried the server's holdings.
    public mutating func established(healing: Bool = false) {
        if state == .awaitingHello {
            state = .established
            self.healing = healing
        }
    }

    public mutating func close() { state = .closed }

    private mutating func fail(_ code: ServerError.Code, _ message: String) -> Action {
        state = .closed
        return .fail(code, message)
    }
}
