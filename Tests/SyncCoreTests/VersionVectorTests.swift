import SyncCore
import Testing
import TestSupport

@Suite struct VersionVectorTests {
    static let replicas = (0..<4).map { _ in ReplicaID.random() }

    static func randomVector(_ rng: inout SeededRandom) -> VersionVector {
        var entries: [ReplicaID: UInt64] = [:]
        for replica in replicas where rng.chance(0.6) { entries[replica] = UInt64.random(in: 0...3, using: &rng) }
        return VersionVector(entries)
    }

    /// Replica ids order by their bytes exactly as by their canonical texts (the order that picks
    /// the winner of concurrent writes with equal clocks must never change).
    @Test func replicaOrderIsTheOrderOfTheTexts() {
        let seed: UInt64 = 20261126
        var rng = SeededRandom(seed: seed)
        for _ in 0..<2_000 {
            // Bytes drawn to share prefixes often, so every position gets compared.
            let common = Int.random(in: 0...16, using: &rng)
            let prefix = (0..<common).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let a = ReplicaID(bytes: prefix + (common..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            let b = ReplicaID(bytes: prefix + (common..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            #expect((a < b) == (a.description < b.description), "seed \(seed): \(a) vs \(b)")
            #expect(!(a < a))
        }
    }

    @Test func compareCases() {
        let a = ReplicaID.random(), b = ReplicaID.random()
        let v1 = VersionVector([a: 1])
        let v2 = VersionVector([a: 2])
        let v3 = VersionVector([b: 1])
        #expect(v1.compare(v1) == .equal)
        #expect(v1.compare(v2) == .before)
        #expect(v2.compare(v1) == .after)
        #expect(v1.compare(v3) == .concurrent)
        #expect(VersionVector().compare(v1) == .before)
        #expect(VersionVector([a: 0]) == VersionVector(), "zero entries are dropped: vectors stay sparse")
        #expect(v2.contains(Dot(replica: a, counter: 1)))
        #expect(!v2.contains(Dot(replica: a, counter: 3)))
        #expect(!v2.contains(Dot(replica: b, counter: 1)))
    }

    @Test func partialOrderAndJoinLaws() {
        let seed = SeededRandom.seed(from: "VV_SEED", default: 20261126)
        var rng = SeededRandom(seed: seed)
        for _ in 0..<2000 {
            let a = Self.randomVector(&rng), b = Self.randomVector(&rng), c = Self.randomVector(&rng)
            // Reflexive; the two directions agree.
            #expect(a.compare(a) == .equal, "seed \(seed)")
            let ab = a.compare(b), ba = b.compare(a)
            switch ab {
            case .equal: #expect(ba == .equal && a == b, "seed \(seed)")
            case .before: #expect(ba == .after, "seed \(seed)")
            case .after: #expect(ba == .before, "seed \(seed)")
            case .concurrent: #expect(ba == .concurrent, "seed \(seed)")
            }
            // Antisymmetric.
            if a.isDominated(by: b) && b.isDominated(by: a) { #expect(a == b, "seed \(seed)") }
            // Transitive.
            if a.isDominated(by: b) && b.isDominated(by: c) { #expect(a.isDominated(by: c), "seed \(seed)") }
            // Merge is the least upper bound: commutative, associative, idempotent, an upper bound, the least.
            let join = a.merging(b)
            #expect(join == b.merging(a), "seed \(seed)")
            #expect(a.merging(b).merging(c) == a.merging(b.merging(c)), "seed \(seed)")
            #expect(a.merging(a) == a, "seed \(seed)")
            #expect(a.isDominated(by: join) && b.isDominated(by: join), "seed \(seed)")
            if a.isDominated(by: c) && b.isDominated(by: c) { #expect(join.isDominated(by: c), "seed \(seed)") }
        }
    }
}

@Suite struct HybridLogicalClockTests {
    @Test func monotonicWhenTheWallClockStepsBack() {
        var clock = HybridLogicalClock()
        let first = clock.tick(wallMilliseconds: 10_000)
        let second = clock.tick(wallMilliseconds: 9_000)  // NTP stepped the clock back
        let third = clock.tick(wallMilliseconds: 9_500)
        let fourth = clock.tick(wallMilliseconds: 11_000)
        #expect(first < second && second < third && third < fourth)
        #expect(second.milliseconds == 10_000 && second.logical == 1)
        #expect(fourth == HLC(milliseconds: 11_000, logical: 0))
    }

    @Test func receiveMovesPastTheRemoteStamp() {
        var clock = HybridLogicalClock()
        _ = clock.tick(wallMilliseconds: 1_000)
        let remote = HLC(milliseconds: 5_000, logical: 7)
        let after = clock.receive(remote, wallMilliseconds: 2_000)
        #expect(after > remote)
        #expect(clock.tick(wallMilliseconds: 2_000) > after)
        // A wall clock ahead of everything wins outright.
        #expect(clock.receive(remote, wallMilliseconds: 9_000) == HLC(milliseconds: 9_000, logical: 0))
    }

    @Test func logicalOverflowCarriesIntoTheNextMillisecond() {
        var clock = HybridLogicalClock(last: HLC(milliseconds: 50, logical: 0xFFFF))
        let next = clock.tick(wallMilliseconds: 10)
        #expect(next == HLC(milliseconds: 51, logical: 0))
    }
}
