import SyncCore

/// The shelter's synced tables. Codes are stable forever; tables and columns are only added.
public enum ShelterSchema {
    public static let version = 2

    public static let rooms = SyncSchema.Table("rooms", code: 1, columns: [
        .init("number", code: 1, .integer, default: .integer(0)),
        .init("in_service", code: 2, .integer, default: .integer(1)),
    ])

    public static let staff = SyncSchema.Table("staff", code: 2, columns: [
        .init("name", code: 1, .text, default: .text("")),
        .init("role", code: 2, .text, default: .text("")),
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
    ])

    public static let schema = SyncSchema(version: version, tables: [rooms, staff, residents, children, stays, conflicts])
}
