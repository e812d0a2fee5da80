import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import Server
import ShelterDomain
import ServiceLifecycle
import UnixSignals

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run and administer the central sync server.",
        subcommands: [ServerInit.self, Enroll.self, Renew.self, Revoke.self, Run.self, Replicas.self, Backup.self, Restore.self, Certify.self, ServerStaff.self, ServerVerify.self])
}

/// The server directory every server command takes.
struct ServerDirectoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The server directory (default: $SHELTER_SERVER_DIR).", valueName: "dir"))
    var dir: String?

    var path: String {
        get throws {
            if let dir, !dir.isEmpty { return dir }
            if let dir = ProcessInfo.processInfo.environment["SHELTER_SERVER_DIR"], !dir.isEmpty { return dir }
            throw ValidationError(t("srv.noDir"))
        }
    }
}

func reportingServerErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ServerError {
        printError(error.message)
        throw ExitCode(1)
    }
}

struct ServerInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the server directory (0700): the shelter CA (ECDSA P-256), the server's key and certificate, and the store with its rooms.",
        discussion: "The server certificate names localhost, 127.0.0.1, ::1 and each --host. Refuses a directory that already holds a server.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: "How many rooms the shelter has.") var rooms: Int = 9
    @Option(name: .customLong("host"), help: ArgumentHelp("Another name or address the server is reached by (repeat).", valueName: "name"))
    var hosts: [String] = []

    func validate() throws {
        guard (1...999).contains(rooms) else { throw ValidationError(t("v.rooms", ("rooms", rooms))) }
    }

    func run() throws {
        let path = try options.path
        _ = try reportingServerErrors { try ServerDirectory.initialize(at: path, rooms: rooms, hosts: hosts) }
        print(t("srv.initialised", ("path", path), ("rooms", rooms)))
    }
}

struct Enroll: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enroll", 
        abstract: "Issue one workstation identity: a new replica id in a certificate signed by the CA, written with its key and the CA certificate as one bundle file (0600).")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: "The workstation's name (unique; letters, digits, - _ .).") var name: String
    @Option(help: ArgumentHelp("Where to write the bundle (default: NAME.bundle).", valueName: "file")) var out: String?
    @Option(help: ArgumentHelp("The shelter CA's private key (default: DIR/ca-key.pem).", valueName: "path")) var caKey: String?

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let enrollment = try reportingServerErrors { try directory.enroll(name: name, bundlePath: out, caKeyPath: caKey) }
        func line(_ key: String, _ value: String) { print(t(key).padding(toLength: 9, withPad: " ", startingAt: 0) + value) }
        line("srv.name", enrollment.name)
        line("srv.replica", "\(enrollment.replicaID)")
        line("srv.serial", "\(enrollment.serial)")
        line("srv.bundle", enrollment.bundlePath)
    }
}

struct Renew: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "renew", 
        abstract: "Issue a new certificate (a new bundle) for an enrolled workstation: same name and replica id, valid 5 years.",
        discussion: "The old certificate works until the new one is first used. On the workstation: shelter renew --bundle FILE.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: "The workstation's name.") var name: String
    @Option(help: ArgumentHelp("Where to write the bundle (default: NAME.bundle).", valueName: "file")) var out: String?
    @Option(help: ArgumentHelp("The shelter CA's private key (default: DIR/ca-key.pem).", valueName: "path")) var caKey: String?

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let renewal = try reportingServerErrors { try directory.renew(name: name, bundlePath: out, caKeyPath: caKey) }
        func line(_ key: String, _ value: String) { print(t(key).padding(toLength: 9, withPad: " ", startingAt: 0) + value) }
        line("srv.name", renewal.name)
        line("srv.replica", "\(renewal.replicaID)")
        line("srv.serial", "\(renewal.serial)")
        line("srv.bundle", renewal.bundlePath)
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", 
        abstract: "Revoke a workstation's certificate: the server refuses it from then on, also while it runs.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: "The workstation's name.") var name: String

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let before = try reportingServerErrors { try directory.store().retiredKeyCount() }
        let replica = try reportingServerErrors { try directory.revoke(name: name) }
        print(t("srv.revoked", ("name", name), ("replica", replica)))
        if try reportingServerErrors({ try directory.store().retiredKeyCount() }) > before {
            print(t("srv.keyRetired"))
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", 
        abstract: "Run the sync server (TLS 1.3, mutual authentication). Prints `listening on HOST:PORT` on stderr once it accepts.",
        discussion: "SIGINT or SIGTERM: stop accepting, finish the sessions in flight, exit 0.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: ArgumentHelp("Address to listen on; port 0 picks a free port.", valueName: "host:port")) var listen = "127.0.0.1:7443"
    @Option(help: ArgumentHelp("Disconnect a peer that sends nothing for this many seconds.", valueName: "seconds")) var idleTimeout = 30
    @Option(help: ArgumentHelp("The most changes in one pushed or pulled batch.", valueName: "changes")) var maxBatch = 1000
    @Option(help: ArgumentHelp("The admin HTTP surface (/metrics, /healthz, /); port 0 picks a free port.", valueName: "host:port"))
    var adminListen = "127.0.0.1:7480"
    @Option(help: ArgumentHelp("A workstation is `behind` when more than this many log entries have not reached it.", valueName: "entries"))
    var behindLag = 500
    @Option(help: ArgumentHelp("A workstation is `stale` when its last successful sync is older than this.", valueName: "hours"))
    var staleAfter = 24.0
    @Option(help: ArgumentHelp("Refuse a workstation whose clock differs from the server's by more than this.", valueName: "seconds"))
    var maxClockSkew = 300

    func validate() throws {
        _ = try parseListen(listen)
        _ = try parseListen(adminListen)
        guard behindLag >= 0 else { throw ValidationError(t("err.ServerCommands.87")) }
        guard staleAfter > 0 else { throw ValidationError(t("err.ServerCommands.88")) }
        guard idleTimeout > 0 else { throw ValidationError(t("err.ServerCommands.89")) }
        guard (1...86_400).contains(maxClockSkew) else { throw ValidationError(t("err.ServerCommands.90")) }
        guard (1...10_000).contains(maxBatch) else { throw ValidationError(t("err.ServerCommands.91")) }
    }

    func run() async throws {
        // `Shelter.main` chose `Language.current` before parsing (SHELTER_LANG, else LANG, else Danish):
        // the admin page is in it.
        Self.limitMallocArenas()
        let (host, port) = try parseListen(listen)
        let (adminHost, adminPort) = try parseListen(adminListen)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "shelter.server")
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        // One server per directory; `server restore` waits for this lock to be free.
        let lock = try reportingServerErrors { try directory.lock() }
        defer { withExtendedLifetime(lock) {} }
        let reconciled = try reportingServerErrors { try directory.reconcileRegistry() }  // also done by the server: here to report it
        if reconciled.enrolled + reconciled.revoked > 0 {
            FileHandle.standardError.write(Data("registry: applied again from registry.journal: \(reconciled.enrolled) enrollment(s), \(reconciled.revoked) revocation(s) the store had lost\n".utf8))
        }
        var configuration = SyncServer.Configuration(host: host, port: port)
        configuration.idleTimeout = .seconds(Int64(idleTimeout))
        configuration.maximumBatch = maxBatch
        configuration.maxClockSkew = TimeInterval(maxClockSkew)
        try reportingServerErrors {
            try directory.store().saveThresholds(.init(behindLag: Int64(behindLag), staleAfter: staleAfter * 3600))
        }
        let server = try reportingServerErrors {
            try SyncServer(directory: directory, configuration: configuration, logger: logger, onListening: { address in
                FileHandle.standardError.write(Data("listening on \(host.contains(":") ? "[\(host)]" : host):\(address.port ?? port)\n".utf8))
            })
        }
        if server.certificateExpires.timeIntervalSinceNow < ReplicaHealth.Thresholds.expiringWithin {
            FileHandle.standardError.write(Data("warning: the server's certificate expires on \(Timestamp.format(server.certificateExpires)); issue a new one with `shelter server certify`\n".utf8))
        }
        var adminLogger = Logger(label: "shelter.admin")
        adminLogger.logLevel = .warning  // `admin on HOST:PORT` below says what Hummingbird's start line would
        let admin = AdminHTTP.application(store: server.store, metrics: server.metrics, host: adminHost, port: adminPort,
                                          serverCertificateExpires: server.certificateExpires, logger: adminLogger) { address in
            FileHandle.standardError.write(Data("admin on \(adminHost.contains(":") ? "[\(adminHost)]" : adminHost):\(address.port ?? adminPort)\n".utf8))
        }
        let group = ServiceGroup(configuration: .init(services: [server, admin], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            printError(t("srv.stopped", ("error", "\(error)")))
            throw ExitCode(1)
        }
    }
}

struct Replicas: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replicas", 
        abstract: "Every enrolled workstation's health: state, last seen, last sync, lag, unsynced, rejected, clock skew, conflicts, last error.",
        discussion: """
            States: ok · behind (lag above --behind-lag of `server run`) · stale (no successful sync for longer \
            than --stale-after) · revoked · forked (two copies of one replica sent different changes) · \
            never-synced. Reads the store, also while the server runs.
            """)

    @OptionGroup var options: ServerDirectoryOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let report = try reportingServerErrors { try directory.store().healthReport(serverCertificateExpires: try? directory.serverCertificateExpires()) }
        if json {
            printJSON(.object([
                ("head", .int(report.head)),
                ("restoredAt", .string(report.restoredAt)),
                ("serverCertificateExpires", .string(report.serverCertificateExpires)),
                ("replicas", .array(report.replicas.map { replica in
                    .object([
                        ("name", .string(replica.name)),
                        ("replicaId", .string(replica.replicaID)),
                        ("state", .string(replica.state.rawValue)),
                        ("lastSeen", .string(replica.lastSeen)),
                        ("lastSync", .string(replica.lastSync)),
                        ("lag", .int(replica.lag)),
                        ("unsynced", .int(replica.unsynced)),
                        ("rejected", .int(replica.rejected)),
                        ("clockSkewMs", replica.clockSkewMs.map { .int($0) } ?? .null),
                        ("openConflicts", .int(replica.openConflicts)),
                        ("erasuresPending", .int(replica.erasuresPending)),
                        ("recoveredChanges", .int(replica.recovered)),
                        ("forkedAt", .string(replica.forkedAt)),
                        ("certificateExpires", .string(replica.certificateExpires)),
                        ("clientVersion", .string(replica.clientVersion)),
                        ("schemaVersion", .int(replica.schemaVersion)),
                        ("lastError", replica.lastError.map { .object([("code", .string($0.code)), ("at", .string($0.at))]) } ?? .null),
                    ])
                })),
            ]))
            return
        }
        // The texts for people, in the language `Shelter.main` chose, times in the server's zone;
        // --json above never depends on either.
        var table = TextTable(header: [
            t("admin.replicas.column.name"), t("admin.replicas.column.state"), t("admin.replicas.column.lastSeen"),
            t("admin.replicas.column.lastSync"), t("admin.replicas.column.lag"), t("admin.replicas.column.unsynced"),
            t("admin.replicas.column.rejected"), t("admin.replicas.column.recovered"), t("admin.replicas.column.clockSkew"),
            t("admin.replicas.column.openConflicts"), t("admin.replicas.column.erasuresPending"),
            t("admin.replicas.column.certificateExpires"), t("admin.replicas.column.lastError"),
        ])
        for replica in report.replicas {
            table.add([replica.name, AdminHTTP.stateName(replica.state),
                       replica.lastSeen.map { LocalTime.dateTime(stored: $0) } ?? t("admin.never"),
                       replica.lastSync.map { LocalTime.dateTime(stored: $0) } ?? t("admin.never"),
                       String(replica.lag), String(replica.unsynced), String(replica.rejected), String(replica.recovered),
                       replica.clockSkewMs.map(String.init) ?? "-", String(replica.openConflicts), String(replica.erasuresPending),
                       replica.certificateExpires.map { AdminHTTP.localDate(stored: $0) } ?? "-",
                       replica.lastError.map { t("admin.error", ("code", $0.code), ("time", LocalTime.dateTime(stored: $0.at))) } ?? ""])
        }
        print(table.text)
        let count = report.replicas.count
        print(([t("admin.replicas.head", ("head", report.head)),
                count == 1 ? t("admin.replicas.enrolled.one", ("count", count)) : t("admin.replicas.enrolled.other", ("count", count))]
               + (report.serverCertificateExpires.map { [t("admin.replicas.serverCertificate", ("date", AdminHTTP.localDate(stored: $0)))] } ?? []))
            .joined(separator: "; "))
        if let restored = report.restoredAt {
            print(t("admin.restored", ("time", LocalTime.dateTime(stored: restored))))
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backup", 
        abstract: "Copy the server's store to a new file (0600), consistently, also while the server runs.",
        discussion: "Restore it with `shelter server restore`; workstations then give back by themselves what the server lost.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: ArgumentHelp("The backup file to create (never overwritten).", valueName: "file")) var to: String

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        if FileManager.default.fileExists(atPath: to) {
            printError(t("srv.backupExists", ("path", to)))
            throw ExitCode(1)
        }
        let head = try reportingServerErrors { try directory.store().backup(to: to) }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: to)[.size] as? Int) ?? 0
        print(t("srv.backedUp", ("store", directory.storePath), ("to", to), ("head", head), ("bytes", bytes)))
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", 
        abstract: "Replace the server's store with a backup (the server must be stopped); the replaced store is kept beside it.",
        discussion: """
            Refuses a file that is not a server store, fails SQLite's integrity check or belongs to another shelter. \
            Enrollments and revocations made since the backup are applied again from registry.journal. At their next \
            sync, workstations give back every change the restored server lacks and pull again what they missed.
            """)

    @OptionGroup var options: ServerDirectoryOptions
    @Option(help: ArgumentHelp("The backup file (from `shelter server backup`).", valueName: "file")) var from: String
    @Flag(help: "Restore a backup made before 0.5 that nothing here can tie to this shelter.") var force = false

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.openForRestore(at: try options.path) }
        let restored = try reportingServerErrors { try directory.restore(from: from, force: force) }
        print(t("srv.restoredFrom", ("store", directory.storePath), ("from", from), ("head", restored.head)))
        if let replaced = restored.replacedPath { print(t("srv.replacedKept", ("path", replaced))) }
        if restored.reenrolled + restored.revoked > 0 {
            print(t("srv.journal", ("enrolled", restored.reenrolled), ("revoked", restored.revoked)))
        }
        print(t("srv.startAgain"))
    }
}

struct Certify: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "certify", 
        abstract: "Issue a new server certificate for new names (the server moved), signed by the shelter CA.",
        discussion: "The certificate names localhost, 127.0.0.1, ::1 and each --host. Restart the server to use it; point workstations at it with `shelter set-server HOST:PORT`.")

    @OptionGroup var options: ServerDirectoryOptions
    @Option(name: .customLong("host"), help: ArgumentHelp("A name or address the server is reached by (repeat).", valueName: "name"))
    var hosts: [String] = []
    @Option(help: ArgumentHelp("The shelter CA's private key (default: DIR/ca-key.pem).", valueName: "path")) var caKey: String?

    func validate() throws {
        if hosts.isEmpty { throw ValidationError(t("srv.needHost")) }
    }

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let issued = try reportingServerErrors { try directory.certify(hosts: hosts, caKeyPath: caKey) }
        print(t("srv.certificate", ("serial", issued.serial), ("hosts", hosts.joined(separator: ", "))))
        print(t("srv.validUntil", ("date", "\(issued.validUntil)")))
    }
}

func parseListen(_ text: String) throws -> (String, Int) {
    let invalid = ValidationError(t("err.ServerCommands.92", ("p1", text)))
    var host: Substring, portText: Substring
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = text[text.index(after: text.startIndex)..<close]
        portText = text[close...].dropFirst().drop { $0 == ":" }
    } else {
        guard let colon = text.lastIndex(of: ":") else { throw invalid }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
    }
    guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else { throw invalid }
    return (String(host), port)
}

struct ServerStaff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: "The server admin's view of the staff, and how the first leader comes to exist.",
        subcommands: [Add.self, List.self], defaultSubcommand: List.self)

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", 
            abstract: "Add a member of staff (signed by the server's key): how the first leader comes to exist.",
            discussion: "Her keys are made here and stored only sealed under her passphrase; workstations get her at their next sync, and she logs in there with `shelter login NAME`.")
        @OptionGroup var options: ServerDirectoryOptions
        @Argument(help: "Her name.") var name: String
        @Option(help: "Her role: leader, socialWorker, contactPerson, houseGuard, office, caretaker.") var role: String
        @Option(help: ArgumentHelp("A file whose first line is her initial passphrase.", valueName: "file")) var passphraseFile: String?

        func run() throws {
            let parsed: StaffRole
            do { parsed = try StaffRole.named(role) } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
            let passphrase = try Passphrase.read(file: passphraseFile, prompt: "Initial passphrase for \(name)", confirm: true)
            do {
                try StaffKeys.checkPassphrase(passphrase)
            } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            try reportingServerErrors { try directory.store().addStaff(name: name, role: parsed, passphrase: passphrase) }
            print(t("staff.role", ("name", name), ("role", parsed.word)))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every member of staff the server knows.")
        @OptionGroup var options: ServerDirectoryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
            let staff = try reportingServerErrors { try directory.store().staff() }
            if json {
                printJSON(.object([("staff", .array(staff.map {
                    .object([("name", .string($0.name)), ("role", .string($0.role)), ("removed", .bool($0.removed))])
                }))]))
                return
            }
            var table = TextTable(header: [t("col.name"), t("col.role"), t("col.removed")])
            for member in staff { table.add([member.name, StaffRole(rawValue: member.role)?.word ?? member.role, member.removed ? t("common.yes") : ""]) }
            print(table.text)
        }
    }
}

struct ServerVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check every signature in the server's log against the staff keys and the server's key.")
    @OptionGroup var options: ServerDirectoryOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let directory = try reportingServerErrors { try ServerDirectory.open(at: try options.path) }
        let report = try reportingServerErrors { try directory.store().verify() }
        printVerify(report, json: json)
        if !report.invalid.isEmpty { throw ExitCode(1) }
    }
}

extension Run {
    /// At most two malloc arenas in the server process (glibc makes up to eight per core, one per
    /// thread that meets contention), and buffers of 128 KiB and more (a pull's frames) mapped and
    /// given back to the system when freed (glibc otherwise raises that bound as large buffers are
    /// freed, and keeps them in its heap): 50 sessions at once left their buffers spread over many
    /// half-empty arenas. `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` in the environment
    /// decide when set.
    static func limitMallocArenas() {
        #if canImport(Glibc)
        // mallopt(3) is not in Swift's Glibc module (malloc.h is not part of it): looked up by name.
        // M_ARENA_MAX is -8 and M_MMAP_THRESHOLD -3 in glibc's malloc.h, values fixed by its ABI.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let environment = ProcessInfo.processInfo.environment
        // The admin's own settings win: the old variables, or glibc's tunables.
        let tunables = environment["GLIBC_TUNABLES"] ?? ""
        if environment["MALLOC_ARENA_MAX"] == nil && !tunables.contains("malloc.arena_max") { _ = mallopt(-8, 2) }
        if environment["MALLOC_MMAP_THRESHOLD_"] == nil && !tunables.contains("malloc.mmap_threshold") { _ = mallopt(-3, 128 * 1024) }
        #endif
    }
}
