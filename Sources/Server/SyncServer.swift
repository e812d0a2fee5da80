import Foundation
import GRDB
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import ShelterDomain
import SyncCore
import SyncTransport
import Synchronization
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
        /// The most a workstation's clock may differ from the server's (seconds).
        public var maxClockSkew: TimeInterval = 300

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
    /// When the server's own certificate expires.
    public let certificateExpires: Date
    let configuration: Configuration
    let sslContext: NIOSSLContext
    let logger: Logger
    let onListening: @Sendable (SocketAddress) -> Void

    public init(directory: ServerDirectory, configuration: Configuration = Configuration(), logger: Logger,
                metrics: ServerMetrics = ServerMetrics(), statementObserver: (@Sendable (String) -> Void)? = nil,
                onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) throws {
        let identity = try directory.serverIdentity()
        let expires = identity.certificate.notValidAfter
        guard expires > Date() else {
            throw ServerError(.directory, "the server's certificate (\(directory.serverCertificatePath)) expired on \(Timestamp.format(expires)); issue a new one with `shelter server certify --dir \(directory.path) --host NAME`")
        }
        self.certificateExpires = expires
        self.store = try directory.storeForServing(statementObserver: statementObserver)
        self.metrics = metrics
        self.configuration = configuration
        self.sslContext = try NIOSSLContext(configuration: TLSSettings.server(identity: identity, ca: try directory.caCertificate()))
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let sslContext = self.sslContext
        let store = self.store
        let configuration = self.configuration
        let unserved = UnservedChannels()
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
                    try sync.addHandler(SignatureLookahead(store: store))
                    try sync.addHandler(MessageToByteHandler(WireFrameEncoder()))
                    let connection = try NIOAsyncChannel<WireMessage, WireMessage>(wrappingChannelSynchronously: channel)
                    unserved.insert(connection)
                    return connection
                }
            }
        if let address = listener.channel.localAddress { onListening(address) }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        unserved.remove(connection.channel)
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            listener.channel.close(promise: nil)
        }
        // A connection accepted while the listener closed, which no session took: close it, so its
        // workstation fails at once instead of waiting for its read timeout.
        await unserved.closeAll()
    }

    /// Connections accepted but not yet handed to a session. Held here, not only by NIO's stream:
    /// a connection accepted while the listener closes is never delivered, and NIO traps when such
    /// an async channel is released without its writer being finished (a crash of the server on
    /// SIGTERM, and of the test process, seen when workstations connected during a shutdown).
    final class UnservedChannels: Sendable {
        private let connections = Mutex<[ObjectIdentifier: NIOAsyncChannel<WireMessage, WireMessage>]>([:])

        func insert(_ connection: NIOAsyncChannel<WireMessage, WireMessage>) {
            connections.withLock { $0[ObjectIdentifier(connection.channel)] = connection }
        }

        func remove(_ channel: any Channel) { _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }

        func closeAll() async {
            for connection in connections.withLock({ state in defer { state = [:] }; return Array(state.values) }) {
                try? await connection.executeThenClose { _, _ in }
            }
        }
    }

    // MARK: One session

    func serve(_ connection: NIOAsyncChannel<WireMessage, WireMessage>) async {
        let started = ContinuousClock.now
        let metrics = self.metrics
        var session: ServerSession?
        func open() async -> ServerSession {
            // The handshake is complete once a message has arrived: the peer's certificate is known.
            let peer = try? await connection.channel.nioSSL_peerCertificate().get().flatMap { certificate in
                (try? TLSSettings.certificate(certificate)).map {
                    ServerSession.Peer(replicaID: $0.replicaID, serial: $0.serialNumber.hex, notValidAfter: $0.notValidAfter)
                }
            }
            var session = ServerSession(store: store, maximumBatch: configuration.maximumBatch, peer: peer ?? nil,
                                        maxClockSkew: configuration.maxClockSkew, logger: logger, onMerge: { metrics.mergeDuration($0) })
            session.streamsSnapshots = true
            session.signatures = try? await connection.channel.pipeline.handler(type: SignatureLookahead.self).get().checks
            return session
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                do {
                    for try await message in inbound {
                        if session == nil { session = await open() }
                        let (answers, ends) = await session!.receive(message)
                        for answer in answers { try await outbound.write(answer) }
                        if ends { return }
                        if let snapshot = session!.snapshotStream() {
                            // Each batch leaves as soon as it is read; a failed read ends the session
                            // with an error (the workstation writes nothing of a snapshot cut short).
                            var batches = snapshot.makeAsyncIterator()
                            while true {
                                let next: WireMessage?
                                do { next = try await batches.next() } catch {
                                    // The kind and SQLite's code only: never values.
                                    logger.error("the store failed reading a snapshot", metadata: [
                                        "error.type": "\(type(of: error))",
                                        "error.code": "\((error as? DatabaseError)?.resultCode.rawValue ?? 0)",
                                    ])
                                    try await outbound.write(await session!.refuse(.internalError, "the server could not read its records; nothing was sent, try again later"))
                                    return
                                }
                                guard let answer = next else { break }
                                try await outbound.write(answer)
                                if case .snapshotEnd(let seal) = answer { session!.sentSnapshot(rows: Int(seal.rows)) }
                            }
                        }
                    }
                } catch let error as WireError {
                    if session == nil { session = await open() }
                    let code: ServerError.Code = error.kind == .frameTooLarge ? .frameTooLarge : .malformedMessage
                    try? await outbound.write(await session!.refuse(code, error.description))
                }
            }
        } catch {
            // The connection broke (TLS, timeout, a peer that went away) before the session ended.
            await session?.disconnected(outcome: Self.outcome(of: error))
        }
        let summary = session?.summary ?? ServerSession.Summary(outcome: "disconnected")
        metrics.session(outcome: summary.outcome, pushed: summary.pushed + summary.recovered, pulled: summary.pulled, snapshotRows: summary.snapshotRows, conflicts: summary.conflicts)
        let elapsed = ContinuousClock.now - started
        let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        // Ids and counts only: no names of residents, no CPR numbers, no notes.
        var metadata: Logger.Metadata = [
            "sync.replica": "\(summary.name ?? summary.replica?.description ?? "unidentified")",
            "sync.outcome": "\(summary.outcome)",
            "sync.pushed": "\(summary.pushed)",
            "sync.pulled": "\(summary.pulled)",
            "sync.conflicts": "\(summary.conflicts)",
            "sync.rejected": "\(summary.rejected)",
            "sync.durationMs": "\(milliseconds)",
        ]
        if summary.recovered > 0 { metadata["sync.recovered"] = "\(summary.recovered)" }
        if summary.snapshotRows > 0 { metadata["sync.snapshotRows"] = "\(summary.snapshotRows)" }
        logger.info("sync session", metadata: metadata)
    }

    static func outcome(of error: any Error) -> String {
        switch error {
        case NIOSSLError.uncleanShutdown: "disconnected"  // the network went away; the handshake had worked
        case is NIOSSLError, is BoringSSLError: "tlsFailed"
        case let error as ChannelError where error == .inputClosed || error == .eof: "disconnected"
        case is ReadIdleTimeout.Timeout: ServerError.Code.timeout.rawValue
        default: "disconnected"
        }
    }
}

/// Starts checking a pushed batch's signatures as soon as it is decoded, on another core, while
/// the session is still merging the batch before it (the workstation keeps two in flight): the
/// merge's rules then find them done (`SignatureChecks`). Passes every message on unchanged.
final class SignatureLookahead: ChannelInboundHandler, Sendable {
    typealias InboundIn = WireMessage
    typealias InboundOut = WireMessage

    let store: ServerStore
    let checks = SignatureChecks()
    /// Checks under way for this connection: at most `window` (a workstation keeps two batches in
    /// flight); a batch beyond it is simply checked in its merge, as without the lookahead.
    private let running = Mutex(0)
    static let window = 2

    init(store: ServerStore) { self.store = store }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .push(let changes) = unwrapInboundIn(data), changes.count <= WireMessage.maximumTransaction,
           running.withLock({ count in
               guard count < Self.window else { return false }
               count += 1
               return true
           }) {
            let store = self.store, checks = self.checks
            Task.detached(priority: .high) { [self] in
                await store.preverify(changes, checks: checks)
                running.withLock { $0 -= 1 }
            }
        }
        context.fireChannelRead(data)
    }
}
