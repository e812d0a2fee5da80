import SyncCore

/// The shelter's synced tables. Codes are stable forever; tables and columns are only added.
public enum ShelterSchema {
    public static let version = 8

    public static let rooms = SyncSchema.Table("rooms", code: 1, columns: [
        .init("number", code: 1, .integer, default: .integer(0)),
        .init("in_service", code: 2, .integer, default: .integer(1)),
    ])

    public static let staff = SyncSchema.Table("staff", code: 2, columns: [
        .init("name", code: 1, .text, default: .text("")),
        .init("role", code: 2, .text, default: .text("")),
        // Version 4: her public keys, her private keys sealed under her passphrase, removal.
        .init("signing_key", code: 3, .text, since: 4),
        .init("agreement_key", code: 4, .text, since: 4),
        .init("sealed_keys", code: 5, .text, since: 4),
        .init("removed", code: 6, .integer, default: .integer(0), since: 4),
    ])

    public static let residents = SyncSchema.Table("residents", code: 3, columns: [
        .init("anonymous", code: 1, .integer, default: .integer(0)),
        .init("name", code: 2, .text, personal: true),
        .init("cpr", code: 3, .text, personal: true),
        .init("alias", code: 4, .text),
        .init("municipality", code: 5, .text),
        .init("documented", code: 6, .integer, default: .integer(0)),
        .init("phone", code: 7, .text, personal: true),
        .init("language", code: 8, .text),
        .init("interpreter", code: 9, .integer, default: .integer(0)),
        // Free text that carries safety information: never decided by a clock.
        .init("notes", code: 10, .text, personal: true, keepBoth: true),
        // Version 5: her own key, wrapped under a shelter key (`RecordKeys`); every personal cell
        // of hers is encrypted under it. Forgetting it erases her.
        .init("key", code: 11, .text, since: 5),
        // Version 6: the blind index of her CPR number (`RecordKeys.cprIndex`): equal for the same
        // number, so the server finds the same woman admitted twice without reading it.
        .init("cpr_index", code: 12, .text, since: 6),
    ])

    public static let children = SyncSchema.Table("children", code: 4, columns: [
        .init("resident", code: 1, .text, default: .text("")),
        .init("name", code: 2, .text, personal: true),
        .init("cpr", code: 3, .text, personal: true),
        .init("alias", code: 4, .text),
    ])

    public static let stays = SyncSchema.Table("stays", code: 5, columns: [
        .init("resident", code: 1, .text, default: .text("")),
        .init("admitted_at", code: 2, .text, default: .text("")),
        .init("room", code: 3, .integer),
        .init("status", code: 4, .text, default: .text(Stay.Status.awaitingRoom.rawValue)),
        .init("discharged_at", code: 5, .text),
        .init("discharge_reason", code: 6, .text, personal: true),
        .init("reason", code: 7, .text, personal: true),
        // Version 3: the stay plan's contact person and the self-payment the municipality set.
        .init("contact_person", code: 8, .text, since: 3),
        .init("self_payment", code: 9, .integer, since: 3),
        // Version 6: the stay it was merged into (the same woman admitted twice: status `merged`).
        .init("merged_into", code: 10, .text, since: 6),
    ])

    /// Conflicts found by the server (version 2): replicated to every workstation, resolved by staff.
    public static let conflicts = SyncSchema.Table("conflicts", code: 6, since: 2, columns: [
        .init("kind", code: 1, .text, default: .text(Conflict.Kind.field.rawValue)),
        .init("tbl", code: 2, .text, default: .text("")),
        .init("row", code: 3, .text, default: .text("")),
        .init("col", code: 4, .text),
        .init("status", code: 5, .text, default: .text(Conflict.Status.open.rawValue)),
        // The competing values may be names or notes.
        .init("candidates", code: 6, .text, default: .text("[]"), personal: true),
        .init("winner", code: 7, .integer),
        .init("suggestion", code: 8, .integer),
        .init("detected_at", code: 9, .text),
        .init("resolved_by", code: 10, .text),
        .init("resolved_at", code: 11, .text),
        // Version 3: the competing writes' dots, `replica:counter|replica:counter` (the audit trail).
        .init("dots", code: 12, .text, since: 3),
    ])

    /// The leader's decisions about a stay (version 3): eligibility, or a required move-out.
    public static let decisions = SyncSchema.Table("decisions", code: 7, since: 3, columns: [
        .init("stay", code: 1, .text, default: .text("")),
        .init("kind", code: 2, .text, default: .text("eligibility")),
        .init("outcome", code: 3, .text, default: .text("")),
        .init("reason", code: 4, .text),
        .init("note", code: 5, .text, personal: true),
        .init("refer_to", code: 6, .text),
        .init("house_rules", code: 7, .integer, default: .integer(0)),
        .init("decided_on", code: 8, .text, default: .text("")),
        .init("status", code: 9, .text, default: .text("standing")),
    ])

    /// Notifications to the home municipality (*orientering*, version 3). No names: the letter is
    /// made from the records when it is shown.
    public static let notifications = SyncSchema.Table("notifications", code: 8, since: 3, columns: [
        .init("stay", code: 1, .text, default: .text("")),
        .init("kind", code: 2, .text, default: .text("admission")),
        .init("municipality", code: 3, .text, default: .text("")),
        .init("event_on", code: 4, .text, default: .text("")),
        .init("due", code: 5, .text, default: .text("")),
        .init("legal_deadline", code: 6, .text, default: .text("")),
        .init("sent_at", code: 7, .text),
    ])

    /// Goals of the stay plan (version 3).
    public static let goals = SyncSchema.Table("goals", code: 9, since: 3, columns: [
        .init("stay", code: 1, .text, default: .text("")),
        .init("text", code: 2, .text, default: .text(""), personal: true),
        .init("status", code: 3, .text, default: .text("open")),
        .init("created_on", code: 4, .text, default: .text("")),
    ])

    /// Psychologist offers to the woman or a child (version 3).
    public static let offers = SyncSchema.Table("offers", code: 10, since: 3, columns: [
        .init("stay", code: 1, .text, default: .text("")),
        .init("person", code: 2, .text, default: .text("woman")),
        .init("offered", code: 3, .integer, default: .integer(1)),
        .init("accepted", code: 4, .integer, default: .integer(0)),
        .init("hours", code: 5, .real, default: .real(0)),
    ])

    /// Complaints about a decision (version 3).
    public static let complaints = SyncSchema.Table("complaints", code: 11, since: 3, columns: [
        .init("stay", code: 1, .text, default: .text("")),
        .init("decision_on", code: 2, .text, default: .text("")),
        .init("form", code: 3, .text, default: .text("written")),
        .init("text", code: 4, .text, personal: true),
        .init("received_on", code: 5, .text, default: .text("")),
        .init("deadline", code: 6, .text, default: .text("")),
        .init("late", code: 7, .integer, default: .integer(0)),
        .init("status", code: 8, .text, default: .text("received")),
        .init("reviewed_on", code: 9, .text),
        .init("forwarded_on", code: 10, .text),
        // Version 8: the decision complained about, by id (its date was typed before).
        .init("decision", code: 11, .text, since: 8),
    ])

    /// Daily rates per year (version 3); the row id is the year.
    public static let rates = SyncSchema.Table("rates", code: 12, since: 3, columns: [
        .init("year", code: 1, .integer, default: .integer(0)),
        .init("amount", code: 2, .integer, default: .integer(0)),
        // Version 8: the rate in øre (2839,50 kr = 283950); `amount` keeps the whole kroner.
        .init("amount_ore", code: 3, .integer, since: 8),
    ])

    /// Shelter settings (version 3); the row id is the key.
    public static let settings = SyncSchema.Table("settings", code: 13, since: 3, columns: [
        .init("value", code: 1, .text),
    ])

    /// House meetings held (version 3); the row id is the date.
    public static let meetings = SyncSchema.Table("meetings", code: 14, since: 3, columns: [
        .init("held_on", code: 1, .text, default: .text("")),
        .init("notes", code: 2, .text, personal: true),
    ])

    /// A shelter key sealed to one member of staff (version 5, `RecordKeys.grant`); the row id is
    /// `<staff id>/<shelter key id>`.
    public static let keyGrants = SyncSchema.Table("key_grants", code: 15, since: 5, columns: [
        .init("staff", code: 1, .text, default: .text("")),
        .init("shelter_key", code: 2, .text, default: .text("")),
        .init("sealed", code: 3, .text, default: .text("")),
    ])

    /// Residents erased (version 6, `Erasure`); the row id is the resident's. Written once, by a
    /// leader: every replica that merges it clears her personal cells and forgets her key.
    public static let erasures = SyncSchema.Table("erasures", code: 16, since: 6, columns: [
        .init("erased_at", code: 1, .text, default: .text("")),
        .init("erased_by", code: 2, .text, default: .text("")),
        .init("reason", code: 3, .text, default: .text("request")),
    ])

    /// Shelter keys retired (version 7); the row id is the key's id. Written once: by the server
    /// when its admin revokes a workstation (every shelter key it knows then — the staff who worked
    /// there may have left a session or a passphrase on it), or by a leader. No resident is wrapped
    /// under a retired key once a leader's session has made a new one; until then the staff go on
    /// writing under it (a shelter does not stop admitting at night for want of a leader).
    public static let retiredKeys = SyncSchema.Table("retired_keys", code: 17, since: 7, columns: [
        .init("retired_at", code: 1, .text, default: .text("")),
        .init("reason", code: 2, .text, default: .text("")),
    ])

    public static let schema = SyncSchema(version: version, tables: [
        rooms, staff, residents, children, stays, conflicts,
        decisions, notifications, goals, offers, complaints, rates, settings, meetings, keyGrants, erasures,
        retiredKeys,
    ])

    /// The row id of a grant.
    public static func grantID(staff: String, shelterKey: String) -> String { "\(staff)/\(shelterKey)" }
}
