import Foundation

/// `shelter server run` as a real process, on a free loopback port (or a given one).
public struct ServerProcess {
    public let process: Process
    public let port: Int
    /// The admin HTTP port, when `start` was asked to wait for it.
    public let adminPort: Int?
    let stderr: Pipe

    /// Starts the server and waits for `listening on HOST:PORT`; with `waitForAdmin`, also for
    /// `admin on 127.0.0.1:PORT` (the two lines come in either order).
    public static func start(directory: String, host: String = "127.0.0.1", port: Int = 0, extra: [String] = [],
                             environment: [String: String] = [:], waitForAdmin: Bool = false) throws -> ServerProcess {
        let errors = Pipe()
        let process = try ShelterProcess.start(["server", "run", "--dir", directory, "--listen", "\(host):\(port)",
                                                "--admin-listen", "127.0.0.1:0"] + extra, environment: environment, stderr: errors)
        let listening = "listening on \(host):", admin = "admin on 127.0.0.1:"
        var chosen: Int?, adminPort: Int?
        while chosen == nil || (waitForAdmin && adminPort == nil), let line = readLine(from: errors.fileHandleForReading) {
            if line.hasPrefix(listening) { chosen = Int(line.dropFirst(listening.count)) }
            if line.hasPrefix(admin) { adminPort = Int(line.dropFirst(admin.count)) }
        }
        guard let chosen, !waitForAdmin || adminPort != nil else {
            process.terminate()
            throw CocoaError(.fileReadUnknown)
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        let handle = errors.fileHandleForReading
        Thread.detachNewThread { while !handle.availableData.isEmpty {} }
        return ServerProcess(process: process, port: chosen, adminPort: adminPort, stderr: errors)
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

/// Runs blocking work (processes, blocking sockets) on a thread of its own, so that while it waits it
/// holds none of the few threads the tests' tasks share.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// One HTTP/1.1 request on a blocking socket (the connection closed after it): the calling thread
/// waits, so a clock around it measures the server, not the scheduling of tasks in the test process.
public enum BlockingHTTP {
    public struct Failed: Error {}

    public static func request(_ method: String, port: Int, path: String, timeout: Int = 30) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed() }
        defer { close(fd) }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failed() }
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { throw Failed() }
        var received: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 { throw Failed() }
            if count == 0 { break }
            received += buffer[0..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else { throw Failed() }
        return (status, String(text[split.upperBound...]))
    }
}
