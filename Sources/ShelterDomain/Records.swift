import SyncCore

/// One room of the shelter, identified by its number on every replica.
public struct Room: Hashable, Sendable {
    public var number: Int
    public var inService: Bool

    public init(number: Int, inService: Bool = true) {
        self.number = number
        self.inService = inService
    }

    /// The row id of a room: its number, so a room made on two replicas is one row.
    public static func rowID(_ number: Int) -> String { String(number) }
}

/// A woman's stay at the shelter, from admission to discharge.
public struct Stay: Hashable, Sendable {
    public enum Status: String, Hashable, Sendable, CaseIterable {
        /// Admitted, no room yet (the shelter is full, or the room is not chosen yet).
        case awaitingRoom
        /// Living in a room.
        case active
        /// Left the shelter.
        case discharged
        /// A second admission of a woman already staying, merged into her first stay (a `person`
        /// conflict resolved with `--merge`): no room, no billing, no notification.
        case merged
    }

    public var id: String
    public var resident: String
    public var admittedAt: String
    public var room: Int?
    public var status: Status
    public var dischargedAt: String?

    public init(id: String, resident: String, admittedAt: String, room: Int?, status: Status, dischargedAt: String? = nil) {
        self.id = id
        self.resident = resident
        self.admittedAt = admittedAt
        self.room = room
        self.status = status
        self.dischargedAt = dischargedAt
    }

    /// Whether the stay may be placed in (or moved to) a room.
    public func checkAssignable() throws(DomainError) {
        if status == .discharged || status == .merged {
            throw DomainError(.invalidTransition, t("stay.noRoom", ("stay", id), ("status", t("stayStatus.\(status.rawValue)"))))
        }
    }

    public func checkDischargeable() throws(DomainError) {
        if status == .discharged || status == .merged {
            throw DomainError(.invalidTransition, t("stay.already", ("stay", id), ("status", t("stayStatus.\(status.rawValue)"))))
        }
    }
}

/// The anonymity rule of § 109: an anonymous stay stores no name and no CPR number, for the woman
/// and for her children.
public enum Anonymity {
    public static func check(anonymous: Bool, name: String?, cpr: String?, who: String = t("anonymity.resident")) throws(DomainError) {
        guard anonymous else { return }
        if let name, !name.isEmpty {
            throw DomainError(.anonymityViolation, t("anonymity.name", ("who", who)))
        }
        if let cpr, !cpr.isEmpty {
            throw DomainError(.anonymityViolation, t("anonymity.cpr", ("who", who)))
        }
    }
}

/// Rooms and the one-family-per-room rule.
public enum RoomRules {
    /// Checks that `number` can take a stay, given the rooms and the active stays this replica knows.
    /// `movingStay` is ignored as an occupant (a stay that moves does not block its own room).
    public static func checkAvailable(_ number: Int, rooms: [Room], activeStays: [Stay], movingStay: String? = nil) throws(DomainError) {
        guard let room = rooms.first(where: { $0.number == number }) else {
            let known = rooms.map(\.number).sorted()
            let range = known.isEmpty ? "this replica has no rooms yet" : "rooms are \(known.first!)–\(known.last!)"
            throw DomainError(.roomUnavailable, t("room.missing", ("room", number), ("range", range)))
        }
        guard room.inService else {
            throw DomainError(.roomUnavailable, t("room.outOfService", ("room", number)))
        }
        if let occupant = activeStays.first(where: { $0.room == number && $0.status == .active && $0.id != movingStay }) {
            throw DomainError(.roomUnavailable, t("room.occupied", ("room", number), ("stay", occupant.id.prefix(8))))
        }
    }

    /// An active stay as the room rule sees it: its room, and when its placement (the stay's `room`
    /// cell) reached the server's log — the first placement of a room is the confirmed one.
    public struct Placement: Hashable, Sendable {
        public var stay: String
        public var room: Int?
        /// The write that placed it (its dot) and its log position; nil when unknown.
        public var dot: Dot?
        public var position: Int64

        public init(stay: String, room: Int?, dot: Dot?, position: Int64) {
            self.stay = stay
            self.room = room
            self.dot = dot
            self.position = position
        }
    }

    /// What the server writes to hold the invariant after a merge.
    public struct Repairs: Hashable, Sendable {
        /// Active stays in no existing room: back to awaiting a room.
        public var roomless: [String] = []
        /// Rooms out of service with an active stay in them: back in service (nobody is put out).
        public var reopen: [Int] = []
        /// Stays that lost their room to an earlier placement, with the confirmed one: back to
        /// awaiting a room, and a room conflict each.
        public var displaced: [Displacement] = []
        /// The first room free once the repairs are made, offered in each room conflict.
        public var freeRoom: Int?
    }

    public struct Displacement: Hashable, Sendable {
        public var room: Int
        public var keeper: Placement
        public var displaced: Placement
    }

    /// The room rule as the server holds it, over the rooms (number → in service) and the active
    /// stays: one family per room (the first placement keeps it), only in rooms that exist, and a
    /// room with someone in it is in service. Pure: the server reads its inputs and writes the answer.
    public static func repairs(rooms: [Int: Bool], active: [Placement]) -> Repairs {
        var repairs = Repairs()
        repairs.roomless = active.filter { $0.room.map { rooms[$0] == nil } ?? true }.map(\.stay).sorted()
        let placed = active.filter { $0.room.map { rooms[$0] != nil } ?? false }
        repairs.reopen = Set(placed.compactMap(\.room)).filter { rooms[$0] == false }.sorted()
        var occupied = Set<Int>()
        for (room, stays) in Dictionary(grouping: placed, by: { $0.room! }).sorted(by: { $0.key < $1.key }) {
            occupied.insert(room)
            let ordered = stays.sorted { ($0.position, $0.stay) < ($1.position, $1.stay) }
            for displaced in ordered.dropFirst() { repairs.displaced.append(Displacement(room: room, keeper: ordered[0], displaced: displaced)) }
        }
        let inService = rooms.filter { $0.value || repairs.reopen.contains($0.key) }.keys
        repairs.freeRoom = inService.filter { !occupied.contains($0) }.min()
        return repairs
    }

    /// The invariant the server holds: at most one active stay per room, and only in rooms in service.
    /// Returns the rooms with more than one active stay.
    public static func doubleBooked(_ stays: [Stay]) -> [Int: [Stay]] {
        Dictionary(grouping: stays.filter { $0.status == .active && $0.room != nil }, by: { $0.room! })
            .filter { $0.value.count > 1 }
    }
}

/// The fields of a resident that staff may set with `shelter resident set`.
public enum ResidentField: String, CaseIterable, Sendable {
    case phone, language, interpreter, notes, alias, municipality, documented, name, cpr

    /// The column it is stored in.
    public var column: String { rawValue }

    var isFlag: Bool { self == .interpreter || self == .documented }

    /// Parses the value staff typed (empty means clear, for the fields that may be empty) and checks
    /// the rules for a resident who is (or is not) anonymous.
    public func value(from text: String, anonymous: Bool, today: CivilDate? = nil) throws(DomainError) -> SyncValue {
        switch self {
        case .interpreter, .documented:
            switch text.lowercased() {
            case "yes", "true", "1", "ja": return .bool(true)
            case "no", "false", "0", "nej": return .bool(false)
            default: throw DomainError(.invalidValue, t("field.yesNo", ("field", Language.current == .da ? danishName : rawValue), ("text", text)))
            }
        case .name:
            try Anonymity.check(anonymous: anonymous, name: text, cpr: nil)
            return text.isEmpty ? .null : .text(text)
        case .cpr:
            try Anonymity.check(anonymous: anonymous, name: nil, cpr: text)
            return text.isEmpty ? .null : .text(try CPRNumber(text, today: today).formatted)
        case .municipality:
            // One of the 98, or — an anonymous stay's explicit choice — unknown; never empty (it pays).
            return .text(try Municipality.parse(text, allowUnknown: anonymous))
        case .alias:
            if text.isEmpty && anonymous {
                throw DomainError(.invalidValue, t("anonymity.alias"))
            }
            return text.isEmpty ? .null : .text(text)
        case .phone, .language, .notes:
            return text.isEmpty ? .null : .text(text)
        }
    }

    /// The Danish word staff type for each field (the English one works too).
    public var danishName: String {
        switch self {
        case .phone: "telefon"
        case .language: "sprog"
        case .interpreter: "tolk"
        case .notes: "noter"
        case .alias: "alias"
        case .municipality: "kommune"
        case .documented: "dokumenteret"
        case .name: "navn"
        case .cpr: "cpr"
        }
    }

    public static func named(_ name: String) throws(DomainError) -> ResidentField {
        let typed = name.lowercased()
        guard let field = ResidentField(rawValue: name) ?? allCases.first(where: { $0.danishName == typed || $0.rawValue.lowercased() == typed }) else {
            throw DomainError(.unknownField, t("resident.unknownField", ("field", name), ("fields", allCases.map { Language.current == .da ? $0.danishName : $0.rawValue }.joined(separator: ", "))))
        }
        return field
    }
}
