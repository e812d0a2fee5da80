import Foundation
import Testing
import TestSupport

/// Personal data is ciphertext outside a session: after admissions and syncs between a server and
/// three workstations, no file of any of them — replicas, their `-wal` and `-shm`, the server's
/// directory — holds a name, a CPR number (with or without its hyphen), a phone number or a note.
/// Logged out, `resident show` refuses; logged in, it shows them.
@Suite(.serialized) struct EncryptionTests {
    @Test(.timeLimit(.minutes(3))) func noFileHoldsPersonalDataInTheClear() throws {
        let dir = try TemporaryDirectory("encryption")
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
        for name in ["reception", "office", "night"] {
            try shelter("server", "enroll", "--dir", srv, "--name", name, "--out", dir.file("\(name).bundle"))
            let path = dir.file("\(name).replica")
            try shelter("init", "--replica", path, "--bundle", dir.file("\(name).bundle"), "--server", address)
            try shelter("sync", "--replica", path)
            replicas.append(path)
        }
        let (reception, office, night) = (replicas[0], replicas[1], replicas[2])
        // The leader's first login makes the shelter key.
        let first = try ShelterProcess.login(reception)
        #expect(first.status == 0 && first.stdout.contains("made the shelter's key"), "\(first)")

        let name = "Sofie Dobbelt", cpr = "120388-1234", phone = "+45 61 72 83 94", note = "husband drives a blue Volvo"
        let admitted = try shelter("admit", "--replica", reception, "--name", name, "--cpr", cpr, "--municipality", "Køge",
                                   "--child", "Mikkel Dobbelt", "--room", "1", "--json").json()
        let resident = try #require(admitted["resident"] as? String)
        try shelter("resident", "set", resident, "phone=\(phone)", "notes=\(note)", "--replica", reception)
        try shelter("admit", "--replica", reception, "--anonymous", "--alias", "Rose", "--municipality", "Roskilde")
        for path in replicas + [reception] { try shelter("sync", "--replica", path) }

        // Logged out on the office workstation: refused, nothing shown; the room board shows numbers only.
        let locked = try shelter("resident", "show", resident, "--replica", office, status: 1)
        #expect(locked.stderr.contains("log in first: shelter login NAME") && !locked.stdout.contains(name), "\(locked)")
        let board = try shelter("rooms", "--replica", office, "--json")
        #expect(!board.stdout.contains(name) && board.stdout.contains("occupied"), "\(board)")
        #expect(try shelter("history", "--show-personal", "--replica", office, status: 1).stderr.contains("log in first"))
        // Logged in there: she is shown.
        try #require(try ShelterProcess.login(office).status == 0)
        let shown = try shelter("resident", "show", resident, "--replica", office, "--json").json()
        #expect(shown["name"] as? String == name && shown["cpr"] as? String == cpr && shown["phone"] as? String == phone
                && shown["notes"] as? String == note, "\(shown)")
        #expect(try shelter("history", resident, "--show-personal", "--replica", office).stdout.contains(note))
        try shelter("logout", "--replica", office)
        try shelter("logout", "--replica", reception)
        // The night workstation never logged in; it synced everything.
        #expect(try shelter("status", "--replica", night, "--json").json()["unsynced"] as? Int == 0)

        // Every byte of every file.
        let secrets = [name, cpr, cpr.replacingOccurrences(of: "-", with: ""), phone, note, "Mikkel Dobbelt", "Dobbelt"]
        var searched = 0, plainFound = 0
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir.path)
        for file in files {
            let path = dir.file(file)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let bytes = FileManager.default.contents(atPath: path) else { continue }
            searched += 1
            for secret in secrets {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds \(secret.debugDescription) in the clear")
            }
            // The search finds what is stored in the clear: the anonymous stay's home municipality.
            if bytes.range(of: Data("Roskilde".utf8)) != nil { plainFound += 1 }
        }
        #expect(plainFound >= 4, "the search finds a plain value in every replica and the server's store")
        #expect(files.contains("srv/server.db-wal") && files.contains("night.replica"), "\(files)")
        print("searched \(searched) files for \(secrets.count) personal values: none found")
    }
}
