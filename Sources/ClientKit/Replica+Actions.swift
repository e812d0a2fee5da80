import Foundation
import GRDB
import ShelterDomain
import SyncCore

extension Replica {
    /// Admits a woman (and her children): one resident, her children and one stay, in one
    /// transaction. With a room she is placed at once; otherwise the stay awaits a room.
    @discardableResult
    public func admit(_ admission: Admission, by session: any TransactionSigner) throws -> Admission.Result {
        let author = session.author
        let now = configuration.now()
        let today = Timestamp.civilDate(of: now)
        var cpr: String? = nil
        let municipality = try Self.checked { try Municipality.parse(admission.municipality, allowUnknown: admission.anonymous) }
        try Self.checked {
            if let at = admission.admittedAt { try EventTime.check(at, now: now, what: t("event.admission")) }
            try Anonymity.check(anonymous: admission.anonymous, name: admission.name, cpr: admission.cpr)
            if admission.anonymous && (admission.alias ?? "").isEmpty {
                throw DomainError(.invalidValue, t("anonymity.needsAlias"))
            }
            if let text = admission.cpr, !text.isEmpty { cpr = try CPRNumber(text, today: today).formatted }
        }
        var children: [(name: String?, cpr: String?, alias: String?)] = []
        for (index, child) in admission.children.enumerated() {
            try Self.checked {
                try Anonymity.check(anonymous: admission.anonymous, name: child.name, cpr: child.cpr,
                                    who: t("anonymity.child", ("n", index + 1)))
                let childCPR = try child.cpr.flatMap { $0.isEmpty ? nil : try CPRNumber($0, today: today).formatted }
                children.append((child.name.flatMap { $0.isEmpty ? nil : $0 }, childCPR, child.alias))
            }
        }
        let admittedAt = Timestamp.format(admission.admittedAt ?? now)
        return try perform(signedBy: session) { db in
            if let room = admission.room {
                try RoomRules.checkAvailable(room, rooms: try rooms(db), activeStays: try stays(db, activeOnly: true))
            }
            if let cpr, !admission.admitAgain {
                // The same woman already staying here (as far as this replica knows; the server
                // checks again when it merges): staff decide.
                // Under every key she holds: a resident a rotation has not reached yet is found too.
                let indexes = Set(try cprIndexes(db, cpr) + [try cprIndex(db, cpr, session: session)]).sorted()
                if let staying = try String.fetchOne(db, sql: """
                    SELECT s.id FROM stays s JOIN residents r ON r.id = s.resident
                    WHERE r.cpr_index IN (SELECT value FROM json_each(?)) AND s.status IN ('active', 'awaitingRoom')
                    ORDER BY s.admitted_at LIMIT 1
                    """, arguments: [String(decoding: try JSONEncoder().encode(indexes), as: UTF8.self)]) {
                    throw ReplicaError(.alreadyStaying, t("admit.alreadyStaying", ("stay", staying.prefix(8))))
                }
            }
            let residentID = newID()
            let stayID = newID()
            try write(db, ShelterSchema.residents, residentID, [
                "anonymous": .bool(admission.anonymous),
                "name": .optionalText(admission.anonymous ? nil : admission.name.flatMap { $0.isEmpty ? nil : $0 }),
                "cpr": .optionalText(cpr),
                "alias": .optionalText(admission.alias.flatMap { $0.isEmpty ? nil : $0 }),
                "municipality": .text(municipality),
                "documented": .bool(admission.documented),
            ], author: author)
            for child in children {
                try write(db, ShelterSchema.children, newID(), [
                    "resident": .text(residentID),
                    "name": .optionalText(child.name),
                    "cpr": .optionalText(child.cpr),
                    "alias": .optionalText(child.alias),
                ], author: author)
            }
            try write(db, ShelterSchema.stays, stayID, [
                "resident": .text(residentID),
                "admitted_at": .text(admittedAt),
                "room": .optionalInteger(admission.room),
                "status": .text((admission.room == nil ? Stay.Status.awaitingRoom : .active).rawValue),
                "reason": .optionalText(admission.reason.flatMap { $0.isEmpty ? nil : $0 }),
            ], author: author)
            // The orientering to her home municipality is due from the day she moved in.
            let notification = try writeNotification(db, stay: stayID, kind: .admission, municipality: municipality,
                                                     on: Timestamp.civilDate(of: admission.admittedAt ?? now), author: author)
            return Admission.Result(stay: stayID, resident: residentID, room: admission.room, notification: notification)
        }
    }

    /// Places a stay in a room, or moves it to another one. `stay` is an id or a unique prefix;
    /// returns the stay's full id.
    @discardableResult
    public func assign(stay: String, room: Int, by session: any TransactionSigner) throws -> String {
        let author = session.author
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            try stay.checkAssignable()
            try RoomRules.checkAvailable(room, rooms: try rooms(db), activeStays: try stays(db, activeOnly: true), movingStay: stay.id)
            try write(db, ShelterSchema.stays, stay.id, [
                "room": .integer(Int64(room)),
                "status": .text(Stay.Status.active.rawValue),
            ], author: author)
            return stay.id
        }
    }

    /// Ends a stay; her room becomes free. Returns the stay's full id.
    @discardableResult
    public func discharge(stay: String, reason: String, at: Date? = nil, by session: any TransactionSigner) throws -> String {
        let author = session.author
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ReplicaError(.invalidArgument, t("discharge.needsReason"))
        }
        return try perform(signedBy: session) { db in
            let stay = try requireStay(db, stay)
            try end(db, stay, reason: reason, at: at ?? configuration.now(), author: author)
            return stay.id
        }
    }

    /// Sets fields of a resident's record (`FIELD=VALUE`; an empty value clears it).
    public func setResident(_ resident: String, fields: [(field: String, value: String)], by session: any TransactionSigner) throws {
        let author = session.author
        guard !fields.isEmpty else { throw ReplicaError(.invalidArgument, t("v.oneField")) }
        // Parse field names before touching the file, so an unknown field changes nothing.
        let parsed: [(ResidentField, String)]
        parsed = try Self.checked { try fields.map { (try ResidentField.named($0.field), $0.value) } }
        try perform(signedBy: session) { db in
            let id = try resolve(db, resident, in: ShelterSchema.residents, kind: "resident")
            let anonymous = try Bool.fetchOne(db, sql: "SELECT anonymous FROM residents WHERE id = ?", arguments: [id]) ?? false
            var values: [String: SyncValue] = [:]
            for (field, text) in parsed { values[field.column] = try field.value(from: text, anonymous: anonymous, today: today()) }
            try write(db, ShelterSchema.residents, id, values, author: author)
            if let municipality = values["municipality"] {
                // The letters not sent yet go to her home municipality as it is now (and billing charges it).
                for notification in try String.fetchAll(db, sql: """
                    SELECT n.id FROM notifications n JOIN stays s ON s.id = n.stay
                    WHERE s.resident = ? AND n.sent_at IS NULL AND n.municipality IS NOT ?
                    """, arguments: [id, municipality.textValue]) {
                    try write(db, ShelterSchema.notifications, notification, ["municipality": municipality], author: author)
                }
            }
        }
    }

    /// Takes a room out of service (repairs) or back into service. An occupied room cannot be taken out.
    public func setRoom(_ number: Int, inService: Bool, by session: any TransactionSigner) throws {
        let author = session.author
        try perform(signedBy: session) { db in
            let rooms = try rooms(db)
            guard rooms.contains(where: { $0.number == number }) else {
                throw ReplicaError(DomainError(.roomUnavailable, t("room.missingPlain", ("room", number))))
            }
            if !inService, let occupant = try stays(db, activeOnly: true).first(where: { $0.room == number }) {
                throw ReplicaError(DomainError(.roomUnavailable, t("room.occupiedMove", ("room", number), ("stay", occupant.id.prefix(8)))))
            }
            try write(db, ShelterSchema.rooms, Room.rowID(number), ["in_service": .bool(inService)], author: author)
        }
    }
}
