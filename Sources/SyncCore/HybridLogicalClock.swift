/// One hybrid logical clock stamp: wall-clock milliseconds and a logical counter, packed so that
/// the integer order is the clock order.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Bits of the logical counter; the rest holds milliseconds since 1970.
    public static let logicalBits: UInt64 = 16
    static let logicalMask: UInt64 = (1 << logicalBits) - 1

    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(milliseconds: UInt64, logical: UInt64) {
        rawValue = (milliseconds << Self.logicalBits) | (logical & Self.logicalMask)
    }

    public static let zero = HLC(rawValue: 0)

    /// The latest stamp ShelterSync accepts: 2^46 ms after 1970 (the year 4199). Decoders refuse
    /// later ones, so a clock never reaches the 2^63 a stored stamp must stay below.
    public static let maximum = HLC(milliseconds: (1 << 46) - 1, logical: logicalMask)

    public var milliseconds: UInt64 { rawValue >> Self.logicalBits }
    public var logical: UInt64 { rawValue & Self.logicalMask }

    public static func < (lhs: HLC, rhs: HLC) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(milliseconds).\(logical)" }
}

/// A hybrid logical clock (Kulkarni et al.): stamps that follow the wall clock, never go back even
/// when the wall clock steps back, and move past every stamp received from another replica.
///
/// It orders concurrent writes deterministically and measures clock skew; it never decides
/// causality (version vectors do).
public struct HybridLogicalClock: Sendable {
    /// The last stamp issued or received.
    public private(set) var last: HLC

    public init(last: HLC = .zero) { self.last = last }

    /// The most a clock may run ahead of its own wall clock before a local event brings it back.
    public static let defaultMaximumAheadMilliseconds: UInt64 = 5 * 60 * 1000

    /// A new stamp for a local event at wall time `wallMilliseconds`. When the clock runs more than
    /// `maximumAhead` ms ahead of the wall clock (it was set from a wrong clock, its own or another's),
    /// it comes back to the wall clock: a wrong clock never keeps the stamps years ahead.
    public mutating func tick(wallMilliseconds: UInt64, maximumAhead: UInt64? = nil) -> HLC {
        let wallMilliseconds = min(wallMilliseconds, HLC.maximum.milliseconds)
        if let maximumAhead, last.milliseconds > wallMilliseconds &+ maximumAhead {
            last = HLC(milliseconds: wallMilliseconds, logical: 0)
            return last
        }
        if wallMilliseconds > last.milliseconds {
            last = HLC(milliseconds: wallMilliseconds, logical: 0)
        } else {
            last = Self.successor(of: last)
        }
        return last
    }

    /// Moves the clock past a stamp received from another replica, and returns the new stamp.
    @discardableResult
    public mutating func receive(_ remote: HLC, wallMilliseconds: UInt64) -> HLC {
        let wallMilliseconds = min(wallMilliseconds, HLC.maximum.milliseconds)
        let top = min(max(last, remote), HLC.maximum)
        if wallMilliseconds > top.milliseconds {
            last = HLC(milliseconds: wallMilliseconds, logical: 0)
        } else {
            last = Self.successor(of: top)
        }
        return last
    }

    /// The next stamp after `stamp`; the logical counter overflows into the next millisecond. A clock
    /// at `HLC.maximum` stays there rather than overflow.
    static func successor(of stamp: HLC) -> HLC {
        if stamp >= HLC.maximum { return HLC.maximum }
        if stamp.logical == HLC.logicalMask {
            return HLC(milliseconds: stamp.milliseconds + 1, logical: 0)
        }
        return HLC(rawValue: stamp.rawValue + 1)
    }
}
