import SyncCore
import Testing
import TestSupport

@Suite struct CodecTests {
    @Test(arguments: [UInt64(0), 1, 127, 128, 300, 1 << 35, UInt64.max])
    func varintRoundTrip(_ value: UInt64) throws {
        var writer = BinaryWriter()
        writer.write(varint: value)
        var reader = BinaryReader(writer.bytes)
        #expect(try reader.readVarint() == value)
        #expect(reader.isAtEnd)
    }

    @Test func changeRoundTrip() throws {
        let change = CellChange(
            table: "residents", rowID: "abc123",
            values: ["phone": .text("+45 12 34 56 78"), "interpreter": .integer(1), "notes": .null, "x": .real(-2.5), "n": .integer(-7)],
            dot: Dot(replica: .random(), counter: 42), hlc: HLC(milliseconds: 1_700_000_000_000, logical: 3),
            author: "mette", context: VersionVector([.random(): 9, .random(): 1]))
        #expect(try ChangeCodec.decode(ChangeCodec.encode(change)) == change)
    }

    /// Counters, clock stamps and sizes are kept as SQLite integers: a peer's value above 2^63 − 1
    /// is a decoding error, never a trap where it is converted (it used to crash the server).
    @Test func countersBeyondSignedSixtyFourBitsAreRefused() throws {
        let huge = UInt64(Int64.max) + 1
        let change = CellChange(table: "t", rowID: "r", values: [:], dot: Dot(replica: .random(), counter: huge), hlc: .zero, author: "a", context: .init())
        #expect(throws: BinaryReader.Error.self) { try ChangeCodec.decode(ChangeCodec.encode(change)) }
        var stamped = change
        stamped.dot.counter = 1
        stamped.hlc = HLC(rawValue: huge)
        #expect(throws: BinaryReader.Error.self) { try ChangeCodec.decode(ChangeCodec.encode(stamped)) }
        let messages: [WireMessage] = [
            .hello(.init(schemaVersion: huge, replicaID: .random(), clientVersion: "x", hlcNow: .zero, counter: 0)),
            .hello(.init(schemaVersion: 3, replicaID: .random(), clientVersion: "x", hlcNow: .zero, counter: huge)),
            .report(cursor: 0, outbox: huge, databaseBytes: 0, lastError: nil),
            .pushAck(upToCounter: huge, rejected: []),
            .pull(cursor: 0, limit: huge),
        ]
        for message in messages {
            #expect(throws: BinaryReader.Error.self, "\(message.name)") { try WireMessage.decode(message.encoded()) }
        }
        stamped.hlc = HLC(rawValue: UInt64(Int64.max))
        #expect(throws: BinaryReader.Error.self, "a stamp whose next tick would pass 2^63") { try ChangeCodec.decode(ChangeCodec.encode(stamped)) }
        stamped.hlc = HLC.maximum
        #expect(try ChangeCodec.decode(ChangeCodec.encode(stamped)) == stamped, "the latest stamp accepted")
        // A clock at the latest stamp stays there instead of overflowing; a wall clock beyond it is capped.
        var clock = HybridLogicalClock(last: HLC.maximum)
        #expect(clock.tick(wallMilliseconds: 0) == HLC.maximum)
        #expect(clock.receive(HLC.maximum, wallMilliseconds: UInt64.max) == HLC.maximum)
        var fresh = HybridLogicalClock()
        #expect(fresh.tick(wallMilliseconds: UInt64.max) <= HLC.maximum)
    }

    /// Texts are UTF-8, checked byte for byte: bad sequences are refused, never repaired.
    @Test(arguments: [[UInt8]([0x80]), [0xC0, 0xAF], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0x4B, 0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF]])
    func invalidUTF8IsRefused(_ bad: [UInt8]) {
        var writer = BinaryWriter()
        writer.write(varint: UInt64(bad.count))
        writer.write(raw: bad)
        var reader = BinaryReader(writer.bytes)
        #expect(throws: BinaryReader.Error.self) { try reader.readText() }
    }

    @Test(arguments: ["", "Køge", "Ærø Å", "\u{FFFD} is a real character", "👩‍👧 family", String(repeating: "ø", count: 300)])
    func validUTF8RoundTrips(_ text: String) throws {
        var writer = BinaryWriter()
        writer.write(text: text)
        var reader = BinaryReader(writer.bytes)
        #expect(try reader.readText() == text)
        #expect(reader.isAtEnd)
    }

    @Test func truncatedAndMutatedBytesFailCleanly() {
        let seed = SeededRandom.seed(from: "CODEC_SEED", default: 7)
        var rng = SeededRandom(seed: seed)
        let change = CellChange(table: "stays", rowID: "r", values: ["status": .text("active"), "room": .integer(3)],
                                dot: Dot(replica: .random(), counter: 5), hlc: HLC(rawValue: 99), author: "a",
                                context: VersionVector([.random(): 2]))
        let bytes = ChangeCodec.encode(change)
        for cut in 0..<bytes.count {
            #expect(throws: BinaryReader.Error.self, "seed \(seed), cut \(cut)") { try ChangeCodec.decode(Array(bytes.prefix(cut))) }
        }
        // Random mutations decode to something or fail with an error: never a trap.
        for _ in 0..<5000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? ChangeCodec.decode(mutated)
        }
        // A count that announces more elements than there are bytes is refused before allocating.
        var huge = BinaryWriter()
        huge.write(varint: UInt64(Int32.max))
        var reader = BinaryReader(huge.bytes)
        #expect(throws: BinaryReader.Error.self) { try reader.readCount() }
    }
}

/// Batches are cut by the encoded size of their changes without encoding them
/// (`ChangeCodec.encodedSealedSize`): it must be the encoding's length, exactly, for every kind of
/// change — seeded, with the seed printed.
@Suite struct EncodedSizeTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func theSizeIsTheEncodingsLength() {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("EncodedSizeTests seed \(seed)")
        var random = Generator(state: seed)
        func number() -> UInt64 {
            // Every varint length: 0, the edges of each 7-bit group, and the largest a store keeps.
            let edges: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 1 << 35, UInt64(Int64.max)]
            return Bool.random(using: &random) ? edges.randomElement(using: &random)! : UInt64.random(in: 0...UInt64(Int64.max), using: &random)
        }
        func text() -> String {
            let pieces = ["", "a", "ø", "👩‍👧", "Køge", String(repeating: "x", count: 127), String(repeating: "æ", count: 64),
                          String(repeating: "y", count: 16_384)]
            return (0..<Int.random(in: 0...3, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
        }
        func value() -> SyncValue {
            switch Int.random(in: 0..<4, using: &random) {
            case 0: .null
            case 1: .integer([Int64.min, Int64.max, -1, 0, 63, -64, 64, -65].randomElement(using: &random)! &+ Int64.random(in: -2...2, using: &random))
            case 2: .real(Double.random(in: -1e9...1e9, using: &random))
            default: .text(text())
            }
        }
        for round in 0..<500 {
            var values: [String: SyncValue] = [:]
            for n in 0..<Int.random(in: 0...8, using: &random) { values["c\(n)" + text().prefix(3)] = value() }
            var context: [ReplicaID: UInt64] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &random) { context[.random()] = number() }
            var change = CellChange(table: text(), rowID: text(), values: values, dot: Dot(replica: .random(), counter: number()),
                                    hlc: HLC(rawValue: number()), author: text(), context: VersionVector(context))
            if Bool.random(using: &random) {
                change.seal = Seal(first: number(), signer: text(), signature: (0..<64).map { _ in UInt8.random(in: 0...255, using: &random) },
                                   version: Int.random(in: 1...2, using: &random))
            }
            for column in values.keys.sorted() where Int.random(in: 0..<3, using: &random) == 0 {
                change.erased[column] = LogHash.valueDigest(.text(text()))
            }
            let encoded = ChangeCodec.encodeSealed(change).count
            #expect(ChangeCodec.encodedSealedSize(change) == encoded, "round \(round), seed \(seed)")
            if ChangeCodec.encodedSealedSize(change) != encoded { return }
        }
    }
}
