import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import ShelterDomain
import SyncCore
import SyncTransport
import X509

/// The sync server: a TLS 1.3 listener with mutual authentication, one session per connection.
///
/// A `Service`: on SIGTERM/SIGINT (through a `ServiceGroup`) it stops accepting, lets the sessions in
/// flight finish their commits, and returns.
public final class SyncServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var maximumBatch: Int
        public var maximumFrameSize: Int
        /// A peer that sends nothing for this long is disconnected, freeing its slot.
        public var idleTimeout: TimeAmount

        public init(host: String = "127.0.0.1", port: Int = 7443, maximumBatch: Int = 1000,
                    maximumFrameSize: Int = WireFrameDecoder.defaultMaximumFrameSize, idleTimeout: TimeAmount = .seconds(30)) {
            self.host = host
            self.port = port
            self.maximumBatch = maximumBatch
            self.maximumFrameSize = maximumFrameSize
            self.idleTimeout = idleTimeout
        }
    }

    public let store: ServerStore
    public let metrics: ServerMetrics
    let configuration: Configuration
    let sslContext: NIOSSLContext
    let logger: Logger
    let onListening: @Sendable (SocketAddress) -> Void

    public init(directory: ServerDirectory, configuration: Configuration = Configuration(), logger: Logger,
                metrics: ServerMetrics = ServerMetrics(), statementObserver: (@Sendable (String) -> Void)? = nil,
                onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) throws {
        self.store = try directory.store(statementObserver: statementObserver)
        self.metrics = metrics
        self.configuration = configuration
        let identity = try directory.serverIdentity()
        self.sslContext = try NIOSSLContext(configuration: TLSSettings.server(identity: identity, ca: try directory.ca().certificate))
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let sslContext = self.sslContext
        let configuration = self.configuration
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    try sync.addHandler(ReadIdleTimeout())
                    try sync.addHandler(ByteToMessageHandler(WireFrameDecoder(maximumFrameSize: configuration.maximumFrameSize)))
                    try sync.addHandler(MessageToByteHandler(WireFrameEncoder()))
                    return try NIOAsyncChannel<WireMessage, WireMessage>(wrappingChannelSynchronously: channel)
                }
            }
        if let address = listener.channel.localAddress { onListening(address) }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            listener.channel.close(promise: nil)
        }
    }

    // MARK: One session

    struct SessionLog {
        var replica: ReplicaID?
        var name: String?
        var outcome = "incomplete"
        var pushed = 0
        var pulled = 0
        var conflicts = 0
        var rejected = 0
    }

    func serve(_ connection: NIOAsyncChannel<WireMessage, WireMessage>) async {
        let started = ContinuousClock.now
        var log = SessionLog()
        var machine = SyncSessionStateMachine(maximumBatch: configuration.maximumBatch)
        do {
            try await connection.executeThenClose { inbound, outbound in
                // Records the failure for the admin's view first, then tells the peer.
                func refuse(_ code: String, _ message: String) async {
                    log.outcome = code
                    if let replica = log.replica { await store.recordError(replica, code: code, at: Date()) }
                    try? await outbound.write(.error(code: code, message: message))
                }
                do {
                    for try await message in inbound {
                        switch machine.receive(message) {
                        case .greet(let hello):
                            switch await greet(hello, channel: connection.channel, log: &log) {
                            case .success(let welcome):
                                machine.established()
                                try await outbound.write(.welcome(welcome))
                            case .failure(let error):
                                await refuse(error.code.rawValue, error.message)
                                return
                            }
                        case .merge(let changes):
                            let mergeStarted = ContinuousClock.now
                            let result = try await store.mergePush(from: log.replica!, changes: changes)
                            metrics.mergeDuration(ContinuousClock.now - mergeStarted)
                            log.pushed += result.merged
                            log.rejected += result.rejected.count
                            log.conflicts += result.conflictsCreated
                            try await outbound.write(.pushAck(upToCounter: result.upToCounter, rejected: result.rejected))
                        case .pull(let cursor, let limit):
                            let (batch, next, more) = try await store.changes(for: log.replica!, after: cursor, limit: limit)
                            log.pulled += batch.count
                            try await outbound.write(.changes(batch, nextCursor: next, more: more))
                        case .report(let cursor, let outbox, let bytes, _):
                            try await store.recordReport(log.replica!, cursor: cursor, outbox: outbox, databaseBytes: bytes, at: Date())
                            log.outcome = "ok"
                            try await outbound.write(.bye)
                            return
                        case .fail(let code, let message):
                            await refuse(code.rawValue, message)
                            return
                        }
                    }
                } catch let error as WireError {
                    let code: ServerError.Code = error.kind == .frameTooLarge ? .frameTooLarge : .malformedMessage
                    await refuse(code.rawValue, error.description)
                } catch let error as ServerError {
                    await refuse(error.code.rawValue, error.message)
                }
            }
        } catch {
            // The connection broke (TLS, timeout, a peer that went away) before the session ended.
            if log.outcome == "incomplete" {
                log.outcome = Self.outcome(of: error)
                if let replica = log.replica { await store.recordError(replica, code: log.outcome, at: Date()) }
            }
        }
        metrics.session(outcome: log.outcome, pushed: log.pushed, pulled: log.pulled, conflicts: log.conflicts)
        let elapsed = ContinuousClock.now - started
        let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        // Ids and counts only: no names of residents, no CPR numbers, no notes.
        logger.info("sync session", metadata: [
            "sync.replica": "\(log.name ?? log.replica?.description ?? "unidentified")",
            "sync.outcome": "\(log.outcome)",
            "sync.pushed": "\(log.pushed)",
            "sync.pulled": "\(log.pulled)",
            "sync.conflicts": "\(log.conflicts)",
            "sync.rejected": "\(log.rejected)",
            "sync.durationMs": "\(milliseconds)",
        ])
    }

    static func outcome(of error: any Error) -> String {
        switch error {
        case is NIOSSLError, is BoringSSLError: "tlsFailed"
        case let error as ChannelError where error == .inputClosed || error == .eof: "disconnected"
        case is ReadIdleTimeout.Timeout: ServerError.Code.timeout.rawValue
        default: "disconnected"
        }
    }

    /// Checks a hello against the peer's certificate and the registry.
    func greet(_ hello: WireMessage.Hello, channel: any Channel, log: inout SessionLog) async -> Result<WireMessage.Welcome, ServerError> {
        let now = Date()
        do {
            guard let peer = try await channel.nioSSL_peerCertificate().get(),
                  let certificate = try? TLSSettings.certificate(peer),
                  let certified = certificate.replicaID else {
                return .failure(ServerError(.unknownCertificate, "the client certificate carries no replica id"))
            }
            guard let registration = try await store.registration(certified) else {
                return .failure(ServerError(.unknownCertificate, "this certificate is not enrolled with this server"))
            }
            log.replica = certified
            log.name = registration.name
            try await store.recordSeen(certified, at: now, hello: hello)
            if registration.revokedAt != nil {
                return .failure(ServerError(.revoked, "the certificate of workstation \(registration.name) was revoked"))
            }
            guard certificate.serialNumber.hex == registration.serial else {
                return .failure(ServerError(.unknownCertificate, "this certificate is not the one enrolled for \(registration.name)"))
            }
            guard hello.replicaID == certified else {
                return .failure(ServerError(.replicaMismatch, "the replica id in hello does not match the certificate's"))
            }
            guard hello.protocolVersion == WireMessage.protocolVersion else {
                return .failure(ServerError(.incompatibleProtocol, "protocol \(hello.protocolVersion) is not spoken here (this server speaks \(WireMessage.protocolVersion))"))
            }
            guard hello.schemaVersion == UInt64(ShelterSchema.version) else {
                return .failure(ServerError(.incompatibleSchema, "schema version \(hello.schemaVersion) does not match the server's \(ShelterSchema.version); upgrade ShelterSync"))
            }
            guard hello.counter >= registration.acknowledged else {
                return .failure(ServerError(.replicaRewound, "the replica's counter \(hello.counter) is behind the \(registration.acknowledged) changes the server already has from it: it was restored from an old copy"))
            }
            return .success(.init(server: store.serverID, head: try await store.head(), acknowledged: registration.acknowledged,
                                  maxBatch: UInt64(configuration.maximumBatch)))
        } catch {
            return .failure(ServerError(.internalError, "the server could not check this workstation", underlying: error))
        }
    }
}
