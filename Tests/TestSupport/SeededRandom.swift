import Foundation

/// A small, fast, reproducible generator (SplitMix64). Every randomised test takes one, prints its
/// seed on failure, and replays exactly from it.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// The seed from `envVar` (decimal) when set, else `fallback`: replay a failure with it.
    public static func seed(from envVar: String, default fallback: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment[envVar].flatMap(UInt64.init) ?? fallback
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}
