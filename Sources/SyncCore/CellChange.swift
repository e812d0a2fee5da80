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

    public init(table: String, rowID: String, values: [String: SyncValue], dot: Dot, hlc: HLC,
                author: String, context: VersionVector, seal: Seal? = nil) {
        self.seal = seal
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

    public init(first: UInt64, signer: String, signature: [UInt8]) {
        self.first = first
        self.signer = signer
        self.signature = signature
    }

    /// The signer id of the server's own transactions.
    public static let serverSigner = "server"

    /// What is signed: SHA-256 over a domain tag, the signer and the canonical encoding of each
    /// change (replica, counter, table, row, columns and values, HLC, author, context), in counter
    /// order. Seals are not part of it.
    public static func digest(signer: String, changes: some Collection<CellChange>) -> [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write(text: "ShelterSync transaction 1")
        writer.write(text: signer)
        writer.write(varint: UInt64(changes.count))
        for change in changes { ChangeCodec.encode(change, into: &writer) }
        return Array(SHA256.hash(data: writer.bytes))
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
