import SyncCore
import Testing

@Suite struct MergeTests {
    let a = ReplicaID.random(), b = ReplicaID.random()

    func change(_ replica: ReplicaID, _ counter: UInt64, hlc: UInt64, _ values: [String: SyncValue], context: VersionVector = VersionVector()) -> CellChange {
        CellChange(table: "residents", rowID: "r1", values: values, dot: Dot(replica: replica, counter: counter),
                   hlc: HLC(milliseconds: hlc, logical: 0), author: "staff", context: context)
    }

    func merged(_ outcome: MergeOutcome) throws -> (apply: [String: SyncValue], meta: RowMeta, concurrent: [ConcurrentWrite]) {
        guard case .merged(let apply, let meta, let concurrent) = outcome else {
            Issue.record("expected a merge, got \(outcome)")
            throw CancellationError()
        }
        return (apply, meta, concurrent)
    }

    @Test func aWriteThatSawTheCellSupersedesIt() throws {
        let first = change(a, 1, hlc: 100, ["phone": .text("1")])
        let one = try merged(Merge.merge(first, into: nil))
        // b saw a's write, although its clock is behind: causality, not the clock, decides.
        let second = change(b, 1, hlc: 50, ["phone": .text("2")], context: one.meta.versionVector)
        let two = try merged(Merge.merge(second, into: one.meta, currentValues: ["phone": .text("1")]))
        #expect(two.apply == ["phone": .text("2")])
        #expect(two.concurrent.isEmpty)
        #expect(two.meta.versionVector == VersionVector([a: 1, b: 1]))
    }

    @Test func aDuplicateHasNoEffect() throws {
        let first = change(a, 1, hlc: 100, ["phone": .text("1")])
        let one = try merged(Merge.merge(first, into: nil))
        #expect(Merge.merge(first, into: one.meta) == .duplicate)
    }

    @Test func concurrentWritesToOneCellHaveADeterministicWinnerAndAreReported() throws {
        let base = try merged(Merge.merge(change(a, 1, hlc: 100, ["phone": .text("0"), "language": .text("da")]), into: nil))
        let ctx = base.meta.versionVector
        let fromA = change(a, 2, hlc: 300, ["phone": .text("A")], context: ctx)
        let fromB = change(b, 1, hlc: 200, ["phone": .text("B")], context: ctx)
        // Order 1: A then B.
        let a1 = try merged(Merge.merge(fromA, into: base.meta, currentValues: ["phone": .text("0")]))
        let a2 = try merged(Merge.merge(fromB, into: a1.meta, currentValues: ["phone": .text("A")]))
        #expect(a2.apply.isEmpty, "B loses: its HLC is smaller")
        #expect(a2.concurrent.count == 1)
        #expect(a2.concurrent.first?.winner.dot == fromA.dot)
        #expect(a2.concurrent.first?.currentValue == .text("A") && a2.concurrent.first?.incomingValue == .text("B"))
        // Order 2: B then A — same winner, same metadata.
        let b1 = try merged(Merge.merge(fromB, into: base.meta, currentValues: ["phone": .text("0")]))
        let b2 = try merged(Merge.merge(fromA, into: b1.meta, currentValues: ["phone": .text("B")]))
        #expect(b2.apply == ["phone": .text("A")])
        #expect(b2.concurrent.first?.winner.dot == fromA.dot)
        #expect(a2.meta == b2.meta)
    }

    @Test func equalHLCsAreBrokenByReplicaID() throws {
        let fromA = change(a, 1, hlc: 100, ["phone": .text("A")])
        let fromB = change(b, 1, hlc: 100, ["phone": .text("B")])
        let one = try merged(Merge.merge(fromA, into: nil))
        let two = try merged(Merge.merge(fromB, into: one.meta, currentValues: ["phone": .text("A")]))
        let expected = max(a, b) == a ? "A" : "B"
        #expect((two.apply["phone"] ?? .text("A")) == .text(expected))
    }

    @Test func concurrentWritesOfTheSameValueAreReportedAsSuch() throws {
        let one = try merged(Merge.merge(change(a, 1, hlc: 100, ["number": .integer(3)]), into: nil))
        let two = try merged(Merge.merge(change(b, 1, hlc: 90, ["number": .integer(3)]), into: one.meta, currentValues: ["number": .integer(3)]))
        #expect(two.concurrent.count == 1)
        #expect(two.concurrent.first?.sameValue == true, "the same room made on two replicas needs no conflict row")
    }

    @Test func differentColumnsMergeWithoutConflict() throws {
        let base = try merged(Merge.merge(change(a, 1, hlc: 100, ["phone": .text("0"), "language": .text("da")]), into: nil))
        let ctx = base.meta.versionVector
        let one = try merged(Merge.merge(change(a, 2, hlc: 200, ["phone": .text("A")], context: ctx), into: base.meta, currentValues: ["phone": .text("0")]))
        let two = try merged(Merge.merge(change(b, 1, hlc: 150, ["language": .text("en")], context: ctx), into: one.meta, currentValues: ["language": .text("da")]))
        #expect(two.apply == ["language": .text("en")])
        #expect(two.concurrent.isEmpty)
    }

    @Test func aChangeWhoseContextHasNotArrivedIsHeldBack() throws {
        let missing = VersionVector([a: 1])
        let outcome = Merge.merge(change(b, 1, hlc: 100, ["phone": .text("B")], context: missing), into: nil)
        #expect(outcome == .notReady(missing: missing))
    }

    @Test func keepBothColumnsAreFlagged() throws {
        let one = try merged(Merge.merge(change(a, 1, hlc: 100, ["notes": .text("x")]), into: nil))
        let two = try merged(Merge.merge(change(b, 1, hlc: 90, ["notes": .text("y")]), into: one.meta,
                                         currentValues: ["notes": .text("x")], keepBoth: ["notes"]))
        #expect(two.concurrent.first?.keepBoth == true)
    }
}
