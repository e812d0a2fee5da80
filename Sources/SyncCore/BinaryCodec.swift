/// A compact, bounds-checked binary encoding: LEB128 varints, length-prefixed text.
///
/// Used for the sync metadata stored in replicas and for wire messages. The reader never trusts a
/// length: every read checks what is left and fails with `BinaryReader.Error` instead of trapping.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    /// Empties the buffer, keeping its capacity (a writer reused for many small encodings).
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    public mutating func write(byte: UInt8) { bytes.append(byte) }

    public mutating func write(varint value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Zig-zag encoded so that small negative numbers stay short.
    public mutating func write(signed value: Int64) {
        write(varint: UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func write(text: String) {
        write(varint: UInt64(text.utf8.count))
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func write(raw: some Sequence<UInt8>) { bytes.append(contentsOf: raw) }

    public mutating func write(fixed64 value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    public mutating func write(value: SyncValue) {
        switch value {
        case .null: write(byte: 0)
        case .integer(let v): write(byte: 1); write(signed: v)
        case .real(let v): write(byte: 2); write(fixed64: v.bitPattern)
        case .text(let v): write(byte: 3); write(text: v)
        }
    }
}

public struct BinaryReader: Sendable {
    /// Why a byte string could not be read; `offset` says where.
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        public var reason: String
        public var offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    private let bytes: [UInt8]
    public private(set) var offset: Int = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { bytes.count - offset }

    func fail(_ reason: String) -> Error { Error(reason: reason, offset: offset) }

    public mutating func readByte() throws(Error) -> UInt8 {
        guard offset < bytes.count else { throw fail("unexpected end of data") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readVarint() throws(Error) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            if shift == 63 && byte > 1 { throw fail("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw fail("varint longer than 10 bytes") }
        }
    }

    public mutating func readSigned() throws(Error) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A count that is about to size a loop or an allocation: bounded by the bytes left, since
    /// every element takes at least one byte.
    public mutating func readCount(max limit: Int = .max) throws(Error) -> Int {
        let raw = try readVarint()
        guard raw <= UInt64(remaining), raw <= UInt64(limit) else { throw fail("count \(raw) exceeds the data") }
        return Int(raw)
    }

    public mutating func readRaw(count: Int) throws(Error) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw fail("length \(count) exceeds the data") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    public mutating func readText() throws(Error) -> String {
        let count = try readCount()
        let raw = try readRaw(count: count)
        // `String(validating:)` is generic in the standard library and showed up in the profile of
        // every push and pull (runtime generic metadata, per text). `String(decoding:)` is the fast
        // path but repairs bad input, so the result must be byte-for-byte the input to be valid.
        let valid: String? = raw.withUnsafeBufferPointer { input in
            let text = String(decoding: input, as: UTF8.self)
            let same = text.utf8.withContiguousStorageIfAvailable { $0.elementsEqual(input) } ?? text.utf8.elementsEqual(input)
            return same ? text : nil
        }
        guard let text = valid else { throw fail("text is not valid UTF-8") }
        return text
    }

    public mutating func readFixed64() throws(Error) -> UInt64 {
        let raw = try readRaw(count: 8)
        return raw.reduce(0) { ($0 << 8) | UInt64($1) }
    }

    public mutating func readValue() throws(Error) -> SyncValue {
        switch try readByte() {
        case 0: return .null
        case 1: return .integer(try readSigned())
        case 2: return .real(Double(bitPattern: try readFixed64()))
        case 3: return .text(try readText())
        case let tag: throw fail("unknown value tag \(tag)")
        }
    }

    /// A varint that must fit a signed 64-bit integer: counters, clock stamps, versions and sizes,
    /// which the stores keep as SQLite integers (a larger one would trap where it is converted).
    public mutating func readUnsigned() throws(Error) -> UInt64 {
        let start = offset
        let value = try readVarint()
        guard value <= UInt64(Int64.max) else { throw Error(reason: "value \(value) exceeds 2^63 − 1", offset: start) }
        return value
    }

    /// A hybrid logical clock stamp, no later than `HLC.maximum`.
    public mutating func readHLC() throws(Error) -> HLC {
        let start = offset
        let raw = try readVarint()
        guard raw <= HLC.maximum.rawValue else { throw Error(reason: "clock stamp \(raw) is beyond the year 4199", offset: start) }
        return HLC(rawValue: raw)
    }

    /// A flag byte: 0 or 1, anything else is an error.
    public mutating func readFlag() throws(Error) -> Bool {
        let byte = try readByte()
        guard byte <= 1 else { throw Error(reason: "flag byte \(byte) is not 0 or 1", offset: offset - 1) }
        return byte == 1
    }

    public mutating func readReplicaID() throws(Error) -> ReplicaID {
        let raw = try readRaw(count: 16)
        return ReplicaID(bytes: raw)!
    }
}
