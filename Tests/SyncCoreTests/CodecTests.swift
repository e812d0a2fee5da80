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
