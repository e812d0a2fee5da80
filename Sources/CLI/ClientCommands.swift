import ArgumentParser
import ClientKit
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif
import ShelterDomain
import SyncCore

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", 
        abstract: t("help.Init.abstract"),
        discussion: t("help.Init.discussion"))

    @OptionGroup var options: ReplicaOptions

    @Option(help: ArgumentHelp(t("help.Init.rooms")))
    var rooms: Int?

    @Option(help: ArgumentHelp(t("help.Init.bundle"), valueName: "file"))
    var bundle: String?

    @Option(help: ArgumentHelp(t("help.Init.server"), valueName: "host:port"))
    var server: String?

    @Option(help: ArgumentHelp(t("help.Init.leader"), valueName: "name"))
    var leader: String?

    @Option(help: ArgumentHelp(t("help.Init.passphraseFile"), valueName: "file"))
    var passphraseFile: String?

    func validate() throws {
        if bundle == nil && leader == nil { throw ValidationError(t("v.needsLeader")) }
        if bundle != nil && leader != nil { throw ValidationError(t("v.noLeader")) }
        if let rooms, !(1...999).contains(rooms) { throw ValidationError(t("v.rooms", ("rooms", rooms))) }
        if (bundle == nil) != (server == nil) { throw ValidationError(t("v.bundleServer")) }
        if bundle != nil && rooms != nil { throw ValidationError(t("v.noRooms")) }
    }

    /// How long the first sync waits for the server to accept the connection: an offline
    /// workstation is set up without a long wait.
    static let firstSyncConnectTimeout: TimeAmount = .seconds(3)

    func run() async throws {
        let path = try options.replicaPath
        let replica = try reportingErrors {
            if let bundle, let server {
                guard let data = FileManager.default.contents(atPath: bundle) else {
                    throw ReplicaError(.invalidArgument, t("err.ClientCommands.104", ("p1", bundle)))
                }
                return try Replica.create(at: path, bundlePEM: String(decoding: data, as: UTF8.self), bundleSource: bundle,
                                          server: server, configuration: options.configuration)
            }
            let passphrase = try Passphrase.read(file: passphraseFile, prompt: "Passphrase for \(leader ?? "")", confirm: true)
            return try Replica.create(at: path, rooms: rooms ?? 9, leader: leader ?? "", passphrase: passphrase, configuration: options.configuration)
        }
        // stdout holds the replica id alone (scripts read it); what the first sync did goes to stderr.
        print(replica.id)
        guard let server else { return }
        do {
            _ = try await Sync.session(of: replica, connectTimeout: Self.firstSyncConnectTimeout)
            let rooms = (try? replica.roomBoard().rooms.count) ?? 0
            let staff = (try? replica.staff().count) ?? 0
            printNote(t("init.synced", ("server", server), ("rooms", rooms), ("staff", staff)))
        } catch {
            // The replica is made; the sync is only late. The reason (never personal data) is said.
            let reason = (error as? ReplicaError)?.message ?? "\(error)"
            let offline = ["unreachable", "timeout"].contains((try? replica.syncState().lastErrorCode) ?? nil)
            printNote(t(offline ? "init.offline" : "init.syncFailed", ("server", server), ("reason", reason)))
        }
    }
}

struct Rooms: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rooms", 
        abstract: t("help.Rooms.abstract"),
        subcommands: [List.self, Set.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: t("help.Rooms.List.abstract"),
            discussion: t("help.Rooms.List.discussion"))

        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

        func run() throws {
            let board = try reportingErrors { try options.openWithAnySession().roomBoard() }
            if json {
                printJSON(.object([
                    ("capacity", .int(board.capacity)),
                    ("occupied", .int(board.occupied)),
                    ("rooms", .array(board.rooms.map { room in
                        .object([
                            ("number", .int(room.number)),
                            ("status", .string(room.status.rawValue)),
                            ("stay", .string(room.stay)),
                            ("resident", .string(room.resident)),
                            ("children", .int(room.children)),
                        ])
                    })),
                ]))
                return
            }
            var table = TextTable(header: [t("col.room"), t("col.status"), t("col.stay"), t("col.resident"), t("col.children")], rightAligned: [0, 4])
            for room in board.rooms {
                table.add([String(room.number), Words.roomStatus(room.status), room.stay.map { String($0.prefix(8)) } ?? "",
                           room.resident.map(Words.display) ?? "", room.status == .occupied ? String(room.children) : ""])
            }
            print(table.text)
            print(t("rooms.occupied", ("occupied", board.occupied), ("capacity", board.capacity)))
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: t("help.Rooms.Set.abstract"))

        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.roomNumber"))) var room: Int
        @Flag(exclusivity: .exclusive, help: ArgumentHelp(t("help.Rooms.Set.state"))) var state: RoomState

        enum RoomState: EnumerableFlag { case outOfService, inService }

        func run() throws {
            try reportingErrors { try options.open().setRoom(room, inService: state == .inService, by: try options.session()) }
            print(t(state == .inService ? "rooms.inService" : "rooms.outOfService", ("room", room)))
        }
    }
}

struct Admit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admit", 
        abstract: t("help.Admit.abstract"),
        discussion: t("help.Admit.discussion"))

    @OptionGroup var options: ReplicaOptions

    @Flag(help: ArgumentHelp(t("help.Admit.anonymous"))) var anonymous = false
    @Option(help: ArgumentHelp(t("help.Admit.alias"))) var alias: String?
    @Option(help: ArgumentHelp(t("help.Admit.name"))) var name: String?
    @Option(help: ArgumentHelp(t("help.Admit.cpr"), valueName: "cpr")) var cpr: String?
    @Option(help: ArgumentHelp(t("help.Admit.municipality"))) var municipality: String
    @Flag(help: ArgumentHelp(t("help.Admit.documented"))) var documented = false
    @Option(name: .customLong("child"), help: ArgumentHelp(t("help.Admit.children"), valueName: "name[:cpr]"))
    var children: [String] = []
    @Option(name: .customLong("child-alias"), help: ArgumentHelp(t("help.Admit.childAliases"), valueName: "alias"))
    var childAliases: [String] = []
    @Option(help: ArgumentHelp(t("help.Admit.reason"))) var reason: String?
    @Option(help: ArgumentHelp(t("help.Admit.room"))) var room: Int?
    @Option(help: ArgumentHelp(t("help.Admit.at"), valueName: "iso8601")) var at: String?
    @Flag(help: ArgumentHelp(t("help.Admit.anyway"))) var anyway = false
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func validate() throws {
        if anonymous {
            if name != nil { throw ValidationError(t("v.anonymousName")) }
            if cpr != nil { throw ValidationError(t("v.anonymousCPR")) }
            if !children.isEmpty { throw ValidationError(t("v.anonymousChildren")) }
            if alias == nil { throw ValidationError(t("v.anonymousAlias")) }
        } else if name == nil && alias == nil {
            throw ValidationError(t("v.giveName"))
        }
    }

    func run() throws {
        let arrived = try timestamp(at)
        let kids = children.map { spec -> Admission.Child in
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            return Admission.Child(name: parts.first, cpr: parts.count > 1 ? parts[1] : nil)
        } + childAliases.map { Admission.Child(alias: $0) }
        var admission = Admission(anonymous: anonymous, name: name, cpr: cpr, alias: alias, municipality: municipality,
                                  documented: documented, children: kids, reason: reason, room: room, admittedAt: arrived)
        admission.admitAgain = anyway
        let replica = try reportingErrors { try options.open() }
        let result: Admission.Result
        do {
            result = try replica.admit(admission, by: try options.session())
        } catch let error as ReplicaError where error.code == .alreadyStaying && isatty(STDIN_FILENO) != 0 {
            // Staff decide: the same woman again (the first stay may be ending), or a mistyped number.
            FileHandle.standardError.write(Data("\(error.message.replacingOccurrences(of: t("common.nothingWritten"), with: "")) [\(t("common.yes"))/\(t("common.no"))] ".utf8))
            guard let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased(), ["yes", "ja", "j", "y"].contains(answer) else {
                printError(t("admit.notAdmitted"))
                throw ExitCode(1)
            }
            admission.admitAgain = true
            result = try reportingErrors { try replica.admit(admission, by: try options.session()) }
        } catch let error as ReplicaError where error.code == .alreadyStaying {
            printError(error.message + t("admit.addAnyway"))
            throw ExitCode(1)
        } catch {
            result = try reportingErrors { throw error }
        }
        if json {
            printJSON(.object([("stay", .string(result.stay)), ("resident", .string(result.resident)), ("room", .int(result.room)),
                               ("notification", .string(result.notification))]))
        } else {
            print(t("admit.done", ("stay", result.stay), ("resident", result.resident),
                    ("room", result.room.map { t("admit.room", ("room", $0)) } ?? t("admit.awaitingRoom"))))
            if let notification = try? replica.notifications(pendingOnly: true).first(where: { $0.id == result.notification }) {
                print(t("admit.notification", ("id", notification.id.prefix(8)), ("municipality", Replica.municipalityWords(notification.municipality)),
                        ("due", LocalTime.date(notification.due))))
            }
        }
    }
}

struct Assign: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "assign", abstract: t("help.Assign.abstract"))

    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
    @Argument(help: ArgumentHelp(t("help.roomNumber"))) var room: Int

    func run() throws {
        let id = try reportingErrors { try options.open().assign(stay: stay, room: room, by: try options.session()) }
        print(t("assign.done", ("stay", id), ("room", room)))
    }
}

struct Discharge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "discharge", abstract: t("help.Discharge.abstract"))

    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.stayID"))) var stay: String
    @Option(help: ArgumentHelp(t("help.Discharge.reason"))) var reason: String
    @Option(help: ArgumentHelp(t("help.Discharge.at"), valueName: "iso8601")) var at: String?

    func run() throws {
        let left = try timestamp(at)
        let id = try reportingErrors { try options.open().discharge(stay: stay, reason: reason, at: left, by: try options.session()) }
        print(t("discharge.done", ("stay", id)))
    }
}

struct Stays: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stays", abstract: t("help.Stays.abstract"))

    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.Stays.all"))) var all = false
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let stays = try reportingErrors { try options.openUnlocked().stays(includeDischarged: all) }
        if json {
            printJSON(.object([("stays", .array(stays.map(stayJSON)))]))
            return
        }
        var table = TextTable(header: [t("col.stay"), t("col.resident"), t("col.name"), t("col.room"), t("col.status"), t("col.admitted"), t("col.children")],
                              rightAligned: [3, 6])
        for stay in stays {
            table.add([String(stay.id.prefix(8)), String(stay.resident.prefix(8)),
                       Words.display(stay.display) + (stay.anonymous ? " (\(t("word.anonymous")))" : ""), stay.room.map(String.init) ?? "-",
                       Words.stayStatus(stay.status), LocalTime.dateTime(stored: stay.admittedAt), String(stay.children)])
        }
        print(table.text)
    }
}

func stayJSON(_ stay: StaySummary) -> JSON {
    .object([
        ("id", .string(stay.id)),
        ("resident", .string(stay.resident)),
        ("display", .string(stay.display)),
        ("anonymous", .bool(stay.anonymous)),
        ("room", .int(stay.room)),
        ("status", .string(stay.status.rawValue)),
        ("admittedAt", .string(stay.admittedAt)),
        ("dischargedAt", .string(stay.dischargedAt)),
        ("children", .int(stay.children)),
    ])
}

struct ResidentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resident",
        abstract: t("help.ResidentCommand.abstract"),
        subcommands: [Show.self, SetFields.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: t("help.ResidentCommand.Show.abstract"))

        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.residentID"))) var resident: String
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

        func run() throws {
            let record = try reportingErrors { try options.openUnlocked().resident(resident) }
            if json {
                printJSON(.object([
                    ("id", .string(record.id)),
                    ("anonymous", .bool(record.anonymous)),
                    ("name", .string(record.name)),
                    ("cpr", .string(record.cpr)),
                    ("alias", .string(record.alias)),
                    ("municipality", .string(record.municipality)),
                    ("municipalityCode", .int(Municipality.stored(record.municipality)?.code)),
                    ("documented", .bool(record.documented)),
                    ("phone", .string(record.phone)),
                    ("language", .string(record.language)),
                    ("interpreter", .bool(record.interpreter)),
                    ("notes", .string(record.notes)),
                    ("children", .array(record.children.map { child in
                        .object([("id", .string(child.id)), ("name", .string(child.name)), ("cpr", .string(child.cpr)), ("alias", .string(child.alias))])
                    })),
                    ("stays", .array(record.stays.map(stayJSON))),
                    ("erasure", record.erasure.map(erasureJSON) ?? .null),
                ]))
                return
            }
            func line(_ key: String, _ value: String?) { print(t(key).padding(toLength: 14, withPad: " ", startingAt: 0) + (value ?? "-")) }
            line("field.resident", record.id)
            if let erasure = record.erasure {
                line("field.erased", t("resident.erased", ("at", LocalTime.dateTime(stored: erasure.erasedAt)), ("by", erasure.erasedBy), ("reason", erasure.reason.rawValue)))
            }
            line("field.anonymous", Words.yes(record.anonymous))
            if !record.anonymous {
                line("field.name", record.name)
                line("field.cpr", record.cpr)
            }
            line("field.alias", record.alias)
            line("field.municipality", record.municipality.map { stored in
                Replica.municipalityWords(stored) + (Municipality.stored(stored).map { " (\($0.code))" } ?? "")
            })
            line("field.documented", Words.yes(record.documented))
            line("field.phone", record.phone)
            line("field.language", record.language)
            line("field.interpreter", Words.yes(record.interpreter))
            line("field.notes", record.notes)
            for child in record.children {
                line("field.child", [child.name ?? child.alias ?? t("resident.noName"), child.cpr].compactMap { $0 }.joined(separator: ", ") + " (\(child.id.prefix(8)))")
            }
            for stay in record.stays {
                line("field.stay", t("resident.stayLine", ("stay", stay.id.prefix(8)), ("status", Words.stayStatus(stay.status)),
                                     ("room", stay.room.map(String.init) ?? "-"), ("admitted", LocalTime.dateTime(stored: stay.admittedAt))))
            }
        }
    }

    struct SetFields: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: t("help.ResidentCommand.SetFields.abstract"),
            discussion: t("help.ResidentCommand.SetFields.discussion"))

        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.residentID"))) var resident: String
        @Argument(help: ArgumentHelp(t("help.fieldValuePairs"), valueName: "field=value")) var assignments: [String]

        func validate() throws {
            if assignments.isEmpty { throw ValidationError(t("v.oneField")) }
            for assignment in assignments where !assignment.contains("=") {
                throw ValidationError(t("v.notPair", ("text", assignment.split(separator: "=").first ?? "")))
            }
        }

        func run() throws {
            let fields = assignments.map { assignment -> (field: String, value: String) in
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
            let replica = try reportingErrors { try options.open() }
            try reportingErrors { try replica.setResident(resident, fields: fields, by: try options.session()) }
            print(t("resident.updated", ("fields", fields.map(\.field).joined(separator: ", "))))
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: t("help.Status.abstract"))

    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        let status = try reportingErrors { try replica.status() }
        let certificate = try reportingErrors { try replica.certificate() }
        if json {
            printJSON(.object([
                ("replica", .string(status.replica)),
                ("unsynced", .int(status.unsynced)),
                ("lastSync", .string(status.lastSync)),
                ("server", .string(status.server)),
                ("rejected", .int(status.rejected)),
                ("lastError", status.lastError.map { .object([("code", .string($0.code)), ("message", .string($0.message)), ("at", .string($0.at))]) } ?? .null),
                ("certificateExpires", .string(certificate.map { Timestamp.format($0.notValidAfter) })),
                ("keyRotationDue", .bool(status.keyRotationDue)),
            ]))
            return
        }
        func line(_ key: String, _ value: String) { print(t(key).padding(toLength: 11, withPad: " ", startingAt: 0) + value) }
        line("status.replica", status.replica)
        line("status.unsynced", tn("status.changes", status.unsynced))
        if status.rejected > 0 { line("status.rejected", tn("status.rejectedChanges", status.rejected)) }
        line("status.lastSync", status.lastSync.map { LocalTime.dateTime(stored: $0) } ?? t("status.never"))
        if let error = status.lastError { line("status.lastError", "\(LocalTime.dateTime(stored: error.at)): \(error.message)") }
        line("status.server", status.server ?? t("status.standalone"))
        if status.keyRotationDue { line("status.key", t("status.keyRetired")) }
        if let certificate {
            let days = Int(certificate.notValidAfter.timeIntervalSinceNow / 86_400)
            print(t("status.certificate", ("date", LocalTime.dateTime(certificate.notValidAfter))) + (days < 30 ? t("status.renewSoon") : ""))
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", 
        abstract: t("help.History.abstract"),
        discussion: t("help.History.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.History.id"))) var id: String?
    @Flag(help: ArgumentHelp(t("help.History.showPersonal"))) var showPersonal = false
    @Option(help: ArgumentHelp(t("help.History.limit"))) var limit: Int?
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let (entries, begins) = try reportingErrors {
            let replica = try showPersonal ? options.openUnlocked() : options.open()
            return (try replica.history(of: id, limit: limit ?? .max, showPersonal: showPersonal), try replica.historyBegins())
        }
        if json {
            printJSON(.object([("snapshot", begins.map { .object([("position", .int($0.position)), ("at", .string($0.at))]) } ?? .null),
                               ("changes", .array(entries.map { entry in
                .object([
                    ("at", .string(entry.at)),
                    ("author", .string(entry.author)),
                    ("replica", .string(entry.replica)),
                    ("counter", .int(Int64(entry.counter))),
                    ("table", .string(entry.table)),
                    ("row", .string(entry.row)),
                    ("columns", .object(entry.columns.map { column in
                        (column.name, column.value == Replica.erasedMark ? .string(Replica.erasedMark)
                            : column.personal && !showPersonal ? .string("(personal)") : .string(column.value))
                    })),
                    ("state", .string(entry.state)),
                    ("rejection", .string(entry.rejection)),
                    ("erased", .bool(entry.erased)),
                ])
            }))]))
            return
        }
        for entry in entries {
            let columns = entry.columns.map { column in
                "\(column.name)=" + (column.value == Replica.erasedMark ? t("history.erased")
                    : column.personal && !showPersonal ? t("history.personal") : column.value ?? "null")
            }.joined(separator: " ")
            let refused = entry.rejection.map { "  \(t("history.refused")) \($0)" } ?? ""
            print("\(LocalTime.dateTime(stored: entry.at))  \(entry.author)  \(entry.replica.prefix(8)):\(entry.counter)  \(entry.table) \(entry.row.prefix(8))  \(columns)\(refused)")
        }
        // Newest first: where the local history begins comes last, when the list reached it.
        if let begins, limit == nil || entries.count < limit! {
            print(t("history.begins", ("position", begins.position), ("at", LocalTime.dateTime(stored: begins.at))))
        }
    }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync", 
        abstract: t("help.Sync.abstract"),
        discussion: t("help.Sync.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.Sync.pushOnly")))
    var pushOnly = false
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() async throws {
        let replica = try reportingErrors { try options.open() }
        let (report, granted, rotated) = try await reportingErrors { try await Self.session(of: replica, pull: !pushOnly) }
        show(report, granted: granted, rotated: rotated)
    }

    /// One sync as `shelter sync` makes it (also `shelter init`'s first): the session of whoever is
    /// logged in here, if anyone, re-signs what she wrote with a wrong clock; a leader's session
    /// then does the key work and sends it at once. Throws what `Replica.sync` throws.
    static func session(of replica: Replica, pull: Bool = true, connectTimeout: TimeAmount = .seconds(10)) async throws
        -> (report: SyncReport, granted: Int, rotated: Int) {
        // No session needed; when one is open here, what she wrote with a wrong clock is stamped again and signed again.
        let session = try? LoginAgent.connect(replica: replica.id, replicaPath: replica.path)
        var report = try await replica.sync(pull: pull, session: session ?? nil, connectTimeout: connectTimeout)
        // A leader's session gives the shelter key to staff who lack it (made by the admin, or
        // added where it was not known), wraps again the resident keys a removed member could open
        // (a removal made elsewhere), and sends those at once.
        // (A failure here does not fail the sync, which succeeded; it is said, and tried again at
        // the next sync.)
        func keyWork(_ what: String, _ body: () throws -> Int) -> Int {
            do { return try body() } catch {
                printError(t("sync.keyWorkFailed", ("what", what), ("error", (error as? ReplicaError)?.message ?? "\(error)")))
                return 0
            }
        }
        var granted = 0, rotated = 0
        if let session = session ?? nil {
            granted = keyWork(t("sync.grantWork")) { try replica.grantMissingKeys(by: session) }
            rotated = keyWork(t("sync.rotationWork")) { try replica.rewrapResidentKeys(by: session) }
        }
        if granted + rotated > 0, let session = session ?? nil {
            let more = try await replica.sync(pull: false, session: session, connectTimeout: connectTimeout)
            report.pushed += more.pushed
            report.rejected += more.rejected
        }
        return (report, granted, rotated)
    }

    /// Says what a sync did: refused changes on stderr, the report on stdout.
    func show(_ report: SyncReport, granted: Int, rotated: Int) {
        if report.rejected > 0 {
            printError(tn("sync.refused", report.rejected))
        }
        if json {
            printJSON(.object([
                ("pushed", .int(report.pushed)),
                ("pulled", .int(report.pulled)),
                ("conflicts", .int(report.conflicts)),
                ("cursor", .int(report.cursor)),
                ("durationMs", .int(report.durationMs)),
                ("recovered", .int(report.recovered)),
                ("resumedFrom", report.resumedFrom.map { .int($0) } ?? .null),
                ("restamped", .int(report.restamped)),
                ("rejected", .int(report.rejected)),
                ("snapshotRows", .int(report.snapshotRows)),
            ]))
        } else {
            if granted > 0 { print(tn("sync.granted", granted)) }
            if rotated > 0 { print(t("sync.rotated")) }
            if report.restamped > 0 { print(tn("sync.restamped", report.restamped)) }
            if report.snapshotRows > 0 { print(t("sync.snapshot", ("n", report.snapshotRows))) }
            if report.recovered > 0 || report.resumedFrom != nil {
                var healed = t("sync.restored")
                if report.recovered > 0 { healed += " " + tn("sync.gaveBack", report.recovered) + ";" }
                if let resumed = report.resumedFrom { healed += " " + t("sync.pulledAgain", ("position", resumed)) + ";" }
                print(String(healed.dropLast()))
            }
            print(tn("sync.summary", report.conflicts, ("pushed", report.pushed), ("pulled", report.pulled), ("cursor", report.cursor), ("ms", report.durationMs)))
        }
    }
}

struct Conflicts: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conflicts", 
        abstract: t("help.Conflicts.abstract"),
        subcommands: [List.self, Resolve.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: t("help.Conflicts.List.abstract"))

        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.Conflicts.List.all"))) var all = false
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

        func run() throws {
            // Names only to a session; without one, an alias or "log in to see the name".
            let details = try reportingErrors { try options.openWithAnySession().conflictDetails(includeResolved: all) }
            if json {
                printJSON(.object([("conflicts", .array(details.map { detail -> JSON in
                    let conflict = detail.conflict
                    return .object([
                        ("id", .string(conflict.id)),
                        ("kind", .string(conflict.kind.rawValue)),
                        ("table", .string(conflict.table)),
                        ("row", .string(conflict.row)),
                        ("column", .string(conflict.column)),
                        ("status", .string(conflict.status.rawValue)),
                        ("values", .array(conflict.candidates.enumerated().map { index, candidate -> JSON in
                            .object([
                                ("value", candidate.value.isNull ? .null : .string(candidate.value.description)),
                                ("author", .string(candidate.author)),
                                ("replica", .string(candidate.replica)),
                                ("at", .string(candidate.at)),
                                ("workstation", .string(detail.writers.indices.contains(index) ? Words.workstationName(detail.writers[index]) : nil)),
                            ])
                        })),
                        ("winner", .int(conflict.winner)),
                        ("suggestion", .int(conflict.suggestion)),
                        ("resident", .string(detail.resident)),
                        ("room", .int(detail.room)),
                    ])
                }))]))
                return
            }
            if details.isEmpty { print(t(all ? "conflicts.noneAtAll" : "conflicts.none")) }
            for detail in details {
                let conflict = detail.conflict
                let who = Words.who(detail.who)
                let subject: String
                switch conflict.kind {
                case .room:
                    let free = conflict.suggestion.map { t("conflicts.roomFree", ("room", $0)) } ?? t("conflicts.noRoomFree")
                    subject = detail.room.map { t("conflicts.room", ("room", $0), ("stay", conflict.row.prefix(8)), ("who", who), ("free", free)) }
                        ?? t("conflicts.roomUnknown", ("stay", conflict.row.prefix(8)), ("who", who), ("free", free))
                case .person:
                    subject = t("conflicts.person", ("stay", conflict.row.prefix(8)), ("who", who))
                case .field:
                    let field = Words.field(table: conflict.table, column: conflict.column ?? "")
                    if let resident = detail.resident {
                        let named = if case .named? = detail.who { true } else { false }
                        subject = t(named ? "conflicts.fieldOfResident" : "conflicts.fieldOfUnnamedResident",
                                    ("field", field), ("who", who), ("resident", resident.prefix(8)))
                    } else if let room = detail.room {
                        subject = t("conflicts.fieldOfRoom", ("field", field), ("room", room))
                    } else {
                        // A setting's or a rate's row id is its key or year: short, shown whole.
                        subject = t("conflicts.fieldOfRow", ("field", field), ("row", conflict.row.count > 12 ? String(conflict.row.prefix(8)) : conflict.row))
                    }
                }
                print("\(conflict.id.prefix(8))  \(Words.conflictStatus(conflict.status))  \(subject)")
                for (index, candidate) in conflict.candidates.enumerated() {
                    let mark = index == conflict.winner ? "*" : " "
                    let value: String
                    if conflict.kind == .field {
                        value = candidate.value.isNull ? t("conflicts.empty")
                            : candidate.value == .text(Replica.lockedMark) ? t("conflicts.locked") : candidate.value.description
                    } else {
                        let stay = candidate.value.textValue ?? candidate.value.description
                        value = t("conflicts.stay", ("stay", stay.prefix(8)), ("who", Words.who(detail.candidateWho.indices.contains(index) ? detail.candidateWho[index] : nil)))
                    }
                    let writer = detail.writers.indices.contains(index) ? detail.writers[index] : .unknown
                    print("  \(mark)[\(index)] " + t("conflicts.candidate", ("value", value), ("author", candidate.author),
                                                     ("at", LocalTime.dateTime(stored: candidate.at)),
                                                     ("workstation", Words.writer(writer, replica: candidate.replica))))
                }
            }
            if details.contains(where: { $0.conflict.winner != nil }) { print(t("conflicts.legend")) }
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resolve", 
            abstract: t("help.Conflicts.Resolve.abstract"),
            discussion: t("help.Conflicts.Resolve.discussion"))

        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.Conflicts.Resolve.id"))) var id: String
        @Option(help: ArgumentHelp(t("help.Conflicts.Resolve.keep"))) var keep: Int?
        @Option(help: ArgumentHelp(t("help.Conflicts.Resolve.value"))) var value: String?
        @Flag(help: ArgumentHelp(t("help.Conflicts.Resolve.merge"))) var merge = false

        func validate() throws {
            if [keep != nil, value != nil, merge].filter({ $0 }).count != 1 { throw ValidationError(t("v.oneResolution")) }
        }

        func run() throws {
            let replica = try reportingErrors { try options.openUnlocked() }
            try reportingErrors { try replica.resolveConflict(id, keep: keep, value: value, merge: merge, by: try options.session()) }
            print(t("conflict.resolved", ("id", id)))
        }
    }
}

struct SetServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-server",
        abstract: t("help.SetServer.abstract"),
        discussion: t("help.SetServer.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.SetServer.address"), valueName: "host:port")) var address: String

    func run() throws {
        let (old, new) = try reportingErrors { try options.open().setServer(address) }
        print(t("setServer.done", ("server", new)) + (old.map { $0 == new ? t("setServer.unchanged") : t("setServer.was", ("old", $0)) } ?? ""))
    }
}

struct Rescue: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rescue", 
        abstract: t("help.Rescue.abstract"),
        discussion: t("help.Rescue.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp(t("help.Rescue.from"), valueName: "old.replica")) var from: String
    @Flag(help: ArgumentHelp(t("help.Rescue.force"))) var force = false
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        let old = try reportingErrors { try Replica.open(at: from) }
        let report = try reportingErrors { try replica.rescue(from: old, force: force, by: try options.session()) }
        if json {
            printJSON(.object([
                ("from", .string(report.from.description)),
                ("rescued", .int(report.rescued)),
                ("alreadyOnServer", .int(report.alreadyOnServer)),
                ("rescuedBefore", .int(report.rescuedBefore)),
                ("refused", .int(report.refused)),
                ("leftOut", .array(report.leftOut.map { left in
                    .object([("changes", .array(left.changes.map { .int(Int($0.counter)) })), ("reason", .string(left.reason))])
                })),
            ]))
            return
        }
        print(tn("rescue.done", report.rescued, ("from", report.from), ("into", replica.id), ("already", report.alreadyOnServer),
                 ("before", report.rescuedBefore), ("refused", report.refused)))
        for left in report.leftOut {
            let counters = left.changes.map(\.counter)
            print(tn("rescue.leftOut", counters.count, ("first", counters.min() ?? 0), ("last", counters.max() ?? 0), ("reason", left.reason), ("path", from)))
        }
        if report.rescued > 0 { print(t("rescue.syncNext", ("path", replica.path))) }
    }
}

struct RenewIdentity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: t("help.RenewIdentity.abstract"),
        discussion: t("help.RenewIdentity.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp(t("help.RenewIdentity.bundle"), valueName: "file")) var bundle: String

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        guard let data = FileManager.default.contents(atPath: bundle) else {
            printError(t("bundle.unreadable", ("file", bundle)))
            throw ExitCode(1)
        }
        let installed = try reportingErrors { try replica.installBundle(pem: String(decoding: data, as: UTF8.self), source: bundle) }
        print(t("renew.done", ("serial", installed.serial), ("date", LocalTime.dateTime(installed.notValidAfter))))
    }
}
