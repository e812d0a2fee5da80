import ClientKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Server
import ServiceLifecycle
import ShelterDomain
import SyncCore
import SyncTransport

/// A real sync server on loopback, port 0, with a CA and certificates made for this test only.
public final class TestServer: Sendable {
    public let directory: ServerDirectory
    public let folder: TemporaryDirectory
    public let port: Int
    /// The admin HTTP port (`/metrics`, `/healthz`, `/`).
    public let adminPort: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    public var address: String { "127.0.0.1:\(port)" }

    /// The changes of the staff every test server starts with (the test leaders and Jonas).
    /// The test staff's rows, then the test shelter key granted to each of them.
    public static let staffChanges = 2 * (TestStaff.leaders.count + 1)

    public static func start(rooms: Int = 9, idleTimeout: TimeAmount = .seconds(30), maximumBatch: Int? = nil,
                             statementObserver: (@Sendable (String) -> Void)? = nil) async throws -> TestServer {
        let folder = try TemporaryDirectory("server")
        let directory = try ServerDirectory.initialize(at: folder.file("srv"), rooms: rooms)
        try directory.store().addTestStaff([("Jonas", .socialWorker)])
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let (adminPorts, adminContinuation) = AsyncStream.makeStream(of: Int.self)
        var configuration = SyncServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.idleTimeout = idleTimeout
        if let maximumBatch { configuration.maximumBatch = maximumBatch }
        let server = try SyncServer(directory: directory, configuration: configuration, logger: logger,
                                    statementObserver: statementObserver) { address in
            continuation.yield(address.port ?? 0)
            continuation.finish()
        }
        let admin = AdminHTTP.application(store: server.store, metrics: server.metrics, host: "127.0.0.1", port: 0,
                                          serverCertificateExpires: server.certificateExpires, logger: logger) { address in
            adminContinuation.yield(address.port ?? 0)
            adminContinuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [server, admin], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        var adminIterator = adminPorts.makeAsyncIterator()
        guard let port = await iterator.next(), let adminPort = await adminIterator.next() else { throw CancellationError() }
        return TestServer(directory: directory, folder: folder, port: port, adminPort: adminPort, group: group, task: task)
    }

    init(directory: ServerDirectory, folder: TemporaryDirectory, port: Int, adminPort: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.directory = directory
        self.folder = folder
        self.port = port
        self.adminPort = adminPort
        self.group = group
        self.task = task
    }

    /// Enrolls a workstation and creates its replica, bound to this server; with `firstSync` it
    /// syncs once, as a new workstation must before anyone can log in there (it brings the staff).
    public func workstation(_ name: String, configuration: Replica.Configuration = .init(), firstSync: Bool = true) async throws -> Replica {
        let enrollment = try directory.enroll(name: name, bundlePath: folder.file("\(name).bundle"))
        let pem = String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self)
        let replica = try Replica.create(at: folder.file("\(name).replica"), bundlePEM: pem, bundleSource: enrollment.bundlePath,
                                         server: address, configuration: configuration)
        if firstSync { _ = try await replica.sync() }
        // Reads show personal data to a session: "s", a test leader, until an action uses another.
        replica.useSession(staff("s"))
        return replica
    }

    /// SIGTERM's path: stop accepting, let sessions in flight finish, return.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    public func remove() { folder.remove() }
}

/// One raw attempt at a session: optional TLS, send `hello`, return the first answer.
public enum RawClient {
    public enum Outcome: Sendable {
        case answered(WireMessage)
        case closed
        case failed(String)
    }

    public static func hello(port: Int, tls: TLSConfiguration?, replicaID: ReplicaID, counter: UInt64 = 0,
                             schemaVersion: UInt64 = UInt64(ShelterSchema.version), protocolVersion: UInt64 = WireMessage.protocolVersion) async -> Outcome {
        do {
            let context = try tls.map { try NIOSSLContext(configuration: $0) }
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let context { try sync.addHandler(try NIOSSLClientHandler(context: context, serverHostname: "localhost")) }
                        try sync.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                        try sync.addHandler(MessageToByteHandler(WireFrameEncoder()))
                        return try NIOAsyncChannel<WireMessage, WireMessage>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(.hello(.init(protocolVersion: protocolVersion, schemaVersion: schemaVersion, replicaID: replicaID,
                                                      clientVersion: "raw", hlcNow: HLC(milliseconds: 1, logical: 0),
                                                      wallNow: UInt64(Date().timeIntervalSince1970 * 1000), counter: counter)))
                var iterator = inbound.makeAsyncIterator()
                guard let first = try await iterator.next() else { return .closed }
                return .answered(first)
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// Opens TLS (when `tls` is given), sends raw bytes, and reads until the server closes.
    /// Returns the first message the server sent, if any.
    public static func raw(port: Int, tls: TLSConfiguration?, bytes: [UInt8]) async -> Outcome {
        do {
            let context = try tls.map { try NIOSSLContext(configuration: $0) }
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let context { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: "localhost")) }
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                if !bytes.isEmpty { try await outbound.write(ByteBuffer(bytes: bytes)) }
                var received: [UInt8] = []
                do { for try await buffer in inbound { received += buffer.readableBytesView } } catch {}
                guard received.count >= 4 else { return .closed }
                let length = Int(received[0]) << 24 | Int(received[1]) << 16 | Int(received[2]) << 8 | Int(received[3])
                guard received.count >= 4 + length, let message = try? WireMessage.decode(Array(received[4..<(4 + length)])) else { return .closed }
                return .answered(message)
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// Sends raw bytes over plain TCP and reads until the server closes (or `timeout`).
    public static func plainTCP(port: Int, bytes: [UInt8]) async -> Outcome {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(bytes: bytes))
                var received: [UInt8] = []
                for try await buffer in inbound { received += buffer.readableBytesView }
                // The TLS server answers a plain client at most with a TLS alert, never a message.
                if let message = try? WireMessage.decode(Array(received.dropFirst(4))) { return .answered(message) }
                return .closed
            }
        } catch {
            return .failed("\(error)")
        }
    }
}

/// A minimal HTTP/1.1 client over loopback (the admin surface is plain HTTP on 127.0.0.1): GET or HEAD.
public enum HTTPGet {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String
    }

    public static func get(port: Int, path: String) async throws -> Response {
        try await request("GET", port: port, path: path)
    }

    /// One request with `method` (GET or HEAD: no request body); the connection is closed after it.
    public static func request(_ method: String, port: Int, path: String) async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let raw: [UInt8] = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
            var bytes: [UInt8] = []
            for try await buffer in inbound { bytes += buffer.readableBytesView }
            return bytes
        }
        let text = String(decoding: raw, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw CancellationError() }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body = String(text[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ text: String) -> String {
        var rest = Substring(text), out = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = lineEnd.upperBound
            let utf8 = rest[start...].utf8
            let end = utf8.index(utf8.startIndex, offsetBy: size)
            out += String(rest[start..<end])
            rest = rest[end...].dropFirst(2)
        }
        return out
    }
}
