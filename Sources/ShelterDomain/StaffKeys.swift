import Crypto
import _CryptoExtras
import Foundation
import Synchronization
import SyncCore

/// A member of staff's keys (DESIGN §4): an Ed25519 key that signs her transactions and an X25519
/// key for the key grants of the next issue. The private keys are stored (replicated, so she can
/// log in at any workstation, offline) only sealed under a key derived from her passphrase.
public struct StaffKeys: Sendable {
    public let signing: Curve25519.Signing.PrivateKey
    public let agreement: Curve25519.KeyAgreement.PrivateKey

    public init(signing: Curve25519.Signing.PrivateKey = .init(), agreement: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.signing = signing
        self.agreement = agreement
    }

    /// The 64 bytes an agent keeps: the two private keys.
    public var secretBytes: [UInt8] { Array(signing.rawRepresentation) + Array(agreement.rawRepresentation) }

    public init(secretBytes bytes: some Collection<UInt8>) throws(DomainError) {
        let bytes = Array(bytes)
        guard bytes.count == 64,
              let signing = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes[0..<32]),
              let agreement = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: bytes[32..<64]) else {
            throw DomainError(.invalidValue, "the staff keys are not 64 bytes of two private keys")
        }
        self.init(signing: signing, agreement: agreement)
    }

    public var signingKey: String { Data(signing.publicKey.rawRepresentation).base64EncodedString() }
    public var agreementKey: String { Data(agreement.publicKey.rawRepresentation).base64EncodedString() }

    // MARK: Passphrases

    /// The fewest characters a passphrase may have.
    public static let minimumPassphraseLength = 10

    public static func checkPassphrase(_ passphrase: String) throws(DomainError) {
        guard passphrase.count >= minimumPassphraseLength else {
            throw DomainError(.invalidValue, t("passphrase.short", ("n", minimumPassphraseLength)))
        }
    }

    /// scrypt's cost: N = 2^15, r = 8, p = 1 (32 MiB; 0.1–0.4 s per guess on the build machine, well
    /// above the 50 ms asked). Stored with each sealed key, so it can be raised later.
    public struct Cost: Hashable, Sendable {
        public var logN: Int, r: Int, p: Int
        public init(logN: Int, r: Int, p: Int) {
            self.logN = logN
            self.r = r
            self.p = p
        }
        public static let standard = Cost(logN: 15, r: 8, p: 1)
    }

    /// The least cost the rules accept on sealed keys (`ShelterRules`): a modified client that seals
    /// a member's keys more cheaply — making her passphrase faster to guess from a stolen copy — is
    /// refused by her own workstation and by the server.
    public static let minimumCost = Cost(logN: 15, r: 8, p: 1)

    /// The cost a sealed key's text names, nil when the text is not sealed keys.
    public static func cost(ofSealed sealed: String) -> Cost? {
        let parts = sealed.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              (10...22).contains(logN), (1...32).contains(r), (1...16).contains(p),
              Data(base64Encoded: parts[4])?.count == 16, let combined = Data(base64Encoded: parts[5]),
              combined.count == 12 + 64 + 16 else { return nil }
        return Cost(logN: logN, r: r, p: p)
    }

    /// Whether `cost` is at least `minimumCost` in each parameter that makes a guess dearer.
    public static func isAcceptable(_ cost: Cost) -> Bool {
        cost.logN >= minimumCost.logN && cost.r >= minimumCost.r && cost.p >= minimumCost.p
    }

    /// The private keys sealed under `passphrase` for staff member `staffID` (the associated
    /// data: a sealed key moved to another member's row does not open): text for the staff table.
    public func sealed(passphrase: String, staffID: String, cost: Cost = .standard) throws -> String {
        try Self.checkPassphrase(passphrase)
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let key = try Self.derive(passphrase, salt: salt, cost: cost)
        let box = try ChaChaPoly.seal(secretBytes, using: key, authenticating: Array("ShelterSync staff \(staffID)".utf8))
        return ["scrypt", "\(cost.logN)", "\(cost.r)", "\(cost.p)", Data(salt).base64EncodedString(), box.combined.base64EncodedString()]
            .joined(separator: ":")
    }

    /// Opens sealed keys; a wrong passphrase (or a sealed key that is not hers) is `notPermitted`.
    public static func open(_ sealed: String, passphrase: String, staffID: String) throws(DomainError) -> StaffKeys {
        let parts = sealed.split(separator: ":").map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              (10...22).contains(logN), (1...32).contains(r), (1...16).contains(p),
              let salt = Data(base64Encoded: parts[4]), let combined = Data(base64Encoded: parts[5]),
              let box = try? ChaChaPoly.SealedBox(combined: combined) else {
            throw DomainError(.invalidValue, "the stored keys of \(staffID) are damaged")
        }
        guard let key = try? derive(passphrase, salt: Array(salt), cost: Cost(logN: logN, r: r, p: p)),
              let secret = try? ChaChaPoly.open(box, using: key, authenticating: Array("ShelterSync staff \(staffID)".utf8)) else {
            throw DomainError(.notPermitted, t("passphrase.wrong", ("name", staffID)))
        }
        return try StaffKeys(secretBytes: secret)
    }

    static func derive(_ passphrase: String, salt: [UInt8], cost: Cost) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(from: Array(passphrase.utf8), salt: salt, outputByteCount: 32,
                                 rounds: 1 << cost.logN, blockSize: cost.r, parallelism: cost.p)
    }

    // MARK: Signatures

    /// Whether `signature` is `signingKey`'s (base64 public key) signature of `digest`.
    public static func verify(_ signature: [UInt8], of digest: [UInt8], signingKey: String) -> Bool {
        guard let raw = Data(base64Encoded: signingKey),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: digest)
    }
}

/// A transaction signer holding a member of staff's keys in memory (a login agent, a test, the
/// benchmark).
public struct KeySigner: GrantOpener {
    public let signer: String
    public let author: String
    let key: Curve25519.Signing.PrivateKey
    let agreement: Curve25519.KeyAgreement.PrivateKey?

    public init(name: String, keys: StaffKeys) {
        author = name.trimmingCharacters(in: .whitespaces)
        signer = Roles.staffID(name)
        key = keys.signing
        agreement = keys.agreement
    }

    public init(server key: Curve25519.Signing.PrivateKey) {
        author = Seal.serverSigner
        signer = Seal.serverSigner
        self.key = key
        agreement = nil
    }

    public func sign(_ digest: [UInt8]) throws -> [UInt8] { Array(try key.signature(for: digest)) }

    public func openGrant(_ grant: String) throws -> RecordKeys.ShelterKey {
        guard let agreement else { throw DomainError(.notPermitted, "the server holds no shelter key") }
        return try RecordKeys.open(grant: grant, staffID: signer, with: agreement)
    }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }
}

/// Ed25519 verifications made ahead of a merge (the server checks batch N+1's signatures on its
/// other core while batch N merges): each success kept by key, digest and signature, taken once by
/// the rules' own check, which verifies anything not found here as before. Only successes are kept:
/// a signature checked ahead against a key that changed by the time of the merge is simply checked
/// again against the key the rules read then.
public final class SignatureChecks: Sendable {
    private struct Key: Hashable {
        var signature: [UInt8]
        var digest: [UInt8]
        var signingKey: String
    }

    private let verified = Mutex(Set<Key>())
    static let capacity = 100_000
    /// Each change's `LogHash.of` of batches checked ahead, by the batch's storage: the batch is
    /// kept with them (so no other array can take its address while they are) and taken once. At
    /// most `batchCapacity`, the oldest dropped first: one its merge began before they were kept
    /// (and so made its own) is not kept for long.
    private let digests = Mutex([(key: Int, batch: [CellChange], digests: [LogHash])]())
    static let batchCapacity = 2

    public init() {}

    /// Verifies now and keeps a success for `verify`.
    public func check(_ signature: [UInt8], of digest: [UInt8], signingKey: String) {
        guard StaffKeys.verify(signature, of: digest, signingKey: signingKey) else { return }
        // Bounded: a peer that pushes and never merges (resends) cannot grow it for ever.
        verified.withLock { if $0.count < Self.capacity { $0.insert(Key(signature: signature, digest: digest, signingKey: signingKey)) } }
    }

    /// Keeps the digests `preverify` made of `batch`'s changes (in its order) for its merge.
    public func keep(_ digests: [LogHash], of batch: [CellChange]) {
        guard digests.count == batch.count, let key = Self.storage(of: batch) else { return }
        self.digests.withLock { kept in
            if kept.count >= Self.batchCapacity { kept.removeFirst(kept.count - Self.batchCapacity + 1) }
            kept.append((key, batch, digests))
        }
    }

    /// The digests kept of this very batch (the same storage, not an equal copy), in its order; once.
    public func takeDigests(of batch: [CellChange]) -> [LogHash]? {
        guard let key = Self.storage(of: batch) else { return nil }
        return digests.withLock { kept in
            guard let index = kept.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = kept.remove(at: index)
            guard entry.batch.count == batch.count, Self.storage(of: entry.batch) == key else { return nil }
            return entry.digests
        }
    }

    private static func storage(of batch: [CellChange]) -> Int? {
        batch.withUnsafeBufferPointer { $0.baseAddress.map { Int(bitPattern: $0) } }
    }

    /// `StaffKeys.verify`, skipped when `check` found it valid before.
    public func verify(_ signature: [UInt8], of digest: [UInt8], signingKey: String) -> Bool {
        if verified.withLock({ $0.remove(Key(signature: signature, digest: digest, signingKey: signingKey)) }) != nil { return true }
        return StaffKeys.verify(signature, of: digest, signingKey: signingKey)
    }
}
