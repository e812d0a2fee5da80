import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `shelter` run on a pseudo-terminal that is its controlling terminal, as a member of staff runs
/// it: a test waits for what it shows and types answers, and can see whether what was typed was
/// echoed.
public final class TerminalProcess {
    let master: Int32
    public let pid: pid_t
    /// Everything the program has shown so far.
    public private(set) var shown: [UInt8] = []
    public private(set) var exitStatus: Int32?

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ arguments: [String], environment: [String: String] = [:]) throws {
        master = PseudoTerminal.openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0, PseudoTerminal.grantpt(master) == 0, PseudoTerminal.unlockpt(master) == 0, let name = PseudoTerminal.ptsname(master) else {
            throw Failure(description: "no pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        let terminal = String(cString: name)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // After setsid, opening the terminal makes it the child's controlling terminal (/dev/tty).
        posix_spawn_file_actions_addopen(&actions, 0, terminal, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        // Nothing else of the test process (another test's pipes) stays open in the child.
        _ = PseudoTerminal.addclosefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(0x80)) // POSIX_SPAWN_SETSID

        var env = ProcessInfo.processInfo.environment
        env["SHELTER_REPLICA"] = nil
        env["SHELTER_AGENT_DIR"] = ShelterProcess.agentDirectory
        env["SHELTER_LANG"] = "en"
        env["LANG"] = "C.UTF-8"
        for (key, value) in environment { env[key] = value }
        let binary = ShelterProcess.binary
        let argv: [UnsafeMutablePointer<CChar>?] = ([binary] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let code = posix_spawn(&child, binary, &actions, &attributes, argv, envp)
        guard code == 0 else {
            close(master)
            throw Failure(description: "cannot start \(binary): \(String(cString: strerror(code)))")
        }
        pid = child
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        close(master)
    }

    public var text: String { String(decoding: shown, as: UTF8.self) }

    /// Reads what the program shows for up to `seconds`, or until `done` says so.
    @discardableResult
    func pump(within seconds: Double, until done: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !done() {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(200, max(1, left * 1000))))
            if ready > 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = read(master, &buffer, buffer.count)
                if count > 0 { shown += buffer[0..<count] }
            }
            if exitStatus == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            }
            // After the program ended, what it showed is all there (a session's agent may hold the terminal open).
            if exitStatus != nil && ready <= 0 { return done() }
        }
        return true
    }

    /// Waits until the program has shown `text` after what it had shown at `offset`.
    public func waitFor(_ text: String, after offset: Int = 0, within seconds: Double = 30) throws {
        let needle = Array(text.utf8)
        let found = pump(within: seconds) {
            shown.count >= offset + needle.count && shown[offset...].firstRange(of: needle) != nil
        }
        guard found else { throw Failure(description: "the program did not show \(text.debugDescription); it showed \(self.text.debugDescription)") }
    }

    /// Types `line` and Enter.
    public func type(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Waits for the program to end; its exit status.
    public func exit(within seconds: Double = 60) throws -> Int32 {
        pump(within: seconds) { exitStatus != nil }
        guard let exitStatus else { throw Failure(description: "the program did not end within \(seconds) s; it showed \(text.debugDescription)") }
        return exitStatus
    }
}

/// glibc's pseudo-terminal calls, which Swift's Glibc module does not declare (they sit behind
/// _XOPEN_SOURCE), looked up at run time.
enum PseudoTerminal {
    static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { fatalError("glibc has no \(name)") }
        return unsafeBitCast(pointer, to: type)
    }
    static let openpt = symbol("posix_openpt", as: (@convention(c) (Int32) -> Int32).self)
    static let grantpt = symbol("grantpt", as: (@convention(c) (Int32) -> Int32).self)
    static let unlockpt = symbol("unlockpt", as: (@convention(c) (Int32) -> Int32).self)
    static let addclosefrom = symbol("posix_spawn_file_actions_addclosefrom_np",
                                     as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    static let ptsname = symbol("ptsname", as: (@convention(c) (Int32) -> UnsafeMutablePointer<CChar>?).self)
}
