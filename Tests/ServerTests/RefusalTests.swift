import ClientKit
import Foundation
import NIOCore
import NIOSSL
import Server
import SyncCore
import SyncTransport
import Testing
import TestSupport

/// Who the server refuses, and that it keeps serving everyone else.
@Suite struct RefusalTests {
    func bundle(_ server: TestServer, _ name: String) throws -> WorkstationBundle {
        let enrollment = try server.directory.enroll(name: name, bundlePath: server.folder.file("\(name).bundle"))
        return try WorkstationBundle(pem: String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self),
                                     source: enrollment.bundlePath)
    }

    func expectNoWelcome(_ outcome: RawClient.Outcome, _ what: String) {
        if case .answered(.welcome) = outcome { Issue.record("\(what) was welcomed") }
    }

    @Test func aRevokedWorkstationIsRefusedAndSeen() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let a = try await server.workstation("reception")
        _ = try await a.sync()
        try a.admit(Admission(name: "A", municipality: "Køge"), by: staff("s"))
        // Revoked while the server runs.
        try server.directory.store().revoke(name: "reception")
        do {
            _ = try await a.sync()
            Issue.record("a revoked workstation synced")
        } catch let error as ReplicaError {
            #expect(error.code == .syncFailed && error.message.contains("revoked"))
        }
        #expect(try a.status().unsynced == 3, "its changes (resident, stay, notification) stay unsynced")
        #expect(try a.status().lastError?.code == "revoked")
        let registry = ReplicaInspector(path: server.directory.storePath)
        #expect(try registry.count("SELECT COUNT(*) FROM server_replicas WHERE name = 'reception' AND revoked_at IS NOT NULL AND last_seen IS NOT NULL AND last_error_code = 'revoked'") == 1)
        try await server.stop()
    }

    @Test func certificatesFromAnotherCAOrNoneAreRefusedAtTheHandshake() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let genuine = try bundle(server, "genuine")
        let ca = try server.directory.ca().certificate

        // A workstation certificate from another CA, claiming the genuine replica id.
        let otherCA = try ShelterCA.create(commonName: "Someone else's CA")
        let forged = try otherCA.issueWorkstation(name: "genuine", replicaID: genuine.replicaID)
        expectNoWelcome(await RawClient.hello(port: server.port, tls: try TLSSettings.client(identity: forged, ca: ca), replicaID: genuine.replicaID),
                        "a certificate from another CA")

        // No client certificate at all.
        var anonymous = TLSConfiguration.makeClientConfiguration()
        anonymous.minimumTLSVersion = .tlsv13
        anonymous.trustRoots = .certificates([try TLSSettings.nio(ca)])
        expectNoWelcome(await RawClient.hello(port: server.port, tls: anonymous, replicaID: genuine.replicaID), "a client with no certificate")

        // A TLS 1.2-only client with a genuine certificate.
        var old = try TLSSettings.client(identity: genuine.identity, ca: ca)
        old.minimumTLSVersion = .tlsv12
        old.maximumTLSVersion = .tlsv12
        expectNoWelcome(await RawClient.hello(port: server.port, tls: old, replicaID: genuine.replicaID), "a TLS 1.2 client")

        // Plain TCP: a well-formed hello frame, but no TLS.
        let hello = WireMessage.hello(.init(schemaVersion: 2, replicaID: genuine.replicaID, clientVersion: "plain", hlcNow: .zero, counter: 0)).encoded()
        let frame = withUnsafeBytes(of: UInt32(hello.count).bigEndian) { Array($0) } + hello
        expectNoWelcome(await RawClient.plainTCP(port: server.port, bytes: frame), "a plain TCP client")

        // After all that, the genuine workstation is still served.
        let outcome = await RawClient.hello(port: server.port, tls: try TLSSettings.client(identity: genuine.identity, ca: ca), replicaID: genuine.replicaID)
        guard case .answered(.welcome) = outcome else {
            Issue.record("the genuine workstation was not welcomed: \(outcome)")
            return
        }
        try await server.stop()
    }

    @Test func helloMustMatchTheCertificateAndSpeakTheSameVersions() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let genuine = try bundle(server, "genuine")
        let tls = try TLSSettings.client(identity: genuine.identity, ca: try server.directory.ca().certificate)
        func code(_ outcome: RawClient.Outcome) -> String? {
            if case .answered(.error(let code, _)) = outcome { return code }
            return nil
        }
        #expect(code(await RawClient.hello(port: server.port, tls: tls, replicaID: .random())) == "replicaMismatch")
        #expect(code(await RawClient.hello(port: server.port, tls: tls, replicaID: genuine.replicaID, schemaVersion: 99)) == "incompatibleSchema")
        #expect(code(await RawClient.hello(port: server.port, tls: tls, replicaID: genuine.replicaID, protocolVersion: 7)) == "incompatibleProtocol")
        try await server.stop()
    }

    @Test func aReplicaMayPushOnlyItsOwnDots() async throws {
        let server = try await TestServer.start()
        defer { server.remove() }
        let a = try await server.workstation("a")
        let b = try await server.workstation("b")
        _ = try await b.sync()
        // a's replica file is tampered with so that its outbox holds a change with b's dot.
        try await GRDB.DatabaseQueue(path: a.path).write { db in
            try db.execute(sql: "INSERT INTO sync_peers (replica_id) VALUES (?)", arguments: [b.id.description])
            let peer = db.lastInsertedRowID
            try db.execute(sql: """
                INSERT INTO sync_log (peer, counter, tbl, row, hlc, author, context, vals, state)
                VALUES (?, 1, 3, 'ffffffffffffffffffffffffffffffff', 1, 'x', x'00', x'00', 0)
                """, arguments: [peer])
        }
        do {
            _ = try await a.sync()
            Issue.record("a foreign dot was accepted")
        } catch let error as ReplicaError {
            #expect(error.message.contains("foreignDot"))
        }
        #expect(try ReplicaInspector(path: server.directory.storePath).count("SELECT COUNT(*) FROM residents WHERE id = 'ffffffffffffffffffffffffffffffff'") == 0)
        try await server.stop()
    }

    // The limit catches a hang, not slowness: on a loaded 2-core machine (a build beside the tests)
    // starting the server alone once took most of a minute.
    @Test(.timeLimit(.minutes(3))) func aSilentClientIsDisconnected() async throws {
        let server = try await TestServer.start(idleTimeout: .milliseconds(300))
        defer { server.remove() }
        let outcome = await RawClient.plainTCP(port: server.port, bytes: [])
        // It returns (closed by the server) instead of hanging.
        if case .answered = outcome { Issue.record("a silent client got an answer") }
        try await server.stop()
    }
}

import GRDB
