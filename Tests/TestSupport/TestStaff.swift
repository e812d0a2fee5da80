import ClientKit
import Crypto
import Foundation
import Synchronization
import Server
import ShelterDomain
import SyncCore

/// Members of staff for tests: the same name always has the same keys (derived from the name), so
/// a test can act as "mette" on any replica and the server. Their keys are sealed (at the shelter's
/// scrypt cost: the rules refuse less) under the passphrase `TestStaff.passphrase(name)`.
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

    /// Sealed once per process (the salt is random), so a simulated seed replays exactly.
    public static func sealed(_ name: String) -> String {
        let id = Roles.staffID(name)
        return sealedCache.withLock { cache in
            if let known = cache[id] { return known }
            let sealed = try! keys(name).sealed(passphrase: passphrase(name), staffID: id)
            cache[id] = sealed
            return sealed
        }
    }

    static let sealedCache = Mutex<[String: String]>([:])

    /// The shelter key of every test replica and test server (its grants are made per member).
    public static let shelterKey = try! RecordKeys.ShelterKey(bytes: Array(SHA256.hash(data: Data("the test shelter key".utf8))))

    /// The test shelter key sealed to `name`'s agreement key.
    public static func grant(_ name: String) -> (staff: String, shelterKey: String, sealed: String) {
        let id = Roles.staffID(name)
        return (id, shelterKey.id, try! RecordKeys.grant(shelterKey, to: keys(name).agreementKey, staffID: id))
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
        try createShelterKeyIfNone(by: TestSupport.staff("test"))
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
        try storeGrants((TestStaff.leaders + others.map(\.0)).map(TestStaff.grant))
    }
}

extension CellChange {
    /// This change as a transaction of its own, signed by `signer` (tests that build changes by hand).
    public func sealed(by signer: some TransactionSigner) -> CellChange {
        var change = self
        change.seal = nil
        change.seal = Seal(first: dot.counter, signer: signer.signer, signature: try! signer.sign(Seal.digest(signer: signer.signer, changes: [change])))
        return change
    }
}
