@testable import ClientKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ShelterDomain
import SyncCore
import Testing
import TestSupport

/// A login agent (`LoginAgent.run`, the body of `shelter agent`) running on a thread of this process.
final class InProcessAgent: @unchecked Sendable {
    // @unchecked: every field is read and written under `condition`.
    private let condition = NSCondition()
    private var readyLine: String?
    private var exitCode: Int32?

    static func start(input: [UInt8], directory: String) -> InProcessAgent {
        let agent = InProcessAgent()
        Thread.detachNewThread {
            var input = input
            let code = LoginAgent.run(input: &input, directory: directory, ready: { line in
                agent.update { $0.readyLine = line }
            })
            agent.update { $0.exitCode = code }
        }
        return agent
    }

    private func update(_ change: (InProcessAgent) -> Void) {
        condition.lock()
        change(self)
        condition.broadcast()
        condition.unlock()
    }

    private func wait<T>(within seconds: Double, for value: (InProcessAgent) -> T?) -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result = value(self) { return result }
            if !condition.wait(until: deadline) { return value(self) }
        }
    }

    /// "ready" or "error: …", nil when the agent said nothing in time.
    func ready(within seconds: Double = 5) -> String? { wait(within: seconds) { $0.readyLine } }
    /// The agent's status once it ended, nil while it still runs.
    func exit(within seconds: Double) -> Int32? { wait(within: seconds) { $0.exitCode } }
}

/// A private agents' directory, a replica file and a member of staff's keys, in a temporary directory.
struct AgentFixture {
    let temp: TemporaryDirectory
    let directory: String
    let replica = ReplicaID.random()
    let replicaPath: String
    let keys = StaffKeys()
    let info: AgentSessionInfo
    let socketPath: String

    init(idleSeconds: Int = 60) throws {
        temp = try TemporaryDirectory("agent")
        directory = try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": temp.file("agents")])
        replicaPath = temp.file("replica.shelter")
        #expect(FileManager.default.createFile(atPath: replicaPath, contents: Data("replica".utf8)))
        info = AgentSessionInfo(name: " Mette Hansen ", replica: replica, replicaPath: replicaPath, idleSeconds: idleSeconds)
        socketPath = try LoginAgent.socketPath(replica: replica, replicaPath: replicaPath, directory: directory)
    }

    /// Runs an agent for this session and waits until it is ready.
    func startAgent() throws -> InProcessAgent {
        let agent = InProcessAgent.start(input: LoginAgent.handoffLine(info: info, keys: keys), directory: directory)
        let line = agent.ready()
        try #require(line == "ready", "the agent said \(line ?? "nothing")")
        return agent
    }

    func connect() throws -> AgentSession? { try connect(replicaPath) }
    func connect(_ path: String) throws -> AgentSession? { try LoginAgent.connect(replica: replica, replicaPath: path, directory: directory) }

    /// Sends one raw request line and returns the agent's answer as a JSON object.
    func ask(_ line: String) throws -> [String: Any] {
        let answer = try LoginAgent.exchange(Array((line + "\n").utf8), at: socketPath)
        return try #require(try JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any])
    }

    var socketExists: Bool { access(socketPath, F_OK) == 0 }

    /// Writes an executable shell script standing in for `shelter` (it is run as `SCRIPT agent`).
    func script(_ name: String, _ body: String) throws -> String {
        let path = temp.file(name)
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        #expect(chmod(path, 0o700) == 0)
        return path
    }

    func remove() { temp.remove() }
}

@Suite struct LoginAgentTests {
    @Test func theSocketIsPrivateAndStatusAnswersTheSession() throws {
        let fixture = try AgentFixture(idleSeconds: 60)
        defer { fixture.remove() }
        let agent = try fixture.startAgent()

        let directory = try #require(LoginAgent.FileStatus(fixture.directory))
        #expect(directory.type == .typeDirectory && directory.permissions & 0o777 == 0o700)
        let socket = try #require(LoginAgent.FileStatus(fixture.socketPath))
        #expect(socket.type == .typeSocket)
        #expect(socket.permissions & 0o777 == 0o600, "socket mode \(String(socket.permissions, radix: 8))")
        #expect(fixture.socketPath == "\(fixture.directory)/\(fixture.replica)-\(LoginAgent.pathTag(fixture.replicaPath)).sock")

        let session = try #require(try fixture.connect())
        #expect(session.info.staff == "mette hansen" && session.info.name == "Mette Hansen")
        #expect(session.signer == "mette hansen" && session.author == "Mette Hansen")
        #expect(session.info.replica == fixture.replica.description && session.info.replicaPath == fixture.replicaPath)
        #expect(session.info.idleSeconds == 60)
        let expires = session.info.expiresAt.timeIntervalSinceNow
        #expect(expires > 55 && expires <= 61, "expires in \(expires) s")

        try session.logout()
        #expect(!fixture.socketExists, "the socket is gone before the agent answers a logout")
        #expect(agent.exit(within: 3) == 0)
        #expect(try fixture.connect() == nil)
        try session.logout() // nothing left to log out: not an error
    }

    @Test func signsWithHerKeyAndASignatureKeepsTheSessionAlive() throws {
        let fixture = try AgentFixture(idleSeconds: 60)
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        let session = try #require(try fixture.connect())

        let digest = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let signature = try session.sign(digest)
        #expect(signature.count == 64)
        #expect(StaffKeys.verify(signature, of: digest, signingKey: fixture.keys.signingKey), "her Ed25519 signature")
        #expect(!StaffKeys.verify(signature, of: digest, signingKey: StaffKeys().signingKey))

        // Status reports the last signature's time and does not extend the session itself.
        let first = try #require(try fixture.connect()).info.expiresAt
        Thread.sleep(forTimeInterval: 1.1)
        let second = try #require(try fixture.connect()).info.expiresAt
        #expect(first == second, "a status request does not extend the session")
        _ = try session.sign(digest)
        let third = try #require(try fixture.connect()).info.expiresAt
        #expect(third > second, "a signature extends the session")

        try session.logout()
        #expect(agent.exit(within: 3) == 0)
    }

    @Test func refusesBadRequestsAndGoesOnServing() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        let session = try #require(try fixture.connect())

        let short = Data(repeating: 7, count: 31).base64EncodedString()
        #expect((try fixture.ask(#"{"op":"sign","digest":"\#(short)"}"#))["error"] as? String == "the digest must be 32 bytes in base64")
        let long = Data(repeating: 7, count: 33).base64EncodedString()
        #expect((try fixture.ask(#"{"op":"sign","digest":"\#(long)"}"#))["error"] != nil)
        #expect((try fixture.ask(#"{"op":"sign","digest":"not base64!"}"#))["error"] != nil)
        #expect((try fixture.ask(#"{"op":"sign"}"#))["error"] != nil)
        #expect(throws: ReplicaError.self) { try session.sign([UInt8](repeating: 1, count: 31)) }
        #expect((try fixture.ask(#"{"op":"export"}"#))["error"] != nil)
        #expect((try fixture.ask("not json"))["error"] != nil)
        let huge = #"{"op":"status","pad":""# + String(repeating: "x", count: 5000) + #""}"#
        let refusal = try #require((try fixture.ask(huge))["error"] as? String)
        #expect(refusal.contains("4096"))
        // A request for another member of staff's session (another login replaced hers) is refused.
        let digest = Data(repeating: 1, count: 32).base64EncodedString()
        #expect((try fixture.ask(#"{"op":"sign","digest":"\#(digest)","staff":"jonas"}"#))["error"] as? String == LoginAgent.otherSessionMessage)
        #expect((try fixture.ask(#"{"op":"logout","staff":"jonas"}"#))["error"] != nil)

        // Still serving, and still hers.
        let answer = try fixture.ask(#"{"op":"sign","digest":"\#(digest)"}"#)
        let text = try #require(answer["signature"] as? String)
        let signature = try #require(Data(base64Encoded: text))
        #expect(StaffKeys.verify(Array(signature), of: [UInt8](repeating: 1, count: 32), signingKey: fixture.keys.signingKey))
        #expect((try fixture.ask(#"{"op":"logout"}"#))["ok"] as? Bool == true)
        #expect(agent.exit(within: 3) == 0)
    }

    @Test func aSessionIsOneReplicaFilesNotACopysOfIt() throws {
        let fixture = try AgentFixture(idleSeconds: 60)
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        // A copy of the replica file (same replica id) on the same machine has no session.
        let copy = fixture.temp.file("copy.shelter")
        try FileManager.default.copyItem(atPath: fixture.replicaPath, toPath: copy)
        #expect(try fixture.connect(copy) == nil, "a copy is not logged in")
        #expect(try LoginAgent.socketPath(replica: fixture.replica, replicaPath: copy, directory: fixture.directory) != fixture.socketPath)
        // The same file through a symbolic link is the same replica.
        let link = fixture.temp.file("link.shelter")
        #expect(symlink(fixture.replicaPath, link) == 0)
        #expect(try fixture.connect(link)?.info.staff == "mette hansen")
        // The copy moved over the original: the session of the file that was there ends.
        #expect(rename(copy, fixture.replicaPath) == 0)
        #expect(try fixture.connect() == nil, "another file at the session's path is not its replica")
        #expect(agent.exit(within: 4) == 0, "the agent ends when its replica file is replaced")
        #expect(!fixture.socketExists)
    }

    @Test func theSessionEndsAfterTheIdleTime() throws {
        let fixture = try AgentFixture(idleSeconds: 1)
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        let session = try #require(try fixture.connect())
        #expect(agent.exit(within: 4) == 0, "an idle session ends")
        #expect(!fixture.socketExists)
        do {
            _ = try session.sign([UInt8](repeating: 0, count: 32))
            Issue.record("an ended session signed")
        } catch let error as ReplicaError {
            #expect(error.code == .invalidArgument)
            // (In-process, texts are in the default language, Danish.)
            #expect(error.message == #"login-sessionen er slut; log ind igen: shelter login "Mette Hansen""#)
        }
        #expect(try fixture.connect() == nil)
    }

    @Test func removingTheSocketEndsTheSession() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        #expect(unlink(fixture.socketPath) == 0)
        #expect(agent.exit(within: 3) == 0, "the agent notices within about a second")
    }

    @Test func replacingTheSocketEndsTheSessionAndLeavesTheNewFile() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        #expect(unlink(fixture.socketPath) == 0)
        #expect(FileManager.default.createFile(atPath: fixture.socketPath, contents: Data("someone else's".utf8)))
        #expect(agent.exit(within: 3) == 0)
        #expect(fixture.socketExists, "the agent removes only its own socket")
    }

    @Test func removingTheReplicaEndsTheSession() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let agent = try fixture.startAgent()
        #expect(unlink(fixture.replicaPath) == 0)
        #expect(agent.exit(within: 3) == 0)
        #expect(!fixture.socketExists)
    }

    @Test func connectFindsNoAgentAndRemovesAStaleSocket() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        #expect(try fixture.connect() == nil, "no socket file: no session")

        // A socket file nobody listens on (its agent was killed).
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var address = LoginAgent.address(fixture.socketPath)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)
        #expect(fixture.socketExists)
        #expect(try fixture.connect() == nil)
        #expect(!fixture.socketExists, "the stale socket is removed")
    }

    @Test func aBadHandoffStartsNoSession() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let garbage = InProcessAgent.start(input: Array("not json\n".utf8), directory: fixture.directory)
        #expect(garbage.ready()?.hasPrefix("error: ") == true)
        #expect(garbage.exit(within: 3) == 1)

        var info = fixture.info
        info.staff = "jonas" // not the id of her name
        let mismatched = InProcessAgent.start(input: LoginAgent.handoffLine(info: info, keys: fixture.keys), directory: fixture.directory)
        #expect(mismatched.ready()?.hasPrefix("error: ") == true)
        #expect(mismatched.exit(within: 3) == 1)

        #expect(unlink(fixture.replicaPath) == 0)
        let missing = InProcessAgent.start(input: LoginAgent.handoffLine(info: fixture.info, keys: fixture.keys), directory: fixture.directory)
        #expect(missing.ready()?.contains("findes ikke") == true, "in-process: Danish, the default")
        #expect(missing.exit(within: 3) == 1)
        #expect(!fixture.socketExists)
    }

    @Test func theDirectoryMustBePrivate() throws {
        let temp = try TemporaryDirectory("agentdir")
        defer { temp.remove() }
        #expect(throws: ReplicaError.self) { try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": "relative/agents"]) }

        let open = temp.file("open")
        #expect(mkdir(open, 0o700) == 0 && chmod(open, 0o750) == 0)
        #expect(throws: ReplicaError.self) { try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": open]) }

        let link = temp.file("link")
        let target = temp.file("target")
        #expect(mkdir(target, 0o700) == 0 && symlink(target, link) == 0)
        #expect(throws: ReplicaError.self) { try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": link]) }

        if getuid() == 0 {
            let foreign = temp.file("foreign")
            #expect(mkdir(foreign, 0o700) == 0 && chown(foreign, 4242, 4242) == 0)
            #expect(throws: ReplicaError.self) { try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": foreign]) }
        }

        // $XDG_RUNTIME_DIR/shelter when SHELTER_AGENT_DIR is not set, created 0700.
        let runtime = temp.file("run")
        #expect(mkdir(runtime, 0o755) == 0)
        let made = try LoginAgent.directory(environment: ["SHELTER_AGENT_DIR": "", "XDG_RUNTIME_DIR": runtime + "/"])
        #expect(made == runtime + "/shelter")
        #expect(LoginAgent.FileStatus(made)?.permissions == 0o700)

        // A socket path beyond sun_path is refused, naming the path and the way out.
        let deep = temp.file(String(repeating: "d", count: 90))
        let replica = ReplicaID.random()
        #expect(mkdir(deep, 0o700) == 0)
        do {
            _ = try LoginAgent.socketPath(replica: replica, replicaPath: "/r.shelter", directory: deep)
            Issue.record("a socket path longer than sun_path was accepted")
        } catch let error as ReplicaError {
            #expect(error.message.contains(deep) && error.message.contains("SHELTER_AGENT_DIR"))
        }
    }

    @Test func startHandsTheSessionOnStdinAndNoOtherDescriptor() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let out = fixture.temp.path
        let executable = try fixture.script("shelter", """
            IFS= read -r line
            printf '%s' "$line" > '\(out)/handoff'
            printf '%s' "$*" > '\(out)/args'
            env > '\(out)/env'
            echo ready
            exec sleep 1
            """)

        // A pipe this process could be holding for a harness: the agent must not keep it open.
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        try LoginAgent.start(executable: executable, info: fixture.info, keys: fixture.keys, directory: fixture.directory)
        close(fds[1])
        var descriptor = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        #expect(poll(&descriptor, 1, 500) == 1, "the pipe's write end lives on only in this process")
        var byte: UInt8 = 0
        #expect(read(fds[0], &byte, 1) == 0, "end of file: no child holds the write end")

        #expect(try String(contentsOfFile: "\(out)/args", encoding: .utf8) == "agent")
        let environment = try String(contentsOfFile: "\(out)/env", encoding: .utf8)
        let secret = Data(fixture.keys.secretBytes).base64EncodedString()
        #expect(!environment.contains(secret), "no keys in the environment")
        #expect(environment.contains("SHELTER_AGENT_DIR=\(fixture.directory)\n"))
        let handoff = try LoginAgent.decoder().decode(LoginAgent.Handoff.self, from: Data(contentsOf: URL(fileURLWithPath: "\(out)/handoff")))
        #expect(handoff.info.staff == "mette hansen" && handoff.info.name == "Mette Hansen" && handoff.info.idleSeconds == 60)
        #expect(handoff.info.replica == fixture.info.replica && handoff.info.replicaPath == fixture.replicaPath)
        #expect(Array(handoff.keys) == fixture.keys.secretBytes)
    }

    @Test func startReportsAnAgentThatDoesNotStart() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let refusing = try fixture.script("refusing", "echo 'error: the replica is locked'")
        do {
            try LoginAgent.start(executable: refusing, info: fixture.info, keys: fixture.keys, directory: fixture.directory)
            Issue.record("started")
        } catch let error as ReplicaError {
            #expect(error.message == "login-agenten startede ikke: the replica is locked")
        }
        let silent = try fixture.script("silent", "exit 3")
        do {
            try LoginAgent.start(executable: silent, info: fixture.info, keys: fixture.keys, directory: fixture.directory)
            Issue.record("started")
        } catch let error as ReplicaError {
            #expect(error.message.contains("stoppede, før den var klar"))
        }
        let slow = try fixture.script("slow", "exec sleep 3")
        let began = Date()
        do {
            try LoginAgent.start(executable: slow, info: fixture.info, keys: fixture.keys, directory: fixture.directory, readyTimeout: 0.5)
            Issue.record("started")
        } catch let error as ReplicaError {
            #expect(error.message.contains("var ikke klar"))
        }
        #expect(Date().timeIntervalSince(began) < 2)
        #expect(throws: ReplicaError.self) {
            try LoginAgent.start(executable: fixture.temp.file("missing"), info: fixture.info, keys: fixture.keys, directory: fixture.directory)
        }
    }

    @Test func startLogsOutTheAgentItReplaces() throws {
        let fixture = try AgentFixture()
        defer { fixture.remove() }
        let running = try fixture.startAgent()
        let executable = try fixture.script("shelter", "read -r line; echo ready")
        try LoginAgent.start(executable: executable, info: fixture.info, keys: fixture.keys, directory: fixture.directory)
        #expect(running.exit(within: 1) == 0, "the running agent was told to log out before the new one started")
    }
}
