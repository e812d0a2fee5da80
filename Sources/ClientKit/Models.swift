import ShelterDomain

/// What staff enter at intake.
public struct Admission: Sendable {
    public struct Child: Sendable, Hashable {
        public var name: String?
        public var cpr: String?
        public var alias: String?
        public init(name: String? = nil, cpr: String? = nil, alias: String? = nil) {
            self.name = name
            self.cpr = cpr
            self.alias = alias
        }
    }

    public var anonymous: Bool
    public var name: String?
    public var cpr: String?
    public var alias: String?
    public var municipality: String
    public var documented: Bool
    public var children: [Child]
    public var reason: String?
    /// Place her at once in this room; nil leaves the stay awaiting a room.
    public var room: Int?
    /// When she arrived, if earlier than now (a paper intake during an outage).
    public var admittedAt: Date?
    /// Admit her even though a resident with the same CPR number is staying here now (staff were
    /// asked, and know it is a second admission; the server will still raise a `person` conflict).
    public var admitAgain = false

    public init(anonymous: Bool = false, name: String? = nil, cpr: String? = nil, alias: String? = nil,
                municipality: String, documented: Bool = false, children: [Child] = [], reason: String? = nil,
                room: Int? = nil, admittedAt: Date? = nil) {
        self.anonymous = anonymous
        self.name = name
        self.cpr = cpr
        self.alias = alias
        self.municipality = municipality
        self.documented = documented
        self.children = children
        self.reason = reason
        self.room = room
        self.admittedAt = admittedAt
    }

    public struct Result: Hashable, Sendable {
        public var stay: String
        public var resident: String
        public var room: Int?
        /// The notification to her home municipality the admission made.
        public var notification: String = ""
    }
}

/// The occupancy board.
public struct RoomBoard: Hashable, Sendable {
    public enum Status: String, Hashable, Sendable { case free, occupied, outOfService }

    public struct Entry: Hashable, Sendable {
        public var number: Int
        public var status: Status
        public var stay: String?
        /// Name, or alias for an anonymous stay.
        public var resident: String?
        public var children: Int
    }

    /// Rooms in service.
    public var capacity: Int
    public var occupied: Int
    public var rooms: [Entry]
}

/// One stay as the stay list shows it.
public struct StaySummary: Hashable, Sendable {
    public var id: String
    public var resident: String
    /// Name, or alias for an anonymous stay.
    public var display: String
    public var anonymous: Bool
    public var room: Int?
    public var status: Stay.Status
    public var admittedAt: String
    public var dischargedAt: String?
    public var children: Int
}

/// A resident's record, with her children and stays.
public struct ResidentRecord: Hashable, Sendable {
    public struct Child: Hashable, Sendable {
        public var id: String
        public var name: String?
        public var cpr: String?
        public var alias: String?
    }

    public var id: String
    public var anonymous: Bool
    public var name: String?
    public var cpr: String?
    public var alias: String?
    public var municipality: String?
    public var documented: Bool
    public var phone: String?
    public var language: String?
    public var interpreter: Bool
    public var notes: String?
    public var children: [Child]
    public var stays: [StaySummary]
    /// Set when she was erased: her personal cells are gone everywhere.
    public var erasure: ErasureRecord? = nil
}

/// The replica's own state.
/// Who erased a resident, when and why.
public struct ErasureRecord: Hashable, Sendable {
    public var resident: String
    /// UTC ISO 8601.
    public var erasedAt: String
    /// The staff id of the leader who erased her.
    public var erasedBy: String
    public var reason: Erasure.Reason
}

/// A resident whose retention period has ended: her last stay ended more than `retentionYears` ago.
public struct RetentionDue: Hashable, Sendable {
    public var resident: String
    /// Her name or alias for a session that can read it; nil otherwise.
    public var display: String?
    /// The day her last stay ended (UTC ISO 8601).
    public var lastDischargedAt: String
}

public struct ReplicaStatus: Hashable, Sendable {
    public var replica: String
    /// Local changes the server has not acknowledged.
    public var unsynced: Int
    public var lastSync: String?
    public var server: String?
    public var schemaVersion: Int
    /// Local changes the server refused (kept in the log, marked rejected).
    public var rejected: Int
    /// The last sync that failed, if it failed after the last successful one.
    public var lastError: SyncFailure?
    /// A shelter key was retired (a member of staff removed, a workstation revoked) and the
    /// rotation has not reached this replica yet: the next sync of a leader's session carries it out.
    public var keyRotationDue = false

    public struct SyncFailure: Hashable, Sendable {
        public var code: String
        public var message: String
        public var at: String
    }
}

/// One entry of the change history.
public struct HistoryEntry: Hashable, Sendable {
    public struct Column: Hashable, Sendable {
        public var name: String
        /// The written value as text (nil for null); nil too when `personal` and not asked for.
        public var value: String?
        public var personal: Bool
    }

    public var sequence: Int64
    /// When it was written (from its HLC stamp), UTC ISO 8601.
    public var at: String
    public var author: String
    public var replica: String
    public var counter: UInt64
    public var table: String
    public var row: String
    public var columns: [Column]
    /// unsynced, acknowledged, rejected or received.
    public var state: String
    /// Why the server refused it (`code: reason`, no values), for a rejected change.
    public var rejection: String? = nil
    /// Its personal values were erased (the resident's erasure): they show as `(erased)`.
    public var erased: Bool = false
}

import Foundation

/// A conflict with what staff recognise it by: whose record, which room, which workstations wrote
/// the competing values (`Replica.conflictDetails`).
public struct ConflictDetail: Hashable, Sendable {
    /// Who a resident is, as this replica may show her.
    public enum Who: Hashable, Sendable {
        /// Her name (only to a session) or her alias.
        case named(String)
        /// Her name needs a session, and she has no alias to show without one.
        case locked
        /// She was erased.
        case erased
    }

    /// Who wrote one competing value.
    public enum Writer: Hashable, Sendable {
        /// A workstation the server named.
        case workstation(String)
        /// The server itself (a repair).
        case server
        /// A replica the server has not named to this workstation (yet): show its id.
        case unknown
    }

    public var conflict: Conflict
    /// The resident whose record holds the contested row (for a room or person conflict, the stay
    /// that lost the room or may be merged); nil for a row of no resident's (a room, a setting, staff).
    public var resident: String?
    /// Who that resident is; nil when there is none or her row is not here.
    public var who: Who?
    /// For a `room` conflict, the room both stays were placed in; for a field of a room, its number.
    public var room: Int?
    /// For a `room` or `person` conflict, who each candidate stay's resident is; empty otherwise.
    public var candidateWho: [Who?] = []
    /// Who wrote each candidate, in the candidates' order.
    public var writers: [Writer] = []

    public init(conflict: Conflict, resident: String? = nil, who: Who? = nil, room: Int? = nil) {
        self.conflict = conflict
        self.resident = resident
        self.who = who
        self.room = room
    }
}
