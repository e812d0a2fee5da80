import Foundation
import Testing
import TestSupport

/// The same woman admitted twice, found without anyone reading her CPR number: two workstations
/// admit one CPR number offline into two rooms; after syncing, every replica holds one `person`
/// conflict (the server compared blind indexes); `--merge` leaves one stay, one room, one
/// notification and one billing line. At one workstation, a second admission of a woman staying
/// there is stopped before it is written.
@Suite(.serialized) struct SamePersonTests {
    @Test(.timeLimit(.minutes(3))) func oneCPRNumberAdmittedTwiceBecomesOnePersonConflictAndMerges() throws {
        let dir = try TemporaryDirectory("same-person")
        defer { dir.remove() }
        let srv = dir.file("srv")
        @discardableResult
        func shelter(_ arguments: String..., status: Int32 = 0) throws -> ShelterProcess.Result {
            let result = try ShelterProcess.run(arguments)
            #expect(result.status == status, "shelter \(arguments.joined(separator: " ")): \(result)")
            return result
        }
        try shelter("server", "init", "--dir", srv, "--rooms", "9")
        try ShelterProcess.addServerStaff(srv)
        let server = try ServerProcess.start(directory: srv)
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"
        var replicas: [String] = []
        for name in ["reception", "office"] {
            try shelter("server", "enroll", "--dir", srv, "--name", name, "--out", dir.file("\(name).bundle"))
            let path = dir.file("\(name).replica")
            try shelter("init", "--replica", path, "--bundle", dir.file("\(name).bundle"), "--server", address)
            try shelter("sync", "--replica", path)
            replicas.append(path)
        }
        let (reception, office) = (replicas[0], replicas[1])
        try #require(try ShelterProcess.login(reception).status == 0)
        try shelter("rates", "set", "2026", "2839", "--replica", reception)
        try shelter("sync", "--replica", reception)
        try shelter("sync", "--replica", office)
        try #require(try ShelterProcess.login(office).status == 0)

        // Offline, each admits Sofie: the reception first, into room 1; the office into room 2.
        let first = try shelter("admit", "--replica", reception, "--name", "Sofie Dobbelt", "--cpr", "120388-1234", "--municipality", "Køge",
                                "--room", "1", "--at", "2026-11-02T10:00", "--json").json()
        let second = try shelter("admit", "--replica", office, "--name", "Sofie Dobbelt", "--cpr", "1203881234", "--municipality", "Køge",
                                 "--child", "Mikkel Dobbelt", "--room", "2", "--at", "2026-11-02T11:00", "--json").json()
        let (firstStay, secondStay) = (try #require(first["stay"] as? String), try #require(second["stay"] as? String))
        try shelter("resident", "set", try #require(second["resident"] as? String), "notes=afraid of the dark", "--replica", office)
        // At the reception a third admission is stopped before anything is written (no terminal to ask on).
        let again = try shelter("admit", "--replica", reception, "--name", "Sofie D.", "--cpr", "120388-1234", "--municipality", "Køge", status: 1)
        #expect(again.stderr.contains("a resident with this CPR number is already staying here (stay \(firstStay.prefix(8)))")
                && again.stderr.contains("--anyway"), "\(again)")
        #expect(try shelter("stays", "--replica", reception, "--json").json()["stays"] as? [Any] != nil)

        for path in [reception, office, reception] { try shelter("sync", "--replica", path) }
        for path in replicas {
            let conflicts = try #require(try shelter("conflicts", "--replica", path, "--json").json()["conflicts"] as? [[String: Any]])
            let person = conflicts.filter { $0["kind"] as? String == "person" }
            #expect(person.count == 1, "\(path): \(conflicts)")
            let values = (person.first?["values"] as? [[String: Any]])?.map { $0["value"] as? String }
            #expect(values == [firstStay, secondStay], "the stay merged first is kept: \(String(describing: values))")
        }
        // Nothing in the server's store holds her CPR number: it compared blind indexes.
        let store = try #require(FileManager.default.contents(atPath: srv + "/server.db"))
        #expect(store.range(of: Data("120388".utf8)) == nil)

        let conflict = try #require((try shelter("conflicts", "--replica", office, "--json").json()["conflicts"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(try shelter("conflicts", "resolve", conflict, "--keep", "0", "--replica", office, status: 1).stderr.contains("--merge"))
        try shelter("conflicts", "resolve", conflict, "--merge", "--replica", office)
        for path in [office, reception, office] { try shelter("sync", "--replica", path) }

        for path in replicas {
            let stays = try #require(try shelter("stays", "--replica", path, "--json").json()["stays"] as? [[String: Any]])
            #expect(stays.map { $0["id"] as? String } == [firstStay] && stays.first?["room"] as? Int == 1 && stays.first?["children"] as? Int == 1,
                    "\(path): one stay, room 1, her child moved across: \(stays)")
            let rooms = try #require(try shelter("rooms", "--replica", path, "--json").json()["rooms"] as? [[String: Any]])
            #expect(rooms.filter { $0["status"] as? String == "occupied" }.count == 1, "\(path): \(rooms)")
            let notifications = try #require(try shelter("notifications", "--pending", "--replica", path, "--json").json()["notifications"] as? [[String: Any]])
            #expect(notifications.map { $0["stay"] as? String } == [firstStay], "\(path): \(notifications)")
            let billing = try shelter("billing", "--month", "2026-11", "--replica", path, "--json").json()
            let lines = (billing["municipalities"] as? [[String: Any]])?.flatMap { ($0["stays"] as? [[String: Any]]) ?? [] } ?? []
            #expect(lines.map { $0["stay"] as? String } == [firstStay], "\(path): \(billing)")
            #expect(try shelter("conflicts", "--replica", path, "--json").json()["conflicts"] as? [Any] != nil)
        }
        let kept = try shelter("resident", "show", try #require(first["resident"] as? String), "--replica", reception, "--json").json()
        #expect(kept["notes"] as? String == "afraid of the dark" && (kept["children"] as? [[String: Any]])?.first?["name"] as? String == "Mikkel Dobbelt", "\(kept)")
        for path in replicas {
            #expect((try shelter("verify", "--replica", path, "--json").json()["invalid"] as? [Any])?.isEmpty == true)
        }
    }
}
