import Foundation

/// `shelter server run` as a real process, on a free loopback port (or a given one).
public struct ServerProcess {
    public let process: Process
    public let port: Int
    let stderr: Pipe

    public static func start(directory: String, host: String = "127.0.0.1", port: Int = 0, extra: [String] = []) throws -> ServerProcess {
        let errors = Pipe()
        let process = try ShelterProcess.start(["server", "run", "--dir", directory, "--listen", "\(host):\(port)",
                                                "--admin-listen", "127.0.0.1:0"] + extra, stderr: errors)
        guard let line = readLine(from: errors.fileHandleForReading, startingWith: "listening on \(host):"),
              let chosen = Int(line.dropFirst("listening on \(host):".count)) else {
            process.terminate()
            throw CocoaError(.fileReadUnknown)
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        let handle = errors.fileHandleForReading
        Thread.detachNewThread { while !handle.availableData.isEmpty {} }
        return ServerProcess(process: process, port: chosen, stderr: errors)
    }

    public func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
    }
}

/// One line from a pipe, or nil at end of file.
public func readLine(from handle: FileHandle) -> String? {
    var bytes: [UInt8] = []
    while true {
        let chunk = handle.readData(ofLength: 1)
        guard let byte = chunk.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
        if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// The first line from a pipe that starts with `prefix` (other lines are skipped), or nil at end of file.
public func readLine(from handle: FileHandle, startingWith prefix: String) -> String? {
    while let line = readLine(from: handle) {
        if line.hasPrefix(prefix) { return line }
    }
    return nil
}

/// Waits (polling, up to `timeout`) until `condition` holds; returns whether it did.
public func waitUntil(timeout: TimeInterval = 60, interval: useconds_t = 2_000, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(interval)
    }
    return false
}
