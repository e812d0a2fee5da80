import Crypto

/// A SHA-256 digest in the sync layer: of one change's canonical encoding (what tells a true resend
/// from a fork), or of the server log's hash chain at one position (what tells a workstation that
/// the server went back in time).
///
/// The chain: position 0 is `genesis` (32 zero bytes); the entry at position n carries
/// `SHA-256(chain(n−1) ‖ digest(change n))`. Two logs whose chains agree at position n hold the same
/// changes, in the same order, up to n.
public struct LogHash: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32

    /// The 32 bytes.
    public let bytes: [UInt8]

    /// Wraps 32 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Array(bytes)
    }

    private init(digest: SHA256.Digest) { bytes = Array(digest) }

    /// The chain before the first entry of every log.
    public static let genesis = LogHash(bytes: [UInt8](repeating: 0, count: byteCount))!

    /// The digest of one change, the same on every replica: SHA-256 over its canonical header
    /// (table, row, dot, HLC, author, context — `ChangeCodec`, columns and vector entries sorted) and
    /// each column's name with its value's digest (`valueDigest`). A value erased since keeps its
    /// digest (`CellChange.erased`), so the change's digest does not change with the erasure.
    ///
    /// Every merge makes it once per change (and the server's rules, the rescue and the snapshot
    /// compare with it), so the value digests are written straight into the change's encoding, the
    /// values' encodings share one buffer, and nothing is sorted or allocated that need not be.
    public static func of(_ change: CellChange) -> LogHash {
        var writer = BinaryWriter(capacity: 96 + 48 * change.values.count)
        writer.write(text: "ShelterSync change 2")
        ChangeCodec.encodeHeader(change, into: &writer)
        writer.write(varint: UInt64(change.values.count))
        var scratch = BinaryWriter(capacity: 64)
        let columns = change.values.keys.sorted()
        for column in columns {
            writer.write(text: column)
            if let erased = change.erased[column] {
                writer.write(raw: erased.bytes)
            } else {
                scratch.removeAll()
                scratch.write(value: change.values[column]!)
                SHA256.hash(data: scratch.bytes).withUnsafeBytes { writer.write(raw: $0) }
            }
        }
        return LogHash(digest: SHA256.hash(data: writer.bytes))
    }

    /// The digest of one value: SHA-256 of its canonical encoding.
    public static func valueDigest(_ value: SyncValue) -> LogHash {
        var writer = BinaryWriter(capacity: 32)
        writer.write(value: value)
        return LogHash(digest: SHA256.hash(data: writer.bytes))
    }

    /// The chain after appending a change with digest `digest` to a log whose chain is `self`.
    public func chained(with digest: LogHash) -> LogHash {
        var hasher = SHA256()
        hasher.update(data: bytes)
        hasher.update(data: digest.bytes)
        return LogHash(digest: hasher.finalize())
    }

    /// The first 8 bytes in hex: enough to tell two hashes apart in a message.
    public var description: String {
        bytes.prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension BinaryWriter {
    public mutating func write(hash: LogHash) { write(raw: hash.bytes) }
}

extension BinaryReader {
    public mutating func readHash() throws(Error) -> LogHash {
        LogHash(bytes: try readRaw(count: LogHash.byteCount))!
    }
}
