import ArgumentParser
import ClientKit
import Foundation
import ShelterDomain
import SyncCore
#if canImport(Glibc)
import Glibc
#endif

/// Passphrases come from a file (its first line) or the terminal, never from argv or the
/// environment, and are never printed.
enum Passphrase {
    static func read(file: String?, prompt: String, confirm: Bool) throws -> String {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                printError(t("passphrase.unreadable", ("file", file)))
                throw ExitCode(1)
            }
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return line.hasSuffix("\r") ? String(line.dropLast()) : line
        }
        let first = try ask("\(prompt): ")
        if confirm {
            let again = try ask("Again: ")
            guard again == first else {
                printError(t("passphrase.differ"))
                throw ExitCode(1)
            }
        }
        return first
    }

    /// Reads one line from the terminal with echo off.
    static func ask(_ prompt: String) throws -> String {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard tty >= 0 else {
            printError(t("passphrase.noTerminal"))
            throw ExitCode(1)
        }
        defer { close(tty) }
        // Echo off before the prompt shows: what she types after seeing it is never echoed (nor
        // flushed away by the switch).
        var saved = termios()
        let isTerminal = tcgetattr(tty, &saved) == 0
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        if isTerminal { tcsetattr(tty, TCSAFLUSH, &silent) }
        defer {
            if isTerminal { tcsetattr(tty, TCSANOW, &saved) }
            _ = "\n".withCString { write(tty, $0, 1) }
        }
        _ = prompt.withCString { write(tty, $0, strlen($0)) }
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(tty, &byte, 1) == 1, byte != UInt8(ascii: "\n") { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The path of the running `shelter` binary (the agent is the same program).
func shelterExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if count > 0 { return String(cString: Array(buffer[0..<count]) + [0]) }
    return CommandLine.arguments[0]
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "login", 
        abstract: t("help.Login.abstract"),
        discussion: t("help.Login.discussion"))
    @OptionGroup var options: ReplicaOptions
    @Argument(help: ArgumentHelp(t("help.herName"))) var name: String
    @Option(help: ArgumentHelp(t("help.Login.passphraseFile"), valueName: "file")) var passphraseFile: String?
    @Option(help: ArgumentHelp(t("help.Login.idle"), valueName: "minutes")) var idle: Int = 15

    func validate() throws {
        guard (1...720).contains(idle) else { throw ValidationError(t("err.SessionCommands.103", ("p1", idle))) }
    }

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        let passphrase = try Passphrase.read(file: passphraseFile, prompt: "Passphrase for \(name)", confirm: false)
        let (keys, member) = try reportingErrors { try replica.unlock(name: name, passphrase: passphrase) }
        let path = LoginAgent.canonicalPath(replica.path)
        let info = AgentSessionInfo(staff: member.id, name: member.name, replica: replica.id.description, replicaPath: path,
                                    idleSeconds: idle * 60, expiresAt: Date().addingTimeInterval(Double(idle * 60)))
        try reportingErrors { try LoginAgent.start(executable: shelterExecutable(), info: info, keys: keys) }
        print(t("login.done", ("name", member.name), ("role", member.role?.word ?? "?"), ("minutes", idle)))
        // A leader's first login makes the shelter key (when this replica knows none) and gives it
        // to every member of staff who lacks it.
        if member.role == .leader, let session = try? LoginAgent.connect(replica: replica.id, replicaPath: replica.path) {
            if try reportingErrors({ try replica.createShelterKeyIfNone(by: session) }) {
                print(t("login.madeKey"))
            } else if let granted = try? replica.grantMissingKeys(by: session), granted > 0 {
                print(tn("sync.granted", granted))
            }
        }
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: t("help.Logout.abstract"))
    @OptionGroup var options: ReplicaOptions

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        guard let session = try reportingErrors({ try LoginAgent.connect(replica: replica.id, replicaPath: replica.path) }) else {
            print(t("logout.nobody"))
            return
        }
        try reportingErrors { try session.logout() }
        print(t("logout.done", ("name", session.info.name)))
    }
}

struct Whoami: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: t("help.Whoami.abstract"))
    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let replica = try reportingErrors { try options.open() }
        guard let session = try reportingErrors({ try LoginAgent.connect(replica: replica.id, replicaPath: replica.path) }) else {
            printError(t("whoami.nobody"))
            throw ExitCode(1)
        }
        let member = try reportingErrors { try replica.staffMember(session.info.staff) }
        let role = member?.role?.rawValue
        if json {
            printJSON(.object([("staff", .string(session.info.staff)), ("role", .string(role)), ("replica", .string(replica.id.description)),
                               ("expiresAt", .string(Timestamp.format(session.info.expiresAt)))]))
        } else {
            print(t("whoami.done", ("name", session.info.name), ("role", member?.role?.word ?? "?"), ("until", LocalTime.dateTime(session.info.expiresAt))))
        }
    }
}

struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "passwd", abstract: t("help.Passwd.abstract"))
    @OptionGroup var options: ReplicaOptions
    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp(t("help.Passwd.old"), valueName: "file")) var old: String?
    @Option(name: .customLong("new-passphrase-file"), help: ArgumentHelp(t("help.Passwd.new"), valueName: "file")) var new: String?

    func run() throws {
        let session = try reportingErrors { try options.session() }
        let current = try Passphrase.read(file: old, prompt: "Current passphrase", confirm: false)
        let next = try Passphrase.read(file: new, prompt: "New passphrase", confirm: true)
        try reportingErrors { try options.open().changePassphrase(old: current, new: next, by: session) }
        print(t("passwd.done", ("name", session.info.name)))
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", 
        abstract: t("help.Verify.abstract"),
        discussion: t("help.Verify.discussion"))
    @OptionGroup var options: ReplicaOptions
    @Flag(help: ArgumentHelp(t("help.json"))) var json = false

    func run() throws {
        let report = try reportingErrors { try options.open().verify() }
        printVerify(report, json: json)
        if !report.invalid.isEmpty { throw ExitCode(1) }
    }
}

func printVerify(_ report: VerifyReport, json: Bool) {
    if json {
        printJSON(.object([("transactions", .int(Int64(report.transactions))), ("verified", .int(Int64(report.verified))),
                           ("erasedUnchecked", .int(Int64(report.erasedUnchecked))),
                           ("beforeSnapshot", .int(Int64(report.beforeSnapshot))),
                           ("snapshot", report.snapshot.map { .object([("position", .int($0.position)), ("rows", .int(Int64($0.rows))),
                                                                        ("at", .string(Timestamp.format(Date(timeIntervalSince1970: Double($0.takenAt) / 1000)))),
                                                                        ("valid", .bool($0.valid))]) } ?? .null),
                           ("invalid", .array(report.invalid.map { .object([("replica", .string($0.replica)), ("counter", .int(Int64($0.counter))), ("reason", .string($0.reason))]) }))]))
        return
    }
    print(t("verify.summary", ("transactions", report.transactions), ("verified", report.verified), ("invalid", report.invalid.count))
          + (report.erasedUnchecked > 0 ? t("verify.erasedUnchecked", ("n", report.erasedUnchecked)) : "")
          + (report.beforeSnapshot > 0 ? t("verify.beforeSnapshot", ("n", report.beforeSnapshot)) : ""))
    if let snapshot = report.snapshot {
        let at = LocalTime.dateTime(stored: Timestamp.format(Date(timeIntervalSince1970: Double(snapshot.takenAt) / 1000)))
        print(t(snapshot.valid ? "verify.snapshotValid" : "verify.snapshotInvalid", ("position", snapshot.position), ("rows", Int(snapshot.rows)), ("at", at)))
    }
    for invalid in report.invalid { print("  \(invalid.replica):\(invalid.counter)  \(invalid.reason)") }
}

/// The login agent (started by `shelter login`; not for staff to run).
struct Agent: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: t("help.Agent.abstract"), shouldDisplay: false)

    func run() throws {
        let status = LoginAgent.serve()
        if status != 0 { throw ExitCode(status) }
    }
}
