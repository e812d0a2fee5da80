import ClientKit
import Foundation
import NIOCore
import Server
import ShelterDomain
import Testing
import TestSupport

@Suite struct CutConnectionTests {
    @Test(.timeLimit(.minutes(2))) func aConnectionCutMidFrameFailsCleanlyAndTheNextSyncCompletes() async throws {
        let server = try await TestServer.start(rooms: 9)
        defer { server.remove() }
        // The writer syncs directly; the reader goes through a proxy that cuts mid-frame.
        let writer = try await server.workstation("writer")
        _ = try await writer.sync()
        for n in 0..<150 { try writer.admit(Admission(name: "N\(n)", municipality: "Køge"), by: staff("s")) }
        _ = try await writer.sync()
        let proxy = try await CuttingProxy.start(to: server.port, cutAfter: nil)
        let enrollment = try server.directory.enroll(name: "reader", bundlePath: server.folder.file("reader.bundle"))
        let reader = try Replica.create(at: server.folder.file("reader.replica"),
                                        bundlePEM: String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self),
                                        bundleSource: enrollment.bundlePath, server: "127.0.0.1:\(proxy.port)")
        // Its first sync brings the staff (and everything so far); then the writer admits more.
        _ = try await reader.sync()
        for n in 150..<300 { try writer.admit(Admission(name: "N\(n)", municipality: "Køge"), by: staff("s")) }
        _ = try await writer.sync()
        proxy.setCut(9_000)
        try reader.admit(Admission(name: "Offline", municipality: "Greve"), by: staff("s"))
        // When the connection is cut in the middle of the pull's frames.
        do {
            _ = try await reader.sync(readTimeout: .seconds(5))
            Issue.record("a sync through a cut connection succeeded")
        } catch let error as ReplicaError {
            #expect(error.code == .syncFailed)
        }
        // Then the replica is intact: whatever landed landed whole, with its cursor.
        #expect(try ReplicaInspector(path: reader.path).integrityCheck() == ["ok"])
        #expect(try reader.status().lastError != nil)
        // And the next session, through a healed connection, completes.
        proxy.setCut(nil)
        let report = try await reader.sync()
        #expect(report.pulled > 0)
        #expect(try reader.status().unsynced == 0)
        #expect(try ReplicaInspector(path: reader.path).domainSnapshot() == ReplicaInspector(path: server.directory.storePath).domainSnapshot())
        await proxy.stop()
        try await server.stop()
    }
}
