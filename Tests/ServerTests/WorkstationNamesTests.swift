import Foundation
import Server
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// The welcome names the workstations (protocol 5), so a workstation shows who wrote what by name;
/// a version-4 workstation is answered as before, with nothing it cannot read.
@Suite struct WorkstationNamesTests {
    @Test func aVersionFiveHelloIsToldTheNamesAndAVersionFourHelloIsAnsweredAsBefore() async throws {
        // Given a server with two enrolled workstations, one of them revoked.
        let folder = try TemporaryDirectory("names")
        defer { folder.remove() }
        let server = try ServerStore.create(at: folder.file("server.db"), rooms: 3).beginRun()
        let reception = ReplicaID.random(), office = ReplicaID.random()
        try server.enroll(name: "reception", replicaID: reception, serial: "r")
        try server.enroll(name: "office", replicaID: office, serial: "o")
        _ = try server.revoke(name: "office")
        func answer(_ version: UInt64) async -> WireMessage? {
            var session = ServerSession(store: server, maximumBatch: 100, peer: .init(replicaID: reception, serial: "r"))
            let hello = WireMessage.Hello(protocolVersion: version, schemaVersion: UInt64(ShelterSchema.version), replicaID: reception,
                                          clientVersion: "t", hlcNow: .zero, wallNow: UInt64(Date().timeIntervalSince1970 * 1000), counter: 0)
            return await session.receive(.hello(hello)).answers.first
        }

        // When a version-5 workstation says hello, then the welcome names every workstation (the
        // revoked one too: its writes stay in the records) and marks the server's own writer.
        guard case .welcome(let current)? = await answer(WireMessage.protocolVersion) else { Issue.record("no welcome"); return }
        #expect(current.workstations?[reception] == "reception" && current.workstations?[office] == "office")
        #expect(current.workstations?[server.serverID] == "")
        #expect(try WireMessage.decode(WireMessage.welcome(current).encoded()) == .welcome(current))

        // The names only follow what a version-4 welcome holds: cut there, the bytes are a whole
        // version-4 welcome; cut inside the names, they are refused.
        // Version 6 ends with the snapshot flag, after the names: cut before it, the bytes are a
        // whole version-5 welcome.
        #expect(current.snapshots)
        var older = current
        older.workstations = nil
        older.snapshots = false
        var version5 = current
        version5.snapshots = false
        let full = WireMessage.welcome(current).encoded(), prefix = WireMessage.welcome(older).encoded()
        #expect(full.starts(with: prefix) && full.count > prefix.count)
        #expect(try WireMessage.decode(prefix) == .welcome(older))
        #expect(try WireMessage.decode(Array(full.dropLast())) == .welcome(version5))
        for cut in (prefix.count + 1)..<(full.count - 1) {
            #expect(throws: BinaryReader.Error.self, "cut at \(cut)") { try WireMessage.decode(Array(full.prefix(cut))) }
        }

        // A version-4 workstation gets a welcome without names; an older one is refused.
        guard case .welcome(let old)? = await answer(4) else { Issue.record("a version-4 hello was not welcomed"); return }
        #expect(old.workstations == nil)
        guard case .error("incompatibleProtocol", _)? = await answer(3) else { Issue.record("a version-3 hello was welcomed"); return }
    }
}
