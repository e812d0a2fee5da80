import Foundation
import Server
import Testing
import TestSupport

/// The server admin's commands and the workstation's sync commands, as real processes.
@Suite(.serialized) struct ServerCLITests {
    func mode(_ path: String) -> Int? { try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int }

    @Test(.timeLimit(.minutes(2))) func aServerAndTwoWorkstationsThroughTheCLI() throws {
        let dir = try TemporaryDirectory("server-cli")
        defer { dir.remove() }
        let srv = dir.file("srv")
        func shelter(_ arguments: String...) throws -> ShelterProcess.Result { try ShelterProcess.run(arguments) }

        // server init: 0700 directory, 0600 keys; a second init is refused.
        #expect(try shelter("server", "init", "--dir", srv, "--rooms", "3", "--host", "shelter.local").status == 0)
        #expect(mode(srv) == 0o700)
        for file in ["ca-key.pem", "server-key.pem", "server.db"] { #expect(mode("\(srv)/\(file)") == 0o600, "\(file)") }
        let again = try shelter("server", "init", "--dir", srv)
        #expect(again.status != 0 && again.stderr.contains("already holds a ShelterSync server"))

        // The first leader comes to exist at the server admin's hand; a short passphrase is refused.
        #expect(try ShelterProcess.addServerStaff(srv).status == 0)
        let short = dir.file("short")
        FileManager.default.createFile(atPath: short, contents: Data("too short\n".utf8))
        let weak = try shelter("server", "staff", "add", "eva", "--role", "office", "--dir", srv, "--passphrase-file", short)
        #expect(weak.status == 1 && weak.stderr.contains("at least 10 characters") && !weak.stderr.contains("too short"), "\(weak)")
        let staffList = try shelter("server", "staff", "list", "--dir", srv, "--json").json()
        let members = try #require(staffList["staff"] as? [[String: Any]])
        #expect(members.count == 1 && Set(members[0].keys) == ["name", "role", "removed"] && members[0]["role"] as? String == "leader")

        // enroll: unique names, 0600 bundles.
        let enrolled = try shelter("server", "enroll", "--dir", srv, "--name", "reception", "--out", dir.file("reception.bundle"))
        #expect(enrolled.status == 0 && enrolled.stdout.contains("replica") && enrolled.stdout.contains("serial"), "\(enrolled)")
        #expect(mode(dir.file("reception.bundle")) == 0o600)
        #expect(try shelter("server", "enroll", "--dir", srv, "--name", "office", "--out", dir.file("office.bundle")).status == 0)
        let duplicate = try shelter("server", "enroll", "--dir", srv, "--name", "reception", "--out", dir.file("other.bundle"))
        #expect(duplicate.status != 0 && duplicate.stderr.contains("already enrolled"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("other.bundle")))
        #expect(try shelter("server", "enroll", "--dir", srv, "--name", "bad name!").status != 0)

        // run: port 0, the real port on stderr.
        let errors = Pipe()
        let server = try ShelterProcess.start(["server", "run", "--dir", srv, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"], stderr: errors)
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        let firstLine = try #require(readLine(from: errors.fileHandleForReading, startingWith: "listening on "))
        #expect(firstLine.hasPrefix("listening on 127.0.0.1:"))
        let handle = errors.fileHandleForReading
        Thread.detachNewThread { while !handle.availableData.isEmpty {} }
        let address = String(firstLine.dropFirst("listening on ".count))
        #expect(!address.hasSuffix(":0"))

        // Workstations bound to the server.
        let a = dir.file("a.replica"), b = dir.file("b.replica")
        #expect(try shelter("init", "--replica", a, "--bundle", dir.file("reception.bundle"), "--server", address).status == 0)
        #expect(try shelter("init", "--replica", b, "--bundle", dir.file("office.bundle"), "--server", address).status == 0)
        #expect(mode(a) == 0o600)
        let bound = try shelter("init", "--replica", dir.file("c.replica"), "--bundle", dir.file("office.bundle"), "--server", address, "--rooms", "3")
        #expect(bound.status != 0)
        // init made the first sync: the 3 rooms and the leader are here; the next sync has nothing new.
        #expect((try shelter("rooms", "--replica", a, "--json").json()["rooms"] as? [Any])?.count == 3)
        let sync = try shelter("sync", "--replica", a, "--json")
        #expect(sync.status == 0, "\(sync)")
        let report = try sync.json()
        #expect(Set(report.keys) == ["pushed", "pulled", "conflicts", "cursor", "durationMs", "recovered", "resumedFrom", "restamped", "rejected", "snapshotRows"])
        #expect(report["pulled"] as? Int == 0 && report["recovered"] as? Int == 0 && report["resumedFrom"] is NSNull,
                "3 rooms and the leader, pulled by init")
        #expect(try shelter("sync", "--replica", b).status == 0)

        // Every write needs a session: refused before login, nothing written.
        let anonymousWrite = try shelter("admit", "--replica", a, "--name", "Nobody", "--municipality", "Køge")
        #expect(anonymousWrite.status == 1 && anonymousWrite.stderr.contains("log in first: shelter login NAME"), "\(anonymousWrite)")
        #expect((try shelter("status", "--replica", a, "--json").json()["unsynced"] as? Int) == 0)
        let wrong = dir.file("wrong")
        FileManager.default.createFile(atPath: wrong, contents: Data("not the passphrase\n".utf8))
        let badLogin = try shelter("login", ShelterProcess.tester, "--replica", a, "--passphrase-file", wrong)
        #expect(badLogin.status == 1 && badLogin.stderr.contains("wrong passphrase") && !badLogin.stderr.contains("not the passphrase"), "\(badLogin)")
        #expect(try shelter("whoami", "--replica", a).status == 1)
        #expect(try ShelterProcess.login(a).status == 0 && ShelterProcess.login(b).status == 0)
        let whoami = try shelter("whoami", "--replica", a, "--json").json()
        #expect(Set(whoami.keys) == ["staff", "role", "replica", "expiresAt"] && whoami["staff"] as? String == "tester" && whoami["role"] as? String == "leader")

        // A conflict, through the CLI.
        let admitted = try shelter("admit", "--replica", a, "--name", "Anna", "--municipality", "Køge", "--json").json()
        let resident = try #require(admitted["resident"] as? String)
        #expect(try shelter("sync", "--replica", a).status == 0)
        #expect(try shelter("sync", "--replica", b).status == 0)
        #expect(try shelter("resident", "set", resident, "phone=1", "--replica", a).status == 0)
        #expect(try shelter("resident", "set", resident, "phone=2", "--replica", b).status == 0)
        #expect(try shelter("sync", "--replica", a).status == 0)
        #expect(try shelter("sync", "--replica", b, "--json").json()["conflicts"] as? Int == 1)
        let listed = try shelter("conflicts", "--replica", b, "--json").json()
        let conflict = try #require((listed["conflicts"] as? [[String: Any]])?.first)
        #expect(Set(conflict.keys).isSuperset(of: ["id", "kind", "table", "row", "column", "status", "values", "winner"]))
        #expect(conflict["kind"] as? String == "field" && conflict["column"] as? String == "phone" && conflict["status"] as? String == "open")
        let values = try #require(conflict["values"] as? [[String: Any]])
        #expect(Set(values.compactMap { $0["value"] as? String }) == ["1", "2"])
        #expect(Set(values[0].keys) == ["value", "author", "replica", "at", "workstation"])
        #expect(Set(values.compactMap { $0["workstation"] as? String }) == ["reception", "office"], "the server named both workstations")
        let id = try #require(conflict["id"] as? String)
        #expect(try shelter("conflicts", "resolve", id, "--keep", "9", "--replica", b).status != 0)
        #expect(try shelter("conflicts", "resolve", id, "--keep", "0", "--value", "3", "--replica", b).status != 0)
        #expect(try shelter("conflicts", "resolve", String(id.prefix(8)), "--keep", "0", "--replica", b).status == 0)
        #expect((try shelter("conflicts", "--replica", b, "--json").json()["conflicts"] as? [Any])?.isEmpty == true)
        #expect((try shelter("conflicts", "--all", "--replica", b, "--json").json()["conflicts"] as? [Any])?.count == 1)

        // Every signature in both logs checks out.
        let verified = try shelter("server", "verify", "--dir", srv, "--json")
        #expect(verified.status == 0, "\(verified)")
        let verification = try verified.json()
        #expect(Set(verification.keys) == ["transactions", "verified", "erasedUnchecked", "beforeSnapshot", "snapshot", "invalid"] && verification["transactions"] as? Int == verification["verified"] as? Int)
        #expect(try shelter("verify", "--replica", b).status == 0)

        // Revoked while running: refused, exit 1, the change stays unsynced.
        #expect(try shelter("server", "revoke", "--dir", srv, "--name", "office").status == 0)
        #expect(try shelter("resident", "set", resident, "language=ar", "--replica", b).status == 0)
        let refused = try shelter("sync", "--replica", b)
        #expect(refused.status == 1 && refused.stderr.contains("revoked"))
        let status = try shelter("status", "--replica", b, "--json").json()
        #expect((status["unsynced"] as? Int ?? 0) >= 1 && status["server"] as? String == address && status["lastSync"] is String)

        // SIGTERM: exit 0.
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationReason == .exit && server.terminationStatus == 0)
        let unreachable = try shelter("sync", "--replica", a)
        #expect(unreachable.status == 1 && unreachable.stderr.contains("cannot reach the sync server"))
        // Logged out: the session ends, writes are refused again.
        #expect(try shelter("logout", "--replica", a).status == 0)
        #expect(try shelter("admit", "--replica", a, "--name", "Later", "--municipality", "Køge").status == 1)
    }

    /// `server run` takes its language from SHELTER_LANG, else LANG, else Danish, and its page's
    /// time zone from TZ.
    @Test(.timeLimit(.minutes(2))) func theAdminPageSpeaksTheServersLanguage() async throws {
        let dir = try TemporaryDirectory("server-language")
        defer { dir.remove() }
        let directory = try ServerDirectory.initialize(at: dir.file("srv"), rooms: 2)
        _ = try directory.enroll(name: "reception", bundlePath: dir.file("r.bundle"))
        let srv = directory.path
        for (environment, expected) in [
            (["SHELTER_LANG": "", "LANG": "C.UTF-8", "TZ": ""], ["<h1>Arbejdsstationer</h1>", "Aldrig synkroniseret", "tidszonen Europe/Copenhagen"]),
            (["SHELTER_LANG": "", "LANG": "en_GB.UTF-8", "TZ": "Asia/Tokyo"], ["<h1>Workstations</h1>", "Never synced", "the Asia/Tokyo time zone"]),
        ] {
            let page = try await offThePool {
                let server = try ServerProcess.start(directory: srv, environment: environment, waitForAdmin: true)
                defer { server.stop() }
                return try BlockingHTTP.request("GET", port: server.adminPort ?? 0, path: "/")
            }
            #expect(page.status == 200)
            for text in expected { #expect(page.body.contains(text), "\(environment): the page lacks \(text)") }
        }
    }

    @Test func badServerInputIsRefusedClearly() throws {
        let dir = try TemporaryDirectory("server-cli")
        defer { dir.remove() }
        let noDir = try ShelterProcess.run(["server", "enroll", "--dir", dir.file("nothing"), "--name", "x"])
        #expect(noDir.status != 0 && noDir.stderr.contains("does not hold a ShelterSync server"))
        let listen = try ShelterProcess.run(["server", "run", "--dir", dir.path, "--listen", "nonsense"])
        #expect(listen.status != 0 && listen.stderr.contains("HOST:PORT"))
        // A bundle that is corrupt, and one whose certificate another CA signed.
        try Data("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: dir.file("corrupt.bundle")))
        let corrupt = try ShelterProcess.run(["init", "--replica", dir.file("r.replica"), "--bundle", dir.file("corrupt.bundle"), "--server", "127.0.0.1:7443"])
        #expect(corrupt.status != 0 && corrupt.stderr.contains("corrupt.bundle"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("r.replica")), "a refused init leaves no file")
        #expect(try ShelterProcess.run(["server", "init", "--dir", dir.file("one")]).status == 0)
        #expect(try ShelterProcess.run(["server", "init", "--dir", dir.file("two")]).status == 0)
        #expect(try ShelterProcess.run(["server", "enroll", "--dir", dir.file("one"), "--name", "w", "--out", dir.file("w.bundle")]).status == 0)
        let bundle = try String(contentsOfFile: dir.file("w.bundle"), encoding: .utf8)
        let otherCA = try String(contentsOfFile: dir.file("two") + "/ca.pem", encoding: .utf8)
        let blocks = bundle.components(separatedBy: "-----BEGIN CERTIFICATE-----")
        try (blocks[0] + "-----BEGIN CERTIFICATE-----" + blocks[1] + otherCA).write(toFile: dir.file("mixed.bundle"), atomically: true, encoding: .utf8)
        let mixed = try ShelterProcess.run(["init", "--replica", dir.file("r.replica"), "--bundle", dir.file("mixed.bundle"), "--server", "127.0.0.1:7443"])
        #expect(mixed.status != 0 && mixed.stderr.contains("not signed by the bundle's CA"), "\(mixed)")
        let address = try ShelterProcess.run(["init", "--replica", dir.file("r.replica"), "--bundle", dir.file("w.bundle"), "--server", "no-port"])
        #expect(address.status != 0 && address.stderr.contains("HOST:PORT"))
        let standalone = dir.file("s.replica")
        let leaderless = try ShelterProcess.run(["init", "--replica", standalone])
        #expect(leaderless.status != 0 && leaderless.stderr.contains("--leader NAME") && !FileManager.default.fileExists(atPath: standalone))
        #expect(try ShelterProcess.initStandalone(standalone).status == 0)
        let noServer = try ShelterProcess.run(["sync", "--replica", standalone])
        #expect(noServer.status != 0 && noServer.stderr.contains("standalone replica with no sync server"))

        // A replica file cut short (a disk that filled up, a copy interrupted): a clear error, no crash.
        #expect(try ShelterProcess.run(["admit", "--replica", standalone, "--name", "A", "--municipality", "Køge"]).status == 0)
        let truncated = dir.file("truncated.replica")
        try Data(try Data(contentsOf: URL(fileURLWithPath: standalone)).prefix(8192)).write(to: URL(fileURLWithPath: truncated))
        for command in [["rooms"], ["stays", "--json"], ["admit", "--name", "B", "--municipality", "Køge"]] {
            let result = try ShelterProcess.run(command + ["--replica", truncated])
            #expect(result.status == 1, "\(command): \(result)")
            #expect(result.stderr.contains("truncated.replica") && (result.stderr.contains("corrupt") || result.stderr.contains("not a ShelterSync replica")), "\(result.stderr)")
        }

        // A read-only replica: refused clearly, the file unchanged. As root, permissions do not stop
        // writes, so the command runs as `nobody`.
        let locked = try TemporaryDirectory("readonly")
        defer { locked.remove() }
        chmod(locked.path, 0o755)
        let readOnly = locked.file("r.replica")
        #expect(try ShelterProcess.initStandalone(readOnly, rooms: 3).status == 0)
        chmod(readOnly, 0o444)
        let before = fileBytes(readOnly)
        // `nobody` may not reach the build folder (a clone under /root): run a copy from the temp dir.
        var binary = ShelterProcess.binary
        if getuid() == 0 {
            binary = locked.file("shelter")
            try FileManager.default.copyItem(atPath: ShelterProcess.binary, toPath: binary)
            chmod(binary, 0o755)
        }
        let asOther: [String] = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "nobody", "--", binary] : [binary]
        let passphrase = locked.file("passphrase")
        try FileManager.default.copyItem(atPath: ShelterProcess.passphraseFile, toPath: passphrase)
        chmod(passphrase, 0o644)
        func runAsOther(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
            let attempt = Process()
            attempt.executableURL = URL(fileURLWithPath: asOther[0])
            attempt.arguments = Array(asOther.dropFirst()) + arguments
            attempt.environment = ["SHELTER_AGENT_DIR": locked.file("agents"), "SHELTER_LANG": "en"]
            let errors = Pipe()
            attempt.standardError = errors
            attempt.standardOutput = FileHandle.nullDevice
            try attempt.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            attempt.waitUntilExit()
            return (attempt.terminationStatus, message)
        }
        chmod(locked.path, 0o777)
        let login = try runAsOther(["login", ShelterProcess.tester, "--replica", readOnly, "--passphrase-file", passphrase])
        chmod(locked.path, 0o755)
        #expect(login.status == 0, "\(login.stderr)")
        let (status, message) = try runAsOther(["admit", "--replica", readOnly, "--name", "B", "--municipality", "Køge"])
        _ = try runAsOther(["logout", "--replica", readOnly])
        #expect(status == 1 && message.contains("is read-only; nothing was changed"), "\(message)")
        #expect(fileBytes(readOnly) == before)

        // A server name that does not resolve.
        let nowhere = dir.file("nowhere.replica")
        #expect(try ShelterProcess.run(["init", "--replica", nowhere, "--bundle", dir.file("w.bundle"), "--server", "no-such-host.invalid:7443"]).status == 0)
        let unresolved = try ShelterProcess.run(["sync", "--replica", nowhere])
        #expect(unresolved.status == 1 && unresolved.stderr.contains("no-such-host.invalid"), "\(unresolved)")
    }
}
