import Foundation

/// Runs the built `shelter` executable, as scripts and staff do.
public enum ShelterProcess {
    public struct Result: Sendable, CustomStringConvertible {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

        /// stdout parsed as one JSON document.
        public func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
                throw CocoaError(.coderReadCorrupt)
            }
            return object
        }
    }

    /// The `shelter` binary next to the test bundle (or `$SHELTER_BIN`).
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SHELTER_BIN"] { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent("shelter").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.appendingPathComponent("shelter").path
    }

    /// Starts `shelter` with `arguments`; the caller waits or kills it.
    /// `wrapper`: a command that runs `shelter` (e.g. `faketime -f +1640d`).
    public static func start(_ arguments: [String], environment: [String: String] = [:], wrapper: [String] = [],
                             stdout: Pipe = Pipe(), stderr: Pipe = Pipe()) throws -> Process {
        let process = Process()
        if let command = wrapper.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = Array(wrapper.dropFirst()) + [binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        env["SHELTER_REPLICA"] = nil
        env["SHELTER_AGENT_DIR"] = agentDirectory
        // Tests read English unless they ask for Danish (SHELTER_LANG=da), whatever the machine's LANG.
        env["SHELTER_LANG"] = "en"
        env["LANG"] = "C.UTF-8"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        return process
    }

    /// Runs `shelter` to completion.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String] = [:], wrapper: [String] = []) throws -> Result {
        let out = Pipe(), err = Pipe()
        let process = try start(arguments, environment: environment, wrapper: wrapper, stdout: out, stderr: err)
        // Read both pipes before waiting, so a large output cannot block the child.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

extension ShelterProcess {
    /// The member of staff the CLI tests log in as, and her passphrase (in a file, as scripts do).
    public static let tester = "tester"
    public static let passphrase = "correct horse battery staple"

    /// This test process's directory of login agents' sockets (0700), and the passphrase file.
    public static let agentDirectory: String = {
        let path = "/tmp/shelter-test-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }()

    public static let passphraseFile: String = {
        let path = agentDirectory + "/passphrase"
        FileManager.default.createFile(atPath: path, contents: Data((passphrase + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return path
    }()

    /// `shelter init` of a standalone replica whose first leader is `tester`, then her login.
    @discardableResult
    public static func initStandalone(_ path: String, rooms: Int? = nil) throws -> Result {
        let created = try run(["init", "--replica", path, "--leader", tester, "--passphrase-file", passphraseFile] + (rooms.map { ["--rooms", "\($0)"] } ?? []))
        guard created.status == 0 else { return created }
        let login = try self.login(path)
        return login.status == 0 ? created : login
    }

    /// `shelter login NAME` on a replica with the test passphrase file.
    @discardableResult
    public static func login(_ path: String, as name: String = tester) throws -> Result {
        try run(["login", name, "--replica", path, "--passphrase-file", passphraseFile])
    }

    /// `shelter server staff add tester --role leader` in a server directory.
    @discardableResult
    public static func addServerStaff(_ directory: String, name: String = tester, role: String = "leader") throws -> Result {
        try run(["server", "staff", "add", name, "--role", role, "--dir", directory, "--passphrase-file", passphraseFile])
    }
}

/// The bytes of a file, to show that a refused command changed nothing.
public func fileBytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
