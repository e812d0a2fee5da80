import Foundation
import Testing
import TestSupport

/// `shelter init --bundle --server` syncs at once (or says when the rooms come), and `shelter
/// conflicts` names what is contested in words: whose record, which room, which field, which
/// workstations — in Danish and in English.
@Suite(.serialized) struct ConflictWordsTests {
    @Test(.timeLimit(.minutes(3))) func initSyncsAtOnceAndConflictsSpeakInWords() throws {
        let dir = try TemporaryDirectory("conflict-words")
        defer { dir.remove() }
        let srv = dir.file("srv")
        @discardableResult
        func shelter(_ arguments: String..., lang: String = "en", status: Int32 = 0) throws -> ShelterProcess.Result {
            let result = try ShelterProcess.run(arguments, environment: ["SHELTER_LANG": lang])
            #expect(result.status == status, "shelter \(arguments.joined(separator: " ")): \(result)")
            return result
        }

        // Given a server with 3 rooms, a leader and three enrolled workstations.
        try shelter("server", "init", "--dir", srv, "--rooms", "3")
        #expect(try ShelterProcess.addServerStaff(srv).status == 0)
        for name in ["reception", "office", "spare"] {
            try shelter("server", "enroll", "--dir", srv, "--name", name, "--out", dir.file("\(name).bundle"))
        }
        let server = try ServerProcess.start(directory: srv)
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"

        // When a workstation is made while the server answers, then its rooms and staff are there
        // at once: stdout is still the replica id alone.
        let a = dir.file("a.replica"), b = dir.file("b.replica")
        let created = try shelter("init", "--replica", a, "--bundle", dir.file("reception.bundle"), "--server", address)
        #expect(UUID(uuidString: created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(created)")
        #expect(created.stderr.contains("first sync") && created.stderr.contains("rooms: 3") && created.stderr.contains("staff: 1"), "\(created)")
        let rooms = try #require(try shelter("rooms", "--replica", a, "--json").json()["rooms"] as? [[String: Any]])
        #expect(rooms.compactMap { $0["number"] as? Int } == [1, 2, 3], "the server's rooms, without a separate sync")
        let danish = try shelter("init", "--replica", b, "--bundle", dir.file("office.bundle"), "--server", address, lang: "da")
        #expect(danish.stderr.contains("værelser: 3"), "\(danish)")
        // The leader is there to log in; her first login makes the shelter's key, which b pulls.
        #expect(try ShelterProcess.login(a).status == 0)
        try shelter("sync", "--replica", a)
        try shelter("sync", "--replica", b)
        #expect(try ShelterProcess.login(b).status == 0)

        // Two writes to Anna's phone that did not see each other, and two families placed in room 2.
        let admitted = try shelter("admit", "--replica", a, "--name", "Anna Jensen", "--municipality", "Køge", "--room", "1", "--json").json()
        let resident = try #require(admitted["resident"] as? String)
        try shelter("sync", "--replica", a)
        try shelter("sync", "--replica", b)
        try shelter("resident", "set", resident, "phone=20304050", "--replica", a)
        try shelter("resident", "set", resident, "phone=60708090", "--replica", b)
        try shelter("admit", "--replica", a, "--anonymous", "--alias", "Rose", "--municipality", "Roskilde", "--room", "2")
        try shelter("admit", "--replica", b, "--name", "Eva Holm", "--municipality", "Greve", "--room", "2")
        try shelter("sync", "--replica", a)
        try shelter("sync", "--replica", b)

        // Then the list names them in words, in English…
        let english = try shelter("conflicts", "--replica", b).stdout
        #expect(english.contains("phone number of Anna Jensen (resident \(resident.prefix(8)))"), "\(english)")
        #expect(english.contains("room 2: two stays were placed in it") && english.contains("(Rose)") && english.contains("(Eva Holm)"), "\(english)")
        #expect(english.contains("on reception") && english.contains("on office"), "\(english)")
        #expect(english.contains("* = the value kept for now"), "\(english)")
        #expect(!english.contains(resident), "ids are short in the text")
        // …and in Danish.
        let inDanish = try shelter("conflicts", "--replica", b, lang: "da").stdout
        #expect(inDanish.contains("telefonnummer for Anna Jensen") && inDanish.contains("værelse 2: to ophold blev placeret i det"), "\(inDanish)")
        #expect(inDanish.contains("på reception") && inDanish.contains("på office") && inDanish.contains("* = den værdi, der gælder indtil videre"), "\(inDanish)")

        // The JSON keeps its keys and gains each value's workstation, the resident and the room.
        let listed = try #require(try shelter("conflicts", "--replica", b, "--json").json()["conflicts"] as? [[String: Any]])
        #expect(listed.count == 2)
        for conflict in listed {
            let values = try #require(conflict["values"] as? [[String: Any]])
            #expect(Set(values.compactMap { $0["workstation"] as? String }) == ["reception", "office"], "\(conflict)")
            #expect(Set(values.flatMap(\.keys)) == ["value", "author", "replica", "at", "workstation"])
        }
        #expect(listed.first { $0["kind"] as? String == "room" }?["room"] as? Int == 2)
        #expect(listed.first { $0["kind"] as? String == "field" }?["resident"] as? String == resident)

        // Without a session: no names, the alias where there is one, and how to see the names.
        try shelter("logout", "--replica", b)
        let locked = try shelter("conflicts", "--replica", b).stdout
        #expect(locked.contains("(log in to see the name)") && locked.contains("(Rose)"), "\(locked)")
        #expect(locked.contains("phone number of resident \(resident.prefix(8)) (log in to see the name)") && locked.contains("(locked)"), "\(locked)")
        #expect(!locked.contains("Anna Jensen") && !locked.contains("Eva Holm") && !locked.contains("20304050"), "\(locked)")
        #expect(try shelter("conflicts", "--replica", b, lang: "da").stdout.contains("(log ind for at se navnet)"))

        // When the server does not answer, a new workstation is still made, and says when the rooms come.
        server.stop()
        let offline = dir.file("spare.replica")
        let late = try shelter("init", "--replica", offline, "--bundle", dir.file("spare.bundle"), "--server", address, lang: "da")
        #expect(UUID(uuidString: late.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(late)")
        #expect(late.stderr.contains("værelserne") && late.stderr.contains("shelter sync"), "\(late)")
        #expect((try shelter("rooms", "--replica", offline, "--json").json()["rooms"] as? [Any])?.isEmpty == true)
        let englishOffline = try shelter("init", "--replica", dir.file("spare2.replica"), "--bundle", dir.file("spare.bundle"), "--server", address)
        #expect(englishOffline.stderr.contains("did not answer") && englishOffline.stderr.contains("the rooms and staff arrive at the first shelter sync"), "\(englishOffline)")
    }
}
