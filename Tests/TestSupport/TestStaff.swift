import ClientKit
import Crypto
import Foundation
import Server
import ShelterDomain
import SyncCore

/// Members of staff for tests: the same name always has the same keys (derived from the name), so
/// a test can act as "mette" on any replica and the server. Their keys are sealed with a low scrypt
/// cost (tests only) under the passphrase `TestStaff.passphrase(name)`.
public enum TestStaff {
    /// The names every test replica and test server knows, as leaders (tests that check roles add
    /// others with `addStaff(name:role:by:)`).
    public static let leaders = ["test", "setup", "s", "mette", "bench"]

    public static func keys(_ name: String) -> StaffKeys {
        let id = Roles.staffID(name)
        let signing = try! Curve25519.Signing.PrivateKey(rawRepresentation: SHA256.hash(data: Data("sign \(id)".utf8)))
        let agreement = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: SHA256.hash(data: Data("agree \(id)".utf8)))
        return StaffKeys(signing: signing, agreement: agreement)
    }

    public static func passphrase(_ name: String) -> String { "passphrase of \(Roles.staffID(name))" }

    public static func sealed(_ name: String) -> String {
        try! keys(name).sealed(passphrase: passphrase(name), staffID: Roles.staffID(name), cost: .init(logN: 10, r: 8, p: 1))
    }
}

/// A test session for `name` (her keys in memory).
public func staff(_ name: String) -> KeySigner { KeySigner(name: name, keys: TestStaff.keys(name)) }

extension Replica {
    /// An in-memory standalone replica whose first leader is "test"; the other test leaders are added.
    public static func inMemory(rooms: Int = 9, replicaID: ReplicaID = .random(), configuration: Configuration = Configuration()) throws -> Replica {
        let replica = try inMemory(rooms: rooms, leader: "test", keys: TestStaff.keys("test"), sealedKeys: TestStaff.sealed("test"),
                                   replicaID: replicaID, configuration: configuration)
        try replica.addTestLeaders()
        return replica
    }

    /// A standalone replica file whose first leader is "test"; the other test leaders are added.
    public static func create(at path: String, rooms: Int, configuration: Configuration = Configuration()) throws -> Replica {
        let replica = try create(at: path, rooms: rooms, leader: "test", keys: TestStaff.keys("test"), sealedKeys: TestStaff.sealed("test"),
                                 configuration: configuration)
        try replica.addTestLeaders()
        return replica
    }

    func addTestLeaders() throws {
        for name in TestStaff.leaders where name != "test" {
            try addStaff(name: name, role: .leader, keys: TestStaff.keys(name), sealedKeys: TestStaff.sealed(name), by: TestSupport.staff("test"))
        }
    }

    /// Adds a member of staff with her test keys.
    public func addStaff(name: String, role: StaffRole, by session: any TransactionSigner) throws {
        try addStaff(name: name, role: role, keys: TestStaff.keys(name), sealedKeys: TestStaff.sealed(name), by: session)
    }
}

extension ServerStore {
    /// Adds the test leaders (and any `others`) to a server store, signed by the server.
    public func addTestStaff(_ others: [(String, StaffRole)] = []) throws {
        for name in TestStaff.leaders { try addStaff(name: name, role: .leader, keys: TestStaff.keys(name), sealedKeys: TestStaff.sealed(name)) }
        for (name, role) in others { try addStaff(name: name, role: role, keys: TestStaff.keys(name), sealedKeys: TestStaff.sealed(name)) }
    }
}
