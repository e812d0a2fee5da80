/// A version vector: for each replica, the highest counter of its writes that have been seen.
///
/// Sparse: only replicas that wrote appear. A row's vector is its causal history; a change's
/// context is the vector of the row as its writer saw it just before writing.
public struct VersionVector: Hashable, Sendable, CustomStringConvertible {
    /// How two vectors relate in the causal partial order.
    public enum Ordering: Sendable, Equatable {
        case equal, before, after, concurrent
    }

    public private(set) var entries: [ReplicaID: UInt64]

    public init(_ entries: [ReplicaID: UInt64] = [:]) {
        self.entries = entries.filter { $0.value > 0 }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public subscript(replica: ReplicaID) -> UInt64 { entries[replica] ?? 0 }

    /// Whether the write `dot` is part of the history this vector describes.
    public func contains(_ dot: Dot) -> Bool { self[dot.replica] >= dot.counter }

    /// Adds one write to the history.
    public mutating func absorb(_ dot: Dot) {
        if dot.counter > self[dot.replica] { entries[dot.replica] = dot.counter }
    }

    /// The least upper bound: every write seen by either vector.
    public mutating func merge(_ other: VersionVector) {
        for (replica, counter) in other.entries where counter > self[replica] {
            entries[replica] = counter
        }
    }

    public func merging(_ other: VersionVector) -> VersionVector {
        var copy = self
        copy.merge(other)
        return copy
    }

    /// `self ≤ other`: every write seen here was also seen by `other`.
    public func isDominated(by other: VersionVector) -> Bool {
        entries.allSatisfy { other[$0.key] >= $0.value }
    }

    public func compare(_ other: VersionVector) -> Ordering {
        switch (isDominated(by: other), other.isDominated(by: self)) {
        case (true, true): .equal
        case (true, false): .before
        case (false, true): .after
        case (false, false): .concurrent
        }
    }

    public var description: String {
        "[" + entries.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ", ") + "]"
    }
}
