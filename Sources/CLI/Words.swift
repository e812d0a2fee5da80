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
}
