/// The portable binary form of a `CellChange` (full replica ids, column names), used on the wire and
/// for changes held back until their causal context arrives.
public enum ChangeCodec {
    public static func encode(_ change: CellChange, into writer: inout BinaryWriter) {
        encodeHeader(change, into: &writer)
        writer.write(varint: UInt64(change.values.count))
        for (column, value) in change.values.sorted(by: { $0.key < $1.key }) {
            writer.write(text: column)
            writer.write(value: value)
        }
    }

    /// Everything of a change but its values: table, row, dot, HLC, author, context.
    public static func encodeHeader(_ change: CellChange, into writer: inout BinaryWriter) {
        writer.write(text: change.table)
        writer.write(text: change.rowID)
        change.dot.replica.write(into: &writer)
        writer.write(varint: change.dot.counter)
        writer.write(varint: change.hlc.rawValue)
        writer.write(text: change.author)
        encode(change.context, into: &writer)
    }

    /// The digests of a change's erased values: a count, then each column and its 32 bytes.
    public static func encode(erased: [String: LogHash], into writer: inout BinaryWriter) {
        writer.write(varint: UInt64(erased.count))
        for (column, digest) in erased.sorted(by: { $0.key < $1.key }) {
            writer.write(text: column)
            writer.write(hash: digest)
        }
    }

    public static func decodeErased(from reader: inout BinaryReader) throws(BinaryReader.Error) -> [String: LogHash] {
        let count = try reader.readCount(max: 64)
        var erased: [String: LogHash] = [:]
        for _ in 0..<count {
            let column = try reader.readText()
            erased[column] = try reader.readHash()
        }
        return erased
    }

    public static func encode(_ change: CellChange) -> [UInt8] {
        var writer = BinaryWriter(capacity: 128)
        encode(change, into: &writer)
        return writer.bytes
    }

    /// A change with its seal, as it travels and waits: `encode`, then the seal (`encode(_:Seal?)`)
    /// whose flag also says (`erasedFlag`) whether the digest of an erased change follows it.
    public static func encodeSealed(_ change: CellChange, into writer: inout BinaryWriter) {
        encode(change, into: &writer)
        encode(change.seal, erased: !change.erased.isEmpty, into: &writer)
        if !change.erased.isEmpty { encode(erased: change.erased, into: &writer) }
    }

    /// The length of `encodeSealed(change)`, worked out without encoding it (no buffer, no sorting):
    /// batches are cut by bytes (`WireMessage.maximumBatchBytes`) on both sides, for every change
    /// pushed or pulled, and encoding each one to measure it was a fifth of the server's work
    /// serving a pull. `CodecTests` holds it equal to the encoding.
    public static func encodedSealedSize(_ change: CellChange) -> Int {
        @inline(__always) func varint(_ value: UInt64) -> Int { value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7 }
        @inline(__always) func text(_ text: String) -> Int { let count = text.utf8.count; return varint(UInt64(count)) + count }
        var size = text(change.table) + text(change.rowID) + 16 + varint(change.dot.counter) + varint(change.hlc.rawValue) + text(change.author)
        size += varint(UInt64(change.context.entries.count))
        for counter in change.context.entries.values { size += 16 + varint(counter) }
        size += varint(UInt64(change.values.count))
        for (column, value) in change.values {
            size += text(column)
            switch value {
            case .null: size += 1
            case .integer(let v): size += 1 + varint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
            case .real: size += 9
            case .text(let v): size += 1 + text(v)
            }
        }
        let extra = change.erased.isEmpty ? 0 : erasedFlag
        if let seal = change.seal {
            size += varint(UInt64(seal.version == 1 ? 1 : 2) | extra) + varint(seal.first) + text(seal.signer)
                + varint(UInt64(seal.signature.count)) + seal.signature.count
        } else {
            size += varint(extra)
        }
        if !change.erased.isEmpty {
            size += varint(UInt64(change.erased.count))
            for (column, digest) in change.erased { size += text(column) + digest.bytes.count }
        }
        return size
    }

    /// The bit of a seal's flag that says values of the change were erased and their digests follow.
    static let erasedFlag: UInt64 = 4

    public static func encodeSealed(_ change: CellChange) -> [UInt8] {
        var writer = BinaryWriter(capacity: 200)
        encodeSealed(change, into: &writer)
        return writer.bytes
    }

    /// A seal: a flag (0 none, 1 a version-1 seal, 2 a version-2 seal; `erasedFlag` added by
    /// `encodeSealed`), then the first counter, the signer and the signature.
    public static func encode(_ seal: Seal?, erased: Bool = false, into writer: inout BinaryWriter) {
        let extra = erased ? erasedFlag : 0
        guard let seal else { writer.write(varint: extra); return }
        writer.write(varint: UInt64(seal.version == 1 ? 1 : 2) | extra)
        writer.write(varint: seal.first)
        writer.write(text: seal.signer)
        writer.write(varint: UInt64(seal.signature.count))
        writer.write(raw: seal.signature)
    }

    public static func decodeSeal(from reader: inout BinaryReader) throws(BinaryReader.Error) -> Seal? {
        try decodeSeal(flag: try reader.readUnsigned(), from: &reader)
    }

    static func decodeSeal(flag: UInt64, from reader: inout BinaryReader) throws(BinaryReader.Error) -> Seal? {
        switch flag {
        case 0: return nil
        case 1, 2:
            let first = try reader.readUnsigned()
            let signer = try reader.readText()
            let length = try reader.readCount(max: 64)
            guard length == 64 else { throw BinaryReader.Error(reason: "a signature of \(length) bytes (64 expected)", offset: reader.offset) }
            let signature = Array(try reader.readRaw(count: 64))
            return Seal(first: first, signer: signer, signature: signature, version: Int(flag))
        case let flag: throw BinaryReader.Error(reason: "unknown seal flag \(flag)", offset: reader.offset)
        }
    }

    public static func decodeSealed(from reader: inout BinaryReader) throws(BinaryReader.Error) -> CellChange {
        var change = try decode(from: &reader)
        let flag = try reader.readUnsigned()
        change.seal = try decodeSeal(flag: flag & ~erasedFlag, from: &reader)
        if flag & erasedFlag != 0 {
            change.erased = try decodeErased(from: &reader)
            for column in change.erased.keys where change.values[column] == nil {
                throw BinaryReader.Error(reason: "an erased digest of column \(column), which the change does not write", offset: reader.offset)
            }
        }
        if let seal = change.seal, seal.first > change.dot.counter {
            throw BinaryReader.Error(reason: "a seal whose transaction starts after its last change", offset: reader.offset)
        }
        return change
    }

    public static func decodeSealed(_ bytes: [UInt8]) throws(BinaryReader.Error) -> CellChange {
        var reader = BinaryReader(bytes)
        let change = try decodeSealed(from: &reader)
        guard reader.isAtEnd else { throw BinaryReader.Error(reason: "trailing bytes after a change", offset: reader.offset) }
        return change
    }

    public static func encode(_ vector: VersionVector, into writer: inout BinaryWriter) {
        writer.write(varint: UInt64(vector.entries.count))
        for (replica, counter) in vector.entries.sorted(by: { $0.key < $1.key }) {
            replica.write(into: &writer)
            writer.write(varint: counter)
        }
    }

    public static func decodeVector(from reader: inout BinaryReader) throws(BinaryReader.Error) -> VersionVector {
        let count = try reader.readCount()
        var entries: [ReplicaID: UInt64] = [:]
        for _ in 0..<count {
            let replica = try reader.readReplicaID()
            entries[replica] = try reader.readUnsigned()
        }
        return VersionVector(entries)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Error) -> CellChange {
        let table = try reader.readText()
        let rowID = try reader.readText()
        let replica = try reader.readReplicaID()
        let counter = try reader.readUnsigned()
        let hlc = try reader.readHLC()
        let author = try reader.readText()
        let context = try decodeVector(from: &reader)
        let count = try reader.readCount()
        var values = [String: SyncValue](minimumCapacity: count)
        for _ in 0..<count {
            let column = try reader.readText()
            values[column] = try reader.readValue()
        }
        return CellChange(table: table, rowID: rowID, values: values, dot: Dot(replica: replica, counter: counter),
                          hlc: hlc, author: author, context: context)
    }

    public static func decode(_ bytes: [UInt8]) throws(BinaryReader.Error) -> CellChange {
        var reader = BinaryReader(bytes)
        let change = try decode(from: &reader)
        guard reader.isAtEnd else { throw BinaryReader.Error(reason: "trailing bytes after a change", offset: reader.offset) }
        return change
    }
}
