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
        env["SHELTER_STAFF"] = "test-staff"
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

/// The bytes of a file, to show that a refused command changed nothing.
public func fileBytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
