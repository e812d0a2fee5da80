/// The *orientering* of § 109 stk. 6 to the woman's home municipality.
///
/// For an anonymous stay the letter is built from `Subject.anonymous`, which holds no name and no CPR
/// number: there is nothing from which to print them.
public struct NotificationLetter: Sendable {
    public struct Person: Hashable, Sendable {
        public var name: String?
        public var cpr: String?
        public init(name: String?, cpr: String?) {
            self.name = name
            self.cpr = cpr
        }
    }

    public enum Subject: Sendable {
        case identified(woman: Person, children: [Person])
        case anonymous(children: Int)
    }

    public enum Kind: String, Sendable { case admission, discharge }

    public var kind: Kind
    public var municipality: String
    public var date: CivilDate
    public var reason: String?
    public var subject: Subject
    /// The shelter's name and address (settings `name`, `address`), which sign the letter.
    public var shelter: String
    public var address: String?

    public init(kind: Kind, municipality: String, date: CivilDate, reason: String?, subject: Subject, shelter: String = "Krisecentret", address: String? = nil) {
        self.address = address
        self.kind = kind
        self.municipality = municipality
        self.date = date
        self.reason = reason
        self.subject = subject
        self.shelter = shelter
    }

    static let months = ["januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"]

    static func danish(_ date: CivilDate) -> String { "\(date.day). \(months[date.month - 1]) \(date.year)" }

    /// The letter in Danish, ready to send.
    public var text: String {
        let event = kind == .admission ? "optaget" : "fraflyttet"
        let unknown = municipality == Municipality.unknownValue || municipality.isEmpty
        let known = Municipality.stored(municipality)
        let code = known.map { " (kommunekode \($0.code))" } ?? ""
        let addressee = known?.officialName ?? "\(municipality) Kommune"
        var lines = [
            unknown ? "Til hjemkommunen (ukendt)" : "Til \(addressee)\(code)",
            "",
            "Orientering efter servicelovens § 109, stk. 6",
            "",
        ]
        switch subject {
        case .identified(let woman, let children):
            lines.append("\(shelter) orienterer hermed om, at følgende borger er \(event) \(Self.danish(date)):")
            lines.append("")
            lines.append("  \(woman.name ?? "(navn ikke oplyst)")" + (woman.cpr.map { ", cpr.nr. \($0)" } ?? ""))
            if !children.isEmpty {
                lines.append("")
                lines.append(children.count == 1 ? "Medfølgende barn:" : "Medfølgende børn:")
                for child in children {
                    lines.append("  \(child.name ?? "(navn ikke oplyst)")" + (child.cpr.map { ", cpr.nr. \($0)" } ?? ""))
                }
            }
        case .anonymous(let children):
            lines.append(unknown ? "\(shelter) orienterer hermed om, at en kvinde er \(event) \(Self.danish(date)). Hendes hjemkommune er ukendt."
                                 : "\(shelter) orienterer hermed om, at en kvinde med sidste bopæl i \(addressee) er \(event) \(Self.danish(date)).")
            lines.append("Opholdet er anonymt efter servicelovens § 109, stk. 3; navn og cpr.nr. oplyses derfor ikke.")
            if children > 0 { lines.append("Med hende \(children == 1 ? "følger 1 barn" : "følger \(children) børn").") }
        }
        lines.append("")
        lines.append("Begrundelse: \(reason.flatMap { $0.isEmpty ? nil : $0 } ?? (kind == .admission ? "ophold på krisecenter" : "udflytning"))")
        lines.append("")
        lines.append("Med venlig hilsen")
        lines.append(shelter)
        if let address, !address.isEmpty { lines.append(address) }
        return lines.joined(separator: "\n") + "\n"
    }
}
