import Foundation
import ShelterDomain
import SyncCore
#if canImport(Glibc)
import Glibc
#endif

// A per-user login agent in the ssh-agent pattern: `shelter login` unlocks a member of staff's keys
// and hands them to a small process of her own (`shelter agent`), which keeps them only in memory
// and signs for her over a Unix domain socket that only her OS user can reach (a 0700 directory,
// a 0600 socket, and the peer's uid checked on every connection). The session ends on logout,
// after the idle time without a signature, when its socket file is removed or replaced, or when
// the replica file is gone; the agent then removes its socket and drops the keys.
//
// Wire protocol: one request per connection, one JSON line each way.
//   {"op":"status"}                              → {"info": AgentSessionInfo}
//   {"op":"sign","digest":BASE64(32 bytes)}      → {"signature": BASE64}
//   {"op":"logout"}                              → {"ok": true}, then the agent ends
//   anything else                                → {"error": "..."}
// `sign` and `logout` may carry "staff": the staff id the client believes it is talking to; the agent
// refuses when the session is someone else's (another login replaced it in between).

/// What a login agent holds besides the keys: who is logged in, on which replica, until when.
public struct AgentSessionInfo: Codable, Sendable, Hashable {
    /// Her staff id (`Roles.staffID` of her name).
    public var staff: String
    /// Her name as written: the author of what she records.
    public var name: String
    /// The replica id (canonical text).
    public var replica: String
    /// The absolute path of the replica file.
    public var replicaPath: String
    /// The session ends after this many seconds without a signature.
    public var idleSeconds: Int
    /// The last signature (or the login) plus `idleSeconds`.
    public var expiresAt: Date

    public init(staff: String, name: String, replica: String, replicaPath: String, idleSeconds: Int, expiresAt: Date) {
        self.staff = staff
        self.name = name
        self.replica = replica
        self.replicaPath = replicaPath
        self.idleSeconds = idleSeconds
        self.expiresAt = expiresAt
    }

    /// The session of `name` (staff id and author as `KeySigner` computes them) starting `now`.
    public init(name: String, replica: ReplicaID, replicaPath: String, idleSeconds: Int, now: Date = Date()) {
        self.init(staff: Roles.staffID(name), name: name.trimmingCharacters(in: .whitespaces), replica: replica.description,
                  replicaPath: replicaPath, idleSeconds: idleSeconds, expiresAt: now.addingTimeInterval(TimeInterval(idleSeconds)))
    }
}

/// A running login session, reached through its agent's socket. Each signature is a request to
/// the agent (and keeps the session alive); the keys never leave the agent.
public struct AgentSession: GrantOpener, Sendable {
    /// The session as the agent described it when connected.
    public let info: AgentSessionInfo
    /// The agent's socket.
    let socketPath: String

    public var signer: String { info.staff }
    public var author: String { info.name }

    /// An Ed25519 signature of `digest` by her key, made by the agent.
    public func sign(_ digest: [UInt8]) throws -> [UInt8] {
        let request = LoginAgent.Request(op: "sign", digest: Data(digest).base64EncodedString(), staff: info.staff)
        let answer: LoginAgent.Answer
        do {
            answer = try LoginAgent.ask(request, at: socketPath)
        } catch .noAgent, .closed {
            throw sessionEnded
        } catch let .failed(message) {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.0", ("p1", message)))
        }
        if let error = answer.error {
            if error == LoginAgent.otherSessionMessage { throw sessionEnded }
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.1", ("p1", error)))
        }
        guard let text = answer.signature, let signature = Data(base64Encoded: text), signature.count == 64 else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.2"))
        }
        return Array(signature)
    }

    /// The shelter key a grant to her holds, opened by the agent with her agreement key (which
    /// never leaves it).
    public func openGrant(_ grant: String) throws -> RecordKeys.ShelterKey {
        var request = LoginAgent.Request(op: "unseal", digest: nil, staff: info.staff)
        request.grant = grant
        let answer: LoginAgent.Answer
        do {
            answer = try LoginAgent.ask(request, at: socketPath)
        } catch .noAgent, .closed {
            throw sessionEnded
        } catch let .failed(message) {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.3", ("p1", message)))
        }
        if let error = answer.error {
            if error == LoginAgent.otherSessionMessage { throw sessionEnded }
            throw ReplicaError(.notLoggedIn, t("err.LoginAgent.3", ("p1", error)))
        }
        guard let text = answer.key, let bytes = Data(base64Encoded: text), let key = try? RecordKeys.ShelterKey(bytes: Array(bytes)) else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.5"))
        }
        return key
    }

    /// Ends the session: the agent drops her keys and removes its socket. Nothing to do when it
    /// already ended.
    public func logout() throws {
        let answer: LoginAgent.Answer
        do {
            answer = try LoginAgent.ask(LoginAgent.Request(op: "logout", digest: nil, staff: info.staff), at: socketPath)
        } catch .noAgent, .closed {
            return
        } catch let .failed(message) {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.6", ("p1", message)))
        }
        if let error = answer.error {
            if error == LoginAgent.otherSessionMessage { return } // hers already ended; another login replaced it
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.7", ("p1", error)))
        }
    }

    var sessionEnded: ReplicaError {
        let name = info.name.contains(where: { $0.isWhitespace || $0 == "'" || $0 == "\"" }) ? "\"\(info.name)\"" : info.name
        return ReplicaError(.invalidArgument, t("login.ended", ("name", name)))
    }
}

public enum LoginAgent {
    // MARK: Where the sockets live

    /// The directory of the agents' sockets: $SHELTER_AGENT_DIR if set and non-empty, else
    /// $XDG_RUNTIME_DIR/shelter, else /tmp/shelter-<uid>. Created with mode 0700 if missing;
    /// refused if it is not a directory owned by this user or is open to anyone else.
    public static func directory() throws -> String {
        try directory(environment: ProcessInfo.processInfo.environment)
    }

    /// `<directory>/<replica id>-<hash of the replica file's canonical path>.sock`: a session belongs
    /// to one replica file, so two copies of a replica (one id) on one machine never share one.
    public static func socketPath(replica: ReplicaID, replicaPath: String) throws -> String {
        try socketPath(replica: replica, replicaPath: replicaPath, directory: directory())
    }

    /// The absolute path of a replica file with symbolic links resolved (as written when the file
    /// cannot be resolved).
    public static func canonicalPath(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let resolved = realpath(absolute, nil) else { return absolute }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// 64-bit FNV-1a of the canonical path, as 16 hex digits: it only keeps two files' sockets
    /// apart; whether a session is this file's is decided by the file itself (`connect`).
    static func pathTag(_ path: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in canonicalPath(path).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func directory(environment: [String: String]) throws -> String {
        var path: String
        if let dir = environment["SHELTER_AGENT_DIR"], !dir.isEmpty {
            guard dir.hasPrefix("/") else {
                throw ReplicaError(.invalidArgument, t("err.LoginAgent.8", ("p1", dir)))
            }
            path = dir
        } else if let runtime = environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            path = runtime.hasSuffix("/") ? runtime + "shelter" : runtime + "/shelter"
        } else {
            path = "/tmp/shelter-\(getuid())"
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        try ensurePrivateDirectory(path)
        return path
    }

    static func socketPath(replica: ReplicaID, replicaPath: String, directory: String) throws -> String {
        let path = "\(directory)/\(replica.description)-\(pathTag(replicaPath)).sock"
        try checkSocketPathLength(path)
        return path
    }

    /// The longest path a Unix domain socket address holds (sun_path less its terminating zero).
    static let maximumSocketPathLength: Int = {
        var address = sockaddr_un()
        return MemoryLayout.size(ofValue: address.sun_path) - 1
    }()

    static func checkSocketPathLength(_ path: String) throws {
        let length = path.utf8.count
        guard length <= maximumSocketPathLength else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.9", ("p1", path), ("p2", length), ("p3", maximumSocketPathLength)))
        }
    }

    static func ensurePrivateDirectory(_ path: String) throws {
        var found = FileStatus(path)
        if found == nil {
            if mkdir(path, 0o700) == 0 {
                _ = chmod(path, 0o700) // the umask may have taken bits; the directory is ours
            } else if errno != EEXIST {
                throw ReplicaError(.storage, t("err.LoginAgent.10", ("p1", path), ("p2", systemError())))
            }
            found = FileStatus(path)
        }
        guard let status = found else {
            throw ReplicaError(.storage, t("err.LoginAgent.11", ("p1", path)))
        }
        guard status.type == .typeDirectory else {
            throw ReplicaError(.storage, t("err.LoginAgent.12", ("p1", path)))
        }
        guard status.owner == UInt64(getuid()) else {
            throw ReplicaError(.storage, t("err.LoginAgent.13", ("p1", path), ("p2", status.owner), ("p3", getuid())))
        }
        guard status.permissions & 0o077 == 0 else {
            throw ReplicaError(.storage, t("err.LoginAgent.14", ("p1", path), ("p2", String(status.permissions & 0o777, radix: 8)), ("p3", path)))
        }
    }

    /// What lstat says of a file (through FileManager, which does not follow a final symlink).
    struct FileStatus: Equatable {
        var type: FileAttributeType
        var owner: UInt64
        var permissions: Int
        var device: UInt64
        var inode: UInt64

        /// nil when there is no such file (or it cannot be examined).
        init?(_ path: String) {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  let type = attributes[.type] as? FileAttributeType,
                  let owner = attributes[.ownerAccountID] as? NSNumber,
                  let permissions = attributes[.posixPermissions] as? NSNumber,
                  let device = attributes[.systemNumber] as? NSNumber,
                  let inode = attributes[.systemFileNumber] as? NSNumber else { return nil }
            self.type = type
            self.owner = owner.uint64Value
            self.permissions = permissions.intValue
            self.device = device.uint64Value
            self.inode = inode.uint64Value
        }

        func isSameFile(as other: FileStatus?) -> Bool {
            guard let other else { return false }
            return device == other.device && inode == other.inode
        }
    }

    // MARK: Starting an agent

    /// Starts an agent process for a session: runs `executable agent` (the CLI's hidden command,
    /// which calls `serve()`) with the session and keys on its stdin (never in argv or the
    /// environment) and waits up to 10 s for it to say it is ready. An agent already running for
    /// the same replica is logged out first.
    public static func start(executable: String, info: AgentSessionInfo, keys: StaffKeys) throws {
        try start(executable: executable, info: info, keys: keys, directory: directory())
    }

    static func start(executable: String, info: AgentSessionInfo, keys: StaffKeys, directory: String,
                      readyTimeout: Double = 10) throws {
        guard let replica = ReplicaID(info.replica) else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.15", ("p1", info.replica)))
        }
        try check(info)
        guard access(info.replicaPath, F_OK) == 0 else {
            throw ReplicaError(.fileNotFound, t("err.LoginAgent.16", ("p1", info.replicaPath)))
        }
        let path = try socketPath(replica: replica, replicaPath: info.replicaPath, directory: directory)

        // Replace a running agent: log it out, and let it remove its socket before the new one binds.
        if let running = try? connect(replica: replica, replicaPath: info.replicaPath, directory: directory, sameFileOnly: false) {
            try? running.logout()
            let deadline = uptime() + 3
            while access(path, F_OK) == 0 || errno != ENOENT, uptime() < deadline { usleep(20_000) }
        }

        // The handoff goes into the stdin pipe before the agent exists: the write never blocks and
        // can never meet a closed pipe.
        var handoff = handoffLine(info: info, keys: keys)
        defer { wipe(&handoff) }
        let input = try makePipe()
        defer { close(input.read) }
        do {
            defer { close(input.write) }
            guard writeAll(input.write, handoff, socket: false, timeout: 2) else {
                throw ReplicaError(.invalidArgument, t("err.LoginAgent.17", ("p1", systemError())))
            }
        }
        let output = try makePipe()
        var outputWrite: Int32? = output.write
        defer {
            close(output.read)
            if let fd = outputWrite { close(fd) }
        }

        let pid = try spawn(executable: executable, arguments: ["agent"], stdin: input.read, stdout: output.write,
                            environment: ["SHELTER_AGENT_DIR": directory])
        close(output.write)
        outputWrite = nil
        reapInBackground(pid)

        switch readLine(output.read, limit: 4096, timeout: readyTimeout) {
        case let .line(bytes):
            let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if line == "ready" { return }
            kill(pid, SIGTERM)
            if line.hasPrefix("error: ") {
                throw ReplicaError(.invalidArgument, t("err.LoginAgent.18", ("p1", line.dropFirst(7))))
            }
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.19", ("p1", line.prefix(200))))
        case .closed:
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.20", ("p1", executable)))
        case .timedOut:
            kill(pid, SIGTERM)
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.21", ("p1", executable), ("p2", Int(readyTimeout))))
        case .tooLarge:
            kill(pid, SIGTERM)
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.22"))
        case let .failed(code):
            kill(pid, SIGTERM)
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.23", ("p1", String(cString: strerror(code)))))
        }
    }

    static func check(_ info: AgentSessionInfo) throws {
        guard ReplicaID(info.replica) != nil else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.15", ("p1", info.replica)))
        }
        guard !info.staff.isEmpty, info.staff == Roles.staffID(info.name) else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.25", ("p1", info.staff), ("p2", info.name)))
        }
        guard info.replicaPath.hasPrefix("/") else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.26", ("p1", info.replicaPath)))
        }
        guard info.idleSeconds > 0 else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.27"))
        }
    }

    /// `{"info": …, "keys": "<base64>"}\n`, built as bytes so the key text is in no String.
    static func handoffLine(info: AgentSessionInfo, keys: StaffKeys) -> [UInt8] {
        var secret = keys.secretBytes
        var data = Data(secret)
        var base64 = data.base64EncodedData()
        defer {
            wipe(&secret)
            data.resetBytes(in: 0..<data.count)
            base64.resetBytes(in: 0..<base64.count)
        }
        let infoJSON = (try? encoder().encode(info)) ?? Data("null".utf8)
        var line: [UInt8] = []
        line.reserveCapacity(infoJSON.count + base64.count + 32)
        line.append(contentsOf: Array(#"{"info":"#.utf8))
        line.append(contentsOf: infoJSON)
        line.append(contentsOf: Array(#","keys":""#.utf8))
        line.append(contentsOf: base64)
        line.append(contentsOf: Array("\"}\n".utf8))
        return line
    }

    static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.28", ("p1", systemError())))
        }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// posix_spawn with exactly three descriptors in the child: `stdin`, `stdout` and /dev/null as
    /// stderr — every other descriptor of this process is closed in the child (glibc's closefrom
    /// action when there is one, else each open descriptor listed in /proc/self/fd).
    static func spawn(executable: String, arguments: [String], stdin: Int32, stdout: Int32,
                      environment overrides: [String: String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var failure: Int32 = 0
        func note(_ code: Int32) { if code != 0 && failure == 0 { failure = code } }
        note(posix_spawn_file_actions_adddup2(&actions, stdin, 0))
        note(posix_spawn_file_actions_adddup2(&actions, stdout, 1))
        note(posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0))
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            note(unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3))
        } else {
            for fd in openDescriptors() where fd > 2 {
                note(posix_spawn_file_actions_addclose(&actions, fd))
            }
        }
        // Default signal dispositions and an empty signal mask in the agent, whatever this process set.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        var mask = sigset_t()
        sigemptyset(&mask)
        note(posix_spawnattr_setsigdefault(&attributes, &defaults))
        note(posix_spawnattr_setsigmask(&attributes, &mask))
        note(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)))
        guard failure == 0 else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.28", ("p1", String(cString: strerror(failure)))))
        }

        var environment = ProcessInfo.processInfo.environment
        for (key, value) in overrides { environment[key] = value }
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard code == 0 else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.30", ("p1", executable), ("p2", String(cString: strerror(code)))))
        }
        return pid
    }

    /// Waits for the agent in a thread of its own, so it leaves no zombie while this process lives.
    static func reapInBackground(_ pid: pid_t) {
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    // MARK: Serving

    /// The body of `shelter agent`: reads the session and keys from stdin, creates the socket,
    /// says "ready" on stdout, then serves until the session ends. Returns the exit status.
    public static func serve() -> Int32 {
        closeInheritedDescriptors()
        umask(0o177) // the socket file: 0600
        signal(SIGPIPE, SIG_IGN)
        signal(SIGTERM, agentSignalHandler)
        signal(SIGINT, agentSignalHandler)
        signal(SIGHUP, agentSignalHandler)

        var input: [UInt8]
        switch readLine(0, limit: 64 * 1024, timeout: 30) {
        case let .line(bytes): input = bytes
        default:
            writeLine(1, "error: no session on standard input")
            return 1
        }
        _ = setsid()
        _ = chdir("/")

        return run(input: &input, directory: nil, ready: { line in
            writeLine(1, line)
            let null = open("/dev/null", O_RDWR)
            if null >= 0 {
                _ = dup2(null, 0)
                _ = dup2(null, 1)
                _ = dup2(null, 2)
                if null > 2 { close(null) }
            }
        }, shouldStop: { agentStopRequested != 0 })
    }

    /// The agent itself: `input` is the handoff line (wiped here), `directory` the sockets'
    /// directory (nil: `directory()`), `ready` is told "ready" or "error: …" exactly once.
    /// Returns 0 when a session ran and ended, 1 when none could start.
    static func run(input: inout [UInt8], directory: String?, ready: (String) -> Void,
                    shouldStop: () -> Bool = { false }) -> Int32 {
        let agent: Agent
        do {
            agent = try Agent(handoff: &input, directory: directory)
        } catch let error as ReplicaError {
            ready("error: \(error.message)")
            return 1
        } catch {
            ready("error: \(error)")
            return 1
        }
        ready("ready")
        agent.serve(shouldStop: shouldStop)
        return 0
    }

    struct Handoff: Decodable {
        var info: AgentSessionInfo
        var keys: Data
    }

    struct Request: Codable {
        var op: String
        var digest: String?
        var staff: String?
        /// `unseal`: a shelter key grant to her.
        var grant: String? = nil
    }

    struct Answer: Codable {
        var info: AgentSessionInfo?
        var signature: String?
        var ok: Bool?
        var error: String?
        /// `unseal`: the shelter key (base64).
        var key: String? = nil
    }

    static let otherSessionMessage = "this login session is another member of staff's"
    static let requestLimit = 4096
    static let connectionTimeout: Double = 2

    /// One session: its socket, its keys, its clock.
    final class Agent {
        private(set) var info: AgentSessionInfo
        private var keys: StaffKeys?
        private var signer: KeySigner?
        let path: String
        private var listener: Int32 = -1
        private var socketFile: FileStatus?
        /// The replica file the session was opened on.
        private var replicaFile: FileStatus?
        private var lastUse: Double
        private var lastUseDate: Date
        private let uid = getuid()

        init(handoff input: inout [UInt8], directory: String?) throws {
            defer { LoginAgent.wipe(&input) }
            var handoff: Handoff
            do {
                handoff = try LoginAgent.decoder().decode(Handoff.self, from: Data(input))
            } catch {
                throw ReplicaError(.invalidArgument, t("err.LoginAgent.31"))
            }
            defer { handoff.keys.resetBytes(in: 0..<handoff.keys.count) }
            let keys: StaffKeys
            do {
                keys = try StaffKeys(secretBytes: handoff.keys)
            } catch {
                throw ReplicaError(.invalidArgument, t("err.LoginAgent.32"))
            }
            info = handoff.info
            try LoginAgent.check(info)
            guard access(info.replicaPath, F_OK) == 0 else {
                throw ReplicaError(.fileNotFound, t("err.LoginAgent.16", ("p1", info.replicaPath)))
            }
            let replica = ReplicaID(info.replica)!
            let dir = try directory.map { dir in try LoginAgent.ensurePrivateDirectory(dir); return dir } ?? LoginAgent.directory()
            path = try LoginAgent.socketPath(replica: replica, replicaPath: info.replicaPath, directory: dir)
            replicaFile = FileStatus(info.replicaPath)
            self.keys = keys
            signer = KeySigner(name: info.name, keys: keys)
            lastUse = LoginAgent.uptime()
            lastUseDate = Date()
            try listen()
        }

        deinit { end() }

        private func listen() throws {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw ReplicaError(.storage, t("err.LoginAgent.34", ("p1", systemError()))) }
            var address = LoginAgent.address(path)
            _ = unlink(path) // a stale socket (a live agent for this replica was logged out, or ends on seeing this)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else {
                let reason = systemError()
                close(fd)
                throw ReplicaError(.storage, t("err.LoginAgent.35", ("p1", path), ("p2", reason)))
            }
            guard chmod(path, 0o600) == 0, let status = FileStatus(path), Glibc.listen(fd, 16) == 0 else {
                let reason = systemError()
                close(fd)
                _ = unlink(path)
                throw ReplicaError(.storage, t("err.LoginAgent.36", ("p1", path), ("p2", reason)))
            }
            listener = fd
            socketFile = status
        }

        /// Whether the socket file is still the one this agent bound.
        var ownsSocket: Bool {
            socketFile?.isSameFile(as: FileStatus(path)) ?? false
        }

        /// Serves requests until the session ends, then ends it.
        func serve(shouldStop: () -> Bool) {
            defer { end() }
            var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            while true {
                if shouldStop() { return }
                // Idle by the monotonic clock or by the wall clock, whichever says so first: the
                // monotonic clock does not run while the machine sleeps; the wall clock can be set back.
                let idle = Double(info.idleSeconds)
                let left = min(lastUse + idle - LoginAgent.uptime(), idle - Date().timeIntervalSince(lastUseDate))
                if left <= 0 { return }
                if !ownsSocket { return }
                if !replicaIsTheSame() { return }
                let timeout = Int32(max(1, min(1000, (left * 1000).rounded(.up))))
                descriptor.revents = 0
                let count = poll(&descriptor, 1, timeout)
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return
                }
                if count == 0 { continue }
                if descriptor.revents & Int16(POLLIN) != 0 {
                    if handleConnection() == .end { return }
                } else if descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                    return
                }
            }
        }

        enum Outcome { case goOn, end }

        /// Whether the session's replica file is still there and still the file it was opened on
        /// (not a copy or a restore moved over it). A file that cannot be examined for another
        /// reason is given the benefit of the doubt.
        func replicaIsTheSame() -> Bool {
            if let now = FileStatus(info.replicaPath) { return now.isSameFile(as: replicaFile) }
            return !(access(info.replicaPath, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR))
        }

        /// Accepts one connection and answers its one request.
        func handleConnection() -> Outcome {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return .goOn }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            defer { close(fd) }
            guard LoginAgent.peerUID(fd) == uid else { return .goOn } // not hers: no answer at all
            // Its replica file gone or replaced: the session is over before it answers anything.
            guard replicaIsTheSame() else { return .end }

            let request: Request
            switch LoginAgent.readLine(fd, limit: LoginAgent.requestLimit, timeout: LoginAgent.connectionTimeout) {
            case let .line(bytes):
                guard let decoded = try? LoginAgent.decoder().decode(Request.self, from: Data(bytes)) else {
                    answer(fd, Answer(error: "the request is not a JSON request"))
                    return .goOn
                }
                request = decoded
            case .tooLarge:
                answer(fd, Answer(error: "the request is larger than \(LoginAgent.requestLimit) bytes"))
                return .goOn
            case .closed, .timedOut, .failed:
                return .goOn
            }

            if let staff = request.staff, staff != info.staff, request.op == "sign" || request.op == "logout" || request.op == "unseal" {
                answer(fd, Answer(error: LoginAgent.otherSessionMessage))
                return .goOn
            }
            switch request.op {
            case "status":
                var current = info
                current.expiresAt = lastUseDate.addingTimeInterval(TimeInterval(info.idleSeconds))
                answer(fd, Answer(info: current))
            case "sign":
                guard let text = request.digest, let digest = Data(base64Encoded: text), digest.count == 32 else {
                    answer(fd, Answer(error: "the digest must be 32 bytes in base64"))
                    return .goOn
                }
                guard let signer, let signature = try? signer.sign(Array(digest)) else {
                    answer(fd, Answer(error: "the signature failed"))
                    return .goOn
                }
                lastUse = LoginAgent.uptime()
                lastUseDate = Date()
                answer(fd, Answer(signature: Data(signature).base64EncodedString()))
            case "unseal":
                guard let grant = request.grant, let keys else {
                    answer(fd, Answer(error: "an unseal request needs a grant"))
                    return .goOn
                }
                guard let key = try? RecordKeys.open(grant: grant, staffID: info.staff, with: keys.agreement) else {
                    answer(fd, Answer(error: "the grant does not open with this member's key"))
                    return .goOn
                }
                // Reading is not a write: it does not keep the session alive (`--idle`).
                answer(fd, Answer(key: Data(key.bytes).base64EncodedString()))
            case "logout":
                // The socket goes before the answer: whoever hears "ok" finds no session any more.
                if ownsSocket { _ = unlink(path) }
                answer(fd, Answer(ok: true))
                return .end
            default:
                answer(fd, Answer(error: "unknown request \(request.op.prefix(40))"))
            }
            return .goOn
        }

        private func answer(_ fd: Int32, _ answer: Answer) {
            guard var bytes = try? LoginAgent.encoder().encode(answer) else { return }
            bytes.append(0x0A)
            _ = LoginAgent.writeAll(fd, Array(bytes), socket: true, timeout: LoginAgent.connectionTimeout)
        }

        /// Removes the socket (when it is still this agent's) and drops the keys.
        func end() {
            if listener >= 0 {
                if ownsSocket { _ = unlink(path) }
                close(listener)
                listener = -1
            }
            // The private keys live in swift-crypto's SecureBytes, which overwrites them with zeros
            // when the last reference goes.
            signer = nil
            keys = nil
        }
    }

    // MARK: Connecting

    /// The running session of the replica file at `replicaPath` (whose id is `replica`), or nil when
    /// there is none (a stale socket file is removed). A session opened on another file — a copy
    /// of this replica, or the file that was at this path before — is not this replica's.
    public static func connect(replica: ReplicaID, replicaPath: String) throws -> AgentSession? {
        try connect(replica: replica, replicaPath: replicaPath, directory: directory())
    }

    static func connect(replica: ReplicaID, replicaPath: String, directory: String, sameFileOnly: Bool = true) throws -> AgentSession? {
        let path = try socketPath(replica: replica, replicaPath: replicaPath, directory: directory)
        guard let status = FileStatus(path) else { return nil }
        let answer: Answer
        do {
            answer = try ask(Request(op: "status"), at: path)
        } catch .noAgent {
            // Nobody listens: a socket left by an agent that was killed. Remove it if it is still that one.
            if status.type == .typeSocket, status.isSameFile(as: FileStatus(path)) {
                _ = unlink(path)
            }
            return nil
        } catch .closed {
            return nil // an agent that is ending
        } catch let .failed(message) {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.37", ("p1", path), ("p2", message)))
        }
        if let error = answer.error {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.38", ("p1", path), ("p2", error)))
        }
        guard let info = answer.info else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.39", ("p1", path)))
        }
        guard info.replica == replica.description else {
            throw ReplicaError(.invalidArgument, t("err.LoginAgent.40", ("p1", path), ("p2", info.replica), ("p3", replica)))
        }
        if sameFileOnly {
            guard let file = FileStatus(canonicalPath(replicaPath)), file.isSameFile(as: FileStatus(info.replicaPath)) else { return nil }
        }
        return AgentSession(info: info, socketPath: path)
    }

    enum ExchangeFailure: Error {
        /// No socket file, or nobody listening on it.
        case noAgent
        /// The agent closed the connection without an answer.
        case closed
        case failed(String)
    }

    static func ask(_ request: Request, at path: String, timeout: Double = 5) throws(ExchangeFailure) -> Answer {
        guard var bytes = try? encoder().encode(request) else { throw .failed("cannot encode the request") }
        bytes.append(0x0A)
        let answer = try exchange(Array(bytes), at: path, timeout: timeout)
        guard let decoded = try? decoder().decode(Answer.self, from: Data(answer)) else {
            throw .failed("the answer is not readable")
        }
        return decoded
    }

    /// Sends one request line to the agent at `path` and returns its answer line.
    static func exchange(_ request: [UInt8], at path: String, timeout: Double = 5) throws(ExchangeFailure) -> [UInt8] {
        guard path.utf8.count <= maximumSocketPathLength else { throw .failed("the socket path \(path) is too long") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed(systemError()) }
        defer { close(fd) }
        var address = address(path)
        var connected: Int32
        repeat {
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        } while connected != 0 && errno == EINTR
        guard connected == 0 else {
            switch errno {
            case ENOENT, ECONNREFUSED, ENOTSOCK: throw .noAgent
            default: throw .failed(systemError())
            }
        }
        guard peerUID(fd) == getuid() else {
            throw .failed("the socket \(path) is not served by a process of this user")
        }
        guard writeAll(fd, request, socket: true, timeout: timeout) else {
            if errno == EPIPE || errno == ECONNRESET { throw .closed }
            throw .failed(systemError())
        }
        _ = shutdown(fd, Int32(SHUT_WR))
        switch readLine(fd, limit: 64 * 1024, timeout: timeout) {
        case let .line(bytes): return bytes
        case .closed: throw .closed
        case .timedOut: throw .failed("no answer within \(Int(timeout)) s")
        case .tooLarge: throw .failed("the answer is too large")
        case let .failed(code):
            if code == ECONNRESET { throw .closed }
            throw .failed(String(cString: strerror(code)))
        }
    }

    // MARK: Plumbing

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(maximumSocketPathLength))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    private struct PeerCredentials { var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0 } // struct ucred

    /// The uid of the process at the other end of a Unix socket (SO_PEERCRED), nil when unknown.
    static func peerUID(_ fd: Int32) -> uid_t? {
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
              length == socklen_t(MemoryLayout<PeerCredentials>.size) else { return nil }
        return credentials.uid
    }

    enum LineResult {
        case line([UInt8])
        case tooLarge
        case closed
        case timedOut
        case failed(Int32)
    }

    /// Reads up to the first newline (not included), at most `limit` bytes, within `timeout`
    /// seconds in all. EOF after some bytes counts as the end of the line.
    static func readLine(_ fd: Int32, limit: Int, timeout: Double) -> LineResult {
        let deadline = uptime() + timeout
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        defer { wipe(&chunk) }
        while true {
            let left = deadline - uptime()
            if left <= 0 { wipe(&buffer); return .timedOut }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(1, min(Double(Int32.max), (left * 1000).rounded(.up)))))
            if ready < 0 {
                if errno == EINTR { continue }
                let code = errno
                wipe(&buffer)
                return .failed(code)
            }
            if ready == 0 { continue }
            let wanted = min(chunk.count, limit + 1 - buffer.count)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                let code = errno
                wipe(&buffer)
                return .failed(code)
            }
            if count == 0 { return buffer.isEmpty ? .closed : .line(buffer) }
            if let newline = chunk[0..<count].firstIndex(of: 0x0A) {
                buffer.append(contentsOf: chunk[0..<newline])
                if buffer.count > limit { wipe(&buffer); return .tooLarge }
                return .line(buffer)
            }
            buffer.append(contentsOf: chunk[0..<count])
            if buffer.count > limit { wipe(&buffer); return .tooLarge }
        }
    }

    /// Writes all of `bytes` within `timeout` seconds (MSG_NOSIGNAL on sockets: no SIGPIPE).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], socket: Bool, timeout: Double) -> Bool {
        let deadline = uptime() + timeout
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                socket ? send(fd, raw.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
                       : write(fd, raw.baseAddress! + written, bytes.count - written)
            }
            if count >= 0 { written += count; continue }
            if errno == EINTR { continue }
            guard errno == EAGAIN else { return false }
            let left = deadline - uptime()
            if left <= 0 { return false }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&descriptor, 1, Int32(max(1, min(1000, left * 1000))))
        }
        return true
    }

    static func writeLine(_ fd: Int32, _ line: String) {
        _ = writeAll(fd, Array((line + "\n").utf8), socket: false, timeout: 2)
    }

    /// A monotonic clock in seconds (for deadlines; not moved by setting the wall clock).
    static func uptime() -> Double { ProcessInfo.processInfo.systemUptime }

    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicit_bzero(base, raw.count) }
        }
    }

    /// The descriptors open in this process (from /proc/self/fd; empty when /proc is not mounted).
    static func openDescriptors() -> [Int32] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        let own = dirfd(dir)
        var result: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let fd = Int32(name), fd != own { result.append(fd) }
        }
        closedir(dir)
        return result
    }

    /// Closes every descriptor above 2 this process was started with — belt and braces, since
    /// `start` already gives the agent only 0, 1 and 2 — so that no pipe of whoever started the
    /// login stays open for the agent's lifetime. Descriptors the runtime made itself (epoll,
    /// eventfd, timerfd: "anon_inode:") are left alone.
    static func closeInheritedDescriptors() {
        for fd in openDescriptors() where fd > 2 {
            var target = [CChar](repeating: 0, count: 256)
            let length = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
            if length > 0 {
                let text = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text.hasPrefix("anon_inode:") { continue }
            }
            close(fd)
        }
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    static func systemError() -> String { String(cString: strerror(errno)) }
}

/// Set by SIGTERM, SIGINT or SIGHUP in the agent process; the serving loop looks at least once a second.
nonisolated(unsafe) private var agentStopRequested: Int32 = 0

private func agentSignalHandler(_ signal: Int32) {
    agentStopRequested = 1
}
