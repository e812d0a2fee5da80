/// The portable binary form of a `CellChange` (full replica ids, column names), used on the wire and
/// for changes held back until their causal context arrives.
public enum ChangeCodec {
    public static func encode(_ change: CellChange, into writer: inout BinaryWriter) {
        writer.write(text: change.table)
        writer.write(text: change.rowID)
        change.dot.replica.write(into: &writer)
        writer.write(varint: change.dot.counter)
        writer.write(varint: change.hlc.rawValue)
        writer.write(text: change.author)
        encode(change.context, into: &writer)
        writer.write(varint: UInt64(change.values.count))
        for (column, value) in change.values.sorted(by: { $0.key < $1.key }) {
            writer.write(text: column)
            writer.write(value: value)
        }
    }

    public static func encode(_ change: CellChange) -> [UInt8] {
        var writer = BinaryWriter(capacity: 128)
        encode(change, into: &writer)
        return writer.bytes
    }

    /// A change with its seal (absent: a 0 flag), as it travels and waits: `encode` and the seal.
    public static func encodeSealed(_ change: CellChange, into writer: inout BinaryWriter) {
        encode(change, into: &writer)
        encode(change.seal, into: &writer)
    }

    public static func encodeSealed(_ change: CellChange) -> [UInt8] {
        var writer = BinaryWriter(capacity: 200)
        encodeSealed(change, into: &writer)
        return writer.bytes
    }

    public static func encode(_ seal: Seal?, into writer: inout BinaryWriter) {
        guard let seal else { writer.write(varint: 0); return }
        writer.write(varint: 1)
        writer.write(varint: seal.first)
        writer.write(text: seal.signer)
        writer.write(varint: UInt64(seal.signature.count))
        writer.write(raw: seal.signature)
    }

    public static func decodeSeal(from reader: inout BinaryReader) throws(BinaryReader.Error) -> Seal? {
        switch try reader.readUnsigned() {
        case 0: return nil
        case 1:
            let first = try reader.readUnsigned()
            let signer = try reader.readText()
            let length = try reader.readCount(max: 64)
            guard length == 64 else { throw BinaryReader.Error(reason: "a signature of \(length) bytes (64 expected)", offset: reader.offset) }
            let signature = Array(try reader.readRaw(count: 64))
            return Seal(first: first, signer: signer, signature: signature)
        case let flag: throw BinaryReader.Error(reason: "unknown seal flag \(flag)", offset: reader.offset)
        }
    }

    public static func decodeSealed(from reader: inout BinaryReader) throws(BinaryReader.Error) -> CellChange {
        var change = try decode(from: &reader)
        change.seal = try decodeSeal(from: &reader)
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
