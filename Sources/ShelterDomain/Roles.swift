import Foundation

/// Staff roles, and what only a leader may record.
public enum StaffRole: String, CaseIterable, Sendable {
    case leader, socialWorker, contactPerson, houseGuard, office, caretaker

    public static func named(_ text: String) throws(DomainError) -> StaffRole {
        guard let role = StaffRole(rawValue: text) else {
            throw DomainError(.invalidValue, "unknown role '\(text)'; roles are \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return role
    }
}

public enum Roles {
    /// The id of a staff member's row: the name, trimmed and lower-cased, so the same person added on
    /// two workstations is one row.
    public static func staffID(_ name: String) -> String {
        name.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Checks that `role` (nil: not registered as staff) may record `what` (leader-only actions).
    public static func requireLeader(_ author: String, role: StaffRole?, for what: String) throws(DomainError) {
        guard let role else {
            throw DomainError(.notPermitted, "only a leader may record \(what); \(author) is not registered as staff (shelter staff add)")
        }
        guard role == .leader else {
            throw DomainError(.notPermitted, "only a leader may record \(what); \(author) is \(role.rawValue)")
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
}
