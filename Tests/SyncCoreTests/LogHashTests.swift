import SyncCore
import Testing
import TestSupport

/// A change's digest is what signatures, the hash chain, resends and snapshots compare across
/// replicas and versions: its bytes never change. Pinned here for changes of every kind of value,
/// with a context, an erased column and none.
@Suite struct LogHashTests {
    static let a = ReplicaID("5f1c2a9e-1b2c-4d3e-8f40-123456789abc")!
    static let b = ReplicaID("0a0b0c0d-0e0f-4011-8213-141516171819")!

    static let change = CellChange(
        table: "residents", rowID: "r0001",
        values: ["name": .text("sealed:v1:abc"), "anonymous": .integer(0), "notes": .null, "rate": .real(812.5), "language": .text("da"), "æøå": .integer(-7)],
        dot: Dot(replica: a, counter: 42), hlc: HLC(milliseconds: 1_764_000_000_000, logical: 3),
        author: "mette", context: VersionVector([a: 41, b: 9]))

    @Test func aChangesDigestIsPinned() {
        #expect(LogHash.of(Self.change).bytes.hex == "e2a4ba91016ee267368f294f282a2d39be463f31918d0d1bd676846d377c2ec0")
        var erased = Self.change
        erased.values["name"] = .null
        erased.erased["name"] = LogHash.valueDigest(.text("sealed:v1:abc"))
        #expect(LogHash.of(erased) == LogHash.of(Self.change))
        let empty = CellChange(table: "rooms", rowID: "1", values: [:], dot: Dot(replica: Self.b, counter: 1), hlc: .zero, author: "", context: .init())
        #expect(LogHash.of(empty).bytes.hex == "1cb64911e43f50d75d5c8abf9617791212313ccf60ea5cb73d9c9398e4ba3a9a")
        #expect(LogHash.valueDigest(.text("da")).bytes.hex == "b073dac3890fd31652bdcc1a132847b9759bac332ec1ab8b2f0a8c83ac843dbf")
        #expect(LogHash.valueDigest(.real(812.5)).bytes.hex == "bfab86b2b86126c6c64fc7e6b2defaef972cc2e0c786319e31bc6590cf8f1124")
    }
}

extension [UInt8] {
    var hex: String { map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}
