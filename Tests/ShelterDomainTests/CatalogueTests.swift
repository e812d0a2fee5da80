import Foundation
import ShelterDomain
import Testing

@Suite struct CatalogueTests {
    @Test func everyKeyExistsInBothLanguagesWithTheSamePlaceholders() {
        let danish = Catalogue.table(.da), english = Catalogue.table(.en)
        #expect(Set(danish.keys).subtracting(english.keys).sorted() == [], "keys only in Danish")
        #expect(Set(english.keys).subtracting(danish.keys).sorted() == [], "keys only in English")
        for (key, text) in danish {
            guard let other = english[key] else { continue }
            #expect(Set(Catalogue.placeholders(text)) == Set(Catalogue.placeholders(other)), "placeholders of \(key)")
            #expect(!text.isEmpty && !other.isEmpty, "empty text of \(key)")
        }
    }

    /// Every `t("key"` in the sources names a key of the catalogue.
    @Test func everyKeyTheSourcesUseExists() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        let known = Set(Catalogue.table(.en).keys)
        let pattern = try Regex(#"\bt\("([A-Za-z0-9_.\-]+)""#)
        let countPattern = try Regex(#"\btn\("([A-Za-z0-9_.\-]+)""#)
        var used = 0, missing: [String] = []
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        for file in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                let key = String(match.output[1].substring ?? "")
                used += 1
                if !known.contains(key) { missing.append("\(file.lastPathComponent): \(key)") }
            }
            for match in text.matches(of: countPattern) {
                let key = String(match.output[1].substring ?? "")
                if !(known.contains(key + ".one") && known.contains(key + ".other")) { missing.append("\(file.lastPathComponent): \(key).one/.other") }
            }
        }
        #expect(used > 0)
        #expect(missing == [], "keys the sources use and the catalogue lacks")
    }

    @Test func placeholdersAreFilled() {
        // In-process tests never set Language.current (tests run in parallel): they name the language.
        #expect(Catalogue.text("common.yes", [], language: .en) == "yes")
        #expect(Catalogue.text("common.yes", [], language: .da) == "ja")
        #expect(Language(environmentValue: "da_DK.UTF-8") == .da && Language(environmentValue: "en_GB.UTF-8") == .en)
        #expect(Language(environmentValue: "C") == nil && Language(environmentValue: "") == nil)
        #expect(Language.fromEnvironment(["LANG": "en_US.UTF-8", "SHELTER_LANG": "da"]) == .da)
    }
}
