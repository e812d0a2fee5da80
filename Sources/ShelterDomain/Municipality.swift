import Foundation

/// A Danish municipality (*kommune*), by its official three-digit code (Danmarks Statistik / DAGI):
/// the 98 municipalities since the reform of 2007. The home municipality of a stay is one of them,
/// or — for an anonymous stay only, and only as an explicit choice — `unknown`.
public struct Municipality: Hashable, Sendable, CustomStringConvertible {
    /// The official code, `101` … `860`.
    public let code: Int
    /// The official name without "Kommune", as the letters write it ("Køge", "Lyngby-Taarbæk").
    public let name: String

    public var description: String { name }

    /// The name a letter is addressed to: "Køge Kommune", and the two that are named otherwise,
    /// "Københavns Kommune" and "Bornholms Regionskommune".
    public var officialName: String {
        switch code {
        case 101: "Københavns Kommune"
        case 400: "Bornholms Regionskommune"
        default: "\(name) Kommune"
        }
    }

    /// The stored value of a municipality that is not known (an anonymous stay's explicit choice).
    public static let unknownValue = "unknown"

    /// The 98 municipalities, by code.
    public static let all: [Municipality] = [
        (101, "København"), (147, "Frederiksberg"), (151, "Ballerup"), (153, "Brøndby"), (155, "Dragør"),
        (157, "Gentofte"), (159, "Gladsaxe"), (161, "Glostrup"), (163, "Herlev"), (165, "Albertslund"),
        (167, "Hvidovre"), (169, "Høje-Taastrup"), (173, "Lyngby-Taarbæk"), (175, "Rødovre"), (183, "Ishøj"),
        (185, "Tårnby"), (187, "Vallensbæk"), (190, "Furesø"), (201, "Allerød"), (210, "Fredensborg"),
        (217, "Helsingør"), (219, "Hillerød"), (223, "Hørsholm"), (230, "Rudersdal"), (240, "Egedal"),
        (250, "Frederikssund"), (253, "Greve"), (259, "Køge"), (260, "Halsnæs"), (265, "Roskilde"),
        (269, "Solrød"), (270, "Gribskov"), (306, "Odsherred"), (316, "Holbæk"), (320, "Faxe"),
        (326, "Kalundborg"), (329, "Ringsted"), (330, "Slagelse"), (336, "Stevns"), (340, "Sorø"),
        (350, "Lejre"), (360, "Lolland"), (370, "Næstved"), (376, "Guldborgsund"), (390, "Vordingborg"),
        (400, "Bornholm"), (410, "Middelfart"), (420, "Assens"), (430, "Faaborg-Midtfyn"), (440, "Kerteminde"),
        (450, "Nyborg"), (461, "Odense"), (479, "Svendborg"), (480, "Nordfyns"), (482, "Langeland"),
        (492, "Ærø"), (510, "Haderslev"), (530, "Billund"), (540, "Sønderborg"), (550, "Tønder"),
        (561, "Esbjerg"), (563, "Fanø"), (573, "Varde"), (575, "Vejen"), (580, "Aabenraa"),
        (607, "Fredericia"), (615, "Horsens"), (621, "Kolding"), (630, "Vejle"), (657, "Herning"),
        (661, "Holstebro"), (665, "Lemvig"), (671, "Struer"), (706, "Syddjurs"), (707, "Norddjurs"),
        (710, "Favrskov"), (727, "Odder"), (730, "Randers"), (740, "Silkeborg"), (741, "Samsø"),
        (746, "Skanderborg"), (751, "Aarhus"), (756, "Ikast-Brande"), (760, "Ringkøbing-Skjern"), (766, "Hedensted"),
        (773, "Morsø"), (779, "Skive"), (787, "Thisted"), (791, "Viborg"), (810, "Brønderslev"),
        (813, "Frederikshavn"), (820, "Vesthimmerlands"), (825, "Læsø"), (840, "Rebild"), (846, "Mariagerfjord"),
        (849, "Jammerbugt"), (851, "Aalborg"), (860, "Hjørring"),
    ].map { Municipality(code: $0.0, name: $0.1) }

    private static let byName = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    private static let byKey: [String: Municipality] = {
        var keys: [String: Municipality] = [:]
        for municipality in all {
            keys[key(municipality.name)] = municipality
            keys[String(municipality.code)] = municipality
        }
        // Names people write as often as the official ones.
        keys[key("Copenhagen")] = keys[key("København")]
        keys[key("Kobenhavn")] = keys[key("København")]
        keys[key("Århus")] = keys[key("Aarhus")]
        keys[key("Ålborg")] = keys[key("Aalborg")]
        keys[key("Åbenrå")] = keys[key("Aabenraa")]
        keys[key("Nordfyn")] = keys[key("Nordfyns")]
        keys[key("Vesthimmerland")] = keys[key("Vesthimmerlands")]
        keys[key("Lyngby")] = keys[key("Lyngby-Taarbæk")]
        for municipality in all { keys[key(municipality.officialName)] = municipality }
        return keys
    }()

    /// A name folded for matching: lower case, without "Kommune", with æ/ø/å written ae/oe/aa, and
    /// only letters and digits.
    public static func key(_ text: String) -> String {
        var folded = text.lowercased()
            .replacingOccurrences(of: "æ", with: "ae").replacingOccurrences(of: "ø", with: "oe").replacingOccurrences(of: "å", with: "aa")
            .replacingOccurrences(of: "ä", with: "ae").replacingOccurrences(of: "ö", with: "oe").replacingOccurrences(of: "é", with: "e")
        if folded.hasSuffix("kommune"), folded.count > 7 { folded.removeLast(7) }
        return String(folded.unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) && $0.isASCII }.map(Character.init))
    }

    /// The municipality a person typed: a name in any case, with or without "Kommune", with
    /// oe/aa/ae for ø/å/æ, or its code ("259", "0259"). Nil for anything else.
    public static func named(_ text: String) -> Municipality? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let code = Int(trimmed), trimmed.allSatisfy(\.isNumber) { return all.first { $0.code == code } }
        return byKey[key(trimmed)]
    }

    /// The municipality of a stored official name (nil for `unknown`, empty, or free text stored
    /// before the names were checked).
    public static func stored(_ name: String?) -> Municipality? {
        guard let name, !name.isEmpty else { return nil }
        return byName[name] ?? named(name)
    }

    /// Up to `count` official names nearest to what was typed (for an error message).
    public static func nearest(to text: String, count: Int = 3) -> [String] {
        let typed = Array(key(text))
        return all.map { (municipality: $0, distance: distance(typed, Array(key($0.name)))) }
            .sorted { ($0.distance, $0.municipality.name) < ($1.distance, $1.municipality.name) }
            .prefix(count).map(\.municipality.name)
    }

    /// Levenshtein distance, with a prefix typed in full counted as near.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.count > a.count, Array(b.prefix(a.count)) == a { return (b.count - a.count + 1) / 2 }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// Parses a home municipality as staff type it. `unknown` (or Danish `ukendt`) only when
    /// `allowUnknown` (an anonymous stay); the error names the nearest official names.
    public static func parse(_ text: String, allowUnknown: Bool) throws(DomainError) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if ["unknown", "ukendt"].contains(trimmed.lowercased()) {
            guard allowUnknown else {
                throw DomainError(.invalidValue, t("municipality.unknownNotAllowed"))
            }
            return unknownValue
        }
        guard !trimmed.isEmpty else { throw DomainError(.invalidValue, t("municipality.required")) }
        guard let municipality = named(trimmed) else {
            throw DomainError(.invalidValue, t("municipality.notFound", ("typed", trimmed), ("nearest", nearest(to: trimmed).joined(separator: ", "))))
        }
        return municipality.name
    }

    /// Whether a stored value is one the rules accept: an official name, or `unknown` (anonymous only).
    public static func isValidStored(_ value: String, anonymous: Bool) -> Bool {
        value == unknownValue ? anonymous : all.contains { $0.name == value }
    }
}
