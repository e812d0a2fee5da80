import ClientKit
import ShelterDomain

/// Stable codes (the JSON's) in the words of the current language.
enum Words {
    static func reason(_ code: String?) -> String {
        guard let code else { return "-" }
        guard let reason = IneligibilityReason(rawValue: code) else { return code }
        return Language.current == .da ? reason.danishWords : code
    }

    static func stayStatus(_ status: Stay.Status) -> String { t("stayStatus.\(status.rawValue)") }

    static func roomStatus(_ status: RoomBoard.Status) -> String { t("roomStatus.\(status.rawValue)") }

    static func yes(_ flag: Bool) -> String { t(flag ? "common.yes" : "common.no") }

    /// A stay's display name as the JSON holds it, with the marks for "erased" and "no name" in words.
    static func display(_ text: String) -> String {
        switch text {
        case Replica.erasedMark: t("history.erased")
        case Replica.noNameMark: t("resident.noName")
        default: text
        }
    }

    static func conflictStatus(_ status: Conflict.Status) -> String { t("conflictStatus.\(status.rawValue)") }

    /// A column in words ("phone number", "telefonnummer"); `table.column` for one that has none.
    static func field(table: String, column: String) -> String {
        Catalogue.table(Language.current)["field.\(table).\(column)"] ?? "\(table).\(column)"
    }

    /// Who a resident is, as the conflict list may show her: her name or alias, or why it is not
    /// shown (the texts put it in parentheses).
    static func who(_ who: ConflictDetail.Who?) -> String {
        switch who {
        case .named(let name)?: name
        case .locked?: t("conflicts.logInForName")
        case .erased?: t("conflicts.erased")
        case nil: t("conflicts.notHere")
        }
    }

    /// Who wrote a value: the workstation's name, the server, or the replica id's first 8 characters.
    static func writer(_ writer: ConflictDetail.Writer, replica: String) -> String {
        switch writer {
        case .workstation(let name): name
        case .server: t("conflicts.theServer")
        case .unknown: t("conflicts.unknownWorkstation", ("replica", replica.prefix(8)))
        }
    }

    /// The workstation's name for JSON: nil when the server has not named it (the server itself too).
    static func workstationName(_ writer: ConflictDetail.Writer) -> String? {
        if case .workstation(let name) = writer { return name }
        return nil
    }
}
