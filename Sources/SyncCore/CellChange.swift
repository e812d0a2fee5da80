import Crypto
/// One write to one row, as it travels between replicas: the written columns with their values,
/// the write's dot and clock stamp, who made it, and the row's version vector as the writer saw it.
public struct CellChange: Hashable, Sendable {
    /// The synced table (its name in the schema).
    public var table: String
    /// The row's id: its primary key, as text.
    public var rowID: String
    /// The written columns and their new values.
    public var values: [String: SyncValue]
    public var dot: Dot
    public var hlc: HLC
    /// The staff member (or `server`) who made the write.
    public var author: String
    /// The row's version vector as the writer saw it just before writing.
    public var context: VersionVector
    /// On the last change of a transaction: the signature over the whole transaction (its changes
    /// from `seal.first` to this one's counter). Not part of the change's content (`LogHash.of`).
    public var seal: Seal?
    /// The values erased from this change (a resident's erasure, `SyncStore.erase`), by column:
    /// the digest of each value as it was written (`LogHash.valueDigest`). The change's digest
    /// (`LogHash.of`) is made of its values' digests, so it — and the signature and hash chain that
    /// rest on it — stays the same, while every value that was not erased is still bound by it.
    public var erased: [String: LogHash]

    public init(table: String, rowID: String, values: [String: SyncValue], dot: Dot, hlc: HLC,
                author: String, context: VersionVector, seal: Seal? = nil, erased: [String: LogHash] = [:]) {
        self.seal = seal
        self.erased = erased
        self.table = table
        self.rowID = rowID
        self.values = values
        self.dot = dot
        self.hlc = hlc
        self.author = author
        self.context = context
    }
}

/// Where one cell's current value came from.
public struct CellStamp: Hashable, Sendable {
    public var dot: Dot
    public var hlc: HLC

    public init(dot: Dot, hlc: HLC) {
        self.dot = dot
        self.hlc = hlc
    }

    /// The deterministic order of concurrent writes: the larger `(HLC, replica id)` wins.
    public func wins(over other: CellStamp) -> Bool {
        (hlc, dot.replica) > (other.hlc, other.dot.replica)
    }
}

/// The sync metadata of one row: its causal history and the stamp of each cell.
public struct RowMeta: Hashable, Sendable {
    public var versionVector: VersionVector
    public var cells: [String: CellStamp]

    public init(versionVector: VersionVector = VersionVector(), cells: [String: CellStamp] = [:]) {
        self.versionVector = versionVector
        self.cells = cells
    }
}

/// The signature of one transaction: a staff member's (or the server's) Ed25519 signature over the
/// canonical encoding of the transaction's changes, carried by its last change.
public struct Seal: Hashable, Sendable {
    /// The counter of the transaction's first change (the last one carries the seal).
    public var first: UInt64
    /// Who signed: a staff member's id, or `server`.
    public var signer: String
    /// The 64-byte Ed25519 signature of `Seal.digest`.
    public var signature: [UInt8]
    /// What was signed (`digest`): 2 since ShelterSync 0.9 (a change's values may be erased and its
    /// signature still checks), 1 before.
    public var version: Int

    public init(first: UInt64, signer: String, signature: [UInt8], version: Int = Seal.currentVersion) {
        self.first = first
        self.signer = signer
        self.signature = signature
        self.version = version
    }

    /// The version of the seals this version makes.
    public static let currentVersion = 2

    /// The signer id of the server's own transactions.
    public static let serverSigner = "server"

    /// What is signed, in counter order; seals are not part of it.
    /// - Version 2: SHA-256 over a domain tag, the signer and each change's digest (`LogHash.of`:
    ///   over replica, counter, table, row, HLC, author, context and each column with its value's
    ///   digest). A change whose values were erased keeps its digest, so the signature of its
    ///   transaction still checks after an erasure, and binds every value not erased.
    /// - Version 1 (before 0.9): SHA-256 over the tag, the signer and the encodings themselves; it
    ///   cannot be checked once a change of the transaction is erased.
    /// `digests`: the changes' `LogHash.of`, when the caller has them already (one per change).
    public static func digest(signer: String, changes: some Collection<CellChange>, version: Int = currentVersion, digests: [LogHash]? = nil) -> [UInt8] {
        var writer = BinaryWriter(capacity: version == 1 ? 256 : 48 + 32 * changes.count)
        writer.write(text: "ShelterSync transaction \(version == 1 ? 1 : 2)")
        writer.write(text: signer)
        writer.write(varint: UInt64(changes.count))
        let known = digests.flatMap { $0.count == changes.count ? $0 : nil }
        for (index, change) in changes.enumerated() {
            if version == 1 { ChangeCodec.encode(change, into: &writer) } else { writer.write(raw: (known?[index] ?? LogHash.of(change)).bytes) }
        }
        return Array(SHA256.hash(data: writer.bytes))
    }

    /// Whether the digest of this seal can be made from `changes`: not for a version-1 seal over a
    /// change whose values were erased.
    public func isCheckable(over changes: some Collection<CellChange>) -> Bool {
        version != 1 || changes.allSatisfy { $0.erased.isEmpty }
    }
}

/// Something that signs transactions for one staff member (or the server): keys in memory, or a
/// login agent holding them.
public protocol TransactionSigner: Sendable {
    /// The staff id (`Roles.staffID` of her name) or `Seal.serverSigner`.
    var signer: String { get }
    /// The name to record as the author of each change.
    var author: String { get }
    /// An Ed25519 signature of `digest`.
    func sign(_ digest: [UInt8]) throws -> [UInt8]
}
