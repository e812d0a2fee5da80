import ArgumentParser
import ClientKit
import ShelterDomain
import Foundation

@main
struct Shelter: AsyncParsableCommand {
    /// The language is chosen before the arguments are parsed, so that help and errors are in it:
    /// the workstation's SHELTER_LANG or LANG, else the shelter's `language` setting in the replica
    /// the command names, else Danish.
    static func main() async {
        Language.current = chosenLanguage(arguments: Array(CommandLine.arguments.dropFirst()))
        await main(nil)
    }

    static func chosenLanguage(arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> Language {
        if let language = Language.fromEnvironment(environment) { return language }
        var path = environment["SHELTER_REPLICA"]
        for (index, argument) in arguments.enumerated() {
            if argument == "--replica", index + 1 < arguments.count { path = arguments[index + 1] }
            if argument.hasPrefix("--replica=") { path = String(argument.dropFirst("--replica=".count)) }
        }
        if arguments.first == "server" { return .da }
        return path.flatMap { Replica.languageSetting(at: $0) } ?? .da
    }

    static let configuration = CommandConfiguration(
        commandName: "shelter",
        abstract: t("help.Shelter.abstract"),
        discussion: t("help.Shelter.discussion"),
        subcommands: [
            Init.self, Rooms.self, Admit.self, Assign.self, Discharge.self, Stays.self,
            ResidentCommand.self, Status.self, History.self, Sync.self, SetServer.self, Rescue.self, RenewIdentity.self, Conflicts.self,
            Login.self, Logout.self, Whoami.self, Passwd.self, Verify.self, Agent.self,
            StaffCommand.self, Decide.self, MoveOut.self, Notifications.self, Plan.self, StayCommand.self,
            ComplaintCommand.self, Complaints.self, Decisions.self, Rates.self, BillingCommand.self, Meetings.self, Due.self,
            Erase.self, Retention.self, Settings.self,
            ServerCommand.self,
        ])
}

/// Options every workstation command takes.
struct ReplicaOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(t("help.ReplicaOptions.replica"), valueName: "path"))
    var replica: String?

    var replicaPath: String {
        get throws {
            if let replica, !replica.isEmpty { return replica }
            if let path = ProcessInfo.processInfo.environment["SHELTER_REPLICA"], !path.isEmpty { return path }
            throw ValidationError(t("v.noReplica"))
        }
    }

    /// The session of the member of staff logged in on this replica (`shelter login`): every
    /// command that writes needs one; its changes are hers, signed by her key in the agent.
    func session() throws -> AgentSession {
        let replica = try Replica.open(at: try replicaPath)
        guard let session = try LoginAgent.connect(replica: replica.id, replicaPath: replica.path) else {
            throw ReplicaError(.notLoggedIn, t("login.first"))
        }
        return session
    }

    /// Test-only fault injection: with SHELTER_TEST_PAUSE_BEFORE_COMMIT=FILE, every action creates
    /// FILE inside its transaction and then waits there, so a test can kill -9 the process mid-write.
    var configuration: Replica.Configuration {
        var configuration = Replica.Configuration()
        if let marker = ProcessInfo.processInfo.environment["SHELTER_TEST_PAUSE_BEFORE_COMMIT"], !marker.isEmpty {
            configuration.beforeCommit = {
                _ = FileManager.default.createFile(atPath: marker, contents: nil)
                sleep(60)
            }
        }
        return configuration
    }

    func open() throws -> Replica {
        let replica = try Replica.open(at: try replicaPath, configuration: configuration)
        if let warning = try? replica.clockWarning() {
            FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
        }
        return replica
    }

    /// The replica opened for a command that shows personal data: only to a session (its keys
    /// open the records); without one, "log in first" and nothing is shown.
    func openUnlocked() throws -> Replica {
        let replica = try open()
        guard let session = try LoginAgent.connect(replica: replica.id, replicaPath: replica.path) else {
            throw ReplicaError(.notLoggedIn, t("login.firstPersonal"))
        }
        replica.useSession(session)
        return replica
    }

    /// The replica opened with the session if there is one (a command that shows personal data
    /// only when someone is logged in, such as the room board's names).
    func openWithAnySession() throws -> Replica {
        let replica = try open()
        if let session = try? LoginAgent.connect(replica: replica.id, replicaPath: replica.path) { replica.useSession(session) }
        return replica
    }
}

/// Runs a command body, printing a library error as one clear line on stderr with exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ReplicaError {
        printError(error.message)
        throw ExitCode(1)
    } catch let error as DomainError {
        printError(error.message)
        throw ExitCode(1)
    }
}

func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ReplicaError {
        printError(error.message)
        throw ExitCode(1)
    }
}

/// An `--at` value: nil when not given; a clear error and exit 1 when it is not a time.
func timestamp(_ text: String?) throws -> Date? {
    try text.map { text in try reportingErrors { try Replica.checkedTimestamp(text) } }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("\(t("common.error")): \(message)\n".utf8))
}

/// A line for the person at the terminal that is not the command's output (which scripts read).
func printNote(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}

func printJSON(_ json: JSON) {
    print(json.text)
}
