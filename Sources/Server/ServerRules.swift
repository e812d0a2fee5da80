import GRDB
import ShelterDomain
import SyncCore

/// The shelter's rules, checked again by the server for every pushed change: a workstation running
/// old or modified code must not be able to store what the rules forbid.
enum ServerRules {
    struct Refusal {
        var code: String
        /// For staff and the admin; names ids and columns, never values.
        var reason: String
    }

    static func check(_ db: Database, _ change: CellChange) throws -> Refusal? {
        guard let table = ShelterSchema.schema.table(named: change.table) else {
            return Refusal(code: "unknownTable", reason: "table \(change.table) is not part of schema version \(ShelterSchema.version)")
        }
        for column in change.values.keys where table.column(named: column) == nil {
            return Refusal(code: "unknownColumn", reason: "column \(column) is not part of table \(change.table)")
        }
        for (column, value) in change.values where !value.fits {
            return Refusal(code: "valueTooLarge", reason: "\(change.table) \(change.rowID): the \(column) is over the \(SyncValue.maximumTextBytes / 1024) KiB a text may hold")
        }
        func sets(_ column: String) -> Bool {
            guard let value = change.values[column] else { return false }
            return !(value.isNull || value == .text(""))
        }
        switch change.table {
        case ShelterSchema.residents.name:
            // Checked for every pushed resident change: read through SQLite's C API (see RawStatement).
            let select = try RawStatement(db, "SELECT anonymous, name, cpr FROM residents WHERE id = ?")
            select.bind(1, change.rowID)
            let current = try select.oneRow { row in
                (anonymous: !row.isNull(0) && row.int64(0) != 0, name: row.optionalText(1), cpr: row.optionalText(2))
            }
            let anonymous = change.values["anonymous"]?.boolValue ?? (current?.anonymous ?? false)
            if anonymous {
                if sets("name") || sets("cpr") {
                    return Refusal(code: "anonymity", reason: "resident \(change.rowID) is anonymous: a name or CPR number is refused")
                }
                let keepsName = change.values["name"] == nil && current?.name.map { !$0.isEmpty } == true
                let keepsCPR = change.values["cpr"] == nil && current?.cpr.map { !$0.isEmpty } == true
                if keepsName || keepsCPR {
                    return Refusal(code: "anonymity", reason: "resident \(change.rowID) has a name or CPR number and cannot become anonymous without clearing them")
                }
            }
            if let cpr = change.values["cpr"]?.textValue, !cpr.isEmpty, (try? CPRNumber(cpr)) == nil {
                return Refusal(code: "invalidValue", reason: "the CPR number written to resident \(change.rowID) is not valid")
            }
        case ShelterSchema.children.name:
            guard sets("name") || sets("cpr") else { break }
            let stored = try String.fetchOne(db, sql: "SELECT resident FROM children WHERE id = ?", arguments: [change.rowID])
            let resident = change.values["resident"]?.textValue ?? stored
            if let resident, try Bool.fetchOne(db, sql: "SELECT anonymous FROM residents WHERE id = ?", arguments: [resident]) == true {
                return Refusal(code: "anonymity", reason: "child \(change.rowID) belongs to an anonymous stay: a name or CPR number is refused")
            }
            if let cpr = change.values["cpr"]?.textValue, !cpr.isEmpty, (try? CPRNumber(cpr)) == nil {
                return Refusal(code: "invalidValue", reason: "the CPR number written to child \(change.rowID) is not valid")
            }
        case ShelterSchema.decisions.name:
            // Eligibility decisions, required move-outs and their overturning: a leader's alone.
            if let refusal = try requireLeader(db, change, for: "a decision") { return refusal }
        case ShelterSchema.complaints.name:
            if let status = change.values["status"]?.textValue, status == "upheld" || status == "maintained",
               let refusal = try requireLeader(db, change, for: "a complaint's reconsideration") {
                return refusal
            }
        case ShelterSchema.stays.name:
            if let status = change.values["status"], !status.isNull, Stay.Status(rawValue: status.textValue ?? "") == nil {
                return Refusal(code: "invalidValue", reason: "stay \(change.rowID): status is not one of awaitingRoom, active, discharged")
            }
        default:
            break
        }
        return nil
    }

    /// The author's role as the server's own staff table has it.
    static func requireLeader(_ db: Database, _ change: CellChange, for what: String) throws -> Refusal? {
        let role = try String.fetchOne(db, sql: "SELECT role FROM staff WHERE id = ?", arguments: [Roles.staffID(change.author)])
        guard role == StaffRole.leader.rawValue else {
            return Refusal(code: "notPermitted", reason: "only a leader may record \(what); the author of change \(change.dot.counter) is \(role ?? "not registered as staff")")
        }
        return nil
    }
}
