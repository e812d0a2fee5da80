import ShelterDomain
import SyncCore
import Testing

/// A change whose values were erased keeps each value's digest: its own digest, and so its
/// transaction's signature and the server's chain, stay the same — and every value that was not
/// erased is still bound by them. Only cells an erasure clears may arrive erased.
@Suite struct ErasedChangeTests {
    static func admission() -> CellChange {
        CellChange(table: "residents", rowID: "r1",
                   values: ["name": .text("ss1:r1:AAAA"), "municipality": .text("Køge"), "anonymous": .integer(0), "key": .text("rk1:0123456789abcdef:BBBB")],
                   dot: Dot(replica: .random(), counter: 7), hlc: HLC(milliseconds: 1_800_000_000_000, logical: 1),
                   author: "anna", context: VersionVector())
    }

    static func erased(_ change: CellChange, _ columns: [String]) -> CellChange {
        var result = change
        for column in columns {
            result.erased[column] = LogHash.valueDigest(change.values[column]!)
            result.values[column] = ShelterSchema.residents.column(named: column)!.defaultValue
        }
        return result
    }

    @Test func anErasedChangeKeepsItsDigestAndBindsTheRest() throws {
        let original = Self.admission()
        let erased = Self.erased(original, ["name", "key"])
        #expect(LogHash.of(erased) == LogHash.of(original))
        #expect(Seal.digest(signer: "anna", changes: [erased]) == Seal.digest(signer: "anna", changes: [original]))
        // A value not erased cannot be changed under the same digest.
        var forged = erased
        forged.values["municipality"] = .text("Greve")
        #expect(LogHash.of(forged) != LogHash.of(original))
        // Nor can an erased value's digest be claimed for another column.
        var moved = erased
        moved.erased["municipality"] = moved.erased["name"]
        moved.values["municipality"] = .null
        #expect(LogHash.of(moved) != LogHash.of(original))
        // A version-1 seal cannot be checked over erased values; a version-2 one can.
        let seal = Seal(first: 7, signer: "anna", signature: [UInt8](repeating: 0, count: 64), version: 1)
        #expect(!seal.isCheckable(over: [erased]) && seal.isCheckable(over: [original]))
        #expect(Seal(first: 7, signer: "anna", signature: [], version: 2).isCheckable(over: [erased]))
    }

    @Test func theWireKeepsTheErasedDigests() throws {
        let original = Self.admission()
        var change = Self.erased(original, ["name"])
        change.seal = Seal(first: 7, signer: "anna", signature: [UInt8](repeating: 9, count: 64))
        let decoded = try ChangeCodec.decodeSealed(ChangeCodec.encodeSealed(change))
        #expect(decoded == change && LogHash.of(decoded) == LogHash.of(original))
        // A digest for a column the change does not write is refused.
        var bad = change
        bad.erased["phone"] = LogHash.valueDigest(.text("x"))
        #expect(throws: BinaryReader.Error.self) { try ChangeCodec.decodeSealed(ChangeCodec.encodeSealed(bad)) }
        // Every truncation fails cleanly.
        let bytes = ChangeCodec.encodeSealed(change)
        for length in 0..<bytes.count {
            #expect(throws: BinaryReader.Error.self) { try ChangeCodec.decodeSealed(Array(bytes.prefix(length))) }
        }
    }

    @Test func onlyCellsAnErasureClearsMayArriveErased() {
        let original = Self.admission()
        #expect(Erasure.erasedRefusal(original) == nil)
        #expect(Erasure.erasedRefusal(Self.erased(original, ["name", "key"])) == nil)
        // A plain column claimed erased: refused.
        var municipality = original
        municipality.erased["municipality"] = LogHash.valueDigest(original.values["municipality"]!)
        municipality.values["municipality"] = .null
        #expect(Erasure.erasedRefusal(municipality)?.contains("municipality") == true)
        // An erasable column claimed erased but holding another value: refused.
        var other = Self.erased(original, ["name"])
        other.values["name"] = .text("ss1:r1:CCCC")
        #expect(Erasure.erasedRefusal(other)?.contains("name") == true)
    }
}

/// A resident's wrapped key is written once; only a leader wraps it again (a rotation), and only as a
/// wrapped key. The rules read the rows from any `RowSource`.
@Suite struct ResidentKeyRuleTests {
    struct Rows: RowSource {
        var tables: [String: [String: [String: SyncValue]]]
        func row(_ table: String, _ id: String) throws -> [String: SyncValue]? { tables[table]?[id] }
        func ids(_ table: String, where column: String, is value: SyncValue) throws -> [String] {
            (tables[table] ?? [:]).filter { $0.value[column] == value }.map(\.key).sorted()
        }
    }

    @Test func onlyALeaderWrapsAResidentKeyAgain() throws {
        let old = RecordKeys.ShelterKey(), new = RecordKeys.ShelterKey()
        let first = try RecordKeys.newResidentKey(residentID: "r1", under: old).wrapped
        let again = try RecordKeys.newResidentKey(residentID: "r1", under: new).wrapped
        let rows = Rows(tables: ["residents": ["r1": ["anonymous": .integer(0), "key": .text(first)]],
                                 "key_grants": ["mette/\(old.id)": ["staff": .text("mette"), "shelter_key": .text(old.id)],
                                                "mette/\(new.id)": ["staff": .text("mette"), "shelter_key": .text(new.id)],
                                                "jonas/\(new.id)": ["staff": .text("jonas"), "shelter_key": .text(new.id)]],
                                 "staff": ["jonas": ["role": .text("socialWorker")], "mette": ["role": .text("leader")]]])
        let change = CellChange(table: "residents", rowID: "r1", values: ["key": .text(again)],
                                dot: Dot(replica: .random(), counter: 3), hlc: HLC(milliseconds: 1_800_000_000_000, logical: 0),
                                author: "jonas", context: VersionVector())
        let worker = try ShelterRules.signatory("jonas", rows: rows), leader = try ShelterRules.signatory("mette", rows: rows)
        let refusal = try ShelterRules.check(change, by: worker, rows: rows)
        #expect(refusal?.code == "invalidChange", "\(String(describing: refusal))")
        let accepted = try ShelterRules.check(change, by: leader, rows: rows)
        #expect(accepted == nil, "\(String(describing: accepted))")
        var garbage = change
        garbage.values["key"] = .text("not a key")
        #expect(try ShelterRules.check(garbage, by: leader, rows: rows)?.code == "invalidValue")
        // Never under a shelter key no one was given (a rotation whose grants were refused).
        var ungranted = change
        ungranted.values["key"] = .text(try RecordKeys.newResidentKey(residentID: "r1", under: RecordKeys.ShelterKey()).wrapped)
        #expect(try ShelterRules.check(ungranted, by: leader, rows: rows)?.code == "invalidValue")
        var index = change
        index.values = ["cpr_index": .text(RecordKeys.cprIndex("1203881234", under: RecordKeys.ShelterKey()))]
        #expect(try ShelterRules.check(index, by: leader, rows: rows)?.code == "invalidValue")
        index.values = ["cpr_index": .text(RecordKeys.cprIndex("1203881234", under: new))]
        #expect(try ShelterRules.check(index, by: leader, rows: rows) == nil)
        // Never for an erased resident.
        var erased = rows
        erased.tables["erasures"] = ["r1": ["erased_at": .text("2026-11-27T10:00:00Z")]]
        #expect(try ShelterRules.check(change, by: leader, rows: erased)?.code == "erased")
    }

    @Test func aKeyIsRetiredOnceByALeaderOrTheServerAndOnlyAKeyThatExists() throws {
        let key = RecordKeys.ShelterKey()
        let rows = Rows(tables: ["key_grants": ["mette/\(key.id)": ["staff": .text("mette"), "shelter_key": .text(key.id)]],
                                 "staff": ["jonas": ["role": .text("socialWorker")], "mette": ["role": .text("leader")]]])
        func retiring(_ id: String, at: String = "2026-11-27T10:00:00Z", by author: String) -> CellChange {
            CellChange(table: "retired_keys", rowID: id, values: ["retired_at": .text(at), "reason": .text("workstation night revoked")],
                       dot: Dot(replica: .random(), counter: 3), hlc: HLC(milliseconds: 1_800_000_000_000, logical: 0),
                       author: author, context: VersionVector())
        }
        let worker = try ShelterRules.signatory("jonas", rows: rows), leader = try ShelterRules.signatory("mette", rows: rows)
        #expect(try ShelterRules.check(retiring(key.id, by: "jonas"), by: worker, rows: rows)?.code == "notPermitted")
        #expect(try ShelterRules.check(retiring(key.id, by: "mette"), by: leader, rows: rows) == nil)
        #expect(try ShelterRules.check(retiring(RecordKeys.ShelterKey().id, by: "mette"), by: leader, rows: rows)?.code == "invalidValue",
                "a key no grant names")
        #expect(try ShelterRules.check(retiring(key.id, at: "yesterday", by: "mette"), by: leader, rows: rows)?.code == "invalidValue")
        var retired = rows
        retired.tables["retired_keys"] = [key.id: ["retired_at": .text("2026-11-27T10:00:00Z"), "reason": .text("workstation night revoked")]]
        #expect(try ShelterRules.check(retiring(key.id, by: "mette"), by: leader, rows: retired) == nil, "the same retirement again (a restore) changes nothing")
        #expect(try ShelterRules.check(retiring(key.id, at: "2026-11-28T10:00:00Z", by: "mette"), by: leader, rows: retired)?.code == "invalidChange")
    }
}
