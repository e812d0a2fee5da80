import Foundation

/// Staff roles, and what only a leader may record.
public enum StaffRole: String, CaseIterable, Sendable {
    case leader, socialWorker, contactPerson, houseGuard, office, caretaker

    /// The Danish word staff type and read (`husvagt`); the stable code is `rawValue`.
    public var danishWord: String {
        switch self {
        case .leader: "leder"
        case .socialWorker: "socialrådgiver"
        case .contactPerson: "kontaktperson"
        case .houseGuard: "husvagt"
        case .office: "kontor"
        case .caretaker: "pedel"
        }
    }

    /// The role in the current language's word.
    public var word: String { Language.current == .da ? danishWord : rawValue }

    /// Other Danish words staff use for a role.
    static let synonyms: [String: StaffRole] = [
        "medarbejder": .contactPerson, "socialraadgiver": .socialWorker, "socialradgiver": .socialWorker,
        "kontorpersonale": .office, "administration": .office, "vicevært": .caretaker, "vicevaert": .caretaker,
        "viceværten": .caretaker, "forstander": .leader, "nattevagt": .houseGuard, "vagt": .houseGuard,
    ]

    /// A role as staff type it: the code (`houseGuard`) or the Danish word (`husvagt`), in any case.
    public static func named(_ text: String) throws(DomainError) -> StaffRole {
        let typed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let role = allCases.first(where: { $0.rawValue.lowercased() == typed || $0.danishWord == typed }) ?? synonyms[typed] else {
            throw DomainError(.invalidValue, t("role.unknown", ("role", text), ("roles", allCases.map(\.word).joined(separator: ", "))))
        }
        return role
    }
}

public enum Roles {
    /// The id of a staff member's row: the name, trimmed and lower-cased, so the same person added on
    /// two workstations is one row.
    public static func staffID(_ name: String) -> String {
        // Most names are ids already (lowercase ASCII, no spaces): kept as they are, without
        // Foundation's trimming (a call per signed transaction the server merges).
        if name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }) { return name }
        return name.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Checks that `role` (nil: not registered as staff) may record `what` (leader-only actions).
    public static func requireLeader(_ author: String, role: StaffRole?, for what: String) throws(DomainError) {
        guard let role else {
            throw DomainError(.notPermitted, t("role.notStaff", ("what", what), ("author", author)))
        }
        guard role == .leader else {
            throw DomainError(.notPermitted, t("role.leaderOnly", ("what", what), ("author", author), ("role", role.word)))
        }
    }
}

/// Why a leader finds a woman not eligible (the Køge standard and § 109's target group).
public enum IneligibilityReason: String, CaseIterable, Sendable {
    /// Not a woman with legal residence exposed to violence, threats or a similar crisis.
    case notTargetGroup
    /// Severe mental illness: referred to another shelter.
    case severeMentalIllness
    /// Substance abuse: referred to another shelter.
    case substanceAbuse
    case other

    public var referralExpected: Bool { self == .severeMentalIllness || self == .substanceAbuse }

    /// The reason in Danish, as the letters and the screens write it.
    public var danishWords: String {
        switch self {
        case .notTargetGroup: "ikke i målgruppen for et krisecenter efter servicelovens § 109"
        case .severeMentalIllness: "svær psykisk sygdom, som kræver et andet tilbud"
        case .substanceAbuse: "misbrug, som kræver et andet tilbud"
        case .other: "anden begrundelse"
        }
    }

    /// A reason as staff type it: the code or a Danish word (`ikke-målgruppe`, `psykisk-sygdom`, `misbrug`).
    public static func named(_ text: String) -> IneligibilityReason? {
        let typed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let reason = allCases.first(where: { $0.rawValue.lowercased() == typed }) { return reason }
        switch typed {
        case "ikke-målgruppe", "ikke-maalgruppe", "ikke målgruppe", "ikkemålgruppe", "målgruppe", "ikke-i-målgruppen": return .notTargetGroup
        case "psykisk-sygdom", "psykisk sygdom", "svær-psykisk-sygdom", "psykiatri": return .severeMentalIllness
        case "misbrug", "stofmisbrug", "alkoholmisbrug": return .substanceAbuse
        default: return nil
        }
    }
}
