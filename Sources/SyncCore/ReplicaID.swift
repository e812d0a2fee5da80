import Foundation

/// The stable identity of one replica: a workstation's SQLite file, or the server's store.
///
/// Replica ids order by their lower-case text form, which is the tie-breaker for concurrent writes
/// whose hybrid logical clock stamps are equal.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let uuid: UUID

    public init(_ uuid: UUID) { self.uuid = uuid }

    /// Parses the text form (`8-4-4-4-12` hex, any case); nil when it is not a UUID.
    public init?(_ text: String) {
        guard let uuid = UUID(uuidString: text) else { return nil }
        self.uuid = uuid
    }

    /// A new random replica id.
    public static func random() -> ReplicaID { ReplicaID(UUID()) }

    /// Lower-case canonical text, the form stored and compared.
    public var description: String { uuid.uuidString.lowercased() }

    /// The order of the canonical texts, computed on the bytes: the text is the bytes in order as
    /// hex digits (0–9 before a–f) with dashes at fixed places, so both orders agree — and this
    /// one builds no strings (it decides ties between concurrent writes and sorts every vector).
    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        withUnsafeBytes(of: lhs.uuid.uuid) { l in withUnsafeBytes(of: rhs.uuid.uuid) { r in l.lexicographicallyPrecedes(r) } }
    }

    /// The 16 raw bytes, as written on the wire.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: uuid.uuid) { Array($0) }
    }

    /// Appends the 16 raw bytes to `writer` without an intermediate array.
    func write(into writer: inout BinaryWriter) {
        withUnsafeBytes(of: uuid.uuid) { writer.write(raw: $0) }
    }

    /// Builds an id from 16 raw bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        let b = Array(bytes)
        uuid = UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                           b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}

/// The unique id of one write: the replica that made it and that replica's counter at the time.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var replica: ReplicaID
    public var counter: UInt64

    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    public var description: String { "\(replica):\(counter)" }

    /// Parses the text form `replica:counter`; nil when it is not one.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let replica = ReplicaID(String(text[..<colon])),
              let counter = UInt64(text[text.index(after: colon)...]) else { return nil }
        self.init(replica: replica, counter: counter)
    }

    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        (lhs.replica, lhs.counter) < (rhs.replica, rhs.counter)
    }
}
