import Foundation
import ShelterDomain
import Testing

@Suite struct MunicipalityTests {
    @Test func thereAreNinetyEightWithUniqueCodesAndNames() {
        #expect(Municipality.all.count == 98)
        #expect(Set(Municipality.all.map(\.code)).count == 98)
        #expect(Set(Municipality.all.map(\.name)).count == 98)
        #expect(Municipality.all.allSatisfy { (101...860).contains($0.code) })
        #expect(Municipality.named("259")?.name == "Køge" && Municipality.named("101")?.name == "København")
        #expect(Municipality.named("851")?.name == "Aalborg" && Municipality.named("0461")?.name == "Odense")
    }

    /// Every name matches itself, in any case, with and without "Kommune", spelt in ASCII.
    @Test func everyNameAndItsAsciiSpellingMatches() {
        for municipality in Municipality.all {
            let ascii = municipality.name.replacingOccurrences(of: "æ", with: "ae").replacingOccurrences(of: "ø", with: "oe")
                .replacingOccurrences(of: "å", with: "aa").replacingOccurrences(of: "Æ", with: "Ae").replacingOccurrences(of: "Ø", with: "Oe")
                .replacingOccurrences(of: "Å", with: "Aa")
            for spelling in [municipality.name, municipality.name.lowercased(), municipality.name.uppercased(), ascii, ascii.lowercased(),
                             "\(municipality.name) Kommune", "\(ascii.lowercased()) kommune", " \(municipality.name) ", String(municipality.code)] {
                #expect(Municipality.named(spelling) == municipality, "\(spelling)")
                #expect((try? Municipality.parse(spelling, allowUnknown: false)) == municipality.name, "\(spelling)")
            }
        }
        #expect(Municipality.named("koege")?.name == "Køge")
        #expect(Municipality.named("KØGE KOMMUNE")?.code == 259)
        #expect(Municipality.named("hoeje-taastrup")?.code == 169)
        #expect(Municipality.named("Århus")?.code == 751)
        #expect(Municipality.named("Københavns Kommune")?.code == 101 && Municipality.named("Bornholms Regionskommune")?.code == 400)
        #expect(Municipality.all.first { $0.code == 101 }?.officialName == "Københavns Kommune")
    }

    @Test func anythingElseIsRefusedWithTheNearestNames() {
        for typed in ["ukendt kommune", "Køgee", "Kooge", "999", "100", "Roskilde Amt", "x"] {
            #expect(Municipality.named(typed) == nil, "\(typed)")
        }
        #expect(Municipality.nearest(to: "Kooge").first == "Køge")
        #expect(Municipality.nearest(to: "Roskild").first == "Roskilde")
        #expect(Municipality.nearest(to: "Frederiks").contains("Frederiksberg"))
        do {
            _ = try Municipality.parse("Kooge", allowUnknown: false)
            Issue.record("Kooge was accepted")
        } catch {
            #expect(error.message.contains("Køge"))
        }
    }

    @Test func unknownIsAnAnonymousStaysExplicitChoiceOnly() throws {
        #expect(try Municipality.parse("unknown", allowUnknown: true) == Municipality.unknownValue)
        #expect(try Municipality.parse("Ukendt", allowUnknown: true) == Municipality.unknownValue)
        #expect(throws: DomainError.self) { try Municipality.parse("ukendt", allowUnknown: false) }
        #expect(throws: DomainError.self) { try Municipality.parse("", allowUnknown: true) }
        #expect(Municipality.isValidStored("unknown", anonymous: true) && !Municipality.isValidStored("unknown", anonymous: false))
        #expect(Municipality.isValidStored("Køge", anonymous: false) && !Municipality.isValidStored("koege", anonymous: false))
    }
}

@Suite struct KronerTests {
    @Test func amountsAsStaffWriteThem() throws {
        for (text, øre) in [("2839", 283_900), ("2839.50", 283_950), ("2839,50", 283_950), ("2.839,50", 283_950), ("2,839.50", 283_950),
                            ("2 839,50", 283_950), ("2839,5", 283_950), ("2839 kr", 283_900), ("2.839,00 kr.", 283_900), ("1.234.567", 123_456_700),
                            ("0,75", 75), ("2.839,-", 283_900)] {
            #expect(try Kroner.parseØre(text) == øre, "\(text)")
        }
        for text in ["2.839", "2,839", "", "kr", "2839,505", "2.83.9", "12.34,5.6", "-5", "2839..50", "abc", "1,234,5", "28390,50,1"] {
            #expect(throws: DomainError.self, "\(text)") { try Kroner.parseØre(text) }
        }
        #expect(Kroner.format(øre: 283_950, language: .da) == "2.839,50 kr." && Kroner.format(øre: 283_900, language: .en) == "2,839 kr")
        #expect(Kroner.format(øre: 8_801_700, language: .da) == "88.017 kr.")
    }
}
