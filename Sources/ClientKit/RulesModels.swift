import ShelterDomain

public struct StaffMember: Hashable, Sendable {
    public var id: String
    public var name: String
    public var role: StaffRole?
    public var removed: Bool = false
}

public struct NotificationRecord: Hashable, Sendable {
    public var id: String
    public var stay: String
    public var kind: NotificationLetter.Kind
    public var municipality: String
    public var eventOn: CivilDate
    public var due: CivilDate
    public var legalDeadline: CivilDate
    public var sentAt: String?
    /// Not sent, and the shelter's own 3-day limit (`due`) has passed.
    public var overdue: Bool
}

public struct DecisionRecord: Hashable, Sendable {
    public var id: String
    public var stay: String
    public var kind: String
    public var outcome: String
    public var reason: String?
    public var referTo: String?
    public var houseRules: Bool
    public var decidedOn: String
    public var status: String
    /// The complaints about it, oldest first.
    public var complaints: [String] = []

    /// Whether a complaint about it can be made: a not-eligible decision or a required move-out
    /// that was not an expulsion for breaking the house rules.
    public var isAppealable: Bool { outcome != "eligible" && !houseRules }
}

public struct StayPlan: Hashable, Sendable {
    public struct Goal: Hashable, Sendable {
        public var id: String
        public var text: String
        public var status: String
        public var createdOn: String
    }

    public struct Offer: Hashable, Sendable {
        public var id: String
        /// `woman`, or a child's id.
        public var person: String
        public var offered: Bool
        public var accepted: Bool
        public var hours: Double
        /// The child's alias or name (nil for her, or a child this session cannot read).
        public var childName: String? = nil
    }

    public var stay: String
    public var contactPerson: String?
    public var goals: [Goal]
    public var offers: [Offer]
}

public struct ComplaintRecord: Hashable, Sendable {
    public var id: String
    public var stay: String
    /// The decision complained about (nil for a complaint recorded before schema 8, by date only).
    public var decision: String?
    public var decisionOn: String
    public var form: String
    public var text: String?
    public var receivedOn: String
    public var deadline: String
    public var late: Bool
    public var status: String
    public var reviewedOn: String?
    public var forwardedOn: String?
}

public struct BillingReport: Hashable, Sendable {
    public struct Line: Hashable, Sendable {
        public var stay: String
        /// Name, or "anonymous" for an anonymous stay (never a name then).
        public var display: String
        public var anonymous: Bool
        public var days: Int
        public var selfPayment: Int?
    }

    public struct Municipality: Hashable, Sendable {
        public var municipality: String
        public var stays: [Line]
        public var days: Int
        /// The daily rate and the amount owed, in øre.
        public var rateØre: Int
        public var amountØre: Int
        public var selfPayment: Int
    }

    public var month: String
    /// The year's daily rate in øre (nil: not set).
    public var rateØre: Int?
    public var municipalities: [Municipality]
    public var days: Int { municipalities.reduce(0) { $0 + $1.days } }
    public var amountØre: Int { municipalities.reduce(0) { $0 + $1.amountØre } }
    public var selfPayment: Int { municipalities.reduce(0) { $0 + $1.selfPayment } }
}

/// A daily rate of a year.
public struct RateRecord: Hashable, Sendable {
    public var year: Int
    public var øre: Int
}

public struct MeetingRecord: Hashable, Sendable {
    public var date: CivilDate
    public var held: Bool
    public var notes: String?
    /// On the 14-day schedule (false: an extra meeting).
    public var scheduled: Bool = true
}

/// One thing with a date that staff must act on.
public struct DueItem: Hashable, Sendable {
    public enum Kind: String, Sendable { case notification, complaintForwarding, meeting, awaitingDecision, awaitingRoom, upheldComplaint }
    public var kind: Kind
    public var date: CivilDate
    public var overdue: Bool
    /// The record it concerns (a notification, complaint or stay id; a meeting's date).
    public var subject: String
    /// Written for staff, without personal data.
    public var text: String
}
