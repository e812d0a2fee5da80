import ArgumentParser
import ClientKit
import Foundation
import ShelterDomain
#if canImport(Glibc)
import Glibc
#endif

/// Erasure cannot be undone: on a terminal she types `yes`; without one, `--yes` says it.
func confirmErasure(_ question: String, yes: Bool) throws {
    if yes { return }
    guard isatty(STDIN_FILENO) != 0 else {
        printError(t("erase.needYes"))
        throw ExitCode(1)
    }
    FileHandle.standardError.write(Data("\(question)\nThis cannot be undone. Type yes to erase: ".utf8))
    guard readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
        printError(t("erase.notConfirmed"))
        throw ExitCode(1)
    }
}

func erasureJSON(_ erasure: ErasureRecord) -> JSON {
    .object([("resident", .string(erasure.resident)), ("erasedAt", .string(erasure.erasedAt)),
             ("erasedBy", .string(erasure.erasedBy)), ("reason", .string(erasure.reason.rawValue))])
}

struct Erase: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "erase", 
        abstract: t("help.Erase.abstract"),
        discussion: t("help.Erase.discussion"))

    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.residentID"))) var resident: String
    @Flag(help: ArgumentHelp(t("help.eraseYes"))) var yes = false

    func run() throws {
        let replica = try reportingErrors { try options.openUnlocked() }
        let record = try reportingErrors { try replica.resident(resident) }
        if let erasure = record.erasure {
            printError(t("erase.already", ("resident", record.id.prefix(8)), ("at", LocalTime.dateTime(stored: erasure.erasedAt)), ("by", erasure.erasedBy)))
            throw ExitCode(1)
        }
        let who = (record.anonymous ? record.alias : record.name ?? record.alias) ?? t("resident.noName")
        try confirmErasure("Erase resident \(record.id.prefix(8)) (\(who)), her \(record.children.count) child\(record.children.count == 1 ? "" : "ren") and the personal data of her \(record.stays.count) stay\(record.stays.count == 1 ? "" : "s")?", yes: yes)
        let id = try reportingErrors { try replica.erase(resident: record.id, by: try options.session()) }
        print(t("erase.done", ("resident", id.prefix(8))))
    }
}

struct Retention: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retention", 
        abstract: t("help.Retention.abstract"),
        discussion: t("help.Retention.discussion"),
        subcommands: [List.self, EraseDue.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: t("help.Retention.List.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

        func run() throws {
            let (years, due) = try reportingErrors { try options.openUnlocked().retentionDue() }
            if json {
                printJSON(.object([
                    ("retentionYears", .int(Int64(years))),
                    ("residents", .array(due.map { .object([("resident", .string($0.resident)), ("display", .string($0.display)),
                                                           ("lastDischargedAt", .string($0.lastDischargedAt))]) })),
                ]))
                return
            }
            guard !due.isEmpty else {
                print(tn("retention.none", years))
                return
            }
            print(tn("retention.heading", years))
            for entry in due {
                print("  \(entry.resident.prefix(8))  \(entry.display ?? "-")  " + t("retention.discharged", ("at", LocalTime.dateTime(stored: entry.lastDischargedAt))))
            }
        }
    }

    struct EraseDue: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "erase", abstract: t("help.Retention.EraseDue.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.eraseYes"))) var yes = false

        func run() throws {
            let replica = try reportingErrors { try options.openUnlocked() }
            let (years, due) = try reportingErrors { try replica.retentionDue() }
            guard !due.isEmpty else {
                print(tn("retention.nothing", years))
                return
            }
            try confirmErasure("Erase \(due.count) resident\(due.count == 1 ? "" : "s") whose last stay ended more than \(years) years ago?", yes: yes)
            let ids = try reportingErrors { try replica.erase(residents: due.map(\.resident), reason: .retention, by: try options.session()) }
            print(tn("retention.erased", ids.count))
        }
    }
}

struct Settings: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "settings", 
        abstract: t("help.Settings.abstract"),
        subcommands: [Show.self, Set.self],
        defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: t("help.Settings.Show.abstract"))
        @OptionGroup var options: ReplicaOptions
        @Flag(help: ArgumentHelp(t("help.json"))) var json = false

        func run() throws {
            let replica = try reportingErrors { try options.open() }
            let stored = try reportingErrors { try replica.settings() }
            let years = try reportingErrors { try replica.retentionYears() }
            if json {
                printJSON(.object([(Erasure.retentionSetting, .int(Int64(years))), ("language", .string(stored["language"] ?? Language.da.rawValue)),
                                   ("name", .string(stored["name"])), ("address", .string(stored["address"]))]))
                return
            }
            let standard = " " + t("settings.default")
            print("\(Erasure.retentionSetting)  \(years)\(stored[Erasure.retentionSetting] == nil ? standard : "")")
            print("language        \(stored["language"] ?? "da")\(stored["language"] == nil ? standard : "")")
            print("name            \(stored["name"] ?? t("settings.unset"))")
            print("address         \(stored["address"] ?? t("settings.unset"))")
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: t("help.Settings.Set.abstract"),
            discussion: "Settings: " + Replica.knownSettings.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
        @OptionGroup var options: ReplicaOptions
        @Argument(help: ArgumentHelp(t("help.Settings.Set.pairs"))) var pairs: [String]

        func run() throws {
            var values: [(key: String, value: String)] = []
            for pair in pairs {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    printError(t("settings.notPair", ("pair", pair)))
                    throw ExitCode(1)
                }
                values.append((String(pair[..<equals]), String(pair[pair.index(after: equals)...])))
            }
            try reportingErrors { try options.open().setSettings(values, by: try options.session()) }
            for (key, value) in values { print("\(key) = \(value)") }
        }
    }
}
