import Foundation
import Testing
import TestSupport

/// The `shelter` commands and JSON fields are a contract: scripts rely on them.
@Suite struct CLIContractTests {
    let dir: TemporaryDirectory
    let replica: String

    init() throws {
        dir = try TemporaryDirectory("cli")
        replica = dir.file("front.replica")
    }

    func shelter(_ arguments: String..., env: [String: String] = [:]) throws -> ShelterProcess.Result {
        try ShelterProcess.run(arguments, environment: ["SHELTER_REPLICA": replica].merging(env) { $1 })
    }

    func keys(_ object: Any?) -> [String] { ((object as? [String: Any])?.keys).map { $0.sorted() } ?? [] }

    @Test func anOfflineSessionThroughTheJSONContract() throws {
        defer { dir.remove() }
        // Given a new standalone replica.
        let initResult = try ShelterProcess.initStandalone(replica, rooms: 4)
        #expect(initResult.status == 0, "\(initResult)")
        let replicaID = initResult.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(UUID(uuidString: replicaID) != nil)
        #expect(try FileManager.default.attributesOfItem(atPath: replica)[.posixPermissions] as? Int == 0o600)

        // When staff admit one woman into a room and one anonymous woman with no room yet.
        let admitted = try shelter("admit", "--name", "Anna Jensen", "--cpr", "010190-1234", "--municipality", "Køge",
                                   "--child", "Mia Jensen:150815-4321", "--child", "Bo", "--room", "3", "--reason", "vold",
                                   "--at", "2026-11-19T22:30", "--json")
        #expect(admitted.status == 0, "\(admitted)")
        let admission = try admitted.json()
        #expect(keys(admission) == ["notification", "resident", "room", "stay"])
        #expect(admission["room"] as? Int == 3)
        let stayID = try #require(admission["stay"] as? String)
        let anonymous = try shelter("admit", "--anonymous", "--alias", "Rose", "--municipality", "Roskilde", "--json").json()
        #expect(anonymous["room"] is NSNull)

        // Then the board, the stays and the status say so, with exactly the contract's fields.
        let board = try shelter("rooms", "--json").json()
        #expect(keys(board) == ["capacity", "occupied", "rooms"])
        #expect(board["capacity"] as? Int == 4 && board["occupied"] as? Int == 1)
        let rooms = try #require(board["rooms"] as? [[String: Any]])
        #expect(rooms.count == 4)
        #expect(keys(rooms[0]) == ["children", "number", "resident", "status", "stay"])
        #expect(rooms[0]["stay"] is NSNull && rooms[0]["resident"] is NSNull && rooms[0]["status"] as? String == "free")
        #expect(rooms[2]["status"] as? String == "occupied" && rooms[2]["stay"] as? String == stayID)
        #expect(rooms[2]["resident"] as? String == "Anna Jensen" && rooms[2]["children"] as? Int == 2)

        let stays = try #require(try shelter("stays", "--json").json()["stays"] as? [[String: Any]])
        #expect(stays.count == 2)
        #expect(keys(stays[0]) == ["admittedAt", "anonymous", "children", "dischargedAt", "display", "id", "resident", "room", "status"])
        let rose = try #require(stays.first { $0["anonymous"] as? Bool == true })
        #expect(rose["display"] as? String == "Rose" && rose["status"] as? String == "awaitingRoom" && rose["room"] is NSNull)

        let status = try shelter("status", "--json").json()
        #expect(keys(status) == ["certificateExpires", "keyRotationDue", "lastError", "lastSync", "rejected", "replica", "server", "unsynced"])
        #expect(status["lastError"] is NSNull && status["rejected"] as? Int == 0 && status["keyRotationDue"] as? Bool == false)
        #expect(status["certificateExpires"] is NSNull, "a standalone replica has no certificate")
        #expect(status["replica"] as? String == replicaID && status["unsynced"] as? Int == 1 + 4 + 1 + 5 + 3, "the first leader; 4 rooms; her grant of the shelter key (her first login); Anna: resident, 2 children, stay, notification; Rose: resident, stay, notification")
        #expect(status["lastSync"] is NSNull && status["server"] is NSNull)

        // Assign with a prefix, then discharge; the history shows who did what.
        let roseStay = String(try #require(rose["id"] as? String).prefix(6))
        #expect(try shelter("staff", "add", "jonas", "--role", "socialWorker", "--passphrase-file", ShelterProcess.passphraseFile).status == 0)
        #expect(try ShelterProcess.login(replica, as: "jonas").status == 0)
        #expect(try shelter("assign", roseStay, "1").status == 0)
        #expect(try ShelterProcess.login(replica).status == 0)
        #expect(try shelter("discharge", String(stayID.prefix(8)), "--reason", "egen bolig", "--at", "2026-11-20T10:00:00+01:00").status == 0)
        let all = try #require(try shelter("stays", "--all", "--json").json()["stays"] as? [[String: Any]])
        let anna = try #require(all.first { $0["id"] as? String == stayID })
        #expect(anna["status"] as? String == "discharged" && anna["dischargedAt"] as? String == "2026-11-20T09:00:00Z")
        #expect(try #require(try shelter("stays", "--json").json()["stays"] as? [Any]).count == 1)

        let history = try shelter("history", roseStay, "--json")
        #expect(history.status == 0, "\(history)")
        let changes = try #require(try history.json()["changes"] as? [[String: Any]])
        #expect(changes.first?["author"] as? String == "jonas")
        #expect(changes.count == 2)

        // Personal values stay out of the history unless asked for.
        let plain = try shelter("history")
        #expect(!plain.stdout.contains("Anna Jensen") && !plain.stdout.contains("010190-1234") && !plain.stdout.contains("egen bolig"))
        #expect(try shelter("history", "--show-personal").stdout.contains("010190-1234"))

        // The resident's record.
        let residentID = try #require(admission["resident"] as? String)
        #expect(try shelter("resident", "set", String(residentID.prefix(8)), "phone=+45 20 30 40 50", "interpreter=yes", "notes=").status == 0)
        let shown = try shelter("resident", "show", String(residentID.prefix(8)), "--json").json()
        #expect(shown["phone"] as? String == "+45 20 30 40 50" && shown["interpreter"] as? Bool == true && shown["notes"] is NSNull)
        #expect((shown["children"] as? [Any])?.count == 2)
    }

    @Test func badInputIsRefusedClearlyAndChangesNothing() throws {
        defer { dir.remove() }
        #expect(try ShelterProcess.initStandalone(replica, rooms: 3).status == 0)
        let placed = try shelter("admit", "--name", "A", "--municipality", "Køge", "--room", "1", "--json").json()
        let stay = try #require(placed["stay"] as? String)
        let anonymous = try shelter("admit", "--anonymous", "--alias", "R", "--municipality", "Køge", "--json").json()
        let anonymousResident = try #require(anonymous["resident"] as? String)
        #expect(try shelter("rooms", "set", "2", "--out-of-service").status == 0)
        #expect(try shelter("discharge", stay, "--reason", "left").status == 0)
        let before = try ReplicaInspector(path: replica).snapshot()

        let cases: [([String], String)] = [
            (["admit", "--anonymous", "--alias", "X", "--name", "Eva", "--municipality", "Køge"], "may not have --name"),
            (["admit", "--anonymous", "--alias", "X", "--cpr", "010190-1234", "--municipality", "Køge"], "may not have --cpr"),
            (["admit", "--name", "Eva", "--cpr", "310290-1234", "--municipality", "Køge"], "CPR number is not valid"),
            (["admit", "--name", "Eva", "--cpr", "12345", "--municipality", "Køge"], "CPR number is not valid"),
            (["admit", "--name", "Eva", "--municipality", "Køge", "--room", "9"], "room 9 does not exist"),
            (["admit", "--name", "Eva", "--municipality", "Køge", "--room", "2"], "room 2 is out of service"),
            (["admit", "--name", "Eva", "--municipality", "Køge", "--at", "last tuesday"], "not an ISO 8601 time"),
            (["discharge", stay, "--reason", "twice"], "already discharged"),
            (["assign", stay, "3"], "is discharged"),
            (["assign", "0000000", "3"], "no stay has an id starting with 0000000"),
            (["assign", "abc", "3"], "too short"),
            (["resident", "set", anonymousResident, "name=Eva"], "may not have a name"),
            (["resident", "set", anonymousResident, "cpr=010190-1234"], "may not have a CPR number"),
            (["resident", "set", anonymousResident, "colour=red"], "unknown resident field 'colour'"),
            (["resident", "set", anonymousResident, "phone"], "is not FIELD=VALUE"),
            (["init", "--leader", "x", "--passphrase-file", ShelterProcess.passphraseFile], "already exists"),
            (["set-server", "127.0.0.1:7443"], "standalone replica"),
            (["set-server", "no-port"], "is not HOST:PORT"),
            (["rescue", "--from", replica], "are the same replica"),
            (["rescue", "--from", dir.file("missing.replica")], "does not exist"),
        ]
        for (arguments, message) in cases {
            let result = try ShelterProcess.run(arguments, environment: ["SHELTER_REPLICA": replica])
            #expect(result.status != 0, "\(arguments) should fail: \(result)")
            #expect(result.stderr.contains(message), "\(arguments): stderr was \(result.stderr)")
            #expect(!result.stderr.contains("010190-1234") && !result.stderr.contains("310290"), "\(arguments): an error repeated a CPR number")
        }
        // A room occupied as far as this replica knows.
        let other = try shelter("admit", "--name", "B", "--municipality", "Køge", "--room", "3", "--json")
        #expect(other.status == 0)
        let afterAdmit = try ReplicaInspector(path: replica).snapshot()
        let occupied = try shelter("admit", "--name", "C", "--municipality", "Køge", "--room", "3")
        #expect(occupied.status != 0 && occupied.stderr.contains("room 3 is occupied"))
        #expect(try ReplicaInspector(path: replica).snapshot() == afterAdmit)
        #expect(afterAdmit != before)

        // Paths that are not replicas are refused and left as they were.
        let missing = try ShelterProcess.run(["rooms", "--replica", dir.file("missing.replica")])
        #expect(missing.status != 0 && missing.stderr.contains("does not exist"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("missing.replica")))
        let text = dir.file("letter.txt")
        try Data("Kære kommune".utf8).write(to: URL(fileURLWithPath: text))
        let notReplica = try ShelterProcess.run(["admit", "--name", "A", "--municipality", "Køge", "--replica", text])
        #expect(notReplica.status != 0 && notReplica.stderr.contains("is not a ShelterSync replica"), "\(notReplica)")
        #expect(fileBytes(text) == Data("Kære kommune".utf8))
        let noReplica = try ShelterProcess.run(["rooms"])
        #expect(noReplica.status != 0 && noReplica.stderr.contains("SHELTER_REPLICA"))

        // A rescue into a replica that is not bound to a server, or from a file that is not a replica.
        let second = dir.file("second.replica")
        #expect(try ShelterProcess.initStandalone(second, rooms: 2).status == 0)
        let unbound = try ShelterProcess.run(["rescue", "--from", second, "--replica", replica])
        #expect(unbound.status != 0 && unbound.stderr.contains("not bound to a sync server"), "\(unbound)")
        let fromText = try ShelterProcess.run(["rescue", "--from", text, "--replica", replica])
        #expect(fromText.status != 0 && fromText.stderr.contains("is not a ShelterSync replica"), "\(fromText)")
        #expect(try ReplicaInspector(path: replica).snapshot() == afterAdmit, "refused rescues and set-server changed nothing")

        // The server admin's new commands, with bad arguments.
        let srv = dir.file("srv")
        #expect(try ShelterProcess.run(["server", "init", "--dir", srv]).status == 0)
        let adminCases: [([String], String)] = [
            (["server", "backup", "--dir", srv, "--to", text], "already exists"),
            (["server", "backup", "--dir", dir.file("nowhere"), "--to", dir.file("b.db")], "does not hold a ShelterSync server"),
            (["server", "restore", "--dir", srv, "--from", text], "not"),
            (["server", "certify", "--dir", srv], "--host"),
            (["server", "certify", "--dir", srv, "--host", "bad name"], "is not a host name"),
        ]
        let store = fileBytes(srv + "/server.db")
        for (arguments, message) in adminCases {
            let result = try ShelterProcess.run(arguments)
            #expect(result.status != 0, "\(arguments) should fail: \(result)")
            #expect(result.stderr.contains(message), "\(arguments): stderr was \(result.stderr)")
        }
        #expect(fileBytes(srv + "/server.db") == store && fileBytes(text) == Data("Kære kommune".utf8))
        #expect(!FileManager.default.fileExists(atPath: dir.file("b.db")))
    }
}
